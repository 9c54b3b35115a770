import Foundation
import TestSupport
import XCTest

/// `clipd dlq list|replay` against a real daemon: records that failed because their images were
/// missing are replayed once the images exist, and written exactly once.
final class DeadLetterRedriveTests: XCTestCase {
    var harness: DaemonHarness!
    var spool: URL!

    override func tearDown() async throws {
        await harness?.tearDown()
        harness = nil
        if let spool { try? FileManager.default.removeItem(at: spool) }
    }

    func testFixedDeadLettersAreReplayedOnceAndWrittenOnce() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        spool = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-dlq-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: spool, withIntermediateDirectories: true)
        let image = try Data(contentsOf: URL(fileURLWithPath: DaemonHarness.goodImage))
        // Six records: three images exist, three do not yet (one of those is keyed, one has no id
        // and no key: it is identified by its position, which a replay must keep).
        for i in [0, 1, 2] { try image.write(to: spool.appendingPathComponent("img-\(i).jpg")) }
        func record(_ i: Int, id: Bool = true) -> String {
            (id ? "{\"id\":\"dlq-\(i)\"," : "{") + "\"image_url\":\"file://\(spool.path)/img-\(i).jpg\",\"caption\":\"picture \(i)\"}"
        }
        try await h.produce([(nil, record(0)), (nil, record(1)), (nil, record(2)), (nil, record(3)), ("key-4", record(4, id: false)), (nil, record(5, id: false))])
        let extra = ["--allow-file-root", spool.path, "--stop-when-idle", "4"]
        XCTAssertEqual(try h.startDaemon(extra: extra).wait(timeout: 240), 0, h.daemonLogs)
        let failedIDs = try await h.grouped("SELECT coalesce(record_id, '?'), count(*) FROM failed_records WHERE error_class = 'fetch.not_found' GROUP BY 1")
        XCTAssertEqual(failedIDs.count, 3, "three dead letters: \(failedIDs)")
        let count1 = try await h.count("SELECT count(*) FROM records")
        XCTAssertEqual(count1, 3)

        // Listing: by class, by stage prefix, none of another class.
        let listed = try runClipd(["dlq", "list", "--database-url", h.databaseURL, "--class", "fetch.not_found"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertEqual(listed.lines.count, 3)
        let first = jsonObject(listed.lines[0])
        XCTAssertEqual(first["error_class"] as? String, "fetch.not_found")
        XCTAssertNotNil(first["payload"] as? String, "the exact payload is listed")
        XCTAssertEqual(try runClipd(["dlq", "list", "--database-url", h.databaseURL, "--class", "fetch."]).lines.count, 3)
        XCTAssertEqual(try runClipd(["dlq", "list", "--database-url", h.databaseURL, "--class", "image.corrupt"]).lines.count, 0)
        XCTAssertEqual(try runClipd(["dlq", "list", "--database-url", h.databaseURL, "--since", "2999-01-01"]).lines.count, 0)
        assertCleanFailure(try runClipd(["dlq", "list", "--database-url", h.databaseURL, "--since", "not a time"]), mentioning: ["--since"])

        // A dry run counts and changes nothing.
        let dry = try runClipd(["dlq", "replay", "--database-url", h.databaseURL, "--dry-run"])
        XCTAssertEqual(jsonObject(dry.stdout)["would_replay"] as? Int, 3, dry.stderr)
        let count2 = try await h.count("SELECT count(*) FROM failed_records WHERE replayed_at IS NOT NULL")
        XCTAssertEqual(count2, 0)

        // Fix the cause, replay, and replay again: the second finds nothing.
        for i in [3, 4, 5] { try image.write(to: spool.appendingPathComponent("img-\(i).jpg")) }
        let replay = try runClipd(["dlq", "replay", "--database-url", h.databaseURL, "--brokers", h.brokers])
        XCTAssertEqual(replay.status, 0, replay.stderr)
        XCTAssertEqual(jsonObject(replay.stdout)["replayed"] as? Int, 3, replay.stdout)
        let again = try runClipd(["dlq", "replay", "--database-url", h.databaseURL, "--brokers", h.brokers])
        XCTAssertEqual(jsonObject(again.stdout)["replayed"] as? Int, 0, again.stdout)
        XCTAssertEqual(try runClipd(["dlq", "list", "--database-url", h.databaseURL]).lines.count, 0, "nothing pending")
        XCTAssertEqual(try runClipd(["dlq", "list", "--database-url", h.databaseURL, "--all"]).lines.count, 3)

        // The daemon picks the replayed records up: every record once, the keyless one under its first id.
        XCTAssertEqual(try h.startDaemon(extra: extra).wait(timeout: 240), 0, h.daemonLogs)
        let count3 = try await h.count("SELECT count(*) FROM records")
        XCTAssertEqual(count3, 6, h.daemonLogs)
        let count4 = try await h.count("SELECT count(*) FROM embeddings")
        XCTAssertEqual(count4, 6)
        let positional = failedIDs.keys.first { $0.contains("/") } ?? "?"
        let count5 = try await h.count("SELECT count(*) FROM records WHERE id IN ('dlq-3', 'key-4') OR id = \(positional)")
        XCTAssertEqual(count5, 3,
                       "replayed records keep their ids: \(failedIDs)")
        let count6 = try await h.count("SELECT count(*) FROM failed_records WHERE replayed_at IS NULL")
        XCTAssertEqual(count6, 0)
    }
}
