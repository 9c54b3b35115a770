import Foundation
import Postgres
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// An activated model version whose checkpoint cannot be loaded is never swapped in: the
/// daemon keeps writing with its current model and says so on /readyz and /metrics.
final class ModelSwapTests: XCTestCase {
    var harness: DaemonHarness!

    override func tearDown() async throws {
        await harness?.tearDown()
        harness = nil
    }

    /// A hostile safetensors file (a shape of 2^62 x 4) that used to crash the loader.
    func corruptCheckpoint() throws -> String {
        let header = #"{"visual.proj": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}   "#
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(Data(header.utf8))
        data.append(Data(count: 16))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-corrupt-\(UUID().uuidString).safetensors")
        try data.write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    /// A port nothing listens on now (bound to 0, then released).
    func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestSetupError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func get(_ port: Int, _ path: String) -> (status: Int32, body: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-m", "5", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return (-1, "") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let code = Int32(text.split(separator: "\n").last.map(String.init) ?? "") ?? -1
        return (code, text)
    }

    func written(_ h: DaemonHarness) async throws -> Int {
        try await h.count("SELECT count(*) FROM embeddings WHERE record_id LIKE 'good-%'")
    }

    func testActivatedCorruptCheckpointIsNeverSwappedIn() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        let port = try freePort()
        let daemon = try h.startDaemon(extra: ["--http-port", "\(port)"])
        try await h.produce((0..<20).map { ("good-\($0)", DaemonHarness.good($0)) })
        try await waitUntil("the first 20 records written", timeout: .seconds(180)) { try await written(h) == 20 }
        let running = try await h.count("SELECT id FROM model_versions WHERE is_active")

        // Register a version whose checkpoint is hostile, and activate it.
        let path = try corruptCheckpoint()
        let connection = try await h.connect()
        let bad = try await connection.query("""
            INSERT INTO model_versions (name, architecture, embedding_dim, checkpoint_uri, metrics)
            SELECT 'corrupt', architecture, embedding_dim, \(path), metrics FROM model_versions WHERE id = \(Int64(running))
            RETURNING id
            """).first!.decode(Int64.self, at: 0)
        _ = try await connection.query("SELECT clipd_activate_model_version(\(bad))")
        await connection.close()

        try await waitUntil("the daemon reports the failed load", timeout: .seconds(60)) {
            h.daemonLogs.contains("keeping the current model")
        }
        XCTAssertTrue(h.daemonLogs.contains(URL(fileURLWithPath: path).lastPathComponent), h.daemonLogs)
        XCTAssertTrue(h.daemonLogs.contains("visual.proj"), h.daemonLogs)
        let ready = get(port, "/readyz")
        XCTAssertEqual(ready.status, 503, ready.body)
        XCTAssertTrue(ready.body.contains("model version \(bad)"), ready.body)
        let metrics = get(port, "/metrics")
        XCTAssertTrue(metrics.body.contains("clipd_model_load_failures_total 1"), metrics.body)
        XCTAssertTrue(metrics.body.contains("clipd_model_load_failing 1"), metrics.body)

        // The daemon keeps writing with the version it had.
        try await h.produce((20..<40).map { ("good-\($0)", DaemonHarness.good($0)) })
        try await waitUntil("20 more records written", timeout: .seconds(120)) { try await written(h) == 40 }
        let versions = try await h.grouped("SELECT model_version_id::text, count(*) FROM embeddings GROUP BY 1")
        XCTAssertEqual(versions, ["\(running)": 40], h.daemonLogs)
        XCTAssertNil(daemon.wait(timeout: 0.1), "the daemon must still run: \(h.daemonLogs)")

        // Re-activating the running version clears the problem.
        let again = try await h.connect()
        _ = try await again.query("SELECT clipd_activate_model_version(\(Int64(running)))")
        await again.close()
        try await waitUntil("ready again", timeout: .seconds(60)) { get(port, "/readyz").status == 200 }
        XCTAssertTrue(get(port, "/metrics").body.contains("clipd_model_load_failing 0"))
    }

    func testStartWithAnUnloadableActiveVersionFailsWithOneLine() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        let path = try corruptCheckpoint()
        let connection = try await h.connect()
        let bad = try await connection.query("""
            INSERT INTO model_versions (name, architecture, embedding_dim, checkpoint_uri, metrics)
            VALUES ('corrupt', 'ViT-tiny', 64, \(path), '{}'::jsonb) RETURNING id
            """).first!.decode(Int64.self, at: 0)
        _ = try await connection.query("SELECT clipd_activate_model_version(\(bad))")
        await connection.close()
        // The active version, not --model.
        var arguments = h.daemonArguments()
        let i = arguments.firstIndex(of: "--model")!
        arguments.removeSubrange(i...(i + 1))
        let result = try runClipd(arguments, timeout: 120)
        assertCleanFailure(result, mentioning: [URL(fileURLWithPath: path).lastPathComponent, "visual.proj"])
    }
}
