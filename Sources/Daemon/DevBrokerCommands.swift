import Foundation
import Kafka

/// The fault-injection commands of `clipd dev-broker --stdin-commands`, one per line:
/// `broker-down ID`, `broker-up ID`, `leader TOPIC PARTITION ID`,
/// `request-errors REQUEST CODE[,CODE…]`, `create-topic NAME PARTITIONS [REPLICATION]`.
public enum DevBrokerCommands {
    public struct CommandError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func perform(_ line: String, on cluster: KafkaMockCluster) throws {
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
