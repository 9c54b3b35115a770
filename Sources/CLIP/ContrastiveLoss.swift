import Foundation
import Tensor

/// CLIP's symmetric cross-entropy over temperature-scaled cosine similarities of a batch of
/// matching (image, text) pairs: logits = exp(logit_scale) · normalize(I) · normalize(T)ᵀ,
/// loss = (CE(logits, diag) + CE(logitsᵀ, diag)) / 2, mean-reduced.
public struct ContrastiveLoss: Sendable {
    public let loss: Float
    public let lossImageToText: Float
    public let lossTextToImage: Float
    /// [B, B], row i = image i against every text.
    public let logitsPerImage: [Float]
    /// d(loss)/d(unnormalised image features) [B, E], d(loss)/d(text features), d(loss)/d(logit_scale).
    public let dImage: [Float]
    public let dText: [Float]
    public let dLogitScale: Float

    public init(image: [Float], text: [Float], batch b: Int, dim e: Int, logitScale: Float) {
        precondition(image.count == b * e && text.count == b * e)
        var imgN = image, txtN = text
        let imgNorm = Self.normalize(&imgN, rows: b, cols: e), txtNorm = Self.normalize(&txtN, rows: b, cols: e)
        let scale = expf(logitScale)
        var logits = [Float](repeating: 0, count: b * b)
        imgN.withUnsafeBufferPointer { ip in
            txtN.withUnsafeBufferPointer { tp in
                gemm(.none, .transposed, m: b, n: b, k: e, alpha: scale, a: ip.baseAddress!, lda: e, b: tp.baseAddress!, ldb: e,
                     c: &logits, ldc: b)
            }
        }
        // Row softmax (image→text) and column softmax (text→image), in Double for the sums.
        var pRow = [Float](repeating: 0, count: b * b), pCol = pRow
        var lossI = 0.0, lossT = 0.0
        for i in 0..<b {
            let row = (0..<b).map { Double(logits[i * b + $0]) }
            let m = row.max()!
            let z = row.reduce(0) { $0 + Foundation.exp($1 - m) }
            for j in 0..<b { pRow[i * b + j] = Float(Foundation.exp(row[j] - m) / z) }
            lossI += -(row[i] - m - Foundation.log(z))
        }
        for j in 0..<b {
            let col = (0..<b).map { Double(logits[$0 * b + j]) }
            let m = col.max()!
            let z = col.reduce(0) { $0 + Foundation.exp($1 - m) }
            for i in 0..<b { pCol[i * b + j] = Float(Foundation.exp(col[i] - m) / z) }
            lossT += -(col[j] - m - Foundation.log(z))
        }
        lossI /= Double(b)
        lossT /= Double(b)
        // dL/dlogits = ((P_row - I) + (P_col - I)) / (2B).
        var dLogits = [Float](repeating: 0, count: b * b)
        for i in 0..<b {
            for j in 0..<b {
                let target: Float = i == j ? 1 : 0
                dLogits[i * b + j] = ((pRow[i * b + j] - target) + (pCol[i * b + j] - target)) / Float(2 * b)
            }
        }
        var dScale: Float = 0
        for k in 0..<(b * b) { dScale += dLogits[k] * logits[k] }
        // Through the scaled dot products to the normalised features.
        var dImgN = [Float](repeating: 0, count: b * e), dTxtN = dImgN
        gemm(.none, .none, m: b, n: e, k: b, alpha: scale, a: dLogits, lda: b, b: txtN, ldb: e, c: &dImgN, ldc: e)
        gemm(.transposed, .none, m: b, n: e, k: b, alpha: scale, a: dLogits, lda: b, b: imgN, ldb: e, c: &dTxtN, ldc: e)
        self.loss = Float((lossI + lossT) / 2)
        self.lossImageToText = Float(lossI)
        self.lossTextToImage = Float(lossT)
        self.logitsPerImage = logits
        self.dImage = Self.normalizeBackward(dImgN, normalized: imgN, norms: imgNorm, rows: b, cols: e)
        self.dText = Self.normalizeBackward(dTxtN, normalized: txtN, norms: txtNorm, rows: b, cols: e)
        self.dLogitScale = dScale
    }

    static func normalize(_ x: inout [Float], rows: Int, cols: Int) -> [Float] {
        var norms = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            var sq: Float = 0
            for j in 0..<cols { sq += x[r * cols + j] * x[r * cols + j] }
            norms[r] = max(sq.squareRoot(), 1e-12)
            for j in 0..<cols { x[r * cols + j] /= norms[r] }
        }
        return norms
    }

    /// y = x / |x|  ⇒  dx = (dy − y (y·dy)) / |x|.
    static func normalizeBackward(_ dy: [Float], normalized y: [Float], norms: [Float], rows: Int, cols: Int) -> [Float] {
        var dx = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            var dot: Float = 0
            for j in 0..<cols { dot += y[r * cols + j] * dy[r * cols + j] }
            for j in 0..<cols { dx[r * cols + j] = (dy[r * cols + j] - y[r * cols + j] * dot) / norms[r] }
        }
        return dx
    }
}
