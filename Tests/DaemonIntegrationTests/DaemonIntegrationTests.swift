import Foundation
import Kafka
import Logging
import Postgres
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `clipd run` as users run it: real PostgreSQL, the Kafka-protocol dev broker, the tiny
/// fixture model, separate daemon processes.
final class DaemonIntegrationTests: XCTestCase {
    var harness: DaemonHarness!

    override func tearDown() async throws {
        await harness?.tearDown()
        harness = nil
    }

    func goodRecords(_ n: Int) -> [(key: String?, value: String)] {
        (0..<n).map { ("good-\($0)", DaemonHarness.good($0)) }
    }

    func assertEveryGoodRecordOnce(_ n: Int, file: StaticString = #filePath, line: UInt = #line) async throws {
        let h = harness!
        let records = try await h.count("SELECT count(*) FROM records WHERE id LIKE 'good-%'")
        let embeddings = try await h.count("SELECT count(*) FROM embeddings")
        let embedded = try await h.count("SELECT count(DISTINCT record_id) FROM embeddings")
        let tagged = try await h.count("SELECT count(DISTINCT record_id) FROM tags")
        let tags = try await h.count("SELECT count(*) FROM tags")
        XCTAssertEqual(records, n, h.daemonLogs, file: file, line: line)
        XCTAssertEqual(embeddings, n, "one embedding row per record and model version", file: file, line: line)
        XCTAssertEqual(embedded, n, file: file, line: line)
        XCTAssertEqual(tagged, n, "every record has tags", file: file, line: line)
        XCTAssertEqual(tags, 3 * n, "top-3 tags, written once", file: file, line: line)
    }

    func testMixedRecordsEveryGoodOneWrittenOnceEveryBadOneClassified() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        var messages = goodRecords(450)
        var expected: [String: Int] = [:]
        for i in 0..<50 {
            let bad = DaemonHarness.bad(i)
            expected[bad.errorClass, default: 0] += 1
            messages.insert((nil, bad.value), at: i * 9)
        }
        try await h.produce(messages)
        let daemon = try h.startDaemon(extra: ["--stop-when-idle", "4"])
        XCTAssertEqual(daemon.wait(timeout: 240), 0, h.daemonLogs)
        try await assertEveryGoodRecordOnce(450)
        let classes = try await h.grouped("SELECT error_class, count(*) FROM failed_records GROUP BY error_class")
        XCTAssertEqual(classes, expected, h.daemonLogs)
        let stored = try await h.count("SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets")
        XCTAssertEqual(stored, 500)
        // The dead-letter topic holds every failed record with its class.
        let dead = try await consume(topic: "\(h.topic).dlq", expecting: 50)
        XCTAssertEqual(dead.count, 50)
        let dlqClasses = dead.compactMap { (try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])?["error_class"] as? String }
        XCTAssertEqual(Dictionary(dlqClasses.map { ($0, 1) }, uniquingKeysWith: +), expected)
    }

    func testPoisonRecordsInFrontOfGoodOnesNeverStallTheStream() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        // A refusal validation cannot foresee, as an operator's constraint would cause.
        let connection = try await h.connect()
        try await connection.query("ALTER TABLE records ADD CONSTRAINT clipd_test_poison CHECK (caption IS DISTINCT FROM 'poison')")
        await connection.close()
        let image = "file://\(DaemonHarness.goodImage)"
        var messages: [(key: String?, value: String)] = [
            // No id and a 5,000-byte key: once a 5,000-byte primary key (54000), now record.invalid.
            (String(repeating: "k", count: 5_000), "{\"image_url\":\"\(image)\"}"),
            (nil, "{\"id\":\"poison-1\",\"image_url\":\"\(image)\",\"caption\":\"poison\"}"),
            // The six characters \u0000 as metadata text are accepted.
            (nil, "{\"id\":\"good-60\",\"image_url\":\"\(image)\",\"caption\":\"a cat\",\"metadata\":{\"note\":\"\\\\u0000\"}}"),
        ]
        messages += goodRecords(60)
        try await h.produce(messages)
        let daemon = try h.startDaemon(extra: ["--stop-when-idle", "4"])
        XCTAssertEqual(daemon.wait(timeout: 240), 0, h.daemonLogs)
        try await assertEveryGoodRecordOnce(61)
        let classes = try await h.grouped("SELECT error_class, count(*) FROM failed_records GROUP BY error_class")
        XCTAssertEqual(classes, ["record.invalid": 1, "store.rejected": 1], h.daemonLogs)
        let rejected = try await h.grouped("SELECT record_id, count(*) FROM failed_records WHERE error_class = 'store.rejected' GROUP BY record_id")
        XCTAssertEqual(rejected, ["poison-1": 1], "the refused record keeps its id")
        let stored = try await h.count("SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets")
        XCTAssertEqual(stored, 63, "stored offsets reach the end")
        let note = try await h.count("SELECT count(*) FROM records WHERE metadata->>'note' = '\\u0000'")
        XCTAssertEqual(note, 1, "literal \\u0000 text stored as text")
    }

    func testKillNineFiveTimesLosesAndDuplicatesNothing() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        try await h.produce(goodRecords(1000))
        var rng = SystemRandomNumberGenerator()
        for round in 0..<5 {
            let daemon = try h.startDaemon()
            let before = try await h.count("SELECT count(*) FROM records")
            let target = before + Int.random(in: 20...120, using: &rng)
            _ = try await eventually(timeout: .seconds(90), interval: .milliseconds(200)) { try await h.count("SELECT count(*) FROM records") >= target }
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...400, using: &rng)))
            daemon.signal(SIGKILL)
            XCTAssertNotNil(daemon.wait(timeout: 10), "round \(round)")
        }
        let last = try h.startDaemon(extra: ["--stop-when-idle", "5"])
        XCTAssertEqual(last.wait(timeout: 300), 0, h.daemonLogs)
        try await assertEveryGoodRecordOnce(1000)
        let stored = try await h.count("SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets")
        XCTAssertEqual(stored, 1000)
    }

    func testSIGTERMWritesEverythingFetchedAndExitsZero() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        try await h.produce(goodRecords(400))
        let daemon = try h.startDaemon()
        let reached40 = try await eventually(timeout: .seconds(120), interval: .milliseconds(200)) { try await h.count("SELECT count(*) FROM records") >= 40 }

        XCTAssertTrue(reached40, h.daemonLogs)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 35), 0, "SIGTERM exits 0 within the drain bound\n" + h.daemonLogs)
        XCTAssertTrue(daemon.stderr.contains("pipeline drained"), daemon.stderr.suffix(3000).description)
        // Everything admitted was written: the stored offsets cover exactly the rows.
        let written = try await h.count("SELECT count(*) FROM records")
        let stored = try await h.count("SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets")
        XCTAssertEqual(stored, written)
        // And a restart finishes the topic without duplicates.
        XCTAssertEqual(try h.startDaemon(extra: ["--stop-when-idle", "4"]).wait(timeout: 240), 0, h.daemonLogs)
        try await assertEveryGoodRecordOnce(400)
    }

    func testTwoDaemonsInOneGroupProcessEachRecordOnce() async throws {
        harness = try await DaemonHarness(partitions: 4)
        let h = harness!
        let a = try h.startDaemon(extra: ["--stop-when-idle", "8"])
        let b = try h.startDaemon(extra: ["--stop-when-idle", "8"])
        // Both members hold partitions before the records arrive, so both must take part.
        let end = Date().addingTimeInterval(120)
        while Date() < end && !(a.stderr.contains("partitions assigned") && b.stderr.contains("partitions assigned")) {
            try await Task.sleep(for: .milliseconds(200))
        }
        try await h.produce(goodRecords(1000))
        XCTAssertEqual(a.wait(timeout: 300), 0, h.daemonLogs)
        XCTAssertEqual(b.wait(timeout: 60), 0, h.daemonLogs)
        try await assertEveryGoodRecordOnce(1000)
        let written = [a, b].map { Self.writtenCount($0.stderr) }
        XCTAssertTrue(written.allSatisfy { $0 > 0 }, "both daemons took part: \(written)")
    }

    func testBrokerDownAndBackLosesNothing() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        try await h.produce(goodRecords(600))
        let daemon = try h.startDaemon(extra: ["--stop-when-idle", "6"])
        let reached60 = try await eventually(timeout: .seconds(120), interval: .milliseconds(200)) { try await h.count("SELECT count(*) FROM records") >= 60 }

        XCTAssertTrue(reached60, h.daemonLogs)
        h.broker.write("broker-down 1")
        try await Task.sleep(for: .seconds(3))
        h.broker.write("broker-up 1")
        XCTAssertEqual(daemon.wait(timeout: 300), 0, h.daemonLogs)
        try await assertEveryGoodRecordOnce(600)
    }

    func testPostgresOutageMidStreamRecoversWithoutLoss() async throws {
        harness = try await DaemonHarness(viaRelay: true)
        let h = harness!
        try await h.produce(goodRecords(500))
        let daemon = try h.startDaemon(extra: ["--stop-when-idle", "6"])
        let reached50 = try await eventually(timeout: .seconds(120), interval: .milliseconds(200)) { try await h.count("SELECT count(*) FROM records") >= 50 }

        XCTAssertTrue(reached50, h.daemonLogs)
        h.relay!.setOutage(true)
        try await Task.sleep(for: .seconds(4))
        h.relay!.setOutage(false)
        XCTAssertEqual(daemon.wait(timeout: 300), 0, h.daemonLogs)
        try await assertEveryGoodRecordOnce(500)
        XCTAssertTrue(daemon.stderr.contains("retrying"), "the outage was noticed and retried")
    }

    func testPostgresDownAtStartIsWaitedFor() async throws {
        harness = try await DaemonHarness(viaRelay: true)
        let h = harness!
        h.relay!.setOutage(true)
        try await h.produce(goodRecords(20))
        let daemon = try h.startDaemon(extra: ["--stop-when-idle", "4"])
        try await Task.sleep(for: .seconds(3))
        XCTAssertTrue(daemon.process.isRunning, "no crash while PostgreSQL is unreachable\n" + daemon.stderr)
        h.relay!.setOutage(false)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, h.daemonLogs)
        try await assertEveryGoodRecordOnce(20)
    }

    static func writtenCount(_ log: String) -> Int {
        guard let line = log.split(separator: "\n").last(where: { $0.contains("stopped") && $0.contains("written=") }),
              let range = line.range(of: "written=") else { return 0 }
        return Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    /// Reads a topic from the beginning with a fresh group until `n` messages or 30 s.
    func consume(topic: String, expecting n: Int) async throws -> [[UInt8]] {
        var config = KafkaConsumerConfiguration(bootstrapServers: harness.brokers, groupID: "reader-\(UUID().uuidString.prefix(6))", topics: [topic])
        config.autoOffsetReset = .earliest
        let consumer = try KafkaConsumer(configuration: config, logger: harness.logger)
        let poll = Task { try await consumer.run() }
        let values = try await withThrowingTaskGroup(of: [[UInt8]]?.self) { group in
            group.addTask {
                var got: [[UInt8]] = []
                for try await event in consumer.events {
                    if case .message(let m) = event { got.append(m.value) }
                    if got.count >= n { break }
                }
                return got
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                return nil
            }
            var result: [[UInt8]] = []
            while let next = try await group.next() {
                if let got = next { result = got; break }
                consumer.shutdown()   // the deadline: end the event stream
            }
            consumer.shutdown()
            group.cancelAll()
            return result
        }
        _ = try? await poll.value
        return values
    }
}
