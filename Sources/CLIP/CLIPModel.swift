import Foundation
import Tensor

/// A CLIP model with ViT image tower and causal text transformer, computing exactly what
/// open_clip's `encode_image` / `encode_text` compute.
public final class CLIPModel: @unchecked Sendable {
    public let config: CLIPConfig
    public let parameters: ParameterStore
    /// The towers' matrices packed for the inference kernels, on first use.
    let inference = InferenceWeightCache()

    public init(config: CLIPConfig, parameters: ParameterStore) {
        self.config = config
        self.parameters = parameters
    }

    /// Inference packs each weight matrix once, on the first encode, and reuses the packed copy.
    /// Code that changes `parameters` in place after encoding (CLIPTrainer does, after every
    /// step) calls this so the next encode packs the new values.
    public func weightsDidChange() { inference.drop() }

    public convenience init(checkpoint: LoadedCheckpoint) {
        self.init(config: checkpoint.config, parameters: checkpoint.parameters)
    }

    /// How `random(config:seed:initialization:)` draws weights.
    public enum Initialization: String, Sendable {
        /// N(0, 0.02) everywhere, LayerNorm gains 1: cheap, but attention is nearly uniform, so
        /// image embeddings barely depend on the image (fine for speed measurements).
        case uniformSmall = "small"
        /// open_clip's `init_parameters` scales (attention std width^-1/2, residual projections
        /// scaled by depth, class/positional embeddings width^-1/2): embeddings that separate
        /// images, for comparisons of preprocessing paths by embedding cosine.
        case openCLIP = "open_clip"
    }

    /// A model with random weights and logit_scale ln(1/0.07), for benchmarks and tests.
    public static func random(config: CLIPConfig, seed: UInt64 = 0, initialization: Initialization = .uniformSmall) -> CLIPModel {
        let p = ParameterStore(layout: config.parameterShapes)
        var rng = SeededGenerator(seed: seed)
        func std(for name: String) -> Float {
            guard initialization == .openCLIP else { return 0.02 }
            let visual = name.hasPrefix("visual.")
            let tower = visual ? config.vision : config.text
            let w = Float(tower.width)
            let attnStd = 1 / w.squareRoot()
            let projStd = attnStd / Float(2 * tower.layers).squareRoot()
            let fcStd = 1 / (2 * w).squareRoot()
            if name.hasSuffix("attn.in_proj_weight") { return attnStd }
            if name.hasSuffix("attn.out_proj.weight") || name.hasSuffix("mlp.c_proj.weight") { return projStd }
            if name.hasSuffix("mlp.c_fc.weight") { return fcStd }
            switch name {
            case "visual.class_embedding", "visual.positional_embedding", "visual.proj": return attnStd
            case "text_projection": return 1 / Float(config.text.width).squareRoot()
            case "positional_embedding": return 0.01
            case "visual.conv1.weight": return 1 / Float(3 * config.patchSize * config.patchSize).squareRoot()
            default: return 0.02
            }
        }
        for e in p.entries {
            let dst = p.storage + e.offset
            if e.name.hasSuffix("ln_1.weight") || e.name.hasSuffix("ln_2.weight") || e.name.hasSuffix("ln_pre.weight")
                || e.name.hasSuffix("ln_post.weight") || e.name == "ln_final.weight" {
                for i in 0..<e.count { dst[i] = 1 }
            } else if e.name == "logit_scale" {
                dst[0] = Float(Foundation.log(1 / 0.07))
            } else if e.name.hasSuffix(".bias") {
                for i in 0..<e.count { dst[i] = 0 }
            } else {
                let s = std(for: e.name)
                for i in 0..<e.count { dst[i] = rng.normal(std: s) }
            }
        }
        return CLIPModel(config: config, parameters: p)
    }

    /// The learned temperature as stored (log scale).
    public var logitScale: Float { parameters["logit_scale"][0] }

    // MARK: image tower

    /// Unnormalised image features [B, embedDim] of preprocessed pixels [B, 3, S, S].
    public func encodeImages(_ pixels: [Float], count b: Int, observer: ActivationObserver? = nil) -> Tensor {
        let s = config.imageSize
        precondition(pixels.count == b * 3 * s * s, "expected \(b) images of 3x\(s)x\(s)")
        return pixels.withUnsafeBufferPointer { encodeImages($0.baseAddress!, count: b, observer: observer) }
    }

    public func encodeImages(_ pixels: UnsafePointer<Float>, count b: Int, observer: ActivationObserver? = nil) -> Tensor {
        let state = VisionForward(config: config, batch: b, keepForBackward: false)
        return state.run(pixels, params: parameters, observer: observer, packed: inference.vision(config, parameters))
    }

    // MARK: text tower

    /// Unnormalised text features [B, embedDim] of token id rows (each `contextLength` long,
    /// SOT … EOT, zero padded). Each caption is computed only up to its end-of-text token
    /// (its pooling position, argmax of the ids): the causal mask makes that exact. Captions
    /// of similar length are batched together, at most `maxBatch` at a time.
    public func encodeTexts(_ tokens: [[Int32]], maxBatch: Int = 32, trueLength: Bool = true,
                            observer: ActivationObserver? = nil) throws -> Tensor {
        var out = Tensor(zeros: [tokens.count, config.embedDim])
        if tokens.isEmpty { return out }
        var lengths: [Int] = []
        for (i, row) in tokens.enumerated() {
            guard row.count == config.contextLength else {
                throw CLIPError(.invalidInput, "token row \(i) has \(row.count) ids, the model's context length is \(config.contextLength)")
            }
            if let bad = row.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
                throw CLIPError(.invalidInput, "token row \(i) has id \(bad) outside the vocabulary (0..<\(config.vocabSize))")
            }
            lengths.append(trueLength ? Self.poolingIndex(row) + 1 : config.contextLength)
        }
        let order = lengths.indices.sorted { lengths[$0] < lengths[$1] }
        let packed = inference.text(config, parameters)
        var start = 0
        while start < order.count {
            let end = min(start + max(1, maxBatch), order.count)
            let group = Array(order[start..<end])
            let t = group.map { lengths[$0] }.max()!
            var ids = [Int32](repeating: 0, count: group.count * t)
            var pool = [Int](repeating: 0, count: group.count)
            for (j, idx) in group.enumerated() {
                for k in 0..<t { ids[j * t + k] = tokens[idx][k] }
                pool[j] = Self.poolingIndex(tokens[idx])
            }
            let state = TextForward(config: config, batch: group.count, tokens: t, keepForBackward: false)
            let features = state.run(ids, pool: pool, params: parameters, observer: observer, packed: packed)
            for (j, idx) in group.enumerated() {
                for k in 0..<config.embedDim { out.data[idx * config.embedDim + k] = features.data[j * config.embedDim + k] }
            }
            start = end
        }
        return out
    }

    /// open_clip pools at `argmax(ids)`: the first end-of-text token (the largest id).
    public static func poolingIndex(_ ids: [Int32]) -> Int {
        var best = 0
        for i in ids.indices where ids[i] > ids[best] { best = i }
        return best
    }
}

/// One forward pass of the vision tower over a batch, holding the activations.
final class VisionForward {
    let config: CLIPConfig
    let b: Int
    let blocks: [BlockActivations]
    let patches: UnsafeMutablePointer<Float>    // [B*G*G, 3*P*P]
    let embeddings: UnsafeMutablePointer<Float> // [B, T, W] before ln_pre
    let stream: UnsafeMutablePointer<Float>     // [B, T, W] residual stream
    let lnPreMean, lnPreRstd: UnsafeMutablePointer<Float>
    let cls: UnsafeMutablePointer<Float>        // [B, W] final CLS tokens before ln_post
    let pooled: UnsafeMutablePointer<Float>     // [B, W] after ln_post
    let lnPostMean, lnPostRstd: UnsafeMutablePointer<Float>

    init(config: CLIPConfig, batch b: Int, keepForBackward: Bool) {
        self.config = config
        self.b = b
        let w = config.vision.width, t = config.visionTokens, g = config.gridSize, p = config.patchSize
        let shared = keepForBackward ? nil : BlockActivations(b: b, t: t, c: w, m: config.vision.mlpWidth, nh: config.vision.heads, keepAttention: false)
        blocks = (0..<config.vision.layers).map { _ in
            shared ?? BlockActivations(b: b, t: t, c: w, m: config.vision.mlpWidth, nh: config.vision.heads, keepAttention: true)
        }
        patches = .allocate(capacity: b * g * g * 3 * p * p)
        embeddings = .allocate(capacity: b * t * w)
        stream = .allocate(capacity: b * t * w)
        lnPreMean = .allocate(capacity: b * t); lnPreRstd = .allocate(capacity: b * t)
        cls = .allocate(capacity: b * w); pooled = .allocate(capacity: b * w)
        lnPostMean = .allocate(capacity: b); lnPostRstd = .allocate(capacity: b)
    }

    deinit {
        for ptr in [patches, embeddings, stream, lnPreMean, lnPreRstd, cls, pooled, lnPostMean, lnPostRstd] { ptr.deallocate() }
    }

    /// With `packed` (inference) the GEMMs and attention run on the packed kernels; without it
    /// (training, and the `.blas` family) on OpenBLAS.
    func run(_ pixels: UnsafePointer<Float>, params: ParameterStore, observer: ActivationObserver?,
             packed: PackedTower? = nil) -> Tensor {
        let cfg = config
        let w = cfg.vision.width, t = cfg.visionTokens, g = cfg.gridSize, p = cfg.patchSize
        let k = 3 * p * p, gg = g * g, eps = cfg.layerNormEps
        func observe(_ name: String, _ shape: [Int], _ ptr: UnsafePointer<Float>) {
            observer?(name, shape, UnsafeBufferPointer(start: ptr, count: shape.reduce(1, *)))
        }
        // Patch embedding: a stride-P convolution as one matrix multiply.
        im2colPatches(out: patches, images: pixels, b: b, channels: 3, size: cfg.imageSize, patch: p)
        let conv = UnsafeMutablePointer<Float>.allocate(capacity: b * gg * w)
        defer { conv.deallocate() }
        if let embedding = packed?.patchEmbedding {
            packedLinearForward(out: conv, inp: patches, weight: embedding, bias: nil, m: b * gg)
        } else {
            gemm(.none, .transposed, m: b * gg, n: w, k: k, a: patches, lda: k, b: params["visual.conv1.weight"], ldb: k, c: conv, ldc: w)
        }
        observe("vision.conv1_tokens", [b, gg, w], conv)
        let classEmb = params["visual.class_embedding"], pos = params["visual.positional_embedding"]
        for bi in 0..<b {
            let x = embeddings + bi * t * w
            for j in 0..<w { x[j] = classEmb[j] + pos[j] }
            for i in 0..<gg {
                let row = x + (1 + i) * w, src = conv + (bi * gg + i) * w, pr = pos + (1 + i) * w
                for j in 0..<w { row[j] = src[j] + pr[j] }
            }
        }
        observe("vision.embeddings", [b, t, w], embeddings)
        layerNormForward(out: stream, mean: lnPreMean, rstd: lnPreRstd, inp: embeddings,
                         weight: params["visual.ln_pre.weight"], bias: params["visual.ln_pre.bias"], n: b * t, c: w, eps: eps)
        observe("vision.ln_pre", [b, t, w], stream)
        // The last block computes past attention only the class tokens, all that is read afterwards.
        let classRows = observer == nil ? (0..<b).map { $0 * t } : nil
        for (i, acts) in blocks.enumerated() {
            blockForward(stream, weights: BlockWeights(params, prefix: "visual.transformer.resblocks.\(i)"), acts: acts,
                         causal: false, activation: cfg.activation, eps: eps, keepIntermediates: observer != nil,
                         packed: packed?.blocks[i], outputRows: i == blocks.count - 1 ? classRows : nil)
            if observer != nil {
                observe("vision.resblock.\(i).after_attn", [b, t, w], acts.afterAttn)
                observe("vision.resblock.\(i)", [b, t, w], stream)
            }
        }
        if observer != nil {
            let all = UnsafeMutablePointer<Float>.allocate(capacity: b * t * w)
            defer { all.deallocate() }
            layerNormForward(out: all, mean: nil, rstd: nil, inp: stream, weight: params["visual.ln_post.weight"],
                             bias: params["visual.ln_post.bias"], n: b * t, c: w, eps: eps)
            observe("vision.ln_post", [b, t, w], all)
        }
        for bi in 0..<b { (cls + bi * w).update(from: stream + bi * t * w, count: w) }
        layerNormForward(out: pooled, mean: lnPostMean, rstd: lnPostRstd, inp: cls, weight: params["visual.ln_post.weight"],
                         bias: params["visual.ln_post.bias"], n: b, c: w, eps: eps)
        observe("vision.pooled", [b, w], pooled)
        var out = Tensor(zeros: [b, cfg.embedDim])
        out.data.withUnsafeMutableBufferPointer {
            if let packed {
                packedLinearForward(out: $0.baseAddress!, inp: pooled, weight: packed.projection, bias: nil, m: b)
            } else {
                projectionForward(out: $0.baseAddress!, inp: pooled, weight: params["visual.proj"], n: b, c: w, oc: cfg.embedDim)
            }
        }
        out.data.withUnsafeBufferPointer { observe("vision.projected", [b, cfg.embedDim], $0.baseAddress!) }
        return out
    }
}

/// One forward pass of the text tower over a batch of T-token rows, holding the activations.
final class TextForward {
    let config: CLIPConfig
    let b: Int, t: Int
    let blocks: [BlockActivations]
    let stream: UnsafeMutablePointer<Float>     // [B, T, W]
    let eot: UnsafeMutablePointer<Float>        // [B, W] rows at the pooling positions
    let pooled: UnsafeMutablePointer<Float>     // [B, W] after ln_final
    let lnMean, lnRstd: UnsafeMutablePointer<Float>
    var ids: [Int32] = []
    var pool: [Int] = []

    init(config: CLIPConfig, batch b: Int, tokens t: Int, keepForBackward: Bool) {
        self.config = config
        self.b = b
        self.t = t
        let w = config.text.width
        let shared = keepForBackward ? nil : BlockActivations(b: b, t: t, c: w, m: config.text.mlpWidth, nh: config.text.heads, keepAttention: false)
        blocks = (0..<config.text.layers).map { _ in
            shared ?? BlockActivations(b: b, t: t, c: w, m: config.text.mlpWidth, nh: config.text.heads, keepAttention: true)
        }
        stream = .allocate(capacity: b * t * w)
        eot = .allocate(capacity: b * w); pooled = .allocate(capacity: b * w)
        lnMean = .allocate(capacity: b); lnRstd = .allocate(capacity: b)
    }

    deinit {
        for ptr in [stream, eot, pooled, lnMean, lnRstd] { ptr.deallocate() }
    }

    /// `ids` is [B, T]; `pool[b]` the row index (< T) whose final state is the caption's feature.
    func run(_ ids: [Int32], pool: [Int], params: ParameterStore, observer: ActivationObserver?,
             packed: PackedTower? = nil) -> Tensor {
        let cfg = config
        let w = cfg.text.width, eps = cfg.layerNormEps
        self.ids = ids
        self.pool = pool
        func observe(_ name: String, _ shape: [Int], _ ptr: UnsafePointer<Float>) {
            observer?(name, shape, UnsafeBufferPointer(start: ptr, count: shape.reduce(1, *)))
        }
        ids.withUnsafeBufferPointer {
            embeddingForward(out: stream, ids: $0.baseAddress!, table: params["token_embedding.weight"],
                             positional: params["positional_embedding"], b: b, t: t, c: w)
        }
        observe("text.embeddings", [b, t, w], stream)
        // The last block computes past attention only the pooled rows, all that is read afterwards.
        let poolRows = observer == nil ? (0..<b).map { $0 * t + pool[$0] } : nil
        for (i, acts) in blocks.enumerated() {
            blockForward(stream, weights: BlockWeights(params, prefix: "transformer.resblocks.\(i)"), acts: acts,
                         causal: true, activation: cfg.activation, eps: eps, keepIntermediates: observer != nil,
                         packed: packed?.blocks[i], outputRows: i == blocks.count - 1 ? poolRows : nil)
            if observer != nil {
                observe("text.resblock.\(i).after_attn", [b, t, w], acts.afterAttn)
                observe("text.resblock.\(i)", [b, t, w], stream)
            }
        }
        if observer != nil {
            let all = UnsafeMutablePointer<Float>.allocate(capacity: b * t * w)
            defer { all.deallocate() }
            layerNormForward(out: all, mean: nil, rstd: nil, inp: stream, weight: params["ln_final.weight"],
                             bias: params["ln_final.bias"], n: b * t, c: w, eps: eps)
            observe("text.ln_final", [b, t, w], all)
        }
        for bi in 0..<b { (eot + bi * w).update(from: stream + (bi * t + pool[bi]) * w, count: w) }
        layerNormForward(out: pooled, mean: lnMean, rstd: lnRstd, inp: eot, weight: params["ln_final.weight"],
                         bias: params["ln_final.bias"], n: b, c: w, eps: eps)
        observe("text.pooled_eot", [b, w], pooled)
        var out = Tensor(zeros: [b, cfg.embedDim])
        out.data.withUnsafeMutableBufferPointer {
            if let packed {
                packedLinearForward(out: $0.baseAddress!, inp: pooled, weight: packed.projection, bias: nil, m: b)
            } else {
                projectionForward(out: $0.baseAddress!, inp: pooled, weight: params["text_projection"], n: b, c: w, oc: cfg.embedDim)
            }
        }
        out.data.withUnsafeBufferPointer { observe("text.projected", [b, cfg.embedDim], $0.baseAddress!) }
        return out
    }
}
