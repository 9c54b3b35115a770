import ArgumentParser
import CLIP
import Foundation
import Training
import Tensor

/// Training throughput of every fine-tune mode on random-weight models, with the forward-only
/// (inference) rate of the same pairs measured in the same run as the baseline.
struct FinetuneBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Training pairs/s of each fine-tune mode on random-weight models; prints one JSON line per architecture.",
        discussion: "Build with `swift build -c release` first: debug builds are 10-100x slower.",
        shouldDisplay: false)

    @Option(help: "Architecture: demo (the 64 px shape model), tiny, or \(CLIPConfig.namedArchitectures.joined(separator: ", ")). Repeatable.")
    var arch: [String] = ["demo", "ViT-B-32"]
    @Option(help: "Pairs per step.") var batch: Int = 32
    @Option(help: "Seconds per measurement (at least two steps are always timed).") var seconds: Double = 10
    @Option(help: "Modes, comma separated.") var modes = "projections,lock-image,last-vision-blocks:1,last-text-blocks:1,full"
    @Option(help: "Tokens of a typical caption, end-of-text included.") var typicalTokens: Int = 15
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?

    static func config(_ name: String) -> CLIPConfig? {
        switch name.lowercased() {
        case "demo": return ShapeTraining.demoConfig
        case "tiny":
            return CLIPConfig(embedDim: 32, imageSize: 224, patchSize: 32, vision: .init(width: 64, layers: 2, heads: 4, mlpWidth: 256),
                              text: .init(width: 64, layers: 2, heads: 4, mlpWidth: 256), activation: .quickGELU)
        default: return CLIPConfig.named(name)
        }
    }

    func validate() throws {
        for a in arch where Self.config(a) == nil { throw ValidationError("unknown --arch \(a) (demo, tiny, \(CLIPConfig.namedArchitectures.joined(separator: ", ")))") }
        try FlagRange.check(batch, "--batch", 2...4096)
        try FlagRange.checkPositive(seconds, "--seconds", atMost: FlagRange.day)
        try FlagRange.check(threads, "--threads", 1...FlagRange.maxThreads)
        for m in modes.split(separator: ",") where FineTuneMode(String(m)) == nil { throw ValidationError("unknown mode \(m)") }
        if typicalTokens < 2 || typicalTokens > 77 { throw ValidationError("--typical-tokens must be in 2...77") }
    }

    func run() async throws {
        let logger = makeLogger("clipd.finetune.bench")
        configureThreads(threads, logger: logger)
        for name in arch {
            let cfg = Self.config(name)!
            let model = CLIPModel.random(config: cfg, seed: 1)
            let result = try FinetuneBenchmark.run(model: model, modes: modes.split(separator: ",").map { FineTuneMode(String($0))! },
                                                   batch: batch, typicalTokens: typicalTokens, seconds: seconds)
            var fields: [String] = []
            for (modeName, m) in zip(modes.split(separator: ",").map(String.init), result.modes) {
                logger.info("\(name) \(modeName): \(String(format: "%.2f", m.pairsPerSecond)) pairs/s (forward only \(String(format: "%.2f", m.forwardPairsPerSecond)))")
                fields.append("{\"mode\":\(jsonString(modeName)),\"pairs_per_second\":\(Self.round(m.pairsPerSecond)),\"best_pairs_per_second\":\(Self.round(m.bestPairsPerSecond)),"
                              + "\"steps\":\(m.steps),\"trained_parameters\":\(m.trainedParameters),"
                              + "\"forward_only_pairs_per_second\":\(Self.round(m.forwardPairsPerSecond)),\"vs_forward_only\":\(Self.round(m.pairsPerSecond / m.forwardPairsPerSecond))}")
            }
            let forwardMedian = result.forwardPairsPerSecond
            printLine("{\"arch\":\(jsonString(name)),\"parameters\":\(model.parameters.count),\"batch\":\(batch),\"caption_tokens\":\(typicalTokens),"
                      + "\"blas_kernel\":\(jsonString(BLASSelection.current.kernel)),\"blas_threads\":\(BLASKernel.threads),"
                      + "\"forward_only_pairs_per_second\":\(Self.round(forwardMedian)),\"modes\":[\(fields.joined(separator: ","))]}")
        }
    }

    static func round(_ x: Double) -> String { String(format: "%.4g", x) }
}
