import XCTest
import CLIP
import Tensor
@testable import ZeroShot

final class ZeroShotClassifierTests: XCTestCase {
    func testProbabilitiesAreASoftmaxOfScaledCosinesAndThresholdsApply() {
        // Three 2-D labels; the image points at "cat".
        let set = LabelSet(name: "animals", labels: [.init("cat"), .init("dog", threshold: 0.5), .init("car")], templates: ["a photo of a {}."])
        let c = ZeroShotClassifier(labelSet: set, embedDim: 2, labelEmbeddings: [1, 0, 0.6, 0.8, 0, 1], logitScale: logf(10))
        let p = c.probabilities([1, 0][...])
        let logits: [Float] = [10, 6, 0]
        let z = logits.map { expf($0) }.reduce(0, +)
        for (a, l) in zip(p, logits) { XCTAssertEqual(a, expf(l) / z, accuracy: 1e-6) }
        let tags = c.tags([1, 0][...], topK: 3)
        XCTAssertEqual(tags.map(\.label), ["cat", "car"], "dog is under its 0.5 threshold")
        XCTAssertEqual(tags.map(\.rank), [1, 2])
        XCTAssertEqual(c.tags([1, 0][...], topK: 1).map(\.label), ["cat"])
        XCTAssertEqual(set.prompts(for: "cat"), ["a photo of a cat."])
    }

    func testLabelEmbeddingsAverageNormalisedPromptEmbeddings() throws {
        let cfg = CLIPConfig(embedDim: 8, imageSize: 32, patchSize: 16, vision: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32),
                             contextLength: 8, vocabSize: 100, text: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32), activation: .gelu)
        let model = CLIPModel.random(config: cfg, seed: 9)
        // A toy tokenizer: SOT, one id per character, EOT (the largest id).
        func tokenize(_ s: String) -> [Int32] {
            var ids: [Int32] = [1] + s.unicodeScalars.prefix(5).map { Int32($0.value % 90) + 2 } + [99]
            ids += [Int32](repeating: 0, count: 8 - ids.count)
            return ids
        }
        let set = LabelSet(name: "s", labels: [.init("ab"), .init("cd")], templates: ["{}", "x{}"])
        let c = try ZeroShotClassifier(model: model, labelSet: set, tokenize: tokenize)
        var prompts = try model.encodeTexts(["ab", "xab"].map(tokenize))
        prompts.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 2, cols: 8) }
        var mean = (0..<8).map { (prompts.data[$0] + prompts.data[8 + $0]) / 2 }
        mean.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 1, cols: 8) }
        for k in 0..<8 { XCTAssertEqual(c.labelEmbeddings[k], mean[k], accuracy: 1e-6) }
        XCTAssertThrowsError(try ZeroShotClassifier(model: model, labelSet: LabelSet(name: "empty", labels: [], templates: []), tokenize: tokenize))
    }
}
