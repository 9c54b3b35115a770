import CLIP
import Foundation
import Synthetic
import Tensor

/// Trains a small CLIP from scratch on synthetic shape scenes and measures zero-shot accuracy
/// on colour–shape combinations never seen in training: the proof that the trainer learns.
public struct ShapeTraining {
    public struct Options: Sendable {
        public var steps = 600
        public var batch = 48
        public var learningRate: Float = 2e-3
        public var warmup = 60
        public var weightDecay: Float = 0.1
        public var variantsPerScene = 4
        public var seed: UInt64 = 1
        public var evalEvery = 100
        public init() {}
    }

    public struct Evaluation: Sendable, Equatable {
        public let colourAccuracy: Float
        public let shapeAccuracy: Float
        public var mean: Float { (colourAccuracy + shapeAccuracy) / 2 }
    }

    /// The architecture of the demo model: 64-pixel images in 8x8 patches, two-layer towers.
    public static var demoConfig: CLIPConfig {
        CLIPConfig(embedDim: 64, imageSize: 64, patchSize: 8,
                   vision: .init(width: 96, layers: 3, heads: 4, mlpWidth: 384),
                   contextLength: 77, vocabSize: 49408,
                   text: .init(width: 96, layers: 3, heads: 4, mlpWidth: 384), activation: .quickGELU)
    }

    /// Zero-shot label sets: colours (prompts ensemble over shapes and sizes) and shapes
    /// (ensemble over colours and sizes). Used as the canary set.
    public static var colourLabels: LabelSet {
        var templates: [String] = []
        for shape in ShapeScene.Shape.allCases { for size in ShapeScene.Size.allCases { templates.append("a \(size.rawValue) {} \(shape.rawValue) in the center") } }
        return LabelSet(name: "shape-colours", labels: ShapeScene.Colour.allCases.map { .init($0.rawValue) }, templates: templates)
    }

    public static var shapeLabels: LabelSet {
        var templates: [String] = []
        for colour in ShapeScene.Colour.allCases { for size in ShapeScene.Size.allCases { templates.append("a \(size.rawValue) \(colour.rawValue) {} in the center") } }
        return LabelSet(name: "shape-kinds", labels: ShapeScene.Shape.allCases.map { .init($0.rawValue) }, templates: templates)
    }

    /// Zero-shot accuracy of `model` on the given scenes' images (preprocessed pixels, in order).
    public static func evaluate(model: CLIPModel, scenes: [ShapeScene], pixels: [Float],
                                tokenize: (String) throws -> [Int32]) throws -> Evaluation {
        let colours = try ZeroShotClassifier(model: model, labelSet: colourLabels, tokenize: tokenize)
        let shapes = try ZeroShotClassifier(model: model, labelSet: shapeLabels, tokenize: tokenize)
        var features = model.encodeImages(pixels, count: scenes.count)
        let e = model.config.embedDim
        features.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: scenes.count, cols: e) }
        var colourHits = 0, shapeHits = 0
        for (i, scene) in scenes.enumerated() {
            let row = features.data[(i * e)..<((i + 1) * e)]
            if colours.tags(row, topK: 1).first?.label == scene.colour.rawValue { colourHits += 1 }
            if shapes.tags(row, topK: 1).first?.label == scene.shape.rawValue { shapeHits += 1 }
        }
        return Evaluation(colourAccuracy: Float(colourHits) / Float(scenes.count), shapeAccuracy: Float(shapeHits) / Float(scenes.count))
    }

    /// Trains `model` on the non-held-out scenes. `preprocess` turns a rendered RGB image into
    /// the model's input; `report` receives (step, loss, evaluation on held-out scenes or nil).
    public static func train(model: CLIPModel, options: Options,
                             preprocess: ([UInt8], Int) throws -> [Float],
                             tokenize: (String) throws -> [Int32],
                             report: (Int, Float, Evaluation?) -> Void) throws -> Evaluation {
        let side = 2 * model.config.imageSize
        let per = 3 * model.config.imageSize * model.config.imageSize
        let trainScenes = ShapeScene.all.filter { !$0.isHeldOut }
        var trainPixels: [[Float]] = [], trainTokens: [[Int32]] = [], trainScene: [ShapeScene] = []
        for scene in trainScenes {
            let tokens = try tokenize(scene.caption)
            for v in 0..<options.variantsPerScene {
                trainPixels.append(try preprocess(scene.render(side: side, variant: UInt64(v) &+ options.seed &* 1000), side))
                trainTokens.append(tokens)
                trainScene.append(scene)
            }
        }
        let heldOut = ShapeScene.all.filter { $0.isHeldOut && $0.position == .center }
        var heldPixels: [Float] = []
        for (i, scene) in heldOut.enumerated() { heldPixels += try preprocess(scene.render(side: side, variant: 10_000 + UInt64(i)), side) }

        let trainer = CLIPTrainer(model: model, mode: .full,
                                  hyper: .init(learningRate: options.learningRate, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: options.weightDecay),
                                  gradClipNorm: 1.0)
        let schedule = LearningRateSchedule(peak: options.learningRate, warmupSteps: options.warmup, totalSteps: options.steps)
        var rng = SeededGenerator(seed: options.seed)
        var order = Array(trainPixels.indices).shuffled(using: &rng)
        var cursor = 0
        for step in 0..<options.steps {
            // A batch with distinct captions: duplicates would be false negatives.
            var chosen: [Int] = [], captions = Set<String>()
            while chosen.count < options.batch {
                if cursor == order.count { order.shuffle(using: &rng); cursor = 0 }
                let i = order[cursor]; cursor += 1
                if captions.insert(trainScene[i].caption).inserted { chosen.append(i) }
            }
            var pixels: [Float] = []
            pixels.reserveCapacity(chosen.count * per)
            for i in chosen { pixels += trainPixels[i] }
            let result = try trainer.step(pixels: pixels, tokens: chosen.map { trainTokens[$0] }, learningRate: schedule.rate(at: step))
            let eval = (step + 1) % options.evalEvery == 0 || step + 1 == options.steps
                ? try evaluate(model: model, scenes: heldOut, pixels: heldPixels, tokenize: tokenize) : nil
            report(step, result.loss, eval)
        }
        return try evaluate(model: model, scenes: heldOut, pixels: heldPixels, tokenize: tokenize)
    }
}
