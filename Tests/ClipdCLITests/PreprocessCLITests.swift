import CLIP
import Foundation
import TestSupport
import XCTest

/// `clipd preprocess`: the model input file and summary as a user sees them.
final class PreprocessCLITests: XCTestCase {
    private var images: URL { Repository.fixtures.appendingPathComponent("images") }

    func testWritesOpenCLIPsTensorAndSummary() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("preprocess-cli-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: output) }
        let r = try runClipd(["preprocess", images.appendingPathComponent("coffee_596x400_422_restart.jpg").path,
                             "--output", output.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.lines.count, 1)
        let summary = jsonObject(r.lines.first ?? "")
        XCTAssertEqual(summary["source_width"] as? Int, 596)
        XCTAssertEqual(summary["resized_width"] as? Int, 333)
        XCTAssertEqual(summary["crop_left"] as? Int, 54)
        XCTAssertEqual(summary["mode"] as? String, "RGB")
        XCTAssertEqual(summary["decode_mode"] as? String, "jpeg baseline")

        let data = try Data(contentsOf: output)
        XCTAssertEqual(data.count, 3 * 224 * 224 * 4)
        let written = data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
        let reference = try SafeTensors.read(images.appendingPathComponent("preprocess.safetensors"))
        let expected = try XCTUnwrap(reference.tensors["coffee_596x400_422_restart"]).floats()
        XCTAssertEqual(written.count, expected.count)
        let maxDifference = zip(written, expected).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(maxDifference, 1e-5)
    }

    func testExifFlag() throws {
        let source = images.appendingPathComponent("flower_427x640_exif6.jpg").path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("preprocess-cli-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: output) }
        let upright = jsonObject(try runClipd(["preprocess", source, "--output", output.path]).lines.first ?? "")
        XCTAssertEqual(upright["orientation_applied"] as? Bool, true)
        XCTAssertEqual(upright["crop_left"] as? Int, 56)
        let stored = jsonObject(try runClipd(["preprocess", source, "--no-exif", "--output", output.path]).lines.first ?? "")
        XCTAssertEqual(stored["orientation_applied"] as? Bool, false)
        XCTAssertEqual(stored["crop_top"] as? Int, 56)
    }

    func testFailuresAreOneLineErrorsWithTheirClass() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("preprocess-cli-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: output) }
        for (file, errorClass) in [("bad/truncated_half.jpg", "truncated"), ("bad/bitmap.bmp", "unsupported_format"),
                                   ("bad/bomb_60000x60000.jpg", "too_large"), ("bad/empty.jpg", "empty"),
                                   ("bad/random_bytes.jpg", "corrupt")] {
            assertCleanFailure(try runClipd(["preprocess", images.appendingPathComponent(file).path, "--output", output.path]),
                               mentioning: [errorClass])
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "nothing is written for \(file)")
        }
        assertCleanFailure(try runClipd(["preprocess", images.appendingPathComponent("chelsea_16x16.jpg").path]),
                           mentioning: ["--output"])
        assertCleanFailure(try runClipd(["preprocess", "/nonexistent.jpg", "--output", output.path]), mentioning: ["cannot read"])
    }
}
