/// Range checks of numeric flags: a value outside its range, or a number that is not finite
/// (`inf`, `nan`), stops the command before it starts with one line naming the flag, the value
/// and the range, exit status 1. The maxima are sane bounds, far above any real use, that keep
/// allocations, thread counts and durations from overflowing or exhausting the machine.
enum FlagRange {
    static func check<T: BinaryInteger>(_ value: T?, _ flag: String, _ range: ClosedRange<T>) throws {
        guard let value, !range.contains(value) else { return }
        throw CommandFailure("\(flag) must be within \(range.lowerBound)...\(range.upperBound), got \(value)")
    }

    /// A finite number in `range`.
    static func check<T: BinaryFloatingPoint>(_ value: T?, _ flag: String, _ range: ClosedRange<T>) throws {
        guard let value else { return }
        guard value.isFinite, range.contains(value) else {
            throw CommandFailure("\(flag) must be a number within \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }

    /// A finite number.
    static func checkFinite<T: BinaryFloatingPoint>(_ value: T?, _ flag: String) throws {
        guard let value, !value.isFinite else { return }
        throw CommandFailure("\(flag) must be a finite number, got \(value)")
    }

    /// A finite number above zero and at most `maximum` (durations, rates).
    static func checkPositive<T: BinaryFloatingPoint>(_ value: T?, _ flag: String, atMost maximum: T) throws {
        guard let value else { return }
        guard value.isFinite, value > 0, value <= maximum else {
            throw CommandFailure("\(flag) must be a number above 0 and at most \(maximum), got \(value)")
        }
    }

    static let maxThreads = 1024
    /// Seconds: a day for benchmarks and timeouts.
    static let day = 86_400.0
}
