import ArgumentParser
import CLIP
import Foundation
import Pipeline
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
            func timed(_ body: () throws -> Void) rethrows -> (perSecond: Double, repetitions: Int) {
                try body()  // warm-up: allocations, first-touch of buffers
                let start = Date()
                var n = 0
                repeat { try body(); n += 1 } while n < 2 || Date().timeIntervalSince(start) < seconds
                return (Double(n * batch) / Date().timeIntervalSince(start), n)
            }
            let inference = try timed {
                _ = model.encodeImages(pixels, count: batch)
                _ = try model.encodeTexts(tokens)
            }
            logger.info("\(name): inference \(String(format: "%.2f", inference.perSecond)) pairs/s")
            var fields: [String] = []
            for modeName in modes.split(separator: ",").map(String.init) {
                let mode = FineTuneMode(modeName)!
                let trainer = CLIPTrainer(model: model, mode: mode, hyper: .init(learningRate: 1e-6), gradClipNorm: 1)
                let trained = model.parameters.entries.filter { trainer.trains($0) }.reduce(0) { $0 + $1.count }
                let result = try timed { try trainer.step(pixels: pixels, tokens: tokens) }
                logger.info("\(name) \(modeName): \(String(format: "%.2f", result.perSecond)) pairs/s")
                fields.append("{\"mode\":\(jsonString(modeName)),\"pairs_per_second\":\(Self.round(result.perSecond)),"
                              + "\"seconds_per_step\":\(Self.round(Double(batch) / result.perSecond)),\"steps\":\(result.repetitions),"
                              + "\"trained_parameters\":\(trained),\"vs_inference\":\(Self.round(result.perSecond / inference.perSecond))}")
            }
            printLine("{\"arch\":\(jsonString(name)),\"parameters\":\(model.parameters.count),\"batch\":\(batch),\"caption_tokens\":\(typicalTokens),"
                      + "\"blas_kernel\":\(jsonString(BLASSelection.current.kernel)),\"blas_threads\":\(BLASKernel.threads),"
                      + "\"inference_pairs_per_second\":\(Self.round(inference.perSecond)),\"modes\":[\(fields.joined(separator: ","))]}")
        }
    }

    static func round(_ x: Double) -> String { String(format: "%.4g", x) }
}
