import CLIP
import CLIPTokenizer
import ImageIO
import Pipeline
import Training
import ZeroShot
import Synthetic
import XCTest

/// A few steps of clipd's trainer on the synthetic scenes, through the real tokenizer and the
/// real JPEG and preprocessing path, with a model small enough for a debug build.
final class ShortTrainingTests: XCTestCase {
    func testShortRunOnSyntheticScenesLowersTheLoss() throws {
        let config = CLIPConfig(embedDim: 16, imageSize: 16, patchSize: 4,
                                vision: .init(width: 32, layers: 1, heads: 2, mlpWidth: 64),
                                contextLength: 12, vocabSize: 49408,
                                text: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32), activation: .quickGELU)
        let model = ShapeTraining.initialModel(config: config, seed: 3)
        let tokenizer = try CLIPTokenizer()
        let preprocessor = Preprocessor(options: PreprocessOptions(imageSize: config.imageSize, mean: config.imageMean, std: config.imageStd))
        var options = ShapeTraining.Options()
        options.steps = 60
        options.batch = 12
        options.learningRate = 2e-3
        options.warmup = 4
        options.variantsPerScene = 1
        options.shapeSiblingRate = 0
        options.partialCaptionRate = 0
        options.neutralInkRate = 0
        options.heldOutVariants = 1
        options.evalEvery = 1000
        var losses: [Float] = []
        var evaluations: [ShapeTraining.Evaluation] = []
        _ = try ShapeTraining.train(
            model: model, options: options,
            preprocess: { rgb, side in try preprocessor.preprocess(JPEGEncoder.encode(rgb: rgb, width: side, height: side, quality: 90)).tensor },
            tokenize: { tokenizer.tokenize($0, contextLength: config.contextLength).ids.map(Int32.init) }
        ) { progress in
            if progress.step >= 0 { losses.append(progress.loss) }
            if let evaluation = progress.evaluation { evaluations.append(evaluation) }
        }
        XCTAssertEqual(losses.count, 60)
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
        let first = losses.prefix(4).reduce(0, +) / 4, last = losses.suffix(8).reduce(0, +) / 8
        // ln(12) = 2.48 is the loss of a model that cannot tell the pairs apart.
        XCTAssertGreaterThan(first, 2.3, "losses: \(losses)")
        XCTAssertLessThan(last, min(2.2, first - 0.3), "losses: \(losses)")
        // Evaluated before the first step and after the last, on the 60 held-out scenes.
        XCTAssertEqual(evaluations.count, 2)
        XCTAssertEqual(evaluations.last?.images, 60)
    }
}
