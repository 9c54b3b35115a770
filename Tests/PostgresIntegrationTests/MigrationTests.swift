import Foundation
import Postgres
import Storage
import TestSupport
import Testing

@Suite("Migrations", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL / CLIPD_TEST_PGVECTOR_DATABASE_URL (Deploy/dev/test.sh does)"))
struct MigrationTests {
    @Test("applying twice is a no-op; checksums match the server's sha256", arguments: TestServer.allCases)
    func idempotent(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { _, connection in
            let migrator = try PostgresMigrator(directory: migrationsDirectory, logger: testLogger)
            let first = try await migrator.migrate(on: connection)
            #expect(first.applied == migrator.migrations.map(\.fileName))
            #expect(first.alreadyApplied.isEmpty)
            let second = try await migrator.migrate(on: connection)
            #expect(second.applied.isEmpty)
            #expect(second.alreadyApplied == migrator.migrations.map(\.fileName))

            let rows = try await connection.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
            #expect(rows.count == migrator.migrations.count)
            for (row, migration) in zip(rows, migrator.migrations) {
                #expect(try row.decode(Int.self, at: 0) == migration.version)
                #expect(try row.decode(String.self, at: 1) == migration.name)
                // Independent check of the Swift SHA-256 against PostgreSQL's own.
                let serverDigest = try await connection.query(
                    "SELECT encode(sha256(convert_to(\(migration.sql), 'UTF8')), 'hex')").first!.decode(String.self, at: 0)
                #expect(try row.decode(String.self, at: 2) == serverDigest)
            }
            let backend = try await ClipdDatabase(connection: connection).vectorBackend()
            #expect(backend == server.expectedVectorBackend)
        }
    }

    @Test("a changed applied migration is an error naming the file; new ones still apply in order", arguments: [TestServer.plain])
    func changedMigrationDetected(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { _, connection in
            let original = try PostgresMigrator(directory: migrationsDirectory, logger: testLogger)
            try await original.migrate(on: connection)

            var extended = original.migrations
            extended.append(PostgresMigration(version: 9001, name: "extra", fileName: "9001_extra.sql",
                                              sql: "CREATE TABLE extra_table (id int); INSERT INTO extra_table VALUES (7);"))
            let outcome = try await PostgresMigrator(migrations: extended, logger: testLogger).migrate(on: connection)
            #expect(outcome.applied == ["9001_extra.sql"])
            #expect(try await connection.query("SELECT id FROM extra_table").first!.decode(Int.self, at: 0) == 7)

            var edited = extended
            let index = edited.firstIndex { $0.version == 2 }!
            let changed = edited[index]
            edited[index] = PostgresMigration(version: changed.version, name: changed.name, fileName: changed.fileName,
                                              sql: changed.sql + "\n-- edited after it was applied\n")
            await #expect {
                try await PostgresMigrator(migrations: edited, logger: testLogger).migrate(on: connection)
            } throws: { error in
                guard let error = error as? PostgresError else { return false }
                return error.kind == .migration && error.message.contains(changed.fileName) && !error.isRetriable
            }
        }
    }

    @Test("a failing migration leaves nothing of itself behind", arguments: [TestServer.plain])
    func failingMigrationRollsBack(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let migrator = try PostgresMigrator(directory: migrationsDirectory, logger: testLogger)
            var broken = migrator.migrations
            broken.append(PostgresMigration(version: 9002, name: "broken", fileName: "9002_broken.sql",
                                            sql: "CREATE TABLE half_done (id int);\nSELECT no_such_function();"))
            await #expect(throws: PostgresError.self) {
                try await PostgresMigrator(migrations: broken, logger: testLogger).migrate(on: connection)
            }
            let tables = try await connection.query("SELECT count(*) FROM pg_tables WHERE tablename = 'half_done'")
            #expect(try tables.first!.decode(Int.self, at: 0) == 0)
            let recorded = try await connection.query("SELECT count(*) FROM schema_migrations WHERE version = 9002")
            #expect(try recorded.first!.decode(Int.self, at: 0) == 0)
        }
    }

    @Test("concurrent migrators are serialised by the advisory lock", arguments: TestServer.allCases)
    func concurrentMigrators(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { scratch, _ in
            let migrator = try PostgresMigrator(directory: migrationsDirectory, logger: testLogger)
            let outcomes = try await withThrowingTaskGroup(of: PostgresMigrator.Outcome.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        let connection = try await scratch.connect()
                        defer { Task { await connection.close() } }
                        return try await migrator.migrate(on: connection)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // Exactly one migrator applied everything; the others found it done.
            #expect(outcomes.filter { !$0.applied.isEmpty }.count == 1)
            #expect(outcomes.flatMap(\.applied).sorted() == migrator.migrations.map(\.fileName).sorted())
        }
    }
}
