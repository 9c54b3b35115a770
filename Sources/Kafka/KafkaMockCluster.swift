import Logging

/// librdkafka's mock Kafka cluster: the real protocol over TCP on 127.0.0.1, with several
/// brokers, consumer groups (also across processes) and fault injection. For development and tests.
///
/// The brokers listen on ports the system chooses (librdkafka 2.0.2 offers no way to pick them).
public final class KafkaMockCluster: Sendable {
    /// Kafka protocol requests that faults can be injected into (the value is the protocol's API key).
    public enum Request: Int16, Sendable, CaseIterable {
        case produce = 0, fetch = 1, listOffsets = 2, metadata = 3
        case offsetCommit = 8, offsetFetch = 9, findCoordinator = 10, joinGroup = 11
        case heartbeat = 12, leaveGroup = 13, syncGroup = 14, initProducerID = 22
    }

    private let owner: RDKafkaClient
    private let cluster: RDKafkaMockCluster
    public let brokerCount: Int

    /// Comma-separated `127.0.0.1:port` of every broker.
    public var bootstrapServers: String { cluster.bootstrapServers }
    /// Broker ids are 1…brokerCount.
    public var brokerIDs: ClosedRange<Int32> { 1...Int32(brokerCount) }

    public init(brokers: Int = 3, logger: Logger) throws {
        guard brokers >= 1 else {
            throw KafkaError(code: .invalidArgument, codeName: "_INVALID_ARG", message: "a mock cluster needs at least one broker",
                             isFatal: false, isRetriable: false)
        }
        // The cluster lives inside a client handle that never connects anywhere itself.
        owner = try RDKafkaClient(kind: .producer, properties: ["log_level": "3", "client.id": "clipd-mock-cluster"],
                                  context: RDKafkaCallbackContext(logger: logger))
        cluster = try RDKafkaMockCluster(brokerCount: brokers, owner: owner)
        brokerCount = brokers
    }

    /// Creates a topic; the mock otherwise auto-creates unknown topics with 4 partitions.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        try cluster.createTopic(name, partitions: partitions, replicationFactor: replicationFactor)
    }

    /// Closes the broker's connections and refuses new ones until `setBrokerUp`.
    public func setBrokerDown(_ brokerID: Int32) throws { try cluster.setBrokerDown(brokerID) }
    public func setBrokerUp(_ brokerID: Int32) throws { try cluster.setBrokerUp(brokerID) }

    /// Makes `brokerID` the leader of the partition.
    public func setPartitionLeader(_ partition: KafkaTopicPartition, brokerID: Int32) throws {
        try cluster.setPartitionLeader(partition, brokerID: brokerID)
    }

    /// Makes `brokerID` the coordinator of a consumer group.
    public func setGroupCoordinator(group: String, brokerID: Int32) throws {
        try cluster.setCoordinator(group: group, brokerID: brokerID)
    }

    /// The next `codes.count` requests of this kind, on any broker, fail with these codes in order.
    public func pushRequestErrors(_ request: Request, _ codes: [KafkaError.Code]) {
        cluster.pushRequestErrors(apiKey: request.rawValue, codes: codes)
    }

    public func clearRequestErrors(_ request: Request) {
        cluster.clearRequestErrors(apiKey: request.rawValue)
    }
}
