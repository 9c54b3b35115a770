import Foundation
@testable import Pipeline
import Postgres
import Storage
import TestSupport
import Testing
@testable import ZeroShot

@Suite("PipelineStore on PostgreSQL", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL / CLIPD_TEST_PGVECTOR_DATABASE_URL (Deploy/dev/test.sh does)"))
struct PipelineStoreTests {
    @Test("the pipeline's batches, offsets and label sets round-trip through PostgreSQL", arguments: TestServer.allCases)
    func roundTrip(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let store = database
            let model = try await database.registerModelVersion(name: "pipeline", architecture: "ViT-B/32", embeddingDimension: 4)
            try await database.putLabelSet(name: "animals", templates: ["a photo of a {}."], labels: ["cat", "dog"])
            try await connection.query("UPDATE labels SET threshold = 0.3 WHERE label = 'dog'")

            let labelSet = try #require(try await store.labelSet(named: "animals"))
            #expect(labelSet.labels == [.init("cat"), .init("dog", threshold: 0.3)])
            #expect(labelSet.templates == ["a photo of a {}."])
            #expect(try await store.labelSet(named: "missing") == nil)

            let partition = TopicPartition("images", 2)
            func message(_ offset: Int64, _ value: String) -> IncomingMessage {
                IncomingMessage(partition: partition, offset: offset, key: nil, value: Array(value.utf8))
            }
            let record = ParsedRecord(id: "sku-1", imageURL: "file:///a.jpg", caption: "a cat", labelSet: "animals", metadataJSON: "{\"a\":1}")
            let encoded = EncodedRecord(message: message(10, "{}"), record: record, imageEmbedding: [1, 0, 0, 0], textEmbedding: [0, 1, 0, 0],
                                        similarity: 0.0, labelSet: "animals",
                                        tags: [Tag(label: "cat", score: 0.9, rank: 1), Tag(label: "dog", score: 0.1, rank: 2)])
            let failed = FailedMessage(message: message(11, "not json\u{1}"), recordID: nil, failure: PipelineFailure(.record(.invalidJSON), "unexpected token"))
            let batch = BatchWrite(group: "clipd", modelVersion: ModelVersionRef(id: model, name: "pipeline"),
                                   records: [encoded], failures: [failed], offsets: [partition: 12])
            try await store.write(batch)
            try await store.write(batch)  // a replay is idempotent

            #expect(try await store.storedOffsets(group: "clipd", partitions: [partition, TopicPartition("images", 3)]) == [partition: 12])
            let tags = try await connection.query("SELECT label, score, rank FROM tags WHERE record_id = 'sku-1' ORDER BY rank")
            #expect(try tags.map { try $0.decode(String.self, at: 0) } == ["cat", "dog"])
            let stored = try #require(try await database.embedding(recordID: "sku-1", modelVersionID: model))
            #expect(stored.image == [1, 0, 0, 0] && stored.text == [0, 1, 0, 0])
            let source = try #require(try await connection.query("SELECT source_topic, source_partition, source_offset FROM records").first)
            #expect(try source.decode(String.self, at: 0) == "images")
            #expect(try source.decode(Int.self, at: 1) == 2)
            #expect(try source.decode(Int.self, at: 2) == 10)
            let dead = try #require(try await connection.query("SELECT error_class, raw_payload, source_offset FROM failed_records").first)
            #expect(try dead.decode(String.self, at: 0) == "record.invalid_json")
            #expect(try dead.decode(PostgresBytes.self, at: 1).bytes == Array("not json\u{1}".utf8))
            #expect(try dead.decode(Int.self, at: 2) == 11)
        }
    }
}
