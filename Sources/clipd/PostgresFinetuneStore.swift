import CLIP
import Foundation
import Pipeline
import Postgres

/// The fine-tune job's `FinetuneRunStore` on clipd's tables: runs in `finetune_runs`, pairs from
/// `records`, versions in `model_versions` (activation NOTIFYs the daemons).
struct PostgresFinetuneStore: FinetuneRunStore {
    let database: ClipdDatabase
    var connection: PostgresConnection { database.connection }

    func baseModel(versionID: Int64?) async throws -> BaseModel {
        let row: PostgresRow
        if let versionID {
            guard let found = try await connection.query("""
                SELECT id, name, checkpoint_uri FROM model_versions WHERE id = \(versionID)
                """).first else { throw PipelineFailure("finetune.no_model", "model version \(versionID) does not exist") }
            row = found
        } else {
            guard let found = try await connection.query("""
                SELECT id, name, checkpoint_uri FROM model_versions WHERE is_active
                """).first else {
                throw PipelineFailure("finetune.no_model", "no active model version to fine-tune (clipd model import PATH --name N --activate)")
            }
            row = found
        }
        let version = ModelVersionRef(id: try row.decode(Int64.self, at: 0), name: try row.decode(String.self, at: 1))
        guard let uri = try row.decode(String?.self, at: 2) else {
            throw PipelineFailure("finetune.no_model", "model version \(version.id) (\(version.name)) has no checkpoint_uri")
        }
        let path = uri.hasPrefix("file://") ? String(uri.dropFirst(7)) : uri
        return BaseModel(version: version, checkpointPath: path)
    }

    func captionedRecords(limit: Int) async throws -> [CaptionedRecord] {
        try await connection.query("""
            SELECT id, image_url, caption FROM records WHERE caption IS NOT NULL AND btrim(caption) <> ''
             ORDER BY received_at DESC, id LIMIT \(Int64(limit))
            """).map {
            CaptionedRecord(id: try $0.decode(String.self, at: 0), imageURL: try $0.decode(String.self, at: 1), caption: try $0.decode(String.self, at: 2))
        }
    }

    func labelSet(named name: String) async throws -> Pipeline.LabelSet? {
        try await PostgresPipelineStore(database: database).labelSet(named: name)
    }

    func recordStart(runID: Int64, parameters: FinetuneParameters, base: ModelVersionRef) async throws {
        try await connection.query("""
            UPDATE finetune_runs SET parameters = \(PostgresJSON(parameters.json)), base_model_version_id = \(base.id), loss_curve = '{}'
             WHERE id = \(runID)
            """)
    }

    func recordProgress(runID: Int64, losses: [Float]) async throws {
        try await connection.query("UPDATE finetune_runs SET loss_curve = \(losses) WHERE id = \(runID)")
    }

    func promote(runID: Int64, name: String, parent: ModelVersionRef, checkpointPath: String, config: CLIPConfig,
                 metricsJSON: String) async throws -> ModelVersionRef {
        let id = try await connection.withTransaction { transaction in
            let id = try await transaction.query("""
                INSERT INTO model_versions (name, architecture, embedding_dim, parent_id, checkpoint_uri, metrics)
                VALUES (\(name), \(ModelRegistry.architecture(config)), \(Int32(config.embedDim)), \(parent.id), \(checkpointPath), \(PostgresJSON(metricsJSON)))
                RETURNING id
                """).first!.decode(Int64.self, at: 0)
            try await transaction.query("SELECT clipd_activate_model_version(\(id))")
            try await transaction.query("UPDATE finetune_runs SET result_model_version_id = \(id) WHERE id = \(runID)")
            return id
        }
        return ModelVersionRef(id: id, name: name)
    }

    func finish(runID: Int64, outcome: FinetuneOutcome) async throws {
        try await connection.query("""
            UPDATE finetune_runs SET status = \(outcome.status.rawValue), finished_at = now(),
                   result_model_version_id = \(outcome.resultVersion?.id), loss_curve = \(outcome.lossCurve),
                   metrics = \(outcome.metricsJSON.map(PostgresJSON.init)), results = \(outcome.resultsJSON.map(PostgresJSON.init)),
                   error = \(outcome.error)
             WHERE id = \(runID)
            """)
    }

    // MARK: scheduling

    /// Inserts a run (NOTIFY clipd_finetune_runs); `at` is any timestamp PostgreSQL reads (default now).
    func schedule(parametersJSON: String, at: String? = nil, baseVersionID: Int64? = nil) async throws -> (id: Int64, scheduledAt: String) {
        let row = try await connection.query("""
            INSERT INTO finetune_runs (parameters, base_model_version_id, scheduled_at)
            VALUES (\(PostgresJSON(parametersJSON)), \(baseVersionID), coalesce(\(at)::timestamptz, now()))
            RETURNING id, to_json(scheduled_at)#>>'{}'
            """).first!
        return (try row.decode(Int64.self, at: 0), try row.decode(String.self, at: 1))
    }

    func claim(worker: String) async throws -> ClipdDatabase.FinetuneRun? {
        try await database.claimFinetuneRun(worker: worker)
    }

    /// When the newest run that is already due was scheduled, and how many captioned records arrived since.
    func activitySinceLastRun() async throws -> (lastRun: Date?, newPairs: Int) {
        let row = try await connection.query("""
            WITH last AS (SELECT max(scheduled_at) AS at FROM finetune_runs WHERE scheduled_at <= now())
            SELECT extract(epoch FROM (SELECT at FROM last))::float8,
                   (SELECT count(*) FROM records WHERE caption IS NOT NULL AND btrim(caption) <> ''
                       AND received_at > coalesce((SELECT at FROM last), '-infinity'))
            """).first!
        return (try row.decode(Double?.self, at: 0).map { Date(timeIntervalSince1970: $0) }, try row.decode(Int.self, at: 1))
    }

    /// Seconds until the earliest run scheduled for later becomes due, if any.
    func secondsUntilNextScheduledRun() async throws -> Double? {
        try await connection.query("""
            SELECT extract(epoch FROM min(scheduled_at) - now())::float8 FROM finetune_runs WHERE status = 'scheduled'
            """).first!.decode(Double?.self, at: 0)
    }

    /// Runs left `running` by a trainer that died: only the lock holder calls this, so none is live.
    func failAbandonedRuns() async throws -> Int {
        try await connection.execute("""
            UPDATE finetune_runs SET status = 'failed', finished_at = now(),
                   error = 'the trainer stopped before the run finished (' || coalesce(claimed_by, '?') || ')'
             WHERE status = 'running'
            """)
    }
}

extension ImageLoader: TrainingImageSource {
    func pixels(_ imageURL: String) async throws -> [Float] { try await load(imageURL) }
}
