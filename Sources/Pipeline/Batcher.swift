import Foundation

/// Groups items into batches of at most `maxSize`, releasing a partial batch once its oldest
/// item has waited `maxLatency`: full batches for throughput under load, bounded latency when
/// the stream is slow.
public actor Batcher<Item: Sendable> {
    public let maxSize: Int
    public let maxLatency: Duration
    private var buffer: [Item] = []
    private var waiter: CheckedContinuation<[Item]?, Never>?
    private var generation = 0
    private var finished = false
    private var deadlinePassed = false

    public init(maxSize: Int, maxLatency: Duration) {
        precondition(maxSize > 0)
        self.maxSize = maxSize
        self.maxLatency = maxLatency
    }

    public var count: Int { buffer.count }

    public func add(_ item: Item) {
        precondition(!finished, "add after finish")
        buffer.append(item)
        if buffer.count == 1 {
            generation += 1
            deadlinePassed = false
            let gen = generation
            let latency = maxLatency
            Task { [weak self] in
                try? await Task.sleep(for: latency)
                await self?.deadline(gen)
            }
        }
        deliverIfReady()
    }

    /// No more items: the remaining ones are delivered, then `next()` returns nil.
    public func finish() {
        finished = true
        deliverIfReady()
    }

    /// Releases whatever is buffered now (used when draining).
    public func flush() {
        deadlinePassed = true
        deliverIfReady()
    }

    /// The next batch, or nil once finished and empty. One consumer at a time.
    public func next() async -> [Item]? {
        if let batch = takeIfReady() { return batch }
        if finished && buffer.isEmpty { return nil }
        return await withCheckedContinuation { waiter = $0 }
    }

    private func deadline(_ gen: Int) {
        guard gen == generation, !buffer.isEmpty else { return }
        deadlinePassed = true
        deliverIfReady()
    }

    private func takeIfReady() -> [Item]? {
        guard !buffer.isEmpty, buffer.count >= maxSize || deadlinePassed || finished else { return nil }
        let n = min(maxSize, buffer.count)
        let batch = Array(buffer.prefix(n))
        buffer.removeFirst(n)
        if buffer.isEmpty {
            deadlinePassed = false
        } else if !finished {
            // The rest starts a new latency window.
            generation += 1
            deadlinePassed = buffer.count >= maxSize
            let gen = generation
            let latency = maxLatency
            Task { [weak self] in
                try? await Task.sleep(for: latency)
                await self?.deadline(gen)
            }
        }
        return batch
    }

    private func deliverIfReady() {
        guard let w = waiter else { return }
        if let batch = takeIfReady() {
            waiter = nil
            w.resume(returning: batch)
        } else if finished && buffer.isEmpty {
            waiter = nil
            w.resume(returning: nil)
        }
    }
}
