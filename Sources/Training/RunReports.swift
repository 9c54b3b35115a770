import Foundation

/// The `metrics` JSON of a run row: evaluations before and after, every WiSE-FT candidate.
struct RunMetrics: Codable {
    var before: EvaluationReport
    var after: EvaluationReport?
    var alpha: Float?
    var candidates: [WiseFTCandidate]
    var mode: String
    var steps: Int
    var trainPairs: Int
    var heldOutPairs: Int
    var canaryImages: Int
    var canaryLabelSet: String
    var runID: Int64
    var baseModelVersion: Int64

    enum CodingKeys: String, CodingKey {
        case before, after, alpha, candidates, mode, steps, trainPairs = "train_pairs", heldOutPairs = "held_out_pairs"
        case canaryImages = "canary_images", canaryLabelSet = "canary_label_set", runID = "finetune_run", baseModelVersion = "base_model_version"
    }

    var json: String { String(decoding: (try? FinetuneParameters.encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self) }
}

struct RunResults: Codable {
    var decision: String
    var alpha: Float?
    var reasons: [String]
    var checkpoint: String?
    var skippedImages: Int
    var finalLoss: Float?
    var seconds: Double
    /// The step an interrupted run continued from (its saved weights and optimizer state).
    var resumedFromStep: Int? = nil

    enum CodingKeys: String, CodingKey {
        case decision, alpha, reasons, checkpoint, skippedImages = "skipped_images", finalLoss = "final_loss", seconds
        case resumedFromStep = "resumed_from_step"
    }

    var json: String { String(decoding: (try? FinetuneParameters.encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self) }
}
