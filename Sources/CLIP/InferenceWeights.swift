import Foundation
import Tensor

/// One residual block's Linear weights packed for the inference kernels.
struct PackedBlock {
    let inProj, outProj, fc, proj: PackedMatrix

    init(_ p: ParameterStore, prefix: String, width c: Int, mlpWidth m: Int, kernel: InferenceKernel) {
        inProj = PackedMatrix(transposedWeight: p["\(prefix).attn.in_proj_weight"], n: 3 * c, k: c, kernel: kernel)
        outProj = PackedMatrix(transposedWeight: p["\(prefix).attn.out_proj.weight"], n: c, k: c, kernel: kernel)
        fc = PackedMatrix(transposedWeight: p["\(prefix).mlp.c_fc.weight"], n: m, k: c, kernel: kernel)
        proj = PackedMatrix(transposedWeight: p["\(prefix).mlp.c_proj.weight"], n: c, k: m, kernel: kernel)
    }
}

/// A tower's constant matrices packed once for one kernel family: the blocks, the patch
/// embedding (vision only) and the output projection. Inference only: training runs OpenBLAS
/// on the parameters themselves, and `CLIPModel.weightsDidChange()` drops these copies.
final class PackedTower: @unchecked Sendable {
    let kernel: InferenceKernel
    let blocks: [PackedBlock]
    let patchEmbedding: PackedMatrix?
    let projection: PackedMatrix

    init(vision config: CLIPConfig, parameters p: ParameterStore, kernel: InferenceKernel) {
        let v = config.vision
        self.kernel = kernel
        blocks = (0..<v.layers).map {
            PackedBlock(p, prefix: "visual.transformer.resblocks.\($0)", width: v.width, mlpWidth: v.mlpWidth, kernel: kernel)
        }
        patchEmbedding = PackedMatrix(transposedWeight: p["visual.conv1.weight"], n: v.width,
                                      k: 3 * config.patchSize * config.patchSize, kernel: kernel)
        projection = PackedMatrix(matrix: p["visual.proj"], n: config.embedDim, k: v.width, kernel: kernel)
    }

    init(text config: CLIPConfig, parameters p: ParameterStore, kernel: InferenceKernel) {
        let t = config.text
        self.kernel = kernel
        blocks = (0..<t.layers).map {
            PackedBlock(p, prefix: "transformer.resblocks.\($0)", width: t.width, mlpWidth: t.mlpWidth, kernel: kernel)
        }
        patchEmbedding = nil
        projection = PackedMatrix(matrix: p["text_projection"], n: config.embedDim, k: t.width, kernel: kernel)
    }
}

/// The packed towers of one model, built on first use for the active kernel family.
final class InferenceWeightCache: @unchecked Sendable {
    private let lock = NSLock()
    private var vision: PackedTower?
    private var text: PackedTower?

    /// nil when the active family is `.blas` (the OpenBLAS path).
    func vision(_ config: CLIPConfig, _ p: ParameterStore) -> PackedTower? {
        let kernel = InferenceKernel.active
        if kernel == .blas { return nil }
        lock.lock(); defer { lock.unlock() }
        if let vision, vision.kernel == kernel { return vision }
        let packed = PackedTower(vision: config, parameters: p, kernel: kernel)
        vision = packed
        return packed
    }

    func text(_ config: CLIPConfig, _ p: ParameterStore) -> PackedTower? {
        let kernel = InferenceKernel.active
        if kernel == .blas { return nil }
        lock.lock(); defer { lock.unlock() }
        if let text, text.kernel == kernel { return text }
        let packed = PackedTower(text: config, parameters: p, kernel: kernel)
        text = packed
        return packed
    }

    func drop() {
        lock.lock(); defer { lock.unlock() }
        vision = nil
        text = nil
    }
}
