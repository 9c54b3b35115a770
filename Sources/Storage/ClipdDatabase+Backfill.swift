import Foundation
import Postgres

/// Re-embedding on activation (migration 0006): `model_backfills`, `model_backfill_chunks`,
/// `model_backfill_failures`, the search version and retention.
extension ClipdDatabase {
    /// The backfill of the active version that still has work (status `pending` or `running`).
    public struct OpenBackfill: Sendable, Equatable {
        public var modelVersionID: Int64
        public var planned: Bool
        public init(modelVersionID: Int64, planned: Bool) {
            self.modelVersionID = modelVersionID
            self.planned = planned
        }
    }

    /// One claimed chunk: records with `firstID <= id < endID` (nil: unbounded).
    public struct BackfillChunk: Sendable, Equatable {
        public var modelVersionID: Int64
        public var chunk: Int
        public var firstID: String?
        public var endID: String?
    }

    /// A record to re-embed.
    public struct BackfillRecord: Sendable, Equatable {
        public var id: String
        public var imageURL: String
        public var caption: String?
        public var labelSet: String?
    }

    /// A record a backfill could not embed.
    public struct BackfillFailure: Sendable, Equatable {
        public var recordID: String
        public var errorClass: String
        public var message: String
        public init(recordID: String, errorClass: String, message: String) {
            self.recordID = recordID
            self.errorClass = errorClass
            self.message = message
        }
    }

    /// What `clipd_settle_backfill` decided.
    public struct BackfillSettlement: Sendable, Equatable {
        public var status: String
        /// This call made the version the one search answers from.
        public var startedServing: Bool
        public init(status: String, startedServing: Bool) {
            self.status = status
            self.startedServing = startedServing
        }
    }

    /// Coverage of one version's embeddings over the stored records (`clipd model status`).
    public struct VersionCoverage: Sendable, Equatable {
        public var modelVersionID: Int64
        public var name: String
        public var isActive: Bool
        public var isSearchVersion: Bool
        /// Backfill status; nil when the version was never activated since migration 0006.
        public var backfillStatus: String?
        public var embedded: Int64
        public var failed: Int64
        public var total: Int64
        /// Records written by backfill workers, and the seconds between their first and last write.
        public var backfilled: Int64
        public var backfillSeconds: Double?
        public var servingSince: Date?

        public var covered: Int64 { min(embedded + failed, total) }
        public var fraction: Double { total == 0 ? 1 : Double(covered) / Double(total) }
        /// Backfilled records per second (nil before two writes).
        public var rate: Double? {
            guard let seconds = backfillSeconds, seconds > 0, backfilled > 0 else { return nil }
            return Double(backfilled) / seconds
        }
        /// Seconds to full coverage at the current rate (0 when covered; nil when unknown).
        public var etaSeconds: Double? {
            if covered >= total { return 0 }
            guard backfillStatus == "running" || backfillStatus == "pending", let rate else { return nil }
            return Double(total - covered) / rate
        }
    }

    /// The newest open backfill, if any.
    public func openBackfill() async throws -> OpenBackfill? {
        try await connection.query("""
            SELECT model_version_id, planned_at IS NOT NULL FROM model_backfills
             WHERE status IN ('pending', 'running') ORDER BY activated_at DESC, model_version_id DESC LIMIT 1
            """).first.map { OpenBackfill(modelVersionID: try $0.decode(Int64.self, at: 0), planned: try $0.decode(Bool.self, at: 1)) }
    }

    /// Splits the records into chunks (a no-op once planned).
    public func planBackfill(modelVersionID: Int64, chunkSize: Int) async throws {
        try await connection.query("SELECT clipd_plan_backfill(\(modelVersionID), \(Int32(chunkSize)))")
    }

    /// Claims one open chunk (pending, or with a lapsed lease) for `worker`.
    public func claimBackfillChunk(modelVersionID: Int64, worker: String, leaseSeconds: Double) async throws -> BackfillChunk? {
        try await connection.query("""
            SELECT chunk, first_id, end_id FROM clipd_claim_backfill_chunk(\(modelVersionID), \(worker), \(leaseSeconds))
            """).first.map {
            BackfillChunk(modelVersionID: modelVersionID, chunk: try $0.decode(Int.self, at: 0),
                          firstID: try $0.decode(String?.self, at: 1), endID: try $0.decode(String?.self, at: 2))
        }
    }

    /// Extends the lease of a chunk this worker holds; false when it is no longer this worker's.
    public func extendBackfillLease(_ chunk: BackfillChunk, worker: String, leaseSeconds: Double) async throws -> Bool {
        try await connection.execute("""
            UPDATE model_backfill_chunks SET lease_until = clock_timestamp() + \(leaseSeconds) * interval '1 second'
             WHERE model_version_id = \(chunk.modelVersionID) AND chunk = \(Int32(chunk.chunk))
               AND status = 'running' AND claimed_by = \(worker)
            """) == 1
    }

    /// Marks a chunk done (when this worker still holds it).
    public func finishBackfillChunk(_ chunk: BackfillChunk, worker: String) async throws {
        try await connection.execute("""
            UPDATE model_backfill_chunks SET status = 'done', done_at = now(), lease_until = NULL
             WHERE model_version_id = \(chunk.modelVersionID) AND chunk = \(Int32(chunk.chunk))
               AND status = 'running' AND claimed_by = \(worker)
            """)
    }

    /// Hands a chunk back (graceful shutdown), so another worker takes it at once.
    public func releaseBackfillChunk(_ chunk: BackfillChunk, worker: String) async throws {
        try await connection.execute("""
            UPDATE model_backfill_chunks SET status = 'pending', claimed_by = NULL, lease_until = NULL
             WHERE model_version_id = \(chunk.modelVersionID) AND chunk = \(Int32(chunk.chunk))
               AND status = 'running' AND claimed_by = \(worker)
            """)
    }

    /// Up to `limit` records of the chunk, after `after` in id order, that have neither an
    /// embedding of the version nor a backfill failure.
    public func backfillRecords(_ chunk: BackfillChunk, after: String?, limit: Int) async throws -> [BackfillRecord] {
        try await connection.query("""
            SELECT r.id, r.image_url, r.caption, r.label_set FROM records r
             WHERE (\(chunk.firstID)::text IS NULL OR r.id >= \(chunk.firstID))
               AND (\(chunk.endID)::text IS NULL OR r.id < \(chunk.endID))
               AND (\(after)::text IS NULL OR r.id > \(after))
               AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.record_id = r.id AND e.model_version_id = \(chunk.modelVersionID))
               AND NOT EXISTS (SELECT 1 FROM model_backfill_failures f WHERE f.record_id = r.id AND f.model_version_id = \(chunk.modelVersionID))
             ORDER BY r.id LIMIT \(Int32(limit))
            """).map {
            BackfillRecord(id: try $0.decode(String.self, at: 0), imageURL: try $0.decode(String.self, at: 1),
                           caption: try $0.decode(String?.self, at: 2), labelSet: try $0.decode(String?.self, at: 3))
        }
    }

    /// Stores one backfill batch: embeddings upserted by (record, version) and tags replaced per
    /// (record, version, label set) — the same statements as the pipeline's batches — then the
    /// failures and the backfill's counters.
    public func writeBackfill(modelVersionID: Int64, embeddings: [StoredEmbedding], tags: [StoredTag],
                              failures: [BackfillFailure]) async throws {
        if !embeddings.isEmpty {
            try await write(WriteBatch(embeddings: embeddings, tags: tags))
        }
        if !failures.isEmpty {
            try await connection.execute("""
                INSERT INTO model_backfill_failures (record_id, model_version_id, error_class, error_message)
                SELECT f.record_id, \(modelVersionID), f.error_class, f.error_message
                  FROM unnest(\(failures.map(\.recordID)), \(failures.map(\.errorClass)), \(failures.map(\.message))) AS f(record_id, error_class, error_message)
                  JOIN records r ON r.id = f.record_id
                ON CONFLICT (record_id, model_version_id) DO NOTHING
                """)
        }
        let count = Int64(embeddings.count + failures.count)
        guard count > 0 else { return }
        try await connection.execute("""
            UPDATE model_backfills SET backfilled = backfilled + \(count), last_write_at = clock_timestamp(),
                   first_write_at = coalesce(first_write_at, clock_timestamp())
             WHERE model_version_id = \(modelVersionID)
            """)
    }

    /// After a chunk: starts serving search at `threshold` coverage, reopens chunks with
    /// uncovered records, or marks the backfill done (`clipd_settle_backfill`).
    public func settleBackfill(modelVersionID: Int64, threshold: Double) async throws -> BackfillSettlement? {
        try await connection.query("SELECT status, started_serving FROM clipd_settle_backfill(\(modelVersionID), \(threshold))").first.map {
            BackfillSettlement(status: try $0.decode(String.self, at: 0), startedServing: try $0.decode(Bool.self, at: 1))
        }
    }

    /// Removes the embeddings and tags of activated versions outside the `keep` most recent
    /// (never the active or the search version); returns the pruned version ids.
    @discardableResult
    public func pruneModelVersions(keep: Int) async throws -> [Int64] {
        try await connection.query("SELECT clipd_prune_model_versions(\(Int32(keep)))").map { try $0.decode(Int64.self, at: 0) }
    }

    /// The version search answers from: the newest whose coverage reached the threshold, else the active one.
    public func searchModelVersion() async throws -> ModelVersion? {
        guard let id = try await connection.query("SELECT clipd_search_model_version()").first?.decode(Int64?.self, at: 0) else { return nil }
        return try await modelVersion(idOrName: String(id))
    }

    /// Coverage of every version that has embeddings or a backfill, newest first.
    public func versionCoverage() async throws -> [VersionCoverage] {
        try await connection.query("""
            SELECT m.id, m.name, m.is_active, m.id = clipd_search_model_version(), b.status,
                   coalesce(e.n, 0), coalesce(f.n, 0), t.n, coalesce(b.backfilled, 0),
                   extract(epoch FROM b.last_write_at - b.first_write_at)::float8, b.serving_since
              FROM model_versions m
              LEFT JOIN model_backfills b ON b.model_version_id = m.id
              LEFT JOIN (SELECT model_version_id, count(*) AS n FROM embeddings GROUP BY 1) e ON e.model_version_id = m.id
              LEFT JOIN (SELECT model_version_id, count(*) AS n FROM model_backfill_failures GROUP BY 1) f ON f.model_version_id = m.id
              CROSS JOIN (SELECT count(*) AS n FROM records) t
             WHERE b.model_version_id IS NOT NULL OR e.n IS NOT NULL OR m.is_active
             ORDER BY m.id DESC
            """).map {
            VersionCoverage(modelVersionID: try $0.decode(Int64.self, at: 0), name: try $0.decode(String.self, at: 1),
                            isActive: try $0.decode(Bool.self, at: 2), isSearchVersion: try $0.decode(Bool?.self, at: 3) ?? false,
                            backfillStatus: try $0.decode(String?.self, at: 4), embedded: try $0.decode(Int64.self, at: 5),
                            failed: try $0.decode(Int64.self, at: 6), total: try $0.decode(Int64.self, at: 7),
                            backfilled: try $0.decode(Int64.self, at: 8), backfillSeconds: try $0.decode(Double?.self, at: 9),
                            servingSince: try $0.decode(Date?.self, at: 10))
        }
    }
}
