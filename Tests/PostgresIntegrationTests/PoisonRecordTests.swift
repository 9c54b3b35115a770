import CLIP
import Foundation
import Logging
@testable import Pipeline
import Postgres
import Storage
import TestSupport
import Testing

/// Messages handed to the pipeline once, as a topic would.
private final class ListSource: MessageSource, @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: AsyncThrowingStream<IncomingMessage, Error>.Continuation?
    private let pending: [IncomingMessage]
    init(_ messages: [IncomingMessage]) { pending = messages }
    func messages() -> AsyncThrowingStream<IncomingMessage, Error> {
        AsyncThrowingStream { c in
            lock.withLock { continuation = c }
            for m in pending { c.yield(m) }
        }
    }
    func pause(_ partitions: [TopicPartition]) {}
    func resume(_ partitions: [TopicPartition]) {}
    func commit(_ offsets: [TopicPartition: Int64]) {}
    func stop() { lock.withLock { continuation?.finish() } }
}

private final class ListDeadLetters: DeadLetterSink, @unchecked Sendable {
    private let lock = NSLock()
    private var items: [FailedMessage] = []
    var sent: [FailedMessage] { lock.withLock { items } }
    func send(_ failed: FailedMessage) async throws { lock.withLock { items.append(failed) } }
}

@Suite("Poison records against PostgreSQL", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL / CLIPD_TEST_PGVECTOR_DATABASE_URL (Deploy/dev/test.sh does)"))
struct PoisonRecordTests {
    static let config = CLIPConfig(embedDim: 8, imageSize: 32, patchSize: 16, vision: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32),
                                   contextLength: 16, vocabSize: 100, text: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32), activation: .gelu)

    @Test("records PostgreSQL refuses, in front of good ones, are isolated; every good one is written and the offsets reach the end",
          arguments: TestServer.allCases)
    func poisonInFront(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let modelID = try await database.registerModelVersion(name: "poison", architecture: "test", embeddingDimension: 8)
            // Refusals validation cannot foresee: a constraint on records (as an operator might
            // add) and one on failed_records that refuses a dead letter's own row.
            try await connection.query("ALTER TABLE records ADD CONSTRAINT clipd_test_poison CHECK (caption IS DISTINCT FROM 'poison')")
            try await connection.query("ALTER TABLE failed_records ADD CONSTRAINT clipd_test_refused_row CHECK (error_message NOT LIKE '%refuse_my_row%')")

            let partition = TopicPartition("records", 0)
            func message(_ offset: Int64, key: String? = nil, _ json: String) -> IncomingMessage {
                IncomingMessage(partition: partition, offset: offset, key: key.map { Array($0.utf8) }, value: Array(json.utf8))
            }
            var messages = [
                // A 5,000-byte key and no id: once a 5,000-byte primary key PostgreSQL refused
                // (54000), now refused at parse time.
                message(0, key: String(repeating: "k", count: 5_000), #"{"image_url":"http://x/0.jpg"}"#),
                message(1, #"{"id":"poison-1","image_url":"http://x/1.jpg","caption":"poison"}"#),
                message(2, #"{"id":"bad-2","image_url":"http://x/2.jpg","refuse_my_row":true}"#),
            ]
            for i in 3..<23 { messages.append(message(Int64(i), "{\"id\":\"good-\(i)\",\"image_url\":\"http://x/\(i).jpg\",\"caption\":\"a photo \(i)\"}")) }

            let dlq = ListDeadLetters()
            let tracker = OffsetTracker()
            let logger = Logger(label: "poison-test")
            let assignments = PartitionAssignments(store: database, group: "clipd", tracker: tracker, logger: logger)
            _ = await assignments.assigned([partition])
            let stages = StreamPipeline.Stages(
                parse: { try RecordParser().parse($0) },
                loadImage: { url in [Float](repeating: Float(url.count % 7) / 7, count: 3 * 32 * 32) },
                tokenize: { text in
                    var ids: [Int32] = [1] + text.unicodeScalars.prefix(10).map { Int32($0.value % 90) + 2 } + [99]
                    ids += [Int32](repeating: 0, count: 16 - ids.count)
                    return ids
                })
            let pipeline = StreamPipeline(
                config: .init(group: "clipd", batchSize: 8, batchLatencyMs: 50, maxInFlight: 64),
                source: ListSource(messages), store: database, deadLetters: dlq, stages: stages,
                model: .init(model: CLIPModel.random(config: Self.config, seed: 5), version: .init(id: modelID, name: "poison")),
                tracker: tracker, logger: logger)
            let running = Task { try await pipeline.run() }
            let reachedEnd = try await eventually(timeout: .seconds(120), interval: .milliseconds(50)) {
                try await database.consumerOffsets(group: "clipd", topic: "records")[0] == 23
            }
            pipeline.shutdown()
            try await running.value
            #expect(reachedEnd, "stored offsets reach the end of the partition")

            let ids = try await connection.query("SELECT id FROM records ORDER BY source_offset").map { try $0.decode(String.self, at: 0) }
            #expect(ids == (3..<23).map { "good-\($0)" }, "every good record is written, once")
            let embedded = try #require(try await connection.query("SELECT count(*) FROM embeddings").first).decode(Int.self, at: 0)
            #expect(embedded == 20)

            let failed = try await connection.query("""
                SELECT source_offset, error_class, record_id, error_message FROM failed_records ORDER BY source_offset
                """).map { (try $0.decode(Int.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(String?.self, at: 2), try $0.decode(String.self, at: 3)) }
            #expect(failed.map(\.0) == [0, 1, 2])
            #expect(failed.map(\.1) == ["record.invalid", "store.rejected", "record.invalid"])
            #expect(failed[0].3.contains("5000 characters"), "\(failed[0].3)")
            #expect(failed[1].2 == "poison-1", "the refused record keeps its id")
            #expect(failed[1].3.contains("clipd_test_poison") && failed[1].3.contains("23514"), "the server's message: \(failed[1].3)")
            #expect(failed[2].3.contains("refused"), "a dead letter whose row is refused is stored in a minimal form: \(failed[2].3)")
            #expect(Set(dlq.sent.map(\.message.offset)) == [0, 1, 2])
            #expect(dlq.sent.first { $0.message.offset == 1 }?.failure.failureClass == .store(.rejected))
            #expect(dlq.sent.first { $0.message.offset == 2 }?.recordID == "bad-2", "the record id of a record whose JSON parsed")
        }
    }
}
