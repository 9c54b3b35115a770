import CLIP
import Executors
import Foundation
import Logging
import Pipeline
import Postgres
import Storage

/// Model versions in PostgreSQL and the checkpoints behind them: which model the daemon (or
/// `clipd search`) runs, loaded and checked against its version row.
public struct ModelRegistry: Sendable {
    public let database: ClipdDatabase
    public let logger: Logger

    public init(database: ClipdDatabase, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// The version row for a checkpoint path, registered (and activated when nothing is active)
    /// the first time the path is used.
    public func version(forCheckpoint path: String, config: CLIPConfig, activateIfNone: Bool) async throws -> ModelVersionRef {
        // Daemons starting together must agree on one row (and one activation): serialise the
        // look-up, registration and activation under a session advisory lock.
        let key = PostgresAdvisoryLockKey(name: "clipd.model_versions.register")
        try await database.connection.advisoryLock(key)
        do {
            let version = try await lockedVersion(forCheckpoint: path, config: config, activateIfNone: activateIfNone)
            _ = try? await database.connection.advisoryUnlock(key)
            return version
        } catch {
            _ = try? await database.connection.advisoryUnlock(key)
            throw error
        }
    }

    private func lockedVersion(forCheckpoint path: String, config: CLIPConfig, activateIfNone: Bool) async throws -> ModelVersionRef {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        if let existing = try await database.modelVersion(checkpointURI: absolute) { return existing.ref }
        let name = "\(URL(fileURLWithPath: absolute).lastPathComponent)@\(UUID().uuidString.prefix(8).lowercased())"
        let id = try await database.registerModelVersion(name: name, config: config, checkpointURI: absolute)
        logger.info("registered model version", metadata: ["id": "\(id)", "name": "\(name)", "checkpoint": "\(absolute)"])
        if activateIfNone, try await database.activeModelVersion() == nil {
            try await database.activateModelVersion(id: id)
            logger.info("activated model version", metadata: ["id": "\(id)"])
        }
        return ModelVersionRef(id: id, name: name)
    }

    /// Loads `path` when given, else the active version's checkpoint.
    public func load(path: String?, activateIfNone: Bool = true) async throws -> StreamPipeline.LoadedModel {
        if let path {
            let model = CLIPModel(checkpoint: try await Self.checkpoint(path))
            let version = try await version(forCheckpoint: path, config: model.config, activateIfNone: activateIfNone)
            return .init(model: model, version: version)
        }
        guard let active = try await database.activeModelVersion() else {
            throw DaemonError("no model: give --model PATH or activate a model version (clipd model import … --activate)")
        }
        return try await load(version: active)
    }

    public func load(version: ClipdDatabase.ModelVersion) async throws -> StreamPipeline.LoadedModel {
        guard let path = version.checkpointPath else {
            throw DaemonError("model version \(version.id) (\(version.name)) has no checkpoint_uri")
        }
        let model = CLIPModel(checkpoint: try await Self.checkpoint(path))
        guard model.config.embedDim == version.embeddingDimension else {
            throw DaemonError("checkpoint \(path) has embedding dimension \(model.config.embedDim), model version \(version.id) says \(version.embeddingDimension)")
        }
        return .init(model: model, version: version.ref)
    }

    /// Checkpoints are read and parsed on a thread of their own, never on Swift's cooperative pool.
    /// Loads are rare (start-up, hot swaps), so its thread ends a second after each.
    private static let loader = WorkerPool(name: "clipd-checkpoint", width: 1, idleTimeout: 1)

    /// Reads a checkpoint; a broken one is an error naming the file.
    static func checkpoint(_ path: String) async throws -> LoadedCheckpoint {
        do { return try await loader.run { try CheckpointLoader.load(path: path) } } catch let error as CLIPError {
            throw DaemonError("cannot load model \(path): \(error.message)")
        }
    }
}
