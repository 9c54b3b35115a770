import CRdKafka

/// librdkafka's mock cluster: real Kafka protocol on 127.0.0.1 ports chosen by the system.
/// It lives inside a producer handle of its own, which must outlive it.
final class RDKafkaMockCluster: @unchecked Sendable {
    private let owner: RDKafkaClient
    private let cluster: OpaquePointer
    let bootstrapServers: String

    init(brokerCount: Int, owner: RDKafkaClient) throws(KafkaError) {
        guard let cluster = owner.withHandle({ rd_kafka_mock_cluster_new($0, Int32(brokerCount)) }) else {
            throw KafkaError(code: .invalidArgument, codeName: "_INVALID_ARG",
                             message: "could not start a mock cluster with \(brokerCount) brokers", isFatal: false, isRetriable: false)
        }
        self.owner = owner
        self.cluster = cluster
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
    }

    func createTopic(_ name: String, partitions: Int, replicationFactor: Int) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor)),
                             "creating mock topic \(name)")
    }

    func setBrokerDown(_ brokerID: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_broker_set_down(cluster, brokerID), "taking mock broker \(brokerID) down")
    }

    func setBrokerUp(_ brokerID: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_broker_set_up(cluster, brokerID), "bringing mock broker \(brokerID) up")
    }

    func setPartitionLeader(_ partition: KafkaTopicPartition, brokerID: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_partition_set_leader(cluster, partition.topic, partition.partition, brokerID),
                             "moving the leader of \(partition)")
    }

    func setCoordinator(group: String, brokerID: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_coordinator_set(cluster, "group", group, brokerID), "moving the coordinator of \(group)")
    }

    func pushRequestErrors(apiKey: Int16, codes: [KafkaError.Code]) {
        var errors = codes.map { rd_kafka_resp_err_t(rawValue: $0.rawValue) }
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, errors.count, &errors)
    }

    func clearRequestErrors(apiKey: Int16) {
        rd_kafka_mock_clear_request_errors(cluster, apiKey)
    }
}

extension RDKafkaClient {
    fileprivate func withHandle<T>(_ body: (OpaquePointer) -> T) -> T { body(rawHandle) }
}
