import Executors
import Foundation
import Kafka
import Logging
import TestSupport
import Testing

/// Quiet by default: librdkafka reports every refused connection of a stopped mock broker as an
/// error. KAFKA_TEST_LOG_LEVEL=debug (or info, warning, ...) shows them.
let testLogger = makeTestLogger("kafka-test", level: .critical, levelVariable: "KAFKA_TEST_LOG_LEVEL")

/// Group settings short enough that joins and rebalances take a few seconds on the mock cluster
/// (it waits up to about the session timeout for members to rejoin).
func fastConsumerConfiguration(_ cluster: KafkaMockCluster, group: String, topic: String,
                               strategy: KafkaAssignmentStrategy = .cooperativeSticky) -> KafkaConsumerConfiguration {
    var configuration = KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: group, topics: [topic])
    configuration.assignmentStrategy = strategy
    configuration.sessionTimeout = .milliseconds(3000)
    configuration.heartbeatInterval = .milliseconds(300)
    configuration.maxPollInterval = .milliseconds(10000)
    configuration.rebalanceHookTimeout = .seconds(10)
    configuration.additionalProperties = [
        "topic.metadata.refresh.interval.ms": "500",
        "fetch.wait.max.ms": "50",
        "reconnect.backoff.ms": "50",
        "reconnect.backoff.max.ms": "500",
    ]
    return configuration
}

func makeProducer(_ cluster: KafkaMockCluster) throws -> KafkaProducer {
    var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
    configuration.linger = .milliseconds(1)
    configuration.additionalProperties = ["reconnect.backoff.ms": "50", "reconnect.backoff.max.ms": "500", "retry.backoff.ms": "50"]
    return try KafkaProducer(configuration: configuration, logger: testLogger)
}

/// Sends values "<prefix><i>" for i in `range`, keyed "key-<i % keys>" (or to an explicit partition), and requires delivery.
@discardableResult
func produce(_ producer: KafkaProducer, topic: String, prefix: String = "m", _ range: Range<Int>, keys: Int = 7,
             partition: ((Int) -> Int32)? = nil) async throws -> [KafkaDeliveryReport] {
    let messages = range.map { index in
        KafkaProducerMessage(topic: topic, partition: partition?(index), key: Array("key-\(index % keys)".utf8),
                             value: Array("\(prefix)\(index)".utf8))
    }
    return try await producer.send(messages).map { try $0.get() }
}

/// A consumer running in the background, with everything it saw, processed and committed.
/// Processing is a pipeline's shape in miniature: record the message, remember its offset,
/// commit remembered offsets after each message and, synchronously, before partitions are revoked.
final class TestConsumer: Sendable {
    let name: String
    let consumer: KafkaConsumer
    let worker: Worker
    private let tasks: Locked<[Task<Void, Never>]> = Locked([])
    let failures = Locked<[String]>([])

    actor Worker {
        /// Where processing records each partition's next offset, in the same step as the
        /// result (as PostgresSink does in one transaction); nil when Kafka's commits are the only record.
        let offsetStore: Locked<[KafkaTopicPartition: Int64]>?
        init(offsetStore: Locked<[KafkaTopicPartition: Int64]>?) { self.offsetStore = offsetStore }

        /// Ownership as the event stream tells it (assigned adds, revoked removes).
        var owned: Set<KafkaTopicPartition> = []
        /// Partitions the revocation hook gave up; their revoked event may still be on its way.
        var released: Set<KafkaTopicPartition> = []
        var processed: [KafkaMessage] = []
        var uncommitted: [KafkaTopicPartition: Int64] = [:]
        var assignments: [[KafkaPartitionAssignment]] = []
        var revocations: [[KafkaTopicPartition]] = []

        func handle(_ event: KafkaConsumerEvent) {
            switch event {
            case .message(let message):
                // A message dequeued after its partition was revoked belongs to the next owner now.
                guard owned.contains(message.topicPartition), !released.contains(message.topicPartition) else { return }
                processed.append(message)
                offsetStore?.withLock { $0[message.topicPartition] = message.nextOffset }
                uncommitted[message.topicPartition] = message.nextOffset
            case .partitionsAssigned(let assignments):
                owned.formUnion(assignments.map(\.topicPartition))
                self.assignments.append(assignments)
            case .partitionsRevoked(let partitions, _):
                owned.subtract(partitions)
                released.subtract(partitions)
                revocations.append(partitions)
            }
        }

        /// Stops processing the partitions and returns what must be committed for them.
        func release(_ partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition: Int64] {
            released.formUnion(partitions)
            return uncommitted.filter { partitions.contains($0.key) }
        }

        func committed(_ offsets: [KafkaTopicPartition: Int64]) {
            for (partition, offset) in offsets where uncommitted[partition] == offset {
                uncommitted[partition] = nil
            }
        }

        func pendingForOwned() -> [KafkaTopicPartition: Int64] {
            uncommitted.filter { owned.contains($0.key) && !released.contains($0.key) }
        }
        func processedValues() -> [String] { processed.map { String(decoding: $0.value, as: UTF8.self) } }
    }

    init(name: String, configuration: KafkaConsumerConfiguration, commitEachMessage: Bool = true, commitOnRevocation: Bool = true,
         offsetStore: Locked<[KafkaTopicPartition: Int64]>? = nil) throws {
        let worker = Worker(offsetStore: offsetStore)
        let box = Locked<KafkaConsumer?>(nil)
        var configuration = configuration
        if let offsetStore {
            configuration.startingOffsets = { _ in offsetStore.withLock { $0 } }
        }
        configuration.partitionsRevoked = { partitions, lost in
            let offsets = await worker.release(partitions)
            guard commitOnRevocation, !lost, !offsets.isEmpty, let consumer = box.withLock({ $0 }) else { return }
            do {
                try await consumer.commit(offsets)
                await worker.committed(offsets)
            } catch {
                testLogger.error("commit on revocation: \(error)")
            }
        }
        let consumer = try KafkaConsumer(configuration: configuration, logger: testLogger)
        box.withLock { $0 = consumer }
        self.name = name
        self.consumer = consumer
        self.worker = worker
        let failures = failures
        let runTask = Task {
            do { try await consumer.run() } catch { failures.withLock { $0.append("run: \(error)") } }
        }
        let eventTask = Task {
            do {
                for try await event in consumer.events {
                    await worker.handle(event)
                    if commitEachMessage, case .message = event {
                        let offsets = await worker.pendingForOwned()
                        guard !offsets.isEmpty else { continue }
                        do {
                            try await consumer.commit(offsets)
                            await worker.committed(offsets)
                        } catch {
                            // A commit racing a rebalance may be refused; the revocation commit covers it.
                            testLogger.notice("commit: \(error)")
                        }
                    }
                }
            } catch {
                failures.withLock { $0.append("events: \(error)") }
            }
        }
        tasks.withLock { $0 = [runTask, eventTask] }
    }

    /// The assignment as librdkafka has it now.
    func assignment() async -> Set<KafkaTopicPartition> { Set((try? await consumer.assignment()) ?? []) }

    func stop() async {
        consumer.shutdown()
        for task in tasks.withLock({ $0 }) { await task.value }
    }
}
