import CLIP
import Foundation
import TestSupport
import XCTest

final class EngineCLITests: XCTestCase {
    let tiny = Repository.fixtures.appendingPathComponent("models/tiny")

    func testBLASKernelCheckPassesWithTheKernelClipdRuns() throws {
        let r = try runClipd(["blas-check"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = jsonObject(r.stdout)
        XCTAssertEqual(j["ok"] as? Bool, true, r.stdout)
    }

    func testMisdetectedKernelIsReplacedByReExecution() throws {
        let r = try runClipd(["blas-check"], environment: ["CLIPD_BLAS_ASSUME_DETECTED": "Prescott"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = jsonObject(r.stdout)
        XCTAssertEqual(j["ok"] as? Bool, true)
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        if flags.contains(" avx2") {
            // The process re-executed itself with a kernel matching the CPU, and the check
            // above ran on that kernel.
            XCTAssertEqual(j["blas_kernel_source"] as? String, "auto-selected", r.stdout)
            XCTAssertNotEqual(j["blas_kernel"] as? String, "Prescott")
        }
    }

    func testUserKernelChoiceIsRespected() throws {
        let r = try runClipd(["blas-check"], environment: ["OPENBLAS_CORETYPE": "Haswell"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = jsonObject(r.stdout)
        XCTAssertEqual(j["blas_kernel_source"] as? String, "user")
        XCTAssertEqual(j["blas_kernel"] as? String, "Haswell")
    }

    func testEmbedMatchesReferenceInInputOrder() throws {
        let ref = try SafeTensors.read(Repository.fixtures.appendingPathComponent("models/tiny/reference.safetensors")).tensors
        let images = try SafeTensors.read(Repository.fixtures.appendingPathComponent("images/preprocess.safetensors")).tensors
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-embed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pixelsFile = dir.appendingPathComponent("astronaut.f32")
        let pixels = images["astronaut_512x512"]!.floats()
        try pixels.withUnsafeBytes { Data($0) }.write(to: pixelsFile)
        let tokens = ref["text_tokens"]!.floats().map { Int($0) }
        let caption3 = "[" + tokens[(3 * 77)..<(4 * 77)].map(String.init).joined(separator: ",") + "]"
        let caption0Short = "[" + tokens[0..<(0 + 10)].map(String.init).joined(separator: ",") + "]"  // zero padding implied
        let r = try runClipd(["embed", "--model", tiny.appendingPathComponent("openai_format.pt").path,
                             "--tokens", caption3, "--pixels", pixelsFile.path, "--tokens=\(caption0Short)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.lines.map(jsonObject)
        XCTAssertEqual(lines.map { $0["kind"] as? String }, ["text", "image", "text"])
        let imageRef = Array(ref["image_features_normalized"]!.floats()[0..<32])
        let textRef = ref["text_features_normalized"]!.floats()
        func embedding(_ i: Int) -> [Float] { (lines[i]["embedding"] as! [NSNumber]).map { $0.floatValue } }
        XCTAssertEqual(lines[1]["input"] as? String, pixelsFile.path)
        for (got, want) in [(embedding(0), Array(textRef[(3 * 32)..<(4 * 32)])), (embedding(1), imageRef), (embedding(2), Array(textRef[0..<32]))] {
            XCTAssertEqual(got.count, 32)
            XCTAssertLessThan(zip(got, want).map { abs($0 - $1) }.max()!, 1e-5)
        }
    }

    func testEmbedRejectsBadInputWithOneLine() throws {
        let model = tiny.appendingPathComponent("hf").path
        let small = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-small-\(UUID().uuidString).f32")
        try Data(count: 1000).write(to: small)
        defer { try? FileManager.default.removeItem(at: small) }
        assertCleanFailure(try runClipd(["embed", "--model", model, "--pixels", small.path]), mentioning: ["1000 bytes", "602112"])
        assertCleanFailure(try runClipd(["embed", "--model", model, "--tokens", "[1, 2"]), mentioning: ["--tokens"])
        assertCleanFailure(try runClipd(["embed", "--model", model, "--tokens", "[99999]"]), mentioning: ["99999"])
        assertCleanFailure(try runClipd(["embed", "--model", "/nonexistent/model", "--tokens", "[49406, 49407]"]), mentioning: ["/nonexistent/model"])
        assertCleanFailure(try runClipd(["embed", "--model", model]), mentioning: ["at least one input"])
        assertCleanFailure(try runClipd(["bench", "--arch", "ViT-Z-99"]), mentioning: ["ViT-Z-99"])
    }
}

final class EmbedTextCLITests: XCTestCase {
    func testTextAndTextsFileUseTheTokenizerAndMatchReference() throws {
        let ref = try SafeTensors.read(Repository.fixtures.appendingPathComponent("models/tiny/reference.safetensors")).tensors
        let tokens = try JSONSerialization.jsonObject(with: Data(contentsOf: Repository.fixtures.appendingPathComponent("tokenizer/tokens.json"))) as! [String: Any]
        let captions = (tokens["captions"] as! [[String: Any]]).map { $0["text"] as! String }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-texts-\(UUID().uuidString).jsonl")
        let lines = [captions[1], captions[26]].map { String(decoding: try! JSONSerialization.data(withJSONObject: $0, options: [.fragmentsAllowed]), as: UTF8.self) }
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try runClipd(["embed", "--model", Repository.fixtures.appendingPathComponent("models/tiny/hf").path,
                             "--texts-file", file.path, "--text", captions[0]])
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = r.lines.map(jsonObject)
        XCTAssertEqual(out.map { $0["input"] as? String }, [captions[1], captions[26], captions[0]])
        let want = ref["text_features_normalized"]!.floats()
        for (row, index) in zip(out, [1, 26, 0]) {
            let got = (row["embedding"] as! [NSNumber]).map(\.floatValue)
            XCTAssertLessThan(zip(got, want[(index * 32)..<((index + 1) * 32)]).map { abs($0 - $1) }.max()!, 1e-5, "caption \(index)")
        }
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-bad-\(UUID().uuidString).jsonl")
        try "\"ok\"\n{not json\n".write(to: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: bad) }
        assertCleanFailure(try runClipd(["embed", "--model", Repository.fixtures.appendingPathComponent("models/tiny/hf").path, "--texts-file", bad.path]),
                           mentioning: ["line 2"])
    }
}
