import ArgumentParser
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
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be between 1 and 65535") }
        if let replicationFactor, !(1...brokers).contains(replicationFactor) {
            throw ValidationError("--replication-factor must be between 1 and --brokers (\(brokers))")
        }
    }

    func run() async throws {
        var logger = Logger(label: "clipd.dev-broker", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .notice
        let cluster = try KafkaMockCluster(brokers: brokers, logger: logger)
        for name in topic {
            try cluster.createTopic(name, partitions: partitions, replicationFactor: replicationFactor ?? min(3, brokers))
        }
        var forwarder: BootstrapForwarder?
        var bootstrap = cluster.bootstrapServers
        if let port {
            let firstBroker = String(cluster.bootstrapServers.split(separator: ",")[0])
            guard let targetPort = firstBroker.split(separator: ":").last.flatMap({ UInt16($0) }) else {
                throw ValidationError("unexpected mock cluster address \(firstBroker)")
            }
            forwarder = try BootstrapForwarder(listenPort: UInt16(port), targetPort: targetPort)
            bootstrap = "127.0.0.1:\(port)"
        }
        // Unbuffered, so a parent process reading our stdout sees the address at once.
        FileHandle.standardOutput.write(Data("\(bootstrap)\n".utf8))
        logger.notice("dev broker serving \(brokers) brokers at \(cluster.bootstrapServers); topics: \(topic.isEmpty ? "auto-created" : topic.joined(separator: ","))")

        // Opt-in: a background job reading a terminal would be stopped by SIGTTIN.
        if stdinCommands {
            Thread.detachNewThread { [cluster] in
                while let line = readLine() {
                    let reply: String
                    do {
                        try Self.perform(line, on: cluster)
                        reply = "ok"
                    } catch {
                        reply = "error: \(error)"
                    }
                    FileHandle.standardOutput.write(Data("\(reply)\n".utf8))
                }
            }
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
        forwarder?.close()
        withExtendedLifetime((cluster, sources)) {}
    }
}

extension DevBrokerCommand {
    struct CommandError: Error, CustomStringConvertible {
        let description: String
    }

    static func perform(_ line: String, on cluster: KafkaMockCluster) throws {
        let words = line.split(separator: " ").map(String.init)
        func number<T: FixedWidthInteger>(_ index: Int, _ what: String) throws -> T {
            guard index < words.count, let value = T(words[index]) else { throw CommandError(description: "\(what) must be a number") }
            return value
        }
        switch words.first {
        case "broker-down"?: try cluster.setBrokerDown(number(1, "ID"))
        case "broker-up"?: try cluster.setBrokerUp(number(1, "ID"))
        case "leader"?:
            guard words.count == 4 else { throw CommandError(description: "usage: leader TOPIC PARTITION ID") }
            try cluster.setPartitionLeader(KafkaTopicPartition(topic: words[1], partition: number(2, "PARTITION")), brokerID: number(3, "ID"))
        case "request-errors"?:
            guard words.count == 3, let request = KafkaMockCluster.Request.allCases.first(where: { "\($0)" == words[1] }) else {
                throw CommandError(description: "usage: request-errors REQUEST CODE[,CODE…] with REQUEST one of \(KafkaMockCluster.Request.allCases.map { "\($0)" })")
            }
            let codes = try words[2].split(separator: ",").map { text -> KafkaError.Code in
                guard let code = Int32(text) else { throw CommandError(description: "error code \(text) is not a number") }
                return KafkaError.Code(rawValue: code)
            }
            cluster.pushRequestErrors(request, codes)
        case "create-topic"?:
            guard words.count == 3 || words.count == 4 else { throw CommandError(description: "usage: create-topic NAME PARTITIONS [REPLICATION]") }
            try cluster.createTopic(words[1], partitions: number(2, "PARTITIONS"), replicationFactor: words.count == 4 ? number(3, "REPLICATION") : 1)
        default:
            throw CommandError(description: "unknown command \"\(line)\" (broker-down, broker-up, leader, request-errors, create-topic)")
        }
    }
}

/// Accepts TCP connections on 127.0.0.1:listenPort and pipes each to 127.0.0.1:targetPort,
/// because librdkafka 2.0.2's mock brokers cannot be told which port to listen on.
final class BootstrapForwarder: @unchecked Sendable {
    private let listener: Int32

    struct SocketError: Error, CustomStringConvertible {
        let description: String
    }

    init(listenPort: UInt16, targetPort: UInt16) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw SocketError(description: "socket: \(String(cString: strerror(errno)))") }
        var reuse: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: listenPort)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(listener)
            throw SocketError(description: "cannot listen on 127.0.0.1:\(listenPort): \(reason)")
        }
        self.listener = listener
        Thread.detachNewThread {
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var target = Self.loopback(port: targetPort)
                let connected = withUnsafePointer(to: &target) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else {
                    Glibc.close(client)
                    Glibc.close(upstream)
                    continue
                }
                Thread.detachNewThread { Self.pipe(from: client, to: upstream) }
                Thread.detachNewThread { Self.pipe(from: upstream, to: client) }
            }
        }
    }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    /// Copies until either side closes, then shuts both directions so the twin thread ends too.
    private static func pipe(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        outer: while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + written, count - written) }
                if result <= 0 { break outer }
                written += result
            }
        }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(destination, Int32(SHUT_RDWR))
        // Each direction closes the descriptor it reads from; its twin closes the other.
        Glibc.close(source)
    }
}
