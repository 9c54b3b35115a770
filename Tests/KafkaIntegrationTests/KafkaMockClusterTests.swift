import Executors
import Foundation
import Kafka
import Logging
import Records
import TestSupport
import Testing

/// All Kafka integration tests run one at a time: each starts its own cluster, but group joins
/// and rebalances are timing-sensitive on a 2-core machine shared with compilers.
@Suite(.serialized) enum KafkaIntegration {}

/// Consumer, producer and admin against librdkafka's mock cluster over real TCP on 127.0.0.1.
extension KafkaIntegration {
    @Suite struct KafkaMockClusterTests {
        @Test func producedMessagesComeBackWithTheirKeys() async throws {
            let cluster = try KafkaMockCluster(brokers: 3, logger: testLogger)
            try cluster.createTopic("round-trip", partitions: 3, replicationFactor: 3)
            let producer = try makeProducer(cluster)
            let reports = try await produce(producer, topic: "round-trip", 0..<30)
            await producer.shutdown()
            #expect(Set(reports.map(\.partition)).isSubset(of: [0, 1, 2]))

            let reader = try TestConsumer(name: "reader", configuration: fastConsumerConfiguration(cluster, group: "round-trip", topic: "round-trip"))
            try await waitUntil("30 messages") { await reader.worker.processed.count >= 30 }
            let messages = await reader.worker.processed
            await reader.stop()

            #expect(messages.count == 30)
            #expect(Set(messages.map { String(decoding: $0.value, as: UTF8.self) }) == Set((0..<30).map { "m\($0)" }))
            for message in messages {
                let index = Int(String(decoding: message.value, as: UTF8.self).dropFirst())!
                #expect(message.key == Array("key-\(index % 7)".utf8))
            }
            // The default partitioner hashes the key: one key, one partition.
            let partitionsByKey = Dictionary(grouping: messages, by: { $0.key! }).mapValues { Set($0.map(\.partition)) }
            #expect(partitionsByKey.values.allSatisfy { $0.count == 1 })
            #expect(reader.failures.withLock { $0 }.isEmpty)
        }

        @Test func nothingIsCommittedUntilAskedAndARestartResumesThere() async throws {
            let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
            try cluster.createTopic("manual", partitions: 1)
            let partition = KafkaTopicPartition(topic: "manual", partition: 0)
            let producer = try makeProducer(cluster)
            try await produce(producer, topic: "manual", 0..<20)
            await producer.shutdown()

            let configuration = fastConsumerConfiguration(cluster, group: "manual", topic: "manual")
            let first = try TestConsumer(name: "first", configuration: configuration, commitEachMessage: false, commitOnRevocation: false)
            try await waitUntil("20 messages") { await first.worker.processed.count >= 20 }
            #expect(try await first.consumer.committedOffsets(for: [partition]) == [partition: nil])
            let lagBefore = try await first.consumer.lag()
            #expect(lagBefore == [KafkaPartitionLag(topicPartition: partition, lowWatermark: 0, highWatermark: 20, committedOffset: nil)])
            #expect(lagBefore.first?.lag == 20)

            try await first.consumer.commit([partition: 12])
            #expect(try await first.consumer.committedOffsets(for: [partition]) == [partition: 12])
            #expect(try await first.consumer.lag().first?.lag == 8)
            await first.stop()

            let second = try TestConsumer(name: "second", configuration: fastConsumerConfiguration(cluster, group: "manual", topic: "manual"),
                                          commitEachMessage: false)
            try await waitUntil("8 messages after the committed offset") { await second.worker.processed.count >= 8 }
            let resumed = await second.worker.processed
            await second.stop()
            #expect(resumed.first?.offset == 12)
            #expect(resumed.map(\.offset) == Array(12..<20))
        }

        /// With offsets stored beside the results (the daemon's way) every message is processed
        /// exactly once; with Kafka's commits alone, a commit refused mid-rebalance
        /// (REBALANCE_IN_PROGRESS) can make the next owner read a message again: at least once.
        @Test(arguments: [(KafkaAssignmentStrategy.cooperativeSticky, true), (.range, true), (.cooperativeSticky, false)])
        func aThirdConsumerJoiningRebalancesWithoutLosingMessages(strategy: KafkaAssignmentStrategy, offsetsStoredWithResults: Bool) async throws {
            let cluster = try KafkaMockCluster(brokers: 3, logger: testLogger)
            let name = "\(strategy.rawValue)-\(offsetsStoredWithResults ? "stored" : "committed")"
            let topic = "rebalance-\(name)"
            try cluster.createTopic(topic, partitions: 6, replicationFactor: 2)
            let producer = try makeProducer(cluster)
            let configuration = fastConsumerConfiguration(cluster, group: "group-\(name)", topic: topic, strategy: strategy)
            let store = offsetsStoredWithResults ? Locked<[KafkaTopicPartition: Int64]>([:]) : nil

            let one = try TestConsumer(name: "one", configuration: configuration, offsetStore: store)
            let two = try TestConsumer(name: "two", configuration: configuration, offsetStore: store)
            try await waitUntil("two members splitting 6 partitions") {
                let (a, b) = (await one.assignment(), await two.assignment())
                return !a.isEmpty && !b.isEmpty && a.isDisjoint(with: b) && a.union(b).count == 6
            }
            try await produce(producer, topic: topic, 0..<150, keys: 50)
            try await waitUntil("the first 150 messages") {
                await one.worker.processed.count + two.worker.processed.count >= 150
            }
            let revocationsBefore = await one.worker.revocations.count + two.worker.revocations.count

            let three = try TestConsumer(name: "three", configuration: configuration, offsetStore: store)
            // Messages keep flowing while the group rebalances.
            try await produce(producer, topic: topic, 150..<300, keys: 50)
            try await waitUntil("three members splitting 6 partitions") {
                let owned = [await one.assignment(), await two.assignment(), await three.assignment()]
                return owned.allSatisfy { !$0.isEmpty } && owned.map(\.count).reduce(0, +) == 6
                    && owned[0].union(owned[1]).union(owned[2]).count == 6
            }
            try await produce(producer, topic: topic, 300..<400, keys: 50)
            await producer.shutdown()
            let consumers = [one, two, three]
            try await waitUntil("all 400 messages processed") {
                var values = Set<String>()
                for consumer in consumers { values.formUnion(await consumer.worker.processedValues()) }
                return values.count == 400
            }
            var all: [String] = []
            for consumer in consumers { all += await consumer.worker.processedValues() }
            let revocationsAfter = await one.worker.revocations.count + two.worker.revocations.count
            let threeProcessed = await three.worker.processed.count
            for consumer in consumers { await consumer.stop() }

            #expect(revocationsAfter > revocationsBefore, "the join revoked partitions from the first two")
            #expect(threeProcessed > 0)
            #expect(Set(all) == Set((0..<400).map { "m\($0)" }), "no message lost")
            if offsetsStoredWithResults {
                // Revoked partitions stop being processed before they move, messages buffered for
                // them are dropped, and the next owner starts where the store says.
                #expect(all.count == 400, "each message processed exactly once")
            }
            for consumer in consumers { #expect(consumer.failures.withLock { $0 }.isEmpty) }
        }

        @Test func offsetsSuppliedFromOutsideWinOverCommittedOnes() async throws {
            let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
            try cluster.createTopic("external", partitions: 2)
            let p0 = KafkaTopicPartition(topic: "external", partition: 0)
            let p1 = KafkaTopicPartition(topic: "external", partition: 1)
            let producer = try makeProducer(cluster)
            try await produce(producer, topic: "external", 0..<40, partition: { Int32($0 % 2) })
            await producer.shutdown()

            // The offsets of record, as a database would hold them next to the results.
            let database = Locked<[KafkaTopicPartition: Int64]>([p0: 15, p1: 5])
            let asked = Locked<[[KafkaTopicPartition]]>([])
            func configuration() -> KafkaConsumerConfiguration {
                var configuration = fastConsumerConfiguration(cluster, group: "external", topic: "external")
                configuration.startingOffsets = { partitions in
                    asked.withLock { $0.append(partitions.sorted()) }
                    return database.withLock { $0 }
                }
                return configuration
            }
            let first = try TestConsumer(name: "first", configuration: configuration(), commitEachMessage: false)
            try await waitUntil("messages from both supplied offsets") { await first.worker.processed.count >= 5 + 15 }
            try await first.consumer.commit([p0: 2, p1: 2])
            let firstOffsets = await Dictionary(grouping: first.worker.processed, by: \.partition).mapValues { $0.map(\.offset) }
            #expect(firstOffsets[0] == Array(15..<20))
            #expect(firstOffsets[1] == Array(5..<20))
            await first.stop()

            // The partitions move to a new member; the database moved on meanwhile.
            database.withLock { $0 = [p0: 18, p1: 7] }
            let second = try TestConsumer(name: "second", configuration: configuration(), commitEachMessage: false)
            try await waitUntil("messages from the new supplied offsets") { await second.worker.processed.count >= 2 + 13 }
            let secondOffsets = await Dictionary(grouping: second.worker.processed, by: \.partition).mapValues { $0.map(\.offset) }
            let assignments = await second.worker.assignments.flatMap { $0 }
            await second.stop()
            #expect(secondOffsets[0] == Array(18..<20))
            #expect(secondOffsets[1] == Array(7..<20))
            #expect(Set(assignments) == [KafkaPartitionAssignment(topicPartition: p0, startingOffset: 18),
                                         KafkaPartitionAssignment(topicPartition: p1, startingOffset: 7)])
            #expect(asked.withLock { $0 }.allSatisfy { $0 == [p0, p1] })
        }

        @Test func aBrokerDownMidStreamLosesNothing() async throws {
            let cluster = try KafkaMockCluster(brokers: 3, logger: testLogger)
            try cluster.createTopic("faults", partitions: 3, replicationFactor: 3)
            for partition in 0..<3 { try cluster.setPartitionLeader(KafkaTopicPartition(topic: "faults", partition: Int32(partition)), brokerID: Int32(partition + 1)) }
            try cluster.setGroupCoordinator(group: "faults", brokerID: 2)
            let producer = try makeProducer(cluster)
            let reader = try TestConsumer(name: "reader", configuration: fastConsumerConfiguration(cluster, group: "faults", topic: "faults"))
            try await produce(producer, topic: "faults", 0..<30, partition: { Int32($0 % 3) })
            try await waitUntil("the first 30 messages") { await reader.worker.processed.count >= 30 }

            // Broker 1 leads partition 0: its messages wait while the others keep flowing.
            try cluster.setBrokerDown(1)
            let sending = Task { try await produce(producer, topic: "faults", 30..<90, partition: { Int32($0 % 3) }) }
            try await waitUntil("partitions 1 and 2 to keep flowing") {
                await reader.worker.processed.filter { $0.partition != 0 }.count >= 20 + 40
            }
            #expect(await reader.worker.processed.filter { $0.partition == 0 }.count == 10)
            try cluster.setBrokerUp(1)
            let reports = try await sending.value
            #expect(reports.count == 60)

            // Refused produce requests are retried by the idempotent producer without duplicates.
            cluster.pushRequestErrors(.produce, [.notLeaderForPartition, .requestTimedOut, .notEnoughReplicas])
            try await produce(producer, topic: "faults", 90..<120, partition: { Int32($0 % 3) })
            await producer.shutdown()

            try await waitUntil("all 120 messages") { Set(await reader.worker.processedValues()).count >= 120 }
            let values = await reader.worker.processedValues()
            let offsets = await reader.worker.processed.map { "\($0.partition)@\($0.offset)" }
            await reader.stop()
            #expect(values.count == 120)
            #expect(Set(values) == Set((0..<120).map { "m\($0)" }))
            #expect(Set(offsets).count == 120)
        }

        @Test func pausedPartitionsStopUntilResumed() async throws {
            let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
            try cluster.createTopic("pause", partitions: 2)
            let p0 = KafkaTopicPartition(topic: "pause", partition: 0)
            let producer = try makeProducer(cluster)
            let reader = try TestConsumer(name: "reader", configuration: fastConsumerConfiguration(cluster, group: "pause", topic: "pause"))
            try await waitUntil("the assignment") { await reader.assignment().count == 2 }

            try reader.consumer.pause([p0])
            try await produce(producer, topic: "pause", 0..<20, partition: { Int32($0 % 2) })
            try await waitUntil("partition 1's messages") { await reader.worker.processed.filter { $0.partition == 1 }.count == 10 }
            #expect(await reader.worker.processed.filter { $0.partition == 0 }.isEmpty)

            try reader.consumer.resume([p0])
            try await waitUntil("partition 0's messages after resume") { await reader.worker.processed.filter { $0.partition == 0 }.count == 10 }
            await producer.shutdown()
            await reader.stop()
        }

        @Test func seekingMovesTheReadPosition() async throws {
            let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
            try cluster.createTopic("seek", partitions: 1)
            let partition = KafkaTopicPartition(topic: "seek", partition: 0)
            let producer = try makeProducer(cluster)
            try await produce(producer, topic: "seek", 0..<10)
            await producer.shutdown()
            let reader = try TestConsumer(name: "reader", configuration: fastConsumerConfiguration(cluster, group: "seek", topic: "seek"),
                                          commitEachMessage: false)
            try await waitUntil("10 messages") { await reader.worker.processed.count == 10 }
            try await reader.consumer.seek([partition: 4])
            try await waitUntil("6 messages again") { await reader.worker.processed.count == 16 }
            let offsets = await reader.worker.processed.map(\.offset)
            await reader.stop()
            #expect(offsets == Array(0..<10) + Array(4..<10))
        }

        @Test func statisticsReportConsumerLag() async throws {
            let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
            try cluster.createTopic("stats", partitions: 1)
            let producer = try makeProducer(cluster)
            try await produce(producer, topic: "stats", 0..<10)
            await producer.shutdown()

            let reports = Locked<[KafkaStatistics]>([])
            var configuration = fastConsumerConfiguration(cluster, group: "stats", topic: "stats")
            configuration.statisticsInterval = .milliseconds(100)
            configuration.onStatistics = { statistics in reports.withLock { $0.append(statistics) } }
            let reader = try TestConsumer(name: "reader", configuration: configuration)
            try await waitUntil("10 messages") { await reader.worker.processed.count == 10 }
            // librdkafka's consumer_lag counts from the committed offset, which is 10 once all are committed.
            try await waitUntil("statistics with the partition's lag") {
                reports.withLock { $0.contains { $0.messagesReceived >= 10 && $0.partitions.contains { $0.consumerLag == 0 && $0.highWatermark == 10 } } }
            }
            await reader.stop()
            #expect(reports.withLock { $0 }.allSatisfy { $0.clientType == "consumer" })
        }

        @Test func creatingTopicsOnTheMockFailsClearlyAndRetriably() async throws {
            // librdkafka 2.0.2's mock cluster has no controller, so CreateTopics cannot succeed.
            let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
            let admin = KafkaAdmin(bootstrapServers: cluster.bootstrapServers, logger: testLogger)
            await #expect {
                try await admin.createTopics([KafkaTopicSpecification(name: "new", partitions: 2)], timeout: .seconds(1))
            } throws: { error in
                guard let error = error as? KafkaError else { return false }
                return error.isRetriable && !error.isFatal && error.description.contains("creating topics")
            }
        }

        @Test func invalidConfigurationIsAClearError() throws {
            var configuration = KafkaProducerConfiguration(bootstrapServers: "127.0.0.1:1")
            configuration.additionalProperties = ["no.such.property": "1"]
            #expect {
                _ = try KafkaProducer(configuration: configuration, logger: testLogger)
            } throws: { error in
                (error as? KafkaError)?.message.contains("no.such.property") == true
            }
        }

        @Test func publishingAFileReportsBadLinesAndDeliversTheRest() async throws {
            let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
            try cluster.createTopic("records", partitions: 2)
            let producer = try makeProducer(cluster)
            let input = """
                {"id": "a", "image_url": "https://example.com/a.jpg", "caption": "first"}
                {"image_url": "ftp://example.com/b.jpg"}

                {"image_url": "file:///data/c.jpg"}
                not json
                {"id": "d", "image_url": "http://example.com/d.png", "metadata": {"k": [1, 2]}}
                """
            var problems: [String] = []
            let summary = await RecordPublisher(batchSize: 2).publish(
                jsonLines: Array(input.utf8), to: ProducerSink(producer: producer, topic: "records")) { problems.append($0.description) }
            await producer.shutdown()
            #expect(summary.json == #"{"delivered":3,"invalid":2}"#)
            #expect(!summary.succeeded)
            #expect(problems == [#"line 2: image_url: scheme "ftp" is not supported (use http, https or file)"#, "line 5: not valid JSON"])

            let reader = try TestConsumer(name: "reader", configuration: fastConsumerConfiguration(cluster, group: "records", topic: "records"))
            try await waitUntil("3 records") { await reader.worker.processed.count == 3 }
            let messages = await reader.worker.processed
            await reader.stop()
            let keys = Set(messages.map { $0.key.map { String(decoding: $0, as: UTF8.self) } ?? "<none>" })
            #expect(keys == ["a", "d", "<none>"])
            for message in messages { #expect((try? RecordValidator().validate(message.value).get()) != nil) }
        }

        @Test func undeliverableRecordsAreCounted() async throws {
            // Nothing listens on the port, so every message times out.
            var configuration = KafkaProducerConfiguration(bootstrapServers: "127.0.0.1:9")
            configuration.messageTimeout = .milliseconds(500)
            let producer = try KafkaProducer(configuration: configuration, logger: Logger(label: "quiet", factory: { _ in SwiftLogNoOpLogHandler() }))
            let summary = await RecordPublisher().publish(
                jsonLines: Array(#"{"image_url": "https://example.com/a.jpg"}"#.utf8), to: ProducerSink(producer: producer, topic: "records"))
            await producer.shutdown(timeout: .seconds(1))
            #expect(summary.delivered == 0)
            #expect(summary.undelivered.count == 1)
            #expect(summary.json == #"{"delivered":0,"invalid":0,"undelivered":1}"#)
        }
    }

}

/// The publish command's adapter from records to the producer, as the executable has it.
struct ProducerSink: RecordSink {
    let producer: KafkaProducer
    let topic: String

    func deliver(_ records: [OutgoingRecord]) async -> [String?] {
        let results = await producer.send(records.map { KafkaProducerMessage(topic: topic, key: $0.key, value: $0.value) })
        return results.map { result in
            if case .failure(let error) = result { return error.description }
            return nil
        }
    }
}
