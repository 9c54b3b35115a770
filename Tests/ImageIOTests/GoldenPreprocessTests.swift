import Foundation
import XCTest
@testable import ImageIO

/// Every fixture picture against open_clip's eval transform (preprocess.safetensors).
final class GoldenPreprocessTests: XCTestCase {
    /// One uint8 level in normalised units (1/255/std, largest over the channels).
    static let oneLevel: Float = 0.0146
    static let meanTolerance = 1e-3

    static let reference: SafetensorsFile? = try? SafetensorsFile(
        contentsOf: Fixtures.images("preprocess.safetensors"))

    func check(file: String, key: String, applyExif: Bool,
               expectedMode: PixelLayout, expectedCrop: (Int, Int)? = nil) throws {
        let reference = try XCTUnwrap(Self.reference, "preprocess.safetensors missing")
        let expected = try reference.float32(key)
        XCTAssertEqual(expected.shape, [3, 224, 224])
        let preprocessor = Preprocessor(options: PreprocessOptions(applyExifOrientation: applyExif))
        let (tensor, summary) = try preprocessor.preprocess(Fixtures.bytes(Fixtures.images(file)))
        XCTAssertEqual(summary.mode, expectedMode, key)
        if let (left, top) = expectedCrop {
            XCTAssertEqual(summary.geometry.cropLeft, left, key)
            XCTAssertEqual(summary.geometry.cropTop, top, key)
        }
        let difference = Difference(tensor, expected.values)
        XCTAssertLessThanOrEqual(difference.maxAbs, Self.oneLevel, "\(key) max abs")
        XCTAssertLessThanOrEqual(difference.meanAbs, Self.meanTolerance, "\(key) mean abs")
        // The port aims at bit-identical uint8 results: only float32 rounding may remain.
        XCTAssertLessThanOrEqual(difference.maxAbs, 1e-5, "\(key) should match to float rounding")
    }

    func testBaseline420() throws {
        try check(file: "astronaut_512x512.jpg", key: "astronaut_512x512", applyExif: true, expectedMode: .rgb, expectedCrop: (0, 0))
    }

    func testRestartMarkers422WithHalfEvenCrop() throws {
        try check(file: "coffee_596x400_422_restart.jpg", key: "coffee_596x400_422_restart", applyExif: true,
                  expectedMode: .rgb, expectedCrop: (54, 0))
    }

    func testPortrait444() throws {
        try check(file: "franz_kafka_450x655.jpg", key: "franz_kafka_450x655", applyExif: true, expectedMode: .rgb, expectedCrop: (0, 51))
    }

    func testGrayscale() throws {
        try check(file: "camera_512x512_gray.jpg", key: "camera_512x512_gray", applyExif: true, expectedMode: .gray)
    }

    func testProgressive() throws {
        try check(file: "rocket_640x427_progressive.jpg", key: "rocket_640x427_progressive", applyExif: true,
                  expectedMode: .rgb, expectedCrop: (56, 0))
    }

    func testAdobeCMYKResizedInCMYK() throws {
        try check(file: "china_640x427_cmyk.jpg", key: "china_640x427_cmyk", applyExif: true, expectedMode: .cmyk, expectedCrop: (56, 0))
    }

    func testExifOrientationIgnoredMatchesOpenCLIP() throws {
        try check(file: "flower_427x640_exif6.jpg", key: "flower_427x640_exif6", applyExif: false,
                  expectedMode: .rgb, expectedCrop: (0, 56))
    }

    func testExifOrientationAppliedMatchesTransposedReference() throws {
        try check(file: "flower_427x640_exif6.jpg", key: "flower_427x640_exif6__exif_transposed", applyExif: true,
                  expectedMode: .rgb, expectedCrop: (56, 0))
    }

    func testUpscaledTinyImage() throws {
        try check(file: "chelsea_16x16.jpg", key: "chelsea_16x16", applyExif: true, expectedMode: .rgb)
    }

    func testLargePhoto() throws {
        try check(file: "motorcycle_2000x1350.jpg", key: "motorcycle_2000x1350", applyExif: true, expectedMode: .rgb, expectedCrop: (54, 0))
    }

    func testWideLineDrawing() throws {
        try check(file: "clip_diagram_2162x762.jpg", key: "clip_diagram_2162x762", applyExif: true,
                  expectedMode: .rgb, expectedCrop: (206, 0))
    }

    func testSummaryDescribesTheDecode() throws {
        let preprocessor = Preprocessor()
        let (_, summary) = try preprocessor.preprocess(Fixtures.bytes(Fixtures.images("flower_427x640_exif6.jpg")))
        XCTAssertEqual(summary.sourceWidth, 427)
        XCTAssertEqual(summary.sourceHeight, 640)
        XCTAssertEqual(summary.exifOrientation, 6)
        XCTAssertTrue(summary.orientationApplied)
        XCTAssertEqual(summary.decodedWidth, 640)
        XCTAssertEqual(summary.decodedHeight, 427)
        XCTAssertEqual(summary.decodeMode, "jpeg baseline")
        let (_, progressive) = try preprocessor.preprocess(Fixtures.bytes(Fixtures.images("rocket_640x427_progressive.jpg")))
        XCTAssertEqual(progressive.decodeMode, "jpeg progressive")
    }
}

extension GoldenPreprocessTests {
    /// The comparison is sharp enough to see a wrong pipeline: the upright picture is far
    /// from open_clip's (unrotated) reference.
    func testComparisonDetectsWrongOrientation() throws {
        let reference = try XCTUnwrap(Self.reference)
        let unrotated = try reference.float32("flower_427x640_exif6").values
        let (upright, _) = try Preprocessor().preprocess(Fixtures.bytes(Fixtures.images("flower_427x640_exif6.jpg")))
        XCTAssertGreaterThan(Difference(upright, unrotated).meanAbs, 0.1)
    }
}
