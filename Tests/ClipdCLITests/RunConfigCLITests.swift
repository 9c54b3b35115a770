import Foundation
import TestSupport
import XCTest

/// `clipd run` configuration layering: defaults < JSON file < CLIPD_* environment < flags.
final class RunConfigCLITests: XCTestCase {
    func testLayersApplyInRisingPrecedenceAndBadValuesAreRefused() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-config-\(UUID().uuidString).json")
        try #"{"batch_size": 8, "topic": "from-file", "workers": 2, "allow_file_roots": ["/a"]}"#.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try runClipd(["run", "--config", file.path, "--print-config", "--workers", "3"],
                            environment: ["CLIPD_TOPIC": "from-env", "CLIPD_WORKERS": "1", "CLIPD_ALLOW_PRIVATE_NETWORKS": "true",
                                          "CLIPD_DATABASE_URL": "postgres://u:secret@db:5432/x"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let c = jsonObject(r.stdout)
        XCTAssertEqual(c["batch_size"] as? Int, 8, "file over default")
        XCTAssertEqual(c["topic"] as? String, "from-env", "environment over file")
        XCTAssertEqual(c["workers"] as? Int, 3, "flag over environment")
        XCTAssertEqual(c["allow_file_roots"] as? [String], ["/a"])
        XCTAssertEqual(c["allow_private_networks"] as? Bool, true)
        XCTAssertEqual(c["group"] as? String, "clipd", "default kept")
        XCTAssertFalse(r.stdout.contains("secret"), "the password is not printed")

        try #"{"batch_sise": 8}"#.write(to: file, atomically: true, encoding: .utf8)
        assertCleanFailure(try runClipd(["run", "--config", file.path, "--print-config"]), mentioning: ["batch_sise"])
        assertCleanFailure(try runClipd(["run", "--print-config"], environment: ["CLIPD_BATCH_SIZE": "abc"]), mentioning: ["CLIPD_BATCH_SIZE"])
        assertCleanFailure(try runClipd(["run", "--print-config", "--max-in-flight", "2"]), mentioning: ["max_in_flight"])
    }
}

final class FetchPolitenessConfigCLITests: XCTestCase {
    /// Per-host headers from a flag, the environment or the file reach the configuration, and
    /// `--print-config` never shows their values.
    func testHostHeadersAreLayeredAndNeverPrinted() throws {
        let flag = try runClipd(["run", "--print-config", "--fetch-host-header", "images.example.com Authorization: Bearer flag-s3cret",
                                 "--fetch-host-concurrency", "2"])
        XCTAssertEqual(flag.status, 0, flag.stderr)
        XCTAssertFalse(flag.stdout.contains("flag-s3cret"), flag.stdout)
        let printed = jsonObject(flag.stdout)
        XCTAssertEqual((printed["fetch_host_headers"] as? [String: [String: String]])?["images.example.com"]?["Authorization"], "***")
        XCTAssertEqual(printed["fetch_host_concurrency"] as? Int, 2)

        let env = try runClipd(["run", "--print-config"],
                               environment: ["CLIPD_FETCH_HOST_HEADERS": #"{"bucket.internal:9000": {"X-Api-Key": "env-s3cret"}}"#])
        XCTAssertEqual(env.status, 0, env.stderr)
        XCTAssertFalse(env.stdout.contains("env-s3cret"), env.stdout)
        XCTAssertNotNil((jsonObject(env.stdout)["fetch_host_headers"] as? [String: Any])?["bucket.internal:9000"])

        assertCleanFailure(try runClipd(["run", "--print-config", "--fetch-host-header", "no-colon-here"]), mentioning: ["--fetch-host-header"])
        assertCleanFailure(try runClipd(["run", "--print-config"], environment: ["CLIPD_FETCH_HOST_HEADERS": "[1,2]"]),
                           mentioning: ["CLIPD_FETCH_HOST_HEADERS"])
        assertCleanFailure(try runClipd(["run", "--print-config", "--fetch-host-concurrency", "0"]), mentioning: ["fetch_host_concurrency"])
    }
}
