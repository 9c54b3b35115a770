import Foundation
import Logging
import Postgres
import TestSupport

// TestServer, ScratchDatabase, onScratchDatabase, quickConfiguration and withTimeout live in
// TestSupport; what is here is particular to these tests.

let testLogger = makeTestLogger("clipd.postgres.tests")
let repositoryRoot = Repository.root
let migrationsDirectory = Repository.migrations

/// Collects log records so tests can check what an operator would read.
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    struct Entry: Sendable { var level: Logger.Level; var message: String; var metadata: String }
    private let lock = NSLock()
    private var storage: [Entry] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var entries: [Entry] { lock.withLock { storage } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let rendered = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        lock.withLock { storage.append(Entry(level: event.level, message: "\(event.message)", metadata: rendered)) }
    }
}

/// Reads a listener's stream in the background so tests can wait for a number of notifications.
final class NotificationCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var received: [PostgresNotification] = []
    private var task: Task<Void, Never>?

    init(_ listener: PostgresNotificationListener) {
        let stream = listener.notifications
        task = Task { [weak self] in
            for await notification in stream { self?.append(notification) }
        }
    }

    deinit { task?.cancel() }

    private func append(_ notification: PostgresNotification) { lock.withLock { received.append(notification) } }

    var notifications: [PostgresNotification] { lock.withLock { received } }

    /// Waits until at least `count` notifications arrived; fails after `seconds`.
    func waitFor(count: Int, seconds: Double, where predicate: @escaping @Sendable (PostgresNotification) -> Bool = { _ in true }) async throws -> [PostgresNotification] {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let matching = notifications.filter(predicate)
            if matching.count >= count { return matching }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSetupError("timed out after \(seconds)s waiting for \(count) notifications; got \(notifications)")
    }
}
