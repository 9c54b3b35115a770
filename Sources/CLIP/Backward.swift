import Tensor

/// Gradient scratch for one block's backward pass (shape letters as in BlockActivations).
final class BlockGradients {
    let dln1, dattnOut, dafterAttn, dln2: UnsafeMutablePointer<Float>  // [N,C]
    let dqkv: UnsafeMutablePointer<Float>                                      // [N,3C]
    let dfc, dact: UnsafeMutablePointer<Float>                                 // [N,M]
    let nc: Int, nm: Int

    init(n: Int, c: Int, m: Int) {
        nc = n * c; nm = n * m
        dln1 = .allocate(capacity: nc); dattnOut = .allocate(capacity: nc); dafterAttn = .allocate(capacity: nc)
        dln2 = .allocate(capacity: nc)
        dqkv = .allocate(capacity: 3 * nc); dfc = .allocate(capacity: nm); dact = .allocate(capacity: nm)
    }

    func zero() {
        for p in [dln1, dattnOut, dafterAttn, dln2] { p.update(repeating: 0, count: nc) }
        dqkv.update(repeating: 0, count: 3 * nc)
        dfc.update(repeating: 0, count: nm); dact.update(repeating: 0, count: nm)
    }

    deinit { for p in [dln1, dattnOut, dafterAttn, dln2, dqkv, dfc, dact] { p.deallocate() } }
}

/// Backward of `blockForward`. `dx` holds d(loss)/d(block output) [N,C] on entry and
/// d(loss)/d(block input) on exit; parameter gradients are accumulated into `g`.
func blockBackward(_ dx: UnsafeMutablePointer<Float>, weights w: BlockWeights, grads g: BlockWeights,
                   acts a: BlockActivations, scratch s: BlockGradients, activation: Activation) {
    let n = a.n, c = a.c, m = a.m
    s.zero()
    // MLP branch: out = afterAttn + c_proj(act(c_fc(ln_2(afterAttn)))).
    linearBackward(dinp: s.dact, dweight: g.projW, dbias: g.projB, dout: dx, inp: a.act, weight: w.projW, n: n, c: m, oc: c)
    activation.backward(dinp: s.dfc, inp: a.fc, dout: s.dact, count: n * m)
    linearBackward(dinp: s.dln2, dweight: g.fcW, dbias: g.fcB, dout: s.dfc, inp: a.ln2, weight: w.fcW, n: n, c: c, oc: m)
    s.dafterAttn.update(from: dx, count: n * c)
    layerNormBackward(dinp: s.dafterAttn, dweight: g.ln2W, dbias: g.ln2B, dout: s.dln2, inp: a.afterAttn, weight: w.ln2W,
                      mean: a.ln2Mean, rstd: a.ln2Rstd, n: n, c: c)
    // Attention branch: afterAttn = input + out_proj(attn(in_proj(ln_1(input)))).
    linearBackward(dinp: s.dattnOut, dweight: g.outProjW, dbias: g.outProjB, dout: s.dafterAttn, inp: a.attnOut,
                   weight: w.outProjW, n: n, c: c, oc: c)
    attentionBackward(dqkv: s.dqkv, dout: s.dattnOut, att: a.att!, qkv: a.qkv, b: a.b, t: a.t, c: c, nh: a.nh)
    linearBackward(dinp: s.dln1, dweight: g.inProjW, dbias: g.inProjB, dout: s.dqkv, inp: a.ln1, weight: w.inProjW,
                   n: n, c: c, oc: 3 * c)
    dx.update(from: s.dafterAttn, count: n * c)
    layerNormBackward(dinp: dx, dweight: g.ln1W, dbias: g.ln1B, dout: s.dln1, inp: a.input, weight: w.ln1W,
                      mean: a.ln1Mean, rstd: a.ln1Rstd, n: n, c: c)
}

/// Which parameters a fine-tuning run updates; everything else stays frozen and its tower
/// runs forward only.
public enum FineTuneMode: Sendable, Equatable, CustomStringConvertible {
    /// `visual.proj`, `text_projection` and `logit_scale` only.
    case projections
    /// Locked-image tuning (LiT): the whole text tower, the image tower frozen.
    case lockImage
    /// The last `n` residual blocks of the image tower (plus ln_post and its projection).
    case lastVisionBlocks(Int)
    /// The last `n` residual blocks of the text tower (plus ln_final and its projection).
    case lastTextBlocks(Int)
    /// Every parameter.
    case full

    public var description: String {
        switch self {
        case .projections: return "projections"
        case .lockImage: return "lock-image"
        case .lastVisionBlocks(let n): return "last-vision-blocks:\(n)"
        case .lastTextBlocks(let n): return "last-text-blocks:\(n)"
        case .full: return "full"
        }
    }

    /// Parses `projections`, `lock-image`, `last-vision-blocks:N`, `last-text-blocks:N`, `full`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        switch (parts.first.map(String.init), parts.count) {
        case ("projections", 1): self = .projections
        case ("lock-image", 1), ("lit", 1): self = .lockImage
        case ("full", 1): self = .full
        case ("last-vision-blocks", 2): guard let n = Int(parts[1]), n >= 0 else { return nil }; self = .lastVisionBlocks(n)
        case ("last-text-blocks", 2): guard let n = Int(parts[1]), n >= 0 else { return nil }; self = .lastTextBlocks(n)
        default: return nil
        }
    }

    /// Vision blocks that need backward (from this index up), or nil when the vision tower's
    /// body is frozen.
    func firstTrainedVisionBlock(_ cfg: CLIPConfig) -> Int? {
        switch self {
        case .full: return 0
        case .lastVisionBlocks(let n): return max(0, cfg.vision.layers - n)
        default: return nil
        }
    }

    func firstTrainedTextBlock(_ cfg: CLIPConfig) -> Int? {
        switch self {
        case .full, .lockImage: return 0
        case .lastTextBlocks(let n): return max(0, cfg.text.layers - n)
        default: return nil
        }
    }

    /// Whether the named parameter is updated.
    public func trains(_ name: String, config cfg: CLIPConfig) -> Bool {
        if name == "logit_scale" || name == "visual.proj" || name == "text_projection" {
            switch self {
            case .lockImage: return name != "visual.proj"
            default: return true
            }
        }
        if name.hasPrefix("visual.") {
            guard let first = firstTrainedVisionBlock(cfg) else { return false }
            if name.hasPrefix("visual.ln_post") { return true }
            if let layer = Self.blockIndex(name, prefix: "visual.transformer.resblocks.") { return layer >= first }
            return first == 0 && self == .full
        }
        guard let first = firstTrainedTextBlock(cfg) else { return false }
        if name.hasPrefix("ln_final") { return true }
        if let layer = Self.blockIndex(name, prefix: "transformer.resblocks.") { return layer >= first }
        return first == 0 && (self == .full || self == .lockImage)
    }

    static func blockIndex(_ name: String, prefix: String) -> Int? {
        guard name.hasPrefix(prefix) else { return nil }
        return Int(name.dropFirst(prefix.count).prefix { $0 != "." })
    }
}

extension VisionForward {
    /// Backpropagates d(loss)/d(image features) [B, E] into `grads` (same layout as params),
    /// through the blocks from `firstBlock` on; nil `firstBlock` stops after ln_post.
    func backward(_ dFeatures: UnsafePointer<Float>, params: ParameterStore, grads: ParameterStore,
                  firstBlock: Int?, trainPostLN: Bool) {
        let cfg = config
        let w = cfg.vision.width, t = cfg.visionTokens, e = cfg.embedDim
        let dPooled = UnsafeMutablePointer<Float>.allocate(capacity: b * w)
        defer { dPooled.deallocate() }
        dPooled.initialize(repeating: 0, count: b * w)
        projectionBackward(dinp: dPooled, dweight: grads["visual.proj"], dout: dFeatures, inp: pooled,
                           weight: params["visual.proj"], n: b, c: w, oc: e)
        guard trainPostLN || firstBlock != nil else { return }
        let dCls = UnsafeMutablePointer<Float>.allocate(capacity: b * w)
        defer { dCls.deallocate() }
        dCls.initialize(repeating: 0, count: b * w)
        layerNormBackward(dinp: dCls, dweight: grads["visual.ln_post.weight"], dbias: grads["visual.ln_post.bias"],
                          dout: dPooled, inp: cls, weight: params["visual.ln_post.weight"], mean: lnPostMean, rstd: lnPostRstd, n: b, c: w)
        guard let firstBlock else { return }
        let dx = UnsafeMutablePointer<Float>.allocate(capacity: b * t * w)
        defer { dx.deallocate() }
        dx.initialize(repeating: 0, count: b * t * w)
        for bi in 0..<b { (dx + bi * t * w).update(from: dCls + bi * w, count: w) }
        let scratch = BlockGradients(n: b * t, c: w, m: cfg.vision.mlpWidth)
        for i in stride(from: cfg.vision.layers - 1, through: firstBlock, by: -1) {
            let prefix = "visual.transformer.resblocks.\(i)"
            blockBackward(dx, weights: BlockWeights(params, prefix: prefix), grads: BlockWeights(grads, prefix: prefix),
                          acts: blocks[i], scratch: scratch, activation: cfg.activation)
        }
        guard firstBlock == 0 else { return }
        // ln_pre, then the embeddings: class token, positions, and the patch convolution.
        let dEmb = UnsafeMutablePointer<Float>.allocate(capacity: b * t * w)
        defer { dEmb.deallocate() }
        dEmb.initialize(repeating: 0, count: b * t * w)
        layerNormBackward(dinp: dEmb, dweight: grads["visual.ln_pre.weight"], dbias: grads["visual.ln_pre.bias"], dout: dx,
                          inp: embeddings, weight: params["visual.ln_pre.weight"], mean: lnPreMean, rstd: lnPreRstd, n: b * t, c: w)
        let dClass = grads["visual.class_embedding"], dPos = grads["visual.positional_embedding"]
        let gg = cfg.gridSize * cfg.gridSize, k = 3 * cfg.patchSize * cfg.patchSize
        let dConv = UnsafeMutablePointer<Float>.allocate(capacity: b * gg * w)
        defer { dConv.deallocate() }
        for bi in 0..<b {
            let d = dEmb + bi * t * w
            for j in 0..<w { dClass[j] += d[j] }
            for j in 0..<(t * w) { dPos[j] += d[j] }
            (dConv + bi * gg * w).update(from: d + w, count: gg * w)
        }
        // conv weight [W, K]: dW += dConv^T [W, B*GG] @ patches [B*GG, K]
        gemm(.transposed, .none, m: w, n: k, k: b * gg, a: dConv, lda: w, b: patches, ldb: k, beta: 1,
             c: grads["visual.conv1.weight"], ldc: k)
    }
}

extension TextForward {
    /// Backpropagates d(loss)/d(text features) [B, E] into `grads`; see VisionForward.backward.
    func backward(_ dFeatures: UnsafePointer<Float>, params: ParameterStore, grads: ParameterStore,
                  firstBlock: Int?, trainFinalLN: Bool) {
        let cfg = config
        let w = cfg.text.width, e = cfg.embedDim
        let dPooled = UnsafeMutablePointer<Float>.allocate(capacity: b * w)
        defer { dPooled.deallocate() }
        dPooled.initialize(repeating: 0, count: b * w)
        projectionBackward(dinp: dPooled, dweight: grads["text_projection"], dout: dFeatures, inp: pooled,
                           weight: params["text_projection"], n: b, c: w, oc: e)
        guard trainFinalLN || firstBlock != nil else { return }
        let dEot = UnsafeMutablePointer<Float>.allocate(capacity: b * w)
        defer { dEot.deallocate() }
        dEot.initialize(repeating: 0, count: b * w)
        layerNormBackward(dinp: dEot, dweight: grads["ln_final.weight"], dbias: grads["ln_final.bias"], dout: dPooled,
                          inp: eot, weight: params["ln_final.weight"], mean: lnMean, rstd: lnRstd, n: b, c: w)
        guard let firstBlock else { return }
        let dx = UnsafeMutablePointer<Float>.allocate(capacity: b * t * w)
        defer { dx.deallocate() }
        dx.initialize(repeating: 0, count: b * t * w)
        for bi in 0..<b { (dx + (bi * t + pool[bi]) * w).update(from: dEot + bi * w, count: w) }
        let scratch = BlockGradients(n: b * t, c: w, m: cfg.text.mlpWidth)
        for i in stride(from: cfg.text.layers - 1, through: firstBlock, by: -1) {
            let prefix = "transformer.resblocks.\(i)"
            blockBackward(dx, weights: BlockWeights(params, prefix: prefix), grads: BlockWeights(grads, prefix: prefix),
                          acts: blocks[i], scratch: scratch, activation: cfg.activation)
        }
        guard firstBlock == 0 else { return }
        ids.withUnsafeBufferPointer {
            embeddingBackward(dtable: grads["token_embedding.weight"], dpositional: grads["positional_embedding"],
                              dout: dx, ids: $0.baseAddress!, b: b, t: t, c: w)
        }
    }
}
