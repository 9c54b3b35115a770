import Logging

/// Cluster administration: creating topics.
public struct KafkaAdmin: Sendable {
    public var bootstrapServers: String
    public var logger: Logger

    public init(bootstrapServers: String, logger: Logger) {
        self.bootstrapServers = bootstrapServers
        self.logger = logger
    }

    /// Creates the topics through the cluster controller; existing ones are left as they are
    /// unless `ignoreExisting` is false. librdkafka 2.0.2's mock cluster has no controller and
    /// cannot create topics this way: use `KafkaMockCluster.createTopic` (or `clipd dev-broker --topic`).
    public func createTopics(_ topics: [KafkaTopicSpecification], ignoreExisting: Bool = true,
                             timeout: Duration = .seconds(30)) async throws {
        guard !topics.isEmpty else { return }
        let properties = ["bootstrap.servers": bootstrapServers, "client.id": "clipd-admin"]
        let context = RDKafkaCallbackContext(logger: logger)
        try await BlockingCall.run {
            let client = try RDKafkaClient(kind: .producer, properties: properties, context: context)
            try client.createTopics(topics, ignoreExisting: ignoreExisting, timeoutMilliseconds: Int32(timeout.milliseconds))
        }
    }
}
