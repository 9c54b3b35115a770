import Foundation
import TestSupport
import XCTest

/// The database password never reaches stdout or stderr: not `--print-config`, not a failed
/// connection's error, not a log line at trace level; for every way a password can be given.
final class SecretsCLITests: XCTestCase {
    /// Connection strings to a port nothing listens on; every secret contains "Zk9".
    static let forms = [
        "postgres://clipd:Zk9secretA@127.0.0.1:1/clipd",
        "postgresql://clipd:Zk9secret%42@127.0.0.1:1/clipd",
        "postgres://clipd:Zk9secret%zz@127.0.0.1:1/clipd",
        "postgres://127.0.0.1:1/clipd?user=clipd&password=Zk9secretC",
        "postgres://clipd:Zk9secretD@127.0.0.1:1,127.0.0.1:2/clipd",
        "host=127.0.0.1 port=1 dbname=clipd password=Zk9secretE",
        "host=127.0.0.1 port=1 dbname=clipd password='Zk9 secret F'",
        "host=127.0.0.1 port=1 password=Zk9 secretG dbname=clipd",
    ]

    func assertNoSecret(_ r: ClipdResult, _ form: String, file: StaticString = #filePath, line: UInt = #line) {
        for text in [r.stdout, r.stderr] {
            XCTAssertFalse(text.contains("Zk9") || text.contains("secret"), "\(form) leaked: \(text)", file: file, line: line)
        }
    }

    func testPrintConfigHidesThePasswordOfEveryForm() throws {
        for form in Self.forms {
            let fromFlag = try runClipd(["run", "--print-config", "--database-url", form])
            XCTAssertEqual(fromFlag.status, 0, fromFlag.stderr)
            assertNoSecret(fromFlag, form)
            XCTAssertTrue(fromFlag.stdout.contains("127.0.0.1"), fromFlag.stdout)
            let fromEnvironment = try runClipd(["run", "--print-config"], environment: ["CLIPD_DATABASE_URL": form])
            XCTAssertEqual(fromEnvironment.status, 0, fromEnvironment.stderr)
            assertNoSecret(fromEnvironment, form)
        }
    }

    func testAFailingConnectionsErrorAndTraceLogsHideThePassword() throws {
        for form in Self.forms {
            let r = try runClipd(["migrate", "--database-url", form, "--connect-attempts", "2"], environment: ["CLIPD_LOG_LEVEL": "trace"])
            assertCleanFailure(r, mentioning: [])
            assertNoSecret(r, form)
            XCTAssertTrue(r.stderr.contains("PostgreSQL") || r.stderr.contains("connect"), r.stderr)
        }
    }

    func testPGPasswordAndThePasswordFileAreNeverPrinted() throws {
        let passfile = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-pgpass-\(UUID().uuidString)")
        try "127.0.0.1:1:*:clipd:Zk9secretFromFile\n".write(to: passfile, atomically: true, encoding: .utf8)
        _ = chmod(passfile.path, 0o600)
        defer { try? FileManager.default.removeItem(at: passfile) }
        let environment = ["PGPASSWORD": "Zk9secretFromEnvironment", "PGPASSFILE": passfile.path, "CLIPD_LOG_LEVEL": "trace"]
        let url = "postgres://clipd@127.0.0.1:1/clipd"
        let printed = try runClipd(["run", "--print-config", "--database-url", url], environment: environment)
        XCTAssertEqual(printed.status, 0, printed.stderr)
        assertNoSecret(printed, "PGPASSWORD")
        let failed = try runClipd(["migrate", "--database-url", url, "--connect-attempts", "2"], environment: environment)
        assertCleanFailure(failed, mentioning: [])
        assertNoSecret(failed, "PGPASSWORD/PGPASSFILE")
    }

    func testTheDaemonRetryingARefusedConnectionAtTraceLevelNeverLogsThePassword() async throws {
        for form in Self.forms {
            let daemon = try BackgroundProcess(["run", "--database-url", form, "--http-port", "0"],
                                               environment: ["CLIPD_LOG_LEVEL": "trace", "PGPASSWORD": "Zk9secretFromEnvironment"])
            defer { daemon.stop() }
            // The daemon retries PostgreSQL without limit; two failed attempts have been logged
            // (URL and libpq's error included) once "attempt 2" appears.
            try await waitUntil("two failed connection attempts logged", timeout: .seconds(60)) { daemon.stderr.contains("attempt 2") }
            daemon.stop()
            let stderr = daemon.stderr
            XCTAssertFalse(stderr.contains("Zk9") || stderr.contains("secret"), "\(form) leaked: \(stderr)")
            XCTAssertTrue(stderr.contains("127.0.0.1"), "the URL is logged, redacted: \(stderr)")
        }
    }
}
