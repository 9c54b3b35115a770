import CLIP
import Foundation
import Logging
import Pipeline
import Postgres

/// Model versions in PostgreSQL and the checkpoints behind them.
struct ModelRegistry {
    let database: ClipdDatabase
    let logger: Logger

    static func architecture(_ c: CLIPConfig) -> String {
        "ViT \(c.imageSize)px/\(c.patchSize) w\(c.vision.width)x\(c.vision.layers) text w\(c.text.width)x\(c.text.layers) d\(c.embedDim) \(c.activation.rawValue)"
    }

    /// The version row for a checkpoint path, registered (and activated when nothing is active)
    /// the first time the path is used.
    func version(forCheckpoint path: String, config: CLIPConfig, activateIfNone: Bool) async throws -> ModelVersionRef {
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
        if let row = try await database.connection.query("SELECT id, name FROM model_versions WHERE checkpoint_uri = \(absolute) ORDER BY id LIMIT 1").first {
            return ModelVersionRef(id: try row.decode(Int64.self, at: 0), name: try row.decode(String.self, at: 1))
        }
        let name = "\(URL(fileURLWithPath: absolute).lastPathComponent)@\(UUID().uuidString.prefix(8).lowercased())"
        let id = try await database.registerModelVersion(name: name, architecture: Self.architecture(config),
                                                         embeddingDimension: config.embedDim, checkpointURI: absolute)
        logger.info("registered model version", metadata: ["id": "\(id)", "name": "\(name)", "checkpoint": "\(absolute)"])
        if activateIfNone, try await database.activeModelVersion() == nil {
            try await database.activateModelVersion(id: id)
            logger.info("activated model version", metadata: ["id": "\(id)"])
        }
        return ModelVersionRef(id: id, name: name)
    }

    /// Loads `path` when given, else the active version's checkpoint.
    func load(path: String?, activateIfNone: Bool = true) async throws -> StreamPipeline.LoadedModel {
        if let path {
            let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: path))
            let version = try await version(forCheckpoint: path, config: model.config, activateIfNone: activateIfNone)
            return .init(model: model, version: version)
        }
        guard let active = try await database.activeModelVersion() else {
            throw CommandFailure("no model: give --model PATH or activate a model version (clipd model import … --activate)")
        }
        return try await load(version: active)
    }

    func load(version: ClipdDatabase.ModelVersion) async throws -> StreamPipeline.LoadedModel {
        guard let uri = version.checkpointURI else {
            throw CommandFailure("model version \(version.id) (\(version.name)) has no checkpoint_uri")
        }
        let path = uri.hasPrefix("file://") ? String(uri.dropFirst(7)) : uri
        let model = CLIPModel(checkpoint: try CheckpointLoader.load(path: path))
        guard model.config.embedDim == version.embeddingDimension else {
            throw CommandFailure("checkpoint \(path) has embedding dimension \(model.config.embedDim), model version \(version.id) says \(version.embeddingDimension)")
        }
        return .init(model: model, version: ModelVersionRef(id: version.id, name: version.name))
    }
}
