import CLIP
import Foundation
import Logging
import XCTest
@testable import Pipeline
import ZeroShot

/// The pipeline's bookkeeping with in-memory fakes of Kafka and Postgres (the real adapters
/// have integration tests of their own).
final class FakeSource: MessageSource, @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: AsyncThrowingStream<IncomingMessage, Error>.Continuation?
    private let pending: [IncomingMessage]
    var paused: [[TopicPartition]] = []
    var resumed: [[TopicPartition]] = []
    var commits: [[TopicPartition: Int64]] = []

    init(_ messages: [IncomingMessage]) { pending = messages }

    func messages() -> AsyncThrowingStream<IncomingMessage, Error> {
        AsyncThrowingStream { c in
            lock.withLock { continuation = c }
            for m in pending { c.yield(m) }
        }
    }
    func pause(_ partitions: [TopicPartition]) { lock.withLock { paused.append(partitions) } }
    func resume(_ partitions: [TopicPartition]) { lock.withLock { resumed.append(partitions) } }
    func commit(_ offsets: [TopicPartition: Int64]) { lock.withLock { commits.append(offsets) } }
    func stop() { lock.withLock { continuation?.finish() } }
}

final class FakeStore: PipelineStore, @unchecked Sendable {
    private let lock = NSLock()
    var batches: [BatchWrite] = []
    var failNextWrites = 0
    var offsets: [TopicPartition: Int64] = [:]
    /// The stored offsets, read under the lock (for polling while the pipeline writes).
    var storedOffsetsNow: [TopicPartition: Int64] { lock.withLock { offsets } }
    var labelSets: [String: LabelSet] = [:]
    /// Records the "database" refuses permanently, by id: any write holding one fails whole.
    var refusedIDs: Set<String> = []
    /// failed_records rows refused permanently, by source offset; minimal forms (no payload)
    /// are accepted unless `refuseMinimalFailures`.
    var refusedFailureOffsets: Set<Int64> = []
    var refuseMinimalFailures = false
    /// Every write attempt, accepted or not.
    var attempts = 0
    /// A transient error every this many attempts (0: never).
    var transientEvery = 0

    func storedOffsets(group: String, partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        lock.withLock { offsets.filter { partitions.contains($0.key) } }
    }
    func write(_ batch: BatchWrite) async throws {
        try lock.withLock {
            attempts += 1
            if failNextWrites > 0 { failNextWrites -= 1; throw StoreDown() }
            if transientEvery > 0 && attempts % transientEvery == 0 { throw StoreDown() }
            if let poison = batch.records.first(where: { refusedIDs.contains($0.record.id) }) {
                throw StoreRefused(message: "value too long for record \(poison.record.id)")
            }
            if let refused = batch.failures.first(where: {
                refusedFailureOffsets.contains($0.message.offset) && (refuseMinimalFailures || !$0.message.value.isEmpty)
            }) {
                throw StoreRefused(message: "failed_records row refused at offset \(refused.message.offset)")
            }
            batches.append(batch)
            for (k, v) in batch.offsets { offsets[k] = v }
        }
    }
    func classify(_ error: Error) -> StoreErrorKind { error is StoreRefused ? .permanent : .retriable }
    func labelSet(named name: String) async throws -> LabelSet? { lock.withLock { labelSets[name] } }

    var recordIDs: [String] { lock.withLock { batches.flatMap { $0.records.map(\.record.id) } } }
    var failures: [FailedMessage] { lock.withLock { batches.flatMap(\.failures) } }
    var attemptCount: Int { lock.withLock { attempts } }
}

struct StoreDown: Error {}
struct StoreRefused: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

final class FakeDLQ: DeadLetterSink, @unchecked Sendable {
    private let lock = NSLock()
    var sent: [FailedMessage] = []
    func send(_ failed: FailedMessage) async throws { lock.withLock { sent.append(failed) } }
}

final class StreamPipelineTests: XCTestCase {
    static let cfg = CLIPConfig(embedDim: 8, imageSize: 32, patchSize: 16, vision: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32),
                                contextLength: 16, vocabSize: 100, text: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32), activation: .gelu)
    let tp0 = TopicPartition("records", 0), tp1 = TopicPartition("records", 1)

    static func tokenize(_ s: String) -> [Int32] {
        var ids: [Int32] = [1] + s.unicodeScalars.prefix(10).map { Int32($0.value % 90) + 2 } + [99]
        ids += [Int32](repeating: 0, count: 16 - ids.count)
        return ids
    }

    static func stages() -> StreamPipeline.Stages {
        StreamPipeline.Stages(
            parse: { message in try RecordParser().parse(message) },
            loadImage: { url in
                if url.contains("broken") { throw PipelineFailure(.image(.corrupt), "bad JPEG") }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                return [Float](repeating: Float(url.count % 7) / 7, count: 3 * 32 * 32)
            },
            tokenize: Self.tokenize)
    }

    func messages(_ n: Int, partitions: [TopicPartition], badEvery: Int = 0) -> [IncomingMessage] {
        (0..<n).map { i in
            let tp = partitions[i % partitions.count]
            let offset = Int64(i / partitions.count)
            let json: String
            if badEvery > 0 && i % badEvery == 0 { json = i % (2 * badEvery) == 0 ? "{not json" : "{\"id\":\"r\(i)\",\"image_url\":\"http://x/broken\(i).jpg\"}" }
            else { json = "{\"id\":\"r\(i)\",\"image_url\":\"http://x/\(i).jpg\",\"caption\":\"caption \(i)\"}" }
            return IncomingMessage(partition: tp, offset: offset, key: nil, value: Array(json.utf8))
        }
    }

    func makePipeline(_ source: FakeSource, _ store: FakeStore, _ dlq: FakeDLQ, stages: StreamPipeline.Stages? = nil,
                      configure: (inout StreamPipeline.Configuration) -> Void = { _ in }) -> (StreamPipeline, PartitionAssignments) {
        Self.makePipeline(source, store, dlq, stages: stages, configure: configure)
    }

    static func makePipeline(_ source: FakeSource, _ store: FakeStore, _ dlq: FakeDLQ, stages: StreamPipeline.Stages? = nil,
                             configure: (inout StreamPipeline.Configuration) -> Void = { _ in }) -> (StreamPipeline, PartitionAssignments) {
        var config = StreamPipeline.Configuration(group: "clipd")
        config.batchSize = 8
        config.batchLatencyMs = 20
        config.maxInFlight = 64
        configure(&config)
        let model = CLIPModel.random(config: Self.cfg, seed: 3)
        let tracker = OffsetTracker()
        let pipeline = StreamPipeline(config: config, source: source, store: store, deadLetters: dlq, stages: stages ?? Self.stages(),
                                      model: .init(model: model, version: .init(id: 1, name: "test")), tracker: tracker, logger: Logger(label: "test"))
        return (pipeline, PartitionAssignments(store: store, group: config.group, tracker: tracker, logger: Logger(label: "test")))
    }

    func runUntilDrained(_ pipeline: StreamPipeline, _ store: FakeStore, expecting n: Int) async throws {
        let run = Task { try await pipeline.run() }
        let deadline = ContinuousClock.now + .seconds(30)
        while store.recordIDs.count + store.failures.count < n && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        pipeline.shutdown()
        try await run.value
    }

    func testEveryRecordIsWrittenOrFailedExactlyOnceAndOffsetsCoverThem() async throws {
        let msgs = messages(200, partitions: [tp0, tp1], badEvery: 10)
        let source = FakeSource(msgs), store = FakeStore(), dlq = FakeDLQ()
        let (pipeline, assignments) = makePipeline(source, store, dlq)
        _ = await assignments.assigned([tp0, tp1])
        try await runUntilDrained(pipeline, store, expecting: 200)
        let ids = store.recordIDs
        XCTAssertEqual(ids.count, 180)
        XCTAssertEqual(Set(ids).count, 180)
        XCTAssertEqual(store.failures.count, 20)
        XCTAssertEqual(Set(store.failures.map(\.failure.errorClass)), ["record.invalid_json", "image.corrupt"])
        XCTAssertEqual(dlq.sent.count, 20)
        XCTAssertEqual(store.offsets, [tp0: 100, tp1: 100])
        // Offsets stored with each batch never run ahead of what was written.
        var written = Set<String>()
        for batch in store.batches {
            for r in batch.records { written.insert("\(r.message.partition)/\(r.message.offset)") }
            for f in batch.failures { written.insert("\(f.message.partition)/\(f.message.offset)") }
            for (tp, next) in batch.offsets {
                for o in 0..<next { XCTAssertTrue(written.contains("\(tp)/\(o)"), "offset \(next) stored before \(tp)/\(o) was written") }
            }
        }
        // Embeddings are normalised and captions give a similarity.
        let first = store.batches.flatMap(\.records).first!
        XCTAssertEqual(first.imageEmbedding.map { $0 * $0 }.reduce(0, +), 1, accuracy: 1e-4)
        XCTAssertNotNil(first.similarity)
        XCTAssertFalse(source.commits.isEmpty)
    }

    func testDatabaseOutageIsRetriedWithoutLoss() async throws {
        let source = FakeSource(messages(40, partitions: [tp0])), store = FakeStore(), dlq = FakeDLQ()
        store.failNextWrites = 3
        let (pipeline, assignments) = makePipeline(source, store, dlq)
        _ = await assignments.assigned([tp0])
        try await runUntilDrained(pipeline, store, expecting: 40)
        XCTAssertEqual(Set(store.recordIDs).count, 40)
        XCTAssertEqual(store.offsets[tp0], 40)
    }

    func testStoredOffsetsAreWhereConsumptionResumesAndRedeliveriesAreSkipped() async throws {
        let store = FakeStore()
        store.offsets = [tp0: 5]
        let source = FakeSource(messages(10, partitions: [tp0]))
        let (pipeline, assignments) = makePipeline(source, store, FakeDLQ())
        let resume = await assignments.assigned([tp0])
        XCTAssertEqual(resume, [tp0: 5])
        // The fake source delivers 0..<10 regardless (the real consumer seeks to 5): records
        // below the stored offset are already done and are skipped.
        try await runUntilDrained(pipeline, store, expecting: 5)
        XCTAssertEqual(store.recordIDs.sorted(), ["r5", "r6", "r7", "r8", "r9"])
        XCTAssertEqual(store.offsets[tp0], 10)
    }

    func testBackpressurePausesAndResumes() async throws {
        let source = FakeSource(messages(100, partitions: [tp0])), store = FakeStore()
        let (pipeline, assignments) = makePipeline(source, store, FakeDLQ()) { $0.maxInFlight = 8; $0.batchSize = 4 }
        _ = await assignments.assigned([tp0])
        try await runUntilDrained(pipeline, store, expecting: 100)
        XCTAssertFalse(source.paused.isEmpty, "consumption paused at the in-flight bound")
        XCTAssertFalse(source.resumed.isEmpty)
        XCTAssertEqual(Set(store.recordIDs).count, 100)
    }

    /// A source that ignores pause (as the Kafka consumer does for the messages it has already
    /// buffered) still cannot push the pipeline past `maxInFlight`: admission waits.
    func testInFlightNeverExceedsTheBoundWhenTheSourceKeepsDelivering() async throws {
        let source = FakeSource(messages(200, partitions: [tp0, tp1])), store = FakeStore()
        var config = StreamPipeline.Configuration(group: "clipd")
        config.batchSize = 4
        config.batchLatencyMs = 20
        config.maxInFlight = 16
        let tracker = OffsetTracker()
        final class Peak: @unchecked Sendable { let lock = NSLock(); var value = 0 }
        let peak = Peak()
        var stages = Self.stages()
        let parse = stages.parse
        stages.parse = { message in
            let now = tracker.inFlightCount
            peak.lock.withLock { peak.value = max(peak.value, now) }
            return try parse(message)
        }
        let pipeline = StreamPipeline(config: config, source: source, store: store, deadLetters: FakeDLQ(), stages: stages,
                                      model: .init(model: CLIPModel.random(config: Self.cfg, seed: 3), version: .init(id: 1, name: "test")),
                                      tracker: tracker, logger: Logger(label: "test"))
        let assignments = PartitionAssignments(store: store, group: config.group, tracker: tracker, logger: Logger(label: "test"))
        _ = await assignments.assigned([tp0, tp1])
        try await runUntilDrained(pipeline, store, expecting: 200)
        XCTAssertEqual(Set(store.recordIDs).count, 200)
        XCTAssertLessThanOrEqual(peak.value, 16, "admitted records in flight at once")
        XCTAssertFalse(source.paused.isEmpty)
    }

    func testInFlightByteBudgetPausesConsumptionBelowTheRecordBound() async throws {
        // Each record holds a 12 KiB image tensor once loaded; 100 KB is about 8 records, far
        // below the record bound of 1000.
        let source = FakeSource(messages(100, partitions: [tp0])), store = FakeStore()
        let (pipeline, assignments) = makePipeline(source, store, FakeDLQ()) {
            $0.maxInFlight = 1000; $0.maxInFlightBytes = 100_000; $0.batchSize = 4
        }
        _ = await assignments.assigned([tp0])
        try await runUntilDrained(pipeline, store, expecting: 100)
        XCTAssertFalse(source.paused.isEmpty, "consumption paused at the byte budget")
        XCTAssertFalse(source.resumed.isEmpty, "and resumed once the tensors were encoded")
        XCTAssertEqual(Set(store.recordIDs).count, 100)
        XCTAssertEqual(pipeline.inFlightBytes.value, 0, "every charged byte is released")
    }

    func testWithinBothBoundsConsumptionIsNeverPaused() async throws {
        let source = FakeSource(messages(100, partitions: [tp0])), store = FakeStore()
        let (pipeline, assignments) = makePipeline(source, store, FakeDLQ()) {
            $0.maxInFlight = 1000; $0.maxInFlightBytes = 64 << 20; $0.batchSize = 4
        }
        _ = await assignments.assigned([tp0])
        try await runUntilDrained(pipeline, store, expecting: 100)
        XCTAssertEqual(source.paused.count, 0)
        XCTAssertEqual(pipeline.inFlightBytes.value, 0)
    }

    func testLoadsInProgressAreBounded() async throws {
        final class Gauge: @unchecked Sendable {
            let lock = NSLock()
            var now = 0, peak = 0
            func enter() { lock.withLock { now += 1; peak = max(peak, now) } }
            func leave() { lock.withLock { now -= 1 } }
        }
        let gauge = Gauge()
        var stages = Self.stages()
        stages.loadImage = { url in
            gauge.enter()
            defer { gauge.leave() }
            try await Task.sleep(for: .milliseconds(2))
            return [Float](repeating: 0.5, count: 3 * 32 * 32)
        }
        let source = FakeSource(messages(60, partitions: [tp0, tp1])), store = FakeStore()
        let (pipeline, assignments) = makePipeline(source, store, FakeDLQ(), stages: stages) { $0.maxConcurrentLoads = 3 }
        _ = await assignments.assigned([tp0, tp1])
        try await runUntilDrained(pipeline, store, expecting: 60)
        XCTAssertEqual(Set(store.recordIDs).count, 60)
        XCTAssertGreaterThan(gauge.peak, 0)
        XCTAssertLessThanOrEqual(gauge.peak, 3, "loads in progress at once")
    }

    func testZeroShotTagsComeFromTheRecordsLabelSet() async throws {
        let store = FakeStore()
        store.labelSets["default"] = LabelSet(name: "default", labels: [.init("cat"), .init("dog"), .init("car")], templates: ["a {}"])
        let json = ["{\"id\":\"a\",\"image_url\":\"http://x/a.jpg\"}", "{\"id\":\"b\",\"image_url\":\"http://x/b.jpg\",\"label_set\":\"nope\"}"]
        let source = FakeSource(json.enumerated().map { IncomingMessage(partition: tp0, offset: Int64($0.offset), key: nil, value: Array($0.element.utf8)) })
        let (pipeline, assignments) = makePipeline(source, store, FakeDLQ()) { $0.topK = 2 }
        _ = await assignments.assigned([tp0])
        try await runUntilDrained(pipeline, store, expecting: 2)
        let records = Dictionary(uniqueKeysWithValues: store.batches.flatMap(\.records).map { ($0.record.id, $0) })
        XCTAssertEqual(records["a"]?.tags.count, 2)
        XCTAssertEqual(records["a"]?.tags.map(\.rank), [1, 2])
        XCTAssertEqual(records["a"]?.labelSet, "default")
        XCTAssertEqual(records["b"]?.tags.count, 0, "an unknown label set stores the embedding without tags")
        XCTAssertNil(records["a"]?.similarity, "no caption, no similarity")
    }

    func testRevokedPartitionsOffsetsAreNotWritten() async throws {
        let store = FakeStore()
        let source = FakeSource(messages(20, partitions: [tp0, tp1]))
        let (pipeline, assignments) = makePipeline(source, store, FakeDLQ())
        _ = await assignments.assigned([tp0, tp1])
        assignments.revoked([tp1])
        try await runUntilDrained(pipeline, store, expecting: 10)
        XCTAssertNil(store.offsets[tp1])
        XCTAssertEqual(store.offsets[tp0], 10)
    }
}
