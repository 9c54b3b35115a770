/// Where a consumer starts on a partition that has neither a supplied nor a committed offset.
public enum KafkaOffsetReset: String, Sendable {
    case earliest, latest
}

/// Settings of a `KafkaConsumer`. Offsets are never committed or stored automatically:
/// the application commits what it has durably written.
public struct KafkaConsumerConfiguration: Sendable {
    public var bootstrapServers: String
    public var groupID: String
    public var topics: [String]
    public var clientID = "clipd"
    public var assignmentStrategy: KafkaAssignmentStrategy = .cooperativeSticky
    public var autoOffsetReset: KafkaOffsetReset = .earliest
    public var sessionTimeout: Duration = .seconds(10)
    public var heartbeatInterval: Duration = .seconds(3)
    public var maxPollInterval: Duration = .seconds(300)
    /// How often librdkafka reports statistics to `onStatistics`; nil turns statistics off.
    public var statisticsInterval: Duration?
    /// Fetching pauses while this many events wait in the sequence, and resumes at half of it.
    public var maxBufferedEvents = 1000
    /// How long the rebalance hooks may take before the rebalance goes on without them.
    public var rebalanceHookTimeout: Duration = .seconds(30)
    /// Called on assignment with the new partitions; returns the offset to start each at
    /// (e.g. read from PostgreSQL). Partitions left out start at the group's committed offset.
    public var startingOffsets: (@Sendable ([KafkaTopicPartition]) async -> [KafkaTopicPartition: Int64])?
    /// Called before partitions are taken away, so in-flight work for them can be finished
    /// (written with its offsets) or dropped. The rebalance waits for it (up to `rebalanceHookTimeout`).
    public var partitionsRevoked: (@Sendable ([KafkaTopicPartition], _ lost: Bool) async -> Void)?
    public var onStatistics: (@Sendable (KafkaStatistics) -> Void)?
    /// Further librdkafka properties, passed verbatim (they override the fields above).
    public var additionalProperties: [String: String] = [:]

    public init(bootstrapServers: String, groupID: String, topics: [String]) {
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
        self.topics = topics
    }

    var librdkafkaProperties: [String: String] {
        var properties = [
            "bootstrap.servers": bootstrapServers,
            "group.id": groupID,
            "client.id": clientID,
            "partition.assignment.strategy": assignmentStrategy.rawValue,
            "auto.offset.reset": autoOffsetReset.rawValue,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "enable.partition.eof": "false",
            "session.timeout.ms": String(sessionTimeout.milliseconds),
            "heartbeat.interval.ms": String(heartbeatInterval.milliseconds),
            "max.poll.interval.ms": String(maxPollInterval.milliseconds),
        ]
        if let statisticsInterval { properties["statistics.interval.ms"] = String(statisticsInterval.milliseconds) }
        properties.merge(additionalProperties) { _, override in override }
        return properties
    }
}

/// Settings of a `KafkaProducer`: idempotent by default, so retries never duplicate or reorder.
public struct KafkaProducerConfiguration: Sendable {
    public var bootstrapServers: String
    public var clientID = "clipd"
    public var idempotent = true
    /// How long librdkafka keeps retrying a message before reporting it undelivered.
    public var messageTimeout: Duration = .seconds(30)
    public var linger: Duration = .milliseconds(5)
    public var statisticsInterval: Duration?
    public var onStatistics: (@Sendable (KafkaStatistics) -> Void)?
    public var additionalProperties: [String: String] = [:]

    public init(bootstrapServers: String) {
        self.bootstrapServers = bootstrapServers
    }

    var librdkafkaProperties: [String: String] {
        var properties = [
            "bootstrap.servers": bootstrapServers,
            "client.id": clientID,
            "enable.idempotence": idempotent ? "true" : "false",
            "message.timeout.ms": String(messageTimeout.milliseconds),
            "linger.ms": String(linger.milliseconds),
        ]
        if let statisticsInterval { properties["statistics.interval.ms"] = String(statisticsInterval.milliseconds) }
        properties.merge(additionalProperties) { _, override in override }
        return properties
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
