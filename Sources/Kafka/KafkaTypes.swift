/// A partition of a topic.
public struct KafkaTopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)/\(partition)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
}

/// A consumed message; its bytes were copied out of librdkafka's buffer.
public struct KafkaMessage: Hashable, Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    /// Milliseconds since the epoch (create or log-append time), when the broker reported one.
    public var timestampMilliseconds: Int64?

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], timestampMilliseconds: Int64? = nil) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestampMilliseconds = timestampMilliseconds
    }

    public var topicPartition: KafkaTopicPartition { KafkaTopicPartition(topic: topic, partition: partition) }
    /// The offset to commit once this message is processed.
    public var nextOffset: Int64 { offset + 1 }
}

/// A partition given to this consumer, and where consumption starts.
public struct KafkaPartitionAssignment: Hashable, Sendable {
    public var topicPartition: KafkaTopicPartition
    /// The offset supplied by `startingOffsets`, or nil when the group's committed offset
    /// (else `auto.offset.reset`) decides.
    public var startingOffset: Int64?

    public init(topicPartition: KafkaTopicPartition, startingOffset: Int64?) {
        self.topicPartition = topicPartition
        self.startingOffset = startingOffset
    }
}

/// What the consumer's event sequence yields.
public enum KafkaConsumerEvent: Hashable, Sendable {
    case message(KafkaMessage)
    /// Partitions were added to this consumer (all of its partitions under eager protocols).
    case partitionsAssigned([KafkaPartitionAssignment])
    /// Partitions were taken away. Messages of theirs still buffered were dropped (their offsets
    /// were not committed, so the next owner reads them), and the event comes after the
    /// `partitionsRevoked` hook returned and after every message of those partitions.
    /// `lost` means the group moved on without us (session timeout): their offsets can no longer be committed.
    case partitionsRevoked([KafkaTopicPartition], lost: Bool)
}

/// How a consumer group spreads partitions over its members.
public enum KafkaAssignmentStrategy: String, Sendable, CaseIterable {
    /// Incremental rebalancing: members keep partitions that don't move.
    case cooperativeSticky = "cooperative-sticky"
    /// Eager rebalancing: every member gives up everything, then gets a new set.
    case range
    case roundRobin = "roundrobin"
}

/// Consumer position and lag of one partition.
public struct KafkaPartitionLag: Hashable, Sendable {
    public var topicPartition: KafkaTopicPartition
    public var lowWatermark: Int64
    public var highWatermark: Int64
    /// The group's committed offset, nil when nothing was committed.
    public var committedOffset: Int64?

    public init(topicPartition: KafkaTopicPartition, lowWatermark: Int64, highWatermark: Int64, committedOffset: Int64?) {
        self.topicPartition = topicPartition
        self.lowWatermark = lowWatermark
        self.highWatermark = highWatermark
        self.committedOffset = committedOffset
    }
    /// Messages not yet committed: high watermark minus the committed offset (or the low watermark).
    public var lag: Int64 { max(0, highWatermark - max(committedOffset ?? lowWatermark, lowWatermark)) }
}

/// A message to produce.
public struct KafkaProducerMessage: Hashable, Sendable {
    public var topic: String
    /// nil lets the partitioner choose (by key hash, or spread when there is no key).
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]

    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
    }
}

/// Where the broker stored a produced message.
public struct KafkaDeliveryReport: Hashable, Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
}

/// A topic to create.
public struct KafkaTopicSpecification: Hashable, Sendable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int

    public init(name: String, partitions: Int, replicationFactor: Int = 1) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
    }
}
