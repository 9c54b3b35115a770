import Foundation
import ServiceLifecycle
import XCTest
@testable import Daemon
@testable import HTTPServer
#if canImport(Glibc)
import Glibc
#endif

/// The HTTP endpoint over real sockets on 127.0.0.1: exact replies, limits, and probes that keep
/// answering while idle and slow-loris clients hold connections open.
final class HTTPEndpointTests: XCTestCase {
    // MARK: replies

    func testRoutesKeepTheirReplies() async throws {
        let health = HealthState()
        try await withEndpoint(handler: Daemon.routes(health: health, metricsText: { "clipd_up 1\n" })) { port in
            let healthz = try HTTPProbe.get(port: port, path: "/healthz")
            XCTAssertEqual(healthz.status, 200)
            XCTAssertEqual(healthz.body, "ok\n")
            XCTAssertEqual(healthz.header("content-type"), "text/plain")
            let metrics = try HTTPProbe.get(port: port, path: "/metrics?name=x")
            XCTAssertEqual(metrics.status, 200)
            XCTAssertEqual(metrics.body, "clipd_up 1\n")
            XCTAssertEqual(metrics.header("content-type"), "text/plain; version=0.0.4")
            let notReady = try HTTPProbe.get(port: port, path: "/readyz")
            XCTAssertEqual(notReady.status, 503)
            XCTAssertEqual(notReady.body, "not ready: starting\n")
            health.set(ready: true, reason: "ready")
            XCTAssertEqual(try HTTPProbe.get(port: port, path: "/readyz").body, "ready\n")
            let missing = try HTTPProbe.get(port: port, path: "/nope")
            XCTAssertEqual(missing.status, 404)
            XCTAssertEqual(missing.body, "not found\n")
            let post = try HTTPProbe.send(port: port, "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(post.status, 405)
            XCTAssertEqual(post.body, "method not allowed\n")
            let head = try HTTPProbe.send(port: port, "HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(head.status, 200)
            XCTAssertEqual(head.body, "")
        }
    }

    func testOversizedHeadersAreRefusedAndTheServerKeepsServing() async throws {
        var configuration = HTTPEndpoint.Configuration(host: "127.0.0.1", port: 0)
        configuration.maxHeaderBytes = 4096
        try await withEndpoint(configuration: configuration, handler: { _ in .init(status: 200, contentType: "text/plain", body: "ok\n") }) { port in
            let big = String(repeating: "a", count: 64 * 1024)
            let reply = try? HTTPProbe.send(port: port, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: \(big)\r\nConnection: close\r\n\r\n")
            // Refused with a 4xx or the connection closed; never served.
            if let reply { XCTAssertTrue((400..<500).contains(reply.status), "status \(reply.status)") }
            XCTAssertEqual(try HTTPProbe.get(port: port, path: "/healthz").status, 200)
        }
    }

    func testBindsIPv6LoopbackAndHostNames() async throws {
        for host in ["::1", "localhost"] {
            var configuration = HTTPEndpoint.Configuration(host: host, port: 0)
            configuration.requestTimeout = .seconds(2)
            let family = AF_INET6
            if host == "::1" {
                // Skip where the machine has no IPv6 loopback.
                let s = socket(family, Int32(SOCK_STREAM.rawValue), 0)
                var addr = sockaddr_in6()
                addr.sin6_family = sa_family_t(AF_INET6)
                addr.sin6_addr = in6addr_loopback
                let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
                close(s)
                if ok != 0 { continue }
            }
            try await withEndpoint(configuration: configuration, handler: { _ in .init(status: 200, contentType: "text/plain", body: "ok\n") }) { port in
                let reply = try HTTPProbe.get(port: port, path: "/healthz", host: host == "::1" ? "::1" : nil)
                XCTAssertEqual(reply.body, "ok\n", host)
            }
        }
    }

    func testAnUnusableHostIsAnError() async throws {
        let endpoint = HTTPEndpoint(configuration: .init(host: "no-such-host.invalid", port: 0), logger: .init(label: "test"),
                                    handler: { _ in .init(status: 200, contentType: "text/plain", body: "") })
        do {
            try await endpoint.run()
            XCTFail("bound an unresolvable host")
        } catch {}
    }

    // MARK: non-starvation

    /// 200 idle and 20 slow-loris connections (one header byte per second) stay open while 50
    /// probes of /healthz and /metrics each complete. A server that serves one connection at a
    /// time would be held 20+ s by the slow clients; here every probe must finish within 2 s
    /// (a generous bound on a shared machine), and the server closes the slow clients at its
    /// request deadline.
    func testProbesAnswerWhileIdleAndSlowLorisConnectionsAreOpen() async throws {
        var configuration = HTTPEndpoint.Configuration(host: "127.0.0.1", port: 0)
        configuration.requestTimeout = .seconds(4)
        let handler = Daemon.routes(health: HealthState(), metricsText: { String(repeating: "clipd_metric 1\n", count: 200) })
        try await withEndpoint(configuration: configuration, handler: handler) { port in
            let idle = try (0..<200).map { _ in try HTTPProbe.connect(port: port) }
            defer { idle.forEach { close($0) } }
            let slow = try (0..<20).map { _ in try HTTPProbe.connect(port: port) }
            defer { slow.forEach { close($0) } }
            let request = Array("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: \(String(repeating: "s", count: 60))\r\n\r\n".utf8)
            let closedAfter = Locked([Int32: Double]())
            let stop = Locked(false)
            defer { stop.withLock { $0 = true } }
            let started = Date()
            let dripper = Thread {
                // One byte per second to every slow client, until the server closes it.
                for i in 0..<request.count where !stop.value {
                    for fd in slow where closedAfter.value[fd] == nil {
                        var byte = request[i]
                        if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) != 1 {
                            closedAfter.withLock { $0[fd] = Date().timeIntervalSince(started) }
                        }
                    }
                    if closedAfter.value.count == slow.count { return }
                    Thread.sleep(forTimeInterval: 1)
                }
            }
            dripper.start()
            Thread.sleep(forTimeInterval: 1.5)  // the slow clients are mid-header now

            var latencies: [Double] = []
            for i in 0..<50 {
                let path = i % 2 == 0 ? "/healthz" : "/metrics"
                let t0 = Date()
                let reply = try HTTPProbe.get(port: port, path: path)
                let seconds = Date().timeIntervalSince(t0)
                XCTAssertEqual(reply.status, 200, path)
                XCTAssertEqual(reply.body.isEmpty, false, path)
                XCTAssertLessThan(seconds, 2.0, "probe \(i) \(path) took \(seconds) s")
                latencies.append(seconds)
            }
            latencies.sort()
            let ms = { (q: Double) in String(format: "%.2f", latencies[min(latencies.count - 1, Int(q * Double(latencies.count)))] * 1000) }
            print("http probes under 200 idle + 20 slow-loris connections: p50 \(ms(0.5)) ms, p99 \(ms(0.99)) ms, max \(ms(1.0)) ms")

            // The server cuts the slow clients off at its deadline (4 s), long before their
            // headers (~80 bytes at 1 byte/s) would be complete.
            let deadline = Date().addingTimeInterval(20)
            while closedAfter.value.count < slow.count && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
            for fd in slow where closedAfter.value[fd] == nil {
                // Not noticed by a send yet: the peer's close shows as EOF.
                if HTTPProbe.isClosedByPeer(fd) { closedAfter.withLock { $0[fd] = Date().timeIntervalSince(started) } }
            }
            XCTAssertEqual(closedAfter.value.count, slow.count, "slow-loris connections the server left open")
            XCTAssertLessThan(closedAfter.value.values.max() ?? 0, 30, "closed long before the headers (\(request.count) s) could finish")
            // Idle connections are closed by the same deadline.
            XCTAssertTrue(idle.allSatisfy { HTTPProbe.isClosedByPeer($0) }, "idle connections the server left open")
        }
    }

    func testGracefulShutdownEndsTheService() async throws {
        let port = Locked(0)
        let endpoint = HTTPEndpoint(configuration: .init(host: "127.0.0.1", port: 0), logger: .init(label: "test"),
                                    onListening: { p in port.withLock { $0 = p } },
                                    handler: { _ in .init(status: 200, contentType: "text/plain", body: "ok\n") })
        let group = ServiceGroup(services: [endpoint], logger: .init(label: "test"))
        let running = Task { try await group.run() }
        try await waitFor { port.value > 0 }
        XCTAssertEqual(try HTTPProbe.get(port: port.value, path: "/healthz").body, "ok\n")
        await group.triggerGracefulShutdown()
        try await running.value
        XCTAssertThrowsError(try HTTPProbe.get(port: port.value, path: "/healthz"), "still serving after shutdown")
    }

    // MARK: helpers

    private func withEndpoint(configuration: HTTPEndpoint.Configuration = .init(host: "127.0.0.1", port: 0),
                              handler: @escaping HTTPEndpoint.Handler,
                              _ body: @escaping @Sendable (Int) throws -> Void) async throws {
        let port = Locked(0)
        let endpoint = HTTPEndpoint(configuration: configuration, logger: .init(label: "test"),
                                    onListening: { p in port.withLock { $0 = p } }, handler: handler)
        let running = Task { try await endpoint.run() }
        do {
            try await waitFor { port.value > 0 }
            // Blocking socket I/O stays off the cooperative pool.
            try await Task.detached { try body(port.value) }.value
        } catch {
            running.cancel()
            _ = try? await running.value
            throw error
        }
        running.cancel()
        _ = try? await running.value
    }

    private func waitFor(_ condition: @Sendable () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw HTTPProbe.Failure("the endpoint did not start listening") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// A value guarded by a lock, for the test's threads.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&stored) }
    var value: Value { withLock { $0 } }
}

/// Minimal blocking HTTP/1.1 client over POSIX sockets.
enum HTTPProbe {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct Reply {
        let status: Int
        let headers: [(String, String)]
        let body: String
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name }?.1 }
    }

    static func connect(port: Int, host: String? = nil) throws -> Int32 {
        let ipv6 = host == "::1"
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket: \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result: Int32
        if ipv6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            addr.sin6_addr = in6addr_loopback
            result = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            result = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard result == 0 else {
            let e = errno
            close(fd)
            throw Failure("connect: \(String(cString: strerror(e)))")
        }
        return fd
    }

    static func get(port: Int, path: String, host: String? = nil) throws -> Reply {
        try send(port: port, "GET \(path) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", host: host)
    }

    /// Sends `raw` on a new connection and reads the reply until the server closes it.
    static func send(port: Int, _ raw: String, host: String? = nil) throws -> Reply {
        let fd = try connect(port: port, host: host)
        defer { close(fd) }
        let bytes = Array(raw.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may refuse mid-request; read what it answered
            sent += n
        }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        guard let split = response.firstRange(of: [13, 10, 13, 10]) else { throw Failure("no complete response (\(response.count) bytes)") }
        let head = String(decoding: response[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure("bad status line \(head.first ?? "")") }
        let headers = head.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return Reply(status: status, headers: headers, body: String(decoding: response[split.upperBound...], as: UTF8.self))
    }

    /// True when the peer has closed `fd` (EOF or reset; nothing pending to read).
    static func isClosedByPeer(_ fd: Int32) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }
}
