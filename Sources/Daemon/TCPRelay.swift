import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP relay to a server on this host: `clipd dev-broker --port` forwards its
/// bootstrap port to the first mock broker with it (librdkafka's mock brokers cannot be told
/// which port to listen on), and tests use it to make a server "appear" on a port only after a
/// delay, or to cut every open connection without touching the server itself.
public final class TCPRelay: @unchecked Sendable {
    public let port: UInt16
    private let upstreamPort: UInt16
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var connections: [Int32] = []
    private var stopped = false
    private var refusing = false

    /// Relays `listenPort` (a fixed port; `start()` binds it) to `upstreamPort`.
    public init(listenPort: UInt16, upstreamPort: UInt16) {
        self.port = listenPort
        self.upstreamPort = upstreamPort
    }

    /// Reserves a free port (closed again until `start()`).
    public init(upstreamPort: UInt16) throws {
        self.upstreamPort = upstreamPort
        let probe = try Self.bindListener(port: 0)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        close(probe)
    }

    /// Starts accepting on `port` and relaying to the upstream server.
    public func start() throws {
        let fd = try Self.bindListener(port: port)
        lock.withLock { listener = fd }
        Thread { [self] in acceptLoop(fd) }.start()
    }

    /// Closes every relayed connection (the listener stays up).
    public func dropConnections() {
        // Under the lock: a pump closes its descriptor under it too, so none is reused meanwhile.
        lock.withLock {
            for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
            connections = []
        }
    }

    /// While on, every relayed connection is cut and new ones are closed at once: the server
    /// looks down (as during a restart) until switched off again.
    public func setOutage(_ on: Bool) {
        lock.withLock { refusing = on }
        if on { dropConnections() }
    }

    public func stop() {
        let fd = lock.withLock { () -> Int32 in stopped = true; return listener }
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
        dropConnections()
    }

    private func acceptLoop(_ listenFD: Int32) {
        while true {
            let client = accept(listenFD, nil, nil)
            if client < 0 { return }
            if lock.withLock({ refusing }) { close(client); continue }
            guard let upstream = try? Self.connectLoopback(port: upstreamPort) else { close(client); continue }
            let keep = lock.withLock { () -> Bool in
                if stopped { return false }
                connections += [client, upstream]
                return true
            }
            guard keep else { close(client); close(upstream); continue }
            Thread { [self] in pump(from: client, to: upstream) }.start()
            Thread { [self] in pump(from: upstream, to: client) }.start()
        }
    }

    private func pump(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(source, &buffer, buffer.count)
            if count <= 0 { break }
            var offset = 0
            while offset < count {
                // send with MSG_NOSIGNAL: a peer that already closed must not SIGPIPE the test process.
                let written = buffer[offset..<count].withUnsafeBytes { send(destination, $0.baseAddress, count - offset, Int32(MSG_NOSIGNAL)) }
                if written <= 0 { break }
                offset += written
            }
            if offset < count { break }
        }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(destination, Int32(SHUT_RDWR))
        // Each direction closes the descriptor it reads from; its twin closes the other.
        lock.withLock {
            connections.removeAll { $0 == source }
            close(source)
        }
    }

    private static func loopbackAddress(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private static func bindListener(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = loopbackAddress(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw DaemonError("cannot listen on 127.0.0.1:\(port) (errno \(errno))")
        }
        return fd
    }

    private static func connectLoopback(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw DaemonError("cannot connect to 127.0.0.1:\(port)") }
        return fd
    }
}
