import ArgumentParser
import Daemon
import Foundation
import Kafka
import Logging
import Records

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Validate JSON-lines records and publish the valid ones to a Kafka topic, keyed by id.",
        discussion: """
            Each non-blank line must be a record of Schemas/kafka/record.schema.json. Invalid lines are \
            reported on stderr as "line N: reason" and not sent. Prints {"delivered":N,"invalid":M} and \
            exits non-zero if any line was invalid or undelivered.
            """)

    @Option(help: "Kafka bootstrap servers, host:port[,host:port…].")
    var brokers: String

    @Option(help: "Topic to publish to.")
    var topic: String

    @Argument(help: "JSON-lines file, or - for standard input.")
    var input: String = "-"

    @Flag(help: "Create the topic first if it does not exist (needs a real Kafka cluster; the dev broker creates its topics itself).")
    var createTopic = false

    @Option(help: "Partitions of a topic created with --create-topic.")
    var partitions: Int = 4

    @Option(help: "Replication factor of a topic created with --create-topic.")
    var replicationFactor: Int = 1

    @Option(help: "Seconds to keep retrying a message before counting it undelivered.")
    var deliveryTimeout: Int = 30

    func validate() throws {
        if brokers.isEmpty { throw ValidationError("--brokers must not be empty") }
        if topic.isEmpty { throw ValidationError("--topic must not be empty") }
        try FlagRange.check(partitions, "--partitions", 1...100_000)
        try FlagRange.check(replicationFactor, "--replication-factor", 1...100)
        try FlagRange.check(deliveryTimeout, "--delivery-timeout", 1...3600)
    }

    func run() async throws {
        let input = input
        // Reading a file or a pipe blocks; it happens on a Dispatch thread, not the cooperative pool.
        let data: Data? = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: input == "-"
                    ? FileHandle.standardInput.readDataToEndOfFile()
                    : FileManager.default.contents(atPath: input))
            }
        }
        guard let data else { throw ValidationError("cannot read \(input)") }
        var logger = Logger(label: "clipd.publish", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .warning
        let summary = try await publish(Array(data), logger: logger)
        print(summary.json)
        if !summary.succeeded { throw ExitCode.failure }
    }

    private func publish(_ bytes: [UInt8], logger: Logger) async throws -> PublishSummary {
        if createTopic {
            try await KafkaAdmin(bootstrapServers: brokers, logger: logger).createTopics(
                [KafkaTopicSpecification(name: topic, partitions: partitions, replicationFactor: replicationFactor)])
        }
        var configuration = KafkaProducerConfiguration(bootstrapServers: brokers)
        configuration.messageTimeout = .seconds(deliveryTimeout)
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let summary = await RecordPublisher().publish(jsonLines: bytes, to: KafkaRecordSink(producer: producer, topic: topic)) { problem in
            FileHandle.standardError.write(Data("\(problem)\n".utf8))
        }
        await producer.shutdown(timeout: .seconds(deliveryTimeout))
        return summary
    }
}
