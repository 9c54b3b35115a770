// Fully connected layers. Shape letters: N rows (batch x tokens), C input features,
// OC output features.

/// `out[N,OC] = inp[N,C] @ W^T + bias`, with W stored [OC,C] as in torch.nn.Linear.
public func linearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          n: Int, c: Int, oc: Int) {
    gemm(.none, .transposed, m: n, n: oc, k: c, a: inp, lda: c, b: weight, ldb: c, c: out, ldc: oc)
    if let bias { addRowBias(out, bias, rows: n, cols: oc) }
}

/// Backward of `linearForward`; gradients are accumulated (+=) into dinp, dweight, dbias.
public func linearBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                           dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                           inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           n: Int, c: Int, oc: Int) {
    if let dinp {
        gemm(.none, .none, m: n, n: c, k: oc, a: dout, lda: oc, b: weight, ldb: c, beta: 1, c: dinp, ldc: c)
    }
    if let dweight {
        gemm(.transposed, .none, m: oc, n: c, k: n, a: dout, lda: oc, b: inp, ldb: c, beta: 1, c: dweight, ldc: c)
    }
    if let dbias { sumRows(into: dbias, dout, rows: n, cols: oc) }
}

/// `out[N,OC] = inp[N,C] @ W` with W stored [C,OC] (CLIP's `visual.proj`, `text_projection`).
public func projectionForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                              weight: UnsafePointer<Float>, n: Int, c: Int, oc: Int) {
    gemm(.none, .none, m: n, n: oc, k: c, a: inp, lda: c, b: weight, ldb: oc, c: out, ldc: oc)
}

/// Backward of `projectionForward`, accumulating.
public func projectionBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                               dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, n: Int, c: Int, oc: Int) {
    if let dinp {
        gemm(.none, .transposed, m: n, n: c, k: oc, a: dout, lda: oc, b: weight, ldb: oc, beta: 1, c: dinp, ldc: c)
    }
    if let dweight {
        gemm(.transposed, .none, m: c, n: oc, k: n, a: inp, lda: c, b: dout, ldb: oc, beta: 1, c: dweight, ldc: oc)
    }
}

@inline(__always)
func addRowBias(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let row = out + r * cols
        for j in 0..<cols { row[j] += bias[j] }
    }
}

@inline(__always)
func sumRows(into acc: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let row = x + r * cols
        for j in 0..<cols { acc[j] += row[j] }
    }
}
