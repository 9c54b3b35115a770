import Executors
import Foundation
import Logging

/// One PostgreSQL session. All libpq calls run on one thread the connection owns (a
/// `WorkerPool` of width 1, `clipd-pg-*`, started on demand and ended after `idleThreadTimeout`
/// without statements), so its `async` methods never block Swift's cooperative pool and a
/// connection never takes more than one thread, however many callers wait: statements from
/// concurrent callers are queued (they suspend, holding no thread); a transaction holds the
/// connection until it ends.
///
/// When the session is found broken before a statement, the connection reconnects with the
/// configured backoff. A statement that fails because the connection dropped is not retried
/// (it may have been applied): it throws a `PostgresError` with `isRetriable == true`.
public final class PostgresConnection: Sendable {
    public let configuration: PostgresConfiguration
    let logger: Logger
    private let worker: WorkerPool
    private let session: LibPQSession
    private let lock = AsyncLock()

    /// The connection whose transaction the current task is running, to turn a self-deadlock
    /// (calling the connection instead of the transaction inside `withTransaction`) into an error.
    @TaskLocal private static var transactionInProgress: ObjectIdentifier?

    /// How long a connection's thread waits for the next statement before it ends.
    public static let idleThreadTimeout: TimeInterval = 10

    private init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.worker = WorkerPool(name: "clipd-pg", width: 1, idleTimeout: Self.idleThreadTimeout)
        self.session = LibPQSession { [logger] notice in logger.debug("PostgreSQL: \(notice)") }
    }

    /// Connects, retrying with exponential backoff and jitter until `configuration.reconnect`
    /// gives up; then throws the last connection error.
    public static func connect(configuration: PostgresConfiguration, logger: Logger) async throws -> PostgresConnection {
        let connection = PostgresConnection(configuration: configuration, logger: logger)
        try await connection.establish(reason: "connecting")
        return connection
    }

    /// Closes the session; later calls reconnect.
    public func close() async {
        await lock.withLock {
            await onQueue { session in session.close() }
        }
    }

    // MARK: statements

    /// Runs one statement and returns its rows (empty for commands).
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try checkNotInsideOwnTransaction()
        return try await lock.withLock {
            try await ensureConnected()
            return try await onQueue { session in try session.execute(query) }
        }
    }

    /// Runs one statement and returns how many rows it affected.
    @discardableResult
    public func execute(_ query: PostgresQuery) async throws -> Int {
        try await self.query(query).affectedRows ?? 0
    }

    /// Runs `body` inside BEGIN … COMMIT; any error thrown rolls the transaction back and is rethrown.
    /// Statements inside go through the `PostgresTransaction` passed to `body`.
    @discardableResult
    public func withTransaction<T: Sendable>(
        isolation: PostgresIsolationLevel = .readCommitted,
        _ body: (PostgresTransaction) async throws -> T
    ) async throws -> T {
        try checkNotInsideOwnTransaction()
        return try await lock.withLock {
            try await ensureConnected()
            try await onQueue { session in try session.executeScript("BEGIN ISOLATION LEVEL \(isolation.sql)") }
            let transaction = PostgresTransaction(connection: self)
            do {
                let value = try await Self.$transactionInProgress.withValue(ObjectIdentifier(self)) {
                    try await body(transaction)
                }
                try await onQueue { session in try session.executeScript("COMMIT") }
                return value
            } catch {
                do {
                    try await onQueue { session in try session.executeScript("ROLLBACK") }
                } catch let rollbackError {
                    logger.warning("ROLLBACK failed after an error in a transaction", metadata: [
                        "error": "\(error)", "rollback_error": "\(rollbackError)"])
                }
                throw error
            }
        }
    }

    /// Writes rows with `COPY table (columns) FROM STDIN`; returns the row count. Binary format
    /// needs each bind's type to be exactly its column's type (e.g. `Int32` for `integer`).
    @discardableResult
    public func copy(into table: String, columns: [String], rows: [[PostgresBind]], format: PostgresCopyFormat = .text) async throws -> Int {
        try checkNotInsideOwnTransaction()
        return try await lock.withLock {
            try await ensureConnected()
            return try await copyUnlocked(into: table, columns: columns, rows: rows, format: format)
        }
    }

    // MARK: advisory locks (session level: held until unlocked or the session ends)

    /// `pg_try_advisory_lock`: true when this session now holds the lock.
    public func tryAdvisoryLock(_ key: PostgresAdvisoryLockKey) async throws -> Bool {
        try await query("SELECT pg_try_advisory_lock(\(key.value))").first!.decode(Bool.self, at: 0)
    }

    /// `pg_advisory_lock`: waits (on the connection's thread, not the cooperative pool) until held.
    public func advisoryLock(_ key: PostgresAdvisoryLockKey) async throws {
        try await query("SELECT pg_advisory_lock(\(key.value))")
    }

    /// `pg_advisory_unlock`: false when this session did not hold the lock.
    @discardableResult
    public func advisoryUnlock(_ key: PostgresAdvisoryLockKey) async throws -> Bool {
        try await query("SELECT pg_advisory_unlock(\(key.value))").first!.decode(Bool.self, at: 0)
    }

    // MARK: internals

    private func checkNotInsideOwnTransaction() throws {
        if Self.transactionInProgress == ObjectIdentifier(self) {
            throw PostgresError(kind: .invalidInput, message: "inside withTransaction, run statements through the PostgresTransaction it passes; the connection itself is held by the transaction")
        }
    }

    func copyUnlocked(into table: String, columns: [String], rows: [[PostgresBind]], format: PostgresCopyFormat) async throws -> Int {
        let statement = "COPY \(PostgresTextFormat.quoteIdentifier(table)) ("
            + columns.map(PostgresTextFormat.quoteIdentifier).joined(separator: ", ") + ") FROM STDIN"
            + (format == .binary ? " WITH (FORMAT binary)" : "")
        for (index, row) in rows.enumerated() where row.count != columns.count {
            throw PostgresError(kind: .invalidInput, message: "COPY row \(index) has \(row.count) values for \(columns.count) columns")
        }
        return try await onQueue { session in
            var iterator = rows.makeIterator()
            return try session.copyIn(statement, binary: format == .binary) { iterator.next() }
        }
    }

    func executeUnlocked(_ query: PostgresQuery) async throws -> PostgresRows {
        try await onQueue { session in try session.execute(query) }
    }

    func executeScriptUnlocked(_ sql: String) async throws {
        try await onQueue { session in try session.executeScript(sql) }
    }

    /// Runs trusted SQL text (several statements, no parameters) holding the connection.
    func executeScript(_ sql: String) async throws {
        try await lock.withLock {
            try await ensureConnected()
            try await executeScriptUnlocked(sql)
        }
    }

    private func ensureConnected() async throws {
        let (connected, closedByOwner) = await onQueue { session in (session.isConnected, session.isClosedByOwner) }
        if !connected {
            if !closedByOwner {
                logger.warning("PostgreSQL connection lost; reconnecting", metadata: ["url": "\(configuration.redactedURL)"])
            } else {
                logger.info("reopening the PostgreSQL connection after close()", metadata: ["url": "\(configuration.redactedURL)"])
            }
            try await establish(reason: "reconnecting")
        }
    }

    private func establish(reason: String) async throws {
        let configuration = self.configuration
        var attempt = 1
        while true {
            do {
                try await onQueue { session in
                    try session.connect(url: configuration.url, applicationName: configuration.applicationName,
                                        connectTimeoutSeconds: configuration.connectTimeoutSeconds)
                }
                if attempt > 1 {
                    logger.notice("connected to PostgreSQL after \(attempt) attempts", metadata: ["url": "\(configuration.redactedURL)"])
                } else {
                    logger.debug("connected to PostgreSQL", metadata: ["url": "\(configuration.redactedURL)"])
                }
                return
            } catch let error as PostgresError {
                guard error.isRetriable, configuration.reconnect.allowsAttempt(attempt + 1) else {
                    let attempts = attempt == 1 ? "1 attempt" : "\(attempt) attempts"
                    logger.error("giving up \(reason) to PostgreSQL after \(attempts)", metadata: [
                        "url": "\(configuration.redactedURL)", "error": "\(error.message)"])
                    throw PostgresError(kind: error.kind, message: "could not connect to \(configuration.redactedURL) after \(attempts): \(error.message)",
                                        sqlState: error.sqlState, detail: error.detail, hint: error.hint)
                }
                let delay = configuration.reconnect.delay(afterAttempt: attempt, unitRandom: Double.random(in: 0...1))
                logger.warning("PostgreSQL \(reason) attempt \(attempt) failed; retrying in \(Self.format(delay))", metadata: [
                    "url": "\(configuration.redactedURL)", "error": "\(error.message)"])
                try await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }

    private static func format(_ duration: Duration) -> String {
        String(format: "%.2fs", RetryPolicy.seconds(duration))
    }

    /// Runs `work` on the connection's thread (in submission order: the pool has width 1).
    @discardableResult
    private func onQueue<T: Sendable>(_ work: @escaping @Sendable (LibPQSession) throws -> T) async throws -> T {
        let session = self.session
        return try await worker.run { try work(session) }
    }

    @discardableResult
    private func onQueue<T: Sendable>(_ work: @escaping @Sendable (LibPQSession) -> T) async -> T {
        let session = self.session
        return await worker.run { work(session) }
    }

    /// Threads of this connection alive now and at most at once (never above 1).
    public var threads: (current: Int, peak: Int) { worker.threads }
}

/// The statements of one transaction; valid only inside `withTransaction`'s body.
public struct PostgresTransaction: Sendable {
    let connection: PostgresConnection

    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await connection.executeUnlocked(query)
    }

    @discardableResult
    public func execute(_ query: PostgresQuery) async throws -> Int {
        try await connection.executeUnlocked(query).affectedRows ?? 0
    }

    @discardableResult
    public func copy(into table: String, columns: [String], rows: [[PostgresBind]], format: PostgresCopyFormat = .text) async throws -> Int {
        try await connection.copyUnlocked(into: table, columns: columns, rows: rows, format: format)
    }

    /// Trusted SQL text (e.g. a migration file): several statements, no parameters.
    func executeScript(_ sql: String) async throws {
        try await connection.executeScriptUnlocked(sql)
    }
}

public enum PostgresCopyFormat: Sendable {
    /// Tab-separated text: any bind whose text the column's type accepts.
    case text
    /// PostgreSQL's binary COPY format: no text parsing on the server; bind types must match the columns exactly.
    case binary
}

public enum PostgresIsolationLevel: Sendable {
    case readCommitted, repeatableRead, serializable

    var sql: String {
        switch self {
        case .readCommitted: return "READ COMMITTED"
        case .repeatableRead: return "REPEATABLE READ"
        case .serializable: return "SERIALIZABLE"
        }
    }
}

/// The 64-bit key of a session-level advisory lock.
public struct PostgresAdvisoryLockKey: Sendable, Hashable {
    public var value: Int64
    public init(_ value: Int64) { self.value = value }

    /// A stable key derived from a name (64-bit FNV-1a of its UTF-8), so components can agree on
    /// a lock by name.
    public init(name: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        self.value = Int64(bitPattern: hash)
    }
}
