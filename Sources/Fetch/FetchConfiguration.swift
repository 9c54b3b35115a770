/// Limits and policy for `ImageFetcher`. Plain values; the executable fills it from its
/// config file, environment and flags.
public struct FetchConfiguration: Sendable {
    /// Time allowed to establish a TCP (and TLS) connection, per connection.
    public var connectTimeout: Duration
    /// Time allowed for one whole attempt (DNS, connect, redirects, body).
    public var totalTimeout: Duration
    /// Largest body accepted, in bytes; larger bodies fail with `too_large` without being
    /// read past this many bytes.
    public var maxBytes: Int
    /// Redirects followed before failing with `too_many_redirects`.
    public var maxRedirects: Int
    public var retry: RetryPolicy
    /// Directories whose files `file://` URLs may read (symlinks resolved). Empty disables
    /// file URLs.
    public var allowedFileRoots: [String]
    /// Turns the SSRF guard off: loopback, private, link-local and other non-public
    /// addresses may be connected to. For development, tests and the demo.
    public var allowPrivateNetworks: Bool
    /// Non-public ranges that are allowed even when `allowPrivateNetworks` is false, e.g. an
    /// internal image store.
    public var allowedAddressRanges: [IPAddressRange]
    public var userAgent: String
    /// Sent as the Accept header. CDNs that negotiate formats serve WebP or AVIF to clients
    /// that accept `image/*`; the default asks for what the decoder reads first.
    public var accept: String
    /// PEM file of CA certificates trusted for https, replacing the system bundle (for
    /// internal CAs); nil uses the system's.
    public var caCertificatesPath: String?
    /// Blocking transfers running at once; each occupies one thread owned by the fetcher.
    public var maxConcurrentTransfers: Int
    /// Politeness: transfers to one host at a time.
    public var hostConcurrency: Int = 4
    /// Politeness: least time between the starts of two transfers to one host.
    public var hostMinInterval: Duration = .milliseconds(20)
    /// A host failing this many times in a row (connection errors, timeouts, TLS, 5xx) is backed
    /// off: requests to it wait `hostBackoff`, doubling per further failure up to `hostMaxBackoff`,
    /// or fail at once (class `connection`) when that is past their retry budget. Other hosts
    /// are not affected.
    public var hostFailuresBeforeBackoff: Int = 5
    public var hostBackoff: Duration = .seconds(1)
    public var hostMaxBackoff: Duration = .seconds(60)
    /// Extra request headers per host (lower-case host, with a non-default port as `host:port`),
    /// e.g. an Authorization header for a private bucket. Never logged. A redirect away from a
    /// request that carries them is not followed (the headers would travel to the other host).
    public var hostHeaders: [String: [String: String]] = [:]

    public init(connectTimeout: Duration = .seconds(5),
                totalTimeout: Duration = .seconds(20),
                maxBytes: Int = 20 << 20,
                maxRedirects: Int = 5,
                retry: RetryPolicy = RetryPolicy(),
                allowedFileRoots: [String] = [],
                allowPrivateNetworks: Bool = false,
                allowedAddressRanges: [IPAddressRange] = [],
                userAgent: String = "clipd/0.1 (image fetcher)",
                accept: String = "image/jpeg,image/png;q=0.9,image/*;q=0.5,*/*;q=0.1",
                caCertificatesPath: String? = nil,
                maxConcurrentTransfers: Int = 16) {
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.maxBytes = maxBytes
        self.maxRedirects = maxRedirects
        self.retry = retry
        self.allowedFileRoots = allowedFileRoots
        self.allowPrivateNetworks = allowPrivateNetworks
        self.allowedAddressRanges = allowedAddressRanges
        self.userAgent = userAgent
        self.accept = accept
        self.caCertificatesPath = caCertificatesPath
        self.maxConcurrentTransfers = maxConcurrentTransfers
    }
}

/// Exponential backoff with jitter for retriable failures (timeouts, connection errors,
/// HTTP 429 and 5xx), bounded by attempts and by a total time budget so a failing URL
/// cannot hold up the records behind it for longer than `totalBudget`.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, including the first; 1 means never retry.
    public var maxAttempts: Int
    /// Delay before the first retry; later ones multiply by `multiplier`, up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var multiplier: Double
    /// Fraction of each delay that is randomised (0 = fixed delays, 1 = anywhere from 0 to
    /// the full delay), so clients that failed together do not retry together.
    public var jitter: Double
    /// A server's Retry-After up to this long is waited for (instead of the backoff, when
    /// longer); a longer one ends the retries at once.
    public var maxRetryAfter: Duration
    /// Wall time from the first attempt after which nothing more is tried; also caps the
    /// timeout of the last attempt.
    public var totalBudget: Duration

    public init(maxAttempts: Int = 3,
                initialBackoff: Duration = .milliseconds(250),
                maxBackoff: Duration = .seconds(4),
                multiplier: Double = 2,
                jitter: Double = 0.5,
                maxRetryAfter: Duration = .seconds(10),
                totalBudget: Duration = .seconds(30)) {
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.multiplier = multiplier
        self.jitter = jitter
        self.maxRetryAfter = maxRetryAfter
        self.totalBudget = totalBudget
    }

    /// One attempt, no retries.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// What to do after a failed attempt.
    enum Decision: Equatable {
        case retry(after: Duration)
        case giveUp(reason: String)
    }

    /// Decides whether attempt number `attempt` (1-based) that just failed is followed by
    /// another, and after how long. `random` returns a value in 0..<1.
    func decision(after attempt: Int, error: FetchError, retryAfter: Duration?,
                  elapsed: Duration, random: () -> Double) -> Decision {
        guard error.isRetriable else { return .giveUp(reason: "not retriable") }
        guard attempt < maxAttempts else { return .giveUp(reason: "\(maxAttempts) attempts made") }
        var delay = backoff(beforeRetry: attempt, random: random)
        if let retryAfter {
            guard retryAfter <= maxRetryAfter else {
                return .giveUp(reason: "server asked to wait \(retryAfter), more than \(maxRetryAfter)")
            }
            delay = max(delay, retryAfter)
        }
        // A retry needs time to run as well as to wait; one that could only start at the end
        // of the budget is pointless.
        guard elapsed + delay < totalBudget else { return .giveUp(reason: "retry budget \(totalBudget) spent") }
        return .retry(after: delay)
    }

    /// The jittered delay before retry number `retry` (1 = the first retry).
    func backoff(beforeRetry retry: Int, random: () -> Double) -> Duration {
        let base = initialBackoff.seconds * pow(multiplier, Double(max(0, retry - 1)))
        let capped = min(base, maxBackoff.seconds)
        let clampedJitter = min(max(jitter, 0), 1)
        let seconds = capped * (1 - clampedJitter * random())
        return .nanoseconds(Int64(seconds * 1e9))
    }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }

    var milliseconds: Int {
        let parts = components
        return Int(parts.seconds) * 1000 + Int(parts.attoseconds / 1_000_000_000_000_000)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
