// libFuzzer target: raw bytes from a client into the daemon's HTTP server pipeline, in process.
//
// The channel is built as Hummingbird's HTTP1Channel builds it (NIO's HTTP/1 server codec with
// the endpoint's header limits, the HTTPTypes codec, the endpoint's RequestDeadlineHandler) on an
// EmbeddedChannel; a responder at the end routes each request as the server does
// (Hummingbird's URI → HTTPEndpoint.reply). The input is fed in chunks whose size the first byte
// picks, so requests split at every position are parsed. Invariants: nothing traps, every
// answered request gets one of the endpoint's statuses, the deadline closes every connection
// that sends nothing more.
import Foundation
import HTTPServer
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Answers every complete request the way `EndpointResponder` does.
final class Responder: ChannelInboundHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart
    var head: HTTPRequest?
    var answered = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request): head = request
        case .body: break
        case .end:
            guard let request = head else { fatalError("request end without a head") }
            head = nil
            let uri = URI(request.path ?? "")
            let path = uri.path
            // The query parser the endpoint applies: any bytes, no trap; what it accepts re-encodes losslessly.
            if let query = QueryString.parse(uri.query ?? "") {
                let encode = { (text: String) in text.utf8.map { String(format: "%%%02X", $0) }.joined() }
                let again = QueryString.parse(query.map { encode($0.name) + "=" + encode($0.value) }.joined(separator: "&"))
                guard let again, again.map(\.name) == query.map(\.name), again.map(\.value) == query.map(\.value) else {
                    fatalError("query does not survive re-encoding: \(query)")
                }
            }
            let reply = HTTPEndpoint.reply(method: request.method, path: path, handler: route)
            guard [200, 404, 405, 503].contains(reply.status) else { fatalError("unexpected status \(reply.status) for \(path)") }
            var fields = HTTPFields()
            fields[.contentType] = reply.contentType
            let body = context.channel.allocator.buffer(bytes: reply.body)
            fields[.contentLength] = "\(body.readableBytes)"
            context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: reply.status), headerFields: fields))), promise: nil)
            if request.method != .head { context.write(wrapOutboundOut(.body(body)), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            answered += 1
        }
    }
}

@Sendable func route(_ path: String) -> HTTPEndpoint.Reply {
    switch path {
    case "/metrics": return .init(status: 200, contentType: "text/plain; version=0.0.4", body: "clipd_up 1\n")
    case "/healthz": return .init(status: 200, contentType: "text/plain", body: "ok\n")
    case "/readyz": return .init(status: 503, contentType: "text/plain", body: "not ready: starting\n")
    default: return .init(status: 404, contentType: "text/plain", body: "not found\n")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let first = bytes.first else { return 0 }
    let chunk = Int(first % 32) + 1
    let input = bytes.dropFirst()

    let configuration = HTTPEndpoint.Configuration(host: "127.0.0.1", port: 0)
    let loop = EmbeddedEventLoop()
    let channel = EmbeddedChannel(loop: loop)
    let responder = Responder()
    do {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = configuration.maxHeaderBytes
        limits.maxHeaderListSize = configuration.maxHeaderBytes
        limits.maxHeaderFieldCount = configuration.maxHeaderCount
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try channel.pipeline.syncOperations.addHandler(HTTPEndpoint.requestDeadlineHandler(configuration))
        try channel.pipeline.syncOperations.addHandler(responder)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    } catch {
        fatalError("pipeline set-up failed: \(error)")
    }

    var index = input.startIndex
    while index < input.endIndex && channel.isActive {
        let end = min(index + chunk, input.endIndex)
        var buffer = channel.allocator.buffer(capacity: end - index)
        buffer.writeBytes(input[index..<end])
        do { try channel.writeInbound(buffer) } catch { break }  // a parse error: the server closes
        index = end
        // Drain what was answered.
        while let _ = try? channel.readOutbound(as: ByteBuffer.self) {}
    }
    // A request never completed is cut off at the deadline.
    loop.advanceTime(by: .nanoseconds(HTTPEndpoint.nanoseconds(configuration.requestTimeout) + 1))
    if channel.isActive { fatalError("a connection outlived the request deadline") }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    return 0
}

// Built by SwiftPM (Fuzz/swiftpm.sh), the executable's entry point is renamed to
// `FuzzHTTP_main` and `main` is linked to it; this hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("FuzzHTTP_main")
public func httpFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return llvmFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        return fuzz(UnsafeRawPointer(data), size)
    }
}
