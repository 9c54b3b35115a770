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
