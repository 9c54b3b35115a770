import CLIP
import Foundation

/// WiSE-FT (Wortsman et al., 2022): the fine-tuned model's weights interpolated towards the
/// model it started from, θ(α) = (1−α)·θ_old + α·θ_new over every parameter. Small α keeps most
/// of the old model's zero-shot robustness; α = 1 is the fine-tuned model itself.
public enum WiseFT {
    public static let defaultAlphas: [Float] = [0, 0.25, 0.5, 0.75, 1]

    /// Writes θ(α) into `out`. α = 0 and α = 1 copy the endpoints bit for bit.
    public static func interpolate(old: ParameterStore, new: ParameterStore, alpha: Float, into out: ParameterStore) {
        precondition(old.count == new.count && old.count == out.count, "parameter stores of different models")
        if alpha == 0 { out.storage.update(from: old.storage, count: old.count); return }
        if alpha == 1 { out.storage.update(from: new.storage, count: new.count); return }
        let a = old.storage, b = new.storage, o = out.storage
        let keep = 1 - alpha
        for i in 0..<old.count { o[i] = keep * a[i] + alpha * b[i] }
    }

    /// A new model holding θ(α).
    public static func interpolated(old: CLIPModel, new: ParameterStore, alpha: Float) -> CLIPModel {
        let out = ParameterStore(zerosLike: old.parameters)
        interpolate(old: old.parameters, new: new, alpha: alpha, into: out)
        return CLIPModel(config: old.config, parameters: out)
    }
}

/// One point of the WiSE-FT grid and its scores.
public struct WiseFTCandidate: Sendable, Equatable, Codable {
    public var alpha: Float
    public var report: EvaluationReport

    public init(alpha: Float, report: EvaluationReport) {
        self.alpha = alpha
        self.report = report
    }
}

/// Decides whether a fine-tuned model replaces the current one. The mixing weight is the α > 0
/// with the best held-out recall among those whose canary accuracy stays within `canaryTolerance`
/// (absolute) of the current model's; it is promoted only if that recall beats the current
/// model's by more than `minRecallGain`. Ties prefer the better canary, then the smaller α (closer to the
/// model users already trust).
public struct PromotionGate: Sendable, Equatable, Codable {
    public var canaryTolerance: Float
    public var minRecallGain: Float

    public init(canaryTolerance: Float = 0.02, minRecallGain: Float = 0) {
        self.canaryTolerance = canaryTolerance
        self.minRecallGain = minRecallGain
    }

    public enum Decision: Sendable, Equatable {
        case promote(WiseFTCandidate)
        case reject(reasons: [String])

        public var isPromotion: Bool { if case .promote = self { return true } else { return false } }
    }

    /// Accuracies are fractions of a finite canary set: compare with a little slack so 0.02
    /// tolerates exactly 0.02.
    private static let slack: Float = 1e-6

    public func decide(before: EvaluationReport, candidates: [WiseFTCandidate]) -> Decision {
        var reasons: [String] = []
        var eligible: [WiseFTCandidate] = []
        for c in candidates where c.alpha > 0 {
            let label = "α=\(Self.format(c.alpha))"
            if !c.report.isFinite {
                reasons.append("\(label): the model's outputs are not finite")
            } else if before.canaryAccuracy - c.report.canaryAccuracy > canaryTolerance + Self.slack {
                reasons.append("\(label): canary accuracy fell from \(Self.format(before.canaryAccuracy)) to \(Self.format(c.report.canaryAccuracy)) (tolerance \(Self.format(canaryTolerance)))")
            } else {
                eligible.append(c)
            }
        }
        if candidates.allSatisfy({ $0.alpha <= 0 }) { return .reject(reasons: ["no mixing weight above 0 was evaluated"]) }
        guard var best = eligible.first else { return .reject(reasons: reasons) }
        for c in eligible.dropFirst() {
            let (r, b) = (c.report, best.report)
            if r.recall.mean > b.recall.mean
                || (r.recall.mean == b.recall.mean && r.canaryAccuracy > b.canaryAccuracy)
                || (r.recall.mean == b.recall.mean && r.canaryAccuracy == b.canaryAccuracy && c.alpha < best.alpha) {
                best = c
            }
        }
        // Promoting a model that measures the same would make every daemon switch (and re-embed) for nothing.
        if !(best.report.recall.mean > before.recall.mean + minRecallGain + Self.slack) {
            let needed = minRecallGain > 0 ? " (needs a gain of \(Self.format(minRecallGain)))" : ""
            return .reject(reasons: reasons + ["held-out recall did not improve: best \(Self.format(best.report.recall.mean)) at α=\(Self.format(best.alpha)) vs \(Self.format(before.recall.mean)) before\(needed)"])
        }
        return .promote(best)
    }

    static func format(_ x: Float) -> String { String(format: "%.4g", Double(x)) }
}
