import Foundation

/// Threads owned by the fetcher that run blocking work (libcurl transfers, file reads), so
/// Swift's cooperative pool never waits on the network or the disk.
///
/// At most `maxThreads` jobs run at once; further jobs wait in FIFO order. Threads start on
/// demand and end after `idleTimeout` without work, so an idle fetcher holds no threads.
final class BlockingWorkerPool: @unchecked Sendable {
    // All mutable state below is guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var nextJob = 0
    private var threadCount = 0
    private var idleCount = 0
    private let maxThreads: Int
    private let idleTimeout: TimeInterval
    private let name: String

    init(name: String, maxThreads: Int, idleTimeout: TimeInterval = 10) {
        self.name = name
        self.maxThreads = max(1, maxThreads)
        self.idleTimeout = idleTimeout
    }

    /// Runs `work` on a pool thread and returns its result, suspending (not blocking) the
    /// caller meanwhile.
    func run<Result: Sendable>(_ work: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: work()) }
        }
    }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        let waiting = jobs.count - nextJob
        if waiting > idleCount && threadCount < maxThreads {
            threadCount += 1
            let thread = Thread { [self] in workLoop() }
            thread.name = "\(name)-\(threadCount)"
            thread.start()
        } else {
            condition.signal()
        }
        condition.unlock()
    }

    private func workLoop() {
        condition.lock()
        while true {
            if nextJob < jobs.count {
                let job = jobs[nextJob]
                nextJob += 1
                if nextJob == jobs.count {
                    jobs.removeAll(keepingCapacity: true)
                    nextJob = 0
                }
                condition.unlock()
                job()
                condition.lock()
                continue
            }
            idleCount += 1
            let signalled = condition.wait(until: Date(timeIntervalSinceNow: idleTimeout))
            idleCount -= 1
            if !signalled && nextJob >= jobs.count {
                threadCount -= 1
                condition.unlock()
                return
            }
        }
    }
}

/// Set from a task's cancellation handler, read by the blocking transfer on another thread.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    func cancel() {
        lock.lock(); cancelled = true; lock.unlock()
    }

    var isCancelled: Bool {
        lock.lock(); defer { lock.unlock() }
        return cancelled
    }
}
