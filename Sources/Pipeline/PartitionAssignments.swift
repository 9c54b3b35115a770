import Foundation
import Logging

/// What the consumer's rebalance hooks do, built before both the consumer and the pipeline (the
/// consumer calls it, the pipeline shares its `tracker`): on assignment, the offsets stored in
/// PostgreSQL are where consumption resumes; on revocation, in-flight work of those partitions
/// may still be written (rows are idempotent) but their offsets are no longer ours to store.
public struct PartitionAssignments: Sendable {
    public let store: PipelineStore
    public let group: String
    public let tracker: OffsetTracker
    public let logger: Logger

    public init(store: PipelineStore, group: String, tracker: OffsetTracker, logger: Logger) {
        self.store = store
        self.group = group
        self.tracker = tracker
        self.logger = logger
    }

    /// Stored next offsets of newly assigned partitions. PostgreSQL being down makes the
    /// consumer wait (the rebalance waits for this hook), retrying with backoff; after
    /// `attempts` the partitions resume from the group's committed offsets, which never run
    /// ahead of PostgreSQL's (records may be reprocessed, never lost).
    public func assigned(_ partitions: [TopicPartition], attempts: Int = 8) async -> [TopicPartition: Int64] {
        for attempt in 1...max(1, attempts) {
            do {
                let stored = try await store.storedOffsets(group: group, partitions: partitions)
                for tp in partitions { tracker.assign(tp, next: stored[tp] ?? OffsetTracker.unknown) }
                logger.info("partitions assigned", metadata: ["partitions": "\(partitions.map(\.description))",
                                                              "stored_offsets": "\(stored.map { "\($0.key)=\($0.value)" }.sorted())"])
                return stored
            } catch {
                logger.warning("reading stored offsets failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250 * (1 << min(attempt, 5))))
            }
        }
        for tp in partitions { tracker.assign(tp, next: OffsetTracker.unknown) }
        logger.error("stored offsets unavailable; resuming from the group's committed offsets (records may be reprocessed, never lost)")
        return [:]
    }

    public func revoked(_ partitions: [TopicPartition]) {
        for tp in partitions { tracker.revoke(tp) }
        logger.info("partitions revoked", metadata: ["partitions": "\(partitions.map(\.description))"])
    }
}
