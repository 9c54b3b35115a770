import ArgumentParser
import CLIP
import Dispatch
import Foundation
import Tensor

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure images/s and captions/s of the model alone, next to raw sgemm on the same shapes; prints JSON.",
        discussion: "Build with `swift build -c release` first: debug builds are 10-100x slower."
    )

    @Option(name: .long, help: "Model path (see `clipd embed --help`).")
    var model: String?

    @Option(name: .long, help: "Named architecture with random weights instead of --model: \(CLIPConfig.namedArchitectures.joined(separator: ", ")).")
    var arch: String?

    @Option(name: .long, help: "Images / captions per batch.")
    var batch: Int = 16

    @Option(name: .long, help: "Seconds per measurement.")
    var seconds: Double = 5

    @Option(name: .long, help: "BLAS threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Tokens of a typical caption, end-of-text included.")
    var typicalTokens: Int = 15

    @Flag(name: .long, help: "Also measure splitting each batch across single-threaded workers.")
    var compareWorkers = false

    @Option(name: .long, help: ArgumentHelp("Write the --arch random-weight model to this .safetensors file and exit (for end-to-end benchmarks).", visibility: .hidden))
    var saveModel: String?

    @Option(name: .long, help: ArgumentHelp("Random initialisation for --arch: small (N(0,0.02)) or open_clip (its init_parameters scales).", visibility: .hidden))
    var initialization: String = "small"

    func validate() throws {
        if (model == nil) == (arch == nil) { throw ValidationError("give exactly one of --model or --arch") }
        if let arch, CLIPConfig.named(arch) == nil {
            throw ValidationError("unknown architecture \(arch); known: \(CLIPConfig.namedArchitectures.joined(separator: ", "))")
        }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if !(seconds > 0) { throw ValidationError("--seconds must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if typicalTokens < 2 { throw ValidationError("--typical-tokens must be at least 2") }
    }

    func run() async throws {
        let logger = makeLogger("clipd.bench")
        let clip: CLIPModel
        if let model {
            clip = try ModelOptions.parse(["--model", model] + (threads.map { ["--threads", "\($0)"] } ?? [])).load(logger: logger)
        } else {
            configureThreads(threads, logger: logger)
            guard let initialization = CLIPModel.Initialization(rawValue: initialization) else {
                throw ValidationError("--initialization must be small or open_clip")
            }
            clip = CLIPModel.random(config: CLIPConfig.named(arch!)!, seed: 1, initialization: initialization)
        }
        if let saveModel {
            try CheckpointWriter.write(clip, to: URL(fileURLWithPath: saveModel), metadata: ["clipd.note": "random weights for benchmarks"])
            printLine("{\"saved\":\(jsonString(saveModel))}")
            return
        }
        let cfg = clip.config
        let blasThreads = BLASKernel.threads
        var rng = SeededGenerator(seed: 3)
        let s = cfg.imageSize
        let pixels = (0..<(batch * 3 * s * s)).map { _ in rng.normal() }

        // Model and baseline interleaved, batch by batch, so that load from elsewhere on a
        // shared machine hits both alike; rates from the fastest and the median rounds.
        _ = clip.encodeImages(pixels, count: batch)
        let sgemm = SgemmBaseline(cfg, batch: batch)
        sgemm.run()
        var modelTimes: [Double] = [], sgemmTimes: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        repeat {
            modelTimes.append(Self.time { _ = clip.encodeImages(pixels, count: batch) })
            sgemmTimes.append(Self.time { sgemm.run() })
        } while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < 2 * seconds || modelTimes.count < 3
        modelTimes.sort(); sgemmTimes.sort()
        let imageRate = Double(batch) / modelTimes[modelTimes.count / 2]
        let imageRateBest = Double(batch) / modelTimes[0]
        let modelGFLOPs = imageRate * cfg.imageFLOPs / 1e9
        let sgemmRate = sgemm.flops / sgemmTimes[sgemmTimes.count / 2] / 1e9
        let sgemmRateBest = sgemm.flops / sgemmTimes[0] / 1e9

        // Text: full 77-token captions and typical ones.
        func captions(length: Int) -> [[Int32]] {
            (0..<batch).map { _ in
                var ids = [Int32](repeating: 0, count: cfg.contextLength)
                ids[0] = 49406
                for i in 1..<(length - 1) { ids[i] = Int32.random(in: 400..<40000, using: &rng) }
                ids[length - 1] = Int32(cfg.vocabSize - 1)
                return ids
            }
        }
        let full = captions(length: cfg.contextLength), typical = captions(length: min(typicalTokens, cfg.contextLength))
        _ = try clip.encodeTexts(full)
        let fullRate = try Double(batch) * Self.repeatFor(seconds) { _ = try clip.encodeTexts(full, maxBatch: batch) }
        let typicalRate = try Double(batch) * Self.repeatFor(seconds) { _ = try clip.encodeTexts(typical, maxBatch: batch) }

        var fields: [(String, String)] = [
            ("model", jsonString(model ?? "random \(arch!)")),
            ("blas_kernel", jsonString(BLASSelection.current.kernel)),
            ("blas_kernel_source", jsonString(BLASSelection.current.source.rawValue)),
            ("blas_threads", "\(blasThreads)"),
            ("batch", "\(batch)"),
            ("images_per_s", fmt(imageRate)),
            ("image_gflop", fmt(cfg.imageFLOPs / 1e9)),
            ("model_gflops", fmt(modelGFLOPs)),
            ("sgemm_gflops_same_shapes", fmt(sgemmRate)),
            ("model_vs_sgemm", fmt(modelGFLOPs / sgemmRate)),
            ("images_per_s_best", fmt(imageRateBest)),
            ("model_vs_sgemm_best", fmt(imageRateBest * cfg.imageFLOPs / 1e9 / sgemmRateBest)),
            ("rounds", "\(modelTimes.count)"),
            ("texts_per_s_full_\(cfg.contextLength)", fmt(fullRate)),
            ("texts_per_s_typical_\(min(typicalTokens, cfg.contextLength))", fmt(typicalRate)),
            ("typical_vs_full", fmt(typicalRate / fullRate)),
        ]
        if let detected = BLASSelection.current.detected { fields.append(("blas_kernel_detected", jsonString(detected))) }
        if compareWorkers && blasThreads > 1 {
            // Each worker runs its share of the batch with single-threaded BLAS.
            BLASKernel.setThreads(1)
            let workers = blasThreads
            let share = (batch + workers - 1) / workers
            let per = 3 * s * s
            let workerRate = Double(batch) * Self.repeatFor(seconds) {
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    let lo = min(w * share, batch), hi = min(lo + share, batch)
                    if hi > lo {
                        pixels.withUnsafeBufferPointer { _ = clip.encodeImages($0.baseAddress! + lo * per, count: hi - lo) }
                    }
                }
            }
            BLASKernel.setThreads(blasThreads)
            fields.append(("images_per_s_\(workers)_workers_x_1_thread", fmt(workerRate)))
        }
        printLine("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    private func fmt(_ x: Double) -> String { String(format: "%.3f", x) }

    /// Runs `body` repeatedly for about `seconds`; returns runs per second.
    static func repeatFor(_ seconds: Double, _ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        var runs = 0
        var elapsed = 0.0
        repeat {
            try body()
            runs += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        } while elapsed < seconds
        return Double(runs) / elapsed
    }

    static func time(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}

/// Exactly the dense sgemm calls one vision-tower batch makes (patch embedding, then per
/// block in_proj, out_proj, c_fc, c_proj), on buffers of the same shapes and layouts.
final class SgemmBaseline {
    let shapes: [(m: Int, n: Int, k: Int)]
    let a: [Float], b: [Float]
    var c: [Float]
    let flops: Double

    init(_ cfg: CLIPConfig, batch: Int) {
        let w = cfg.vision.width, m = cfg.vision.mlpWidth, n = batch * cfg.visionTokens
        let np = batch * cfg.gridSize * cfg.gridSize, k = 3 * cfg.patchSize * cfg.patchSize
        shapes = [(np, w, k)] + Array(repeating: [(n, 3 * w, w), (n, w, w), (n, m, w), (n, w, m)], count: cfg.vision.layers).flatMap { $0 }
        var rng = SeededGenerator(seed: 5)
        a = (0..<shapes.map { $0.m * $0.k }.max()!).map { _ in rng.normal() }
        b = (0..<shapes.map { $0.n * $0.k }.max()!).map { _ in rng.normal() }
        c = [Float](repeating: 0, count: shapes.map { $0.m * $0.n }.max()!)
        flops = shapes.reduce(0.0) { $0 + 2 * Double($1.m * $1.n * $1.k) }
    }

    func run() {
        c.withUnsafeMutableBufferPointer { cbuf in
            for s in shapes {
                gemm(.none, .transposed, m: s.m, n: s.n, k: s.k, a: a, lda: s.k, b: b, ldb: s.k, c: cbuf.baseAddress!, ldc: s.n)
            }
        }
    }
}

struct BLASCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blas-check",
        abstract: "Check the running BLAS kernel against clipd's naive matrix multiply; prints JSON.",
        shouldDisplay: false
    )

    func run() throws {
        var rng = SeededGenerator(seed: 11)
        var worst: Float = 0
        for (m, n, k) in [(50, 192, 64), (49, 64, 3072), (33, 257, 130), (8, 96, 768)] {
            let a = (0..<(m * k)).map { _ in rng.normal() }, b = (0..<(n * k)).map { _ in rng.normal() }
            var fast = [Float](repeating: 0, count: m * n), slow = fast
            gemm(.none, .transposed, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &fast, ldc: n)
            naiveGemm(.none, .transposed, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &slow, ldc: n)
            worst = max(worst, zip(fast, slow).map { abs($0 - $1) / Float(k).squareRoot() }.max()!)
        }
        let ok = worst < 1e-4
        let sel = BLASSelection.current
        printLine("{\"blas_kernel\":\(jsonString(sel.kernel)),\"blas_kernel_source\":\(jsonString(sel.source.rawValue)),\"max_scaled_error\":\(worst),\"ok\":\(ok)}")
        if !ok { throw ExitCode(1) }
    }
}
