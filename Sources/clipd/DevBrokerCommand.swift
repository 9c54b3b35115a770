import ArgumentParser
import Daemon
import Foundation
import Kafka
import Logging

#if canImport(Glibc)
import Glibc
#endif

struct DevBrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-broker",
        abstract: "Run a local Kafka-protocol cluster (librdkafka's mock cluster) for development and tests.",
        discussion: """
            Prints the bootstrap address as the first line of stdout, then serves on 127.0.0.1 until \
            SIGTERM or SIGINT. Consumers in other processes can join groups on it. librdkafka 2.0.2 \
            picks the brokers' ports itself; with --port, the given port forwards to the first broker, \
            which is enough for bootstrapping (clients then connect to the ports the brokers advertise).

            With --stdin-commands, faults can be injected by writing commands to stdin, one per line; \
            each is answered on stdout with "ok" or "error: <reason>":
              broker-down ID | broker-up ID          (broker ids are 1…--brokers)
              leader TOPIC PARTITION ID
              request-errors REQUEST CODE[,CODE…]    (REQUEST: \(KafkaMockCluster.Request.allCases.map { "\($0)" }.joined(separator: ", ")); \
            CODE: Kafka error code, e.g. 6 = NOT_LEADER_FOR_PARTITION, 7 = REQUEST_TIMED_OUT, -195 = transport failure)
              create-topic NAME PARTITIONS [REPLICATION]
            """)

    @Option(help: "Port on 127.0.0.1 for the bootstrap address (default: the first broker's own port).")
    var port: Int?

    @Option(help: "Number of brokers.")
    var brokers: Int = 3

    @Option(help: "Partitions of each --topic.")
    var partitions: Int = 4

    @Option(help: "Replication factor of each --topic (at most --brokers).")
    var replicationFactor: Int?

    @Option(help: "Topic to create (repeatable). Unknown topics are auto-created with 4 partitions.")
    var topic: [String] = []

    @Flag(help: "Read fault-injection commands from stdin (see above).")
    var stdinCommands = false

    func validate() throws {
        if brokers < 1 { throw ValidationError("--brokers must be at least 1") }
        if partitions < 1 { throw ValidationError("--partitions must be at least 1") }
        try FlagRange.check(brokers, "--brokers", 1...16)
        try FlagRange.check(partitions, "--partitions", 1...1024)
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be between 1 and 65535") }
        if let replicationFactor, !(1...brokers).contains(replicationFactor) {
            throw ValidationError("--replication-factor must be between 1 and --brokers (\(brokers))")
        }
    }

    func run() async throws {
        var logger = Logger(label: "clipd.dev-broker", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .notice
        let broker = try DevBroker(brokers: brokers, topics: topic, partitions: partitions,
                                   replicationFactor: replicationFactor ?? min(3, brokers), port: port.map(UInt16.init), logger: logger)
        // Unbuffered, so a parent process reading our stdout sees the address at once.
        FileHandle.standardOutput.write(Data("\(broker.bootstrapServers)\n".utf8))
        logger.notice("dev broker serving \(brokers) brokers at \(broker.cluster.bootstrapServers); topics: \(topic.isEmpty ? "auto-created" : topic.joined(separator: ","))")
        // Opt-in: a background job reading a terminal would be stopped by SIGTTIN.
        if stdinCommands {
            broker.serveCommands(readLine: { readLine() }, reply: { FileHandle.standardOutput.write(Data("\($0)\n".utf8)) })
        }

        let (stops, stop) = AsyncStream.makeStream(of: Int32.self)
        var sources: [DispatchSourceSignal] = []
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { stop.yield(signalNumber) }
            source.resume()
            sources.append(source)
        }
        for await _ in stops { break }
        logger.notice("dev broker stopping")
        broker.stop()
        withExtendedLifetime(sources) {}
    }
}
