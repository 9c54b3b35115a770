import Foundation

/// A value guarded by a lock, shared between our poll threads, librdkafka's threads and tasks.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Runs blocking work on a thread we own, never on Swift's cooperative pool.
enum BlockingCall {
    private static let queue = DispatchQueue(label: "clipd.kafka.blocking", attributes: .concurrent)

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Waits, on the calling (non-cooperative) thread, for async work such as a rebalance hook.
    /// Returns nil if it did not finish within `timeout`; the work then goes on unobserved.
    static func wait<T: Sendable>(timeout: Duration, _ body: @escaping @Sendable () async -> T) -> T? {
        let result = Locked<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await body()
            result.withLock { $0 = value }
            done.signal()
        }
        let deadline = DispatchTime.now() + .milliseconds(Int(timeout.milliseconds))
        guard done.wait(timeout: deadline) == .success else { return nil }
        return result.withLock { $0 }
    }
}
