import Foundation
import Tensor

/// Writes a model as an OpenAI/open_clip-named safetensors state dict that clipd (and open_clip)
/// load back. The architecture travels inside the file (`__metadata__["clipd.config"]`, and the
/// open_clip model config as `open_clip_config`), with whatever lineage the caller adds.
public enum CheckpointWriter {
    public static func write(_ model: CLIPModel, to url: URL, metadata: [String: String] = [:],
                             halfPrecision: Bool = false, writeOpenCLIPConfig: Bool = false) throws {
        var meta = metadata
        meta["format"] = "pt"
        meta["clipd.config"] = String(decoding: try JSONEncoder().encode(model.config), as: UTF8.self)
        let openCLIP = openCLIPConfig(model.config)
        meta["open_clip_config"] = String(decoding: try JSONSerialization.data(withJSONObject: openCLIP, options: [.sortedKeys]), as: UTF8.self)
        let tensors = model.parameters.entries.map { (name: $0.name, tensor: model.parameters.tensor($0.name)) }
        try SafeTensors.write(tensors, metadata: meta, halfPrecision: halfPrecision, to: url)
        if writeOpenCLIPConfig {
            let data = try JSONSerialization.data(withJSONObject: openCLIP, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: url.deletingLastPathComponent().appendingPathComponent("open_clip_config.json"))
        }
    }

    /// open_clip's model config for this architecture.
    public static func openCLIPConfig(_ c: CLIPConfig) -> [String: Any] {
        [
            "embed_dim": c.embedDim,
            "quick_gelu": c.activation == .quickGELU,
            "vision_cfg": ["image_size": c.imageSize, "patch_size": c.patchSize, "width": c.vision.width,
                           "layers": c.vision.layers, "head_width": c.vision.width / c.vision.heads,
                           "mlp_ratio": Double(c.vision.mlpWidth) / Double(c.vision.width)] as [String: Any],
            "text_cfg": ["context_length": c.contextLength, "vocab_size": c.vocabSize, "width": c.text.width,
                         "heads": c.text.heads, "layers": c.text.layers,
                         "mlp_ratio": Double(c.text.mlpWidth) / Double(c.text.width)] as [String: Any],
            "preprocess_cfg": ["mean": c.imageMean.map(Double.init), "std": c.imageStd.map(Double.init)] as [String: Any],
        ]
    }
}
