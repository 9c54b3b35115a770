import CLIP
import Foundation
import Tensor
import ZeroShot

/// Image↔text retrieval recall on held-out pairs: for each image, is its own caption among the
/// `k` most similar captions (and the reverse)? Ties count against the pair, so a model whose
/// embeddings are all equal scores 0, not 1.
public struct RetrievalRecall: Sendable, Equatable, Codable {
    public var imageToText1: Float
    public var imageToText5: Float
    public var textToImage1: Float
    public var textToImage5: Float
    public var pairs: Int

    public init(imageToText1: Float, imageToText5: Float, textToImage1: Float, textToImage5: Float, pairs: Int) {
        self.imageToText1 = imageToText1
        self.imageToText5 = imageToText5
        self.textToImage1 = textToImage1
        self.textToImage5 = textToImage5
        self.pairs = pairs
    }

    /// The single number WiSE-FT's mixing weight is chosen by: the mean of the four recalls.
    public var mean: Float { (imageToText1 + imageToText5 + textToImage1 + textToImage5) / 4 }

    enum CodingKeys: String, CodingKey {
        case imageToText1 = "image_to_text_r1", imageToText5 = "image_to_text_r5"
        case textToImage1 = "text_to_image_r1", textToImage5 = "text_to_image_r5", pairs
    }

    /// `images` and `texts` are [n, dim] row-major; row i of each forms pair i. Rows need not be
    /// normalised (they are compared by cosine similarity).
    public static func measure(images: [Float], texts: [Float], count n: Int, dim: Int) -> RetrievalRecall {
        precondition(images.count == n * dim && texts.count == n * dim, "expected \(n) rows of \(dim)")
        guard n > 0 else { return RetrievalRecall(imageToText1: 0, imageToText5: 0, textToImage1: 0, textToImage5: 0, pairs: 0) }
        var a = images, b = texts
        a.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: n, cols: dim) }
        b.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: n, cols: dim) }
        var similarity = [Float](repeating: 0, count: n * n)  // [image, text]
        for i in 0..<n {
            for j in 0..<n {
                var dot: Float = 0
                for k in 0..<dim { dot += a[i * dim + k] * b[j * dim + k] }
                similarity[i * n + j] = dot
            }
        }
        /// Rank of the true match among `n` candidates: how many others score at least as high.
        /// NaN similarities (a broken model) rank last.
        func rank(_ score: (Int) -> Float, truth: Int) -> Int {
            let own = score(truth)
            if own.isNaN { return n }
            var better = 0
            for j in 0..<n where j != truth {
                let s = score(j)
                if s >= own { better += 1 }
            }
            return better
        }
        var i2t = [0, 0], t2i = [0, 0]
        for i in 0..<n {
            let r = rank({ similarity[i * n + $0] }, truth: i)
            if r < 1 { i2t[0] += 1 }
            if r < 5 { i2t[1] += 1 }
            let q = rank({ similarity[$0 * n + i] }, truth: i)
            if q < 1 { t2i[0] += 1 }
            if q < 5 { t2i[1] += 1 }
        }
        let total = Float(n)
        return RetrievalRecall(imageToText1: Float(i2t[0]) / total, imageToText5: Float(i2t[1]) / total,
                               textToImage1: Float(t2i[0]) / total, textToImage5: Float(t2i[1]) / total, pairs: n)
    }
}

/// One held-out (image, caption) pair, ready for the model.
public struct EncodedPair: Sendable {
    public let id: String
    /// Preprocessed image [3, S, S].
    public let pixels: [Float]
    /// One context-length row of token ids.
    public let tokens: [Int32]

    public init(id: String, pixels: [Float], tokens: [Int32]) {
        self.id = id
        self.pixels = pixels
        self.tokens = tokens
    }
}

/// A labelled canary image: zero-shot classification against the canary label set should
/// give `label`.
public struct CanaryExample: Sendable {
    public let imageURL: String
    public let label: String
    public let pixels: [Float]

    public init(imageURL: String, label: String, pixels: [Float]) {
        self.imageURL = imageURL
        self.label = label
        self.pixels = pixels
    }
}

/// The canary: a zero-shot label set and images whose true label is known. A fine-tuned model
/// is promoted only if its accuracy here does not fall (beyond a tolerance).
public struct Canary: Sendable {
    public let labelSet: LabelSet
    public let examples: [CanaryExample]

    public init(labelSet: LabelSet, examples: [CanaryExample]) throws {
        guard !examples.isEmpty else { throw TrainingError(.canary, "the canary has no images") }
        let names = Set(labelSet.labels.map(\.name))
        if let stray = examples.first(where: { !names.contains($0.label) }) {
            throw TrainingError(.canary, "canary image \(stray.imageURL) is labelled \"\(stray.label)\", which is not a label of set \(labelSet.name)")
        }
        self.labelSet = labelSet
        self.examples = examples
    }
}

/// A model's scores: retrieval on held-out pairs and zero-shot accuracy on the canary.
public struct EvaluationReport: Sendable, Equatable, Codable {
    public var recall: RetrievalRecall
    public var canaryAccuracy: Float

    public init(recall: RetrievalRecall, canaryAccuracy: Float) {
        self.recall = recall
        self.canaryAccuracy = canaryAccuracy
    }

    enum CodingKeys: String, CodingKey { case recall, canaryAccuracy = "canary_accuracy" }

    public var isFinite: Bool { recall.mean.isFinite && canaryAccuracy.isFinite }
}

/// Evaluates models on fixed held-out pairs and a canary. Images are encoded in chunks so a
/// large held-out set never needs one huge activation buffer.
public struct ModelEvaluator: Sendable {
    public let heldOut: [EncodedPair]
    public let canary: Canary
    public let tokenize: @Sendable (String) throws -> [Int32]
    public var chunk = 32

    public init(heldOut: [EncodedPair], canary: Canary, tokenize: @escaping @Sendable (String) throws -> [Int32]) {
        self.heldOut = heldOut
        self.canary = canary
        self.tokenize = tokenize
    }

    public func evaluate(_ model: CLIPModel) throws -> EvaluationReport {
        let e = model.config.embedDim
        let images = encodeImages(model, heldOut.map(\.pixels))
        let texts = try model.encodeTexts(heldOut.map(\.tokens)).data
        let recall = RetrievalRecall.measure(images: images, texts: texts, count: heldOut.count, dim: e)
        return EvaluationReport(recall: recall, canaryAccuracy: try canaryAccuracy(model))
    }

    /// Top-1 zero-shot accuracy on the canary images.
    public func canaryAccuracy(_ model: CLIPModel) throws -> Float {
        let classifier = try ZeroShotClassifier(model: model, labelSet: canary.labelSet, tokenize: tokenize)
        var features = encodeImages(model, canary.examples.map(\.pixels))
        let e = model.config.embedDim, n = canary.examples.count
        features.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: n, cols: e) }
        var hits = 0
        for (i, example) in canary.examples.enumerated() {
            let p = classifier.probabilities(features[(i * e)..<((i + 1) * e)])
            // NaN probabilities (a broken model) never count as a hit.
            guard p.allSatisfy(\.isFinite) else { continue }
            var best = 0
            for l in p.indices where p[l] > p[best] { best = l }
            if classifier.labelSet.labels[best].name == example.label { hits += 1 }
        }
        return Float(hits) / Float(n)
    }

    private func encodeImages(_ model: CLIPModel, _ pixels: [[Float]]) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(pixels.count * model.config.embedDim)
        var start = 0
        while start < pixels.count {
            let end = min(start + chunk, pixels.count)
            out += model.encodeImages(Array(pixels[start..<end].joined()), count: end - start).data
            start = end
        }
        return out
    }
}
