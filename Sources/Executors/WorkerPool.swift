import Foundation

/// Threads of our own for blocking or CPU-bound work (libcurl transfers, file reads, JPEG
/// decode, tokenization, the model), so Swift's cooperative pool never waits on them.
///
/// At most `width` threads exist, however many jobs wait: further jobs queue in FIFO order and
/// their callers suspend (they do not block a thread). Threads start on demand and end after
/// `idleTimeout` without work, so an idle pool holds no threads. A pool of width 1 runs its
/// jobs one at a time, in order (the model's encoder, the trainer).
public final class WorkerPool: @unchecked Sendable {
    // All mutable state below is guarded by `condition`.
    private let condition = NSCondition()
    /// Jobs in FIFO order from `nextJob` on; a job's slot is emptied when a thread takes it.
    private var jobs: [(@Sendable () -> Void)?] = []
    private var nextJob = 0
    private var threadCount = 0
    private var idleCount = 0
    private var peakThreads = 0
    /// The most threads that may exist at once.
    public let width: Int
    private let idleTimeout: TimeInterval
    private let name: String

    public init(name: String, width: Int, idleTimeout: TimeInterval = 10) {
        self.name = name
        self.width = max(1, width)
        self.idleTimeout = idleTimeout
    }

    /// Runs `work` on a pool thread and returns its result, suspending the caller meanwhile.
    public func run<Result: Sendable>(_ work: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: work()) }
        }
    }

    /// Runs throwing `work` on a pool thread.
    public func run<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            submit { continuation.resume(with: Swift.Result { try work() }) }
        }
    }

    /// Jobs waiting for a thread now.
    public var waiting: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count - nextJob
    }

    /// Threads alive now, and the most that were ever alive at once (never above `width`).
    public var threads: (current: Int, peak: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (threadCount, peakThreads)
    }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        let waiting = jobs.count - nextJob
        if waiting > idleCount && threadCount < width {
            threadCount += 1
            peakThreads = max(peakThreads, threadCount)
            startThread(named: "\(name)-\(threadCount)") { [self] in workLoop() }
        } else {
            condition.signal()
        }
        condition.unlock()
    }

    private func workLoop() {
        condition.lock()
        while true {
            if nextJob < jobs.count {
                // Empty the slot now: a job holds what its closure captured (a decode job, the
                // compressed image), and under steady load the queue never runs empty, so
                // slots kept until then held every job ever run (RSS grew with each record).
                let job = jobs[nextJob]!
                jobs[nextJob] = nil
                nextJob += 1
                if nextJob == jobs.count {
                    jobs.removeAll(keepingCapacity: true)
                    nextJob = 0
                } else if nextJob >= 64 && nextJob * 2 >= jobs.count {
                    jobs.removeFirst(nextJob)
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

/// Set from a task's cancellation handler, read by blocking work on another thread.
public final class CancellationFlag: @unchecked Sendable {
    private let cancelled = Locked(false)

    public init() {}

    public func cancel() { cancelled.withLock { $0 = true } }

    public var isCancelled: Bool { cancelled.value }
}
