import Foundation
import Kafka
import Logging
import Pipeline

/// The pipeline's MessageSource on a KafkaConsumer: messages flow until `stop()`; the consumer
/// itself keeps running (to commit offsets and leave the group cleanly) until its service ends.
final class KafkaMessageSource: MessageSource, @unchecked Sendable {
    let consumer: KafkaConsumer
    let logger: Logger
    private let lock = NSLock()
    private var continuation: AsyncThrowingStream<IncomingMessage, Error>.Continuation?
    private var stopped = false
    private(set) var lastMessageAt = ContinuousClock.now

    init(consumer: KafkaConsumer, logger: Logger) {
        self.consumer = consumer
        self.logger = logger
    }

    func messages() -> AsyncThrowingStream<IncomingMessage, Error> {
        AsyncThrowingStream(bufferingPolicy: .unbounded) { c in
            let alreadyStopped = lock.withLock { () -> Bool in
                continuation = c
                return stopped
            }
            if alreadyStopped { c.finish(); return }
            let task = Task { [self] in
                do {
                    for try await event in consumer.events {
                        if lock.withLock({ stopped }) { break }
                        if case .message(let m) = event {
                            lock.withLock { lastMessageAt = .now }
                            c.yield(IncomingMessage(partition: TopicPartition(m.topic, m.partition), offset: m.offset, key: m.key, value: m.value))
                        }
                    }
                    c.finish()
                } catch {
                    c.finish(throwing: error)
                }
            }
            c.onTermination = { _ in task.cancel() }
        }
    }

    func pause(_ partitions: [TopicPartition]) {
        do { try consumer.pause(partitions.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) }) } catch {
            logger.warning("pause failed", metadata: ["error": "\(error)"])
        }
    }

    func resume(_ partitions: [TopicPartition]) {
        do { try consumer.resume(partitions.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) }) } catch {
            logger.warning("resume failed", metadata: ["error": "\(error)"])
        }
    }

    func commit(_ offsets: [TopicPartition: Int64]) {
        var kafka: [KafkaTopicPartition: Int64] = [:]
        for (tp, o) in offsets { kafka[KafkaTopicPartition(topic: tp.topic, partition: tp.partition)] = o }
        do { try consumer.commitInBackground(kafka) } catch {
            logger.debug("offset commit to Kafka failed (Postgres holds the offsets)", metadata: ["error": "\(error)"])
        }
    }

    func stop() {
        let c = lock.withLock { () -> AsyncThrowingStream<IncomingMessage, Error>.Continuation? in
            stopped = true
            return continuation
        }
        c?.finish()
    }
}

/// Dead letters: the original payload with its error class, keyed like the original record.
struct KafkaDeadLetterSink: DeadLetterSink {
    let producer: KafkaProducer
    let topic: String

    func send(_ failed: FailedMessage) async throws {
        var envelope: [String: Any] = [
            "error_class": failed.failure.errorClass,
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
        _ = try await producer.send(KafkaProducerMessage(topic: topic, key: key, value: [UInt8](value)))
    }
}
