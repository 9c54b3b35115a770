import Foundation
import CLIP
import Tensor

/// A zero-shot vocabulary: labels and the prompt templates ("a photo of a {}.") whose text
/// embeddings are averaged per label (prompt ensembling, as in the CLIP paper).
public struct LabelSet: Sendable, Equatable {
    public struct Label: Sendable, Equatable {
        public let name: String
        /// Minimum probability for the tag to be written (nil: no threshold).
        public let threshold: Float?
        public init(_ name: String, threshold: Float? = nil) {
            self.name = name
            self.threshold = threshold
        }
    }
    public let name: String
    /// Changes whenever the set is edited, so cached embeddings can be refreshed.
    public let version: String
    public let labels: [Label]
    public let templates: [String]

    public init(name: String, version: String = "1", labels: [Label], templates: [String]) {
        self.name = name
        self.version = version
        self.labels = labels
        self.templates = templates.isEmpty ? ["{}"] : templates
    }

    public func prompts(for label: String) -> [String] {
        templates.map { $0.replacingOccurrences(of: "{}", with: label) }
    }
}

public struct Tag: Sendable, Equatable {
    public let label: String
    public let score: Float
    public let rank: Int
}

/// Label text embeddings for one model and one label-set version, and the classification of
/// image embeddings against them: softmax over exp(logit_scale)-scaled cosine similarities.
public struct ZeroShotClassifier: Sendable {
    public let labelSet: LabelSet
    public let embedDim: Int
    /// [labels, embedDim], each row L2-normalised.
    public let labelEmbeddings: [Float]
    public let logitScale: Float

    /// Encodes every prompt of every label with `model`; `tokenize` turns a prompt into one
    /// context-length row of token ids.
    public init(model: CLIPModel, labelSet: LabelSet, tokenize: (String) throws -> [Int32]) throws {
        guard !labelSet.labels.isEmpty else { throw CLIPError(.invalidInput, "label set \(labelSet.name) has no labels") }
        let e = model.config.embedDim
        var rows: [[Int32]] = []
        for label in labelSet.labels { for prompt in labelSet.prompts(for: label.name) { rows.append(try tokenize(prompt)) } }
        var features = try model.encodeTexts(rows)
        features.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: rows.count, cols: e) }
        let perLabel = labelSet.templates.count
        var matrix = [Float](repeating: 0, count: labelSet.labels.count * e)
        for l in 0..<labelSet.labels.count {
            for t in 0..<perLabel {
                let r = l * perLabel + t
                for k in 0..<e { matrix[l * e + k] += features.data[r * e + k] / Float(perLabel) }
            }
        }
        matrix.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: labelSet.labels.count, cols: e) }
        self.init(labelSet: labelSet, embedDim: e, labelEmbeddings: matrix, logitScale: model.logitScale)
    }

    public init(labelSet: LabelSet, embedDim: Int, labelEmbeddings: [Float], logitScale: Float) {
        self.labelSet = labelSet
        self.embedDim = embedDim
        self.labelEmbeddings = labelEmbeddings
        self.logitScale = logitScale
    }

    /// Probabilities over the labels for one L2-normalised image embedding.
    public func probabilities(_ image: ArraySlice<Float>) -> [Float] {
        precondition(image.count == embedDim)
        let scale = expf(logitScale)
        let base = image.startIndex
        var logits = (0..<labelSet.labels.count).map { l -> Float in
            var dot: Float = 0
            for k in 0..<embedDim { dot += image[base + k] * labelEmbeddings[l * embedDim + k] }
            return scale * dot
        }
        let m = logits.max() ?? 0
        var z: Float = 0
        for i in logits.indices { logits[i] = expf(logits[i] - m); z += logits[i] }
        return logits.map { $0 / z }
    }

    /// The top `k` labels by probability, dropping any under its label's threshold.
    public func tags(_ image: ArraySlice<Float>, topK k: Int) -> [Tag] {
        let p = probabilities(image)
        let order = p.indices.sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
        var out: [Tag] = []
        for i in order.prefix(k) {
            let label = labelSet.labels[i]
            if let t = label.threshold, p[i] < t { continue }
            out.append(Tag(label: label.name, score: p[i], rank: out.count + 1))
        }
        return out
    }
}
