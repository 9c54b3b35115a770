import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import NIOPosix
import ServiceLifecycle

/// The daemon's HTTP endpoint (`/metrics`, `/healthz`, `/readyz`, and the API and page the
/// handler adds), served by Hummingbird on swift-nio: connections are handled concurrently on a
/// small event-loop group of its own, so a slow or idle client never holds up a probe.
///
/// Limits, per connection:
/// - a request must arrive completely (request line, headers, body) within `requestTimeout` of
///   the connection opening or the previous response (slow-loris clients are closed);
/// - a connection without a request for `requestTimeout` is closed the same way (idle keep-alive);
/// - request headers are limited in size and count (`maxHeaderBytes`, `maxHeaderCount`), the body
///   to `maxBodyBytes` (413 past it, by `Content-Length` before reading or while reading);
/// - at most `maxConnections` connections are accepted at once; further ones wait in the backlog.
///
/// It is a `Service`: `run()` binds, serves until graceful shutdown or cancellation, and closes
/// every connection on the way out.
public final class HTTPEndpoint: Service, Sendable {
    /// What a route answers.
    public struct Reply: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]
        /// Further response headers (name, value), e.g. `Cache-Control` or `Retry-After`.
        public var headers: [String: String]

        public init(status: Int, contentType: String, body: String, headers: [String: String] = [:]) {
            self.init(status: status, contentType: contentType, bytes: Array(body.utf8), headers: headers)
        }

        public init(status: Int, contentType: String, bytes: [UInt8], headers: [String: String] = [:]) {
            self.status = status
            self.contentType = contentType
            self.body = bytes
            self.headers = headers
        }

        /// `{"error": {"message": …, "type": …}}`, the shape every JSON route answers errors in.
        public static func jsonError(status: Int, type: String, message: String, headers: [String: String] = [:]) -> Reply {
            let object: [String: Any] = ["error": ["message": message, "type": type, "status": status]]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            return Reply(status: status, contentType: "application/json", bytes: Array(data), headers: headers)
        }
    }

    /// One request as a route sees it (method, path, query, body): the body is complete (at most `maxBodyBytes`).
    public struct Request: Sendable {
        /// "GET", "POST", …
        public var method: String
        /// The path without the query, as sent (percent-encoding intact).
        public var path: String
        /// Query parameters in order, percent-decoded, `+` read as a space (HTML forms).
        public var query: [(name: String, value: String)]
        public var body: [UInt8]

        public init(method: String, path: String, query: [(name: String, value: String)] = [], body: [UInt8] = []) {
            self.method = method
            self.path = path
            self.query = query
            self.body = body
        }

        /// The first value of a query parameter.
        public func queryValue(_ name: String) -> String? {
            query.first { $0.name == name }?.value
        }
    }

    /// Maps a request path (without the query) to a reply. Called for GET and HEAD only.
    public typealias Handler = @Sendable (_ path: String) -> Reply
    /// Any request, any method, with its query and body.
    public typealias AsyncHandler = @Sendable (_ request: Request) async -> Reply

    public struct Configuration: Sendable, Equatable {
        /// IPv4 or IPv6 address, or a host name (resolved at bind time; the first address wins).
        public var host: String
        /// 0: any free port (see `onListening`).
        public var port: Int
        /// A request must arrive completely within this long; also the idle limit between requests.
        public var requestTimeout: Duration = .seconds(5)
        /// Total size of the request headers, and of any one header field.
        public var maxHeaderBytes = 16 * 1024
        public var maxHeaderCount = 100
        public var maxConnections = 1024
        /// Event-loop threads (`NIO-ELT-*`; 1 is plenty for probes and scrapes).
        public var threads = 1
        /// Largest request body accepted; a larger one is answered 413 without reading it all.
        public var maxBodyBytes = 1 << 20

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public let configuration: Configuration
    private let handler: AsyncHandler
    private let logger: Logger
    private let onListening: @Sendable (_ port: Int) -> Void

    /// - Parameter onListening: called once the socket is bound, with the actual port.
    public init(configuration: Configuration, logger: Logger, onListening: @escaping @Sendable (_ port: Int) -> Void = { _ in },
                handler: @escaping Handler) {
        self.configuration = configuration
        self.handler = { request in Self.reply(method: HTTPRequest.Method(request.method) ?? .get, path: request.path, handler: handler) }
        self.logger = logger
        self.onListening = onListening
    }

    /// An endpoint whose handler sees every request (method, query, body).
    public init(configuration: Configuration, logger: Logger, onListening: @escaping @Sendable (_ port: Int) -> Void = { _ in },
                asyncHandler: @escaping AsyncHandler) {
        self.configuration = configuration
        self.handler = asyncHandler
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        do {
            try await application(group: group).run()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    func application(group: MultiThreadedEventLoopGroup) -> some ApplicationProtocol {
        let timeout = TimeAmount.nanoseconds(Self.nanoseconds(configuration.requestTimeout))
        let configuration = self.configuration
        var http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [Self.requestDeadlineHandler(configuration)],
            idleTimeout: nil,
            httpDecoderConfiguration: .init(maxHeaderFieldSize: configuration.maxHeaderBytes, maxHeaderListSize: configuration.maxHeaderBytes,
                                            maxHeaderFieldCount: configuration.maxHeaderCount))
        http1.idleTimeout = timeout
        let onListening = self.onListening
        let logger = self.logger
        return Application(
            responder: EndpointResponder(handler: handler, maxBodyBytes: configuration.maxBodyBytes),
            server: .http1(configuration: http1),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port),
                                                    backlog: 256, reuseAddress: true,
                                                    availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("http endpoint listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
                onListening(port)
            },
            eventLoopGroupProvider: .shared(group),
            logger: logger)
    }

    /// The handler that enforces `requestTimeout` on a connection (see `RequestDeadlineHandler`);
    /// added to every connection's pipeline after the HTTP codecs.
    public static func requestDeadlineHandler(_ configuration: Configuration) -> any RemovableChannelHandler {
        RequestDeadlineHandler(timeout: .nanoseconds(nanoseconds(configuration.requestTimeout)))
    }

    public static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// The reply to one request: 405 for methods other than GET and HEAD, else the handler's
    /// reply for the path without its query. HEAD gets the headers only.
    public static func reply(method: HTTPRequest.Method, path: String, handler: Handler) -> Reply {
        guard method == .get || method == .head else {
            return Reply(status: 405, contentType: "text/plain", body: "method not allowed\n")
        }
        let route = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        return handler(route.isEmpty ? "/" : route)
    }
}

/// Hummingbird responder over the endpoint's handler: collects the body (up to the limit),
/// parses the query, and writes the handler's reply (headers only for HEAD).
struct EndpointResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let handler: HTTPEndpoint.AsyncHandler
    let maxBodyBytes: Int

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        let reply: HTTPEndpoint.Reply
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBodyBytes {
            reply = Self.tooLarge(maxBodyBytes)
        } else {
            do {
                let body = try await request.body.collect(upTo: maxBodyBytes)
                if let query = QueryString.parse(request.uri.query ?? "") {
                    reply = await handler(HTTPEndpoint.Request(method: request.method.rawValue, path: request.uri.path, query: query,
                                                               body: Array(buffer: body)))
                } else {
                    reply = .jsonError(status: 400, type: "invalid_request", message: "the query string is not valid percent-encoding")
                }
            } catch let error as HTTPError where error.status == .contentTooLarge {
                reply = Self.tooLarge(maxBodyBytes)
            }
        }
        let body = ByteBuffer(bytes: reply.body)
        var headers = HTTPFields()
        headers[.contentType] = reply.contentType
        for (name, value) in reply.headers.sorted(by: { $0.key < $1.key }) {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        if request.method == .head {
            headers[.contentLength] = "\(body.readableBytes)"
            return Response(status: .init(code: reply.status), headers: headers, body: ResponseBody())
        }
        return Response(status: .init(code: reply.status), headers: headers, body: ResponseBody(byteBuffer: body))
    }

    static func tooLarge(_ limit: Int) -> HTTPEndpoint.Reply {
        .jsonError(status: 413, type: "request_too_large", message: "the request body is larger than \(limit) bytes")
    }
}

/// `application/x-www-form-urlencoded` query strings: `a=1&b=x+y%21` → [("a", "1"), ("b", "x y!")].
public enum QueryString {
    /// nil when a `%` escape is malformed or the decoded bytes are not UTF-8.
    public static func parse(_ query: String) -> [(name: String, value: String)]? {
        var out: [(name: String, value: String)] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]), let value = parts.count > 1 ? decode(parts[1]) : "" else { return nil }
            out.append((name, value))
        }
        return out
    }

    static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Closes a connection whose next request has not arrived completely within `timeout` of the
/// connection becoming active or of the previous response ending. A client that sends its
/// headers one byte at a time, or that holds a keep-alive connection without asking anything,
/// is cut off; the server's event loop never waits for it.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelActive(context: ChannelHandlerContext) {
        if deadline == nil { arm(context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { disarm() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { arm(context) }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext) {
        disarm()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}
