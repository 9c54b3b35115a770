import Foundation
import Kafka
import Logging
import Postgres
import TestSupport
import Daemon
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A scratch PostgreSQL database, a dev broker and helpers to run `clipd` daemons against them.
final class DaemonHarness: @unchecked Sendable {
    let topic = "records"
    let databaseURL: String
    let adminURL: String
    let databaseName: String
    let broker: BackgroundProcess
    let brokers: String
    var relay: TCPRelay?
    var daemons: [BackgroundProcess] = []
    let logger: Logger = {
        var l = Logger(label: "daemon-tests")
        l.logLevel = .warning
        return l
    }()

    static var serverURL: String? {
        let v = ProcessInfo.processInfo.environment["CLIPD_TEST_DATABASE_URL"]
        return v?.isEmpty == false ? v : nil
    }

    static var mustRun: Bool {
        let e = ProcessInfo.processInfo.environment
        return ["true", "1"].contains(e["CI"]?.lowercased() ?? "") || e["CLIPD_REQUIRE_TEST_SERVERS"] == "1"
    }

    /// Creates the database (migrated, with a `default` label set) and starts the broker.
    init(partitions: Int = 4, viaRelay: Bool = false) async throws {
        guard let server = Self.serverURL else {
            if Self.mustRun { throw TCPRelayError("CLIPD_TEST_DATABASE_URL is not set; run the tests through Deploy/dev/test.sh") }
            throw XCTSkip("CLIPD_TEST_DATABASE_URL is not set")
        }
        adminURL = server
        databaseName = "clipd_daemon_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        let admin = try await PostgresConnection.connect(configuration: Self.quick(server), logger: logger)
        try await admin.query("CREATE DATABASE \(identifier: databaseName)")
        await admin.close()
        var components = URLComponents(string: server)!
        components.path = "/" + databaseName
        let direct = components.string!
        if viaRelay {
            let relay = try TCPRelay(upstreamPort: UInt16(components.port ?? 5432))
            try relay.start()
            self.relay = relay
            components.port = Int(relay.port)
        }
        databaseURL = components.string!
        let migrate = try runClipd(["migrate", "--database-url", direct])
        guard migrate.status == 0 else { throw TCPRelayError("migrate failed: \(migrate.stderr)") }
        let labels = try runClipd(["labels", "put", "--database-url", direct, "default", "--templates", "simple",
                                   "cat", "dog", "astronaut", "rocket", "coffee", "flower"])
        guard labels.status == 0 else { throw TCPRelayError("labels put failed: \(labels.stderr)") }
        broker = try BackgroundProcess(["dev-broker", "--partitions", "\(partitions)", "--topic", topic, "--topic", "\(topic).dlq",
                                        "--stdin-commands"], name: "broker")
        guard let bootstrap = broker.firstLine() else { throw TCPRelayError("dev broker did not start: \(broker.stderr)") }
        brokers = bootstrap
    }

    static func quick(_ url: String) -> PostgresConfiguration {
        PostgresConfiguration(url: url, applicationName: "clipd-daemon-tests", connectTimeoutSeconds: 5,
                              reconnect: Postgres.RetryPolicy(maxAttempts: 20, initialDelay: .milliseconds(100), maxDelay: .seconds(1)))
    }

    func tearDown() async {
        for d in daemons { d.stop() }
        broker.stop()
        relay?.stop()
        if let admin = try? await PostgresConnection.connect(configuration: Self.quick(adminURL), logger: logger) {
            _ = try? await admin.query("DROP DATABASE IF EXISTS \(identifier: databaseName) WITH (FORCE)")
            await admin.close()
        }
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
            ("{\"id\":\"bad-\(i)\",\"image_url\":\"file://\(badDir)/gif_named.jpg\"}", "image.unsupported_format"),
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
        guard failures.isEmpty else { throw TCPRelayError("\(failures.count) messages not delivered: \(failures.first!)") }
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

    /// Waits until `done` or the deadline; returns whether it became true.
    func waitUntil(timeout: Double, _ done: () async throws -> Bool) async throws -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if try await done() { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return try await done()
    }

    var daemonLogs: String { daemons.enumerated().map { "--- daemon \($0.offset)\n" + String($0.element.stderr.suffix(4000)) }.joined(separator: "\n") }
}
