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
    /// shutting down or refusing connections for now, serialization failures and deadlocks.
    public var isRetriable: Bool {
        switch kind {
        case .connection:
            return true
        case .decoding, .invalidInput, .migration:
            return false
        case .server:
            guard let sqlState else { return false }
            if sqlState.hasPrefix("08") { return true }  // connection exception class
            return Self.retriableSQLStates.contains(sqlState)
        }
    }

    private static let retriableSQLStates: Set<String> = [
        "40001",  // serialization_failure
        "40P01",  // deadlock_detected
        "57P01",  // admin_shutdown
        "57P02",  // crash_shutdown
        "57P03",  // cannot_connect_now
        "53300",  // too_many_connections
    ]

    public var description: String {
        var text = "PostgreSQL \(kind.rawValue) error"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let detail, !detail.isEmpty { text += " (\(detail))" }
        if let hint, !hint.isEmpty { text += " hint: \(hint)" }
        return text
    }
}
