import CLIP
import Foundation
import Pipeline
import Postgres

/// `model_versions`: registration, activation (NOTIFY clipd_model_versions), listing.
extension ClipdDatabase {
    public struct ModelVersion: Sendable, Equatable {
        public var id: Int64
        public var name: String
        public var architecture: String
        public var embeddingDimension: Int
        public var checkpointURI: String?
        public var parentID: Int64?
        public var isActive: Bool

        public var ref: ModelVersionRef { ModelVersionRef(id: id, name: name) }

        /// The checkpoint's file path (`file://` stripped), if the version has one.
        public var checkpointPath: String? {
            checkpointURI.map { $0.hasPrefix("file://") ? String($0.dropFirst(7)) : $0 }
        }
    }

    /// The `architecture` text stored for a model configuration.
    public static func architecture(of c: CLIPConfig) -> String {
        "ViT \(c.imageSize)px/\(c.patchSize) w\(c.vision.width)x\(c.vision.layers) text w\(c.text.width)x\(c.text.layers) d\(c.embedDim) \(c.activation.rawValue)"
    }

    /// Inserts a model version (its HNSW indexes are created with it when pgvector is used).
    public func registerModelVersion(name: String, config: CLIPConfig, parentID: Int64? = nil,
                                     checkpointURI: String? = nil, metricsJSON: String = "{}") async throws -> Int64 {
        try await Self.registerModelVersion(name: name, architecture: Self.architecture(of: config), embeddingDimension: config.embedDim,
                                            parentID: parentID, checkpointURI: checkpointURI, metricsJSON: metricsJSON) { try await connection.query($0) }
    }

    /// Inserts a model version with an explicit architecture text and dimension.
    public func registerModelVersion(name: String, architecture: String, embeddingDimension: Int, parentID: Int64? = nil,
                                     checkpointURI: String? = nil, metricsJSON: String = "{}") async throws -> Int64 {
        try await Self.registerModelVersion(name: name, architecture: architecture, embeddingDimension: embeddingDimension,
                                            parentID: parentID, checkpointURI: checkpointURI, metricsJSON: metricsJSON) { try await connection.query($0) }
    }

    static func registerModelVersion(name: String, architecture: String, embeddingDimension: Int, parentID: Int64?,
                                     checkpointURI: String?, metricsJSON: String,
                                     run query: (PostgresQuery) async throws -> PostgresRows) async throws -> Int64 {
        try await query("""
            INSERT INTO model_versions (name, architecture, embedding_dim, parent_id, checkpoint_uri, metrics)
            VALUES (\(name), \(architecture), \(Int32(embeddingDimension)), \(parentID), \(checkpointURI), \(PostgresJSON(metricsJSON)))
            RETURNING id
            """).first!.decode(Int64.self, at: 0)
    }

    public func activateModelVersion(id: Int64) async throws {
        try await connection.query("SELECT clipd_activate_model_version(\(id))")
    }

    private static let versionColumns: PostgresQuery = "id, name, architecture, embedding_dim, checkpoint_uri, parent_id, is_active"

    private static func version(_ row: PostgresRow) throws -> ModelVersion {
        ModelVersion(id: try row.decode(Int64.self, at: 0), name: try row.decode(String.self, at: 1),
                     architecture: try row.decode(String.self, at: 2), embeddingDimension: try row.decode(Int.self, at: 3),
                     checkpointURI: try row.decode(String?.self, at: 4), parentID: try row.decode(Int64?.self, at: 5),
                     isActive: try row.decode(Bool.self, at: 6))
    }

    /// The active model version, if one is active.
    public func activeModelVersion() async throws -> ModelVersion? {
        try await connection.query("SELECT \(fragment: Self.versionColumns) FROM model_versions WHERE is_active").first.map(Self.version)
    }

    /// Every model version, newest first.
    public func modelVersions() async throws -> [ModelVersion] {
        try await connection.query("SELECT \(fragment: Self.versionColumns) FROM model_versions ORDER BY id DESC").map(Self.version)
    }

    /// The version with this id, or (when none has it) this name.
    public func modelVersion(idOrName: String) async throws -> ModelVersion? {
        try await connection.query("""
            SELECT \(fragment: Self.versionColumns) FROM model_versions WHERE id::text = \(idOrName) OR name = \(idOrName)
             ORDER BY (id::text = \(idOrName)) DESC, id LIMIT 1
            """).first.map(Self.version)
    }

    /// The version registered for a checkpoint path (the oldest, if several).
    public func modelVersion(checkpointURI: String) async throws -> ModelVersion? {
        try await connection.query("""
            SELECT \(fragment: Self.versionColumns) FROM model_versions WHERE checkpoint_uri = \(checkpointURI) ORDER BY id LIMIT 1
            """).first.map(Self.version)
    }
}
