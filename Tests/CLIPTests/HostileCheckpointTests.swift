import XCTest
import Tensor
@testable import CLIP

/// Crafted checkpoints (overflowing shapes and offsets, absurd configs, hostile pickles and
/// zips, repeating views) must give a `CLIPError` naming the file and tensor — never a crash,
/// never an allocation sized by a number the file claims. Each file is built here.
final class HostileCheckpointTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    @discardableResult
    func expectError(_ path: String, _ kinds: Set<CLIPError.Kind>, mentioning words: [String],
                     file: StaticString = #filePath, line: UInt = #line) -> CLIPError? {
        var caught: CLIPError?
        XCTAssertThrowsError(try CheckpointLoader.load(path: path), file: file, line: line) { error in
            guard let e = error as? CLIPError else { return XCTFail("not a CLIPError: \(error)", file: file, line: line) }
            caught = e
            XCTAssertTrue(kinds.contains(e.kind), "\(e.kind): \(e.message)", file: file, line: line)
            for w in words { XCTAssertTrue(e.message.contains(w), "'\(e.message)' lacks '\(w)'", file: file, line: line) }
        }
        return caught
    }

    func write(_ data: Data, _ name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try data.write(to: url)
        return url.path
    }

    // MARK: safetensors

    /// A safetensors file from a raw header (numbers written as given) and a body.
    func safetensors(header: String, body: Data = Data(count: 64)) -> Data {
        var h = Data(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        return out + h + body
    }

    func testSafetensorsShapesThatOverflow() throws {
        for (i, shape) in ["[4611686018427387904, 4]", "[2305843009213693952]", "[4294967296, 4294967296]",
                           "[9223372036854775807, 9223372036854775807, 2]", "[-1, 4]", "[1,1,1,1,1,1,1,1,1,1]"].enumerated() {
            let path = try write(safetensors(header: #"{"evil.weight": {"dtype": "F32", "shape": \#(shape), "data_offsets": [0, 16]}}"#),
                                 "shape\(i).safetensors")
            expectError(path, [.corrupt], mentioning: ["shape\(i).safetensors", "evil.weight"])
        }
    }

    func testSafetensorsOffsetsThatOverflow() throws {
        for (i, offsets) in ["[0, 9223372036854775807]", "[9223372036854775800, 9223372036854775807]",
                             "[16, 0]", "[-8, 8]", "[0, 18446744073709551615]"].enumerated() {
            let path = try write(safetensors(header: #"{"evil.bias": {"dtype": "F32", "shape": [4], "data_offsets": \#(offsets)}}"#),
                                 "offsets\(i).safetensors")
            expectError(path, [.corrupt], mentioning: ["offsets\(i).safetensors"])
        }
        // A header length near 2^64 in the first 8 bytes.
        var data = Data(repeating: 0xFF, count: 8)
        data.append(Data("{}".utf8))
        expectError(try write(data, "hlen.safetensors"), [.corrupt], mentioning: ["hlen.safetensors", "header length"])
    }

    func testSafetensorsHeaderNestedAMillionDeep() throws {
        let header = String(repeating: "[", count: 1_000_000) + String(repeating: "]", count: 1_000_000)
        let path = try write(safetensors(header: header, body: Data()), "nested.safetensors")
        expectError(path, [.corrupt], mentioning: ["nested.safetensors"])
    }

    func testSafetensorsOverlappingTensorsAreRefused() throws {
        // Two tensors reading the same bytes would let a file hold less than its weights take.
        let path = try write(safetensors(header: #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}"#),
                             "overlap.safetensors")
        expectError(path, [.corrupt], mentioning: ["overlap", "a", "b"])
    }

    /// A small valid file whose embedded clipd.config (or open_clip_config.json) is absurd.
    func clipdConfigFile(_ name: String, edit: (inout [String: Any]) -> Void) throws -> String {
        let cfg = try CheckpointLoader.load(path: Fixtures.tiny.appendingPathComponent("openai_format.safetensors").path).config
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(cfg)) as! [String: Any]
        edit(&json)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
        let url = dir.appendingPathComponent(name)
        try SafeTensors.write([("logit_scale", Tensor(zeros: [1]))], metadata: ["clipd.config": text], to: url)
        return url.path
    }

    func testAbsurdEmbeddedConfigs() throws {
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("layers", { var v = $0["vision"] as! [String: Any]; v["layers"] = 1_000_000_000_000; $0["vision"] = v }),
            ("width", { var v = $0["text"] as! [String: Any]; v["width"] = 1 << 62; $0["text"] = v }),
            ("image", { $0["imageSize"] = 1 << 62 }),
            ("patch", { $0["imageSize"] = 2048; $0["patchSize"] = 1 }),
            ("heads", { var v = $0["vision"] as! [String: Any]; v["heads"] = 0; $0["vision"] = v }),
            ("vocab", { $0["vocabSize"] = 1 << 40 }),
            ("context", { $0["contextLength"] = -5 }),
            ("eps", { $0["layerNormEps"] = -1 }),
        ]
        for (name, edit) in cases {
            let path = try clipdConfigFile("cfg-\(name).safetensors", edit: edit)
            expectError(path, [.unsupportedArchitecture], mentioning: ["cfg-\(name).safetensors"])
        }
    }

    func testAbsurdOpenCLIPConfigJSON() throws {
        let cases = [#"{"embed_dim": 64, "vision_cfg": {"layers": 1e12, "width": 64}, "text_cfg": {}}"#,
                     #"{"embed_dim": 64, "vision_cfg": {"image_size": 1e300}, "text_cfg": {}}"#,
                     #"{"embed_dim": 64, "vision_cfg": {"head_width": 0}, "text_cfg": {}}"#,
                     #"{"embed_dim": 64, "vision_cfg": {"mlp_ratio": 1e300}, "text_cfg": {}}"#,
                     #"{"embed_dim": 4611686018427387904, "vision_cfg": {}, "text_cfg": {}}"#]
        for (i, json) in cases.enumerated() {
            let sub = dir.appendingPathComponent("oc\(i)")
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
            try Data(json.utf8).write(to: sub.appendingPathComponent("open_clip_config.json"))
            try FileManager.default.copyItem(at: Fixtures.tiny.appendingPathComponent("openai_format.safetensors"),
                                             to: sub.appendingPathComponent("model.safetensors"))
            expectError(sub.appendingPathComponent("model.safetensors").path, [.unsupportedArchitecture], mentioning: ["open_clip_config.json"])
        }
    }

    func testAbsurdHuggingFaceConfig() throws {
        let hf = dir.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: hf, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: Fixtures.tiny.appendingPathComponent("hf").path) {
            try FileManager.default.copyItem(at: Fixtures.tiny.appendingPathComponent("hf/\(name)"), to: hf.appendingPathComponent(name))
        }
        let configURL = hf.appendingPathComponent("config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        var vision = json["vision_config"] as? [String: Any] ?? [:]
        vision["num_hidden_layers"] = 1e30
        json["vision_config"] = vision
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        expectError(hf.path, [.unsupportedArchitecture], mentioning: ["config.json", "num_hidden_layers"])
        vision["num_hidden_layers"] = 1_000_000_000_000
        json["vision_config"] = vision
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        expectError(hf.path, [.unsupportedArchitecture], mentioning: ["config.json", "vision layers"])
    }

    // MARK: torch zip + pickle

    func pickleFile(_ name: String, _ pickle: [UInt8], storages: [String: Data] = [:]) throws -> String {
        var files = ["archive/data.pkl": Data(pickle)]
        for (k, v) in storages { files["archive/data/\(k)"] = v }
        return try write(makeStoredZip(files), name)
    }

    func testPickleLengthsBeyondTheData() throws {
        let proto: [UInt8] = [0x80, 0x02]
        for (i, length) in [UInt64(1) << 63, UInt64(Int.max), UInt64.max, UInt64(1) << 40].enumerated() {
            let le = (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) }
            for op: UInt8 in [0x8D, 0x8E] {   // BINUNICODE8, BINBYTES8
                let path = try pickleFile("len\(i)-\(op).pt", proto + [op] + le + Array("abc".utf8) + [0x2E])
                expectError(path, [.corrupt], mentioning: ["len\(i)-\(op).pt", "pickle"])
            }
        }
        let path = try pickleFile("binunicode.pt", proto + [0x58, 0xFF, 0xFF, 0xFF, 0xFF, 0x61, 0x2E])
        expectError(path, [.corrupt], mentioning: ["binunicode.pt"])
    }

    func testPickleNestedAMillionDeep() throws {
        // EMPTY_TUPLE then a million TUPLE1: today a stack overflow when the value is freed.
        let tuples = [0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 1_000_000) + [0x2E]
        expectError(try pickleFile("deep-tuple.pt", tuples), [.corrupt], mentioning: ["deep-tuple.pt", "nested"])
        // The same through lists: EMPTY_LIST, then (EMPTY_LIST, swap by APPEND) a million times.
        var lists: [UInt8] = [0x80, 0x02, 0x5D]
        for _ in 0..<1_000_000 { lists += [0x5D, 0x28] }
        lists += [0x2E]
        var appends: [UInt8] = [0x80, 0x02]
        for _ in 0..<500_000 { appends += [0x5D] }
        for _ in 0..<499_999 { appends += [0x61] }   // APPEND: each list goes into the one below it
        appends += [0x2E]
        expectError(try pickleFile("deep-list.pt", appends), [.corrupt], mentioning: ["deep-list.pt", "nested"])
        // MARK ... LIST nesting.
        var marks: [UInt8] = [0x80, 0x02]
        for _ in 0..<300_000 { marks += [0x28] }
        for _ in 0..<300_000 { marks += [0x6C] }
        marks += [0x2E]
        expectError(try pickleFile("deep-mark.pt", marks), [.corrupt], mentioning: ["deep-mark.pt", "nested"])
    }

    func testPickleQuadraticAppendsAreBounded() throws {
        // EMPTY_LIST then a million (BININT1, APPEND): copying the list each time is quadratic.
        var ops: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00]   // memoized, as torch.save does
        for _ in 0..<1_000_000 { ops += [0x4B, 0x01, 0x61] }
        ops += [0x2E]
        expectError(try pickleFile("appends.pt", ops), [.corrupt], mentioning: ["appends.pt", "container elements"])
    }

    func testPickleMemoBeyondTheLimit() throws {
        let path = try pickleFile("memo.pt", [0x80, 0x02, 0x4E, 0x72, 0xFF, 0xFF, 0xFF, 0xFF, 0x6A, 0xFF, 0xFF, 0xFF, 0xFF, 0x2E])
        expectError(path, [.corrupt], mentioning: ["memo.pt", "memo"])
    }

    /// A protocol-2 pickle of a state dict `{name: tensor}` as torch.save writes it.
    func statePickle(_ entries: [(name: String, storage: String, type: String, offset: Int32, shape: [Int32], strides: [Int32])]) -> [UInt8] {
        func str(_ s: String) -> [UInt8] { let b = Array(s.utf8); return [0x58] + le32(Int32(b.count)) + b }
        func le32(_ v: Int32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * Int32($0))) } }
        func int(_ v: Int32) -> [UInt8] { [0x4A] + le32(v) }
        var out: [UInt8] = [0x80, 0x02] + Array("ccollections\nOrderedDict\n".utf8) + [0x29, 0x52, 0x28]
        for e in entries {
            out += str(e.name)
            out += Array("ctorch._utils\n_rebuild_tensor_v2\n".utf8) + [0x28]
            out += [0x28] + str("storage") + Array("ctorch\n\(e.type)\n".utf8) + str(e.storage) + str("cpu") + int(1) + [0x74, 0x51]
            out += int(e.offset)
            out += [0x28] + e.shape.flatMap(int) + [0x74]
            out += [0x28] + e.strides.flatMap(int) + [0x74]
            out += [0x89] + Array("ccollections\nOrderedDict\n".utf8) + [0x29, 0x52, 0x74, 0x52]
        }
        return out + [0x75, 0x2E]
    }

    func testValidHandMadeTorchFileLoadsItsTensors() throws {
        // The builder itself is right: a well-formed file reads back exactly.
        let floats: [Float] = [1, 2, 3, 4, 5, 6]
        let storage = floats.withUnsafeBytes { Data($0) }
        let path = try pickleFile("ok.pt", statePickle([("w", "0", "FloatStorage", 0, [2, 3], [3, 1]),
                                                       ("t", "0", "FloatStorage", 0, [3, 2], [1, 3])]), storages: ["0": storage])
        let tensors = try TorchCheckpoint.read(URL(fileURLWithPath: path))
        XCTAssertEqual(tensors["w"]?.floats(), floats)
        XCTAssertEqual(tensors["t"]?.floats(), [1, 4, 2, 5, 3, 6])
    }

    static func peakResidentKilobytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss
    }

    func testStrideZeroViewsAreNotExpanded() throws {
        let before = Self.peakResidentKilobytes()
        defer { XCTAssertLessThan(Self.peakResidentKilobytes() - before, 256 * 1024, "the views were expanded") }
        // 4 bytes of storage viewed as 32768 x 32768 floats (4 GB) through stride 0.
        let storage = Data(count: 4)
        let path = try pickleFile("stride0.pt", statePickle([("visual.proj", "0", "FloatStorage", 0, [32768, 32768], [0, 0])]),
                                  storages: ["0": storage])
        XCTAssertLessThan(try Data(contentsOf: URL(fileURLWithPath: path)).count, 21_000)
        expectError(path, [.corrupt], mentioning: ["stride0.pt", "visual.proj", "repeated"])
        // Overlapping strides: 100 x 100 view of 199 elements.
        let overlap = try pickleFile("overlap.pt", statePickle([("w", "0", "FloatStorage", 0, [100, 100], [1, 1])]),
                                     storages: ["0": Data(count: 4 * 10_000)])
        expectError(overlap, [.corrupt], mentioning: ["overlap.pt", "w"])
        // A view reaching past its storage, with offsets that overflow.
        let past = try pickleFile("past.pt", statePickle([("w", "0", "FloatStorage", Int32.max, [Int32.max, Int32.max], [Int32.max, 1])]),
                                  storages: ["0": Data(count: 16)])
        expectError(past, [.corrupt], mentioning: ["past.pt", "w"])
    }

    func testSharedStorageCannotExceedTheFile() throws {
        // Every parameter of the tiny model views one storage: each view is legal, but together
        // they would take far more bytes than the file holds.
        let config = try CheckpointLoader.load(path: Fixtures.tiny.appendingPathComponent("openai_format.safetensors").path).config
        let largest = config.parameterShapes.map { $0.shape.reduce(1, *) }.max()!
        let entries = config.parameterShapes.map { p -> (String, String, String, Int32, [Int32], [Int32]) in
            let strides = CheckpointTensor.contiguousStrides(p.shape).map { Int32($0) }
            return (p.name, "0", "FloatStorage", 0, p.shape.map { Int32($0) }, strides)
        }
        let path = try pickleFile("shared.pt", statePickle(entries), storages: ["0": Data(count: 4 * largest)])
        expectError(path, [.corrupt], mentioning: ["shared.pt", "bytes"])
    }

    func testHostileZipStructures() throws {
        let good = makeStoredZip(["a/data.pkl": Data([0x80, 0x02, 0x7D, 0x2E])])
        func le16(_ d: inout Data, _ at: Int, _ v: UInt16) { d[at] = UInt8(v & 0xFF); d[at + 1] = UInt8(v >> 8) }
        func le32(_ d: inout Data, _ at: Int, _ v: UInt32) { for i in 0..<4 { d[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        let eocd = good.count - 22
        let cd = Int(good[eocd + 16]) | Int(good[eocd + 17]) << 8
        // Entry count and directory size that disagree with the file.
        var many = good; le16(&many, eocd + 10, 0xFFFE); le16(&many, eocd + 8, 0xFFFE)
        expectError(try write(many, "many.pt"), [.corrupt], mentioning: ["many.pt"])
        // Uncompressed size 0xFFFFFFFF without a zip64 field, then with a too-short one.
        var size = good; le32(&size, cd + 24, 0xFFFF_FFFF); le32(&size, cd + 20, 0xFFFF_FFFF)
        expectError(try write(size, "size.pt"), [.corrupt], mentioning: ["size.pt"])
        // Zip64 locator pointing far beyond the file.
        var z64 = good
        le16(&z64, eocd + 10, 0xFFFF)
        var locator = Data([0x50, 0x4B, 0x06, 0x07, 0, 0, 0, 0])
        locator += Data([0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) + Data([1, 0, 0, 0])
        z64.insert(contentsOf: locator, at: eocd)
        expectError(try write(z64, "zip64.pt"), [.corrupt], mentioning: ["zip64.pt", "zip64"])
        // Local header offset beyond the file.
        var local = good; le32(&local, cd + 42, 0xFFFF_FFF0)
        expectError(try write(local, "local.pt"), [.corrupt], mentioning: ["local.pt"])
        // Two entries sharing bytes.
        let pair = makeStoredZip(["a/data.pkl": Data([0x80, 0x02, 0x7D, 0x2E]), "a/data/0": Data(count: 16)])
        let pairEOCD = pair.count - 22
        let pairCD = Int(pair[pairEOCD + 16]) | Int(pair[pairEOCD + 17]) << 8
        var shared = pair
        let secondEntry = pairCD + 46 + "a/data.pkl".utf8.count
        le32(&shared, secondEntry + 42, 0)
        expectError(try write(shared, "sharedzip.pt"), [.corrupt], mentioning: ["sharedzip.pt"])
    }
}
