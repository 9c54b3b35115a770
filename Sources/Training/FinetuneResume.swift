import CLIP
import Foundation
import Tensor

/// What a fine-tune run interrupted by a shutdown leaves for the next trainer: the trained
/// weights, AdamW's step and moments, the step reached and the loss curve so far, in one
/// safetensors file in the checkpoint directory (`.finetune-run-<id>.resume.safetensors`, written
/// atomically). The next trainer claims the run, rebuilds the same pairs and batch order (same
/// seed) and continues from that step; the file is removed when the run ends.
struct FinetuneResume {
    let step: Int
    let losses: [Float]
    let parameters: [Float]
    let adamStep: Int
    let m: [Float]
    let v: [Float]

    /// Ties a resume file to the run's parameters and model layout.
    static func fingerprint(_ p: FinetuneParameters, parameterCount: Int) -> String {
        "\(p.json)|\(parameterCount)"
    }

    static func url(directory: URL, runID: Int64) -> URL {
        directory.appendingPathComponent(".finetune-run-\(runID).resume.safetensors")
    }

    static func save(to url: URL, step: Int, losses: [Float], model: CLIPModel, optimizer: AdamW, fingerprint: String) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let state = optimizer.state()
        let params = Array(UnsafeBufferPointer(start: model.parameters.storage, count: model.parameters.count))
        let tensors: [(name: String, tensor: Tensor)] = [
            ("parameters", Tensor(shape: [params.count], data: params)),
            ("adam_m", Tensor(shape: [state.m.count], data: state.m)),
            ("adam_v", Tensor(shape: [state.v.count], data: state.v)),
            ("losses", Tensor(shape: [losses.count], data: losses)),
        ]
        let metadata = ["clipd.resume.step": "\(step)", "clipd.resume.adam_step": "\(state.step)", "clipd.resume.fingerprint": fingerprint]
        try CheckpointWriter.replaceAtomically(url) { temporary in
            try SafeTensors.write(tensors, metadata: metadata, to: temporary)
        }
    }

    /// The saved state, when a file for this run exists and fits `fingerprint`; nil otherwise.
    static func load(from url: URL, fingerprint: String) throws -> FinetuneResume? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let (tensors, metadata) = try SafeTensors.read(url)
        guard metadata["clipd.resume.fingerprint"] == fingerprint,
              let step = metadata["clipd.resume.step"].flatMap(Int.init), let adamStep = metadata["clipd.resume.adam_step"].flatMap(Int.init),
              let parameters = tensors["parameters"]?.floats(), let m = tensors["adam_m"]?.floats(), let v = tensors["adam_v"]?.floats(),
              let losses = tensors["losses"]?.floats(), losses.count == step else { return nil }
        return FinetuneResume(step: step, losses: losses, parameters: parameters, adamStep: adamStep, m: m, v: v)
    }
}
