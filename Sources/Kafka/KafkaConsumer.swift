import Executors
import Foundation
import Logging

/// A consumer-group member with manual offsets. librdkafka is polled on a thread of its own
/// (started by `run()`); messages and rebalance events come out of `events`.
///
/// Nothing is committed unless the application calls `commit`: after a crash or a rebalance,
/// consumption resumes at the last committed (or supplied) offset, so delivery is at-least-once.
///
/// For exactly-once results, store each partition's next offset in the same transaction as the
/// results and hand them back through `startingOffsets`; in `partitionsRevoked`, finish (write)
/// or drop the in-flight work of those partitions and stop taking their messages (track
/// ownership from the `events` stream: a partition is yours from `.partitionsAssigned` until
/// the hook runs). Commit to Kafka as well (`commitInBackground`) so lag stays visible.
///
///     var configuration = KafkaConsumerConfiguration(bootstrapServers: brokers, groupID: "clipd", topics: ["images"])
///     configuration.startingOffsets = { partitions in await database.nextOffsets(for: partitions) }
///     configuration.partitionsRevoked = { partitions, _ in await pipeline.finish(partitions) }
///     let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
///     async let polling: Void = consumer.run()
///     for try await event in consumer.events { … }
public final class KafkaConsumer: Sendable {
    private let client: RDKafkaClient
    private let state: Locked<ConsumerStateMachine>
    private let pollLoop = Locked(PollLoopState())
    private let configuration: KafkaConsumerConfiguration
    private let logger: Logger

    private struct PollLoopState {
        var started = false
        var stopRequested = false
    }

    /// Messages and rebalance events, in the order librdkafka produced them. One iterator at a time.
    public var events: KafkaConsumerEvents { KafkaConsumerEvents(consumer: self) }

    public init(configuration: KafkaConsumerConfiguration, logger: Logger) throws(KafkaError) {
        let state = Locked(ConsumerStateMachine(maxBufferedEvents: configuration.maxBufferedEvents))
        let context = RDKafkaCallbackContext(
            logger: logger,
            onStatistics: configuration.onStatistics,
            onRebalance: { event, assignor in
                Self.rebalance(event, assignor: assignor, state: state, configuration: configuration, logger: logger)
            },
            onFatalError: { error in
                state.withLock { $0.finish(error) }?.resume(throwing: error)
            })
        self.client = try RDKafkaClient(kind: .consumer, properties: configuration.librdkafkaProperties, context: context)
        self.state = state
        self.configuration = configuration
        self.logger = logger
        try client.subscribe(topics: configuration.topics)
    }

    /// Polls librdkafka on a dedicated thread until `shutdown()` or cancellation, then leaves
    /// the group (the final revocation goes through `partitionsRevoked`) and ends `events`.
    public func run() async throws {
        let starting = pollLoop.withLock { state -> Bool in
            guard !state.started else { return false }
            state.started = true
            return true
        }
        guard starting else {
            throw KafkaError(code: .state, codeName: "_STATE", message: "the consumer was already run", isFatal: false, isRetriable: false)
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                startThread(named: "clipd-kconsumer") { [self] in
                    continuation.resume(with: Result { try pollUntilStopped() })
                }
            }
        } onCancel: {
            shutdown()
        }
    }

    /// Asks the poll thread to leave the group and stop; `run()` returns when it has.
    /// Before `run()`, this makes `run()` leave at once.
    public func shutdown() {
        pollLoop.withLock { $0.stopRequested = true }
    }

    private func pollUntilStopped() throws {
        var fatal: KafkaError?
        while !pollLoop.withLock({ $0.stopRequested }) {
            // A fatal error reported through librdkafka's error callback ends the sequence there.
            if case .finished(let error?) = state.withLock({ $0.lifecycle }) {
                fatal = error
                break
            }
            switch client.consumerPoll(timeoutMilliseconds: 100) {
            case .message(let message)?:
                state.withLock { state in perform(state.enqueue(.message(message))) }
            case .error(let error)?:
                if error.isFatal { fatal = error } else { logger.warning("\(error)") }
            case nil:
                break
            }
            if fatal != nil { break }
        }
        do {
            try client.closeConsumer()
        } catch {
            logger.warning("leaving the consumer group: \(error)")
        }
        if let waiter = state.withLock({ $0.finish(fatal) }) {
            if let fatal { waiter.resume(throwing: fatal) } else { waiter.resume(returning: nil) }
        }
        if let fatal { throw fatal }
    }

    private func perform(_ action: ConsumerStateMachine.EnqueueAction) {
        Self.perform(action, pause: { try client.pause($0) }, logger: logger)
    }

    private static func perform(_ action: ConsumerStateMachine.EnqueueAction,
                                pause: ([KafkaTopicPartition]) throws -> Void, logger: Logger) {
        switch action {
        case .none: break
        case .resumeWaiter(let waiter, let event): waiter.resume(returning: event)
        case .pauseFetching(let partitions):
            logger.debug("event buffer full: pausing \(partitions.count) partitions")
            do { try pause(partitions) } catch { logger.warning("pausing for backpressure: \(error)") }
        }
    }

    /// Runs on the poll thread inside librdkafka's rebalance callback; librdkafka waits for it.
    private static func rebalance(
        _ event: RDKafkaRebalance, assignor: RDKafkaAssignor, state: Locked<ConsumerStateMachine>,
        configuration: KafkaConsumerConfiguration, logger: Logger
    ) {
        switch event {
        case .assign(let partitions):
            var startingOffsets: [KafkaTopicPartition: Int64] = [:]
            if let hook = configuration.startingOffsets, !partitions.isEmpty {
                if let offsets = BlockingCall.wait(timeout: configuration.rebalanceHookTimeout, { await hook(partitions) }) {
                    startingOffsets = offsets.filter { partitions.contains($0.key) }
                } else {
                    logger.error("startingOffsets took longer than \(configuration.rebalanceHookTimeout); starting at committed offsets")
                }
            }
            let assignments = partitions.sorted().map { KafkaPartitionAssignment(topicPartition: $0, startingOffset: startingOffsets[$0]) }
            // Under the lock, so that a pause() arriving meanwhile already sees these partitions.
            let assigned = state.withLock { state -> Bool in
                do {
                    try assignor.assign(partitions.map { ($0, startingOffsets[$0]) })
                } catch {
                    logger.error("assigning \(partitions): \(error)")
                    return false
                }
                let startPaused = state.assign(partitions)
                if !startPaused.isEmpty {
                    do { try assignor.pause(startPaused) } catch { logger.warning("pausing new partitions: \(error)") }
                }
                // Cooperative rebalances often add nothing; such rounds are not events.
                if !assignments.isEmpty {
                    perform(state.enqueue(.partitionsAssigned(assignments)), pause: { try assignor.pause($0) }, logger: logger)
                }
                return true
            }
            if assigned && !partitions.isEmpty {
                logger.info("assigned \(partitions.sorted().map(\.description)) (\(assignor.isCooperative ? "cooperative" : "eager"))")
            }
        case .revoke(let partitions, let lost):
            // Buffered messages of these partitions go first (no new ones can arrive: this runs
            // inside the poll), then the hook finishes what the pipeline already took, and only
            // then does the revoked event enter the stream, after everything of those partitions.
            let dropped = state.withLock { $0.revoke(partitions) }
            logger.info("revoking \(partitions.sorted().map(\.description))\(lost ? " (lost)" : ""); dropped \(dropped) buffered messages")
            if let hook = configuration.partitionsRevoked, !partitions.isEmpty {
                if BlockingCall.wait(timeout: configuration.rebalanceHookTimeout, { await hook(partitions, lost); return true }) == nil {
                    logger.error("partitionsRevoked took longer than \(configuration.rebalanceHookTimeout); giving the partitions up anyway")
                }
            }
            if !partitions.isEmpty {
                state.withLock { state in
                    perform(state.enqueue(.partitionsRevoked(partitions.sorted(), lost: lost)), pause: { try assignor.pause($0) }, logger: logger)
                }
            }
            do { try assignor.unassign(partitions) } catch { logger.error("unassigning \(partitions): \(error)") }
        }
    }

    // MARK: Offsets

    /// Commits `offsets` (per partition, the next offset to read: last processed + 1) and waits
    /// for the group coordinator to accept them.
    public func commit(_ offsets: [KafkaTopicPartition: Int64]) async throws {
        try await BlockingCall.run { [client] in try client.commit(offsets, asynchronously: false) }
    }

    /// Sends a commit without waiting; failures are logged. For lag visibility when the
    /// offsets of record are stored elsewhere (e.g. in PostgreSQL with the results).
    public func commitInBackground(_ offsets: [KafkaTopicPartition: Int64]) throws {
        try client.commit(offsets, asynchronously: true)
    }

    /// The group's committed offsets for `partitions` (nil where nothing was committed).
    public func committedOffsets(for partitions: [KafkaTopicPartition], timeout: Duration = .seconds(10)) async throws -> [KafkaTopicPartition: Int64?] {
        try await BlockingCall.run { [client] in
            try client.committedOffsets(partitions, timeoutMilliseconds: Int32(timeout.milliseconds))
        }
    }

    /// Watermarks, committed offset and lag of each partition currently assigned to this consumer.
    public func lag(timeout: Duration = .seconds(10)) async throws -> [KafkaPartitionLag] {
        try await BlockingCall.run { [client] in
            let milliseconds = Int32(timeout.milliseconds)
            let partitions = try client.assignment().sorted()
            guard !partitions.isEmpty else { return [] }
            let committed = try client.committedOffsets(partitions, timeoutMilliseconds: milliseconds)
            return try partitions.map { partition in
                let (low, high) = try client.watermarks(partition, timeoutMilliseconds: milliseconds)
                return KafkaPartitionLag(topicPartition: partition, lowWatermark: low, highWatermark: high,
                                         committedOffset: committed[partition] ?? nil)
            }
        }
    }

    /// Moves the read position of assigned partitions (e.g. to offsets stored with the results).
    public func seek(_ offsets: [KafkaTopicPartition: Int64], timeout: Duration = .seconds(10)) async throws {
        try await BlockingCall.run { [client] in try client.seek(offsets, timeoutMilliseconds: Int32(timeout.milliseconds)) }
    }

    /// The partitions assigned to this consumer now (a round trip to librdkafka's main thread).
    public func assignment() async throws -> [KafkaTopicPartition] {
        try await BlockingCall.run { [client] in try client.assignment().sorted() }
    }

    // MARK: Flow control

    /// Stops fetching from `partitions` (messages already buffered are still delivered)
    /// until `resume`. Partitions not assigned here are ignored.
    public func pause(_ partitions: [KafkaTopicPartition]) throws {
        try state.withLock { state in try client.pause(state.pauseByApplication(partitions)) }
    }

    public func resume(_ partitions: [KafkaTopicPartition]) throws {
        try state.withLock { state in try client.resume(state.resumeByApplication(partitions)) }
    }

    fileprivate func nextEvent() async throws -> KafkaConsumerEvent? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: ConsumerStateMachine.Waiter) in
                state.withLock { state in
                    switch state.next() {
                    case .event(let event, let resumeFetching):
                        if !resumeFetching.isEmpty {
                            do { try client.resume(resumeFetching) } catch { logger.warning("resuming after backpressure: \(error)") }
                        }
                        continuation.resume(returning: event)
                    case .finished(let error?):
                        continuation.resume(throwing: error)
                    case .finished(nil):
                        continuation.resume(returning: nil)
                    case .suspend:
                        if Task.isCancelled {
                            continuation.resume(throwing: CancellationError())
                        } else {
                            state.park(continuation)
                        }
                    }
                }
            }
        } onCancel: {
            state.withLock { $0.takeWaiter() }?.resume(throwing: CancellationError())
        }
    }
}

/// The consumer's events as an `AsyncSequence`; it ends when the consumer stops.
public struct KafkaConsumerEvents: AsyncSequence, Sendable {
    public typealias Element = KafkaConsumerEvent
    fileprivate let consumer: KafkaConsumer

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let consumer: KafkaConsumer
        public mutating func next() async throws -> KafkaConsumerEvent? {
            try await consumer.nextEvent()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
}
