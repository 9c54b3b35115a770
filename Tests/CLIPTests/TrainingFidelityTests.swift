import XCTest
import Tensor
@testable import CLIP

/// One contrastive step against torch (Tests/Fixtures/models/tiny/training.safetensors):
/// loss atol 1e-5, every gradient atol 1e-5 × the tensor's max |g|, AdamW values atol 2e-5.
final class TrainingFidelityTests: XCTestCase {
    static let fixture = try! Fixtures.tensors("models/tiny/training.safetensors")
    nonisolated(unsafe) static let meta = try! Fixtures.json("models/tiny/training_meta.json")

    func f(_ name: String) -> [Float] { Self.fixture[name]!.floats() }

    func batch(_ model: CLIPModel) throws -> (pixels: [Float], tokens: [[Int32]]) {
        let images = try Fixtures.tensors("images/preprocess.safetensors")
        let keys = Self.meta["image_keys"] as! [String]
        let flat = f("tokens").map { Int32($0) }
        return (keys.flatMap { images[$0]!.floats() }, stride(from: 0, to: flat.count, by: 77).map { Array(flat[$0..<($0 + 77)]) })
    }

    func trainer(microBatch: Int? = nil) throws -> (CLIPTrainer, CLIPTrainer.StepResult, [Float], [[Int32]]) {
        let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: Fixtures.tinyModels[1].1))
        let t = CLIPTrainer(model: model, mode: .full,
                            hyper: .init(learningRate: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.2))
        let (pixels, tokens) = try batch(model)
        let result = try t.computeGradients(pixels: pixels, tokens: tokens, microBatch: microBatch)
        return (t, result, pixels, tokens)
    }

    func assertGrad(_ trainer: CLIPTrainer, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let want = f("grad.\(name)")
        let got = Array(UnsafeBufferPointer(start: trainer.grads[name], count: want.count))
        let scale = want.map(abs).max()!
        XCTAssertLessThan(fidelity("grad.\(name) (max|g| \(scale))", got, want), 1e-5 * scale, "grad.\(name)", file: file, line: line)
    }

    static let gradientNames = ["logit_scale", "visual.proj", "text_projection", "visual.ln_post.weight", "ln_final.weight",
                                "visual.transformer.resblocks.1.mlp.c_fc.weight", "transformer.resblocks.1.attn.in_proj_weight",
                                "visual.conv1.weight", "visual.class_embedding"]

    func testLossLogitsAndEveryGradient() throws {
        let (t, result, _, _) = try trainer()
        _ = fidelity("loss", [result.loss], [f("loss")[0]])
        XCTAssertEqual(result.loss, f("loss")[0], accuracy: 1e-5)
        XCTAssertEqual(result.lossImageToText, f("loss_image_to_text")[0], accuracy: 1e-5)
        XCTAssertEqual(result.lossTextToImage, f("loss_text_to_image")[0], accuracy: 1e-5)
        XCTAssertLessThan(maxAbsDiff(result.logitsPerImage, f("logits_per_image")), 1e-4)
        for name in Self.gradientNames { assertGrad(t, name) }
        // Token embedding: the listed rows match, every other row is exactly zero.
        let ids = f("token_embedding_grad_ids").map { Int($0) }
        let rows = f("grad.token_embedding.weight.rows")
        let scale = rows.map(abs).max()!
        let g = t.grads["token_embedding.weight"]
        for (j, id) in ids.enumerated() {
            XCTAssertLessThan(maxAbsDiff(UnsafeBufferPointer(start: g + id * 64, count: 64), rows[(j * 64)..<((j + 1) * 64)]), 1e-5 * scale, "token \(id)")
        }
        let used = Set(ids)
        for id in stride(from: 0, to: 49408, by: 7) where !used.contains(id) {
            XCTAssertEqual(UnsafeBufferPointer(start: g + id * 64, count: 64).map(abs).max(), 0)
        }
    }

    func testMicroBatchesGiveTheSameGradients() throws {
        let (t, result, _, _) = try trainer(microBatch: 3)
        XCTAssertEqual(result.loss, f("loss")[0], accuracy: 1e-5)
        for name in Self.gradientNames { assertGrad(t, name) }
    }

    func testAdamWStepMatchesTorch() throws {
        let (t, _, pixels, tokens) = try trainer()
        try t.step(pixels: pixels, tokens: tokens)
        let p = t.model.parameters
        for name in ["logit_scale", "visual.proj", "text_projection", "visual.class_embedding", "ln_final.weight",
                     "transformer.resblocks.1.attn.in_proj_weight"] {
            let want = f("updated.\(name)")
            XCTAssertLessThan(fidelity("updated.\(name)", UnsafeBufferPointer(start: p[name], count: want.count), want), 2e-5, "updated.\(name)")
        }
        let ids = f("token_embedding_grad_ids").map { Int($0) }
        let rows = f("updated.token_embedding.weight.rows")
        for (j, id) in ids.enumerated() {
            XCTAssertLessThan(maxAbsDiff(UnsafeBufferPointer(start: p["token_embedding.weight"] + id * 64, count: 64),
                                         rows[(j * 64)..<((j + 1) * 64)]), 2e-5, "token \(id)")
        }
    }

    func testFrozenModesLeaveFrozenParametersUntouched() throws {
        for mode in [FineTuneMode.projections, .lockImage, .lastVisionBlocks(1), .lastTextBlocks(1)] {
            let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: Fixtures.tinyModels[1].1))
            let before = model.parameters.copy()
            let t = CLIPTrainer(model: model, mode: mode, hyper: .init(learningRate: 1e-3))
            let (pixels, tokens) = try batch(model)
            try t.step(pixels: pixels, tokens: tokens)
            for e in model.parameters.entries {
                let changed = maxAbsDiff(UnsafeBufferPointer(start: before[e.name], count: e.count),
                                         UnsafeBufferPointer(start: model.parameters[e.name], count: e.count)) > 0
                XCTAssertEqual(changed, mode.trains(e.name, config: model.config), "\(mode): \(e.name)")
            }
        }
        let cfg = CLIPConfig.named("ViT-B-32")!
        XCTAssertTrue(FineTuneMode.lockImage.trains("transformer.resblocks.0.ln_1.weight", config: cfg))
        XCTAssertFalse(FineTuneMode.lockImage.trains("visual.proj", config: cfg))
        XCTAssertTrue(FineTuneMode.lastVisionBlocks(2).trains("visual.transformer.resblocks.10.mlp.c_fc.weight", config: cfg))
        XCTAssertFalse(FineTuneMode.lastVisionBlocks(2).trains("visual.transformer.resblocks.9.mlp.c_fc.weight", config: cfg))
        XCTAssertFalse(FineTuneMode.projections.trains("ln_final.weight", config: cfg))
    }

    func testPartialModesComputeTheSameGradientsAsFull() throws {
        // Gradients of the parameters a partial mode trains equal the full model's.
        let (full, _, pixels, tokens) = try trainer()
        for mode in [FineTuneMode.projections, .lockImage, .lastVisionBlocks(1), .lastTextBlocks(1)] {
            let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: Fixtures.tinyModels[1].1))
            let t = CLIPTrainer(model: model, mode: mode, hyper: .init())
            _ = try t.computeGradients(pixels: pixels, tokens: tokens)
            for e in model.parameters.entries where t.trains(e) {
                let a = UnsafeBufferPointer(start: t.grads[e.name], count: e.count)
                let b = UnsafeBufferPointer(start: full.grads[e.name], count: e.count)
                let scale = max(b.map(abs).max()!, 1e-12)
                XCTAssertLessThan(maxAbsDiff(a, b), 1e-5 * scale, "\(mode): \(e.name)")
            }
        }
    }
}
