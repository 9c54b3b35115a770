import ArgumentParser
import CLIP
import Foundation
import Tensor

struct FinetuneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Contrastive fine-tuning of CLIP models.",
        subcommands: [FinetuneStepCommand.self, TrainShapesCommand.self, FinetuneScheduleCommand.self, FinetuneListCommand.self,
                      FinetuneRunCommand.self, FinetuneBenchCommand.self]
    )
}

/// One AdamW step on explicit pairs: the public way to verify the trainer against a reference.
struct FinetuneStepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "One contrastive AdamW step on the given (image, caption) pairs, in order; prints {\"loss\":…} and writes the updated checkpoint."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Preprocessed image (raw little-endian float32 [3,S,S]); pairs with the --tokens of the same position. Repeatable.")
    var pixels: [String] = []

    @Option(name: .long, help: "Token ids as a JSON array. Repeatable.")
    var tokens: [String] = []

    @Option(name: .long, help: "Learning rate.")
    var lr: Float = 1e-5

    @Option(name: .long, help: "Decoupled weight decay for ≥2-D weights except embeddings.")
    var weightDecay: Float = 0.2

    @Option(name: .long, help: "Adam betas as B1,B2.")
    var betas: String = "0.9,0.98"

    @Option(name: .long, help: "Adam epsilon.")
    var eps: Float = 1e-6

    @Option(name: .long, help: "What to train: full, projections, lock-image, last-vision-blocks:N, last-text-blocks:N.")
    var mode: String = "full"

    @Option(name: .long, help: "Clip the global gradient norm to this value.")
    var clipGradNorm: Float?

    @Option(name: .long, help: "Where to write the updated checkpoint (.safetensors).")
    var output: String

    func parsedBetas() throws -> (Float, Float) {
        let parts = betas.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, parts.allSatisfy({ $0 >= 0 && $0 < 1 }) else {
            throw ValidationError("--betas must be two numbers in [0,1) separated by a comma, e.g. 0.9,0.98")
        }
        return (parts[0], parts[1])
    }

    func validate() throws {
        if pixels.count != tokens.count { throw ValidationError("give as many --pixels as --tokens (\(pixels.count) vs \(tokens.count)); they form pairs in order") }
        if pixels.count < 2 { throw ValidationError("contrastive training needs at least 2 pairs") }
        if FineTuneMode(mode) == nil { throw ValidationError("unknown --mode \(mode) (full, projections, lock-image, last-vision-blocks:N, last-text-blocks:N)") }
        if !(lr > 0) || !(eps > 0) || weightDecay < 0 { throw ValidationError("--lr and --eps must be positive and --weight-decay non-negative") }
        try FlagRange.check(lr, "--lr", 0...1000)
        try FlagRange.check(eps, "--eps", 0...1)
        try FlagRange.check(weightDecay, "--weight-decay", 0...10)
        try FlagRange.check(clipGradNorm, "--clip-grad-norm", 0...1e6)
        _ = try parsedBetas()
        if !output.hasSuffix(".safetensors") { throw ValidationError("--output must be a .safetensors file") }
    }

    func run() async throws {
        let logger = makeLogger("clipd.finetune")
        let model = try modelOptions.load(logger: logger)
        let cfg = model.config
        var images: [Float] = []
        for path in pixels { images += try ModelInput.pixels(file: path, imageSize: cfg.imageSize) }
        let rows = try tokens.map { try ModelInput.tokens(json: $0, contextLength: cfg.contextLength, vocabSize: cfg.vocabSize) }
        let (b1, b2) = try parsedBetas()
        let trainer = CLIPTrainer(model: model, mode: FineTuneMode(mode)!,
                                  hyper: .init(learningRate: lr, beta1: b1, beta2: b2, eps: eps, weightDecay: weightDecay),
                                  gradClipNorm: clipGradNorm)
        let result: CLIPTrainer.StepResult
        do {
            result = try trainer.step(pixels: images, tokens: rows)
        } catch let e as CLIPError {
            throw CommandFailure(e.message)
        }
        do {
            try CheckpointWriter.write(model, to: URL(fileURLWithPath: output), metadata: [
                "clipd.parent": modelOptions.model, "clipd.finetune.mode": mode, "clipd.finetune.steps": "1",
            ])
        } catch let e as CLIPError {
            throw CommandFailure(e.message)
        }
        printLine("{\"loss\":\(result.loss),\"loss_image_to_text\":\(result.lossImageToText),\"loss_text_to_image\":\(result.lossTextToImage),\"grad_norm\":\(result.gradNorm),\"output\":\(jsonString(output))}")
    }
}
