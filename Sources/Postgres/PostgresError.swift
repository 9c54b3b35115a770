/// The one error type of the `Postgres` module: what failed, the server's SQLSTATE when there is
/// one, and whether retrying the operation (after reconnecting) can help.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Could not connect, or the connection was lost.
        case connection
        /// The server rejected a statement (see `sqlState`).
        case server
        /// A value could not be decoded into the requested Swift type.
        case decoding
        /// A value cannot be sent (e.g. text containing NUL) or the API was misused.
        case invalidInput
        /// A migration file is missing, malformed or was changed after it was applied.
        case migration
    }

    public var kind: Kind
    /// Five-character SQLSTATE from the server, e.g. `23505` (unique violation).
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?

    public init(kind: Kind, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
    }

    /// True when the same operation may succeed if tried again: connection failures, the server
    /// shutting down or refusing connections for now, serialization failures and deadlocks, a
    /// read-only server (a standby during failover), exhausted resources and lock timeouts.
    public var isRetriable: Bool {
        switch kind {
        case .connection:
            return true
        case .decoding, .invalidInput, .migration:
            return false
        case .server:
            guard let sqlState else { return false }
            if sqlState.hasPrefix("08") { return true }  // connection exception class
            if sqlState.hasPrefix("53") { return true }  // insufficient resources: disk full, out of memory, too many connections
            return Self.retriableSQLStates.contains(sqlState)
        }
    }

    private static let retriableSQLStates: Set<String> = [
        "40001",  // serialization_failure
        "40P01",  // deadlock_detected
        "40003",  // statement_completion_unknown
        "57P01",  // admin_shutdown
        "57P02",  // crash_shutdown
        "57P03",  // cannot_connect_now
        "57P05",  // idle_session_timeout
        "25006",  // read_only_sql_transaction
        "55P03",  // lock_not_available
        "58000",  // system_error
        "58030",  // io_error
    ]

    /// True when the server (or this driver, before sending) refuses the values themselves, so
    /// the same values can never be stored: data exceptions (class 22, e.g. a bad encoding or
    /// an out-of-range number), integrity constraint violations (23: CHECK, NOT NULL, foreign
    /// and unique keys), program limits (54: an index row or a value too large, nesting too
    /// deep), exceptions raised by triggers (P0001), and text the protocol cannot carry (NUL).
    /// Errors no value causes (connections, privileges, missing tables) are never rejections.
    public var isDataRejection: Bool {
        switch kind {
        case .invalidInput:
            return true
        case .connection, .decoding, .migration:
            return false
        case .server:
            guard let sqlState, !isRetriable else { return false }
            return sqlState.hasPrefix("22") || sqlState.hasPrefix("23") || sqlState.hasPrefix("54") || sqlState == "P0001"
        }
    }

    public var description: String {
        var text = "PostgreSQL \(kind.rawValue) error"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let detail, !detail.isEmpty { text += " (\(detail))" }
        if let hint, !hint.isEmpty { text += " hint: \(hint)" }
        return text
    }
}
