import Foundation

// Multi-head self-attention over a packed projection. Shape letters: B batch, T tokens,
// C width, NH heads, HS = C / NH head size. `qkv` is [B, T, 3C] = [q | k | v] per token, the
// output of `in_proj` (torch.nn.MultiheadAttention's packed layout); head h of q is columns
// h*HS ..< (h+1)*HS. Scores are scaled by 1/sqrt(HS).

/// `out[B,T,C]` = concatenated heads of softmax(q k^T / sqrt(HS) + mask) v.
/// When `att` is given ([B, NH, T, T]) it receives the attention probabilities for backward;
/// otherwise a per-head scratch is used.
public func attentionForward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>?,
                             qkv: UnsafePointer<Float>, b: Int, t: Int, c: Int, nh: Int, causal: Bool) {
    let hs = c / nh
    let scale = 1 / Float(hs).squareRoot()
    let scratch: UnsafeMutablePointer<Float>? = att == nil ? .allocate(capacity: t * t) : nil
    defer { scratch?.deallocate() }
    for bi in 0..<b {
        let base = qkv + bi * t * 3 * c
        for h in 0..<nh {
            let probs = att.map { $0 + ((bi * nh + h) * t * t) } ?? scratch!
            let q = base + h * hs, k = base + c + h * hs, v = base + 2 * c + h * hs
            gemm(.none, .transposed, m: t, n: t, k: hs, alpha: scale, a: q, lda: 3 * c, b: k, ldb: 3 * c,
                 c: probs, ldc: t)
            softmaxRowsInPlace(probs, rows: t, cols: t, causal: causal)
            gemm(.none, .none, m: t, n: hs, k: t, a: probs, lda: t, b: v, ldb: 3 * c,
                 c: out + bi * t * c + h * hs, ldc: c)
        }
    }
}

/// Backward of `attentionForward` given the cached probabilities; accumulates into dqkv.
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                              att: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                              b: Int, t: Int, c: Int, nh: Int) {
    let hs = c / nh
    let scale = 1 / Float(hs).squareRoot()
    let datt = UnsafeMutablePointer<Float>.allocate(capacity: t * t)
    defer { datt.deallocate() }
    for bi in 0..<b {
        let base = qkv + bi * t * 3 * c
        let dbase = dqkv + bi * t * 3 * c
        let doutB = dout + bi * t * c
        for h in 0..<nh {
            let probs = att + (bi * nh + h) * t * t
            let q = base + h * hs, k = base + c + h * hs, v = base + 2 * c + h * hs
            let dq = dbase + h * hs, dk = dbase + c + h * hs, dv = dbase + 2 * c + h * hs
            let doh = doutB + h * hs
            // datt = dout_h v^T ; dv += att^T dout_h
            gemm(.none, .transposed, m: t, n: t, k: hs, a: doh, lda: c, b: v, ldb: 3 * c, c: datt, ldc: t)
            gemm(.transposed, .none, m: t, n: hs, k: t, a: probs, lda: t, b: doh, ldb: c, beta: 1, c: dv, ldc: 3 * c)
            // softmax backward in place: dpre = att * (datt - sum(att * datt))
            for r in 0..<t {
                let pr = probs + r * t, dr = datt + r * t
                var dot: Float = 0
                for j in 0..<t { dot += pr[j] * dr[j] }
                for j in 0..<t { dr[j] = pr[j] * (dr[j] - dot) }
            }
            // dq += scale dpre k ; dk += scale dpre^T q
            gemm(.none, .none, m: t, n: hs, k: t, alpha: scale, a: datt, lda: t, b: k, ldb: 3 * c, beta: 1, c: dq, ldc: 3 * c)
            gemm(.transposed, .none, m: t, n: hs, k: t, alpha: scale, a: datt, lda: t, b: q, ldb: 3 * c, beta: 1, c: dk, ldc: 3 * c)
        }
    }
}

/// Numerically stable softmax of each row; with `causal`, row r attends to columns 0...r only
/// (the rest become exactly 0, as with an additive -inf mask).
public func softmaxRowsInPlace(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, causal: Bool = false) {
    for r in 0..<rows {
        let row = x + r * cols
        let valid = causal ? min(r + 1, cols) : cols
        var maxv = -Float.infinity
        for j in 0..<valid where row[j] > maxv { maxv = row[j] }
        var sum: Float = 0
        for j in 0..<valid {
            let e = expf(row[j] - maxv)
            row[j] = e
            sum += e
        }
        let inv = 1 / sum
        for j in 0..<valid { row[j] *= inv }
        for j in valid..<cols { row[j] = 0 }
    }
}
