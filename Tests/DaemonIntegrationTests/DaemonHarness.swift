import Daemon
import Foundation
import Kafka
import Logging
import Postgres
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A scratch PostgreSQL database, a dev broker and helpers to run `clipd` daemons against them.
/// The database, the processes and the relay are TestSupport's; what is here is the daemon's setup.
final class DaemonHarness: @unchecked Sendable {
    static let topicName = "records"
    let topic = DaemonHarness.topicName
    /// The scratch database on the plain test server (CLIPD_TEST_DATABASE_URL).
    let database: ScratchDatabase
    /// The URL daemons get: the scratch database, through the relay when there is one.
    let databaseURL: String
    var adminURL: String { database.adminURL }
    var databaseName: String { database.name }
    let broker: BackgroundProcess
    let brokers: String
    var relay: TCPRelay?
    var daemons: [BackgroundProcess] = []
    let logger = makeTestLogger("daemon-tests")

    /// Creates the database (migrated by `clipd migrate`, with a `default` label set) and starts the broker.
    /// Without CLIPD_TEST_DATABASE_URL the test is skipped, or fails in CI (`TestServer.mustRun`).
    init(partitions: Int = 4, viaRelay: Bool = false) async throws {
        _ = try TestServer.plain.urlOrSkip()
        let database = try await ScratchDatabase.create(on: .plain, prefix: "clipd_daemon_")
        var relay: TCPRelay?
        do {
            var components = URLComponents(string: database.url)!
            if viaRelay {
                let started = try TCPRelay(upstreamPort: UInt16(components.port ?? 5432))
                try started.start()
                relay = started
                components.port = Int(started.port)
            }
            try database.migrateWithClipd()
            let labels = try runClipd(["labels", "put", "--database-url", database.url, "default", "--templates", "simple",
                                       "cat", "dog", "astronaut", "rocket", "coffee", "flower"], timeout: 120)
            guard labels.status == 0 else { throw TestSetupError("labels put failed: \(labels.stderr)") }
            let broker = try BackgroundProcess(["dev-broker", "--partitions", "\(partitions)", "--topic", Self.topicName, "--topic", "\(Self.topicName).dlq",
                                                "--stdin-commands"], name: "broker")
            guard let bootstrap = broker.firstLine() else {
                broker.stop()
                throw TestSetupError("dev broker did not start: \(broker.stderr)")
            }
            self.database = database
            self.databaseURL = components.string!
            self.relay = relay
            self.broker = broker
            self.brokers = bootstrap
        } catch {
            relay?.stop()
            try? await database.drop()
            throw error
        }
    }

    static func quick(_ url: String) -> PostgresConfiguration {
        PostgresConfiguration(url: url, applicationName: "clipd-daemon-tests", connectTimeoutSeconds: 5,
                              reconnect: Postgres.RetryPolicy(maxAttempts: 20, initialDelay: .milliseconds(100), maxDelay: .seconds(1)))
    }

    func tearDown() async {
        for d in daemons { d.stop() }
        broker.stop()
        relay?.stop()
        try? await database.drop()
    }

    // MARK: records

    static let images = Repository.fixtures.appendingPathComponent("images")
    static let goodImage = images.appendingPathComponent("chelsea_16x16.jpg").path

    static func good(_ i: Int) -> String {
        "{\"id\":\"good-\(i)\",\"image_url\":\"file://\(goodImage)\",\"caption\":\"a photo of cat number \(i)\"}"
    }

    /// Bad records of every kind with the error class the daemon must give them.
    static func bad(_ i: Int) -> (value: String, errorClass: String) {
        let badDir = images.appendingPathComponent("bad").path
        let kinds: [(String, String)] = [
            ("{not json \(i)", "record.invalid_json"),
            ("{\"id\":\"bad-\(i)\",\"caption\":\"no image url\"}", "record.invalid"),
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"file://\(badDir)/truncated_half.jpg\"}", "image.truncated"),
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"file://\(badDir)/random_bytes.jpg\"}", "image.corrupt"),
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"file://\(badDir)/bitmap.bmp\"}", "image.unsupported_format"),
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"file://\(badDir)/empty.jpg\"}", "image.empty"),
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"file://\(badDir)/bomb_60000x60000.jpg\"}", "image.too_large"),
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"file:///etc/hostname\"}", "fetch.file_not_allowed"),
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"http://127.0.0.1:9/x.jpg\"}", "fetch.forbidden_address"),
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"ftp://example.com/x.jpg\"}", "record.invalid"),
        ]
        return kinds[i % kinds.count]
    }

    /// Produces raw messages (bad ones included: `clipd publish` would refuse them).
    func produce(_ values: [(key: String?, value: String)]) async throws {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(bootstrapServers: brokers), logger: logger)
        let results = await producer.send(values.map { KafkaProducerMessage(topic: topic, key: $0.key.map { Array($0.utf8) }, value: Array($0.value.utf8)) })
        await producer.shutdown()
        let failures = results.filter { if case .failure = $0 { return true } else { return false } }
        guard failures.isEmpty else { throw TestSetupError("\(failures.count) messages not delivered: \(failures.first!)") }
    }

    // MARK: daemons

    func daemonArguments(group: String = "clipd-test", extra: [String] = []) -> [String] {
        ["run", "--brokers", brokers, "--topic", topic, "--group", group, "--database-url", databaseURL,
         "--model", Repository.fixtures.appendingPathComponent("models/tiny/openai_format.safetensors").path,
         "--label-set", "default", "--top-k", "3", "--allow-file-root", Self.images.path, "--http-port", "0",
         "--batch-size", "16", "--batch-latency-ms", "50", "--max-in-flight", "64", "--progress-interval-seconds", "1",
         "--fetch-retries", "0", "--fetch-timeout-seconds", "3", "--drain-timeout-seconds", "30", "--threads", "1", "--workers", "1"] + extra
    }

    @discardableResult
    func startDaemon(group: String = "clipd-test", extra: [String] = []) throws -> BackgroundProcess {
        let d = try BackgroundProcess(daemonArguments(group: group, extra: extra), environment: ["CLIPD_LOG_LEVEL": "info"], name: "daemon\(daemons.count)")
        daemons.append(d)
        return d
    }

    // MARK: database

    /// A direct connection to the scratch database (never through the relay).
    func connect() async throws -> PostgresConnection {
        var components = URLComponents(string: databaseURL)!
        if relay != nil { components.port = URLComponents(string: adminURL)!.port }
        return try await PostgresConnection.connect(configuration: Self.quick(components.string!), logger: logger)
    }

    func count(_ query: PostgresQuery) async throws -> Int {
        let connection = try await connect()
        let value = try await connection.query(query).first?.decode(Int64.self, at: 0) ?? 0
        await connection.close()
        return Int(value)
    }

    /// (text, count) pairs of a two-column query.
    func grouped(_ query: PostgresQuery) async throws -> [String: Int] {
        let connection = try await connect()
        var out: [String: Int] = [:]
        for row in try await connection.query(query) { out[try row.decode(String.self, at: 0)] = Int(try row.decode(Int64.self, at: 1)) }
        await connection.close()
        return out
    }

    var daemonLogs: String { daemons.enumerated().map { "--- daemon \($0.offset)\n" + String($0.element.stderr.suffix(4000)) }.joined(separator: "\n") }
}
