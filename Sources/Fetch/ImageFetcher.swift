import Executors
import ImageIO
import Logging

/// The bytes behind an image URL and the format its leading bytes declare.
public struct FetchedImage: Sendable {
    public let bytes: [UInt8]
    /// Sniffed from the bytes, never from the URL or Content-Type; `.unknown` bodies are
    /// returned too, and the decoder decides what to do with them.
    public let format: ImageFormat
    /// The URL the bytes came from after redirects.
    public let finalURL: String
    /// Attempts it took (1 without retries).
    public let attempts: Int
}

/// Turns image URLs (`http`, `https`, and `file` under allowed roots) into bytes, within
/// the limits of a `FetchConfiguration`: timeouts, a streamed size cap, a redirect limit,
/// retries with backoff, and an SSRF guard that checks every address actually connected to.
///
/// Transfers block threads that the fetcher owns (at most
/// `configuration.maxConcurrentTransfers`); `fetch` only suspends, so it is safe to call
/// from any task. One fetcher is meant to be shared by the whole process: it keeps
/// connections alive between fetches.
///
/// ```swift
/// let fetcher = ImageFetcher(configuration: .init(allowedFileRoots: ["/srv/images"]))
/// let image = try await fetcher.fetch("https://example.com/a.jpg")
/// if image.format == .jpeg { /* decode image.bytes */ }
/// ```
public final class ImageFetcher: Sendable {
    public let configuration: FetchConfiguration
    private let logger: Logger
    private let workers: WorkerPool
    private let curlHandles = CurlHandleCache()
    private let files: FileSource
    private let addressPolicy: AddressPolicy
    private let hostGate: HostGate

    /// Longest URL accepted; longer ones are `bad_url` (they are never legitimate image
    /// links and some servers misbehave on them).
    public static let maxURLLength = 8192

    public init(configuration: FetchConfiguration = FetchConfiguration(),
                logger: Logger = Logger(label: "clipd.fetch")) {
        self.configuration = configuration
        self.logger = logger
        self.workers = WorkerPool(name: "clipd-fetch", width: configuration.maxConcurrentTransfers)
        self.files = FileSource(roots: configuration.allowedFileRoots, maxBytes: configuration.maxBytes)
        self.addressPolicy = AddressPolicy(allowPrivateNetworks: configuration.allowPrivateNetworks,
                                           allowedRanges: configuration.allowedAddressRanges)
        self.hostGate = HostGate(policy: .init(concurrency: configuration.hostConcurrency, minInterval: configuration.hostMinInterval,
                                               failuresBeforeBackoff: configuration.hostFailuresBeforeBackoff,
                                               initialBackoff: configuration.hostBackoff, maxBackoff: configuration.hostMaxBackoff))
        if files.roots.count < configuration.allowedFileRoots.count {
            logger.warning("some allowed file roots do not exist and are ignored",
                           metadata: ["configured": "\(configuration.allowedFileRoots)", "usable": "\(files.roots)"])
        }
    }

    /// Fetches `url`, retrying retriable failures as `configuration.retry` allows.
    ///
    /// - Throws: `FetchError` only; `attempts` on it says how many were made. Cancelling
    ///   the calling task aborts the transfer and throws class `cancelled`.
    public func fetch(_ url: String) async throws(FetchError) -> FetchedImage {
        let scheme = try Self.scheme(of: url)
        let policy = configuration.retry
        let clock = ContinuousClock()
        let start = clock.now
        let budgetDeadline = start.advanced(by: policy.totalBudget)
        var attempt = 0
        while true {
            attempt += 1
            let outcome = await attemptOnce(url, scheme: scheme, budgetDeadline: budgetDeadline)
            let error: FetchError, retryAfter: Duration?
            switch outcome {
            case .success(let body, _, let finalURL):
                return FetchedImage(bytes: body, format: ImageFormat(sniffing: body), finalURL: finalURL, attempts: attempt)
            case .failure(let failure, let serverRetryAfter):
                error = failure
                retryAfter = serverRetryAfter
            }
            let decision = policy.decision(after: attempt, error: error, retryAfter: retryAfter,
                                           elapsed: start.duration(to: clock.now),
                                           random: { Double.random(in: 0..<1) })
            switch decision {
            case .giveUp(let reason):
                var final = error
                final.attempts = attempt
                logger.debug("fetch failed", metadata: [
                    "url": "\(url)", "class": "\(error.class.rawValue)", "attempts": "\(attempt)",
                    "stop": "\(reason)", "error": "\(error.message)",
                ])
                throw final
            case .retry(let delay):
                logger.debug("fetch will be retried", metadata: [
                    "url": "\(url)", "class": "\(error.class.rawValue)", "attempt": "\(attempt)",
                    "delay_ms": "\(delay.milliseconds)", "error": "\(error.message)",
                ])
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw FetchError(.cancelled, "cancelled while waiting to retry \(url)", attempts: attempt)
                }
            }
        }
    }

    private enum Scheme { case http, file }

    private static func scheme(of url: String) throws(FetchError) -> Scheme {
        guard !url.isEmpty, url.utf8.count <= maxURLLength else {
            throw FetchError(.badURL, url.isEmpty ? "empty URL" : "URL longer than \(maxURLLength) bytes")
        }
        guard !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
            throw FetchError(.badURL, "URL contains whitespace or control characters: \(url.debugDescription)")
        }
        // RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        func isLetter(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("A"..."Z").contains(c) }
        func isSchemeCharacter(_ c: Unicode.Scalar) -> Bool { isLetter(c) || ("0"..."9").contains(c) || c == "+" || c == "-" || c == "." }
        guard let colon = url.firstIndex(of: ":"), colon != url.startIndex,
              url[..<colon].unicodeScalars.allSatisfy(isSchemeCharacter),
              let first = url.unicodeScalars.first, isLetter(first) else {
            throw FetchError(.badURL, "not an absolute URL: \(url)")
        }
        switch url[..<colon].lowercased() {
        case "http", "https":
            guard url[url.index(after: colon)...].hasPrefix("//") else {
                throw FetchError(.badURL, "http(s) URL without '//host': \(url)")
            }
            return .http
        case "file":
            return .file
        case let other:
            throw FetchError(.unsupportedScheme, "scheme '\(other)' is not supported (http, https, file): \(url)")
        }
    }

    private func attemptOnce(_ url: String, scheme: Scheme, budgetDeadline: ContinuousClock.Instant) async -> HTTPTransferOutcome {
        switch scheme {
        case .file:
            let files = self.files
            let result = await workers.run { files.load(url) }
            switch result {
            case .success(let bytes): return .success(body: bytes, status: 200, finalURL: url)
            case .failure(let error): return .failure(error, retryAfter: nil)
            }
        case .http:
            let host = HostGate.host(of: url) ?? ""
            let headers = configuration.hostHeaders[host]?.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" } ?? []
            let request = HTTPTransferRequest(
                url: url, connectTimeout: configuration.connectTimeout, totalTimeout: configuration.totalTimeout,
                budgetDeadline: budgetDeadline,
                maxBytes: configuration.maxBytes, maxRedirects: configuration.maxRedirects,
                userAgent: configuration.userAgent, accept: configuration.accept, extraHeaders: headers,
                caCertificatesPath: configuration.caCertificatesPath,
                addressPolicy: addressPolicy)
            do {
                try await hostGate.acquire(host, deadline: budgetDeadline)
            } catch {
                return .failure(error, retryAfter: nil)
            }
            let cancellation = CancellationFlag()
            let handles = curlHandles
            let outcome = await withTaskCancellationHandler {
                await workers.run { handles.perform(request, cancellation: cancellation) }
            } onCancel: {
                cancellation.cancel()
            }
            switch outcome {
            case .success:
                await hostGate.release(host, hostFailed: false, retryAfter: nil)
            case .failure(let error, let retryAfter):
                await hostGate.release(host, hostFailed: Self.isHostFailure(error), retryAfter: retryAfter)
            }
            return outcome
        }
    }

    /// Failures that say the host is in trouble (as opposed to this URL: 404, too large, …).
    static func isHostFailure(_ error: FetchError) -> Bool {
        switch error.class {
        case .connection, .timeout, .tls: return true
        case .httpStatus: return (error.httpStatus ?? 0) >= 500
        default: return false
        }
    }
}
