import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A scripted HTTP/1.1 server on 127.0.0.1 for fetch tests: real sockets, real TCP, one
/// thread per connection. Each request is answered by a list of steps (send bytes, pause),
/// so tests can produce slow, oversized, redirecting or failing responses. Every response
/// closes its connection.
final class TestHTTPServer: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
    }

    enum Step: Sendable {
        case send([UInt8])
        case pause(TimeInterval)
        /// Sends `chunk` up to `times` times, stopping when the client goes away.
        case sendRepeated(chunk: [UInt8], times: Int)
    }

    /// Gets the request and how many times its path has been requested (1 for the first).
    typealias Handler = @Sendable (_ request: Request, _ hit: Int) -> [Step]

    let port: UInt16
    private let listener: Int32
    private let handler: Handler
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var hitsByPath: [String: Int] = [:]
    private var bytesSentByPath: [String: Int] = [:]
    private var acceptedConnections = 0
    private var openConnections = 0
    private var peakOpen = 0
    private var tlsHandshakes = 0
    private var stopped = false

    init(handler: @escaping Handler) throws {
        self.handler = handler
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        guard listener >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var reuse: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            close(listener)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "test-http-accept"
        thread.start()
    }

    deinit { stop() }

    func url(_ path: String, host: String = "127.0.0.1") -> String { "http://\(host):\(port)\(path)" }

    func stop() {
        condition.lock()
        let wasStopped = stopped
        stopped = true
        condition.unlock()
        if !wasStopped {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }
    }

    func hits(_ path: String) -> Int { locked { hitsByPath[path, default: 0] } }
    func bytesSent(_ path: String) -> Int { locked { bytesSentByPath[path, default: 0] } }
    var connectionCount: Int { locked { acceptedConnections } }
    /// The most connections that were open at once.
    var peakOpenConnections: Int { locked { peakOpen } }
    var tlsHandshakeCount: Int { locked { tlsHandshakes } }

    /// Waits until every connection handler has finished (so byte counts are final).
    func waitForConnectionsToClose(timeout: TimeInterval = 10) {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        while openConnections > 0 && condition.wait(until: deadline) {}
        condition.unlock()
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock(); defer { condition.unlock() }
        return body()
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return  // listener closed by stop()
            }
            locked { acceptedConnections += 1; openConnections += 1; peakOpen = max(peakOpen, openConnections) }
            let thread = Thread { [self] in
                serve(client)
                close(client)
                condition.lock()
                openConnections -= 1
                condition.broadcast()
                condition.unlock()
            }
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let request = readRequest(client) else { return }
        let hit = locked { () -> Int in
            hitsByPath[request.path, default: 0] += 1
            return hitsByPath[request.path]!
        }
        for step in handler(request, hit) {
            switch step {
            case .pause(let seconds):
                Thread.sleep(forTimeInterval: seconds)
            case .send(let bytes):
                guard send(bytes, on: client, path: request.path) else { return }
            case .sendRepeated(let chunk, let times):
                for _ in 0..<times {
                    guard send(chunk, on: client, path: request.path) else { return }
                }
            }
        }
        shutdown(client, Int32(SHUT_WR))
    }

    private func readRequest(_ client: Int32) -> Request? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let terminator: [UInt8] = [13, 10, 13, 10]
        while !received.ends(with: terminator) && received.count < 65536 {
            let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return nil }
            received += buffer[0..<count]
            if received.first == 0x16 {
                // A TLS ClientHello: this server speaks plain HTTP only, so hang up.
                locked { tlsHandshakes += 1 }
                return nil
            }
            if let range = received.firstRange(of: terminator) {
                received = Array(received[..<range.upperBound])
                break
            }
        }
        let lines = String(decoding: received, as: UTF8.self).components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ")
        guard requestLine.count == 3 else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Request(method: String(requestLine[0]), path: String(requestLine[1]), headers: headers)
    }

    /// False when the client has gone away.
    private func send(_ bytes: [UInt8], on client: Int32, path: String) -> Bool {
        var offset = 0
        while offset < bytes.count {
            #if os(Linux)
            let flags = Int32(MSG_NOSIGNAL)
            #else
            let flags: Int32 = 0
            #endif
            let count = bytes.withUnsafeBytes { posixSend(client, $0.baseAddress! + offset, $0.count - offset, flags) }
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += count
            locked { bytesSentByPath[path, default: 0] += count }
        }
        return true
    }

    // MARK: Response helpers

    static func response(status: Int, headers: [(String, String)] = [], body: [UInt8] = [],
                         announceLength: Bool = true) -> [Step] {
        [.send(head(status: status, headers: headers + (announceLength ? [("Content-Length", "\(body.count)")] : []))),
         .send(body)]
    }

    static func head(status: Int, headers: [(String, String)]) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reasonPhrase(status))\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    static func redirect(to location: String, status: Int = 302) -> [Step] {
        response(status: status, headers: [("Location", location)], body: Array("moved".utf8))
    }

    private static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}

#if canImport(Glibc)
private let posixSend = Glibc.send
#else
private let posixSend = Darwin.send
#endif

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
