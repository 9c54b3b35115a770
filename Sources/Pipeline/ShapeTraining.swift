import CLIP
import Foundation
import Synthetic
import Tensor

/// Trains a small CLIP from scratch on synthetic shape scenes and measures zero-shot accuracy
/// on colour–shape combinations never seen in training: the proof that the trainer learns.
public struct ShapeTraining {
    public struct Options: Sendable, Codable, Equatable {
        public var steps = 600
        public var batch = 48
        public var learningRate: Float = 2e-3
        public var warmup = 60
        public var weightDecay: Float = 0.05
        /// Rendered images per training scene (jittered position, size, tint and noise).
        public var variantsPerScene = 6
        /// Share of training pairs captioned with a partial description ("a red circle",
        /// "a circle on the left", "a red shape") instead of the full caption.
        public var partialCaptionRate: Float = 0.5
        /// Share of batch picks that bring their shape siblings along: the scenes that differ
        /// only in shape. Colour, size and position are easier to see than shape; without
        /// such hard negatives the towers learn those first and barely learn shape at all.
        public var shapeSiblingRate: Float = 0.5
        /// Rendered images per held-out scene in the evaluation.
        public var heldOutVariants = 2
        public var seed: UInt64 = 1
        public var evalEvery = 100
        public init() {}
    }

    public struct Evaluation: Sendable, Equatable, Codable {
        public let colourAccuracy: Float
        public let shapeAccuracy: Float
        public let images: Int
        public var mean: Float { (colourAccuracy + shapeAccuracy) / 2 }
        public init(colourAccuracy: Float, shapeAccuracy: Float, images: Int) {
            self.colourAccuracy = colourAccuracy
            self.shapeAccuracy = shapeAccuracy
            self.images = images
        }
    }

    /// The architecture of the demo model: 64-pixel images in 8x8 patches. The text tower is
    /// narrow because its token embedding (49408 x width) dominates the file size, and its
    /// context is 16 tokens: captions are short, and attention over 77 would cost 5x more.
    public static var demoConfig: CLIPConfig {
        CLIPConfig(embedDim: 64, imageSize: 64, patchSize: 8,
                   vision: .init(width: 96, layers: 3, heads: 4, mlpWidth: 384),
                   contextLength: 16, vocabSize: 49408,
                   text: .init(width: 64, layers: 2, heads: 4, mlpWidth: 256), activation: .quickGELU)
    }

    /// Templates of the zero-shot label sets; they are partial captions of the training set.
    public static let colourTemplates = ["a {} shape", "a small {} shape", "a large {} shape"]
    public static let shapeTemplates = ["a {}", "a small {}", "a large {}"]

    /// Zero-shot label sets for colours and shapes. Used as the canary set and by the demo.
    public static var colourLabels: LabelSet {
        LabelSet(name: "shape-colours", labels: ShapeScene.Colour.allCases.map { .init($0.rawValue) }, templates: colourTemplates)
    }

    public static var shapeLabels: LabelSet {
        LabelSet(name: "shape-kinds", labels: ShapeScene.Shape.allCases.map { .init($0.rawValue) }, templates: shapeTemplates)
    }

    /// The held-out scenes of an evaluation, `variants` renderings each, in order.
    public static func heldOutScenes(variants: Int) -> [(scene: ShapeScene, variant: UInt64)] {
        var out: [(ShapeScene, UInt64)] = []
        for (i, scene) in ShapeScene.all.filter(\.isHeldOut).enumerated() {
            for v in 0..<variants { out.append((scene, 10_000 + UInt64(i * variants + v))) }
        }
        return out
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
        return Evaluation(colourAccuracy: Float(colourHits) / Float(scenes.count),
                          shapeAccuracy: Float(shapeHits) / Float(scenes.count), images: scenes.count)
    }

    /// Trains `model` on the non-held-out scenes. `preprocess` turns a rendered RGB image
    /// (side x side) into the model's input; `report` receives (step, loss, evaluation on
    /// held-out scenes or nil). Evaluates once before the first step (reported as step -1).
    public static func train(model: CLIPModel, options: Options,
                             preprocess: ([UInt8], Int) throws -> [Float],
                             tokenize: (String) throws -> [Int32],
                             report: (Int, Float, Evaluation?) -> Void) throws -> Evaluation {
        let side = 2 * model.config.imageSize
        let per = 3 * model.config.imageSize * model.config.imageSize
        var tokenCache: [String: [Int32]] = [:]
        func tokens(_ caption: String) throws -> [Int32] {
            if let cached = tokenCache[caption] { return cached }
            let t = try tokenize(caption)
            tokenCache[caption] = t
            return t
        }
        let trainScenes = ShapeScene.all.filter { !$0.isHeldOut }
        var trainPixels: [[Float]] = [], trainScene: [ShapeScene] = []
        for scene in trainScenes {
            for v in 0..<options.variantsPerScene {
                trainPixels.append(try preprocess(scene.render(side: side, variant: UInt64(v) &+ options.seed &* 1000), side))
                trainScene.append(scene)
            }
        }
        let heldOut = heldOutScenes(variants: options.heldOutVariants)
        var heldPixels: [Float] = []
        heldPixels.reserveCapacity(heldOut.count * per)
        for (scene, variant) in heldOut { heldPixels += try preprocess(scene.render(side: side, variant: variant), side) }
        let heldScenes = heldOut.map(\.scene)
        report(-1, .nan, try evaluate(model: model, scenes: heldScenes, pixels: heldPixels, tokenize: tokens))

        let trainer = CLIPTrainer(model: model, mode: .full,
                                  hyper: .init(learningRate: options.learningRate, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: options.weightDecay),
                                  gradClipNorm: 1.0)
        let schedule = LearningRateSchedule(peak: options.learningRate, warmupSteps: options.warmup, totalSteps: options.steps)
        var rng = SeededGenerator(seed: options.seed)
        func chance(_ p: Float) -> Bool { Float(rng.next() % 1_000_000) / 1_000_000 < p }
        // Training images of each scene, and each scene's shape siblings.
        var imagesOfScene: [ShapeScene: [Int]] = [:]
        for (i, scene) in trainScene.enumerated() { imagesOfScene[scene, default: []].append(i) }
        func siblings(_ scene: ShapeScene) -> [ShapeScene] {
            ShapeScene.Shape.allCases.filter { $0 != scene.shape }
                .map { ShapeScene(shape: $0, colour: scene.colour, size: scene.size, position: scene.position) }
                .filter { !$0.isHeldOut }
        }
        var order = Array(trainPixels.indices).shuffled(using: &rng)
        var cursor = 0
        var last: Evaluation?
        for step in 0..<options.steps {
            // A batch with distinct captions: duplicates would be false negatives.
            var chosen: [Int] = [], chosenTokens: [[Int32]] = [], captions = Set<String>()
            func add(_ i: Int) throws {
                guard chosen.count < options.batch else { return }
                let scene = trainScene[i]
                let caption = chance(options.partialCaptionRate)
                    ? scene.partialCaptions[Int(rng.next() % UInt64(scene.partialCaptions.count))] : scene.caption
                if captions.insert(caption).inserted {
                    chosen.append(i)
                    chosenTokens.append(try tokens(caption))
                }
            }
            while chosen.count < options.batch {
                if cursor == order.count { order.shuffle(using: &rng); cursor = 0 }
                let i = order[cursor]; cursor += 1
                try add(i)
                if chance(options.shapeSiblingRate) {
                    for sibling in siblings(trainScene[i]) {
                        let images = imagesOfScene[sibling]!
                        try add(images[Int(rng.next() % UInt64(images.count))])
                    }
                }
            }
            var pixels: [Float] = []
            pixels.reserveCapacity(chosen.count * per)
            for i in chosen { pixels += trainPixels[i] }
            let result = try trainer.step(pixels: pixels, tokens: chosenTokens, learningRate: schedule.rate(at: step))
            let eval = (step + 1) % options.evalEvery == 0 || step + 1 == options.steps
                ? try evaluate(model: model, scenes: heldScenes, pixels: heldPixels, tokenize: tokens) : nil
            if let eval { last = eval }
            report(step, result.loss, eval)
        }
        return try last ?? evaluate(model: model, scenes: heldScenes, pixels: heldPixels, tokenize: tokens)
    }
}
