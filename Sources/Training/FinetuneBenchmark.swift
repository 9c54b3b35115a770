import CLIP
import Foundation
import Tensor

/// `clipd finetune bench`: optimizer steps per second of each fine-tuning mode on random pairs,
/// each next to a forward-only baseline measured right before it (so both see the same load).
public enum FinetuneBenchmark {
    public struct Mode: Sendable {
        public var pairsPerSecond: Double
        public var bestPairsPerSecond: Double
        public var steps: Int
        public var trainedParameters: Int
        public var forwardPairsPerSecond: Double
    }

    public struct Result: Sendable {
        public var modes: [Mode]
        /// Median of the forward-only baselines.
        public var forwardPairsPerSecond: Double
    }

    public static func run(model: CLIPModel, modes: [FineTuneMode], batch: Int, typicalTokens: Int, seconds: Double) throws -> Result {
        let cfg = model.config
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
        var results: [Mode] = []
        for mode in modes {
            let trainer = CLIPTrainer(model: model, mode: mode, hyper: .init(learningRate: 1e-6), gradClipNorm: 1)
            let trained = model.parameters.entries.filter { trainer.trains($0) }.reduce(0) { $0 + $1.count }
            let inference = try timed(forward)
            let step = try timed { try trainer.step(pixels: pixels, tokens: tokens) }
            results.append(Mode(pairsPerSecond: step.median, bestPairsPerSecond: step.best, steps: step.repetitions,
                                trainedParameters: trained, forwardPairsPerSecond: inference.median))
        }
        let forward = results.map(\.forwardPairsPerSecond).sorted()
        return Result(modes: results, forwardPairsPerSecond: forward.isEmpty ? 0 : forward[forward.count / 2])
    }
}
