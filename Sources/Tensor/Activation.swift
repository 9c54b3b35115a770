import Foundation

/// The MLP non-linearity of a CLIP transformer.
public enum Activation: String, Sendable, Codable {
    /// `x * sigmoid(1.702 x)`: OpenAI's CLIP models.
    case quickGELU = "quick_gelu"
    /// `0.5 x (1 + erf(x / sqrt 2))`: most open_clip LAION models.
    case gelu = "gelu"

    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        switch self {
        case .quickGELU:
            // The MLP activation is the largest elementwise cost of a forward pass: a branch-free
            // exp that the compiler vectorises.
            for i in 0..<count {
                let x = inp[i]
                out[i] = x / (1 + fastExp(-1.702 * x))
            }
        case .gelu:
            for i in 0..<count {
                let x = inp[i]
                out[i] = 0.5 * x * (1 + erff(x * 0.70710678118654752))
            }
        }
    }

    /// Accumulates `dinp += f'(inp) * dout`.
    public func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                         dout: UnsafePointer<Float>, count: Int) {
        switch self {
        case .quickGELU:
            for i in 0..<count {
                let x = inp[i]
                let s = 1 / (1 + expf(-1.702 * x))
                dinp[i] += dout[i] * (s + x * 1.702 * s * (1 - s))
            }
        case .gelu:
            for i in 0..<count {
                let x = inp[i]
                let cdf = 0.5 * (1 + erff(x * 0.70710678118654752))
                let pdf = expf(-0.5 * x * x) * 0.39894228040143268
                dinp[i] += dout[i] * (cdf + x * pdf)
            }
        }
    }
}

/// e^x within 2 ulp of expf over the whole float range (Cephes' single-precision polynomial
/// after range reduction), saturating like expf beyond it. Branch-free, so loops over it
/// vectorise: rounding and the power of two use the 1.5·2^23 magic-number trick.
@inline(__always)
public func fastExp(_ input: Float) -> Float {
    let x = min(max(input, -87.3), 88.3)
    let magic: Float = 12_582_912  // 1.5 * 2^23
    let t = x * 1.44269504088896341 + magic
    let n = t - magic                 // round-to-nearest-even of x·log2(e)
    var r = x - n * 0.693359375
    r = r - n * -2.12194440e-4
    let r2 = r * r
    var p: Float = 1.9875691500e-4
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r2 + r + 1
    let ni = Int32(bitPattern: t.bitPattern) &- Int32(bitPattern: magic.bitPattern)
    return p * Float(bitPattern: UInt32(bitPattern: (ni &+ 127) &<< 23))
}
