/// A dense, row-major Float32 array with a shape: the currency between modules (model inputs,
/// outputs, checkpoints). Kernels work on raw pointers into its storage.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }

    /// Row `i` of a tensor viewed as [shape[0], rest].
    public func row(_ i: Int) -> ArraySlice<Float> {
        let width = count / shape[0]
        return data[(i * width)..<((i + 1) * width)]
    }
}

/// L2-normalises each row of a [rows, cols] buffer in place.
public func l2NormalizeRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let row = x + r * cols
        var sq: Float = 0
        for j in 0..<cols { sq += row[j] * row[j] }
        let inv = 1 / max(sq.squareRoot(), 1e-12)
        for j in 0..<cols { row[j] *= inv }
    }
}

/// Deterministic pseudo-random numbers (SplitMix64 + Box-Muller) for reproducible random
/// models in benchmarks and tests.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    public mutating func normal(mean: Float = 0, std: Float = 1) -> Float {
        let u1 = max(Double.random(in: 0..<1, using: &self), 1e-300)
        let u2 = Double.random(in: 0..<1, using: &self)
        return mean + std * Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }
}

@inline(__always) private func _log(_ x: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.log(x)
    #else
    return Foundation.log(x)
    #endif
}
@inline(__always) private func _cos(_ x: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.cos(x)
    #else
    return Foundation.cos(x)
    #endif
}
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
