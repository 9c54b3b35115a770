/// The one error the Fetch module throws: what failed (`class`), a message for people, and
/// whether trying the same URL again later can help (`isRetriable`).
///
/// `ImageFetcher` has already retried retriable failures within its `RetryPolicy` when it
/// throws; `isRetriable` then tells a caller (e.g. the dead-letter writer) whether a later
/// replay of the record might succeed.
public struct FetchError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Machine-readable failure class; `rawValue` is the string stored with dead letters.
    public enum Class: String, Sendable, Hashable, CaseIterable {
        /// The URL cannot be parsed, has no host, or is too long.
        case badURL = "bad_url"
        /// A scheme other than http, https or file (also a redirect to one).
        case unsupportedScheme = "unsupported_scheme"
        /// Every address the host resolved to is loopback, private, link-local or otherwise
        /// non-public, and the configuration does not allow it (SSRF guard).
        case forbiddenAddress = "forbidden_address"
        /// A file URL outside the configured roots, file URLs disabled, or not a regular file.
        case fileNotAllowed = "file_not_allowed"
        /// HTTP 404/410, or a missing file under an allowed root.
        case notFound = "not_found"
        /// Any other non-2xx HTTP status; retriable for 429 and 5xx.
        case httpStatus = "http_status"
        /// Connect or total timeout (or the retry budget ran out during a transfer).
        case timeout = "timeout"
        /// DNS failure, connection refused or reset, malformed or truncated response.
        case connection = "connection"
        /// TLS handshake or certificate verification failed.
        case tls = "tls"
        /// The body (or its announced Content-Length) exceeds `FetchConfiguration.maxBytes`.
        case tooLarge = "too_large"
        /// More redirects than `FetchConfiguration.maxRedirects` (a redirect loop ends here).
        case tooManyRedirects = "too_many_redirects"
        /// Reading a local file failed, or libcurl failed in an unexpected way.
        case io = "io"
        /// The calling task was cancelled.
        case cancelled = "cancelled"
    }

    /// What failed. (`error.class` reads naturally at call sites.)
    public let `class`: Class
    /// One line for logs and the dead-letter table.
    public let message: String
    /// Whether a later attempt at the same URL can succeed.
    public let isRetriable: Bool
    /// The HTTP status of the last response, when the failure is an HTTP status.
    public let httpStatus: Int?
    /// How many attempts were made before giving up (1 when nothing was retried).
    public internal(set) var attempts: Int

    public init(_ errorClass: Class, _ message: String, isRetriable: Bool? = nil,
                httpStatus: Int? = nil, attempts: Int = 1) {
        self.class = errorClass
        self.message = message
        self.httpStatus = httpStatus
        self.attempts = attempts
        self.isRetriable = isRetriable ?? Self.defaultRetriability(errorClass, httpStatus: httpStatus)
    }

    public var description: String {
        let tries = attempts > 1 ? " (after \(attempts) attempts)" : ""
        return "\(self.class.rawValue): \(message)\(tries)"
    }

    /// Transient network conditions and overloaded servers are worth another try; answers
    /// that will not change (4xx, policy refusals, oversized bodies) are not.
    static func defaultRetriability(_ errorClass: Class, httpStatus: Int?) -> Bool {
        switch errorClass {
        case .timeout, .connection:
            return true
        case .httpStatus:
            guard let status = httpStatus else { return false }
            return status == 429 || (500...599).contains(status)
        case .badURL, .unsupportedScheme, .forbiddenAddress, .fileNotAllowed, .notFound, .tls,
             .tooLarge, .tooManyRedirects, .io, .cancelled:
            return false
        }
    }
}
