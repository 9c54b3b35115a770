import Foundation
import TestSupport
import XCTest

/// `clipd fetch`: the fetcher's limits and error classes as a user sees them.
final class FetchCLITests: XCTestCase {
    private var images: URL { Repository.fixtures.appendingPathComponent("images") }

    func testFileUnderRootIsWrittenAndSummarised() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("fetch-cli-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: output) }
        let source = images.appendingPathComponent("bad/gif_named.jpg")
        let r = try runClipd(["fetch", "file://\(source.path)", "--file-root", images.path, "--output", output.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let summary = jsonObject(r.lines.first ?? "")
        XCTAssertEqual(summary["format"] as? String, "gif", "sniffed from the bytes, not the .jpg name")
        XCTAssertEqual(summary["bytes"] as? Int, try Data(contentsOf: source).count)
        XCTAssertEqual(summary["attempts"] as? Int, 1)
        XCTAssertEqual(try Data(contentsOf: output), try Data(contentsOf: source))
    }

    func testRefusalsAreOneLineErrorsWithTheirClass() throws {
        assertCleanFailure(try runClipd(["fetch", "file:///etc/passwd", "--file-root", images.path]),
                           mentioning: ["file_not_allowed"])
        assertCleanFailure(try runClipd(["fetch", "http://169.254.169.254/latest/meta-data/"]),
                           mentioning: ["forbidden_address", "169.254.169.254"])
        assertCleanFailure(try runClipd(["fetch", "ftp://example.com/a.jpg"]), mentioning: ["unsupported_scheme"])
        assertCleanFailure(try runClipd(["fetch", "http://example.com/a.jpg", "--attempts", "0"]), mentioning: ["--attempts"])
    }
}
