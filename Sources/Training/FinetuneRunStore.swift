import CLIP
import Foundation
import Pipeline
import ZeroShot

/// A stored (image URL, caption) pair to train or evaluate on.
public struct CaptionedRecord: Sendable, Equatable {
    public let id: String
    public let imageURL: String
    public let caption: String
    public init(id: String, imageURL: String, caption: String) {
        self.id = id
        self.imageURL = imageURL
        self.caption = caption
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
}

/// Image URL → preprocessed model input.
public protocol TrainingImageSource: Sendable {
    func pixels(_ imageURL: String) async throws -> [Float]
}

extension ImageLoader: TrainingImageSource {
    public func pixels(_ imageURL: String) async throws -> [Float] { try await load(imageURL) }
}
