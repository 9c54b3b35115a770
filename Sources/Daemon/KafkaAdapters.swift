import Executors
import Foundation
import Kafka
import Logging
import Pipeline
import Records

// The Kafka boundary: the only place topic partitions and messages are converted between the
// Kafka module's types and the pipeline's.
extension TopicPartition {
    init(_ kafka: KafkaTopicPartition) { self.init(kafka.topic, kafka.partition) }
    var kafka: KafkaTopicPartition { KafkaTopicPartition(topic: topic, partition: partition) }
}

extension Dictionary where Key == TopicPartition, Value == Int64 {
    var kafkaOffsets: [KafkaTopicPartition: Int64] {
        Dictionary<KafkaTopicPartition, Int64>(uniqueKeysWithValues: map { ($0.key.kafka, $0.value) })
    }
}

extension IncomingMessage {
    init(_ message: KafkaMessage) {
        self.init(partition: TopicPartition(message.topicPartition), offset: message.offset, key: message.key, value: message.value)
    }
}

/// The pipeline's MessageSource on a KafkaConsumer: messages flow until `stop()`; the consumer
/// itself keeps running (to commit offsets and leave the group cleanly) until its service ends.
///
/// The stream is a view of the consumer's own event sequence, not a second buffer: the
/// consumer's bounded queue (and pause/resume) is the only place messages wait.
final class KafkaMessageSource: MessageSource, @unchecked Sendable {
    let consumer: KafkaConsumer
    let logger: Logger
    private let lock = NSLock()
    private var stopped = false
    /// The wait for the consumer's next event, cancelled by `stop()`.
    private var pending: Task<KafkaConsumerEvent?, Error>?
    private var lastMessage = ContinuousClock.now
    var lastMessageAt: ContinuousClock.Instant { lock.withLock { lastMessage } }

    init(consumer: KafkaConsumer, logger: Logger) {
        self.consumer = consumer
        self.logger = logger
    }

    /// Pulls one message per call from the consumer (nothing is buffered here); ends after `stop()`.
    func messages() -> AsyncThrowingStream<IncomingMessage, Error> {
        AsyncThrowingStream(unfolding: { [self] in try await nextMessage() })
    }

    private func nextMessage() async throws -> IncomingMessage? {
        while true {
            let wait = lock.withLock { () -> Task<KafkaConsumerEvent?, Error>? in
                guard !stopped else { return nil }
                let task = Task { [consumer] in
                    var events = consumer.events.makeAsyncIterator()
                    return try await events.next()
                }
                pending = task
                return task
            }
            guard let wait else { return nil }
            let event: KafkaConsumerEvent?
            do {
                event = try await wait.value
            } catch is CancellationError {
                if lock.withLock({ stopped }) { return nil }
                throw CancellationError()
            }
            guard let event else { return nil }
            if case .message(let message) = event {
                lock.withLock { lastMessage = .now }
                return IncomingMessage(message)
            }
        }
    }

    func pause(_ partitions: [TopicPartition]) {
        do { try consumer.pause(partitions.map(\.kafka)) } catch {
            logger.warning("pause failed", metadata: ["error": "\(error)"])
        }
    }

    func resume(_ partitions: [TopicPartition]) {
        do { try consumer.resume(partitions.map(\.kafka)) } catch {
            logger.warning("resume failed", metadata: ["error": "\(error)"])
        }
    }

    func commit(_ offsets: [TopicPartition: Int64]) {
        do { try consumer.commitInBackground(offsets.kafkaOffsets) } catch {
            logger.debug("offset commit to Kafka failed (Postgres holds the offsets)", metadata: ["error": "\(error)"])
        }
    }

    func stop() {
        let wait = lock.withLock { () -> Task<KafkaConsumerEvent?, Error>? in
            stopped = true
            return pending
        }
        wait?.cancel()
    }
}

/// The dead-letter producer, created on the first dead letter. A librdkafka producer takes
/// threads of its own from creation (its main thread, one per broker, an internal one, and our
/// delivery-report poller: six against a three-broker cluster), and most runs never send a
/// dead letter; once created it lives until `shutdown()`.
final class OnDemandProducer: Sendable {
    private enum State {
        case notCreated
        case created(KafkaProducer)
        case shutDown
    }

    private let configuration: KafkaProducerConfiguration
    private let logger: Logger
    private let state = Locked(State.notCreated)

    init(configuration: KafkaProducerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Whether the producer exists (a dead letter was sent) and is not shut down.
    var isCreated: Bool {
        if case .created = state.value { return true }
        return false
    }

    /// The producer, created now if this is the first call; throws after `shutdown()`.
    func producer() throws -> KafkaProducer {
        try state.withLock { state in
            switch state {
            case .created(let producer):
                return producer
            case .notCreated:
                let producer = try KafkaProducer(configuration: configuration, logger: logger)
                logger.info("dead-letter producer started")
                state = .created(producer)
                return producer
            case .shutDown:
                throw KafkaError(code: .destroyed, codeName: "_DESTROYED", message: "the dead-letter producer was shut down",
                                 isFatal: false, isRetriable: false)
            }
        }
    }

    /// Flushes and stops the producer if it was created; later sends fail.
    func shutdown() async {
        let created: KafkaProducer? = state.withLock { state in
            defer { state = .shutDown }
            if case .created(let producer) = state { return producer }
            return nil
        }
        await created?.shutdown()
    }
}

/// Dead letters: the original payload with its error class, keyed like the original record.
struct KafkaDeadLetterSink: DeadLetterSink {
    let producer: OnDemandProducer
    let topic: String

    func send(_ failed: FailedMessage) async throws {
        var envelope: [String: Any] = [
            "error_class": failed.failure.failureClass.rawValue,
            "error": failed.failure.message,
            "topic": failed.message.partition.topic,
            "partition": Int(failed.message.partition.partition),
            "offset": failed.message.offset,
        ]
        if let id = failed.recordID { envelope["id"] = id }
        if let text = String(validating: failed.message.value, as: UTF8.self) {
            envelope["payload"] = text
        } else {
            envelope["payload_base64"] = Data(failed.message.value).base64EncodedString()
        }
        let value = try JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys])
        let key = failed.recordID.map { Array($0.utf8) } ?? failed.message.key
        _ = try await producer.producer().send(KafkaProducerMessage(topic: topic, key: key, value: [UInt8](value)))
    }
}

/// Sends validated records with the Kafka producer, waiting for each batch's delivery reports.
public struct KafkaRecordSink: RecordSink {
    let producer: KafkaProducer
    let topic: String

    public init(producer: KafkaProducer, topic: String) {
        self.producer = producer
        self.topic = topic
    }

    public func deliver(_ records: [OutgoingRecord]) async -> [String?] {
        let results = await producer.send(records.map { KafkaProducerMessage(topic: topic, key: $0.key, value: $0.value) })
        return results.map { result in
            if case .failure(let error) = result { return error.description }
            return nil
        }
    }
}
