import Foundation

/// The one error type of the fine-tune job: what went wrong with a run, for machines (`kind`)
/// and people (`message`). A run that fails is recorded as `failed` with the message.
public struct TrainingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        /// Run parameters that are not valid (unknown key, out of range).
        case parameters
        /// The canary file or its images or label set.
        case canary
        /// No base model version to start from, or its checkpoint cannot be read.
        case noModel = "no_model"
        /// Too few usable pairs to train or evaluate on.
        case notEnoughPairs = "not_enough_pairs"
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "finetune.\(kind.rawValue): \(message)" }
}
