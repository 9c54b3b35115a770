import Foundation

/// AdamW with decoupled weight decay, as torch.optim.AdamW (amsgrad off): per step
/// p ← p·(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
/// p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
public final class AdamW: @unchecked Sendable {
    public struct Hyperparameters: Sendable, Equatable, Codable {
        public var learningRate: Float
        public var beta1: Float
        public var beta2: Float
        public var eps: Float
        public var weightDecay: Float

        public init(learningRate: Float = 1e-5, beta1: Float = 0.9, beta2: Float = 0.98, eps: Float = 1e-6, weightDecay: Float = 0.2) {
            self.learningRate = learningRate
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.weightDecay = weightDecay
        }
    }

    public var hyper: Hyperparameters
    public private(set) var step = 0
    let m: ParameterStore
    let v: ParameterStore

    public init(like params: ParameterStore, hyper: Hyperparameters) {
        self.hyper = hyper
        m = ParameterStore(zerosLike: params)
        v = ParameterStore(zerosLike: params)
    }

    /// CLIP's decay rule: matrices (≥ 2-D) decay, except the token and positional embeddings;
    /// gains, biases, the class embedding and logit_scale do not.
    public static func decays(_ entry: ParameterStore.Entry) -> Bool {
        entry.shape.count >= 2 && !["token_embedding.weight", "positional_embedding", "visual.positional_embedding"].contains(entry.name)
    }

    /// One update of every parameter for which `trainable` is true, with learning rate `lr`
    /// (default: the configured one).
    public func update(_ params: ParameterStore, grads: ParameterStore, learningRate lr: Float? = nil,
                       trainable: (ParameterStore.Entry) -> Bool) {
        step += 1
        let lr = lr ?? hyper.learningRate
        let b1 = hyper.beta1, b2 = hyper.beta2, eps = hyper.eps
        let bc1 = 1 - Float(Foundation.pow(Double(b1), Double(step)))
        let bc2Sqrt = Float(Foundation.sqrt(1 - Foundation.pow(Double(b2), Double(step))))
        let stepSize = lr / bc1
        for e in params.entries where trainable(e) {
            let p = params.storage + e.offset, g = grads.storage + e.offset
            let mm = m.storage + e.offset, vv = v.storage + e.offset
            let decay: Float = Self.decays(e) ? 1 - lr * hyper.weightDecay : 1
            for i in 0..<e.count {
                p[i] *= decay
                mm[i] = b1 * mm[i] + (1 - b1) * g[i]
                vv[i] = b2 * vv[i] + (1 - b2) * g[i] * g[i]
                p[i] -= stepSize * mm[i] / (vv[i].squareRoot() / bc2Sqrt + eps)
            }
        }
    }

    /// The optimizer's state — its step count and both moment estimates — so an interrupted run
    /// can continue exactly where it stopped.
    public func state() -> (step: Int, m: [Float], v: [Float]) {
        (step, Array(UnsafeBufferPointer(start: m.storage, count: m.count)), Array(UnsafeBufferPointer(start: v.storage, count: v.count)))
    }

    /// Restores a state from `state()` of an optimizer over the same parameter layout.
    public func restore(step: Int, m savedM: [Float], v savedV: [Float]) throws {
        guard step >= 0, savedM.count == m.count, savedV.count == v.count else {
            throw CLIPError(.shapeMismatch, "optimizer state of \(savedM.count) moments does not fit \(m.count) parameters")
        }
        savedM.withUnsafeBufferPointer { m.storage.update(from: $0.baseAddress!, count: m.count) }
        savedV.withUnsafeBufferPointer { v.storage.update(from: $0.baseAddress!, count: v.count) }
        self.step = step
    }
}
