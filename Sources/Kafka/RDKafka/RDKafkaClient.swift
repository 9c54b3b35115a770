import Executors
import CRdKafka
import Foundation
import Logging

// The seam: every librdkafka call of the module lives in this folder. Nothing here is public;
// callers see Swift values (KafkaTopicPartition, KafkaMessage, KafkaError) only.

/// A rebalance as librdkafka reports it in the rebalance callback.
enum RDKafkaRebalance {
    case assign([KafkaTopicPartition])
    case revoke([KafkaTopicPartition], lost: Bool)
}

/// What a consumer poll returned.
enum RDKafkaPollResult {
    case message(KafkaMessage)
    /// A consumer error that does not stop consumption (e.g. a broker went away).
    case error(KafkaError)
}

/// State the C callbacks reach through librdkafka's opaque pointer. It is retained for as long
/// as the `rd_kafka_t` handle lives and released only after `rd_kafka_destroy` has returned.
final class RDKafkaCallbackContext: @unchecked Sendable {
    let logger: Logger
    let onStatistics: (@Sendable (KafkaStatistics) -> Void)?
    let onDelivery: (@Sendable (UInt64, Result<KafkaDeliveryReport, KafkaError>) -> Void)?
    /// Runs on the consumer's poll thread inside `rd_kafka_consumer_poll`; it must call
    /// `assign`/`unassign` on the given `RDKafkaAssignor` before returning.
    let onRebalance: (@Sendable (RDKafkaRebalance, RDKafkaAssignor) -> Void)?
    let onFatalError: (@Sendable (KafkaError) -> Void)?

    init(
        logger: Logger,
        onStatistics: (@Sendable (KafkaStatistics) -> Void)? = nil,
        onDelivery: (@Sendable (UInt64, Result<KafkaDeliveryReport, KafkaError>) -> Void)? = nil,
        onRebalance: (@Sendable (RDKafkaRebalance, RDKafkaAssignor) -> Void)? = nil,
        onFatalError: (@Sendable (KafkaError) -> Void)? = nil
    ) {
        self.logger = logger
        self.onStatistics = onStatistics
        self.onDelivery = onDelivery
        self.onRebalance = onRebalance
        self.onFatalError = onFatalError
    }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> RDKafkaCallbackContext? {
        guard let opaque else { return nil }
        return Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
    }
}

/// Performs the assignment half of a rebalance, the right way for the group's protocol:
/// incremental for COOPERATIVE, whole-assignment replacement for EAGER.
struct RDKafkaAssignor {
    fileprivate let handle: OpaquePointer
    let isCooperative: Bool

    /// Adds the partitions, each starting at its given offset or, when nil, at the committed offset.
    func assign(_ partitions: [(KafkaTopicPartition, Int64?)]) throws(KafkaError) {
        let list = RDKafkaPartitionList(partitions.map { ($0.0, $0.1 ?? RDKafkaOffset.invalid) })
        defer { list.destroy() }
        if isCooperative {
            try RDKafkaClient.check(rd_kafka_incremental_assign(handle, list.pointer), "incremental assign")
        } else {
            try KafkaError.check(rd_kafka_assign(handle, list.pointer), "assign")
        }
    }

    func unassign(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        if isCooperative {
            let list = RDKafkaPartitionList(partitions.map { ($0, RDKafkaOffset.invalid) })
            defer { list.destroy() }
            try RDKafkaClient.check(rd_kafka_incremental_unassign(handle, list.pointer), "incremental unassign")
        } else {
            try KafkaError.check(rd_kafka_assign(handle, nil), "unassign")
        }
    }

    func pause(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        guard !partitions.isEmpty else { return }
        let list = RDKafkaPartitionList(partitions.map { ($0, RDKafkaOffset.invalid) })
        defer { list.destroy() }
        try KafkaError.check(rd_kafka_pause_partitions(handle, list.pointer), "pause")
    }
}

enum RDKafkaOffset {
    /// librdkafka's RD_KAFKA_OFFSET_INVALID: "use the committed offset" / "nothing committed".
    static let invalid: Int64 = -1001
}

/// An owned `rd_kafka_topic_partition_list_t`.
struct RDKafkaPartitionList {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ entries: [(KafkaTopicPartition, Int64)]) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(entries.count, 1)))
        for (topicPartition, offset) in entries {
            let element = rd_kafka_topic_partition_list_add(pointer, topicPartition.topic, topicPartition.partition)
            element?.pointee.offset = offset
        }
    }

    func destroy() { rd_kafka_topic_partition_list_destroy(pointer) }

    static func read(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [(KafkaTopicPartition, offset: Int64, error: Int32)] {
        guard let list, let elements = list.pointee.elems else { return [] }
        return (0..<Int(list.pointee.cnt)).map { index in
            let element = elements[index]
            return (KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition),
                    element.offset, element.err.rawValue)
        }
    }
}

/// One librdkafka client instance (`rd_kafka_t`), producer or consumer.
final class RDKafkaClient: @unchecked Sendable {
    enum Kind { case producer, consumer }

    private let handle: OpaquePointer
    private let context: Unmanaged<RDKafkaCallbackContext>
    /// Topic handles for producing, created on first use and destroyed before the client.
    private let topicHandles = Locked<[String: OpaquePointer]>([:])
    let kind: Kind
    /// For the mock cluster in this folder, which must live inside a handle.
    var rawHandle: OpaquePointer { handle }

    init(kind: Kind, properties: [String: String], context: RDKafkaCallbackContext) throws(KafkaError) {
        let configuration = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(configuration, key, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(configuration)
                throw KafkaError(code: .invalidArgument, codeName: "_INVALID_ARG",
                                 message: "configuration \(key)=\(value): \(textUpToNUL(errorText))",
                                 isFatal: false, isRetriable: false)
            }
        }
        let retained = Unmanaged.passRetained(context)
        rd_kafka_conf_set_opaque(configuration, retained.toOpaque())
        Self.installCallbacks(configuration, kind: kind, context: context)
        guard let handle = rd_kafka_new(kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER,
                                        configuration, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(configuration)
            retained.release()
            throw KafkaError(code: .invalidArgument, codeName: "_INVALID_ARG",
                             message: "creating the \(kind) failed: \(textUpToNUL(errorText))",
                             isFatal: false, isRetriable: false)
        }
        self.handle = handle
        self.context = retained
        self.kind = kind
        if kind == .consumer {
            // Logs, statistics and errors are then served by rd_kafka_consumer_poll on our poll thread.
            rd_kafka_poll_set_consumer(handle)
        }
    }

    deinit {
        let topics = topicHandles.withLock { $0.values.map(SendableHandle.init(pointer:)) }
        let handle = SendableHandle(pointer: handle)
        let context = context
        // rd_kafka_destroy may block (a consumer leaves its group); the last reference can be
        // dropped anywhere, including on the cooperative pool, so the destruction moves off it.
        Self.destroyQueue.async {
            for topic in topics { rd_kafka_topic_destroy(topic.pointer) }
            rd_kafka_destroy(handle.pointer)
            context.release()
        }
    }

    private static let destroyQueue = DispatchQueue(label: "clipd.kafka.destroy")

    private struct SendableHandle: @unchecked Sendable { let pointer: OpaquePointer }

    private static func installCallbacks(_ configuration: OpaquePointer, kind: Kind, context: RDKafkaCallbackContext) {
        rd_kafka_conf_set_log_cb(configuration) { rk, level, facility, text in
            guard let rk, let context = RDKafkaCallbackContext.from(rd_kafka_opaque(rk)) else { return }
            let message = text.map { String(cString: $0) } ?? ""
            let facilityName = facility.map { String(cString: $0) } ?? ""
            context.logger.log(level: Logger.Level(syslogLevel: level), "\(message)",
                               metadata: ["kafka.facility": "\(facilityName)"], source: "librdkafka")
        }
        rd_kafka_conf_set_error_cb(configuration) { rk, code, reason, opaque in
            guard let context = RDKafkaCallbackContext.from(opaque) else { return }
            let reasonText = reason.map { String(cString: $0) } ?? ""
            if code == RD_KAFKA_RESP_ERR__FATAL.rawValue, let rk {
                var text = [CChar](repeating: 0, count: 512)
                let underlying = rd_kafka_fatal_error(rk, &text, text.count)
                let error = KafkaError(code: KafkaError.Code(rawValue: underlying.rawValue),
                                       codeName: String(cString: rd_kafka_err2name(underlying)),
                                       message: textUpToNUL(text), isFatal: true, isRetriable: false)
                context.logger.critical("fatal Kafka error: \(error)")
                context.onFatalError?(error)
            } else {
                // librdkafka recovers from these by itself (reconnects, retries); they are for operators.
                context.logger.warning("Kafka client error: \(String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: code)))): \(reasonText)")
            }
        }
        if context.onStatistics != nil {
            rd_kafka_conf_set_stats_cb(configuration) { _, json, length, opaque in
                guard let context = RDKafkaCallbackContext.from(opaque), let json else { return 0 }
                let bytes = [UInt8](UnsafeRawBufferPointer(start: json, count: length))
                if let statistics = KafkaStatistics(json: bytes) { context.onStatistics?(statistics) }
                return 0  // librdkafka frees the JSON
            }
        }
        if kind == .producer {
            rd_kafka_conf_set_dr_msg_cb(configuration) { _, message, opaque in
                guard let context = RDKafkaCallbackContext.from(opaque), let message else { return }
                let id = UInt64(UInt(bitPattern: message.pointee._private))
                let code = message.pointee.err
                let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
                if code == RD_KAFKA_RESP_ERR_NO_ERROR {
                    context.onDelivery?(id, .success(KafkaDeliveryReport(
                        topic: topic, partition: message.pointee.partition, offset: message.pointee.offset)))
                } else {
                    context.onDelivery?(id, .failure(KafkaError(code, "delivering to \(topic)")))
                }
            }
        }
        if kind == .consumer {
            rd_kafka_conf_set_rebalance_cb(configuration) { rk, code, partitions, opaque in
                guard let rk, let context = RDKafkaCallbackContext.from(opaque) else { return }
                let protocolName = rd_kafka_rebalance_protocol(rk).map { String(cString: $0) } ?? ""
                let assignor = RDKafkaAssignor(handle: rk, isCooperative: protocolName == "COOPERATIVE")
                let topicPartitions = RDKafkaPartitionList.read(partitions).map(\.0)
                let event: RDKafkaRebalance
                switch code {
                case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
                    event = .assign(topicPartitions)
                case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
                    event = .revoke(topicPartitions, lost: rd_kafka_assignment_lost(rk) != 0)
                default:
                    context.logger.warning("rebalance failed: \(String(cString: rd_kafka_err2str(code))); dropping the assignment")
                    event = .revoke(topicPartitions, lost: true)
                }
                if let onRebalance = context.onRebalance {
                    onRebalance(event, assignor)
                } else {
                    switch event {
                    case .assign(let partitions): try? assignor.assign(partitions.map { ($0, nil) })
                    case .revoke(let partitions, _): try? assignor.unassign(partitions)
                    }
                }
            }
            rd_kafka_conf_set_offset_commit_cb(configuration) { _, code, offsets, opaque in
                guard let context = RDKafkaCallbackContext.from(opaque) else { return }
                if code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR__NO_OFFSET {
                    let partitions = RDKafkaPartitionList.read(offsets).map { "\($0.0)@\($0.offset)" }
                    context.logger.notice("offset commit failed: \(String(cString: rd_kafka_err2str(code))) for \(partitions)")
                }
            }
        }
    }

    static func check(_ error: OpaquePointer?, _ action: String) throws(KafkaError) {
        guard let error else { return }
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        throw KafkaError(code: KafkaError.Code(rawValue: code.rawValue), codeName: String(cString: rd_kafka_error_name(error)),
                         message: "\(action): \(String(cString: rd_kafka_error_string(error)))",
                         isFatal: rd_kafka_error_is_fatal(error) != 0, isRetriable: rd_kafka_error_is_retriable(error) != 0)
    }

    // MARK: Consumer

    func subscribe(topics: [String]) throws(KafkaError) {
        let list = RDKafkaPartitionList(topics.map { (KafkaTopicPartition(topic: $0, partition: -1), RDKafkaOffset.invalid) })
        defer { list.destroy() }
        try KafkaError.check(rd_kafka_subscribe(handle, list.pointer), "subscribing to \(topics)")
    }

    /// Blocks up to `timeoutMilliseconds`; serves rebalance, log and statistics callbacks meanwhile.
    /// Call only from a thread we own.
    func consumerPoll(timeoutMilliseconds: Int32) -> RDKafkaPollResult? {
        guard let message = rd_kafka_consumer_poll(handle, timeoutMilliseconds) else { return nil }
        defer { rd_kafka_message_destroy(message) }
        let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let detail = message.pointee.payload.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
            return .error(KafkaError(message.pointee.err, "consuming \(topic)/\(message.pointee.partition)" + (detail.map { ": \($0)" } ?? "")))
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        return .message(KafkaMessage(
            topic: topic, partition: message.pointee.partition, offset: message.pointee.offset,
            key: Self.copyBytes(message.pointee.key, message.pointee.key_len),
            value: Self.copyBytes(message.pointee.payload, message.pointee.len) ?? [],
            timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp))
    }

    private static func copyBytes(_ pointer: UnsafeMutableRawPointer?, _ count: Int) -> [UInt8]? {
        guard let pointer else { return nil }
        return [UInt8](UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Leaves the group (running the final revocation through the rebalance callback). Blocking.
    func closeConsumer() throws(KafkaError) {
        try KafkaError.check(rd_kafka_consumer_close(handle), "closing the consumer")
    }

    /// Commits `offsets` (each the next offset to consume). Blocking unless `asynchronously`.
    func commit(_ offsets: [KafkaTopicPartition: Int64], asynchronously: Bool) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = RDKafkaPartitionList(offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        defer { list.destroy() }
        try KafkaError.check(rd_kafka_commit(handle, list.pointer, asynchronously ? 1 : 0), "committing offsets")
        if !asynchronously {
            for entry in RDKafkaPartitionList.read(list.pointer) where entry.error != 0 {
                throw KafkaError(rd_kafka_resp_err_t(entry.error), "committing \(entry.0)")
            }
        }
    }

    /// The group's committed offsets (nil: nothing committed). Blocking.
    func committedOffsets(_ partitions: [KafkaTopicPartition], timeoutMilliseconds: Int32) throws(KafkaError) -> [KafkaTopicPartition: Int64?] {
        let list = RDKafkaPartitionList(partitions.map { ($0, RDKafkaOffset.invalid) })
        defer { list.destroy() }
        try KafkaError.check(rd_kafka_committed(handle, list.pointer, timeoutMilliseconds), "reading committed offsets")
        var result: [KafkaTopicPartition: Int64?] = [:]
        for entry in RDKafkaPartitionList.read(list.pointer) {
            result[entry.0] = entry.offset >= 0 ? entry.offset : nil
        }
        return result
    }

    /// Low and high watermarks from the partition leader. Blocking.
    func watermarks(_ partition: KafkaTopicPartition, timeoutMilliseconds: Int32) throws(KafkaError) -> (low: Int64, high: Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        try KafkaError.check(rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high, timeoutMilliseconds),
                             "querying watermarks of \(partition)")
        return (low, high)
    }

    func assignment() throws(KafkaError) -> [KafkaTopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        try KafkaError.check(rd_kafka_assignment(handle, &list), "reading the assignment")
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        return RDKafkaPartitionList.read(list).map(\.0)
    }

    func pause(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        try RDKafkaAssignor(handle: handle, isCooperative: false).pause(partitions)
    }

    func resume(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        guard !partitions.isEmpty else { return }
        let list = RDKafkaPartitionList(partitions.map { ($0, RDKafkaOffset.invalid) })
        defer { list.destroy() }
        try KafkaError.check(rd_kafka_resume_partitions(handle, list.pointer), "resume")
    }

    /// Moves the fetch position of assigned partitions. Blocking up to the timeout.
    func seek(_ offsets: [KafkaTopicPartition: Int64], timeoutMilliseconds: Int32) throws(KafkaError) {
        let list = RDKafkaPartitionList(offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        defer { list.destroy() }
        try Self.check(rd_kafka_seek_partitions(handle, list.pointer, timeoutMilliseconds), "seek")
        for entry in RDKafkaPartitionList.read(list.pointer) where entry.error != 0 {
            throw KafkaError(rd_kafka_resp_err_t(entry.error), "seeking \(entry.0)")
        }
    }

    // MARK: Producer

    /// Enqueues a copy of the message; the delivery callback later reports `id`. Never blocks.
    func produce(_ message: KafkaProducerMessage, id: UInt64) throws(KafkaError) {
        let topic = topicHandle(message.topic)
        let opaque = UnsafeMutableRawPointer(bitPattern: UInt(id))
        let result = message.value.withUnsafeBytes { value in
            withOptionalBytes(message.key) { key in
                rd_kafka_produce(topic, message.partition ?? -1, RD_KAFKA_MSG_F_COPY,
                                 UnsafeMutableRawPointer(mutating: value.baseAddress), value.count,
                                 key?.baseAddress, key?.count ?? 0, opaque)
            }
        }
        if result != 0 {
            throw KafkaError(rd_kafka_last_error(), "producing to \(message.topic)")
        }
    }

    private func topicHandle(_ name: String) -> OpaquePointer {
        topicHandles.withLock { handles in
            if let existing = handles[name] { return existing }
            let created = rd_kafka_topic_new(handle, name, nil)!
            handles[name] = created
            return created
        }
    }

    /// Serves delivery reports and statistics. Blocking up to the timeout.
    func poll(timeoutMilliseconds: Int32) {
        rd_kafka_poll(handle, timeoutMilliseconds)
    }

    /// Waits until every queued message is delivered or failed. Blocking.
    func flush(timeoutMilliseconds: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_flush(handle, timeoutMilliseconds), "flushing the producer")
    }

    var queuedMessageCount: Int { Int(rd_kafka_outq_len(handle)) }

    // MARK: Admin

    /// Creates topics through the cluster's controller. Blocking up to the timeout.
    func createTopics(_ topics: [KafkaTopicSpecification], ignoreExisting: Bool, timeoutMilliseconds: Int32) throws(KafkaError) {
        var errorText = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for topic in newTopics { rd_kafka_NewTopic_destroy(topic) } }
        for topic in topics {
            guard let newTopic = rd_kafka_NewTopic_new(topic.name, Int32(topic.partitions), Int32(topic.replicationFactor),
                                                       &errorText, errorText.count) else {
                throw KafkaError(code: .invalidArgument, codeName: "_INVALID_ARG",
                                 message: "topic \(topic.name): \(textUpToNUL(errorText))", isFatal: false, isRetriable: false)
            }
            newTopics.append(newTopic)
        }
        let options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMilliseconds, &errorText, errorText.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMilliseconds, &errorText, errorText.count)
        let queue = rd_kafka_queue_new(handle)
        defer { rd_kafka_queue_destroy(queue) }
        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(handle, buffer.baseAddress, buffer.count, options, queue)
        }
        // The request timeout bounds the operation; the margin covers librdkafka's own scheduling.
        guard let event = rd_kafka_queue_poll(queue, timeoutMilliseconds + 2000) else {
            throw KafkaError(code: .timedOut, codeName: "_TIMED_OUT",
                             message: "creating topics: no answer from the cluster controller", isFatal: false, isRetriable: true)
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(eventError, "creating topics: \(String(cString: rd_kafka_event_error_string(event)))")
        }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count) else { return }
        for index in 0..<count {
            let code = rd_kafka_topic_result_error(results[index])
            if code == RD_KAFKA_RESP_ERR_NO_ERROR || (ignoreExisting && code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) { continue }
            let name = String(cString: rd_kafka_topic_result_name(results[index]))
            let detail = rd_kafka_topic_result_error_string(results[index]).map { String(cString: $0) } ?? ""
            throw KafkaError(code, "creating topic \(name): \(detail)")
        }
    }
}

/// A C error buffer filled by librdkafka, as text.
private func textUpToNUL(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

extension KafkaError {
    /// An error from a librdkafka response code, classified by what retrying can do.
    private static let retriableCodes: Set<Int32> = [
            RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TIMED_OUT,
            RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE,
            RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__IN_PROGRESS, RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS,
            RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR__NODE_UPDATE,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
            RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND, RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED,
        ].reduce(into: []) { $0.insert($1.rawValue) }

    init(_ code: rd_kafka_resp_err_t, _ action: String) {
        self.init(code: Code(rawValue: code.rawValue), codeName: String(cString: rd_kafka_err2name(code)),
                  message: "\(action): \(String(cString: rd_kafka_err2str(code)))",
                  isFatal: code == RD_KAFKA_RESP_ERR__FATAL, isRetriable: Self.retriableCodes.contains(code.rawValue))
    }

    static func check(_ code: rd_kafka_resp_err_t, _ action: String) throws(KafkaError) {
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code, action) }
    }
}

extension Logger.Level {
    /// librdkafka logs with syslog levels (0 emergency … 7 debug).
    init(syslogLevel: Int32) {
        switch syslogLevel {
        case ...2: self = .critical
        case 3: self = .error
        case 4: self = .warning
        case 5, 6: self = .info
        default: self = .debug
        }
    }
}
