/// The consumer's buffer between librdkafka's poll thread and the task iterating events:
/// pure state, no I/O. Each transition returns what the I/O shell must do (resume the waiting
/// iterator, pause or resume fetching); the shell does it while still holding the lock, so
/// pause and resume decisions reach librdkafka in the order they were made.
struct ConsumerStateMachine {
    typealias Waiter = CheckedContinuation<KafkaConsumerEvent?, any Error>

    enum Lifecycle: Equatable {
        case running
        case finished(KafkaError?)
    }

    private(set) var buffer: [KafkaConsumerEvent] = []
    private var head = 0
    private var waiter: Waiter?
    private(set) var assigned: Set<KafkaTopicPartition> = []
    private(set) var pausedByApplication: Set<KafkaTopicPartition> = []
    private(set) var pausedForBackpressure = false
    private(set) var lifecycle = Lifecycle.running
    let highWatermark: Int
    let lowWatermark: Int

    init(maxBufferedEvents: Int) {
        highWatermark = max(1, maxBufferedEvents)
        lowWatermark = highWatermark / 2
    }

    var bufferedCount: Int { buffer.count - head }

    /// Partitions fetching now, i.e. those backpressure may pause.
    private var fetching: [KafkaTopicPartition] { assigned.subtracting(pausedByApplication).sorted() }

    enum EnqueueAction {
        case none
        case resumeWaiter(Waiter, KafkaConsumerEvent)
        case pauseFetching([KafkaTopicPartition])
    }

    mutating func enqueue(_ event: KafkaConsumerEvent) -> EnqueueAction {
        guard lifecycle == .running else { return .none }
        if let waiter {
            self.waiter = nil
            return .resumeWaiter(waiter, event)
        }
        buffer.append(event)
        if bufferedCount >= highWatermark && !pausedForBackpressure {
            pausedForBackpressure = true
            return .pauseFetching(fetching)
        }
        return .none
    }

    enum NextAction {
        case event(KafkaConsumerEvent, resumeFetching: [KafkaTopicPartition])
        case suspend
        case finished(KafkaError?)
    }

    /// Takes the next event; on `.suspend` the caller must `park` its continuation.
    mutating func next() -> NextAction {
        if head < buffer.count {
            let event = buffer[head]
            head += 1
            if head > 1024 && head * 2 > buffer.count {
                buffer.removeFirst(head)
                head = 0
            }
            if pausedForBackpressure && bufferedCount <= lowWatermark {
                pausedForBackpressure = false
                return .event(event, resumeFetching: fetching)
            }
            return .event(event, resumeFetching: [])
        }
        if case .finished(let error) = lifecycle { return .finished(error) }
        return .suspend
    }

    mutating func park(_ waiter: Waiter) {
        precondition(self.waiter == nil, "KafkaConsumer.events supports one iterator at a time")
        self.waiter = waiter
    }

    mutating func takeWaiter() -> Waiter? {
        defer { waiter = nil }
        return waiter
    }

    /// Records an assignment; returns the new partitions that must start paused.
    mutating func assign(_ partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition] {
        assigned.formUnion(partitions)
        return pausedForBackpressure ? partitions.filter { !pausedByApplication.contains($0) } : []
    }

    /// Records a revocation and drops buffered messages of those partitions: they were not
    /// processed, so their offsets were not committed and the next owner will read them again.
    /// Returns how many messages were dropped.
    mutating func revoke(_ partitions: [KafkaTopicPartition]) -> Int {
        let revoked = Set(partitions)
        assigned.subtract(revoked)
        pausedByApplication.subtract(revoked)
        let before = bufferedCount
        buffer = buffer[head...].filter { event in
            if case .message(let message) = event { return !revoked.contains(message.topicPartition) }
            return true
        }
        head = 0
        return before - bufferedCount
    }

    /// Returns the partitions the application paused that librdkafka should pause now.
    mutating func pauseByApplication(_ partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition] {
        let mine = partitions.filter { assigned.contains($0) }
        pausedByApplication.formUnion(mine)
        return mine
    }

    /// Returns the partitions librdkafka should resume (those not held back by backpressure).
    mutating func resumeByApplication(_ partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition] {
        let mine = partitions.filter { pausedByApplication.contains($0) }
        pausedByApplication.subtract(mine)
        return pausedForBackpressure ? [] : mine
    }

    /// Ends the sequence after the buffered events; returns the waiter to finish.
    mutating func finish(_ error: KafkaError?) -> Waiter? {
        guard lifecycle == .running else { return nil }
        lifecycle = .finished(error)
        return takeWaiter()
    }
}
