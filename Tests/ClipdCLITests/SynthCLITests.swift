import Foundation
import TestSupport
import XCTest

/// `clipd synth`: the synthetic scenes as JPEG files and stream records.
final class SynthCLITests: XCTestCase {
    private func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("synth-cli-\(UUID().uuidString)")
    }

    private func records(in directory: URL) throws -> [[String: Any]] {
        try String(contentsOf: directory.appendingPathComponent("records.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { jsonObject(String($0)) }
    }

    func testWritesJPEGsAndRecordsDeterministically() throws {
        let first = temporaryDirectory(), second = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: first); try? FileManager.default.removeItem(at: second) }
        for directory in [first, second] {
            let r = try runClipd(["synth", "--output", directory.path, "--side", "32", "--split", "heldout", "--sample", "5"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let lines = try records(in: first)
        XCTAssertEqual(lines.count, 5)
        for record in lines {
            let id = try XCTUnwrap(record["id"] as? String)
            let url = try XCTUnwrap(URL(string: try XCTUnwrap(record["image_url"] as? String)))
            XCTAssertEqual(url.scheme, "file")
            XCTAssertEqual(url.deletingLastPathComponent().standardizedFileURL.path, first.standardizedFileURL.path)
            let bytes = try Data(contentsOf: url)
            XCTAssertEqual(Array(bytes.prefix(3)), [0xFF, 0xD8, 0xFF], id)
            XCTAssertEqual(bytes, try Data(contentsOf: second.appendingPathComponent(url.lastPathComponent)), "\(id) differs between runs")
            let metadata = try XCTUnwrap(record["metadata"] as? [String: Any])
            XCTAssertEqual(metadata["held_out"] as? Bool, true)
            let caption = try XCTUnwrap(record["caption"] as? String)
            for key in ["colour", "shape", "size"] {
                XCTAssertTrue(caption.contains(try XCTUnwrap(metadata[key] as? String)), "\(caption) vs \(metadata)")
            }
        }
        XCTAssertEqual(try Data(contentsOf: first.appendingPathComponent("records.jsonl")).count,
                       try Data(contentsOf: second.appendingPathComponent("records.jsonl")).count)
    }

    func testURLPrefixAndSplits() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var r = try runClipd(["synth", "--output", directory.path, "--side", "16", "--split", "train", "--url-prefix", "http://127.0.0.1:8080/samples"])
        XCTAssertEqual(r.status, 0, r.stderr)
        var lines = try records(in: directory)
        XCTAssertEqual(lines.count, 180)
        XCTAssertTrue(lines.allSatisfy { ($0["image_url"] as? String)?.hasPrefix("http://127.0.0.1:8080/samples/") == true })
        XCTAssertTrue(lines.allSatisfy { ($0["metadata"] as? [String: Any])?["held_out"] as? Bool == false })
        r = try runClipd(["synth", "--output", directory.path, "--side", "16", "--variants", "2", "--split", "all", "--sample", "30"])
        XCTAssertEqual(r.status, 0, r.stderr)
        lines = try records(in: directory)
        XCTAssertEqual(lines.count, 30)
        XCTAssertEqual(Set(lines.compactMap { $0["id"] as? String }).count, 30)
    }

    func testBadOptionsFailCleanly() throws {
        assertCleanFailure(try runClipd(["synth", "--output", temporaryDirectory().path, "--side", "2"]), mentioning: ["--side"])
        assertCleanFailure(try runClipd(["synth", "--output", temporaryDirectory().path, "--split", "everything"]), mentioning: ["split"])
        assertCleanFailure(try runClipd(["synth", "--output", "/proc/clipd-synth-cannot-write"]), mentioning: ["cannot"])
    }

    func testTrainShapesRefusesBadOptions() throws {
        assertCleanFailure(try runClipd(["finetune", "train-shapes", "--steps", "0"]), mentioning: ["--steps"])
        assertCleanFailure(try runClipd(["finetune", "train-shapes", "--partial-captions", "1.5"]), mentioning: ["--partial-captions"])
        assertCleanFailure(try runClipd(["finetune", "train-shapes", "--vision-width", "30"]), mentioning: ["architecture"])
    }
}
