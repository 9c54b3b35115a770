import XCTest
import Tensor
@testable import CLIP

/// Broken model files must give an error that names the problem and the file, never a crash.
final class MalformedCheckpointTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.tiny.appendingPathComponent("open_clip_config.json"),
                                         to: dir.appendingPathComponent("open_clip_config.json"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func expectError(_ path: String, _ kind: CLIPError.Kind, mentioning words: [String],
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try CheckpointLoader.load(path: path), file: file, line: line) { error in
            guard let e = error as? CLIPError else { return XCTFail("not a CLIPError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, kind, e.message, file: file, line: line)
            for w in words { XCTAssertTrue(e.message.contains(w), "'\(e.message)' lacks '\(w)'", file: file, line: line) }
        }
    }

    func original(_ name: String) throws -> Data { try Data(contentsOf: Fixtures.tiny.appendingPathComponent(name)) }

    func writeStateDict(_ name: String, _ edit: (inout [(name: String, tensor: Tensor)]) -> Void) throws -> String {
        let ckpt = try CheckpointLoader.load(path: Fixtures.tiny.appendingPathComponent("openai_format.safetensors").path)
        var tensors: [(name: String, tensor: Tensor)] = ckpt.parameters.entries.map { ($0.name, ckpt.parameters.tensor($0.name)) }
        edit(&tensors)
        let url = dir.appendingPathComponent(name)
        try SafeTensors.write(tensors, to: url)
        return url.path
    }

    func testMissingFile() {
        expectError(dir.appendingPathComponent("nope.safetensors").path, .fileNotFound, mentioning: ["nope.safetensors"])
    }

    func testTruncatedSafetensors() throws {
        let data = try original("openai_format.safetensors")
        for cut in [4, 100, data.count / 2, data.count - 1] {
            let url = dir.appendingPathComponent("cut\(cut).safetensors")
            try data.prefix(cut).write(to: url)
            expectError(url.path, .corrupt, mentioning: [url.lastPathComponent])
        }
    }

    func testTruncatedAndGarbageTorchZip() throws {
        let data = try original("openai_format.pt")
        let cut = dir.appendingPathComponent("cut.pt")
        try data.prefix(data.count / 2).write(to: cut)
        expectError(cut.path, .corrupt, mentioning: ["cut.pt"])
        let garbage = dir.appendingPathComponent("garbage.pt")
        var rng = SeededGenerator(seed: 7)
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(to: garbage)
        expectError(garbage.path, .corrupt, mentioning: ["garbage.pt"])
    }

    func testMissingTensorIsNamed() throws {
        let path = try writeStateDict("missing.safetensors") { $0.removeAll { $0.name == "visual.ln_post.bias" } }
        expectError(path, .missingTensor, mentioning: ["visual.ln_post.bias", "missing.safetensors"])
    }

    func testMisShapedTensorIsNamed() throws {
        let path = try writeStateDict("shape.safetensors") { tensors in
            let i = tensors.firstIndex { $0.name == "transformer.resblocks.1.mlp.c_fc.bias" }!
            tensors[i].tensor = Tensor(zeros: [255])
        }
        expectError(path, .shapeMismatch, mentioning: ["transformer.resblocks.1.mlp.c_fc.bias", "[255]", "[256]"])
    }

    func testUnexpectedTensorIsNamed() throws {
        let path = try writeStateDict("extra.safetensors") { $0.append(("visual.transformer.resblocks.2.ln_1.weight", Tensor(zeros: [64]))) }
        expectError(path, .unexpectedTensor, mentioning: ["visual.transformer.resblocks.2.ln_1.weight"])
    }

    func testPickleThatCallsCodeIsRefused() throws {
        // A zip whose data.pkl asks for os.system: must be refused, not run.
        let pickle: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8) + [0x58, 4, 0, 0, 0] + Array("true".utf8) + [0x85, 0x52, 0x2E]
        let url = dir.appendingPathComponent("evil.pt")
        try makeStoredZip(["evil/data.pkl": Data(pickle)]).write(to: url)
        expectError(url.path, .unsupportedFormat, mentioning: ["os.system"])
    }

    func testHuggingFaceDirectoryWithoutWeights() throws {
        let hf = dir.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: hf, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.tiny.appendingPathComponent("hf/config.json"), to: hf.appendingPathComponent("config.json"))
        expectError(hf.path, .fileNotFound, mentioning: ["model.safetensors"])
    }

    func testShardedHuggingFaceDirectory() throws {
        let hf = dir.appendingPathComponent("sharded")
        try FileManager.default.createDirectory(at: hf, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.tiny.appendingPathComponent("hf/config.json"), to: hf.appendingPathComponent("config.json"))
        let (tensors, _) = try SafeTensors.read(Fixtures.tiny.appendingPathComponent("hf/model.safetensors"))
        let names = tensors.keys.sorted()
        var map: [String: String] = [:]
        for (shard, part) in [names.filter { $0.hasPrefix("text") }, names.filter { !$0.hasPrefix("text") }].enumerated() {
            let file = "model-0000\(shard + 1)-of-00002.safetensors"
            try SafeTensors.write(part.map { ($0, Tensor(shape: tensors[$0]!.shape, data: tensors[$0]!.floats())) },
                                  to: hf.appendingPathComponent(file))
            for n in part { map[n] = file }
        }
        let index = try JSONSerialization.data(withJSONObject: ["weight_map": map])
        try index.write(to: hf.appendingPathComponent("model.safetensors.index.json"))
        let sharded = try CheckpointLoader.load(path: hf.path)
        let single = try CheckpointLoader.load(path: Fixtures.tiny.appendingPathComponent("hf").path)
        XCTAssertEqual(maxAbsDiff(UnsafeBufferPointer(start: sharded.parameters.storage, count: sharded.parameters.count),
                                  UnsafeBufferPointer(start: single.parameters.storage, count: single.parameters.count)), 0)
    }

    func testHalfPrecisionCheckpointLoads() throws {
        let ckpt = try CheckpointLoader.load(path: Fixtures.tiny.appendingPathComponent("openai_format.safetensors").path)
        let url = dir.appendingPathComponent("half.safetensors")
        try SafeTensors.write(ckpt.parameters.entries.map { ($0.name, ckpt.parameters.tensor($0.name)) }, halfPrecision: true, to: url)
        let half = try CheckpointLoader.load(path: url.path)
        let a = UnsafeBufferPointer(start: half.parameters.storage, count: half.parameters.count)
        let b = UnsafeBufferPointer(start: ckpt.parameters.storage, count: ckpt.parameters.count)
        // Float16 keeps 11 significant bits: relative error ≤ 2^-11.
        for i in stride(from: 0, to: a.count, by: 97) { XCTAssertEqual(a[i], b[i], accuracy: abs(b[i]) / 2048 + 1e-7) }
    }

    func testArchitectureInferredFromShapesWithoutConfig() throws {
        try FileManager.default.removeItem(at: dir.appendingPathComponent("open_clip_config.json"))
        let path = try writeStateDict("noconfig.safetensors") { _ in }
        let ckpt = try CheckpointLoader.load(path: path)
        // OpenAI's build_model rule: heads = width / 64, QuickGELU.
        XCTAssertEqual(ckpt.config.vision.heads, 1)
        XCTAssertEqual(ckpt.config.text.heads, 1)
        XCTAssertEqual(ckpt.config.imageSize, 224)
        XCTAssertEqual(ckpt.config.patchSize, 32)
        XCTAssertEqual(ckpt.config.vision.layers, 2)
        XCTAssertEqual(ckpt.config.contextLength, 77)
        XCTAssertEqual(ckpt.config.activation, .quickGELU)
    }
}

/// A minimal stored (uncompressed) zip writer for test inputs.
func makeStoredZip(_ files: [String: Data]) -> Data {
    var out = Data(), central = Data()
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
    for (name, body) in files.sorted(by: { $0.key < $1.key }) {
        let offset = out.count
        let n = Array(name.utf8)
        out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
            + le32(body.count) + le32(body.count) + le16(n.count) + le16(0) + n
        out += body
        central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
            + le32(body.count) + le32(body.count) + le16(n.count) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + n
    }
    let cdOffset = out.count
    out += central
    out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(files.count) + le16(files.count) + le32(central.count) + le32(cdOffset) + le16(0)
    return out
}
