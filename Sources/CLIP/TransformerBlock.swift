import Tensor

/// Callback receiving named intermediate activations (fixture names such as
/// `vision.resblock.0.after_attn`) with their shape; used by fidelity tests and debugging.
public typealias ActivationObserver = (_ name: String, _ shape: [Int], _ values: UnsafeBufferPointer<Float>) -> Void

/// Everything one pre-LN residual block computes for a batch, kept for backward.
/// Shape letters: B batch, T tokens, C width, M MLP width, NH heads, N = B*T.
final class BlockActivations {
    let b: Int, t: Int, c: Int, m: Int, nh: Int
    var n: Int { b * t }
    let input: UnsafeMutablePointer<Float>      // [N,C] residual stream entering the block
    let ln1: UnsafeMutablePointer<Float>        // [N,C]
    let ln1Mean: UnsafeMutablePointer<Float>    // [N]
    let ln1Rstd: UnsafeMutablePointer<Float>    // [N]
    let qkv: UnsafeMutablePointer<Float>        // [N,3C]
    let att: UnsafeMutablePointer<Float>?       // [B,NH,T,T] attention probabilities (training only)
    let attnOut: UnsafeMutablePointer<Float>    // [N,C] heads before out_proj
    let afterAttn: UnsafeMutablePointer<Float>  // [N,C] input + attention branch
    let ln2: UnsafeMutablePointer<Float>        // [N,C]
    let ln2Mean: UnsafeMutablePointer<Float>    // [N]
    let ln2Rstd: UnsafeMutablePointer<Float>    // [N]
    let fc: UnsafeMutablePointer<Float>         // [N,M] before the activation
    let act: UnsafeMutablePointer<Float>        // [N,M]

    init(b: Int, t: Int, c: Int, m: Int, nh: Int, keepAttention: Bool) {
        self.b = b; self.t = t; self.c = c; self.m = m; self.nh = nh
        let n = b * t
        func buf(_ k: Int) -> UnsafeMutablePointer<Float> { .allocate(capacity: max(k, 1)) }
        input = buf(n * c); ln1 = buf(n * c); ln1Mean = buf(n); ln1Rstd = buf(n)
        qkv = buf(n * 3 * c); att = keepAttention ? buf(b * nh * t * t) : nil
        attnOut = buf(n * c); afterAttn = buf(n * c); ln2 = buf(n * c); ln2Mean = buf(n); ln2Rstd = buf(n)
        fc = buf(n * m); act = buf(n * m)
    }

    deinit {
        for p in [input, ln1, ln1Mean, ln1Rstd, qkv, attnOut, afterAttn, ln2, ln2Mean, ln2Rstd, fc, act] { p.deallocate() }
        att?.deallocate()
    }
}

/// Pointers to one block's parameters inside a `ParameterStore`.
struct BlockWeights {
    let ln1W, ln1B, inProjW, inProjB, outProjW, outProjB, ln2W, ln2B, fcW, fcB, projW, projB: UnsafeMutablePointer<Float>

    init(_ p: ParameterStore, prefix: String) {
        ln1W = p["\(prefix).ln_1.weight"]; ln1B = p["\(prefix).ln_1.bias"]
        inProjW = p["\(prefix).attn.in_proj_weight"]; inProjB = p["\(prefix).attn.in_proj_bias"]
        outProjW = p["\(prefix).attn.out_proj.weight"]; outProjB = p["\(prefix).attn.out_proj.bias"]
        ln2W = p["\(prefix).ln_2.weight"]; ln2B = p["\(prefix).ln_2.bias"]
        fcW = p["\(prefix).mlp.c_fc.weight"]; fcB = p["\(prefix).mlp.c_fc.bias"]
        projW = p["\(prefix).mlp.c_proj.weight"]; projB = p["\(prefix).mlp.c_proj.bias"]
    }
}

/// `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))` in place on the residual stream x [B,T,C].
/// The residual additions are folded into the projections' sgemm (beta = 1). The block input and
/// the stream after attention are kept only when backward (training) or an observer needs them.
/// With `packed` (inference only) the same block runs on the packed kernels: `packedBlockForward`,
/// which takes `outputRows` (see there).
func blockForward(_ x: UnsafeMutablePointer<Float>, weights w: BlockWeights, acts a: BlockActivations,
                  causal: Bool, activation: Activation, eps: Float, keepIntermediates: Bool = false,
                  packed: PackedBlock? = nil, outputRows: [Int]? = nil) {
    let n = a.n, c = a.c, m = a.m
    let training = a.att != nil
    if let packed, !training {
        packedBlockForward(x, weights: w, packed: packed, acts: a, causal: causal, activation: activation, eps: eps,
                           keepIntermediates: keepIntermediates, outputRows: outputRows)
        return
    }
    if training { a.input.update(from: x, count: n * c) }
    layerNormForward(out: a.ln1, mean: a.ln1Mean, rstd: a.ln1Rstd, inp: x, weight: w.ln1W, bias: w.ln1B, n: n, c: c, eps: eps)
    linearForward(out: a.qkv, inp: a.ln1, weight: w.inProjW, bias: w.inProjB, n: n, c: c, oc: 3 * c)
    attentionForward(out: a.attnOut, att: a.att, qkv: a.qkv, b: a.b, t: a.t, c: c, nh: a.nh, causal: causal)
    residualLinear(x, inp: a.attnOut, weight: w.outProjW, bias: w.outProjB, n: n, c: c, oc: c)
    if training || keepIntermediates { a.afterAttn.update(from: x, count: n * c) }
    layerNormForward(out: a.ln2, mean: a.ln2Mean, rstd: a.ln2Rstd, inp: x, weight: w.ln2W, bias: w.ln2B, n: n, c: c, eps: eps)
    linearForward(out: a.fc, inp: a.ln2, weight: w.fcW, bias: w.fcB, n: n, c: c, oc: m)
    activation.forward(out: a.act, inp: a.fc, count: n * m)
    residualLinear(x, inp: a.act, weight: w.projW, bias: w.projB, n: n, c: m, oc: c)
}

/// `x += inp @ W^T + bias` (a residual branch's output projection) in one sgemm pass.
@inline(__always)
func residualLinear(_ x: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    bias: UnsafePointer<Float>, n: Int, c: Int, oc: Int) {
    gemm(.none, .transposed, m: n, n: oc, k: c, a: inp, lda: c, b: weight, ldb: c, beta: 1, c: x, ldc: oc)
    for r in 0..<n {
        let row = x + r * oc
        for j in 0..<oc { row[j] += bias[j] }
    }
}

/// The inference twin of `blockForward` on weights packed once: bias in every GEMM's write-back,
/// the activation in c_fc's, the residual adds in out_proj's and c_proj's; attention per
/// (image, head) in cache on the kernels' pool. `a.fc` (pre-activation) is not materialised.
/// With `outputRows` (the last block, whose only rows read afterwards are the pooled ones: each
/// image's class token, each caption's end-of-text token) everything after attention runs on
/// those rows alone, and only they of `x` are updated. Every row of a GEMM is computed on its own,
/// so those rows come out as they would with all rows.
func packedBlockForward(_ x: UnsafeMutablePointer<Float>, weights w: BlockWeights, packed pk: PackedBlock,
                        acts a: BlockActivations, causal: Bool, activation: Activation, eps: Float,
                        keepIntermediates: Bool, outputRows: [Int]? = nil) {
    let n = a.n, c = a.c
    let kernel = pk.inProj.kernel
    packedLayerNormForward(out: a.ln1, inp: x, weight: w.ln1W, bias: w.ln1B, n: n, c: c, eps: eps, kernel: kernel)
    packedLinearForward(out: a.qkv, inp: a.ln1, weight: pk.inProj, bias: w.inProjB, m: n)
    packedAttentionForward(out: a.attnOut, qkv: a.qkv, b: a.b, t: a.t, c: c, nh: a.nh, causal: causal, kernel: kernel)
    if let rows = outputRows, !keepIntermediates {
        // The chosen rows of the stream and of the heads, gathered into buffers free by now.
        let xs = a.ln1, heads = a.afterAttn
        for (j, row) in rows.enumerated() {
            (xs + j * c).update(from: x + row * c, count: c)
            (heads + j * c).update(from: a.attnOut + row * c, count: c)
        }
        mlpHalf(xs, heads: heads, rows: rows.count, weights: w, packed: pk, acts: a, activation: activation, eps: eps, kernel: kernel)
        for (j, row) in rows.enumerated() { (x + row * c).update(from: xs + j * c, count: c) }
        return
    }
    mlpHalf(x, heads: a.attnOut, rows: n, weights: w, packed: pk, acts: a, activation: activation, eps: eps, kernel: kernel,
            keepIntermediates: keepIntermediates)
}

/// out_proj with its residual add, then `x = x + mlp(ln_2(x))`, on `rows` rows of x.
private func mlpHalf(_ x: UnsafeMutablePointer<Float>, heads: UnsafePointer<Float>, rows: Int, weights w: BlockWeights,
                     packed pk: PackedBlock, acts a: BlockActivations, activation: Activation, eps: Float,
                     kernel: InferenceKernel, keepIntermediates: Bool = false) {
    let c = a.c
    packedLinearForward(out: x, inp: heads, weight: pk.outProj, bias: w.outProjB, m: rows, accumulate: true)
    if keepIntermediates { a.afterAttn.update(from: x, count: rows * c) }
    packedLayerNormForward(out: a.ln2, inp: x, weight: w.ln2W, bias: w.ln2B, n: rows, c: c, eps: eps, kernel: kernel)
    packedLinearForward(out: a.act, inp: a.ln2, weight: pk.fc, bias: w.fcB, m: rows, activation: .activation(activation))
    packedLinearForward(out: x, inp: a.act, weight: pk.proj, bias: w.projB, m: rows, accumulate: true)
}
