import Foundation
import Postgres
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Re-embedding on activation with real daemons: every stored record gets the new version's
/// embedding and tags, search never goes blank or mixes versions, and the work survives kill -9
/// and is shared between daemons.
final class BackfillIntegrationTests: XCTestCase {
    var harness: DaemonHarness!

    override func tearDown() async throws {
        await harness?.tearDown()
        harness = nil
    }

    static let checkpoint = Repository.fixtures.appendingPathComponent("models/tiny/openai_format.safetensors").path

    func goodRecords(_ n: Int) -> [(key: String?, value: String)] {
        (0..<n).map { ("good-\($0)", DaemonHarness.good($0)) }
    }

    /// Small backfill batches and chunks, so a backfill of a few hundred records takes a while.
    func backfillFlags(batch: Int, chunk: Int) -> [String] {
        ["--backfill-batch-size", "\(batch)", "--backfill-chunk-size", "\(chunk)", "--backfill-lease-seconds", "3"]
    }

    /// A daemon that runs the active version (no pinned `--model`), as a restarted daemon would.
    @discardableResult
    func startDaemonOnActiveVersion(extra: [String]) throws -> BackgroundProcess {
        var arguments = harness.daemonArguments(extra: extra)
        if let index = arguments.firstIndex(of: "--model") { arguments.removeSubrange(index...(index + 1)) }
        let d = try BackgroundProcess(arguments, environment: ["CLIPD_LOG_LEVEL": "info"], name: "daemon\(harness.daemons.count)")
        harness.daemons.append(d)
        return d
    }

    /// `clipd model import --activate` of the fixture checkpoint under a new name: a new version.
    func activateNewVersion(_ name: String) throws -> Int64 {
        let result = try runClipd(["model", "import", "--database-url", harness.database.url, "--name", name, "--activate", Self.checkpoint], timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try XCTUnwrap((jsonObject(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))["id"] as? NSNumber)?.int64Value)
    }

    func embeddings(_ version: Int64) async throws -> Int {
        try await harness.count("SELECT count(*) FROM embeddings WHERE model_version_id = \(version)")
    }

    func activeVersion() async throws -> Int64 {
        Int64(try await harness.count("SELECT id FROM model_versions WHERE is_active"))
    }

    /// Ingests `n` records with the first version and returns it.
    func ingest(_ n: Int, daemons: Int, extra: [String]) async throws -> Int64 {
        let h = harness!
        try await h.produce(goodRecords(n))
        for _ in 0..<daemons { try h.startDaemon(extra: extra) }
        try await waitUntil("\(n) records written", timeout: .seconds(240), interval: .milliseconds(200)) {
            try await h.count("SELECT count(*) FROM embeddings") >= n
        }
        let v1 = try await activeVersion()
        let written = try await embeddings(v1)
        XCTAssertEqual(written, n)
        return v1
    }

    /// Asserts the new version covers every record with embeddings and top-3 tags, once each.
    func assertCovered(_ version: Int64, records n: Int, file: StaticString = #filePath, line: UInt = #line) async throws {
        let h = harness!
        let embedded = try await embeddings(version)
        let tagged = try await h.count("SELECT count(DISTINCT record_id) FROM tags WHERE model_version_id = \(version)")
        let tags = try await h.count("SELECT count(*) FROM tags WHERE model_version_id = \(version)")
        let open = try await h.count("SELECT count(*) FROM model_backfill_chunks WHERE model_version_id = \(version) AND status <> 'done'")
        let failed = try await h.count("SELECT count(*) FROM model_backfill_failures")
        XCTAssertEqual(embedded, n, h.daemonLogs, file: file, line: line)
        XCTAssertEqual(tagged, n, file: file, line: line)
        XCTAssertEqual(tags, 3 * n, "top-3 tags, once", file: file, line: line)
        XCTAssertEqual(open, 0, file: file, line: line)
        XCTAssertEqual(failed, 0, file: file, line: line)
    }

    func testActivationReembedsEveryRecordAndSearchSwitchesExactlyOnce() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        let n = 200
        let v1 = try await ingest(n, daemons: 1, extra: backfillFlags(batch: 1, chunk: 4))

        // Poll search (as the views and `clipd search` resolve it) throughout the backfill.
        let connection = try await h.connect()
        let dimension = try await connection.query("SELECT embedding_dim FROM model_versions WHERE id = \(v1)").first!.decode(Int.self, at: 0)
        let query = [Float](repeating: 1 / Float(dimension).squareRoot(), count: dimension)
        let stop = Flag()
        let poller = Task { () -> [(version: Int64, hits: Int, tagVersions: Int)] in
            var samples: [(version: Int64, hits: Int, tagVersions: Int)] = []
            while !stop.isSet {
                let row = try await connection.query("""
                    SELECT s.v, (SELECT count(*) FROM clipd_nearest(\(query), s.v, 5)),
                           (SELECT count(DISTINCT model_version_id) FROM latest_tags)
                      FROM (SELECT clipd_search_model_version() AS v) s
                    """).first!
                samples.append((try row.decode(Int64.self, at: 0), try row.decode(Int.self, at: 1), try row.decode(Int.self, at: 2)))
                try await Task.sleep(for: .milliseconds(10))
            }
            return samples
        }
        let v2 = try activateNewVersion("v2")
        XCTAssertNotEqual(v1, v2)
        // `clipd search` while the backfill runs: never empty, one version per answer.
        var cliVersions: [Int64] = []
        for _ in 0..<3 {
            let search = try runClipd(["search", "--database-url", h.database.url, "--text", "a photo of a cat", "--limit", "5"], timeout: 120)
            XCTAssertEqual(search.status, 0, search.stderr)
            let hits = search.stdout.split(separator: "\n").map { jsonObject(String($0)) }
            XCTAssertEqual(hits.count, 5, "search never goes blank")
            let versions = Set(hits.compactMap { ($0["model_version"] as? NSNumber)?.int64Value })
            XCTAssertEqual(versions.count, 1, "one version per answer: \(versions)")
            cliVersions += versions
        }
        try await waitUntil("v2 covers every record and serves search", timeout: .seconds(240), interval: .milliseconds(200)) {
            let embedded = try await self.embeddings(v2)
            let serving = try await h.count("SELECT clipd_search_model_version()")
            return embedded == n && serving == Int(v2)
        }
        try await Task.sleep(for: .milliseconds(300))
        stop.set()
        let samples = try await poller.value
        await connection.close()

        XCTAssertGreaterThan(samples.count, 10)
        XCTAssertTrue(samples.allSatisfy { $0.hits == 5 }, "search returned fewer hits at some point")
        XCTAssertTrue(samples.allSatisfy { $0.tagVersions == 1 }, "latest_tags mixed versions or went blank")
        var sequence: [Int64] = []
        for s in samples where sequence.last != s.version { sequence.append(s.version) }
        XCTAssertEqual(sequence, [v1, v2], "search switched exactly once, from v1 to v2")
        XCTAssertTrue(Set(cliVersions).isSubset(of: [v1, v2]))
        try await assertCovered(v2, records: n)

        // `clipd model status`: per version coverage, rate and ETA.
        let status = try runClipd(["model", "status", "--database-url", h.database.url], timeout: 60)
        XCTAssertEqual(status.status, 0, status.stderr)
        let lines = status.stdout.split(separator: "\n").map { jsonObject(String($0)) }
        let newest = try XCTUnwrap(lines.first { ($0["id"] as? NSNumber)?.int64Value == v2 }, status.stdout)
        let atV1AfterActivation = samples.drop { $0.version != v2 }.isEmpty ? 0 : samples.filter { $0.version == v1 }.count
        print("backfill figures: \(n) records, \(samples.count) search samples (\(atV1AfterActivation) answered by v1), status: \(status.stdout.split(separator: "\n").first ?? "")")
        XCTAssertEqual((newest["covered"] as? NSNumber)?.intValue, n)
        XCTAssertEqual((newest["total"] as? NSNumber)?.intValue, n)
        XCTAssertEqual(newest["search"] as? Bool, true)
        XCTAssertEqual(newest["backfill"] as? String, "done")
        XCTAssertGreaterThan((newest["rate"] as? NSNumber)?.doubleValue ?? 0, 0, status.stdout)
        XCTAssertEqual((newest["eta_seconds"] as? NSNumber)?.doubleValue, 0)
        // And the CLI now answers from v2.
        let after = try runClipd(["search", "--database-url", h.database.url, "--text", "a photo of a cat", "--limit", "3"], timeout: 120)
        XCTAssertEqual(Set(after.stdout.split(separator: "\n").compactMap { (jsonObject(String($0))["model_version"] as? NSNumber)?.int64Value }), [v2])
    }

    func testKillNineDuringBackfillResumesWithoutDuplicates() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        let n = 400
        let flags = backfillFlags(batch: 1, chunk: 4)
        _ = try await ingest(n, daemons: 1, extra: flags)
        let first = h.daemons[0]
        let v2 = try activateNewVersion("v2")
        try await waitUntil("the backfill has started", timeout: .seconds(120), interval: .milliseconds(20)) {
            try await self.embeddings(v2) >= 20
        }
        first.signal(SIGKILL)
        XCTAssertNotNil(first.wait(timeout: 10))
        let atKill = try await embeddings(v2)
        let held = try await h.count("SELECT count(*) FROM model_backfill_chunks WHERE model_version_id = \(v2) AND status = 'running'")
        XCTAssertLessThan(atKill, n, "the backfill finished before the kill; the test needs a slower backfill")

        try startDaemonOnActiveVersion(extra: flags)
        try await waitUntil("v2 covers every record", timeout: .seconds(240), interval: .milliseconds(200)) {
            let embedded = try await self.embeddings(v2)
            let serving = try await h.count("SELECT clipd_search_model_version()")
            return embedded == n && serving == Int(v2)
        }
        try await assertCovered(v2, records: n)
        if held > 0 {
            // The chunk the killed daemon held was taken over after its lease lapsed.
            let retaken = try await h.count("SELECT count(*) FROM model_backfill_chunks WHERE model_version_id = \(v2) AND attempts >= 2")
            XCTAssertGreaterThanOrEqual(retaken, 1)
        }
    }

    func testTwoDaemonsShareOneBackfill() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        let n = 400
        _ = try await ingest(n, daemons: 2, extra: backfillFlags(batch: 1, chunk: 2))
        let v2 = try activateNewVersion("v2")
        try await waitUntil("v2 covers every record", timeout: .seconds(240), interval: .milliseconds(200)) {
            let embedded = try await self.embeddings(v2)
            let serving = try await h.count("SELECT clipd_search_model_version()")
            return embedded == n && serving == Int(v2)
        }
        try await assertCovered(v2, records: n)
        let workers = try await h.grouped("""
            SELECT claimed_by, count(*) FROM model_backfill_chunks WHERE model_version_id = \(v2) GROUP BY claimed_by
            """)
        XCTAssertEqual(workers.count, 2, "both daemons claimed chunks: \(workers)\n" + h.daemonLogs)
        let chunks = try await h.count("SELECT count(*) FROM model_backfill_chunks WHERE model_version_id = \(v2)")
        XCTAssertEqual(workers.values.reduce(0, +), chunks)
    }
}

/// A flag one task sets and another polls.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
