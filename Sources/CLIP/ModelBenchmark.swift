import Dispatch
import Foundation
import Tensor

/// `clipd bench`: the model alone, interleaved batch by batch with raw sgemm on the vision
/// tower's own shapes (so load from elsewhere on a shared machine hits both alike), then the
/// text tower at full and typical caption lengths. Rates from the median and fastest rounds.
public enum ModelBenchmark {
    public struct Result: Sendable {
        public var batch: Int
        public var blasThreads: Int
        public var imagesPerSecond: Double
        public var imagesPerSecondBest: Double
        public var imageGFLOP: Double
        public var modelGFLOPs: Double
        public var sgemmGFLOPs: Double
        public var sgemmGFLOPsBest: Double
        public var rounds: Int
        public var contextLength: Int
        public var typicalTokens: Int
        public var textsPerSecondFull: Double
        public var textsPerSecondTypical: Double
        /// Images/s with the batch split across single-threaded workers (one per BLAS thread).
        public var imagesPerSecondWorkers: Double?
        /// The inference kernel family that ran (`InferenceKernel.active`).
        public var kernel: String
        /// Images/s of the same model on the OpenBLAS path (`.blas`), interleaved round by round
        /// with the packed kernels (nil when `.blas` is the active path).
        public var imagesPerSecondBLASPath: Double?
    }

    public static func run(_ clip: CLIPModel, batch: Int, seconds: Double, typicalTokens: Int, compareWorkers: Bool) throws -> Result {
        let cfg = clip.config
        let blasThreads = BLASKernel.threads
        var rng = SeededGenerator(seed: 3)
        let s = cfg.imageSize
        let pixels = (0..<(batch * 3 * s * s)).map { _ in rng.normal() }

        // Model and baseline interleaved, batch by batch, so that load from elsewhere on a
        // shared machine hits both alike; rates from the fastest and the median rounds.
        let kernel = InferenceKernel.active
        let compareBLASPath = kernel != .blas
        _ = clip.encodeImages(pixels, count: batch)
        let sgemm = SgemmBaseline(cfg, batch: batch)
        sgemm.run()
        var modelTimes: [Double] = [], sgemmTimes: [Double] = [], blasPathTimes: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        repeat {
            modelTimes.append(time { _ = clip.encodeImages(pixels, count: batch) })
            sgemmTimes.append(time { sgemm.run() })
            if compareBLASPath {
                try InferenceKernel.force(.blas)
                blasPathTimes.append(time { _ = clip.encodeImages(pixels, count: batch) })
                try InferenceKernel.force(kernel == InferenceKernel.best ? nil : kernel)
            }
        } while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < 2 * seconds || modelTimes.count < 3
        blasPathTimes.sort()
        let blasPathRate = blasPathTimes.isEmpty ? nil : Double(batch) / blasPathTimes[blasPathTimes.count / 2]
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
        let fullRate = try Double(batch) * repeatFor(seconds) { _ = try clip.encodeTexts(full, maxBatch: batch) }
        let typicalRate = try Double(batch) * repeatFor(seconds) { _ = try clip.encodeTexts(typical, maxBatch: batch) }

        var workerRate: Double?
        if compareWorkers && blasThreads > 1 {
            // Each worker runs its share of the batch with single-threaded BLAS.
            BLASKernel.setThreads(1)
            let workers = blasThreads
            let share = (batch + workers - 1) / workers
            let per = 3 * s * s
            workerRate = Double(batch) * repeatFor(seconds) {
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    let lo = min(w * share, batch), hi = min(lo + share, batch)
                    if hi > lo {
                        pixels.withUnsafeBufferPointer { _ = clip.encodeImages($0.baseAddress! + lo * per, count: hi - lo) }
                    }
                }
            }
            BLASKernel.setThreads(blasThreads)
        }
        return Result(batch: batch, blasThreads: blasThreads, imagesPerSecond: imageRate, imagesPerSecondBest: imageRateBest,
                      imageGFLOP: cfg.imageFLOPs / 1e9, modelGFLOPs: modelGFLOPs, sgemmGFLOPs: sgemmRate, sgemmGFLOPsBest: sgemmRateBest,
                      rounds: modelTimes.count, contextLength: cfg.contextLength, typicalTokens: min(typicalTokens, cfg.contextLength),
                      textsPerSecondFull: fullRate, textsPerSecondTypical: typicalRate, imagesPerSecondWorkers: workerRate,
                      kernel: kernel.rawValue, imagesPerSecondBLASPath: blasPathRate)
    }

    /// Runs `body` repeatedly for about `seconds`; returns runs per second.
    public static func repeatFor(_ seconds: Double, _ body: () throws -> Void) rethrows -> Double {
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

    public static func time(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}

/// Exactly the dense sgemm calls one vision-tower batch makes (patch embedding, then per
/// block in_proj, out_proj, c_fc, c_proj), on buffers of the same shapes and layouts.
final class SgemmBaseline: @unchecked Sendable {
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

