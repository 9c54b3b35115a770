/// A counting semaphore for tasks: `acquire()` suspends (it never blocks a thread) until one of
/// `permits` is free; `release()` hands the permit to the longest waiter, in FIFO order.
///
/// Waiters are not cancellable: every acquired permit must be released, and a waiter resumes
/// once an earlier holder releases.
public final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
        var nextWaiter = 0
    }
    private let state: Locked<State>
    public let permits: Int

    public init(permits: Int) {
        self.permits = max(1, permits)
        state = Locked(State(available: max(1, permits)))
    }

    public func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted: Bool = state.withLock { s in
                if s.available > 0 {
                    s.available -= 1
                    return true
                }
                s.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    public func release() {
        let next: CheckedContinuation<Void, Never>? = state.withLock { s in
            guard s.nextWaiter < s.waiters.count else {
                s.available = min(s.available + 1, permits)
                return nil
            }
            let waiter = s.waiters[s.nextWaiter]
            s.nextWaiter += 1
            if s.nextWaiter == s.waiters.count {
                s.waiters.removeAll(keepingCapacity: true)
                s.nextWaiter = 0
            }
            return waiter
        }
        next?.resume()
    }

    /// Runs `body` holding one permit.
    public func withPermit<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    /// Free permits and suspended waiters now.
    public var snapshot: (available: Int, waiting: Int) {
        state.withLock { ($0.available, $0.waiters.count - $0.nextWaiter) }
    }
}
