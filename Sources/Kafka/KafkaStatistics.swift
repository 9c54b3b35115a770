import Foundation
import Metrics

/// The parts of librdkafka's statistics JSON (`statistics.interval.ms`) that operators watch.
public struct KafkaStatistics: Sendable, Hashable {
    public struct Partition: Sendable, Hashable {
        public var topicPartition: KafkaTopicPartition
        /// Messages between the consumer's position and the high watermark (nil when unknown).
        public var consumerLag: Int64?
        public var committedOffset: Int64?
        public var highWatermark: Int64?
        public var messagesReceived: Int64
        public var messagesSent: Int64
    }

    /// librdkafka's instance name, e.g. `clipd#consumer-1`.
    public var clientName: String
    /// `producer` or `consumer`.
    public var clientType: String
    public var messagesSent: Int64
    public var bytesSent: Int64
    public var messagesReceived: Int64
    public var bytesReceived: Int64
    /// Messages waiting in the producer queue.
    public var queuedMessages: Int64
    public var partitions: [Partition]

    /// Parses the statistics JSON; nil if it is not librdkafka's format.
    public init?(json: [UInt8]) {
        guard let root = (try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any] else { return nil }
        func int(_ dictionary: [String: Any], _ key: String) -> Int64? { (dictionary[key] as? NSNumber)?.int64Value }
        clientName = root["name"] as? String ?? ""
        clientType = root["type"] as? String ?? ""
        messagesSent = int(root, "txmsgs") ?? 0
        bytesSent = int(root, "txmsg_bytes") ?? 0
        messagesReceived = int(root, "rxmsgs") ?? 0
        bytesReceived = int(root, "rxmsg_bytes") ?? 0
        queuedMessages = int(root, "msg_cnt") ?? 0
        var partitions: [Partition] = []
        for (topicName, topicValue) in (root["topics"] as? [String: Any]) ?? [:] {
            guard let topic = topicValue as? [String: Any], let partitionMap = topic["partitions"] as? [String: Any] else { continue }
            for case let partition as [String: Any] in partitionMap.values {
                // Partition -1 is librdkafka's internal "unassigned" queue.
                guard let id = int(partition, "partition"), id >= 0 else { continue }
                func known(_ key: String) -> Int64? { int(partition, key).flatMap { $0 >= 0 ? $0 : nil } }
                partitions.append(Partition(
                    topicPartition: KafkaTopicPartition(topic: topicName, partition: Int32(id)),
                    consumerLag: known("consumer_lag"), committedOffset: known("committed_offset"),
                    highWatermark: known("hi_offset"),
                    messagesReceived: int(partition, "rxmsgs") ?? 0, messagesSent: int(partition, "txmsgs") ?? 0))
            }
        }
        self.partitions = partitions.sorted { $0.topicPartition < $1.topicPartition }
    }

    /// HELP text of every metric `recordMetrics` exports.
    public static let help: [String: String] = [
        "kafka_client_messages_sent": "Messages sent by this librdkafka client since it started.",
        "kafka_client_bytes_sent": "Bytes sent by this librdkafka client since it started.",
        "kafka_client_messages_received": "Messages received by this librdkafka client since it started.",
        "kafka_client_bytes_received": "Bytes received by this librdkafka client since it started.",
        "kafka_client_queued_messages": "Messages waiting in this librdkafka client's queues.",
        "kafka_consumer_lag": "Consumer lag of a partition as librdkafka reports it (messages).",
    ]

    /// Reports these statistics through swift-metrics (whatever backend the executable bootstrapped).
    public func recordMetrics() {
        let client = [("client", clientName)]
        Gauge(label: "kafka_client_messages_sent", dimensions: client).record(messagesSent)
        Gauge(label: "kafka_client_bytes_sent", dimensions: client).record(bytesSent)
        Gauge(label: "kafka_client_messages_received", dimensions: client).record(messagesReceived)
        Gauge(label: "kafka_client_bytes_received", dimensions: client).record(bytesReceived)
        Gauge(label: "kafka_client_queued_messages", dimensions: client).record(queuedMessages)
        for partition in partitions {
            guard let lag = partition.consumerLag else { continue }
            Gauge(label: "kafka_consumer_lag", dimensions: [
                ("topic", partition.topicPartition.topic), ("partition", String(partition.topicPartition.partition)),
            ]).record(lag)
        }
    }
}
