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
        try replaceAtomically(url) { temporary in
            try SafeTensors.write(tensors, metadata: meta, halfPrecision: halfPrecision, to: temporary)
        }
        if writeOpenCLIPConfig {
            let data = try JSONSerialization.data(withJSONObject: openCLIP, options: [.prettyPrinted, .sortedKeys])
            try replaceAtomically(url.deletingLastPathComponent().appendingPathComponent("open_clip_config.json")) { temporary in
                try data.write(to: temporary)
            }
        }
    }

    /// Writes `url` whole or not at all, and never through a path someone else can plant:
    /// `write` fills a file in a fresh directory created exclusively, with a random name and
    /// mode 0700, inside `url`'s own directory (so a symlink planted at any predictable temporary
    /// path is never followed); the file is flushed and then renamed over `url` in one step (a
    /// symlink at `url` itself is replaced, not followed). Readers see the old file or the new one.
    public static func replaceAtomically(_ url: URL, write: (URL) throws -> Void) throws {
        let directory = url.deletingLastPathComponent()
        var template = Array(directory.appendingPathComponent(".\(url.lastPathComponent).tmp-XXXXXXXX").path.utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CLIPError(.unreadable, "\(url.path): cannot write: cannot create a temporary directory in \(directory.path): \(String(cString: strerror(errno)))")
        }
        let privateDirectory = URL(fileURLWithPath: String(cString: created), isDirectory: true)
        defer { try? FileManager.default.removeItem(at: privateDirectory) }
        let temporary = privateDirectory.appendingPathComponent(url.lastPathComponent)
        do {
            try write(temporary)
        } catch let error as CLIPError {
            throw error
        } catch {
            throw CLIPError(.unreadable, "\(url.path): cannot write: \(error.localizedDescription)")
        }
        let descriptor = open(temporary.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if descriptor >= 0 {
            _ = fsync(descriptor)
            close(descriptor)
        }
        guard rename(temporary.path, url.path) == 0 else {
            throw CLIPError(.unreadable, "\(url.path): cannot write: rename failed: \(String(cString: strerror(errno)))")
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
