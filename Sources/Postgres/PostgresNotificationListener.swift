import Executors
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One `NOTIFY` received on a listened channel.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// Server process that sent it; 0 for a resynchronization marker.
    public var backendPID: Int32
    /// True for the marker delivered after the listener reconnected: notifications may have been
    /// missed while it was disconnected, so consumers should re-read whatever they cache.
    public var isResynchronization: Bool

    public init(channel: String, payload: String, backendPID: Int32, isResynchronization: Bool = false) {
        self.channel = channel
        self.payload = payload
        self.backendPID = backendPID
        self.isResynchronization = isResynchronization
    }
}

/// LISTENs on channels with its own connection and a dedicated thread that waits in `poll(2)`
/// on the libpq socket, so notifications arrive without polling queries and without touching
/// the cooperative pool. Reconnects with the configured backoff if the connection drops.
public final class PostgresNotificationListener: Sendable {
    public let notifications: AsyncStream<PostgresNotification>
    private let control: ListenerControl

    private init(notifications: AsyncStream<PostgresNotification>, control: ListenerControl) {
        self.notifications = notifications
        self.control = control
    }

    /// Returns once the channels are being listened to, or throws when the first connection
    /// fails within the retry budget.
    public static func start(configuration: PostgresConfiguration, channels: [String], logger: Logger) async throws -> PostgresNotificationListener {
        let control = try ListenerControl()
        let (stream, continuation) = AsyncStream.makeStream(of: PostgresNotification.self, bufferingPolicy: .unbounded)
        continuation.onTermination = { [control] _ in control.requestStop() }
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, Error>) in
            let worker = ListenerThread(configuration: configuration, channels: channels, logger: logger,
                                        control: control, output: continuation, ready: ready)
            startThread(named: "clipd-pg-listen") { worker.run() }
        }
        return PostgresNotificationListener(notifications: stream, control: control)
    }

    /// Stops listening, closes the connection and finishes `notifications`.
    public func stop() { control.requestStop() }

    deinit { control.requestStop() }
}

/// The stop flag and the self-pipe that wakes the listener thread out of `poll`.
private final class ListenerControl: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    let wakeRead: Int32
    private let wakeWrite: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw PostgresError(kind: .connection, message: "pipe() failed: errno \(errno)")
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    var isStopped: Bool { lock.withLock { stopped } }

    func requestStop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        if first {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }
}

private final class ListenerThread: @unchecked Sendable {
    let configuration: PostgresConfiguration
    let channels: [String]
    let logger: Logger
    let control: ListenerControl
    let output: AsyncStream<PostgresNotification>.Continuation
    var ready: CheckedContinuation<Void, Error>?
    let session: LibPQSession

    init(configuration: PostgresConfiguration, channels: [String], logger: Logger, control: ListenerControl,
         output: AsyncStream<PostgresNotification>.Continuation, ready: CheckedContinuation<Void, Error>) {
        self.configuration = configuration
        self.channels = channels
        self.logger = logger
        self.control = control
        self.output = output
        self.ready = ready
        self.session = LibPQSession { [logger] notice in logger.debug("PostgreSQL: \(notice)") }
    }

    func run() {
        defer {
            session.close()
            output.finish()
        }
        do {
            try connectAndListen(reason: "connecting")
        } catch {
            ready?.resume(throwing: error)
            ready = nil
            return
        }
        ready?.resume()
        ready = nil
        while !control.isStopped {
            var fds = [pollfd(fd: session.socket, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: control.wakeRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.error("poll() failed on the LISTEN connection", metadata: ["errno": "\(errno)"])
                return
            }
            if control.isStopped { return }
            guard fds[0].revents != 0 else { continue }
            do {
                for notification in try session.drainNotifications() {
                    output.yield(notification)
                }
            } catch {
                logger.warning("LISTEN connection lost; reconnecting", metadata: ["error": "\(error)"])
                do {
                    try connectAndListen(reason: "reconnecting")
                } catch {
                    return  // stopped, or out of retries (already logged)
                }
                for channel in channels {
                    output.yield(PostgresNotification(channel: channel, payload: "", backendPID: 0, isResynchronization: true))
                }
            }
        }
    }

    private func connectAndListen(reason: String) throws {
        var attempt = 1
        while true {
            if control.isStopped { throw PostgresError(kind: .connection, message: "listener stopped") }
            do {
                try session.connect(url: configuration.url, applicationName: configuration.applicationName,
                                    connectTimeoutSeconds: configuration.connectTimeoutSeconds)
                let listen = channels.map { "LISTEN \(PostgresTextFormat.quoteIdentifier($0))" }.joined(separator: "; ")
                if !listen.isEmpty { try session.executeScript(listen) }
                if attempt > 1 { logger.notice("LISTEN connection established after \(attempt) attempts") }
                return
            } catch let error as PostgresError {
                guard error.isRetriable, configuration.reconnect.allowsAttempt(attempt + 1) else {
                    logger.error("giving up \(reason) the LISTEN connection to PostgreSQL after \(attempt) attempt(s)", metadata: [
                        "url": "\(configuration.redactedURL)", "error": "\(error.message)"])
                    throw error
                }
                let delay = configuration.reconnect.delay(afterAttempt: attempt, unitRandom: Double.random(in: 0...1))
                logger.warning("PostgreSQL LISTEN \(reason) attempt \(attempt) failed; retrying in \(String(format: "%.2fs", RetryPolicy.seconds(delay)))", metadata: [
                    "url": "\(configuration.redactedURL)", "error": "\(error.message)"])
                sleepUnlessStopped(delay)
                attempt += 1
            }
        }
    }

    /// Waits on the wake pipe so that `stop()` interrupts the backoff.
    private func sleepUnlessStopped(_ delay: Duration) {
        var fds = [pollfd(fd: control.wakeRead, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 1, Int32(RetryPolicy.seconds(delay) * 1000))
    }
}
