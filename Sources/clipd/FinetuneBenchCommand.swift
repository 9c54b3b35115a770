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
        if batch < 2 { throw ValidationError("--batch must be at least 2") }
        if !(seconds > 0) { throw ValidationError("--seconds must be positive") }
        for m in modes.split(separator: ",") where FineTuneMode(String(m)) == nil { throw ValidationError("unknown mode \(m)") }
        if typicalTokens < 2 || typicalTokens > 77 { throw ValidationError("--typical-tokens must be in 2...77") }
    }

    func run() async throws {
        let logger = makeLogger("clipd.finetune.bench")
        configureThreads(threads, logger: logger)
        for name in arch {
            let cfg = Self.config(name)!
            let model = CLIPModel.random(config: cfg, seed: 1)
            var rng = SeededGenerator(seed: 5)
            let s = cfg.imageSize
            let pixels = (0..<(batch * 3 * s * s)).map { _ in rng.normal() }
            let tokens: [[Int32]] = (0..<batch).map { _ in
                var row = [Int32](repeating: 0, count: cfg.contextLength)
                row[0] = 49406
                for k in 1..<(typicalTokens - 1) { row[k] = Int32(300 + Int(rng.next() % 40_000)) }
                row[typicalTokens - 1] = 49407
                return row
            }
            /// Per-repetition rates after one warm-up; the median resists the other processes on a shared machine.
            func timed(_ body: () throws -> Void) rethrows -> (median: Double, best: Double, repetitions: Int) {
                try body()  // warm-up: allocations, first touch of buffers
                var rates: [Double] = []
                let start = Date()
                repeat {
                    let t = Date()
                    try body()
                    rates.append(Double(batch) / Date().timeIntervalSince(t))
                } while rates.count < 2 || Date().timeIntervalSince(start) < seconds
                rates.sort()
                return (rates[rates.count / 2], rates.last!, rates.count)
            }
            func forward() throws {
                _ = model.encodeImages(pixels, count: batch)
                _ = try model.encodeTexts(tokens)
            }
            var fields: [String] = []
            var inferenceRates: [Double] = []
            for modeName in modes.split(separator: ",").map(String.init) {
                let mode = FineTuneMode(modeName)!
                let trainer = CLIPTrainer(model: model, mode: mode, hyper: .init(learningRate: 1e-6), gradClipNorm: 1)
                let trained = model.parameters.entries.filter { trainer.trains($0) }.reduce(0) { $0 + $1.count }
                // The forward-only baseline is measured right before each mode, so both see the same machine load.
                let inference = try timed(forward)
                inferenceRates.append(inference.median)
                let result = try timed { try trainer.step(pixels: pixels, tokens: tokens) }
                logger.info("\(name) \(modeName): \(String(format: "%.2f", result.median)) pairs/s (forward only \(String(format: "%.2f", inference.median)))")
                fields.append("{\"mode\":\(jsonString(modeName)),\"pairs_per_second\":\(Self.round(result.median)),\"best_pairs_per_second\":\(Self.round(result.best)),"
                              + "\"steps\":\(result.repetitions),\"trained_parameters\":\(trained),"
                              + "\"forward_only_pairs_per_second\":\(Self.round(inference.median)),\"vs_forward_only\":\(Self.round(result.median / inference.median))}")
            }
            let forwardMedian = inferenceRates.sorted()[inferenceRates.count / 2]
            printLine("{\"arch\":\(jsonString(name)),\"parameters\":\(model.parameters.count),\"batch\":\(batch),\"caption_tokens\":\(typicalTokens),"
                      + "\"blas_kernel\":\(jsonString(BLASSelection.current.kernel)),\"blas_threads\":\(BLASKernel.threads),"
                      + "\"forward_only_pairs_per_second\":\(Self.round(forwardMedian)),\"modes\":[\(fields.joined(separator: ","))]}")
        }
    }

    static func round(_ x: Double) -> String { String(format: "%.4g", x) }
}
