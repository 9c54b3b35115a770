import Executors
import CCurl
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The only file that touches libcurl. Everything here is blocking and runs on
// `WorkerPool` threads; nothing from CCurl leaves this file.

/// One HTTP(S) GET with the fetcher's limits.
struct HTTPTransferRequest: Sendable {
    var url: String
    var connectTimeout: Duration
    var totalTimeout: Duration
    /// When the retry budget runs out; the attempt's timeouts are cut to it when it starts
    /// (after any wait for a free worker).
    var budgetDeadline: ContinuousClock.Instant
    var maxBytes: Int
    var maxRedirects: Int
    var userAgent: String
    var accept: String
    /// Configured headers for this host (`Name: value` lines); redirects are then not followed.
    var extraHeaders: [String] = []
    var caCertificatesPath: String?
    var addressPolicy: AddressPolicy
}

/// What one transfer produced.
enum HTTPTransferOutcome: Sendable {
    case success(body: [UInt8], status: Int, finalURL: String)
    /// `retryAfter` carries the server's Retry-After, when it sent one.
    case failure(FetchError, retryAfter: Duration?)
}

/// libcurl's process-wide setup, done once before the first handle exists.
private let curlGlobalInitResult: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

/// Easy handles kept between transfers so connections, DNS results and TLS sessions are
/// reused. A handle is used by one thread at a time: taken out, used, put back.
final class CurlHandleCache: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [CurlEasyHandle] = []

    fileprivate func take() -> CurlEasyHandle? {
        lock.lock()
        let cached = idle.popLast()
        lock.unlock()
        return cached ?? CurlEasyHandle()
    }

    fileprivate func giveBack(_ handle: CurlEasyHandle) {
        lock.lock()
        idle.append(handle)
        lock.unlock()
    }

    /// Performs `request` on a cached handle; blocks the calling thread until done.
    func perform(_ request: HTTPTransferRequest, cancellation: CancellationFlag) -> HTTPTransferOutcome {
        guard curlGlobalInitResult == CURLE_OK else {
            return .failure(FetchError(.io, "libcurl failed to initialise (code \(curlGlobalInitResult.rawValue))"), retryAfter: nil)
        }
        guard let handle = take() else {
            return .failure(FetchError(.io, "libcurl could not create a handle"), retryAfter: nil)
        }
        let outcome = handle.perform(request, cancellation: cancellation)
        giveBack(handle)
        return outcome
    }
}

/// Owns one `CURL *` and its error buffer.
private final class CurlEasyHandle {
    let raw: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard let raw = curl_easy_init() else { return nil }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    func perform(_ request: HTTPTransferRequest, cancellation: CancellationFlag) -> HTTPTransferOutcome {
        let budgetLeft = ContinuousClock.now.duration(to: request.budgetDeadline)
        guard budgetLeft >= .milliseconds(1) else {
            return .failure(FetchError(.timeout, "retry budget spent before fetching \(request.url)"), retryAfter: nil)
        }
        let totalTimeout = min(request.totalTimeout, budgetLeft)
        curl_easy_reset(raw)
        errorBuffer[0] = 0
        let context = TransferContext(handle: raw, request: request, cancellation: cancellation)
        let contextPointer = Unmanaged.passUnretained(context).toOpaque()

        var setupFailures: [CURLoption] = []
        func check(_ code: CURLcode, _ option: CURLoption) {
            if code != CURLE_OK { setupFailures.append(option) }
        }
        func setLong(_ option: CURLoption, _ value: Int) { check(clipd_curl_setopt_long(raw, option, value), option) }
        func setString(_ option: CURLoption, _ value: String) {
            // libcurl copies string options, so the C string need not outlive this call.
            value.withCString { check(clipd_curl_setopt_string(raw, option, $0), option) }
        }

        setString(CURLOPT_URL, request.url)
        setLong(CURLOPT_NOSIGNAL, 1)
        setString(CURLOPT_PROTOCOLS_STR, "http,https")
        setString(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        // Configured headers (credentials) must not travel to another host with a redirect.
        setLong(CURLOPT_FOLLOWLOCATION, request.extraHeaders.isEmpty ? 1 : 0)
        setLong(CURLOPT_MAXREDIRS, request.maxRedirects)
        setLong(CURLOPT_CONNECTTIMEOUT_MS, max(1, min(request.connectTimeout, totalTimeout).milliseconds))
        setLong(CURLOPT_TIMEOUT_MS, max(1, totalTimeout.milliseconds))
        check(clipd_curl_setopt_offset(raw, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(request.maxBytes)), CURLOPT_MAXFILESIZE_LARGE)
        setString(CURLOPT_USERAGENT, request.userAgent)
        // libcurl keeps a pointer to the header list until the transfer ends.
        var headers = curl_slist_append(nil, "Accept: \(request.accept)")
        for header in request.extraHeaders { headers = curl_slist_append(headers, header) }
        defer { curl_slist_free_all(headers) }
        check(clipd_curl_setopt_pointer(raw, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headers)), CURLOPT_HTTPHEADER)
        if let caCertificatesPath = request.caCertificatesPath {
            setString(CURLOPT_CAINFO, caCertificatesPath)
            check(clipd_curl_setopt_pointer(raw, CURLOPT_CAPATH, nil), CURLOPT_CAPATH)
        }
        // Environment proxies would make the SSRF check see the proxy's address instead of
        // the target's; the fetcher always connects directly.
        setString(CURLOPT_PROXY, "")
        check(clipd_curl_setopt_pointer(raw, CURLOPT_ERRORBUFFER, errorBuffer), CURLOPT_ERRORBUFFER)
        check(clipd_curl_setopt_write_function(raw, curlWriteCallback), CURLOPT_WRITEFUNCTION)
        check(clipd_curl_setopt_pointer(raw, CURLOPT_WRITEDATA, contextPointer), CURLOPT_WRITEDATA)
        check(clipd_curl_setopt_opensocket_function(raw, curlOpenSocketCallback), CURLOPT_OPENSOCKETFUNCTION)
        check(clipd_curl_setopt_pointer(raw, CURLOPT_OPENSOCKETDATA, contextPointer), CURLOPT_OPENSOCKETDATA)
        check(clipd_curl_setopt_xferinfo_function(raw, curlProgressCallback), CURLOPT_XFERINFOFUNCTION)
        check(clipd_curl_setopt_pointer(raw, CURLOPT_XFERINFODATA, contextPointer), CURLOPT_XFERINFODATA)
        setLong(CURLOPT_NOPROGRESS, 0)

        guard setupFailures.isEmpty else {
            let names = setupFailures.map { String($0.rawValue) }.joined(separator: ",")
            return .failure(FetchError(.io, "libcurl rejected options \(names)"), retryAfter: nil)
        }
        if cancellation.isCancelled {
            return .failure(FetchError(.cancelled, "cancelled before the transfer started"), retryAfter: nil)
        }

        let code = withExtendedLifetime(context) { curl_easy_perform(raw) }
        defer { curl_easy_reset(raw) }  // drops the callbacks' pointer to `context`
        return outcome(of: code, context: context, url: request.url)
    }

    private func outcome(of code: CURLcode, context: TransferContext, url: String) -> HTTPTransferOutcome {
        var status = 0
        _ = clipd_curl_getinfo_long(raw, CURLINFO_RESPONSE_CODE, &status)
        var retryAfterSeconds: curl_off_t = 0
        _ = clipd_curl_getinfo_offset(raw, CURLINFO_RETRY_AFTER, &retryAfterSeconds)
        let retryAfter: Duration? = retryAfterSeconds > 0 ? .seconds(retryAfterSeconds) : nil
        var effectiveURLPointer: UnsafeMutablePointer<CChar>? = nil
        _ = clipd_curl_getinfo_string(raw, CURLINFO_EFFECTIVE_URL, &effectiveURLPointer)
        let finalURL = effectiveURLPointer.map { String(cString: $0) } ?? url

        switch context.abortReason {
        case .tooLarge(let received):
            return .failure(FetchError(.tooLarge, "body of \(finalURL) exceeds the limit of \(context.maxBytes) bytes (stopped reading at \(received))"), retryAfter: nil)
        case .cancelled:
            return .failure(FetchError(.cancelled, "transfer of \(finalURL) cancelled"), retryAfter: nil)
        case .none:
            break
        }

        let isSuccessStatus = (200...299).contains(status)
        if code == CURLE_OK || (status != 0 && !isSuccessStatus && context.sawNonSuccessStatus) {
            // An error status aborts the transfer in the write callback before its body is
            // stored; the status is the answer either way.
            if isSuccessStatus {
                return .success(body: context.body, status: status, finalURL: finalURL)
            }
            return .failure(Self.statusError(status, url: finalURL), retryAfter: retryAfter)
        }
        if code == CURLE_FILESIZE_EXCEEDED && status != 0 && !isSuccessStatus {
            return .failure(Self.statusError(status, url: finalURL), retryAfter: retryAfter)
        }

        if code == CURLE_FILESIZE_EXCEEDED {
            var announced: curl_off_t = -1
            _ = clipd_curl_getinfo_offset(raw, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced)
            let size = announced >= 0 ? "Content-Length \(announced)" : "Content-Length"
            return .failure(FetchError(.tooLarge, "\(size) of \(finalURL) exceeds the limit of \(context.maxBytes) bytes"), retryAfter: nil)
        }
        let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
        // Judged for the last hop only: an earlier hop's permitted connection says nothing
        // about where the redirect pointed.
        if let lastHop = context.connectionsByURL[finalURL], !lastHop.refused.isEmpty, lastHop.permitted == 0 {
            let refused = lastHop.refused.joined(separator: ", ")
            return .failure(FetchError(.forbiddenAddress, "refused to connect to non-public address \(refused) for \(finalURL)"), retryAfter: nil)
        }
        return .failure(Self.classify(code, detail: detail, url: finalURL), retryAfter: nil)
    }

    static func statusError(_ status: Int, url: String) -> FetchError {
        let errorClass: FetchError.Class = (status == 404 || status == 410) ? .notFound : .httpStatus
        return FetchError(errorClass, "HTTP \(status) from \(url)", httpStatus: status)
    }

    static func classify(_ code: CURLcode, detail: String, url: String) -> FetchError {
        let message = "\(detail) (\(url))"
        switch code {
        case CURLE_URL_MALFORMAT:
            return FetchError(.badURL, message)
        case CURLE_UNSUPPORTED_PROTOCOL:
            return FetchError(.unsupportedScheme, "only http and https may be fetched or redirected to: \(message)")
        case CURLE_OPERATION_TIMEDOUT:
            return FetchError(.timeout, message)
        case CURLE_TOO_MANY_REDIRECTS:
            return FetchError(.tooManyRedirects, "redirect limit reached (redirect loop?): \(message)")
        case CURLE_FILESIZE_EXCEEDED:
            return FetchError(.tooLarge, "announced Content-Length exceeds the limit: \(message)")
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            return FetchError(.tls, message)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_SSL_CONNECT_ERROR,
             CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE,
             CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_HTTP3,
             CURLE_BAD_CONTENT_ENCODING:
            return FetchError(.connection, message)
        case CURLE_ABORTED_BY_CALLBACK:
            return FetchError(.cancelled, message)
        default:
            return FetchError(.io, "libcurl error \(code.rawValue): \(message)")
        }
    }
}

/// Per-transfer state shared with libcurl's callbacks (all on the transfer's thread).
private final class TransferContext {
    enum AbortReason { case tooLarge(received: Int), cancelled }

    let handle: UnsafeMutableRawPointer
    let maxBytes: Int
    let policy: AddressPolicy
    let cancellation: CancellationFlag
    var body: [UInt8] = []
    var abortReason: AbortReason?
    var sawNonSuccessStatus = false
    var checkedStatus = false
    /// Socket decisions per URL being connected for (one entry per redirect hop).
    var connectionsByURL: [String: (permitted: Int, refused: [String])] = [:]

    init(handle: UnsafeMutableRawPointer, request: HTTPTransferRequest, cancellation: CancellationFlag) {
        self.handle = handle
        self.maxBytes = request.maxBytes
        self.policy = request.addressPolicy
        self.cancellation = cancellation
    }

    /// Returns how many bytes were consumed; anything else makes libcurl abort.
    func receive(_ data: UnsafeRawBufferPointer) -> Int {
        if !checkedStatus {
            // Headers are complete when the first body bytes arrive; an error status ends the
            // transfer here instead of downloading an error page.
            checkedStatus = true
            var status = 0
            _ = clipd_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
            if !(200...299).contains(status) {
                sawNonSuccessStatus = true
                return 0
            }
            var announced: curl_off_t = -1
            _ = clipd_curl_getinfo_offset(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced)
            if announced > 0 && announced <= maxBytes { body.reserveCapacity(Int(announced)) }
        }
        guard body.count + data.count <= maxBytes else {
            abortReason = .tooLarge(received: body.count + data.count)
            return 0
        }
        body.append(contentsOf: data)
        return data.count
    }

    /// The SSRF guard: every socket libcurl opens, for every address of every redirect hop,
    /// is checked here, after DNS resolution.
    func openSocket(_ address: UnsafeMutablePointer<curl_sockaddr>) -> curl_socket_t {
        var urlPointer: UnsafeMutablePointer<CChar>? = nil
        _ = clipd_curl_getinfo_string(handle, CURLINFO_EFFECTIVE_URL, &urlPointer)
        let hop = urlPointer.map { String(cString: $0) } ?? ""
        let family = address.pointee.family
        let addressField = UnsafeRawPointer(address) + MemoryLayout<curl_sockaddr>.offset(of: \curl_sockaddr.addr)!
        let ip: IPAddress
        switch family {
        case AF_INET:
            let inet = addressField.loadUnaligned(as: sockaddr_in.self)
            ip = .v4(UInt32(bigEndian: inet.sin_addr.s_addr))
        case AF_INET6:
            var inet6 = addressField.loadUnaligned(as: sockaddr_in6.self)
            ip = .v6(withUnsafeBytes(of: &inet6.sin6_addr) { Array($0) })
        default:
            connectionsByURL[hop, default: (0, [])].refused.append("address family \(family)")
            return CURL_SOCKET_BAD
        }
        if let reason = policy.refusal(for: ip) {
            connectionsByURL[hop, default: (0, [])].refused.append("\(ip) (\(reason))")
            return CURL_SOCKET_BAD
        }
        connectionsByURL[hop, default: (0, [])].permitted += 1
        return socket(family, address.pointee.socktype, address.pointee.protocol)
    }
}

private func context(_ pointer: UnsafeMutableRawPointer?) -> TransferContext {
    Unmanaged<TransferContext>.fromOpaque(pointer!).takeUnretainedValue()
}

private let curlWriteCallback: curl_write_callback = { data, size, count, userData in
    let byteCount = size * count
    guard byteCount > 0, let data else { return byteCount }
    return context(userData).receive(UnsafeRawBufferPointer(start: data, count: byteCount))
}

private let curlOpenSocketCallback: curl_opensocket_callback = { userData, _, address in
    guard let address else { return CURL_SOCKET_BAD }
    return context(userData).openSocket(address)
}

private let curlProgressCallback: curl_xferinfo_callback = { userData, _, _, _, _ in
    let transfer = context(userData)
    if transfer.cancellation.isCancelled {
        transfer.abortReason = .cancelled
        return 1
    }
    return 0
}
