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
            for i in 0..<count {
                let x = inp[i]
                out[i] = x / (1 + expf(-1.702 * x))
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
