import Foundation
import Postgres

/// The rows of one batch write, one type per table.
public struct StoredRecord: Sendable, Equatable {
    public var id: String
    public var sourceTopic: String?
    public var sourcePartition: Int32?
    public var sourceOffset: Int64?
    public var imageURL: String
    public var caption: String?
    public var labelSet: String?
    /// JSON text of the record's `metadata`, if any.
    public var metadataJSON: String?

    public init(id: String, sourceTopic: String? = nil, sourcePartition: Int32? = nil, sourceOffset: Int64? = nil,
                imageURL: String, caption: String? = nil, labelSet: String? = nil, metadataJSON: String? = nil) {
        self.id = id
        self.sourceTopic = sourceTopic
        self.sourcePartition = sourcePartition
        self.sourceOffset = sourceOffset
        self.imageURL = imageURL
        self.caption = caption
        self.labelSet = labelSet
        self.metadataJSON = metadataJSON
    }

    var bindRow: [PostgresBind] {
        [id.postgresBind, sourceTopic.postgresBind, sourcePartition.postgresBind, sourceOffset.postgresBind,
         imageURL.postgresBind, caption.postgresBind, labelSet.postgresBind, metadataJSON.map(PostgresJSON.init).postgresBind]
    }
}

public struct StoredEmbedding: Sendable, Equatable {
    public var recordID: String
    public var modelVersionID: Int64
    public var image: [Float]
    public var text: [Float]?
    public var imageTextSimilarity: Float?

    public init(recordID: String, modelVersionID: Int64, image: [Float], text: [Float]? = nil, imageTextSimilarity: Float? = nil) {
        self.recordID = recordID
        self.modelVersionID = modelVersionID
        self.image = image
        self.text = text
        self.imageTextSimilarity = imageTextSimilarity
    }

    var bindRow: [PostgresBind] {
        [recordID.postgresBind, modelVersionID.postgresBind, image.postgresBind, text.postgresBind, imageTextSimilarity.postgresBind]
    }
}

public struct StoredTag: Sendable, Equatable {
    public var recordID: String
    public var modelVersionID: Int64
    public var labelSet: String
    public var label: String
    public var score: Float
    public var rank: Int32

    public init(recordID: String, modelVersionID: Int64, labelSet: String, label: String, score: Float, rank: Int32) {
        self.recordID = recordID
        self.modelVersionID = modelVersionID
        self.labelSet = labelSet
        self.label = label
        self.score = score
        self.rank = rank
    }

    var bindRow: [PostgresBind] {
        [recordID.postgresBind, modelVersionID.postgresBind, labelSet.postgresBind, label.postgresBind, score.postgresBind, rank.postgresBind]
    }
}

public struct FailedRecord: Sendable, Equatable {
    public var recordID: String?
    public var sourceTopic: String?
    public var sourcePartition: Int32?
    public var sourceOffset: Int64?
    /// `FailureClass.rawValue`, e.g. `record.invalid_json`, `fetch.timeout`, `image.corrupt`.
    public var errorClass: String
    public var errorMessage: String
    /// The message value exactly as consumed (may not be UTF-8).
    public var rawPayload: [UInt8]?
    /// The message key exactly as consumed, if it had one.
    public var rawKey: [UInt8]?

    public init(recordID: String? = nil, sourceTopic: String? = nil, sourcePartition: Int32? = nil, sourceOffset: Int64? = nil,
                errorClass: String, errorMessage: String, rawPayload: [UInt8]? = nil, rawKey: [UInt8]? = nil) {
        self.recordID = recordID
        self.sourceTopic = sourceTopic
        self.sourcePartition = sourcePartition
        self.sourceOffset = sourceOffset
        self.errorClass = errorClass
        self.errorMessage = errorMessage
        self.rawPayload = rawPayload
        self.rawKey = rawKey
    }

    /// A dead letter must always be storable: NUL (which PostgreSQL text cannot hold) in the
    /// descriptive fields becomes U+FFFD; the exact bytes are kept in `raw_payload`.
    var bindRow: [PostgresBind] {
        func storable(_ text: String?) -> String? { text.map { $0.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") } }
        return [storable(recordID).postgresBind, storable(sourceTopic).postgresBind, sourcePartition.postgresBind, sourceOffset.postgresBind,
                storable(errorClass)!.postgresBind, storable(errorMessage)!.postgresBind, rawPayload.map(PostgresBytes.init).postgresBind,
                rawKey.map(PostgresBytes.init).postgresBind]
    }
}

public struct ConsumerOffset: Sendable, Equatable {
    public var group: String
    public var topic: String
    public var partition: Int32
    public var nextOffset: Int64

    public init(group: String, topic: String, partition: Int32, nextOffset: Int64) {
        self.group = group
        self.topic = topic
        self.partition = partition
        self.nextOffset = nextOffset
    }

    var bindRow: [PostgresBind] {
        [group.postgresBind, topic.postgresBind, partition.postgresBind, nextOffset.postgresBind]
    }
}

public struct WriteBatch: Sendable {
    func keepingLastOccurrences() -> WriteBatch {
        func lastOccurrences<Row, Key: Hashable>(_ rows: [Row], key: (Row) -> Key) -> [Row] {
            var lastIndex: [Key: Int] = [:]
            for (index, row) in rows.enumerated() { lastIndex[key(row)] = index }
            guard lastIndex.count < rows.count else { return rows }
            return rows.enumerated().filter { lastIndex[key($0.element)] == $0.offset }.map(\.element)
        }
        struct EmbeddingKey: Hashable { var record: String; var model: Int64 }
        struct TagKey: Hashable { var record: String; var model: Int64; var labelSet: String; var label: String }
        return WriteBatch(
            records: lastOccurrences(records) { $0.id },
            embeddings: lastOccurrences(embeddings) { EmbeddingKey(record: $0.recordID, model: $0.modelVersionID) },
            tags: lastOccurrences(tags) { TagKey(record: $0.recordID, model: $0.modelVersionID, labelSet: $0.labelSet, label: $0.label) },
            failures: failures, offsets: offsets)
    }

    public var records: [StoredRecord]
    public var embeddings: [StoredEmbedding]
    public var tags: [StoredTag]
    public var failures: [FailedRecord]
    public var offsets: [ConsumerOffset]

    public init(records: [StoredRecord] = [], embeddings: [StoredEmbedding] = [], tags: [StoredTag] = [],
                failures: [FailedRecord] = [], offsets: [ConsumerOffset] = []) {
        self.records = records
        self.embeddings = embeddings
        self.tags = tags
        self.failures = failures
        self.offsets = offsets
    }
}
