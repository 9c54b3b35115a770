import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import NIOPosix
import ServiceLifecycle

/// The daemon's HTTP endpoint (`/metrics`, `/healthz`, `/readyz`), served by Hummingbird on
/// swift-nio: connections are handled concurrently on a small event-loop group of its own, so a
/// slow or idle client never holds up a probe.
///
/// Limits, per connection:
/// - a request must arrive completely (request line, headers, body) within `requestTimeout` of
///   the connection opening or the previous response (slow-loris clients are closed);
/// - a connection without a request for `requestTimeout` is closed the same way (idle keep-alive);
/// - request headers are limited in size and count (`maxHeaderBytes`, `maxHeaderCount`);
/// - at most `maxConnections` connections are accepted at once; further ones wait in the backlog.
///
/// It is a `Service`: `run()` binds, serves until graceful shutdown or cancellation, and closes
/// every connection on the way out.
public final class HTTPEndpoint: Service, Sendable {
    /// What a route answers.
    public struct Reply: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: String

        public init(status: Int, contentType: String, body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    /// Maps a request path (without the query) to a reply. Called for GET and HEAD only.
    public typealias Handler = @Sendable (_ path: String) -> Reply

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

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public let configuration: Configuration
    private let handler: Handler
    private let logger: Logger
    private let onListening: @Sendable (_ port: Int) -> Void

    /// - Parameter onListening: called once the socket is bound, with the actual port.
    public init(configuration: Configuration, logger: Logger, onListening: @escaping @Sendable (_ port: Int) -> Void = { _ in },
                handler: @escaping Handler) {
        self.configuration = configuration
        self.handler = handler
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
            responder: EndpointResponder(handler: handler),
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

/// Hummingbird responder over the endpoint's handler (issue-14 style APIs can add a Router next to it).
struct EndpointResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let handler: HTTPEndpoint.Handler

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        let reply = HTTPEndpoint.reply(method: request.method, path: request.uri.path, handler: handler)
        let body = ByteBuffer(string: reply.body)
        var headers = HTTPFields()
        headers[.contentType] = reply.contentType
        if request.method == .head {
            headers[.contentLength] = "\(body.readableBytes)"
            return Response(status: .init(code: reply.status), headers: headers, body: ResponseBody())
        }
        return Response(status: .init(code: reply.status), headers: headers, body: ResponseBody(byteBuffer: body))
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
