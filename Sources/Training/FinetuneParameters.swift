import CLIP
import Foundation

/// What one fine-tune run does; the job's flags give the defaults and a `finetune_runs` row's
/// `parameters` JSON overrides any of them (snake_case keys, e.g. `{"steps": 200, "lr": 1e-5}`).
public struct FinetuneParameters: Sendable, Equatable, Codable {
    /// full, projections, lock-image, last-vision-blocks:N, last-text-blocks:N.
    public var mode = "lock-image"
    public var steps = 100
    public var batch = 32
    public var learningRate: Float = 1e-5
    public var weightDecay: Float = 0.1
    /// Linear warmup steps before the cosine decay (nil: a tenth of the steps).
    public var warmupSteps: Int?
    public var gradClipNorm: Float = 1.0
    /// Fraction of records (by a hash of their id, so stable across runs) never trained on.
    public var heldOutFraction: Double = 0.1
    /// The newest this many captioned records are used.
    public var maxPairs = 10_000
    public var alphas: [Float] = WiseFT.defaultAlphas
    /// Largest absolute drop of canary accuracy that still allows promotion.
    public var canaryTolerance: Float = 0.02
    /// Held-out recall (mean of R@1/R@5 both ways) must rise by more than this to promote.
    public var minRecallGain: Float = 0
    public var seed: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case mode, steps, batch, learningRate = "lr", weightDecay = "weight_decay", warmupSteps = "warmup_steps"
        case gradClipNorm = "grad_clip_norm", heldOutFraction = "held_out_fraction", maxPairs = "max_pairs", alphas
        case canaryTolerance = "canary_tolerance", minRecallGain = "min_recall_gain", seed
    }

    public static let keys: [String] = ["mode", "steps", "batch", "lr", "weight_decay", "warmup_steps", "grad_clip_norm",
                                        "held_out_fraction", "max_pairs", "alphas", "canary_tolerance", "min_recall_gain", "seed"]

    /// These parameters with the keys present in `json` (a JSON object) replacing them.
    public func overriding(with json: String) throws -> FinetuneParameters {
        let trimmed = json.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty || trimmed == "{}" { return self }
        guard let overrides = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
            throw TrainingError(.parameters, "run parameters are not a JSON object: \(trimmed)")
        }
        if let unknown = overrides.keys.sorted().first(where: { !Self.keys.contains($0) }) {
            throw TrainingError(.parameters, "unknown run parameter \"\(unknown)\" (known: \(Self.keys.joined(separator: ", ")))")
        }
        var merged = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as! [String: Any]
        for (key, value) in overrides { merged[key] = value }
        do {
            let result = try JSONDecoder().decode(FinetuneParameters.self, from: JSONSerialization.data(withJSONObject: merged))
            try result.validate()
            return result
        } catch let failure as TrainingError {
            throw failure
        } catch {
            throw TrainingError(.parameters, "run parameters \(trimmed) do not fit: \(error)")
        }
    }

    public func validate() throws {
        func fail(_ message: String) -> TrainingError { TrainingError(.parameters, message) }
        guard FineTuneMode(mode) != nil else { throw fail("unknown mode \(mode) (full, projections, lock-image, last-vision-blocks:N, last-text-blocks:N)") }
        guard steps >= 1 else { throw fail("steps must be at least 1") }
        guard batch >= 2 else { throw fail("batch must be at least 2 (contrastive training compares pairs)") }
        guard learningRate > 0, learningRate.isFinite else { throw fail("lr must be positive") }
        guard weightDecay >= 0 else { throw fail("weight_decay must not be negative") }
        guard heldOutFraction > 0, heldOutFraction < 1 else { throw fail("held_out_fraction must be in (0, 1)") }
        guard maxPairs >= 4 else { throw fail("max_pairs must be at least 4") }
        guard !alphas.isEmpty, alphas.allSatisfy({ $0 >= 0 && $0 <= 1 }) else { throw fail("alphas must be values in [0, 1]") }
        guard canaryTolerance >= 0, canaryTolerance <= 1 else { throw fail("canary_tolerance must be in [0, 1]") }
        if let w = warmupSteps, w < 0 { throw fail("warmup_steps must not be negative") }
        guard gradClipNorm > 0 else { throw fail("grad_clip_norm must be positive") }
    }

    public var json: String {
        String(decoding: (try? Self.encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()
}
