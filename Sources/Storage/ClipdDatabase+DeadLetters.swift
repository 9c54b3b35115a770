import Foundation
import Postgres

/// `failed_records` for dead-letter redrive (`clipd dlq list|replay`): which dead letters are
/// there, and marking the ones that were republished.
extension ClipdDatabase {
    /// One dead letter as stored, with the exact key and payload of the original message.
    public struct DeadLetter: Sendable, Equatable {
        public var id: Int64
        public var recordID: String?
        public var sourceTopic: String?
        public var sourcePartition: Int32?
        public var sourceOffset: Int64?
        public var errorClass: String
        public var errorMessage: String
        /// When it failed, as ISO 8601 text.
        public var failedAt: String
        public var replayedAt: String?
        public var replayCount: Int
        public var key: [UInt8]?
        public var payload: [UInt8]?
    }

    /// Which dead letters a listing or a replay takes.
    public struct DeadLetterFilter: Sendable, Equatable {
        /// An error class (`fetch.timeout`), or a stage prefix ending in a dot (`fetch.`).
        public var errorClass: String?
        /// Only dead letters that failed at or after this time (any timestamp PostgreSQL reads).
        public var since: String?
        /// Also the ones already replayed.
        public var includeReplayed = false
        public var limit = 1000
        /// Dead letters to leave out (a replay's own skipped ones).
        public var excludedIDs: [Int64] = []

        public init(errorClass: String? = nil, since: String? = nil, includeReplayed: Bool = false, limit: Int = 1000) {
            self.errorClass = errorClass
            self.since = since
            self.includeReplayed = includeReplayed
            self.limit = limit
        }
    }

    private static let deadLetterColumns: PostgresQuery = """
        id, record_id, source_topic, source_partition, source_offset, error_class, error_message,
        to_json(failed_at)#>>'{}', to_json(replayed_at)#>>'{}', replay_count, raw_key, raw_payload
        """

    private static func filterClause(_ f: DeadLetterFilter) -> PostgresQuery {
        """
        (\(f.errorClass)::text IS NULL OR error_class = \(f.errorClass)::text
         OR (right(\(f.errorClass)::text, 1) = '.' AND starts_with(error_class, \(f.errorClass)::text)))
        AND (\(f.since)::timestamptz IS NULL OR failed_at >= \(f.since)::timestamptz)
        AND (\(f.includeReplayed) OR replayed_at IS NULL)
        AND NOT (id = ANY(\(f.excludedIDs.map { Int($0) })))
        """
    }

    private static func deadLetter(_ row: PostgresRow) throws -> DeadLetter {
        DeadLetter(id: try row.decode(Int64.self, at: 0), recordID: try row.decode(String?.self, at: 1),
                   sourceTopic: try row.decode(String?.self, at: 2), sourcePartition: try row.decode(Int32?.self, at: 3),
                   sourceOffset: try row.decode(Int64?.self, at: 4), errorClass: try row.decode(String.self, at: 5),
                   errorMessage: try row.decode(String.self, at: 6), failedAt: try row.decode(String.self, at: 7),
                   replayedAt: try row.decode(String?.self, at: 8), replayCount: try row.decode(Int.self, at: 9),
                   key: try row.decode(PostgresBytes?.self, at: 10)?.bytes, payload: try row.decode(PostgresBytes?.self, at: 11)?.bytes)
    }

    /// Dead letters, oldest first.
    public func deadLetters(_ filter: DeadLetterFilter) async throws -> [DeadLetter] {
        try await connection.query("""
            SELECT \(fragment: Self.deadLetterColumns) FROM failed_records
             WHERE \(fragment: Self.filterClause(filter)) ORDER BY failed_at, id LIMIT \(Int64(filter.limit))
            """).map(Self.deadLetter)
    }

    /// Replays a chunk of pending dead letters: in one transaction, locks up to `filter.limit` of
    /// them (skipping rows another replay holds), hands them to `publish` — which returns the ids
    /// it delivered, or throws — and marks those replayed; returns the chunk and the delivered ids. A failure or a crash before the
    /// commit leaves them pending, so they are sent again by the next replay (at least once; the
    /// daemon upserts by record id, so a record is still written once).
    public func replayDeadLetters(_ filter: DeadLetterFilter,
                                  publish: @Sendable ([DeadLetter]) async throws -> [Int64]) async throws -> (chunk: [DeadLetter], delivered: [Int64]) {
        var pending = filter
        pending.includeReplayed = false
        return try await connection.withTransaction { transaction in
            let letters = try await transaction.query("""
                SELECT \(fragment: Self.deadLetterColumns) FROM failed_records
                 WHERE \(fragment: Self.filterClause(pending)) ORDER BY failed_at, id LIMIT \(Int64(pending.limit)) FOR UPDATE SKIP LOCKED
                """).map(Self.deadLetter)
            guard !letters.isEmpty else { return ([], []) }
            let delivered = try await publish(letters)
            try await transaction.execute("""
                UPDATE failed_records SET replayed_at = now(), replay_count = replay_count + 1 WHERE id = ANY(\(delivered.map { Int($0) }))
                """)
            return (letters, delivered)
        }
    }
}
