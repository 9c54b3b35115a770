import Foundation

/// LayerNorm over the last dimension C for N rows. Caches `mean` and `rstd` [N] for backward.
public func layerNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?,
                             rstd: UnsafeMutablePointer<Float>?, inp: UnsafePointer<Float>,
                             weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                             n: Int, c: Int, eps: Float) {
    for i in 0..<n {
        let x = inp + i * c
        var sum: Float = 0
        for j in 0..<c { sum += x[j] }
        let m = sum / Float(c)
        var sq: Float = 0
        for j in 0..<c { let d = x[j] - m; sq += d * d }
        let s = 1 / (sq / Float(c) + eps).squareRoot()
        let y = out + i * c
        for j in 0..<c { y[j] = (x[j] - m) * s * weight[j] + bias[j] }
        mean?[i] = m
        rstd?[i] = s
    }
}

/// Backward of `layerNormForward`, accumulating into dinp, dweight, dbias.
public func layerNormBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                              dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                              inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, n: Int, c: Int) {
    for i in 0..<n {
        let dy = dout + i * c, x = inp + i * c
        let m = mean[i], s = rstd[i]
        var dnormMean: Float = 0, dnormNormMean: Float = 0
        for j in 0..<c {
            let norm = (x[j] - m) * s
            let dnorm = weight[j] * dy[j]
            dnormMean += dnorm
            dnormNormMean += dnorm * norm
        }
        dnormMean /= Float(c)
        dnormNormMean /= Float(c)
        for j in 0..<c {
            let norm = (x[j] - m) * s
            dbias?[j] += dy[j]
            dweight?[j] += norm * dy[j]
            if let dinp {
                let dnorm = weight[j] * dy[j]
                dinp[i * c + j] += (dnorm - dnormMean - norm * dnormNormMean) * s
            }
        }
    }
}
