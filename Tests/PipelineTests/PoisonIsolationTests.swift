import Foundation
import XCTest
@testable import Pipeline

/// A record the database refuses permanently never stalls the stream: the write path bisects
/// the batch, stores the refused records as `store.rejected` failures and writes the rest.
final class PoisonIsolationTests: XCTestCase {
    let tp0 = TopicPartition("records", 0), tp1 = TopicPartition("records", 1)

    func good(_ i: Int, _ tp: TopicPartition, offset: Int64) -> IncomingMessage {
        IncomingMessage(partition: tp, offset: offset, key: nil,
                        value: Array("{\"id\":\"r\(i)\",\"image_url\":\"http://x/\(i).jpg\",\"caption\":\"caption \(i)\"}".utf8))
    }

    /// Runs until the stored offsets reach `end` (or 30 s pass), then drains.
    func run(_ messages: [IncomingMessage], _ store: FakeStore, dlq: FakeDLQ = FakeDLQ(), end: [TopicPartition: Int64],
             batchSize: Int = 8, batchLatencyMs: Int = 20) async throws {
        let source = FakeSource(messages)
        let (pipeline, assignments) = StreamPipelineTests.makePipeline(source, store, dlq) {
            $0.batchSize = batchSize
            $0.batchLatencyMs = batchLatencyMs
            $0.maxInFlight = 64
        }
        _ = await assignments.assigned(Array(end.keys))
        let running = Task { try await pipeline.run() }
        let deadline = ContinuousClock.now + .seconds(30)
        while store.storedOffsetsNow != end && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        pipeline.shutdown()
        try await running.value
    }

    /// Offsets stored with each batch never run ahead of the records written or failed.
    func assertOffsetsNeverRunAhead(_ store: FakeStore, file: StaticString = #filePath, line: UInt = #line) {
        var done = Set<String>()
        for batch in store.batches {
            for r in batch.records { done.insert("\(r.message.partition)/\(r.message.offset)") }
            for f in batch.failures { done.insert("\(f.message.partition)/\(f.message.offset)") }
            for (tp, next) in batch.offsets {
                for o in 0..<next where !done.contains("\(tp)/\(o)") {
                    XCTFail("offset \(next) stored before \(tp)/\(o) was written", file: file, line: line)
                }
            }
        }
    }

    func testBisectionFindsExactlyTheRefusedRecordsAndWritesEveryOtherOnce() async throws {
        let messages = (0..<100).map { good($0, $0 % 2 == 0 ? tp0 : tp1, offset: Int64($0 / 2)) }
        let store = FakeStore(), dlq = FakeDLQ()
        let poison: Set<String> = ["r0", "r3", "r50", "r51", "r99"]
        store.refusedIDs = poison
        try await run(messages, store, dlq: dlq, end: [tp0: 50, tp1: 50])

        let written = store.recordIDs
        XCTAssertEqual(written.count, 95, "every good record written once")
        XCTAssertEqual(Set(written), Set((0..<100).map { "r\($0)" }).subtracting(poison))
        let failures = store.failures
        XCTAssertEqual(failures.count, 5)
        XCTAssertEqual(Set(failures.compactMap(\.recordID)), poison, "a refused record keeps its id")
        XCTAssertEqual(Set(failures.map(\.failure.failureClass)), [.store(.rejected)])
        for f in failures { XCTAssertTrue(f.failure.message.contains("value too long for record"), f.failure.message) }
        XCTAssertEqual(Set(failures.map { "\($0.message.partition)/\($0.message.offset)" }),
                       ["records/0/0", "records/1/1", "records/0/25", "records/1/25", "records/1/49"])
        XCTAssertEqual(Set(dlq.sent.compactMap(\.recordID)), poison, "refused records go to the dead-letter topic")
        XCTAssertEqual(store.offsets, [tp0: 50, tp1: 50], "offsets advance past isolated records")
        assertOffsetsNeverRunAhead(store)
    }

    func testBisectionCostsLogarithmicallyManyWritesPerPoisonRecord() async throws {
        let store = FakeStore()
        store.refusedIDs = ["r5"]
        // One batch of 32 holding one poison record: 1 refused write, then ≤ 2 per halving
        // level (log2 32 = 5), then the failure row with the offsets.
        try await run((0..<32).map { good($0, tp0, offset: Int64($0)) }, store, end: [tp0: 32], batchSize: 32, batchLatencyMs: 10_000)
        XCTAssertEqual(store.recordIDs.count, 31)
        XCTAssertEqual(store.failures.map(\.recordID), ["r5"])
        XCTAssertLessThanOrEqual(store.attemptCount, 1 + 2 * 5 + 1, "writes: \(store.attemptCount)")
    }

    func testRetriableErrorsAreStillRetriedDuringIsolation() async throws {
        let store = FakeStore()
        store.refusedIDs = ["r7", "r20"]
        store.transientEvery = 3  // every third write attempt: connection lost
        try await run((0..<40).map { good($0, tp0, offset: Int64($0)) }, store, end: [tp0: 40])
        XCTAssertEqual(store.recordIDs.count, 38)
        XCTAssertEqual(Set(store.recordIDs).count, 38, "no record written twice")
        XCTAssertEqual(Set(store.failures.compactMap(\.recordID)), ["r7", "r20"])
        XCTAssertEqual(store.offsets[tp0], 40)
        assertOffsetsNeverRunAhead(store)
    }

    func testAnOutageIsRetriedNotIsolated() async throws {
        let store = FakeStore()
        store.failNextWrites = 4
        try await run((0..<16).map { good($0, tp0, offset: Int64($0)) }, store, end: [tp0: 16])
        XCTAssertEqual(Set(store.recordIDs).count, 16)
        XCTAssertTrue(store.failures.isEmpty, "a retriable error never rejects records")
    }

    func testARefusedFailedRecordsRowIsStoredInMinimalFormAndNeverStalls() async throws {
        var messages = (0..<12).map { good($0, tp0, offset: Int64($0)) }
        messages[4] = IncomingMessage(partition: tp0, offset: 4, key: nil, value: Array("{not json".utf8))
        let store = FakeStore()
        store.refusedFailureOffsets = [4]
        try await run(messages, store, end: [tp0: 12])
        XCTAssertEqual(store.recordIDs.count, 11)
        let failure = try XCTUnwrap(store.failures.first)
        XCTAssertEqual(store.failures.count, 1)
        XCTAssertEqual(failure.message.offset, 4)
        XCTAssertEqual(failure.failure.failureClass, .record(.invalidJSON), "the original class is kept")
        XCTAssertTrue(failure.message.value.isEmpty)
        XCTAssertTrue(failure.failure.message.contains("refused"), failure.failure.message)
        XCTAssertEqual(store.offsets[tp0], 12)
    }

    func testARefusedRejectionRowThatCannotBeStoredAtAllStillAdvancesTheOffsets() async throws {
        let store = FakeStore()
        store.refusedIDs = ["r2"]
        store.refusedFailureOffsets = [2]
        store.refuseMinimalFailures = true
        let dlq = FakeDLQ()
        try await run((0..<10).map { good($0, tp0, offset: Int64($0)) }, store, dlq: dlq, end: [tp0: 10])
        XCTAssertEqual(Set(store.recordIDs).count, 9)
        XCTAssertTrue(store.failures.isEmpty, "the row is refused in every form")
        XCTAssertEqual(dlq.sent.map(\.recordID), ["r2"], "the failure is on the dead-letter topic")
        XCTAssertEqual(store.offsets[tp0], 10)
    }

    func testAParseFailureKeepsTheRecordIdItsJSONHad() async throws {
        let long = String(repeating: "x", count: 70_000)
        let messages = [
            IncomingMessage(partition: tp0, offset: 0, key: nil, value: Array("{\"id\":\"sku-9\",\"image_url\":\"http://x/a.jpg\",\"caption\":\"\(long)\"}".utf8)),
            IncomingMessage(partition: tp0, offset: 1, key: Array("key-1".utf8), value: Array("{\"image_url\":\"ftp://x/a.jpg\"}".utf8)),
            IncomingMessage(partition: tp0, offset: 2, key: nil, value: Array("{\"id\":\"sku-10\",\"image_url\":\"http://x/broken.jpg\"}".utf8)),
        ]
        let store = FakeStore(), dlq = FakeDLQ()
        try await run(messages, store, dlq: dlq, end: [tp0: 3])
        let ids = Dictionary(uniqueKeysWithValues: store.failures.map { ($0.message.offset, $0.recordID) })
        XCTAssertEqual(ids[0], "sku-9")
        XCTAssertEqual(ids[1], "key-1")
        XCTAssertEqual(ids[2], "sku-10", "a fetch or image failure carries the id")
        XCTAssertEqual(Set(dlq.sent.compactMap(\.recordID)), ["sku-9", "key-1", "sku-10"])
    }
}
