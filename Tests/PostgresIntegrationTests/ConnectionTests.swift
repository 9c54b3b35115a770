import TestSupport
import Foundation
import Logging
import Postgres
import Daemon
import Testing

@Suite("PostgresConnection", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL / CLIPD_TEST_PGVECTOR_DATABASE_URL (Deploy/dev/test.sh does)"))
struct ConnectionTests {
    @Test("binds and typed decoding round-trip every supported type", arguments: TestServer.allCases)
    func typedRoundTrip(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { _, connection in
            let date = Date(timeIntervalSince1970: 1_764_000_000.123456)
            let vector: [Float] = [0.1, -2.5e-8, 3.4028235e38, 1, 0]
            let bytes = PostgresBytes([0, 1, 0x7F, 0x80, 0xFF, 0x5C, 0x27])
            let row = try #require(try await connection.query("""
                SELECT \("text 'x'")::text, \(Int64.max)::bigint, \(Int32(-7))::int, \(Float(0.1))::real, \(2.5e-300)::float8,
                       \(true)::bool, \(bytes)::bytea, \(vector)::real[], \(PostgresJSON("{\"a\": [1, \"b\"]}"))::jsonb,
                       \(date)::timestamptz, \(["a,b", "c\"d", "", "NULL"])::text[], \(Optional<String>.none)::text,
                       'infinity'::float8, now() - now() < interval '1 second'
                """).first)
            #expect(try row.decode(String.self, at: 0) == "text 'x'")
            #expect(try row.decode(Int64.self, at: 1) == Int64.max)
            #expect(try row.decode(Int32.self, at: 2) == -7)
            #expect(try row.decode(Float.self, at: 3) == 0.1)
            #expect(try row.decode(Double.self, at: 4) == 2.5e-300)
            #expect(try row.decode(Bool.self, at: 5))
            #expect(try row.decode(PostgresBytes.self, at: 6) == bytes)
            #expect(try row.decode([Float].self, at: 7) == vector)
            #expect(try row.decode(String.self, at: 8) == "{\"a\": [1, \"b\"]}")
            #expect(abs(try row.decode(Date.self, at: 9).timeIntervalSince(date)) < 1e-6)
            #expect(try row.decode([String].self, at: 10) == ["a,b", "c\"d", "", "NULL"])
            #expect(try row.decode(String?.self, at: 11) == nil)
            #expect(try row.decode(Double.self, at: 12) == .infinity)
            #expect(throws: PostgresError.self) { try row.decode(String.self, at: 11) }  // NULL into non-optional
            #expect(throws: PostgresError.self) { try row.decode(Int.self, at: 0) }
            #expect(try row.decode(String.self, named: "bool") == "t")
        }
    }

    @Test("withTransaction commits, and rolls back when the body throws", arguments: [TestServer.plain])
    func transactions(server: TestServer) async throws {
        struct Abort: Error {}
        try await onScratchDatabase(server, migrated: false) { _, connection in
            try await connection.query("CREATE TABLE items (id int PRIMARY KEY, note text)")
            try await connection.withTransaction { transaction in
                try await transaction.execute("INSERT INTO items VALUES (\(1), \("kept"))")
            }
            await #expect(throws: Abort.self) {
                try await connection.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO items VALUES (\(2), \("discarded"))")
                    throw Abort()
                }
            }
            await #expect {
                try await connection.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO items VALUES (\(3), \("discarded too"))")
                    try await transaction.execute("INSERT INTO items VALUES (\(1), \("duplicate key"))")
                }
            } throws: { error in
                guard let error = error as? PostgresError else { return false }
                return error.sqlState == "23505" && !error.isRetriable
            }
            let ids = try await connection.query("SELECT id FROM items ORDER BY id").map { try $0.decode(Int.self, at: 0) }
            #expect(ids == [1])
            // Using the connection instead of the transaction inside the body is an error, not a deadlock.
            await #expect {
                try await connection.withTransaction { _ in try await connection.query("SELECT 1") }
            } throws: { ($0 as? PostgresError)?.kind == .invalidInput }
            // The connection is usable after a rolled-back transaction.
            #expect(try await connection.execute("UPDATE items SET note = \("still usable")") == 1)
        }
    }

    @Test("concurrent callers never interleave with an open transaction", arguments: [TestServer.plain])
    func transactionExclusivity(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { _, connection in
            try await connection.query("CREATE TABLE counter (n int)")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        try await connection.withTransaction { transaction in
                            try await transaction.execute("INSERT INTO counter VALUES (\(index))")
                            // txid_current_if_assigned is non-null only inside this transaction's statements.
                            let inside = try await transaction.query("SELECT txid_current_if_assigned() IS NOT NULL").first!.decode(Bool.self, at: 0)
                            #expect(inside)
                        }
                    }
                    group.addTask { _ = try await connection.query("SELECT count(*) FROM counter") }
                }
                try await group.waitForAll()
            }
            #expect(try await connection.query("SELECT count(*) FROM counter").first!.decode(Int.self, at: 0) == 8)
        }
    }

    @Test("COPY writes rows and reports the count", arguments: [TestServer.plain])
    func copyRows(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { _, connection in
            try await connection.query("CREATE TABLE copied (id int, label text, vec real[])")
            let rows: [[PostgresBind]] = (0..<2500).map { [Int32($0).postgresBind, "label\t\($0)\n".postgresBind, [Float($0), 0.5].postgresBind] }
            #expect(try await connection.copy(into: "copied", columns: ["id", "label", "vec"], rows: rows) == 2500)
            let row = try #require(try await connection.query("SELECT label, vec FROM copied WHERE id = 1234").first)
            #expect(try row.decode(String.self, at: 0) == "label\t1234\n")
            #expect(try row.decode([Float].self, at: 1) == [1234, 0.5])
            await #expect(throws: PostgresError.self) {
                try await connection.copy(into: "copied", columns: ["id"], rows: [["not a number".postgresBind]])
            }
            #expect(try await connection.query("SELECT count(*) FROM copied").first!.decode(Int.self, at: 0) == 2500)
        }
    }

    @Test("binary COPY round-trips every type it supports and rejects a mismatched one", arguments: [TestServer.plain])
    func binaryCopy(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { _, connection in
            try await connection.query("""
                CREATE TABLE typed (t text, i8 bigint, i4 integer, i2 smallint, f4 real, f8 float8, b bool, raw bytea,
                                    doc jsonb, at timestamptz, vec real[], missing text)
                """)
            let date = Date(timeIntervalSince1970: 1_700_000_000.25)
            let row: [PostgresBind] = [
                "tab\tnewline\n'quote' ünï".postgresBind, Int64.min.postgresBind, Int32(-42).postgresBind, Int16(7).postgresBind,
                Float(0.1).postgresBind, Double.pi.postgresBind, true.postgresBind, PostgresBytes([0, 0xFF, 0x5C]).postgresBind,
                PostgresJSON("{\"k\": [1, 2]}").postgresBind, date.postgresBind, [Float(1.5), -0.25].postgresBind, String?.none.postgresBind,
            ]
            let columns = ["t", "i8", "i4", "i2", "f4", "f8", "b", "raw", "doc", "at", "vec", "missing"]
            #expect(try await connection.copy(into: "typed", columns: columns, rows: [row, row], format: .binary) == 2)
            let stored = try #require(try await connection.query("SELECT * FROM typed").first)
            #expect(try stored.decode(String.self, at: 0) == "tab\tnewline\n'quote' ünï")
            #expect(try stored.decode(Int64.self, at: 1) == Int64.min)
            #expect(try stored.decode(Int32.self, at: 2) == -42)
            #expect(try stored.decode(Int.self, at: 3) == 7)
            #expect(try stored.decode(Float.self, at: 4) == 0.1)
            #expect(try stored.decode(Double.self, at: 5) == Double.pi)
            #expect(try stored.decode(Bool.self, at: 6))
            #expect(try stored.decode(PostgresBytes.self, at: 7).bytes == [0, 0xFF, 0x5C])
            #expect(try stored.decode(String.self, at: 8) == "{\"k\": [1, 2]}")
            #expect(try stored.decode(Date.self, at: 9) == date)
            #expect(try stored.decode([Float].self, at: 10) == [1.5, -0.25])
            #expect(try stored.decode(String?.self, at: 11) == nil)
            // Binary input does not convert: a bigint value for an integer column is refused by the server.
            await #expect(throws: PostgresError.self) {
                try await connection.copy(into: "typed", columns: ["i4"], rows: [[Int64(1).postgresBind]], format: .binary)
            }
            #expect(try await connection.query("SELECT count(*) FROM typed").first!.decode(Int.self, at: 0) == 2)
        }
    }

    @Test("LISTEN/NOTIFY delivers notifications, including from triggers", arguments: TestServer.allCases)
    func listenNotify(server: TestServer) async throws {
        try await onScratchDatabase(server) { scratch, connection in
            let listener = try await PostgresNotificationListener.start(
                configuration: quickConfiguration(scratch.url), channels: ["clipd test channel", "clipd_finetune_runs"], logger: testLogger)
            defer { listener.stop() }
            let collector = NotificationCollector(listener)
            try await connection.query("SELECT pg_notify(\("clipd test channel"), \("payload with 'quotes' and ünïcode"))")
            let runID = try await connection.query("INSERT INTO finetune_runs (parameters) VALUES ('{\"epochs\": 1}') RETURNING id").first!.decode(Int.self, at: 0)
            let received = try await collector.waitFor(count: 2, seconds: 10)
            #expect(received[0].channel == "clipd test channel")
            #expect(received[0].payload == "payload with 'quotes' and ünïcode")
            #expect(received[1] .channel == "clipd_finetune_runs")
            #expect(received[1].payload == String(runID))
            #expect(received.allSatisfy { $0.backendPID > 0 && !$0.isResynchronization })
        }
    }

    @Test("an advisory lock excludes a second holder until released", arguments: [TestServer.plain])
    func advisoryLocks(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { scratch, first in
            let second = try await scratch.connect()
            let key = PostgresAdvisoryLockKey(name: "clipd.tests.lock")
            #expect(try await first.tryAdvisoryLock(key))
            #expect(try await second.tryAdvisoryLock(key) == false)
            #expect(try await second.advisoryUnlock(key) == false)  // not held by the second session
            #expect(try await first.advisoryUnlock(key))
            #expect(try await second.tryAdvisoryLock(key))
            #expect(try await first.tryAdvisoryLock(key) == false)
            await second.close()  // session end releases it, once the server has processed the disconnect
            var acquired = false
            for _ in 0..<100 where !acquired {
                acquired = try await first.tryAdvisoryLock(key)
                if !acquired { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(acquired)
        }
    }
}

@Suite("Unreachable server")
struct UnreachableServerTests {
    @Test("a closed port gives logged retries and a clear retriable error, not a crash")
    func closedPort() async throws {
        let relay = try TCPRelay(upstreamPort: 9)  // reserved, never started: nothing listens
        let logs = CapturingLogHandler()
        let logger = Logger(label: "test") { _ in logs }
        let configuration = PostgresConfiguration(url: "postgres://clipd:secret@127.0.0.1:\(relay.port)/clipd", connectTimeoutSeconds: 2,
                                                  reconnect: RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(20), maxDelay: .milliseconds(50)))
        await #expect {
            _ = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.kind == .connection && error.isRetriable && error.message.contains("after 3 attempts")
                && error.message.contains("127.0.0.1:\(relay.port)") && !error.message.contains("secret")
        }
        let warnings = logs.entries.filter { $0.level == .warning }
        #expect(warnings.count == 2)
        #expect(warnings.first?.message.contains("attempt 1 failed; retrying in") == true)
        #expect(logs.entries.contains { $0.level == .error && $0.message.contains("giving up") })
        #expect(!logs.entries.contains { $0.metadata.contains("secret") })
    }

    @Test("a server that comes up during the retries is connected to", .enabled(if: TestServer.enabled))
    func serverComesUpDuringRetries() async throws {
        let adminURL = try TestServer.plain.requireURL()
        let upstream = UInt16(URLComponents(string: adminURL)!.port!)
        let relay = try TCPRelay(upstreamPort: upstream)
        defer { relay.stop() }
        var components = URLComponents(string: adminURL)!
        components.port = Int(relay.port)
        let logs = CapturingLogHandler()
        let configuration = PostgresConfiguration(url: components.string!, connectTimeoutSeconds: 2,
                                                  reconnect: RetryPolicy(maxAttempts: 40, initialDelay: .milliseconds(50), maxDelay: .milliseconds(200)))
        Task {
            try await Task.sleep(for: .milliseconds(600))
            try relay.start()
        }
        let connection = try await PostgresConnection.connect(configuration: configuration, logger: Logger(label: "test") { _ in logs })
        #expect(try await connection.query("SELECT 1 + \(1)").first!.decode(Int.self, at: 0) == 2)
        #expect(logs.entries.filter { $0.level == .warning }.count >= 2)
        #expect(logs.entries.contains { $0.level == .notice && $0.message.contains("connected to PostgreSQL after") })

        // A dropped connection fails the statement in flight with a retriable error…
        relay.dropConnections()
        try await Task.sleep(for: .milliseconds(100))
        await #expect { try await connection.query("SELECT 1") } throws: { ($0 as? PostgresError)?.isRetriable == true }
        // …and the next statement reconnects.
        #expect(try await connection.query("SELECT 2").first!.decode(Int.self, at: 0) == 2)
        await connection.close()
    }

    @Test("a connection runs libpq on one thread of its own, however many callers wait", arguments: [TestServer.plain])
    func oneThreadPerConnection(server: TestServer) async throws {
        try await onScratchDatabase(server, migrated: false) { scratch, first in
            var connections = [first]
            for _ in 1..<4 {
                connections.append(try await PostgresConnection.connect(configuration: quickConfiguration(scratch.url), logger: testLogger))
            }
            // 50 statements at once on each connection, each holding it a few milliseconds.
            let sums = try await withThrowingTaskGroup(of: Int.self) { group in
                for (c, connection) in connections.enumerated() {
                    for i in 0..<50 {
                        group.addTask {
                            try await connection.query("SELECT \(c * 100 + i)::int, pg_sleep(0.002)").first!.decode(Int.self, at: 0)
                        }
                    }
                }
                var sum = 0
                for try await value in group { sum += value }
                return sum
            }
            #expect(sums == (0..<4).reduce(0) { total, c in total + (0..<50).reduce(0) { $0 + c * 100 + $1 } })
            for connection in connections {
                #expect(connection.threads.peak == 1)
            }
            for connection in connections.dropFirst() { await connection.close() }
        }
    }

    @Test("the LISTEN thread reconnects after the connection drops and signals a resynchronization", .enabled(if: TestServer.enabled))
    func listenerReconnects() async throws {
        let adminURL = try TestServer.plain.requireURL()
        let relay = try TCPRelay(upstreamPort: UInt16(URLComponents(string: adminURL)!.port!))
        defer { relay.stop() }
        try relay.start()
        var components = URLComponents(string: adminURL)!
        components.port = Int(relay.port)
        let listener = try await PostgresNotificationListener.start(configuration: quickConfiguration(components.string!),
                                                                    channels: ["clipd_relay_test"], logger: testLogger)
        defer { listener.stop() }
        let collector = NotificationCollector(listener)
        let sender = try await PostgresConnection.connect(configuration: quickConfiguration(adminURL), logger: testLogger)
        relay.dropConnections()
        _ = try await collector.waitFor(count: 1, seconds: 10) { $0.isResynchronization }
        try await sender.query("SELECT pg_notify('clipd_relay_test', 'after reconnect')")
        let delivered = try await collector.waitFor(count: 1, seconds: 10) { !$0.isResynchronization }
        #expect(delivered.first?.payload == "after reconnect")
        await sender.close()
    }
}
