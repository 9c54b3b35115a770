/// The one error type of the Kafka module: what failed, librdkafka's code, and whether retrying helps.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's error code (`rd_kafka_resp_err_t`): negative values are client-side,
    /// positive values are Kafka protocol errors.
    public struct Code: RawRepresentable, Hashable, Sendable {
        public var rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        public static let noError = Code(rawValue: 0)
        public static let badMessage = Code(rawValue: -199)
        public static let destroyed = Code(rawValue: -197)
        public static let transport = Code(rawValue: -195)
        public static let allBrokersDown = Code(rawValue: -187)
        public static let invalidArgument = Code(rawValue: -186)
        public static let timedOut = Code(rawValue: -185)
        public static let queueFull = Code(rawValue: -184)
        public static let unknownTopic = Code(rawValue: -188)
        public static let unknownPartition = Code(rawValue: -190)
        public static let messageTimedOut = Code(rawValue: -192)
        public static let state = Code(rawValue: -172)
        public static let fatal = Code(rawValue: -150)
        public static let notImplemented = Code(rawValue: -170)
        public static let unknownTopicOrPartition = Code(rawValue: 3)
        public static let leaderNotAvailable = Code(rawValue: 5)
        public static let notLeaderForPartition = Code(rawValue: 6)
        public static let requestTimedOut = Code(rawValue: 7)
        public static let notCoordinator = Code(rawValue: 16)
        public static let notEnoughReplicas = Code(rawValue: 19)
        public static let illegalGeneration = Code(rawValue: 22)
        public static let unknownMemberID = Code(rawValue: 25)
        public static let rebalanceInProgress = Code(rawValue: 27)
        public static let topicAlreadyExists = Code(rawValue: 36)
    }

    public var code: Code
    /// librdkafka's symbolic name of the code, e.g. `_TRANSPORT` or `NOT_LEADER_FOR_PARTITION`.
    public var codeName: String
    /// What was being done and what went wrong.
    public var message: String
    /// The client instance cannot be used any more and must be recreated.
    public var isFatal: Bool
    /// The same operation may succeed if tried again later.
    public var isRetriable: Bool

    public init(code: Code, codeName: String, message: String, isFatal: Bool, isRetriable: Bool) {
        self.code = code
        self.codeName = codeName
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable
    }

    public var description: String {
        var text = "Kafka error \(codeName) (\(code.rawValue)): \(message)"
        if isFatal { text += " [fatal]" } else if isRetriable { text += " [retriable]" }
        return text
    }
}
