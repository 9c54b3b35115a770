import CLIP
import Foundation
import Synthetic

extension ShapeTraining {
    /// Writes the model as the fp16 safetensors that ships, reloads it and evaluates the reloaded
    /// weights (not the float32 ones) on the held-out scenes; returns the file size and the result.
    public static func ship(_ model: CLIPModel, to url: URL, lineage: String, heldOutVariants: Int,
                            preprocess: ([UInt8], Int) throws -> [Float],
                            tokenize: (String) throws -> [Int32]) throws -> (bytes: Int, evaluation: Evaluation) {
        try CheckpointWriter.write(model, to: url, metadata: ["clipd.lineage": lineage], halfPrecision: true)
        let reloaded = CLIPModel(checkpoint: try CheckpointLoader.load(path: url.path))
        let heldOut = heldOutScenes(variants: heldOutVariants)
        let side = 2 * model.config.imageSize
        var pixels: [Float] = []
        for (scene, variant) in heldOut { pixels += try preprocess(scene.render(side: side, variant: variant, grainy: true), side) }
        let evaluation = try evaluate(model: reloaded, scenes: heldOut.map(\.scene), pixels: pixels, tokenize: tokenize)
        let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        return (size, evaluation)
    }
}
