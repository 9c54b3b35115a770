import Foundation

/// A value guarded by a lock: the one way clipd's modules (and their tests) share mutable state
/// between threads and tasks.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    public init(_ value: Value) { stored = value }

    /// Runs `body` with exclusive access to the value.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&stored)
    }

    /// A copy of the current value.
    public var value: Value { withLock { $0 } }
}

