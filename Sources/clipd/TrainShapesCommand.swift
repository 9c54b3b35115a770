import ArgumentParser
import CLIP
import Foundation
import Pipeline
import Synthetic
import Tensor

struct TrainShapesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-shapes",
        abstract: "Train a small CLIP from scratch on synthetic shape scenes; reports held-out zero-shot accuracy."
    )

    @Option var steps = 600
    @Option var batch = 48
    @Option var lr: Float = 2e-3
    @Option var output: String?

    func run() async throws {
        let logger = makeLogger("clipd.train-shapes")
        configureThreads(nil, logger: logger)
        let cfg = ShapeTraining.demoConfig
        let model = CLIPModel.random(config: cfg, seed: 7)
        var options = ShapeTraining.Options()
        options.steps = steps
        options.batch = batch
        options.learningRate = lr
        // Stand-ins while the tokenizer and image modules land.
        func tokenize(_ s: String) -> [Int32] {
            var ids: [Int32] = [49406]
            for w in s.split(separator: " ") { ids.append(Int32(abs(w.hashValue) % 40000) + 300) }
            ids.append(49407)
            return ids + [Int32](repeating: 0, count: 77 - ids.count)
        }
        func preprocess(_ rgb: [UInt8], _ side: Int) -> [Float] {
            let s = side / 2
            var out = [Float](repeating: 0, count: 3 * s * s)
            for c in 0..<3 { for y in 0..<s { for x in 0..<s {
                var acc = 0
                for dy in 0..<2 { for dx in 0..<2 { acc += Int(rgb[3 * ((2 * y + dy) * side + 2 * x + dx) + c]) } }
                out[c * s * s + y * s + x] = (Float(acc) / 4 / 255 - cfg.imageMean[c]) / cfg.imageStd[c]
            } } }
            return out
        }
        let start = Date()
        let final = try ShapeTraining.train(model: model, options: options, preprocess: preprocess, tokenize: tokenize) { step, loss, eval in
            if let eval {
                print("step \(step + 1) loss \(loss) colour \(eval.colourAccuracy) shape \(eval.shapeAccuracy) t=\(Int(Date().timeIntervalSince(start)))s")
            }
        }
        print("final colour \(final.colourAccuracy) shape \(final.shapeAccuracy)")
    }
}
