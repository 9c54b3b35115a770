import Foundation

/// How to reach the server and how hard to try.
public struct PostgresConfiguration: Sendable {
    /// `postgres://user:password@host:port/database?sslmode=…` or a libpq `key=value` string.
    public var url: String
    public var applicationName: String
    /// Per-attempt limit, passed to libpq as `connect_timeout` unless the URL sets one.
    public var connectTimeoutSeconds: Int
    /// Backoff for the first connection and for reconnecting after the connection is lost.
    public var reconnect: RetryPolicy

    public init(url: String, applicationName: String = "clipd", connectTimeoutSeconds: Int = 10,
                reconnect: RetryPolicy = RetryPolicy()) {
        self.url = url
        self.applicationName = applicationName
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.reconnect = reconnect
    }

    /// The URL with any password replaced, for logs and error messages (every form:
    /// `PostgresRedaction`).
    public var redactedURL: String { PostgresRedaction.redact(url) }

    /// `text` with this configuration's password hidden wherever it appears.
    public func redact(_ text: String) -> String { PostgresRedaction.redact(text, connection: url) }
}

/// Exponential backoff with jitter: attempt n waits a random time in
/// [d/2, d] where d = min(maxDelay, initialDelay · multiplier^(n-1)).
public struct RetryPolicy: Sendable {
    /// nil retries forever (the daemon's choice); tools and tests set a budget.
    public var maxAttempts: Int?
    public var initialDelay: Duration
    public var maxDelay: Duration
    public var multiplier: Double

    public init(maxAttempts: Int? = nil, initialDelay: Duration = .milliseconds(200),
                maxDelay: Duration = .seconds(15), multiplier: Double = 2) {
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
    }

    /// The wait after failed attempt `attempt` (1-based); `unitRandom` in [0, 1].
    public func delay(afterAttempt attempt: Int, unitRandom: Double) -> Duration {
        let initial = Self.seconds(initialDelay)
        let ceiling = Self.seconds(maxDelay)
        let exponential = min(ceiling, initial * pow(multiplier, Double(max(0, attempt - 1))))
        let jittered = exponential / 2 + exponential / 2 * min(max(unitRandom, 0), 1)
        return .nanoseconds(Int64(jittered * 1e9))
    }

    public func allowsAttempt(_ attempt: Int) -> Bool {
        maxAttempts.map { attempt <= $0 } ?? true
    }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
