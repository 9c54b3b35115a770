import ArgumentParser
import CLIP
import Foundation
import Training
import ImageIO
import Pipeline
import Synthetic
import Tensor

struct TrainShapesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-shapes",
        abstract: "Train a small CLIP from scratch on synthetic shape scenes; reports held-out zero-shot accuracy.",
        discussion: """
        Images are rendered, JPEG-encoded and preprocessed exactly as the daemon reads them; captions \
        go through the CLIP tokenizer. With --output, writes the model (fp16 safetensors), reloads it \
        to check the fp16 rounding, and writes the run record as training.json beside it.
        """
    )

    @Option(help: "Training steps.") var steps = 1400
    @Option(help: "Pairs per step (captions within a batch are distinct).") var batch = 48
    @Option(help: "Peak learning rate (cosine schedule after warmup).") var lr: Float = 1e-3
    @Option(help: "Warmup steps.") var warmup = 60
    @Option(name: .customLong("weight-decay"), help: "AdamW decoupled weight decay.") var weightDecay: Float = 0.05
    @Option(name: .customLong("adam-eps"), help: "AdamW epsilon.") var adamEps: Float = 1e-8
    @Option(name: .customLong("grad-clip"), help: "Clip the global gradient norm to this value (default: no clipping).") var gradClip: Float?
    @Option(help: "Rendered images per training scene.") var variants = 10
    @Option(name: .customLong("partial-captions"), help: "Share of pairs with a partial caption (0...1).") var partialCaptions: Float = 0.3
    @Option(name: .customLong("shape-siblings"), help: "Share of batch picks that bring the scenes differing only in shape (0...1).") var shapeSiblings: Float = 1
    @Option(name: .customLong("neutral-inks"), help: "Neutral-ink images (colour-free captions) per named-colour image.") var neutralInks: Float = 1
    @Option(name: .customLong("eval-every"), help: "Evaluate on the held-out scenes every N steps.") var evalEvery = 100
    @Option(help: "Seed of the data order and rendering.") var seed: UInt64 = 1
    @Option(name: .customLong("init-seed"), help: "Seed of the random initial weights.") var initSeed: UInt64 = 7
    @Option(name: .customLong("jpeg-quality"), help: "JPEG quality of the rendered images.") var jpegQuality = 90
    @Option(name: .customLong("vision-width"), help: "Override the demo architecture's image-tower width (4 heads, MLP 4x).") var visionWidth: Int?
    @Option(name: .customLong("vision-layers"), help: "Override the demo architecture's image-tower depth.") var visionLayers: Int?
    @Option(help: "Write the trained model here (fp16 safetensors) and training.json beside it.") var output: String?
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?

    func validate() throws {
        guard steps > 0, batch > 1, variants > 0, evalEvery > 0 else { throw ValidationError("--steps, --variants and --eval-every must be positive and --batch at least 2") }
        guard lr > 0, weightDecay >= 0, neutralInks >= 0 else { throw ValidationError("--lr must be positive, --weight-decay and --neutral-inks non-negative") }
        guard (0...1).contains(partialCaptions), (0...1).contains(shapeSiblings) else { throw ValidationError("--partial-captions and --shape-siblings must be within 0...1") }
        guard (1...100).contains(jpegQuality) else { throw ValidationError("--jpeg-quality must be within 1...100") }
        try FlagRange.check(threads, "--threads", 1...FlagRange.maxThreads)
        try FlagRange.check(steps, "--steps", 1...1_000_000)
        try FlagRange.check(batch, "--batch", 2...4096)
        try FlagRange.check(variants, "--variants", 1...10_000)
        try FlagRange.check(evalEvery, "--eval-every", 1...1_000_000)
        try FlagRange.check(lr, "--lr", 0...1000)
        try FlagRange.check(weightDecay, "--weight-decay", 0...10)
        try FlagRange.check(adamEps, "--adam-eps", 0...1)
        try FlagRange.check(gradClip, "--grad-clip", 0...1e6)
        try FlagRange.check(neutralInks, "--neutral-inks", 0...100)
        try FlagRange.check(visionWidth, "--vision-width", 4...4096)
        try FlagRange.check(visionLayers, "--vision-layers", 1...64)
    }

    func run() async throws {
        let logger = makeLogger("clipd.train-shapes")
        configureThreads(threads, logger: logger)
        var config = ShapeTraining.demoConfig
        if let visionWidth { config.vision = .init(width: visionWidth, layers: config.vision.layers, heads: 4, mlpWidth: 4 * visionWidth) }
        if let visionLayers { config.vision.layers = visionLayers }
        do { try config.validate() } catch { throw ValidationError("invalid architecture: \(error)") }
        let model = ShapeTraining.initialModel(config: config, seed: initSeed)
        var options = ShapeTraining.Options()
        options.steps = steps
        options.batch = batch
        options.learningRate = lr
        options.warmup = warmup
        options.weightDecay = weightDecay
        options.adamEpsilon = adamEps
        options.gradClipNorm = gradClip
        options.variantsPerScene = variants
        options.partialCaptionRate = partialCaptions
        options.shapeSiblingRate = shapeSiblings
        options.neutralInkRate = neutralInks
        options.evalEvery = evalEvery
        options.seed = seed

        let tokenizer = try sharedTokenizer()
        let contextLength = config.contextLength
        let tokenize = { (text: String) throws -> [Int32] in tokenizer.tokenize(text, contextLength: contextLength).ids.map(Int32.init) }
        let preprocess = ShapeImages(config: config, quality: jpegQuality).preprocess

        var lossCurve: [[Double]] = []
        var evaluations: [[String: Any]] = []
        let start = Date()
        let final = try ShapeTraining.train(model: model, options: options, preprocess: preprocess, tokenize: tokenize) { progress in
            let (step, loss) = (progress.step, progress.loss)
            if loss.isFinite { lossCurve.append([Double(step + 1), (Double(loss) * 10_000).rounded() / 10_000]) }
            if let eval = progress.evaluation {
                let seconds = Date().timeIntervalSince(start)
                evaluations.append(["step": step + 1, "colour_accuracy": eval.colourAccuracy, "shape_accuracy": eval.shapeAccuracy,
                                    "images": eval.images, "seconds": (seconds * 10).rounded() / 10,
                                    "seen_colour_accuracy": eval.seenColourAccuracy ?? .nan, "seen_shape_accuracy": eval.seenShapeAccuracy ?? .nan])
                printLine("step \(step + 1) loss \(loss.isFinite ? String(format: "%.4f", loss) : "-") held-out colour \(eval.colourAccuracy) shape \(eval.shapeAccuracy) (\(eval.images) images), grad norm \(progress.gradNorm), scale \(progress.logitScale), seen combinations colour \(eval.seenColourAccuracy ?? .nan) shape \(eval.seenShapeAccuracy ?? .nan) t=\(Int(seconds))s")
            }
        }
        let seconds = Date().timeIntervalSince(start)
        printLine("final held-out colour \(final.colourAccuracy) shape \(final.shapeAccuracy) in \(Int(seconds))s")

        guard let output else { return }
        let url = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let date = ISO8601DateFormatter().string(from: Date())
        let (size, shipped) = try ShapeTraining.ship(
            model, to: url, lineage: "trained from scratch by clipd finetune train-shapes (seed \(seed), init seed \(initSeed), \(steps) steps) on \(date)",
            heldOutVariants: options.heldOutVariants, preprocess: preprocess, tokenize: tokenize)
        printLine("fp16 model \(url.path) (\(size) bytes): held-out colour \(shipped.colourAccuracy) shape \(shipped.shapeAccuracy)")

        let record: [String: Any] = [
            "model": url.lastPathComponent,
            "date": date,
            "command": CommandLine.arguments.dropFirst().joined(separator: " "),
            "config": try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)),
            "options": try JSONSerialization.jsonObject(with: JSONEncoder().encode(options)),
            "init_seed": initSeed,
            "jpeg_quality": jpegQuality,
            "zero_shot_templates": ["colour": ShapeTraining.colourTemplates, "shape": ShapeTraining.shapeTemplates],
            "held_out_combinations": Set(ShapeScene.all.filter(\.isHeldOut).map { "\($0.colour.rawValue) \($0.shape.rawValue)" }).sorted(),
            "training_seconds": (seconds * 10).rounded() / 10,
            "threads": threads ?? ProcessInfo.processInfo.activeProcessorCount,
            "loss_curve": lossCurve,
            "evaluations": evaluations,
            "final": ["colour_accuracy": final.colourAccuracy, "shape_accuracy": final.shapeAccuracy, "images": final.images],
            "fp16_reloaded": ["colour_accuracy": shipped.colourAccuracy, "shape_accuracy": shipped.shapeAccuracy, "images": shipped.images],
            "file_bytes": size,
        ]
        let json = try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try json.write(to: url.deletingLastPathComponent().appendingPathComponent("training.json"))
    }
}
