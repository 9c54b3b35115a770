import CLIP
import CLIPTokenizer
import Foundation
import ImageIO
import Pipeline
import Training
import ZeroShot
import Tensor
import XCTest

/// The committed demo model (Deploy/demo/model) tags the bundled held-out sample images — colour
/// and shape combinations it never saw in training — with their colour and shape, through the
/// daemon's path: JPEG file -> ImageIO preprocessing -> image tower -> zero-shot label sets of
/// Deploy/demo/labels.json.
final class DemoModelGoldenTests: XCTestCase {
    static let demo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Deploy/demo")

    struct LabelFile: Decodable {
        struct Set: Decodable { let name: String; let templates: [String]; let labels: [String] }
        let label_sets: [Set]
        let default_label_set: String
    }

    func labelSets() throws -> [String: LabelSet] {
        let file = try JSONDecoder().decode(LabelFile.self, from: Data(contentsOf: Self.demo.appendingPathComponent("labels.json")))
        XCTAssertTrue(file.label_sets.contains { $0.name == file.default_label_set })
        var sets: [String: LabelSet] = [:]
        for set in file.label_sets {
            sets[set.name] = LabelSet(name: set.name, labels: set.labels.map { .init($0) }, templates: set.templates)
        }
        return sets
    }

    /// Held-out sample records: (file name, colour, shape).
    func heldOutSamples() throws -> [(file: String, colour: String, shape: String)] {
        let lines = try String(contentsOf: Self.demo.appendingPathComponent("samples/records.jsonl"), encoding: .utf8).split(separator: "\n")
        return lines.compactMap { line in
            guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let url = record["image_url"] as? String, let metadata = record["metadata"] as? [String: Any],
                  metadata["held_out"] as? Bool == true,
                  let colour = metadata["colour"] as? String, let shape = metadata["shape"] as? String else { return nil }
            return (String(url.split(separator: "/").last!), colour, shape)
        }
    }

    func testLabelFileMatchesTheTrainingTemplates() throws {
        let sets = try labelSets()
        XCTAssertEqual(sets["shape-colours"]?.templates, ShapeTraining.colourTemplates)
        XCTAssertEqual(sets["shape-kinds"]?.templates, ShapeTraining.shapeTemplates)
        XCTAssertEqual(sets["shape-colours"]?.labels.map(\.name), ShapeTraining.colourLabels.labels.map(\.name))
        XCTAssertEqual(sets["shape-kinds"]?.labels.map(\.name), ShapeTraining.shapeLabels.labels.map(\.name))
    }

    func testCommittedModelTagsHeldOutSamples() throws {
        let checkpoint = try CheckpointLoader.load(path: Self.demo.appendingPathComponent("model/clipd-shapes.safetensors").path)
        let model = CLIPModel(checkpoint: checkpoint)
        XCTAssertEqual(model.config, ShapeTraining.demoConfig)
        let samples = try heldOutSamples()
        XCTAssertGreaterThanOrEqual(samples.count, 6)
        XCTAssertGreaterThanOrEqual(Set(samples.map { "\($0.colour) \($0.shape)" }).count, 4, "samples cover several held-out combinations")

        let tokenizer = try CLIPTokenizer()
        let tokenize = { (text: String) -> [Int32] in tokenizer.tokenize(text, contextLength: model.config.contextLength).ids.map(Int32.init) }
        let sets = try labelSets()
        let colours = try ZeroShotClassifier(model: model, labelSet: try XCTUnwrap(sets["shape-colours"]), tokenize: tokenize)
        let shapes = try ZeroShotClassifier(model: model, labelSet: try XCTUnwrap(sets["shape-kinds"]), tokenize: tokenize)

        let c = model.config
        let preprocessor = Preprocessor(options: PreprocessOptions(imageSize: c.imageSize, mean: c.imageMean, std: c.imageStd))
        var pixels: [Float] = []
        for sample in samples {
            let bytes = [UInt8](try Data(contentsOf: Self.demo.appendingPathComponent("samples/" + sample.file)))
            pixels += try preprocessor.preprocess(bytes).tensor
        }
        var features = model.encodeImages(pixels, count: samples.count)
        features.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: samples.count, cols: c.embedDim) }
        var wrong: [String] = []
        for (i, sample) in samples.enumerated() {
            let row = features.data[(i * c.embedDim)..<((i + 1) * c.embedDim)]
            let colour = colours.tags(row, topK: 1).first?.label, shape = shapes.tags(row, topK: 1).first?.label
            if colour != sample.colour || shape != sample.shape {
                wrong.append("\(sample.file): \(colour ?? "-") \(shape ?? "-")")
            }
        }
        XCTAssertEqual(wrong, [], "misclassified held-out samples")
    }
}
