import Executors
import Foundation

/// Runs blocking work on a thread we own, never on Swift's cooperative pool.
enum BlockingCall {
    /// Two threads at most: the daemon makes these calls one at a time (the progress line's lag,
    /// start-up offsets, shutdown flush); further callers queue. They are seconds apart, so a
    /// thread ends 1 s after its call rather than waiting for the next one.
    private static let queue = WorkerPool(name: "clipd-kafka", width: 2, idleTimeout: 1)

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await queue.run(body)
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
