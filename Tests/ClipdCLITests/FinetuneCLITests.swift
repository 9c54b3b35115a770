import CLIP
import Foundation
import TestSupport
import XCTest

final class FinetuneCLITests: XCTestCase {
    func testStepMatchesTorchAndWritesALoadableCheckpoint() throws {
        let training = try SafeTensors.read(Repository.fixtures.appendingPathComponent("models/tiny/training.safetensors")).tensors
        let images = try SafeTensors.read(Repository.fixtures.appendingPathComponent("images/preprocess.safetensors")).tensors
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: Repository.fixtures.appendingPathComponent("models/tiny/training_meta.json"))) as! [String: Any]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-ft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var args = ["finetune", "step", "--model", Repository.fixtures.appendingPathComponent("models/tiny/hf").path,
                    "--lr", "1e-3", "--weight-decay", "0.2", "--betas", "0.9,0.98", "--eps", "1e-6"]
        let tokens = training["tokens"]!.floats().map { Int($0) }
        for (i, key) in (meta["image_keys"] as! [String]).enumerated() {
            let file = dir.appendingPathComponent("\(i).f32")
            try images[key]!.floats().withUnsafeBytes { Data($0) }.write(to: file)
            args += ["--pixels", file.path, "--tokens", "[" + tokens[(i * 77)..<((i + 1) * 77)].map(String.init).joined(separator: ",") + "]"]
        }
        let output = dir.appendingPathComponent("step1.safetensors")
        let r = try runClipd(args + ["--output", output.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let loss = (jsonObject(r.stdout)["loss"] as? NSNumber)?.floatValue ?? .nan
        XCTAssertEqual(loss, training["loss"]!.floats()[0], accuracy: 1e-5)
        let updated = try CheckpointLoader.load(path: output.path)
        XCTAssertEqual(updated.config.text.heads, 4)
        for name in ["visual.proj", "text_projection", "logit_scale", "transformer.resblocks.1.attn.in_proj_weight"] {
            let want = training["updated.\(name)"]!.floats()
            let got = Array(UnsafeBufferPointer(start: updated.parameters[name], count: want.count))
            XCTAssertLessThan(zip(got, want).map { abs($0 - $1) }.max()!, 2e-5, name)
        }
        // Mismatched pairs are refused before anything is written.
        let bad = try runClipd(["finetune", "step", "--model", Repository.fixtures.appendingPathComponent("models/tiny/hf").path,
                               "--pixels", dir.appendingPathComponent("0.f32").path, "--output", dir.appendingPathComponent("x.safetensors").path])
        assertCleanFailure(bad, mentioning: ["--tokens"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.safetensors").path))
    }
}
