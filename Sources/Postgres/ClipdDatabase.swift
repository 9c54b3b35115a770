import Foundation

/// clipd's tables (Schemas/postgres) as typed operations. Everything one batch produces —
/// records, embeddings, tags, dead letters and the consumer offsets they cover — is written in
/// one transaction, so a crash never leaves offsets ahead of the rows.
public struct ClipdDatabase: Sendable {
    public let connection: PostgresConnection

    public init(connection: PostgresConnection) {
        self.connection = connection
    }

    // MARK: batch writes

    public enum WriteMethod: String, Sendable, CaseIterable {
        /// `INSERT … VALUES (…),(…) ON CONFLICT DO UPDATE` in statements of bounded size.
        case multiRowInsert = "insert"
        /// Binary `COPY` into session temp tables, then one `INSERT … SELECT … ON CONFLICT` per table.
        case copyThroughStaging = "copy"
    }

    /// Writes a batch in one transaction; re-writing the same batch is idempotent.
    public func write(_ batch: WriteBatch, method: WriteMethod = .copyThroughStaging) async throws {
        // A record repeated within one batch (the same id republished) would make one upsert touch
        // a row twice, which PostgreSQL rejects: the last occurrence wins.
        let batch = batch.keepingLastOccurrences()
        try await connection.withTransaction { transaction in
            switch method {
            case .multiRowInsert: try await writeWithInserts(batch, in: transaction)
            case .copyThroughStaging: try await writeWithCopy(batch, in: transaction)
            }
            try await replaceTags(batch.tags, method: method, in: transaction)
            try await writeFailures(batch.failures, in: transaction)
            try await writeOffsets(batch.offsets, in: transaction)
        }
    }

    private static let recordColumns = ["id", "source_topic", "source_partition", "source_offset", "image_url", "caption", "label_set", "metadata"]
    private static let recordUpsert: PostgresQuery = """
        ON CONFLICT (id) DO UPDATE SET source_topic = EXCLUDED.source_topic, source_partition = EXCLUDED.source_partition,
            source_offset = EXCLUDED.source_offset, image_url = EXCLUDED.image_url, caption = EXCLUDED.caption,
            label_set = EXCLUDED.label_set, metadata = EXCLUDED.metadata, updated_at = now()
        """
    private static let embeddingColumns = ["record_id", "model_version_id", "image_embedding", "text_embedding", "image_text_similarity"]
    private static let embeddingUpsert: PostgresQuery = """
        ON CONFLICT (record_id, model_version_id) DO UPDATE SET image_embedding = EXCLUDED.image_embedding,
            text_embedding = EXCLUDED.text_embedding, image_text_similarity = EXCLUDED.image_text_similarity, created_at = now()
        """

    private func writeWithInserts(_ batch: WriteBatch, in transaction: PostgresTransaction) async throws {
        for chunk in Self.chunks(batch.records.map(\.bindRow), columns: Self.recordColumns.count) {
            try await transaction.execute(PostgresQuery.multiRowInsert(into: "records", columns: Self.recordColumns, rows: chunk, suffix: Self.recordUpsert))
        }
        for chunk in Self.chunks(batch.embeddings.map(\.bindRow), columns: Self.embeddingColumns.count) {
            try await transaction.execute(PostgresQuery.multiRowInsert(into: "embeddings", columns: Self.embeddingColumns, rows: chunk, suffix: Self.embeddingUpsert))
        }
    }

    private func writeWithCopy(_ batch: WriteBatch, in transaction: PostgresTransaction) async throws {
        if !batch.records.isEmpty {
            try await transaction.query("""
                CREATE TEMP TABLE IF NOT EXISTS clipd_staging_records (LIKE records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
                """)
            try await transaction.copy(into: "clipd_staging_records", columns: Self.recordColumns, rows: batch.records.map(\.bindRow), format: .binary)
            try await transaction.query(PostgresQuery(assembledSQL: """
                INSERT INTO records (\(Self.recordColumns.joined(separator: ", ")))
                SELECT DISTINCT ON (id) \(Self.recordColumns.joined(separator: ", ")) FROM clipd_staging_records
                \(Self.recordUpsert.sql)
                """, binds: []))
        }
        if !batch.embeddings.isEmpty {
            // Staged as real[] whatever the table stores; INSERT … SELECT casts to vector on assignment.
            try await transaction.query("""
                CREATE TEMP TABLE IF NOT EXISTS clipd_staging_embeddings (
                    record_id text, model_version_id bigint, image_embedding real[], text_embedding real[], image_text_similarity real
                ) ON COMMIT DELETE ROWS
                """)
            try await transaction.copy(into: "clipd_staging_embeddings", columns: Self.embeddingColumns, rows: batch.embeddings.map(\.bindRow), format: .binary)
            try await transaction.query(PostgresQuery(assembledSQL: """
                INSERT INTO embeddings (\(Self.embeddingColumns.joined(separator: ", ")))
                SELECT DISTINCT ON (record_id, model_version_id) \(Self.embeddingColumns.joined(separator: ", ")) FROM clipd_staging_embeddings
                \(Self.embeddingUpsert.sql)
                """, binds: []))
        }
    }

    /// A record's tags for one model version and label set are replaced as a whole.
    private func replaceTags(_ tags: [StoredTag], method: WriteMethod, in transaction: PostgresTransaction) async throws {
        guard !tags.isEmpty else { return }
        var keys: [String: (String, Int, String)] = [:]
        for tag in tags { keys["\(tag.recordID)\u{1}\(tag.modelVersionID)\u{1}\(tag.labelSet)"] = (tag.recordID, Int(tag.modelVersionID), tag.labelSet) }
        let keyList = Array(keys.values)
        try await transaction.execute("""
            DELETE FROM tags t USING unnest(\(keyList.map(\.0)), \(keyList.map(\.1)), \(keyList.map(\.2))) AS k(record_id, model_version_id, label_set)
             WHERE t.record_id = k.record_id AND t.model_version_id = k.model_version_id AND t.label_set = k.label_set
            """)
        let columns = ["record_id", "model_version_id", "label_set", "label", "score", "rank"]
        let rows = tags.map(\.bindRow)
        switch method {
        case .multiRowInsert:
            for chunk in Self.chunks(rows, columns: columns.count) {
                try await transaction.execute(PostgresQuery.multiRowInsert(into: "tags", columns: columns, rows: chunk, suffix: """
                    ON CONFLICT (record_id, model_version_id, label_set, label) DO UPDATE SET score = EXCLUDED.score, rank = EXCLUDED.rank
                    """))
            }
        case .copyThroughStaging:
            try await transaction.copy(into: "tags", columns: columns, rows: rows, format: .binary)
        }
    }

    private func writeFailures(_ failures: [FailedRecord], in transaction: PostgresTransaction) async throws {
        let columns = ["record_id", "source_topic", "source_partition", "source_offset", "error_class", "error_message", "raw_payload"]
        for chunk in Self.chunks(failures.map(\.bindRow), columns: columns.count) {
            try await transaction.execute(PostgresQuery.multiRowInsert(into: "failed_records", columns: columns, rows: chunk, suffix: """
                ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING
                """))
        }
    }

    private func writeOffsets(_ offsets: [ConsumerOffset], in transaction: PostgresTransaction) async throws {
        let columns = ["consumer_group", "topic", "partition", "next_offset"]
        var latest: [String: ConsumerOffset] = [:]
        for offset in offsets { latest["\(offset.group)\u{1}\(offset.topic)\u{1}\(offset.partition)"] = offset }
        for chunk in Self.chunks(latest.values.map(\.bindRow), columns: columns.count) {
            try await transaction.execute(PostgresQuery.multiRowInsert(into: "consumer_offsets", columns: columns, rows: chunk, suffix: """
                ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
                """))
        }
    }

    /// Splits rows so that no statement exceeds the protocol's parameter limit.
    static func chunks(_ rows: [[PostgresBind]], columns: Int) -> [[[PostgresBind]]] {
        let perStatement = max(1, min(1000, PostgresQuery.maximumBindCount / max(columns, 1)))
        return stride(from: 0, to: rows.count, by: perStatement).map { Array(rows[$0..<min($0 + perStatement, rows.count)]) }
    }

    // MARK: reads

    /// `pgvector` or `array`: how this database stores vectors.
    public func vectorBackend() async throws -> String {
        try await connection.query("SELECT clipd_vector_backend()").first!.decode(String.self, at: 0)
    }

    /// Consumer offsets stored for a group and topic: partition → next offset.
    public func consumerOffsets(group: String, topic: String) async throws -> [Int: Int64] {
        var offsets: [Int: Int64] = [:]
        for row in try await connection.query("""
            SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = \(group) AND topic = \(topic)
            """) {
            offsets[try row.decode(Int.self, at: 0)] = try row.decode(Int64.self, at: 1)
        }
        return offsets
    }

    public func embedding(recordID: String, modelVersionID: Int64) async throws -> StoredEmbedding? {
        guard let row = try await connection.query("""
            SELECT image_embedding::real[], text_embedding::real[], image_text_similarity
              FROM embeddings WHERE record_id = \(recordID) AND model_version_id = \(modelVersionID)
            """).first else { return nil }
        return StoredEmbedding(recordID: recordID, modelVersionID: modelVersionID,
                               image: try row.decode([Float].self, at: 0), text: try row.decode([Float]?.self, at: 1),
                               imageTextSimilarity: try row.decode(Float?.self, at: 2))
    }

    public struct Neighbour: Sendable, Equatable {
        public var recordID: String
        /// Cosine distance, 1 − cosine similarity.
        public var distance: Double
    }

    /// The `limit` records whose image (or caption) embedding is nearest to `query`.
    public func nearest(to query: [Float], modelVersionID: Int64, limit: Int, against: EmbeddingKind = .image) async throws -> [Neighbour] {
        try await connection.query("""
            SELECT record_id, distance FROM clipd_nearest(\(query), \(modelVersionID), \(Int32(limit)), \(against.rawValue))
            """).map { Neighbour(recordID: try $0.decode(String.self, at: 0), distance: try $0.decode(Double.self, at: 1)) }
    }

    public enum EmbeddingKind: String, Sendable { case image, text }

    // MARK: model versions

    /// Inserts a model version (its HNSW indexes are created with it when pgvector is used).
    public func registerModelVersion(name: String, architecture: String, embeddingDimension: Int, parentID: Int64? = nil,
                                     checkpointURI: String? = nil, metricsJSON: String = "{}") async throws -> Int64 {
        try await connection.query("""
            INSERT INTO model_versions (name, architecture, embedding_dim, parent_id, checkpoint_uri, metrics)
            VALUES (\(name), \(architecture), \(Int32(embeddingDimension)), \(parentID), \(checkpointURI), \(PostgresJSON(metricsJSON)))
            RETURNING id
            """).first!.decode(Int64.self, at: 0)
    }

    public func activateModelVersion(id: Int64) async throws {
        try await connection.query("SELECT clipd_activate_model_version(\(id))")
    }

    public struct ModelVersion: Sendable, Equatable {
        public var id: Int64
        public var name: String
        public var architecture: String
        public var embeddingDimension: Int
        public var checkpointURI: String?
        public var parentID: Int64?
    }

    /// The active model version, if one is active.
    public func activeModelVersion() async throws -> ModelVersion? {
        guard let row = try await connection.query("""
            SELECT id, name, architecture, embedding_dim, checkpoint_uri, parent_id FROM model_versions WHERE is_active
            """).first else { return nil }
        return ModelVersion(id: try row.decode(Int64.self, at: 0), name: try row.decode(String.self, at: 1),
                            architecture: try row.decode(String.self, at: 2), embeddingDimension: try row.decode(Int.self, at: 3),
                            checkpointURI: try row.decode(String?.self, at: 4), parentID: try row.decode(Int64?.self, at: 5))
    }

    // MARK: fine-tune runs

    public struct FinetuneRun: Sendable, Equatable {
        public var id: Int64
        public var baseModelVersionID: Int64?
        /// The run's parameters as JSON text.
        public var parametersJSON: String
    }

    /// Schedules a run; listeners on `clipd_finetune_runs` are notified with its id.
    public func scheduleFinetuneRun(baseModelVersionID: Int64?, parametersJSON: String = "{}") async throws -> Int64 {
        try await connection.query("""
            INSERT INTO finetune_runs (base_model_version_id, parameters) VALUES (\(baseModelVersionID), \(PostgresJSON(parametersJSON))) RETURNING id
            """).first!.decode(Int64.self, at: 0)
    }

    /// Marks the oldest scheduled run as running by `worker` and returns it; concurrent workers
    /// never receive the same run.
    public func claimFinetuneRun(worker: String) async throws -> FinetuneRun? {
        guard let row = try await connection.query("""
            SELECT id, base_model_version_id, parameters FROM clipd_claim_finetune_run(\(worker))
            """).first else { return nil }
        return FinetuneRun(id: try row.decode(Int64.self, at: 0), baseModelVersionID: try row.decode(Int64?.self, at: 1),
                           parametersJSON: try row.decode(String.self, at: 2))
    }

    /// Records the outcome of a claimed run: `finished` with results, or `failed` with an error.
    public func finishFinetuneRun(id: Int64, resultModelVersionID: Int64?, resultsJSON: String?, error: String?) async throws {
        let status = error == nil ? "finished" : "failed"
        try await connection.query("""
            UPDATE finetune_runs SET status = \(status), finished_at = now(), result_model_version_id = \(resultModelVersionID),
                   results = \(resultsJSON.map(PostgresJSON.init)), error = \(error)
             WHERE id = \(id)
            """)
    }

    // MARK: label sets

    /// Creates or replaces a label set with its templates and labels (in this order), atomically.
    public func putLabelSet(name: String, templates: [String], labels: [String], description: String? = nil) async throws {
        guard !name.isEmpty else { throw PostgresError(kind: .invalidInput, message: "label set name is empty") }
        guard !labels.isEmpty else { throw PostgresError(kind: .invalidInput, message: "label set \(name) needs at least one label") }
        if let duplicate = Dictionary(grouping: labels, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw PostgresError(kind: .invalidInput, message: "label \"\(duplicate)\" appears twice in label set \(name)")
        }
        try await connection.withTransaction { transaction in
            try await transaction.execute("""
                INSERT INTO label_sets (name, templates, description) VALUES (\(name), \(templates), \(description))
                ON CONFLICT (name) DO UPDATE SET templates = EXCLUDED.templates, description = EXCLUDED.description
                """)
            try await transaction.execute("DELETE FROM labels WHERE label_set = \(name)")
            try await transaction.execute("""
                INSERT INTO labels (label_set, label, position)
                SELECT \(name), label, position::integer FROM unnest(\(labels)) WITH ORDINALITY AS l(label, position)
                """)
        }
    }

    public struct LabelSet: Sendable, Equatable {
        public var name: String
        public var templates: [String]
        public var labels: [String]
        /// Per label (same order): minimum probability for its tag to be written, if set.
        public var thresholds: [Float?]
        public var version: Int
    }

    public func labelSet(named name: String) async throws -> LabelSet? {
        guard let row = try await connection.query("""
            SELECT s.templates, s.version,
                   coalesce((SELECT array_agg(l.label ORDER BY l.position) FROM labels l WHERE l.label_set = s.name), '{}'),
                   coalesce((SELECT array_agg(coalesce(l.threshold::text, '') ORDER BY l.position) FROM labels l WHERE l.label_set = s.name), '{}')
              FROM label_sets s WHERE s.name = \(name)
            """).first else { return nil }
        let thresholds = try row.decode([String].self, at: 3).map { $0.isEmpty ? nil : Float($0) }
        return LabelSet(name: name, templates: try row.decode([String].self, at: 0), labels: try row.decode([String].self, at: 2),
                        thresholds: thresholds, version: try row.decode(Int.self, at: 1))
    }
}

// MARK: - rows

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
    /// Machine-readable class, e.g. `invalid_json`, `fetch_failed`, `undecodable_image`.
    public var errorClass: String
    public var errorMessage: String
    /// The message value exactly as consumed (may not be UTF-8).
    public var rawPayload: [UInt8]?

    public init(recordID: String? = nil, sourceTopic: String? = nil, sourcePartition: Int32? = nil, sourceOffset: Int64? = nil,
                errorClass: String, errorMessage: String, rawPayload: [UInt8]? = nil) {
        self.recordID = recordID
        self.sourceTopic = sourceTopic
        self.sourcePartition = sourcePartition
        self.sourceOffset = sourceOffset
        self.errorClass = errorClass
        self.errorMessage = errorMessage
        self.rawPayload = rawPayload
    }

    /// A dead letter must always be storable: NUL (which PostgreSQL text cannot hold) in the
    /// descriptive fields becomes U+FFFD; the exact bytes are kept in `raw_payload`.
    var bindRow: [PostgresBind] {
        func storable(_ text: String?) -> String? { text.map { $0.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") } }
        return [storable(recordID).postgresBind, storable(sourceTopic).postgresBind, sourcePartition.postgresBind, sourceOffset.postgresBind,
                storable(errorClass)!.postgresBind, storable(errorMessage)!.postgresBind, rawPayload.map(PostgresBytes.init).postgresBind]
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
