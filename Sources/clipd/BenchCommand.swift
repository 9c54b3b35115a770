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

    @Option(name: .long, help: "Inference kernel: auto (the best this CPU runs), avx512, avx2, portable, or blas (the OpenBLAS path).")
    var kernel: String = "auto"

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
        try FlagRange.check(batch, "--batch", 1...4096)
        try FlagRange.checkPositive(seconds, "--seconds", atMost: FlagRange.day)
        try FlagRange.check(threads, "--threads", 1...FlagRange.maxThreads)
        try FlagRange.check(typicalTokens, "--typical-tokens", 2...TokenizeCommand.maxContextLength)
        if kernel != "auto" {
            guard let k = InferenceKernel(rawValue: kernel) else {
                throw ValidationError("--kernel must be auto, \(InferenceKernel.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !k.isSupported { throw ValidationError("this CPU cannot run the \(kernel) kernel") }
        }
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
        try InferenceKernel.force(kernel == "auto" ? nil : InferenceKernel(rawValue: kernel))
        let r = try ModelBenchmark.run(clip, batch: batch, seconds: seconds, typicalTokens: typicalTokens, compareWorkers: compareWorkers)
        var fields: [(String, String)] = [
            ("model", jsonString(model ?? "random \(arch!)")),
            ("blas_kernel", jsonString(BLASSelection.current.kernel)),
            ("blas_kernel_source", jsonString(BLASSelection.current.source.rawValue)),
            ("blas_threads", "\(r.blasThreads)"),
            ("inference_kernel", jsonString(r.kernel)),
            ("inference_kernel_best", jsonString(InferenceKernel.best.rawValue)),
            ("batch", "\(batch)"),
            ("images_per_s", fmt(r.imagesPerSecond)),
            ("image_gflop", fmt(r.imageGFLOP)),
            ("model_gflops", fmt(r.modelGFLOPs)),
            ("sgemm_gflops_same_shapes", fmt(r.sgemmGFLOPs)),
            ("model_vs_sgemm", fmt(r.modelGFLOPs / r.sgemmGFLOPs)),
            ("images_per_s_best", fmt(r.imagesPerSecondBest)),
            ("model_vs_sgemm_best", fmt(r.imagesPerSecondBest * r.imageGFLOP / r.sgemmGFLOPsBest)),
            ("rounds", "\(r.rounds)"),
            ("texts_per_s_full_\(r.contextLength)", fmt(r.textsPerSecondFull)),
            ("texts_per_s_typical_\(r.typicalTokens)", fmt(r.textsPerSecondTypical)),
            ("typical_vs_full", fmt(r.textsPerSecondTypical / r.textsPerSecondFull)),
        ]
        if let detected = BLASSelection.current.detected { fields.append(("blas_kernel_detected", jsonString(detected))) }
        if let rate = r.imagesPerSecondBLASPath {
            fields.append(("images_per_s_blas_path", fmt(rate)))
            fields.append(("kernel_vs_blas_path", fmt(r.imagesPerSecond / rate)))
        }
        if let rate = r.imagesPerSecondWorkers { fields.append(("images_per_s_\(r.blasThreads)_workers_x_1_thread", fmt(rate))) }
        printLine("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    private func fmt(_ x: Double) -> String { String(format: "%.3f", x) }
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
