import Foundation
import Pipeline

/// How a run ended, as recorded in its `finetune_runs` row.
public struct FinetuneOutcome: Sendable {
    /// `interrupted`: stopped by a shutdown before it finished; the next trainer runs it again.
    public enum Status: String, Sendable { case finished, rejected, failed, interrupted }
    public var status: Status
    public var resultVersion: ModelVersionRef?
    public var lossCurve: [Float]
    /// JSON: before/after evaluation and every WiSE-FT candidate.
    public var metricsJSON: String?
    /// JSON: decision, α, reasons, checkpoint, counts, timings.
    public var resultsJSON: String?
    public var error: String?
    /// Why it was rejected (empty otherwise).
    public var reasons: [String]

    public init(status: Status, resultVersion: ModelVersionRef? = nil, lossCurve: [Float] = [], metricsJSON: String? = nil,
                resultsJSON: String? = nil, error: String? = nil, reasons: [String] = []) {
        self.status = status
        self.resultVersion = resultVersion
        self.lossCurve = lossCurve
        self.metricsJSON = metricsJSON
        self.resultsJSON = resultsJSON
        self.error = error
        self.reasons = reasons
    }

    public static func failed(_ message: String) -> FinetuneOutcome { FinetuneOutcome(status: .failed, error: message) }
}
