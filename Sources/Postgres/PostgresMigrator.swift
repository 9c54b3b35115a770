import Foundation
import Logging

/// One migration file `NNNN_name.sql`.
public struct PostgresMigration: Sendable, Equatable {
    public var version: Int
    public var name: String
    public var fileName: String
    public var sql: String
    /// SHA-256 of the file's bytes, hex.
    public var checksum: String

    public init(version: Int, name: String, fileName: String, sql: String) {
        self.version = version
        self.name = name
        self.fileName = fileName
        self.sql = sql
        self.checksum = SHA256.hexDigest(Array(sql.utf8))
    }
}

/// Applies `Schemas/postgres/NNNN_name.sql` in version order, each in its own transaction together
/// with its row in `schema_migrations` (version, name, SHA-256). Applied migrations are skipped;
/// one whose file changed since it was applied is an error naming the file. Concurrent migrators
/// are serialised by a session-level advisory lock.
public struct PostgresMigrator: Sendable {
    public var migrations: [PostgresMigration]
    let logger: Logger

    /// The advisory lock all clipd migrators take.
    public static let lockKey = PostgresAdvisoryLockKey(name: "clipd.schema_migrations")

    public init(migrations: [PostgresMigration], logger: Logger) {
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// Reads every `*.sql` in `directory`; names must be `NNNN_name.sql` with unique versions.
    public init(directory: URL, logger: Logger) throws {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw PostgresError(kind: .migration, message: "cannot read migrations directory \(directory.path): \(error.localizedDescription)")
        }
        var migrations: [PostgresMigration] = []
        for file in files.sorted() where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]),
                  stem[..<underscore].allSatisfy(\.isNumber), stem.index(after: underscore) < stem.endIndex else {
                throw PostgresError(kind: .migration, message: "migration file \(file) is not named NNNN_name.sql")
            }
            if let clash = migrations.first(where: { $0.version == version }) {
                throw PostgresError(kind: .migration, message: "migration files \(clash.fileName) and \(file) share version \(version)")
            }
            let data: Data
            do { data = try Data(contentsOf: directory.appendingPathComponent(file)) } catch {
                throw PostgresError(kind: .migration, message: "cannot read migration \(file): \(error.localizedDescription)")
            }
            guard let sql = String(data: data, encoding: .utf8) else {
                throw PostgresError(kind: .migration, message: "migration \(file) is not UTF-8")
            }
            migrations.append(PostgresMigration(version: version, name: String(stem[stem.index(after: underscore)...]), fileName: file, sql: sql))
        }
        guard !migrations.isEmpty else {
            throw PostgresError(kind: .migration, message: "no NNNN_name.sql migrations in \(directory.path)")
        }
        self.init(migrations: migrations, logger: logger)
    }

    public struct Outcome: Sendable, Equatable {
        /// File names applied by this run, in order.
        public var applied: [String]
        /// File names that were already applied (checksums verified).
        public var alreadyApplied: [String]
    }

    /// Applies what is pending. Throws (applying nothing further) on a checksum mismatch or a failing file.
    @discardableResult
    public func migrate(on connection: PostgresConnection) async throws -> Outcome {
        try await connection.advisoryLock(Self.lockKey)
        do {
            let outcome = try await migrateHoldingLock(on: connection)
            try await connection.advisoryUnlock(Self.lockKey)
            return outcome
        } catch {
            _ = try? await connection.advisoryUnlock(Self.lockKey)
            throw error
        }
    }

    private func migrateHoldingLock(on connection: PostgresConnection) async throws -> Outcome {
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """)
        var applied: [Int: (name: String, checksum: String)] = [:]
        for row in try await connection.query("SELECT version, name, checksum FROM schema_migrations") {
            applied[try row.decode(Int.self, at: 0)] = (try row.decode(String.self, at: 1), try row.decode(String.self, at: 2))
        }
        let known = Set(migrations.map(\.version))
        for version in applied.keys.sorted() where !known.contains(version) {
            logger.warning("database has migration \(version) (\(applied[version]!.name)) that this build does not know; was it applied by a newer clipd?")
        }
        var outcome = Outcome(applied: [], alreadyApplied: [])
        for migration in migrations {
            if let existing = applied[migration.version] {
                guard existing.checksum == migration.checksum else {
                    throw PostgresError(kind: .migration, message: "migration \(migration.fileName) was changed after it was applied (applied checksum \(existing.checksum.prefix(12))…, file now \(migration.checksum.prefix(12))…); add a new migration instead of editing an applied one")
                }
                outcome.alreadyApplied.append(migration.fileName)
                continue
            }
            logger.info("applying migration \(migration.fileName)")
            do {
                try await connection.withTransaction { transaction in
                    try await transaction.executeScript(migration.sql)
                    try await transaction.execute("""
                        INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                        """)
                }
            } catch let error as PostgresError where error.kind == .server {
                throw PostgresError(kind: .migration, message: "migration \(migration.fileName) failed: \(error.message)",
                                    sqlState: error.sqlState, detail: error.detail, hint: error.hint)
            }
            outcome.applied.append(migration.fileName)
        }
        return outcome
    }
}
