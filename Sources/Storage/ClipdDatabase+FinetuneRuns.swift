import CLIP
import Foundation
import Pipeline
import Postgres
import Training
import ZeroShot

/// `finetune_runs` (scheduling, claiming, progress and outcomes of fine-tune runs) and what the
/// job reads and writes elsewhere: pairs from `records`, promoted versions in `model_versions`.
extension ClipdDatabase {
    /// A claimed run.
    public struct FinetuneRun: Sendable, Equatable {
        public var id: Int64
        public var baseModelVersionID: Int64?
        /// The run's parameters as JSON text.
        public var parametersJSON: String
    }

    /// Inserts a run (NOTIFY clipd_finetune_runs); `at` is any timestamp PostgreSQL reads (default now).
    public func scheduleFinetuneRun(parametersJSON: String = "{}", at: String? = nil,
                                    baseVersionID: Int64? = nil) async throws -> (id: Int64, scheduledAt: String) {
        let row = try await connection.query("""
            INSERT INTO finetune_runs (parameters, base_model_version_id, scheduled_at)
            VALUES (\(PostgresJSON(parametersJSON)), \(baseVersionID), coalesce(\(at)::timestamptz, now()))
            RETURNING id, to_json(scheduled_at)#>>'{}'
            """).first!
        return (try row.decode(Int64.self, at: 0), try row.decode(String.self, at: 1))
    }

    /// Marks the oldest due run as running by `worker` and returns it; concurrent workers never
    /// receive the same run.
    public func claimFinetuneRun(worker: String) async throws -> FinetuneRun? {
        guard let row = try await connection.query("""
            SELECT id, base_model_version_id, parameters FROM clipd_claim_finetune_run(\(worker))
            """).first else { return nil }
        return FinetuneRun(id: try row.decode(Int64.self, at: 0), baseModelVersionID: try row.decode(Int64?.self, at: 1),
                           parametersJSON: try row.decode(String.self, at: 2))
    }

    /// Runs as JSON objects (one per run, newest first), optionally of one status.
    public func finetuneRunsJSON(status: String?, limit: Int) async throws -> [String] {
        try await connection.query("""
            SELECT row_to_json(r)::text FROM (
                SELECT id, status, parameters, base_model_version_id, result_model_version_id, claimed_by,
                       scheduled_at, started_at, finished_at, coalesce(cardinality(loss_curve), 0) AS steps_done,
                       loss_curve, metrics, results, error
                  FROM finetune_runs WHERE \(status)::text IS NULL OR status = \(status)::text
                 ORDER BY id DESC LIMIT \(Int64(limit))) r
            """).map { try $0.decode(String.self, at: 0) }
    }

    /// When the newest run that is already due was scheduled, and how many captioned records arrived since.
    public func finetuneActivitySinceLastRun() async throws -> (lastRun: Date?, newPairs: Int) {
        let row = try await connection.query("""
            WITH last AS (SELECT max(scheduled_at) AS at FROM finetune_runs WHERE scheduled_at <= now())
            SELECT extract(epoch FROM (SELECT at FROM last))::float8,
                   (SELECT count(*) FROM records WHERE caption IS NOT NULL AND btrim(caption) <> ''
                       AND received_at > coalesce((SELECT at FROM last), '-infinity'))
            """).first!
        return (try row.decode(Double?.self, at: 0).map { Date(timeIntervalSince1970: $0) }, try row.decode(Int.self, at: 1))
    }

    /// Seconds until the earliest run scheduled for later becomes due, if any.
    public func secondsUntilNextScheduledRun() async throws -> Double? {
        try await connection.query("""
            SELECT extract(epoch FROM min(scheduled_at) - now())::float8 FROM finetune_runs WHERE status = 'scheduled'
            """).first!.decode(Double?.self, at: 0)
    }

    /// Runs left `running` by a trainer that died: only the lock holder calls this, so none is live.
    public func failAbandonedFinetuneRuns() async throws -> Int {
        try await connection.execute("""
            UPDATE finetune_runs SET status = 'failed', finished_at = now(),
                   error = 'the trainer stopped before the run finished (' || coalesce(claimed_by, '?') || ')'
             WHERE status = 'running'
            """)
    }
}

/// The fine-tune job's store: runs in `finetune_runs`, pairs from `records`, versions in
/// `model_versions` (activation NOTIFYs the daemons).
extension ClipdDatabase: FinetuneRunStore {
    public func baseModel(versionID: Int64?) async throws -> BaseModel {
        let version: ModelVersion
        if let versionID {
            guard let found = try await modelVersion(idOrName: String(versionID)), found.id == versionID else {
                throw TrainingError(.noModel, "model version \(versionID) does not exist")
            }
            version = found
        } else {
            guard let active = try await activeModelVersion() else {
                throw TrainingError(.noModel, "no active model version to fine-tune (clipd model import PATH --name N --activate)")
            }
            version = active
        }
        guard let path = version.checkpointPath else {
            throw TrainingError(.noModel, "model version \(version.id) (\(version.name)) has no checkpoint_uri")
        }
        return BaseModel(version: version.ref, checkpointPath: path)
    }

    public func captionedRecords(limit: Int) async throws -> [CaptionedRecord] {
        try await connection.query("""
            SELECT id, image_url, caption FROM records WHERE caption IS NOT NULL AND btrim(caption) <> ''
             ORDER BY received_at DESC, id LIMIT \(Int64(limit))
            """).map {
            CaptionedRecord(id: try $0.decode(String.self, at: 0), imageURL: try $0.decode(String.self, at: 1), caption: try $0.decode(String.self, at: 2))
        }
    }

    public func recordStart(runID: Int64, parameters: FinetuneParameters, base: ModelVersionRef) async throws {
        try await connection.query("""
            UPDATE finetune_runs SET parameters = \(PostgresJSON(parameters.json)), base_model_version_id = \(base.id), loss_curve = '{}'
             WHERE id = \(runID)
            """)
    }

    public func recordProgress(runID: Int64, losses: [Float]) async throws {
        try await connection.query("UPDATE finetune_runs SET loss_curve = \(losses) WHERE id = \(runID)")
    }

    /// Registers the checkpoint as a version, activates it and links it to the run, in one transaction.
    public func promote(runID: Int64, name: String, parent: ModelVersionRef, checkpointPath: String, config: CLIPConfig,
                        metricsJSON: String) async throws -> ModelVersionRef {
        let id = try await connection.withTransaction { transaction in
            let id = try await Self.registerModelVersion(name: name, architecture: Self.architecture(of: config), embeddingDimension: config.embedDim,
                                                         parentID: parent.id, checkpointURI: checkpointPath, metricsJSON: metricsJSON) {
                try await transaction.query($0)
            }
            try await transaction.query("SELECT clipd_activate_model_version(\(id))")
            try await transaction.query("UPDATE finetune_runs SET result_model_version_id = \(id) WHERE id = \(runID)")
            return id
        }
        return ModelVersionRef(id: id, name: name)
    }

    public func finish(runID: Int64, outcome: FinetuneOutcome) async throws {
        try await connection.query("""
            UPDATE finetune_runs SET status = \(outcome.status.rawValue), finished_at = now(),
                   interrupted_at_step = CASE WHEN \(outcome.status.rawValue) = 'interrupted' THEN \(outcome.lossCurve.count) END,
                   result_model_version_id = \(outcome.resultVersion?.id), loss_curve = \(outcome.lossCurve),
                   metrics = \(outcome.metricsJSON.map(PostgresJSON.init)), results = \(outcome.resultsJSON.map(PostgresJSON.init)),
                   error = \(outcome.error)
             WHERE id = \(runID)
            """)
    }
}
