import Foundation
import TestSupport
import XCTest

final class FinetuneJobCLITests: XCTestCase {
    func testBenchReportsEveryModeWithItsForwardOnlyBaseline() throws {
        let r = try runClipd(["finetune", "bench", "--arch", "tiny", "--batch", "2", "--seconds", "0.01", "--modes", "projections,lock-image,full"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.lines.count, 1)
        let report = jsonObject(r.lines[0])
        XCTAssertEqual(report["arch"] as? String, "tiny")
        let modes = try XCTUnwrap(report["modes"] as? [[String: Any]])
        XCTAssertEqual(modes.map { $0["mode"] as? String }, ["projections", "lock-image", "full"])
        for mode in modes {
            XCTAssertGreaterThan((mode["pairs_per_second"] as? NSNumber)?.doubleValue ?? 0, 0)
            XCTAssertGreaterThan((mode["forward_only_pairs_per_second"] as? NSNumber)?.doubleValue ?? 0, 0)
        }
        let trained = modes.map { ($0["trained_parameters"] as? NSNumber)?.intValue ?? 0 }
        XCTAssertLessThan(trained[0], trained[1], "projections train less than lock-image")
        XCTAssertLessThan(trained[1], trained[2], "lock-image trains less than full")
        XCTAssertEqual(trained[2], (report["parameters"] as? NSNumber)?.intValue, "full trains every parameter")
    }

    func testBadInputFailsWithOneLine() throws {
        assertCleanFailure(try runClipd(["finetune", "bench", "--arch", "ViT-Z-99"]), mentioning: ["ViT-Z-99"])
        assertCleanFailure(try runClipd(["finetune", "schedule", "--database-url", "postgres://127.0.0.1:1/x", "--mode", "everything"]),
                           mentioning: ["unknown mode everything"])
        assertCleanFailure(try runClipd(["finetune", "schedule", "--database-url", "postgres://127.0.0.1:1/x", "--held-out-fraction", "1.5"]),
                           mentioning: ["held_out_fraction"])
        assertCleanFailure(try runClipd(["finetune", "run", "--database-url", "postgres://127.0.0.1:1/x"]), mentioning: ["--canary"])
        assertCleanFailure(try runClipd(["finetune", "run", "--database-url", "postgres://127.0.0.1:1/x", "--canary", "c.json", "--alphas", "0,half"]),
                           mentioning: ["--alphas"])
        assertCleanFailure(try runClipd(["finetune", "run", "--database-url", "postgres://127.0.0.1:1/x", "--canary", "/nonexistent/canary.json"]),
                           mentioning: ["cannot read canary file"])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-canary-\(UUID().uuidString).json")
        try Data(#"{"label_set": "x", "images": []}"#.utf8).write(to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        assertCleanFailure(try runClipd(["finetune", "run", "--database-url", "postgres://127.0.0.1:1/x", "--canary", dir.path]),
                           mentioning: ["at least one image"])
        assertCleanFailure(try runClipd(["finetune", "list", "--database-url", "postgres://127.0.0.1:1/x", "--status", "done"]),
                           mentioning: ["--status done"])
    }
}
