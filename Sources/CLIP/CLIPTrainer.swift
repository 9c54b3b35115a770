import Foundation
import Tensor

/// Contrastive training of a CLIPModel in place: forward, symmetric loss, backward through
/// the trained parts, gradient clipping, AdamW, logit_scale clamped to [0, ln 100] as CLIP does.
///
/// Batches larger than `microBatch` are processed exactly (not approximately): all embeddings
/// are first computed without caches, the loss and its gradient w.r.t. every embedding are
/// computed on the full batch, then each micro-batch is re-run with caches and backpropagated
/// with its slice of that gradient.
public final class CLIPTrainer: @unchecked Sendable {
    public let model: CLIPModel
    public let mode: FineTuneMode
    public let optimizer: AdamW
    public let grads: ParameterStore
    /// Clip the global gradient L2 norm of the trained parameters to this value (nil: off).
    public var gradClipNorm: Float?

    public struct StepResult: Sendable {
        public let loss: Float
        public let lossImageToText: Float
        public let lossTextToImage: Float
        public let logitsPerImage: [Float]
        /// Global L2 norm of the trained parameters' gradients, before clipping.
        public let gradNorm: Float
    }

    public init(model: CLIPModel, mode: FineTuneMode, hyper: AdamW.Hyperparameters, gradClipNorm: Float? = nil) {
        self.model = model
        self.mode = mode
        self.optimizer = AdamW(like: model.parameters, hyper: hyper)
        self.grads = ParameterStore(zerosLike: model.parameters)
        self.gradClipNorm = gradClipNorm
    }

    public func trains(_ entry: ParameterStore.Entry) -> Bool { mode.trains(entry.name, config: model.config) }

    /// One optimizer step on the pairs (pixels [B,3,S,S], tokens B rows). Returns the loss
    /// before the update.
    @discardableResult
    public func step(pixels: [Float], tokens: [[Int32]], microBatch: Int? = nil, learningRate: Float? = nil) throws -> StepResult {
        let result = try computeGradients(pixels: pixels, tokens: tokens, microBatch: microBatch)
        if let clip = gradClipNorm, result.gradNorm > clip, result.gradNorm.isFinite {
            let s = clip / result.gradNorm
            for e in grads.entries where trains(e) {
                let g = grads.storage + e.offset
                for i in 0..<e.count { g[i] *= s }
            }
        }
        optimizer.update(model.parameters, grads: grads, learningRate: learningRate, trainable: trains)
        let scale = model.parameters["logit_scale"]
        scale[0] = min(max(scale[0], 0), Float(Foundation.log(100.0)))
        model.weightsDidChange()
        return result
    }

    /// Zeroes and fills `grads` with d(loss)/d(parameters) for the trained parameters.
    public func computeGradients(pixels: [Float], tokens: [[Int32]], microBatch: Int? = nil) throws -> StepResult {
        let cfg = model.config, params = model.parameters
        let b = tokens.count, e = cfg.embedDim, s = cfg.imageSize, per = 3 * s * s
        guard b >= 2 else { throw CLIPError(.invalidInput, "contrastive training needs at least 2 pairs, got \(b)") }
        guard pixels.count == b * per else {
            throw CLIPError(.invalidInput, "\(pixels.count / max(per, 1)) images for \(b) captions")
        }
        for (i, row) in tokens.enumerated() {
            guard row.count == cfg.contextLength, row.allSatisfy({ $0 >= 0 && Int($0) < cfg.vocabSize }) else {
                throw CLIPError(.invalidInput, "token row \(i) is not \(cfg.contextLength) ids in the vocabulary")
            }
        }
        grads.zero()
        let chunk = max(1, min(microBatch ?? b, b))
        let visionFirst = mode.firstTrainedVisionBlock(cfg), textFirst = mode.firstTrainedTextBlock(cfg)
        let visionTrained = mode.trains("visual.proj", config: cfg) || visionFirst != nil
        let textTrained = mode.trains("text_projection", config: cfg) || textFirst != nil
        let ranges = stride(from: 0, to: b, by: chunk).map { $0..<min($0 + chunk, b) }

        func vision(_ r: Range<Int>, keep: Bool) -> (VisionForward, Tensor) {
            let state = VisionForward(config: cfg, batch: r.count, keepForBackward: keep && visionFirst != nil)
            let out = pixels.withUnsafeBufferPointer { state.run($0.baseAddress! + r.lowerBound * per, params: params, observer: nil) }
            return (state, out)
        }
        func text(_ r: Range<Int>, keep: Bool) -> (TextForward, Tensor) {
            let rows = Array(tokens[r])
            let pool = rows.map(CLIPModel.poolingIndex)
            let t = pool.max()! + 1
            var ids = [Int32](repeating: 0, count: rows.count * t)
            for (j, row) in rows.enumerated() { for k in 0..<t { ids[j * t + k] = row[k] } }
            let state = TextForward(config: cfg, batch: rows.count, tokens: t, keepForBackward: keep && textFirst != nil)
            return (state, state.run(ids, pool: pool, params: params, observer: nil))
        }

        // Pass 1: every embedding (keeping the caches when there is a single chunk).
        var imageFeatures = [Float](), textFeatures = [Float]()
        var kept: (VisionForward, TextForward)?
        for r in ranges {
            let (vs, vf) = vision(r, keep: ranges.count == 1)
            let (ts, tf) = text(r, keep: ranges.count == 1)
            imageFeatures += vf.data
            textFeatures += tf.data
            if ranges.count == 1 { kept = (vs, ts) }
        }
        let loss = ContrastiveLoss(image: imageFeatures, text: textFeatures, batch: b, dim: e, logitScale: model.logitScale)
        if mode.trains("logit_scale", config: cfg) { grads["logit_scale"][0] += loss.dLogitScale }

        // Pass 2: backpropagate each chunk's slice of the embedding gradients.
        for r in ranges {
            if visionTrained {
                let state = kept?.0 ?? vision(r, keep: true).0
                loss.dImage.withUnsafeBufferPointer {
                    state.backward($0.baseAddress! + r.lowerBound * e, params: params, grads: grads,
                                   firstBlock: visionFirst, trainPostLN: visionFirst != nil)
                }
            }
            if textTrained {
                let state = kept?.1 ?? text(r, keep: true).0
                loss.dText.withUnsafeBufferPointer {
                    state.backward($0.baseAddress! + r.lowerBound * e, params: params, grads: grads,
                                   firstBlock: textFirst, trainFinalLN: textFirst != nil)
                }
            }
        }
        var sq = 0.0
        for entry in grads.entries where trains(entry) {
            let g = grads.storage + entry.offset
            for i in 0..<entry.count { sq += Double(g[i]) * Double(g[i]) }
        }
        return StepResult(loss: loss.loss, lossImageToText: loss.lossImageToText, lossTextToImage: loss.lossTextToImage,
                          logitsPerImage: loss.logitsPerImage, gradNorm: Float(sq.squareRoot()))
    }
}
