import Foundation
import Pipeline
import Postgres

/// Batch writes (records, embeddings, tags, dead letters and the consumer offsets they cover,
/// in one transaction, so a crash never leaves offsets ahead of the rows) and their reads.
extension ClipdDatabase {
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
    // A replayed row whose vectors are unchanged is left alone: updating it would add the row to
    // the version's HNSW graph once more (a new row version), which costs as much as a new row.
    private static let embeddingUpsert: PostgresQuery = """
        ON CONFLICT (record_id, model_version_id) DO UPDATE SET image_embedding = EXCLUDED.image_embedding,
            text_embedding = EXCLUDED.text_embedding, image_text_similarity = EXCLUDED.image_text_similarity, created_at = now()
        WHERE (embeddings.image_embedding, embeddings.text_embedding, embeddings.image_text_similarity)
              IS DISTINCT FROM (EXCLUDED.image_embedding, EXCLUDED.text_embedding, EXCLUDED.image_text_similarity)
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
            try await transaction.query("""
                INSERT INTO records (\(identifiers: Self.recordColumns))
                SELECT DISTINCT ON (id) \(identifiers: Self.recordColumns) FROM clipd_staging_records
                \(fragment: Self.recordUpsert)
                """)
        }
        if !batch.embeddings.isEmpty {
            // Staged as real[] whatever the table stores; INSERT … SELECT casts to vector on assignment.
            try await transaction.query("""
                CREATE TEMP TABLE IF NOT EXISTS clipd_staging_embeddings (
                    record_id text, model_version_id bigint, image_embedding real[], text_embedding real[], image_text_similarity real
                ) ON COMMIT DELETE ROWS
                """)
            try await transaction.copy(into: "clipd_staging_embeddings", columns: Self.embeddingColumns, rows: batch.embeddings.map(\.bindRow), format: .binary)
            try await transaction.query("""
                INSERT INTO embeddings (\(identifiers: Self.embeddingColumns))
                SELECT DISTINCT ON (record_id, model_version_id) \(identifiers: Self.embeddingColumns) FROM clipd_staging_embeddings
                \(fragment: Self.embeddingUpsert)
                """)
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
        let columns = ["record_id", "source_topic", "source_partition", "source_offset", "error_class", "error_message", "raw_payload", "raw_key"]
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
}

/// The pipeline's store: each batch (records, embeddings, tags, dead letters, consumer offsets)
/// is one transaction, written with binary COPY.
extension ClipdDatabase: PipelineStore {
    public func storedOffsets(group: String, partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for topic in Set(partitions.map(\.topic)) {
            let stored = try await consumerOffsets(group: group, topic: topic)
            for partition in partitions where partition.topic == topic {
                if let next = stored[Int(partition.partition)] { result[partition] = next }
            }
        }
        return result
    }

    public func write(_ batch: BatchWrite) async throws {
        try await write(Self.rows(of: batch))
    }

    /// Permanent only when PostgreSQL refuses the values written (`PostgresError.isDataRejection`:
    /// data exceptions, constraints, size limits, NUL): the pipeline then isolates the records
    /// refused. Everything else, including errors no record causes (a lost connection, a revoked
    /// privilege, a missing table), is retried, so good records are never dead-lettered for it.
    public func classify(_ error: Error) -> StoreErrorKind {
        guard let error = error as? PostgresError else { return .retriable }
        return error.isDataRejection ? .permanent : .retriable
    }

    /// The rows a pipeline batch stores.
    public static func rows(of batch: BatchWrite) -> WriteBatch {
        let model = batch.modelVersion.id
        var rows = WriteBatch()
        for encoded in batch.records {
            let record = encoded.record
            rows.records.append(StoredRecord(
                id: record.id, sourceTopic: encoded.message.partition.topic, sourcePartition: encoded.message.partition.partition,
                sourceOffset: encoded.message.offset, imageURL: record.imageURL, caption: record.caption,
                labelSet: encoded.labelSet ?? record.labelSet, metadataJSON: record.metadataJSON))
            rows.embeddings.append(StoredEmbedding(recordID: record.id, modelVersionID: model, image: encoded.imageEmbedding,
                                                   text: encoded.textEmbedding, imageTextSimilarity: encoded.similarity))
            if let labelSet = encoded.labelSet ?? record.labelSet {
                rows.tags += encoded.tags.map {
                    StoredTag(recordID: record.id, modelVersionID: model, labelSet: labelSet, label: $0.label, score: $0.score, rank: Int32($0.rank))
                }
            }
        }
        rows.failures = batch.failures.map { failed in
            FailedRecord(recordID: failed.recordID, sourceTopic: failed.message.partition.topic,
                         sourcePartition: failed.message.partition.partition, sourceOffset: failed.message.offset,
                         errorClass: failed.failure.failureClass.rawValue, errorMessage: failed.failure.message, rawPayload: failed.message.value,
                         rawKey: failed.message.key)
        }
        rows.offsets = batch.offsets.map { partition, next in
            ConsumerOffset(group: batch.group, topic: partition.topic, partition: partition.partition, nextOffset: next)
        }
        return rows
    }
}
