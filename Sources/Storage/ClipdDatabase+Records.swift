import Foundation
import Postgres

/// Reading stored records back (the HTTP API's `/v1/records`, search results and status panel).
extension ClipdDatabase {
    public struct RecordDetail: Sendable, Equatable {
        public var id: String
        public var imageURL: String
        public var caption: String?
        public var labelSet: String?
        /// The record's `metadata` as JSON text.
        public var metadataJSON: String?
        public var sourceTopic: String?
        public var sourcePartition: Int32?
        public var sourceOffset: Int64?
        public var receivedAt: Date
        public var updatedAt: Date
    }

    /// One model version's embedding of a record.
    public struct RecordEmbedding: Sendable, Equatable {
        public var modelVersionID: Int64
        public var modelVersionName: String
        public var imageTextSimilarity: Float?
        public var createdAt: Date
    }

    public func record(id: String) async throws -> RecordDetail? {
        try await connection.query("""
            SELECT id, image_url, caption, label_set, metadata::text, source_topic, source_partition, source_offset,
                   received_at, updated_at
              FROM records WHERE id = \(id)
            """).first.map {
            RecordDetail(id: try $0.decode(String.self, at: 0), imageURL: try $0.decode(String.self, at: 1),
                         caption: try $0.decode(String?.self, at: 2), labelSet: try $0.decode(String?.self, at: 3),
                         metadataJSON: try $0.decode(String?.self, at: 4), sourceTopic: try $0.decode(String?.self, at: 5),
                         sourcePartition: try $0.decode(Int32?.self, at: 6), sourceOffset: try $0.decode(Int64?.self, at: 7),
                         receivedAt: try $0.decode(Date.self, at: 8), updatedAt: try $0.decode(Date.self, at: 9))
        }
    }

    /// Tags of `recordIDs` (all versions when `modelVersionID` is nil), by record, label set and rank.
    public func tags(recordIDs: [String], modelVersionID: Int64?) async throws -> [StoredTag] {
        guard !recordIDs.isEmpty else { return [] }
        return try await connection.query("""
            SELECT record_id, model_version_id, label_set, label, score, rank
              FROM tags
             WHERE record_id = ANY(\(recordIDs)) AND (\(modelVersionID)::bigint IS NULL OR model_version_id = \(modelVersionID))
             ORDER BY record_id, model_version_id DESC, label_set, rank
            """).map {
            StoredTag(recordID: try $0.decode(String.self, at: 0), modelVersionID: try $0.decode(Int64.self, at: 1),
                      labelSet: try $0.decode(String.self, at: 2), label: try $0.decode(String.self, at: 3),
                      score: try $0.decode(Float.self, at: 4), rank: try $0.decode(Int32.self, at: 5))
        }
    }

    /// The versions that embedded a record, newest first.
    public func embeddings(recordID: String) async throws -> [RecordEmbedding] {
        try await connection.query("""
            SELECT e.model_version_id, m.name, e.image_text_similarity, e.created_at
              FROM embeddings e JOIN model_versions m ON m.id = e.model_version_id
             WHERE e.record_id = \(recordID)
             ORDER BY e.model_version_id DESC
            """).map {
            RecordEmbedding(modelVersionID: try $0.decode(Int64.self, at: 0), modelVersionName: try $0.decode(String.self, at: 1),
                            imageTextSimilarity: try $0.decode(Float?.self, at: 2), createdAt: try $0.decode(Date.self, at: 3))
        }
    }

    /// Dead letters by failure class (replayed ones included), largest first.
    public func failureCounts() async throws -> [(errorClass: String, count: Int64)] {
        try await connection.query("SELECT error_class, count(*) FROM failed_records GROUP BY 1 ORDER BY 2 DESC, 1").map {
            (try $0.decode(String.self, at: 0), try $0.decode(Int64.self, at: 1))
        }
    }
}
