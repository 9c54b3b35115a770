// Token and patch embeddings. Shape letters: B batch, T tokens, C width, V vocabulary.

/// `out[b,t,:] = table[ids[b,t], :] + positional[t, :]`.
public func embeddingForward(out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>,
                             table: UnsafePointer<Float>, positional: UnsafePointer<Float>,
                             b: Int, t: Int, c: Int) {
    for bi in 0..<b {
        for ti in 0..<t {
            let row = table + Int(ids[bi * t + ti]) * c
            let pos = positional + ti * c
            let o = out + (bi * t + ti) * c
            for j in 0..<c { o[j] = row[j] + pos[j] }
        }
    }
}

/// Backward of `embeddingForward`, accumulating.
public func embeddingBackward(dtable: UnsafeMutablePointer<Float>?, dpositional: UnsafeMutablePointer<Float>?,
                              dout: UnsafePointer<Float>, ids: UnsafePointer<Int32>, b: Int, t: Int, c: Int) {
    for bi in 0..<b {
        for ti in 0..<t {
            let d = dout + (bi * t + ti) * c
            if let dtable {
                let row = dtable + Int(ids[bi * t + ti]) * c
                for j in 0..<c { row[j] += d[j] }
            }
            if let dpositional {
                let pos = dpositional + ti * c
                for j in 0..<c { pos[j] += d[j] }
            }
        }
    }
}

/// Rearranges images [B, CH, S, S] into patch rows [B, G*G, CH*P*P] (G = S / P), each row
/// ordered (channel, ky, kx) like a flattened convolution kernel, so that a stride-P
/// convolution without bias is one matrix multiply with the kernel viewed as [width, CH*P*P].
public func im2colPatches(out: UnsafeMutablePointer<Float>, images: UnsafePointer<Float>,
                          b: Int, channels: Int, size: Int, patch: Int) {
    let g = size / patch
    let k = channels * patch * patch
    for bi in 0..<b {
        let img = images + bi * channels * size * size
        for gy in 0..<g {
            for gx in 0..<g {
                var o = out + ((bi * g * g) + gy * g + gx) * k
                for ch in 0..<channels {
                    for ky in 0..<patch {
                        let src = img + ch * size * size + (gy * patch + ky) * size + gx * patch
                        o.update(from: src, count: patch)
                        o += patch
                    }
                }
            }
        }
    }
}
