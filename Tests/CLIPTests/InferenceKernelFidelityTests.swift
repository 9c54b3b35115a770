import XCTest
import Tensor
@testable import CLIP

/// The golden tests' tolerances, for every inference path this machine runs: the OpenBLAS path
/// (`.blas`, the engine before the packed kernels) and each packed family (AVX-512, AVX2+FMA,
/// portable), forced in turn. Run with CLIPD_PRINT_FIDELITY=1 to print each path's errors.
final class InferenceKernelFidelityTests: XCTestCase {
    static let reference = try! Fixtures.tensors("models/tiny/reference.safetensors")
    static let images = try! Fixtures.tensors("images/preprocess.safetensors")
    static let imageKeys = (try! Fixtures.json("models/tiny/reference_meta.json"))["image_keys"] as! [String]

    func ref(_ name: String) -> [Float] { Self.reference[name]!.floats() }

    var paths: [InferenceKernel] { InferenceKernel.allCases.filter(\.isSupported) }

    override func tearDown() { try? InferenceKernel.force(nil) }

    func textTokens() -> [[Int32]] {
        let flat = Self.reference["text_tokens"]!.floats().map { Int32($0) }
        return stride(from: 0, to: flat.count, by: 77).map { Array(flat[$0..<($0 + 77)]) }
    }

    func testEveryKernelMeetsTheGoldenTolerances() throws {
        let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: Fixtures.tinyModels[1].1))
        let pixels = Self.imageKeys.flatMap { Self.images[$0]!.floats() }
        var imageFeatures: [InferenceKernel: [Float]] = [:]
        for kernel in paths {
            try InferenceKernel.force(kernel)
            var seen: [String: [Float]] = [:]
            let features = model.encodeImages(pixels, count: Self.imageKeys.count) { name, _, values in seen[name] = Array(values) }
            imageFeatures[kernel] = features.data
            // Without an observer the last block runs past attention on the class tokens alone.
            let pooledOnly = model.encodeImages(pixels, count: Self.imageKeys.count)
            XCTAssertLessThan(fidelity("\(kernel.rawValue) image_features (class rows only)", pooledOnly.data, ref("image_features")), 1e-5,
                              kernel.rawValue)
            XCTAssertLessThan(maxAbsDiff(pooledOnly.data, features.data), 1e-6, kernel.rawValue)
            XCTAssertLessThan(fidelity("\(kernel.rawValue) image_features", features.data, ref("image_features")), 1e-5, kernel.rawValue)
            XCTAssertLessThan(fidelity("\(kernel.rawValue) image_tokens_ln_post", seen["vision.ln_post"]!, ref("image_tokens_ln_post")), 3e-5, kernel.rawValue)
            for name in ["vision.resblock.0.after_attn", "vision.resblock.0", "vision.resblock.1", "vision.pooled", "vision.projected"] {
                // The reference intermediates are of the first image only.
                let first = Array(seen[name]!.prefix(ref(name).count))
                XCTAssertLessThan(fidelity("\(kernel.rawValue) \(name)", first, ref(name)), 3e-5, "\(kernel.rawValue) \(name)")
            }
            for trueLength in [true, false] {
                let text = try model.encodeTexts(textTokens(), maxBatch: 16, trueLength: trueLength)
                XCTAssertLessThan(fidelity("\(kernel.rawValue) text_features trueLength=\(trueLength)", text.data, ref("text_features")), 1e-5,
                                  "\(kernel.rawValue) trueLength=\(trueLength)")
            }
            var full: [String: [Float]] = [:]
            _ = try model.encodeTexts([textTokens()[0]], trueLength: false) { name, _, values in full[name] = Array(values) }
            for name in ["text.resblock.0.after_attn", "text.resblock.0", "text.resblock.1", "text.pooled_eot", "text.projected"] {
                XCTAssertLessThan(fidelity("\(kernel.rawValue) \(name)", full[name]!, ref(name)), 3e-5, "\(kernel.rawValue) \(name)")
            }
            let eotOnly = try model.encodeTexts([textTokens()[0]], trueLength: false)
            XCTAssertLessThan(maxAbsDiff(eotOnly.data, full["text.projected"]!), 1e-6, "\(kernel.rawValue) end-of-text rows only")
        }
        // The packed paths agree with the OpenBLAS path far inside the golden tolerance.
        for kernel in paths where kernel != .blas {
            XCTAssertLessThan(maxAbsDiff(imageFeatures[kernel]!, imageFeatures[.blas]!), 5e-6, kernel.rawValue)
        }
    }

    /// Training runs OpenBLAS on the parameters; an optimizer step must reach the next encode
    /// (the packed copies are dropped, not reused).
    func testEncodeAfterATrainingStepUsesTheNewWeights() throws {
        let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: Fixtures.tinyModels[1].1))
        let pixels = Self.imageKeys.prefix(2).flatMap { Self.images[$0]!.floats() }
        let tokens = Array(textTokens().prefix(2))
        let before = model.encodeImages(pixels, count: 2).data
        let trainer = CLIPTrainer(model: model, mode: .full, hyper: .init(learningRate: 1e-2))
        try trainer.step(pixels: pixels, tokens: tokens)
        let after = model.encodeImages(pixels, count: 2).data
        try InferenceKernel.force(.blas)
        let unpacked = model.encodeImages(pixels, count: 2).data
        XCTAssertGreaterThan(maxAbsDiff(before, after), 1e-4)
        XCTAssertLessThan(maxAbsDiff(after, unpacked), 5e-6)
    }
}
