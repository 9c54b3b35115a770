import Foundation

/// When the job schedules a run by itself. With both conditions, a run is due when the last one
/// was scheduled at least `interval` ago and at least `minNewPairs` captioned records arrived since.
public struct FinetuneTrigger: Sendable, Equatable {
    public var interval: Double?
    public var minNewPairs: Int?

    public init(interval: Double? = nil, minNewPairs: Int? = nil) {
        self.interval = interval
        self.minNewPairs = minNewPairs
    }

    /// Why a run is due now, or nil. `lastRun` is when the newest run was scheduled (nil: never),
    /// `newPairs` how many captioned records arrived since then.
    public func reasonToSchedule(now: Date, lastRun: Date?, newPairs: Int) -> String? {
        if interval == nil && minNewPairs == nil { return nil }
        var reasons: [String] = []
        if let interval {
            if let lastRun, now.timeIntervalSince(lastRun) < interval { return nil }
            reasons.append(lastRun.map { "last run scheduled \(Int(now.timeIntervalSince($0)))s ago (interval \(Int(interval))s)" } ?? "no run yet")
        }
        if let minNewPairs {
            if newPairs < minNewPairs { return nil }
            reasons.append("\(newPairs) new captioned records (threshold \(minNewPairs))")
        }
        return reasons.joined(separator: ", ")
    }
}
