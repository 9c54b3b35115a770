import XCTest
import Tensor
@testable import CLIP

/// The engine against open_clip's outputs on the tiny fixture model (atol from the fixture
/// README: final features 1e-5, intermediates 3e-5).
final class ReferenceFidelityTests: XCTestCase {
    static let reference = try! Fixtures.tensors("models/tiny/reference.safetensors")
    static let images = try! Fixtures.tensors("images/preprocess.safetensors")
    static let imageKeys = (try! Fixtures.json("models/tiny/reference_meta.json"))["image_keys"] as! [String]

    func ref(_ name: String) -> [Float] { Self.reference[name]!.floats() }

    func pixels(_ keys: [String]) -> [Float] { keys.flatMap { Self.images[$0]!.floats() } }

    func textTokens() -> [[Int32]] {
        let flat = Self.reference["text_tokens"]!.floats().map { Int32($0) }
        return stride(from: 0, to: flat.count, by: 77).map { Array(flat[$0..<($0 + 77)]) }
    }

    func testAllThreeFormatsLoadTheSameWeights() throws {
        let loaded = try Fixtures.tinyModels.map { ($0.0, try CheckpointLoader.load(path: $0.1)) }
        for (format, ckpt) in loaded {
            XCTAssertEqual(ckpt.format, format)
            XCTAssertEqual(ckpt.config.vision.heads, 4)
            XCTAssertEqual(ckpt.config.text.heads, 4)
            XCTAssertEqual(ckpt.config.activation, .quickGELU)
            XCTAssertEqual(ckpt.config.embedDim, 32)
            XCTAssertEqual(ckpt.parameters.count, 3_571_329)
        }
        let base = loaded[1].1.parameters
        for (format, ckpt) in loaded {
            for e in base.entries {
                let a = UnsafeBufferPointer(start: base[e.name], count: e.count)
                let b = UnsafeBufferPointer(start: ckpt.parameters[e.name], count: e.count)
                XCTAssertEqual(maxAbsDiff(a, b), 0, "\(format): \(e.name) differs")
            }
        }
    }

    func testImageFeaturesMatchReferenceInEveryFormat() throws {
        for (format, path) in Fixtures.tinyModels {
            let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: path))
            var tokensLnPost: [Float] = []
            let features = model.encodeImages(pixels(Self.imageKeys), count: Self.imageKeys.count) { name, _, values in
                if name == "vision.ln_post" { tokensLnPost = Array(values) }
            }
            XCTAssertLessThan(fidelity("\(format) image_features", features.data, ref("image_features")), 1e-5, format)
            var normalized = features
            normalized.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 11, cols: 32) }
            XCTAssertLessThan(fidelity("\(format) image_features_normalized", normalized.data, ref("image_features_normalized")), 1e-5, format)
            XCTAssertLessThan(fidelity("\(format) image_tokens_ln_post", tokensLnPost, ref("image_tokens_ln_post")), 3e-5, format)
        }
    }

    func testVisionIntermediates() throws {
        let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: Fixtures.tinyModels[1].1))
        var seen: [String: [Float]] = [:]
        _ = model.encodeImages(pixels([Self.imageKeys[0]]), count: 1) { name, _, values in seen[name] = Array(values) }
        // conv1 is stored [width, 7, 7]; the engine's patch tokens are [49, width].
        let conv = ref("vision.conv1")
        let tokens = seen["vision.conv1_tokens"]!
        var transposed = [Float](repeating: 0, count: conv.count)
        for p in 0..<49 { for c in 0..<64 { transposed[c * 49 + p] = tokens[p * 64 + c] } }
        XCTAssertLessThan(fidelity("vision.conv1", transposed, conv), 3e-5, "vision.conv1")
        for name in ["vision.embeddings", "vision.ln_pre", "vision.resblock.0.after_attn", "vision.resblock.0",
                     "vision.resblock.1.after_attn", "vision.resblock.1", "vision.ln_post", "vision.pooled", "vision.projected"] {
            XCTAssertLessThan(fidelity(name, seen[name]!, ref(name)), 3e-5, name)
        }
    }

    func testTextFeaturesMatchReferenceAtTrueAndFullLength() throws {
        let tokens = textTokens()
        XCTAssertEqual(tokens.count, 62)
        for (format, path) in Fixtures.tinyModels {
            let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: path))
            for trueLength in [true, false] {
                let features = try model.encodeTexts(tokens, maxBatch: 16, trueLength: trueLength)
                XCTAssertLessThan(fidelity("\(format) text_features trueLength=\(trueLength)", features.data, ref("text_features")), 1e-5, "\(format) trueLength=\(trueLength)")
                var normalized = features
                normalized.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 62, cols: 32) }
                XCTAssertLessThan(fidelity("\(format) text_features_normalized", normalized.data, ref("text_features_normalized")), 1e-5, format)
            }
        }
    }

    func testTextIntermediates() throws {
        let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: Fixtures.tinyModels[0].1))
        let caption = [textTokens()[0]]
        XCTAssertEqual(CLIPModel.poolingIndex(caption[0]), Int(ref("text.eot_index")[0]))
        var full: [String: [Float]] = [:]
        _ = try model.encodeTexts(caption, trueLength: false) { name, _, values in full[name] = Array(values) }
        for name in ["text.embeddings", "text.resblock.0.after_attn", "text.resblock.0", "text.resblock.1.after_attn",
                     "text.resblock.1", "text.ln_final", "text.pooled_eot", "text.projected"] {
            XCTAssertLessThan(fidelity(name, full[name]!, ref(name)), 3e-5, name)
        }
        // At true length the rows up to end-of-text are the same numbers.
        var short: [String: (shape: [Int], values: [Float])] = [:]
        _ = try model.encodeTexts(caption, trueLength: true) { name, shape, values in short[name] = (shape, Array(values)) }
        let t = short["text.resblock.1"]!.shape[1]
        XCTAssertEqual(t, CLIPModel.poolingIndex(caption[0]) + 1)
        XCTAssertLessThan(maxAbsDiff(short["text.resblock.1"]!.values, ref("text.resblock.1").prefix(t * 64)), 3e-5)
    }

    func testLogitsPerImage() throws {
        let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: Fixtures.tinyModels[2].1))
        var img = model.encodeImages(pixels(Self.imageKeys), count: 11)
        var txt = try model.encodeTexts(textTokens())
        img.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 11, cols: 32) }
        txt.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 62, cols: 32) }
        XCTAssertEqual(expf(model.logitScale), ref("logit_scale_exp")[0], accuracy: 1e-5)
        var logits = [Float](repeating: 0, count: 11 * 62)
        for i in 0..<11 { for j in 0..<62 {
            var dot: Float = 0
            for k in 0..<32 { dot += img.data[i * 32 + k] * txt.data[j * 32 + k] }
            logits[i * 62 + j] = expf(model.logitScale) * dot
        } }
        XCTAssertLessThan(fidelity("logits_per_image", logits, ref("logits_per_image")), 1e-4)
    }
}
