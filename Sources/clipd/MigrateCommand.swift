import ArgumentParser
import Foundation
import Postgres
import Storage

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the Schemas/postgres migrations to a database (idempotent).",
        discussion: """
            Each NNNN_name.sql file runs once, in order, in its own transaction, and is recorded with its
            SHA-256 in schema_migrations. A file changed after it was applied is an error. Concurrent
            migrators wait for each other. Prints {"applied":[…],"already_applied":N}.
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(name: .customLong("migrations"),
            help: "Directory of NNNN_name.sql files (default: $CLIPD_MIGRATIONS_DIR, ./Schemas/postgres, or Schemas/postgres beside the executable).")
    var migrationsDirectory: String?

    func run() async throws {
        let logger = commandLogger("clipd.migrate")
        guard let directory = ClipdSchema.locateMigrationsDirectory(
            explicit: migrationsDirectory, environment: ProcessInfo.processInfo.environment,
            currentDirectory: FileManager.default.currentDirectoryPath, executablePath: CommandLine.arguments.first ?? "") else {
            throw ValidationError("cannot find the migrations directory Schemas/postgres; pass --migrations DIR or set CLIPD_MIGRATIONS_DIR")
        }
        let migrator = try PostgresMigrator(directory: directory, logger: logger)
        let connection = try await database.connect(logger: logger)
        let outcome = try await migrator.migrate(on: connection)
        await connection.close()
        let applied = outcome.applied.map { "\"\($0)\"" }.joined(separator: ",")
        print("{\"applied\":[\(applied)],\"already_applied\":\(outcome.alreadyApplied.count)}")
    }
}
