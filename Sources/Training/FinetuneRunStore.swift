import CLIP
import Foundation
import Pipeline
import ZeroShot

/// A stored (image URL, caption) pair to train or evaluate on.
public struct CaptionedRecord: Sendable, Equatable {
    public let id: String
    public let imageURL: String
    public let caption: String
    /// The `training_samples` row holding its preprocessed crop and token ids (stream source).
    public let sampleID: Int64?
    public init(id: String, imageURL: String, caption: String, sampleID: Int64? = nil) {
        self.id = id
        self.imageURL = imageURL
        self.caption = caption
        self.sampleID = sampleID
    }
}

/// Where a run's pairs come from.
public enum PairSource: String, Sendable, CaseIterable {
    /// The training set the job's own consumer group keeps from the topic (`training_samples`).
    case stream
    /// Captioned rows of `records`, images fetched again (what the daemon wrote).
    case database
}

/// A stored crop and its caption's token ids.
public struct StoredTrainingInput: Sendable, Equatable {
    /// `TrainingPreprocessing.key` of the configuration the crop was made for.
    public let preprocessing: String
    public let pixels: [Float]
    public let tokens: [Int32]
    public init(preprocessing: String, pixels: [Float], tokens: [Int32]) {
        self.preprocessing = preprocessing
        self.pixels = pixels
        self.tokens = tokens
    }
}

/// Identifies the preprocessing a crop was made with: a stored crop is used only by a model that
/// preprocesses the same way (otherwise its image is fetched again).
public enum TrainingPreprocessing {
    public static func key(_ config: CLIPConfig) -> String {
        "size=\(config.imageSize) mean=\(config.imageMean) std=\(config.imageStd) context=\(config.contextLength)"
    }
}

/// The model a run starts from.
public struct BaseModel: Sendable {
    public let version: ModelVersionRef
    public let checkpointPath: String
    public init(version: ModelVersionRef, checkpointPath: String) {
        self.version = version
        self.checkpointPath = checkpointPath
    }
}

/// The database as the fine-tune job needs it.
public protocol FinetuneRunStore: Sendable {
    /// The given version, or the active one when nil.
    func baseModel(versionID: Int64?) async throws -> BaseModel
    /// The newest `limit` records that have an image URL and a non-empty caption.
    func captionedRecords(limit: Int) async throws -> [CaptionedRecord]
    func labelSet(named name: String) async throws -> LabelSet?
    /// Stores the run's effective parameters and base version.
    func recordStart(runID: Int64, parameters: FinetuneParameters, base: ModelVersionRef) async throws
    /// Stores the loss curve so far.
    func recordProgress(runID: Int64, losses: [Float]) async throws
    /// Registers a checkpoint as a new model version (parent = `parent`) and activates it, in one transaction.
    func promote(runID: Int64, name: String, parent: ModelVersionRef, checkpointPath: String, config: CLIPConfig,
                 metricsJSON: String) async throws -> ModelVersionRef
    func finish(runID: Int64, outcome: FinetuneOutcome) async throws
    /// The newest `limit` pairs of the stream's training set (with `sampleID`s).
    func trainingSetPairs(limit: Int) async throws -> [CaptionedRecord]
    /// Stored crops and token ids by sample id.
    func trainingSampleInputs(ids: [Int64]) async throws -> [Int64: StoredTrainingInput]
    /// The pairs fixed when the run first started (nil: not started before).
    func runPairs(runID: Int64) async throws -> [CaptionedRecord]?
    /// Fixes the run's pairs, so an interrupted run trains again on exactly these.
    func recordRunPairs(runID: Int64, pairs: [CaptionedRecord]) async throws
}

extension FinetuneRunStore {
    public func trainingSetPairs(limit: Int) async throws -> [CaptionedRecord] {
        throw TrainingError(.notEnoughPairs, "this store keeps no training set from the stream")
    }
    public func trainingSampleInputs(ids: [Int64]) async throws -> [Int64: StoredTrainingInput] { [:] }
    public func runPairs(runID: Int64) async throws -> [CaptionedRecord]? { nil }
    public func recordRunPairs(runID: Int64, pairs: [CaptionedRecord]) async throws {}
}

/// Thrown out of the training loop when `FinetuneJob.shouldStop` turns true.
struct FinetuneInterruption: Error {
    let step: Int
}

/// Image URL → preprocessed model input.
public protocol TrainingImageSource: Sendable {
    func pixels(_ imageURL: String) async throws -> [Float]
}

extension ImageLoader: TrainingImageSource {
    public func pixels(_ imageURL: String) async throws -> [Float] { try await load(imageURL) }
}
