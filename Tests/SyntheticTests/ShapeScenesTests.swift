import XCTest
@testable import Synthetic

final class ShapeScenesTests: XCTestCase {
    func testRenderingIsDeterministicPerVariant() {
        let scene = ShapeScene(shape: .triangle, colour: .orange, size: .large, position: .left)
        XCTAssertEqual(scene.render(side: 40, variant: 3), scene.render(side: 40, variant: 3))
        XCTAssertEqual(scene.render(side: 40, variant: 3, grainy: true), scene.render(side: 40, variant: 3, grainy: true))
        XCTAssertNotEqual(scene.render(side: 40, variant: 3, grainy: true), scene.render(side: 40, variant: 3))
        XCTAssertNotEqual(scene.render(side: 40, variant: 3), scene.render(side: 40, variant: 4))
        XCTAssertEqual(scene.render(side: 40).count, 40 * 40 * 3)
    }

    func testShapeIsDrawnInItsColourAtItsPlace() {
        let side = 48
        let scene = ShapeScene(shape: .square, colour: .blue, size: .large, position: .right)
        let pixels = scene.render(side: side, variant: 1)
        func pixel(_ x: Int, _ y: Int) -> (Int, Int, Int) {
            let i = 3 * (y * side + x)
            return (Int(pixels[i]), Int(pixels[i + 1]), Int(pixels[i + 2]))
        }
        let centre = pixel(Int(0.7 * Double(side)), side / 2)
        XCTAssertGreaterThan(centre.2, 150)
        XCTAssertLessThan(centre.0, 90)
        let opposite = pixel(Int(0.05 * Double(side)), side / 2)
        XCTAssertGreaterThan(min(opposite.0, opposite.1, opposite.2), 200, "the left side is background")
    }

    func testEdgesAreAntialiased() {
        let pixels = ShapeScene(shape: .circle, colour: .red, size: .large, position: .center).render(side: 64, variant: 0)
        // Green is 30 inside the red circle and ~235 on the paper: in-between values are edge pixels.
        let blended = stride(from: 1, to: pixels.count, by: 3).filter { (60...200).contains(pixels[$0]) }.count
        XCTAssertGreaterThan(blended, 20)
    }

    func testHeldOutCombinationsNeverAppearInTraining() {
        let all = ShapeScene.all
        XCTAssertEqual(all.count, 4 * 6 * 2 * 5)
        let heldOut = Set(all.filter(\.isHeldOut).map { "\($0.colour) \($0.shape)" })
        let training = Set(all.filter { !$0.isHeldOut }.map { "\($0.colour) \($0.shape)" })
        XCTAssertEqual(heldOut.count, 6)
        XCTAssertTrue(heldOut.isDisjoint(with: training))
        XCTAssertEqual(heldOut.count + training.count, 24)
        // Every colour and every shape is still seen in training, so the held-out scenes ask
        // for new combinations of known concepts.
        let trainingScenes = all.filter { !$0.isHeldOut }
        XCTAssertEqual(Set(trainingScenes.map(\.colour)).count, ShapeScene.Colour.allCases.count)
        XCTAssertEqual(Set(trainingScenes.map(\.shape)).count, ShapeScene.Shape.allCases.count)
        // The split is a property of the combination, whatever the size and position.
        for scene in all {
            XCTAssertEqual(scene.isHeldOut, all.first { $0.colour == scene.colour && $0.shape == scene.shape }!.isHeldOut)
        }
    }

    func testCaptionsDescribeTheScene() {
        let scene = ShapeScene(shape: .cross, colour: .purple, size: .small, position: .bottom)
        XCTAssertEqual(scene.caption, "a small purple cross at the bottom")
        XCTAssertEqual(Set(ShapeScene.all.map(\.caption)).count, ShapeScene.all.count)
        XCTAssertTrue(scene.partialCaptions.contains("a cross"))
        XCTAssertTrue(scene.partialCaptions.contains("a purple shape"))
        for caption in scene.partialCaptions {
            XCTAssertTrue(caption.contains("cross") || caption.contains("purple"), caption)
            XCTAssertFalse(["red", "circle", "large", "left"].contains { caption.contains($0) }, caption)
        }
    }
}
