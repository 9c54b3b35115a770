import ArgumentParser
import Foundation
import Logging
import Postgres

/// `--database-url` (or `CLIPD_DATABASE_URL`) and how hard to try connecting, shared by the
/// commands that talk to PostgreSQL.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"),
            help: "PostgreSQL URL, e.g. postgres://user:pass@host:5432/db?sslmode=require (default: $CLIPD_DATABASE_URL).")
    var databaseURL: String?

    @Option(name: .customLong("connect-attempts"), help: "Connection attempts (exponential backoff with jitter) before giving up.")
    var connectAttempts: Int = 5

    func validate() throws {
        guard resolvedURL != nil else {
            throw ValidationError("missing --database-url (or set CLIPD_DATABASE_URL)")
        }
        try FlagRange.check(connectAttempts, "--connect-attempts", 1...1000)
    }

    var resolvedURL: String? {
        let url: String?
        if let databaseURL, !databaseURL.isEmpty { url = databaseURL } else {
            let fromEnvironment = ProcessInfo.processInfo.environment["CLIPD_DATABASE_URL"]
            url = fromEnvironment?.isEmpty == false ? fromEnvironment : nil
        }
        if let url { ProcessSecrets.add(connection: url) }
        return url
    }

    var configuration: PostgresConfiguration {
        PostgresConfiguration(
            url: resolvedURL!, applicationName: "clipd", connectTimeoutSeconds: 10,
            reconnect: RetryPolicy(maxAttempts: connectAttempts, initialDelay: .milliseconds(250), maxDelay: .seconds(5)))
    }

    func connect(logger: Logger) async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: configuration, logger: logger)
    }
}

/// Logs go to stderr so stdout stays machine-readable.
func commandLogger(_ label: String) -> Logger {
    var logger = Logger(label: label) { RedactingLogHandler(StreamLogHandler.standardError(label: $0)) }
    logger.logLevel = ProcessInfo.processInfo.environment["CLIPD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    return logger
}

/// Turns "relation does not exist" into the fix a user needs.
func explainingMissingSchema(_ error: Error) -> Error {
    if let error = error as? PostgresError, error.sqlState == "42P01" || error.sqlState == "42883" {
        return CommandFailure("\(error.message): the database is not migrated; run `clipd migrate --database-url URL` first")
    }
    return error
}
