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
            // Vectorised: the MLP activation is the largest elementwise cost of a forward pass.
            var i = 0
            while i + 16 <= count {
                let x = UnsafeRawPointer(inp + i).loadUnaligned(as: SIMD16<Float>.self)
                let y = x / (1 + vectorExp(-1.702 * x))
                UnsafeMutableRawPointer(out + i).storeBytes(of: y, as: SIMD16<Float>.self)
                i += 16
            }
            while i < count {
                let x = inp[i]
                out[i] = x / (1 + expf(-1.702 * x))
                i += 1
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

/// e^x for 16 lanes (Cephes' single-precision polynomial after range reduction; within 2 ulp
/// of expf over the whole range, saturating like expf beyond it).
@inline(__always)
public func vectorExp(_ input: SIMD16<Float>) -> SIMD16<Float> {
    let x = input.clamped(lowerBound: SIMD16(repeating: -87.3), upperBound: SIMD16(repeating: 88.3))
    let n = (x * 1.44269504088896341).rounded(.toNearestOrEven)
    var r = x - n * 0.693359375
    r = r - n * -2.12194440e-4
    let r2 = r * r
    var p = SIMD16<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r2 + r + 1
    let bits = (SIMD16<Int32>(n, rounding: .toNearestOrEven) &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: SIMD16<Float>.self)
}
