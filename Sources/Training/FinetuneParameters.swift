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

    /// Sane maxima: far above any run on a CPU, low enough that no count overflows.
    public static let maxSteps = 1_000_000
    public static let maxBatch = 4096
    /// The most training pairs a run may load (steps × batch).
    public static let maxStepPairs = 100_000_000
    public static let maxPairsLimit = 100_000_000

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
        guard (1...Self.maxSteps).contains(steps) else { throw fail("steps must be within 1...\(Self.maxSteps), got \(steps)") }
        guard (2...Self.maxBatch).contains(batch) else {
            throw fail("batch must be within 2...\(Self.maxBatch) (contrastive training compares pairs), got \(batch)")
        }
        // steps × batch bounds the training pairs loaded; checked without overflowing.
        let (pairs, overflow) = steps.multipliedReportingOverflow(by: batch)
        guard !overflow, pairs <= Self.maxStepPairs else {
            throw fail("steps × batch must be at most \(Self.maxStepPairs), got \(steps) × \(batch)")
        }
        guard learningRate > 0, learningRate <= 1000, learningRate.isFinite else { throw fail("lr must be within (0, 1000], got \(learningRate)") }
        guard weightDecay >= 0, weightDecay <= 10 else { throw fail("weight_decay must be within 0...10, got \(weightDecay)") }
        guard heldOutFraction > 0, heldOutFraction < 1 else { throw fail("held_out_fraction must be in (0, 1)") }
        guard (4...Self.maxPairsLimit).contains(maxPairs) else { throw fail("max_pairs must be within 4...\(Self.maxPairsLimit), got \(maxPairs)") }
        guard !alphas.isEmpty, alphas.count <= 101, alphas.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
            throw fail("alphas must be 1 to 101 values in [0, 1]")
        }
        guard canaryTolerance >= 0, canaryTolerance <= 1 else { throw fail("canary_tolerance must be in [0, 1]") }
        if let w = warmupSteps, !(0...Self.maxSteps).contains(w) { throw fail("warmup_steps must be within 0...\(Self.maxSteps), got \(w)") }
        guard gradClipNorm > 0, gradClipNorm.isFinite else { throw fail("grad_clip_norm must be positive") }
        guard minRecallGain.isFinite, minRecallGain > -1, minRecallGain < 1 else { throw fail("min_recall_gain must be within (-1, 1)") }
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
