import Foundation
import Kafka
import Logging

/// `clipd dev-broker`: librdkafka's mock cluster (the Kafka protocol over TCP on 127.0.0.1, for
/// development and tests), its topics, an optional fixed bootstrap port (librdkafka 2.0.2's mock
/// brokers pick their own ports, so a `TCPRelay` forwards the given port to the first broker),
/// and the fault-injection commands of `DevBrokerCommands`.
public final class DevBroker: Sendable {
    public let cluster: KafkaMockCluster
    /// What clients bootstrap from: the relay's port when one was asked for.
    public let bootstrapServers: String
    private let relay: TCPRelay?

    public init(brokers: Int, topics: [String], partitions: Int, replicationFactor: Int, port: UInt16?, logger: Logger) throws {
        cluster = try KafkaMockCluster(brokers: brokers, logger: logger)
        for name in topics {
            try cluster.createTopic(name, partitions: partitions, replicationFactor: replicationFactor)
        }
        guard let port else {
            relay = nil
            bootstrapServers = cluster.bootstrapServers
            return
        }
        let firstBroker = String(cluster.bootstrapServers.split(separator: ",")[0])
        guard let targetPort = firstBroker.split(separator: ":").last.flatMap({ UInt16($0) }) else {
            throw DaemonError("unexpected mock cluster address \(firstBroker)")
        }
        let relay = TCPRelay(listenPort: port, upstreamPort: targetPort)
        try relay.start()
        self.relay = relay
        bootstrapServers = "127.0.0.1:\(port)"
    }

    /// Reads fault-injection commands on a thread of its own until `readLine` returns nil,
    /// answering each with "ok" or "error: <reason>".
    public func serveCommands(readLine: @escaping @Sendable () -> String?, reply: @escaping @Sendable (String) -> Void) {
        let cluster = self.cluster
        Thread.detachNewThread {
            while let line = readLine() {
                do {
                    try DevBrokerCommands.perform(line, on: cluster)
                    reply("ok")
                } catch {
                    reply("error: \(error)")
                }
            }
        }
    }

    public func stop() {
        relay?.stop()
    }
}
