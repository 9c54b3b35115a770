import Executors
import Foundation
import Logging

/// An idempotent producer: librdkafka retries failed sends itself without duplicating or
/// reordering them, and `send` returns once the broker has acknowledged (or refused) each message.
///
/// A thread of the producer's own serves delivery reports from creation until `shutdown()`.
public final class KafkaProducer: Sendable {
    private let client: RDKafkaClient
    private let deliveries: Locked<PendingDeliveries>
    private let pollThreadRunning: Locked<Bool>
    private let logger: Logger

    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        let deliveries = Locked(PendingDeliveries())
        let context = RDKafkaCallbackContext(
            logger: logger,
            onStatistics: configuration.onStatistics,
            onDelivery: { id, result in
                deliveries.withLock { $0.complete(id, result) }?.finish()
            })
        let client = try RDKafkaClient(kind: .producer, properties: configuration.librdkafkaProperties, context: context)
        let running = Locked(true)
        self.client = client
        self.deliveries = deliveries
        self.pollThreadRunning = running
        self.logger = logger
        startThread(named: "clipd-kproducer") {
            while running.withLock({ $0 }) { client.poll(timeoutMilliseconds: 100) }
        }
    }

    deinit {
        pollThreadRunning.withLock { $0 = false }
    }

    /// Sends one message and waits for the broker's acknowledgement.
    public func send(_ message: KafkaProducerMessage) async throws -> KafkaDeliveryReport {
        try await send([message])[0].get()
    }

    /// Sends a batch and waits until every message is delivered or has failed; results are in input order.
    public func send(_ messages: [KafkaProducerMessage]) async -> [Result<KafkaDeliveryReport, KafkaError>] {
        guard !messages.isEmpty else { return [] }
        let batch = DeliveryBatch(count: messages.count)
        for (index, message) in messages.enumerated() {
            guard let id = deliveries.withLock({ $0.register(batch, index) }) else {
                batch.record(index, .failure(Self.shutDownError))?.finish()
                continue
            }
            while true {
                do {
                    try client.produce(message, id: id)
                    break
                } catch let error where error.code == .queueFull {
                    // librdkafka's queue drains as deliveries complete on the poll thread.
                    try? await Task.sleep(for: .milliseconds(5))
                } catch {
                    deliveries.withLock { $0.complete(id, .failure(error)) }?.finish()
                    break
                }
            }
        }
        return await batch.wait()
    }

    /// Waits for queued messages (up to `timeout`), fails whatever is still undelivered, and stops.
    public func shutdown(timeout: Duration = .seconds(30)) async {
        deliveries.withLock { $0.isClosed = true }
        do {
            try await BlockingCall.run { [client] in try client.flush(timeoutMilliseconds: Int32(timeout.milliseconds)) }
        } catch {
            logger.warning("producer shutdown: \(error); \(client.queuedMessageCount) messages undelivered")
        }
        pollThreadRunning.withLock { $0 = false }
        for batch in deliveries.withLock({ $0.failAll(Self.shutDownError) }) { batch.finish() }
    }

    private static let shutDownError = KafkaError(code: .destroyed, codeName: "_DESTROYED",
                                                  message: "the producer was shut down before delivery", isFatal: false, isRetriable: false)
}

/// Messages sent and not yet reported, by the id librdkafka hands back in the delivery report.
struct PendingDeliveries {
    private var nextID: UInt64 = 1
    private var waiting: [UInt64: (DeliveryBatch, Int)] = [:]
    var isClosed = false

    mutating func register(_ batch: DeliveryBatch, _ index: Int) -> UInt64? {
        guard !isClosed else { return nil }
        defer { nextID += 1 }
        waiting[nextID] = (batch, index)
        return nextID
    }

    /// Records a result; returns the batch if that completed it.
    mutating func complete(_ id: UInt64, _ result: Result<KafkaDeliveryReport, KafkaError>) -> DeliveryBatch? {
        guard let (batch, index) = waiting.removeValue(forKey: id) else { return nil }
        return batch.record(index, result)
    }

    mutating func failAll(_ error: KafkaError) -> [DeliveryBatch] {
        defer { waiting.removeAll() }
        return waiting.values.compactMap { batch, index in batch.record(index, .failure(error)) }
    }
}

/// The results of one `send` call, filled in by delivery reports in any order.
final class DeliveryBatch: @unchecked Sendable {
    private struct State {
        var results: [Result<KafkaDeliveryReport, KafkaError>?]
        var remaining: Int
        var waiter: CheckedContinuation<[Result<KafkaDeliveryReport, KafkaError>], Never>?
    }

    private let state: Locked<State>

    init(count: Int) {
        state = Locked(State(results: Array(repeating: nil, count: count), remaining: count))
    }

    /// Returns self when this was the last result outstanding.
    func record(_ index: Int, _ result: Result<KafkaDeliveryReport, KafkaError>) -> DeliveryBatch? {
        state.withLock { state in
            guard state.results[index] == nil else { return nil }
            state.results[index] = result
            state.remaining -= 1
            return state.remaining == 0 ? self : nil
        }
    }

    func finish() {
        let (waiter, results) = state.withLock { state in
            defer { state.waiter = nil }
            return (state.waiter, state.results.compactMap { $0 })
        }
        waiter?.resume(returning: results)
    }

    func wait() async -> [Result<KafkaDeliveryReport, KafkaError>] {
        await withCheckedContinuation { continuation in
            let results: [Result<KafkaDeliveryReport, KafkaError>]? = state.withLock { state in
                if state.remaining == 0 { return state.results.compactMap { $0 } }
                state.waiter = continuation
                return nil
            }
            if let results { continuation.resume(returning: results) }
        }
    }
}
