import CLIP
import Foundation
import Synthetic
import Tensor
import ZeroShot

/// Trains a small CLIP from scratch on synthetic shape scenes and measures zero-shot accuracy
/// on colour–shape combinations never seen in training: the proof that the trainer learns.
public struct ShapeTraining {
    public struct Options: Sendable, Codable, Equatable {
        public var steps = 1400
        public var batch = 48
        public var learningRate: Float = 1e-3
        public var warmup = 60
        public var weightDecay: Float = 0.05
        public var adamEpsilon: Float = 1e-8
        /// Global gradient-norm clip (nil: none).
        public var gradClipNorm: Float? = nil
        /// Rendered images per training scene (jittered position, size, tint and noise).
        public var variantsPerScene = 10
        /// Share of training pairs captioned with a partial description ("a red circle",
        /// "a circle on the left", "a red shape") instead of the full caption.
        public var partialCaptionRate: Float = 0.3
        /// Share of batch picks that bring their shape siblings along: the scenes that differ
        /// only in shape. Colour, size and position are easier to see than shape; without
        /// such hard negatives the towers learn those first and barely learn shape at all.
        public var shapeSiblingRate: Float = 1
        /// Training images drawn in neutral inks (not one of the six colours) per image of the
        /// named colours; they carry colour-free captions.
        public var neutralInkRate: Float = 1
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
        /// The same accuracies on fresh renderings of training combinations (set by `train`):
        /// how well the model fits what it saw, next to how well it generalises.
        public var seenColourAccuracy: Float?
        public var seenShapeAccuracy: Float?
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

    /// A randomly initialised model for training from scratch, with CLIP's initialisation
    /// (open_clip `init_parameters`): standard deviations that scale with each tower's width
    /// and depth. `CLIPModel.random`'s uniform 0.02 suits wide towers; in a 64-96 wide model it
    /// leaves attention uniform and the blocks' outputs tiny, and training stalls after
    /// learning colour.
    public static func initialModel(config: CLIPConfig, seed: UInt64) -> CLIPModel {
        let model = CLIPModel.random(config: config, seed: seed)
        var rng = SeededGenerator(seed: seed &+ 0x5EED)
        func fill(_ name: String, std: Float) {
            let count = config.parameterShapes.first { $0.name == name }!.shape.reduce(1, *)
            let p = model.parameters[name]
            for i in 0..<count { p[i] = rng.normal(std: std) }
        }
        func blocks(_ prefix: String, _ tower: TowerConfig) {
            let width = Float(tower.width)
            let attention = 1 / width.squareRoot()
            let projection = attention / Float(2 * tower.layers).squareRoot()
            let hidden = 1 / (2 * width).squareRoot()
            for i in 0..<tower.layers {
                fill("\(prefix).\(i).attn.in_proj_weight", std: attention)
                fill("\(prefix).\(i).attn.out_proj.weight", std: projection)
                fill("\(prefix).\(i).mlp.c_fc.weight", std: hidden)
                fill("\(prefix).\(i).mlp.c_proj.weight", std: projection)
            }
        }
        let visionScale = 1 / Float(config.vision.width).squareRoot()
        // PyTorch's default for the patch convolution: uniform in ±1/sqrt(fan_in).
        fill("visual.conv1.weight", std: 1 / Float(3 * 3 * config.patchSize * config.patchSize).squareRoot())
        fill("visual.class_embedding", std: visionScale)
        fill("visual.positional_embedding", std: visionScale)
        fill("visual.proj", std: visionScale)
        blocks("visual.transformer.resblocks", config.vision)
        fill("token_embedding.weight", std: 0.02)
        fill("positional_embedding", std: 0.01)
        blocks("transformer.resblocks", config.text)
        fill("text_projection", std: 1 / Float(config.text.width).squareRoot())
        return model
    }

    /// Templates of the zero-shot label sets, in the form of partial training captions. Each
    /// set ensembles over the other attribute, so that no label's prompts lean towards the
    /// colours (or shapes) it happened to be seen with.
    public static let colourTemplates = ShapeScene.Shape.allCases.map { "a {} \($0.rawValue)" }
    public static let shapeTemplates = ShapeScene.Colour.allCases.map { "a \($0.rawValue) {}" }

    /// What `train` reports after each step (and once before the first, as step -1).
    public struct Progress: Sendable {
        public let step: Int
        public let loss: Float
        public let gradNorm: Float
        /// exp(logit_scale): the learned inverse temperature.
        public let logitScale: Float
        /// Set on evaluation steps.
        public let evaluation: Evaluation?
    }

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
    /// (side x side) into the model's input; `report` receives each step's loss and, every
    /// `evalEvery` steps, the evaluation; it also gets the evaluation before the first step.
    public static func train(model: CLIPModel, options: Options,
                             preprocess: ([UInt8], Int) throws -> [Float],
                             tokenize: (String) throws -> [Int32],
                             report: (Progress) -> Void) throws -> Evaluation {
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
        // Training images; `ink` is the index of a neutral ink, or nil for the scene's colour.
        var trainPixels: [[Float]] = [], trainScene: [ShapeScene] = [], trainInk: [Int?] = []
        for scene in trainScenes {
            for v in 0..<options.variantsPerScene {
                trainPixels.append(try preprocess(scene.render(side: side, variant: UInt64(v) &+ options.seed &* 1000, grainy: true), side))
                trainScene.append(scene)
                trainInk.append(nil)
            }
        }
        // Neutral-ink scenes: one colour stands in for the colour attribute (it does not matter
        // which: their captions leave it out).
        let neutralScenes = ShapeScene.all.filter { $0.colour == .red }
        let neutralPerScene = Int((Float(trainPixels.count) * options.neutralInkRate / Float(neutralScenes.count * ShapeScene.neutralInks.count)).rounded(.up))
        if options.neutralInkRate > 0 {
            for scene in neutralScenes {
                for (inkIndex, ink) in ShapeScene.neutralInks.enumerated() {
                    for v in 0..<neutralPerScene {
                        trainPixels.append(try preprocess(scene.render(side: side, variant: 50_000 &+ UInt64(v) &+ options.seed &* 1000, ink: ink, grainy: true), side))
                        trainScene.append(scene)
                        trainInk.append(inkIndex)
                    }
                }
            }
        }
        let heldOut = heldOutScenes(variants: options.heldOutVariants)
        var heldPixels: [Float] = []
        heldPixels.reserveCapacity(heldOut.count * per)
        for (scene, variant) in heldOut { heldPixels += try preprocess(scene.render(side: side, variant: variant, grainy: true), side) }
        let heldScenes = heldOut.map(\.scene)
        let seenScenes = trainScenes.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
        var seenPixels: [Float] = []
        for (i, scene) in seenScenes.enumerated() { seenPixels += try preprocess(scene.render(side: side, variant: 20_000 + UInt64(i), grainy: true), side) }
        func evaluateBoth() throws -> Evaluation {
            var result = try evaluate(model: model, scenes: heldScenes, pixels: heldPixels, tokenize: tokens)
            let seen = try evaluate(model: model, scenes: seenScenes, pixels: seenPixels, tokenize: tokens)
            result.seenColourAccuracy = seen.colourAccuracy
            result.seenShapeAccuracy = seen.shapeAccuracy
            return result
        }
        report(Progress(step: -1, loss: .nan, gradNorm: .nan, logitScale: exp(model.logitScale), evaluation: try evaluateBoth()))

        let trainer = CLIPTrainer(model: model, mode: .full,
                                  hyper: .init(learningRate: options.learningRate, beta1: 0.9, beta2: 0.98, eps: options.adamEpsilon, weightDecay: options.weightDecay),
                                  gradClipNorm: options.gradClipNorm)
        let schedule = LearningRateSchedule(peak: options.learningRate, warmupSteps: options.warmup, totalSteps: options.steps)
        var rng = SeededGenerator(seed: options.seed)
        func chance(_ p: Float) -> Bool { Float(rng.next() % 1_000_000) / 1_000_000 < p }
        // Training images of each scene (and ink), and each scene's shape siblings.
        struct ImageKind: Hashable { let scene: ShapeScene; let ink: Int? }
        var imagesOfKind: [ImageKind: [Int]] = [:]
        for i in trainScene.indices { imagesOfKind[ImageKind(scene: trainScene[i], ink: trainInk[i]), default: []].append(i) }
        func siblings(_ i: Int) -> [ImageKind] {
            let scene = trainScene[i]
            return ShapeScene.Shape.allCases.filter { $0 != scene.shape }
                .map { ImageKind(scene: ShapeScene(shape: $0, colour: scene.colour, size: scene.size, position: scene.position), ink: trainInk[i]) }
                .filter { imagesOfKind[$0] != nil }
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
                let caption: String
                if trainInk[i] != nil {
                    caption = scene.colourFreeCaptions[Int(rng.next() % UInt64(scene.colourFreeCaptions.count))]
                } else {
                    caption = chance(options.partialCaptionRate)
                        ? scene.partialCaptions[Int(rng.next() % UInt64(scene.partialCaptions.count))] : scene.caption
                }
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
                    for sibling in siblings(i) {
                        let images = imagesOfKind[sibling]!
                        try add(images[Int(rng.next() % UInt64(images.count))])
                    }
                }
            }
            var pixels: [Float] = []
            pixels.reserveCapacity(chosen.count * per)
            for i in chosen { pixels += trainPixels[i] }
            let result = try trainer.step(pixels: pixels, tokens: chosenTokens, learningRate: schedule.rate(at: step))
            let eval = (step + 1) % options.evalEvery == 0 || step + 1 == options.steps ? try evaluateBoth() : nil
            if let eval { last = eval }
            report(Progress(step: step, loss: result.loss, gradNorm: result.gradNorm, logitScale: exp(model.logitScale), evaluation: eval))
        }
        return try last ?? evaluateBoth()
    }
}
