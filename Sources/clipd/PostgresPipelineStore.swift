import Foundation
import Pipeline
import Postgres

/// The pipeline's `PipelineStore` on clipd's PostgreSQL tables: each batch (records, embeddings,
/// tags, dead letters, consumer offsets) is one transaction, written with binary COPY.
struct PostgresPipelineStore: PipelineStore {
    let database: ClipdDatabase

    func storedOffsets(group: String, partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for topic in Set(partitions.map(\.topic)) {
            let stored = try await database.consumerOffsets(group: group, topic: topic)
            for partition in partitions where partition.topic == topic {
                if let next = stored[Int(partition.partition)] { result[partition] = next }
            }
        }
        return result
    }

    func write(_ batch: BatchWrite) async throws {
        try await database.write(Self.rows(of: batch))
    }

    func labelSet(named name: String) async throws -> Pipeline.LabelSet? {
        guard let stored = try await database.labelSet(named: name) else { return nil }
        let labels = zip(stored.labels, stored.thresholds).map { Pipeline.LabelSet.Label($0, threshold: $1) }
        return Pipeline.LabelSet(name: stored.name, version: String(stored.version), labels: labels, templates: stored.templates)
    }

    static func rows(of batch: BatchWrite) -> WriteBatch {
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
                         errorClass: failed.failure.errorClass, errorMessage: failed.failure.message, rawPayload: failed.message.value)
        }
        rows.offsets = batch.offsets.map { partition, next in
            ConsumerOffset(group: batch.group, topic: partition.topic, partition: partition.partition, nextOffset: next)
        }
        return rows
    }
}
