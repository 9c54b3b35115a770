import Foundation
import ZeroShot

/// A message from the source topic, bytes copied out of the client library.
public struct IncomingMessage: Sendable {
    public let partition: TopicPartition
    public let offset: Int64
    public let key: [UInt8]?
    public let value: [UInt8]

    public init(partition: TopicPartition, offset: Int64, key: [UInt8]?, value: [UInt8]) {
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
    }
}

/// A validated record.
public struct ParsedRecord: Sendable, Equatable {
    public let id: String
    public let imageURL: String
    public let caption: String?
    public let labelSet: String?
    /// The `metadata` object as JSON text, if any.
    public let metadataJSON: String?

    public init(id: String, imageURL: String, caption: String?, labelSet: String?, metadataJSON: String?) {
        self.id = id
        self.imageURL = imageURL
        self.caption = caption
        self.labelSet = labelSet
        self.metadataJSON = metadataJSON
    }
}

/// A record that failed, on its way to the dead-letter topic and `failed_records`.
public struct FailedMessage: Sendable {
    public let message: IncomingMessage
    /// The record id when the record could be parsed that far: its JSON `id` (or, without
    /// one, the message key) whenever that is a valid id, even if the record was refused.
    public let recordID: String?
    public let failure: PipelineFailure

    public init(message: IncomingMessage, recordID: String?, failure: PipelineFailure) {
        self.message = message
        self.recordID = recordID
        self.failure = failure
    }
}

/// A record with its embeddings and tags, ready to be stored.
public struct EncodedRecord: Sendable {
    public let message: IncomingMessage
    public let record: ParsedRecord
    public let imageEmbedding: [Float]
    public let textEmbedding: [Float]?
    /// Cosine similarity of image and caption.
    public let similarity: Float?
    public let labelSet: String?
    public let tags: [Tag]
}

/// One transaction's worth of results: rows and the consumer offsets they make safe to store.
public struct BatchWrite: Sendable {
    public let group: String
    public let modelVersion: ModelVersionRef
    public let records: [EncodedRecord]
    public let failures: [FailedMessage]
    /// Next offset per partition; every record below it is written or recorded as failed.
    /// Empty for the partial writes that isolate records the database refuses.
    public let offsets: [TopicPartition: Int64]

    public init(group: String, modelVersion: ModelVersionRef, records: [EncodedRecord], failures: [FailedMessage],
                offsets: [TopicPartition: Int64]) {
        self.group = group
        self.modelVersion = modelVersion
        self.records = records
        self.failures = failures
        self.offsets = offsets
    }
}

/// Which model produced a row.
public struct ModelVersionRef: Sendable, Equatable, Hashable {
    public let id: Int64
    public let name: String
    public init(id: Int64, name: String) {
        self.id = id
        self.name = name
    }
}

/// The topic consumer as the pipeline needs it.
public protocol MessageSource: Sendable {
    /// Messages in partition order; the stream finishes after `stop()`.
    func messages() -> AsyncThrowingStream<IncomingMessage, Error>
    func pause(_ partitions: [TopicPartition])
    func resume(_ partitions: [TopicPartition])
    /// Best-effort commit to the broker (for lag monitoring; Postgres holds the truth).
    func commit(_ offsets: [TopicPartition: Int64])
    func stop()
}

/// What an error from `PipelineStore.write` means for the rows that were being written.
public enum StoreErrorKind: Sendable, Equatable {
    /// The same write can succeed later: the connection was lost, the server is shutting down,
    /// is out of connections or read-only, a deadlock or serialization failure, or a problem no
    /// record causes (a missing table, a revoked privilege) that an operator must fix. The
    /// pipeline retries the write with backoff.
    case retriable
    /// The database refuses the data itself (a data exception, a constraint, a size limit):
    /// retrying the same rows cannot succeed. The pipeline splits the batch to find the records
    /// refused, stores them as `store.rejected` failures and writes the rest.
    case permanent
}

/// The database as the pipeline needs it.
public protocol PipelineStore: Sendable {
    /// Stored next offsets for these partitions (absent: none stored).
    func storedOffsets(group: String, partitions: [TopicPartition]) async throws -> [TopicPartition: Int64]
    /// Writes rows and offsets in one transaction; rows are upserted by record id, so writing
    /// the same rows again changes nothing.
    func write(_ batch: BatchWrite) async throws
    /// Whether an error thrown by `write` can go away by itself or refuses the rows written.
    func classify(_ error: Error) -> StoreErrorKind
    func labelSet(named name: String) async throws -> LabelSet?
}

extension PipelineStore {
    /// A store that does not classify its errors has every error retried.
    public func classify(_ error: Error) -> StoreErrorKind { .retriable }
}

/// The dead-letter topic.
public protocol DeadLetterSink: Sendable {
    /// Publishes the failed message with its error class; returns once delivered.
    func send(_ failed: FailedMessage) async throws
}
