import Foundation

/// Linear warmup to the peak rate, then cosine decay to `floor` at `totalSteps`.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var floor: Float

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, floor: Float = 0) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.floor = floor
    }

    /// The rate for step `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Double(step - warmupSteps) / Double(span))
        return floor + (peak - floor) * Float(0.5 * (1 + Foundation.cos(Double.pi * progress)))
    }
}
