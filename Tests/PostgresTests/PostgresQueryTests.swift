import Foundation
@testable import Postgres
import Testing

@Suite("Query building")
struct PostgresQueryTests {
    @Test("interpolated values become numbered binds, never SQL text")
    func interpolationBinds() {
        let caption = "'; DROP TABLE records; --"
        let limit = 5
        let missing: String? = nil
        let query: PostgresQuery = "SELECT * FROM records WHERE caption = \(caption) AND label_set = \(missing) LIMIT \(limit)"
        #expect(query.sql == "SELECT * FROM records WHERE caption = $1 AND label_set = $2 LIMIT $3")
        #expect(query.binds == [PostgresBind(type: .text, text: caption), .null(), PostgresBind(type: .int8, text: "5")])
        #expect(!query.sql.contains("DROP"))
    }

    @Test("identifiers are double-quoted with embedded quotes doubled")
    func identifiers() {
        let query: PostgresQuery = "CREATE DATABASE \(identifier: "we\"ird; name")"
        #expect(query.sql == "CREATE DATABASE \"we\"\"ird; name\"")
        #expect(query.binds.isEmpty)
    }

    @Test("multi-row insert numbers binds row-major and keeps the suffix")
    func multiRowInsert() throws {
        let query = try PostgresQuery.multiRowInsert(
            into: "tags", columns: ["a", "b"], rows: [["x".postgresBind, 1.postgresBind], ["y".postgresBind, 2.postgresBind]],
            suffix: "ON CONFLICT DO NOTHING")
        #expect(query.sql == "INSERT INTO \"tags\" (\"a\", \"b\") VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING")
        #expect(query.binds.map(\.text) == ["x", "1", "y", "2"])
        #expect(throws: PostgresError.self) {
            try PostgresQuery.multiRowInsert(into: "t", columns: ["a", "b"], rows: [["x".postgresBind]])
        }
        #expect(throws: PostgresError.self) {
            try PostgresQuery.multiRowInsert(into: "t", columns: ["a"], rows: [["x".postgresBind]], suffix: "WHERE a = \(1)")
        }
    }

    @Test("value encodings match PostgreSQL's text input formats")
    func encodings() {
        #expect(Float(0.1).postgresBind.text == "0.1")
        #expect(Float.infinity.postgresBind.text == "Infinity")
        #expect(Double.nan.postgresBind.text == "NaN")
        #expect(true.postgresBind == PostgresBind(type: .bool, text: "t"))
        #expect(PostgresBytes([0x00, 0xAB, 0x5C]).postgresBind.text == "\\x00ab5c")
        #expect([Float(1), 2.5].postgresBind.type == .float4Array)
        #expect([Float(1), 2.5].postgresBind.text == "{\"1.0\",\"2.5\"}")  // what COPY sends
        #expect(["a\"b", "c\\d"].postgresBind.text == "{\"a\\\"b\",\"c\\\\d\"}")
        #expect(Date(timeIntervalSince1970: 0).postgresBind.text == "1970-01-01 00:00:00.000000+00")
        #expect(Date(timeIntervalSince1970: -1.5).postgresBind.text == "1969-12-31 23:59:58.500000+00")
    }

    @Test("real[] binds use the binary array format")
    func float4ArrayBinary() {
        let bytes = [Float(1), -2].postgresBind.binary!
        #expect(bytes == [0, 0, 0, 1,  0, 0, 0, 0,  0, 0, 2, 188,  0, 0, 0, 2,  0, 0, 0, 1,
                          0, 0, 0, 4,  0x3F, 0x80, 0, 0,  0, 0, 0, 4,  0xC0, 0, 0, 0])
        #expect([Float]().postgresBind.binary! == [0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 2, 188])
        #expect("x".postgresBind.binary == nil)
    }

    @Test("COPY text escaping covers backslash, tab, newline, CR and NULL")
    func copyEscaping() {
        var out: [UInt8] = []
        PostgresTextFormat.appendCopyField("a\\b\tc\nd\re", to: &out)
        out.append(UInt8(ascii: "|"))
        PostgresTextFormat.appendCopyField(nil, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "a\\\\b\\tc\\nd\\re|\\N")
    }
}

@Suite("Text decoding")
struct PostgresTextFormatTests {
    @Test("arrays: quoted, unquoted, NULL, empty, pgvector brackets")
    func arrays() {
        #expect(PostgresTextFormat.parseArray("{1,2.5,-3e-05}")! == ["1", "2.5", "-3e-05"])
        #expect(PostgresTextFormat.parseArray("[0.1,0.2]")! == ["0.1", "0.2"])
        #expect(PostgresTextFormat.parseArray("{}")! == [])
        #expect(PostgresTextFormat.parseArray("{\"a,b\",NULL,\"NULL\",\"q\\\"x\",plain}")! == ["a,b", nil, "NULL", "q\"x", "plain"])
        #expect(PostgresTextFormat.parseArray("{{1,2},{3,4}}") == nil)
        #expect(PostgresTextFormat.parseArray("1,2") == nil)
        let encoded = PostgresTextFormat.array(["x", nil, "y\\\"z", ""])
        #expect(PostgresTextFormat.parseArray(encoded)! == ["x", nil, "y\\\"z", ""])
    }

    @Test("bytea hex round-trips; malformed input is rejected")
    func bytea() {
        let bytes: [UInt8] = Array(0...255)
        #expect(PostgresTextFormat.parseByteaHex(PostgresTextFormat.byteaHex(bytes)) == bytes)
        #expect(PostgresTextFormat.parseByteaHex("\\xABcd") == [0xAB, 0xCD])
        #expect(PostgresTextFormat.parseByteaHex("\\xA") == nil)
        #expect(PostgresTextFormat.parseByteaHex("abc") == nil)
    }

    @Test("timestamps with and without offsets and fractions")
    func timestamps() throws {
        let base = try #require(PostgresTextFormat.parseTimestamp("2024-02-29 23:59:58.25+00"))
        #expect(base.timeIntervalSince1970 == 1_709_251_198.25)
        #expect(PostgresTextFormat.parseTimestamp("2024-02-29 23:59:58.25")?.timeIntervalSince1970 == 1_709_251_198.25)
        #expect(PostgresTextFormat.parseTimestamp("2024-03-01 05:29:58.25+05:30")?.timeIntervalSince1970 == 1_709_251_198.25)
        #expect(PostgresTextFormat.parseTimestamp("1969-12-31 23:59:59-00:00:01")?.timeIntervalSince1970 == 0)
        #expect(PostgresTextFormat.parseTimestamp("2024-13-01 00:00:00") == nil)
        #expect(PostgresTextFormat.parseTimestamp("infinity") == nil)
        for seconds in [0.0, 1.5, -86_400.25, 4_102_444_800.000001, -62_135_596_800] {
            let date = Date(timeIntervalSince1970: seconds)
            let parsed = try #require(PostgresTextFormat.parseTimestamp(PostgresTextFormat.timestamp(date)))
            #expect(abs(parsed.timeIntervalSince(date)) < 1e-6)
        }
    }

    @Test("row decoding reports the column on failure and handles NULL")
    func rowDecoding() throws {
        let row = PostgresRow(columnNames: ["n", "missing"], columnTypes: [.int8, .text], values: ["12x", nil])
        #expect(throws: PostgresError.self) { try row.decode(Int.self, at: 0) }
        do {
            _ = try row.decode(Int.self, named: "n")
        } catch let error as PostgresError {
            #expect(error.kind == .decoding && error.message.contains("column n"))
        }
        #expect(try row.decode(String?.self, named: "missing") == nil)
        #expect(throws: PostgresError.self) { try row.decode(String.self, named: "missing") }
        #expect(throws: PostgresError.self) { try row.decode(String.self, named: "nope") }
    }
}

@Suite("Errors, retries, configuration")
struct PostgresSupportTests {
    @Test("retriable: connection loss, serialization failure, deadlock, admin shutdown; not: constraint violations")
    func retriable() {
        #expect(PostgresError(kind: .connection, message: "refused").isRetriable)
        for state in ["40001", "40P01", "57P01", "08006", "53300"] {
            #expect(PostgresError(kind: .server, message: "", sqlState: state).isRetriable, "\(state)")
        }
        for state in ["23505", "42601", "22P02"] {
            #expect(!PostgresError(kind: .server, message: "", sqlState: state).isRetriable, "\(state)")
        }
        #expect(!PostgresError(kind: .migration, message: "").isRetriable)
    }

    @Test("backoff grows exponentially, is capped, and jitters within [d/2, d]")
    func backoff() {
        let policy = RetryPolicy(maxAttempts: 5, initialDelay: .milliseconds(100), maxDelay: .seconds(1), multiplier: 2)
        #expect(policy.delay(afterAttempt: 1, unitRandom: 1) == .milliseconds(100))
        #expect(policy.delay(afterAttempt: 1, unitRandom: 0) == .milliseconds(50))
        #expect(policy.delay(afterAttempt: 3, unitRandom: 1) == .milliseconds(400))
        #expect(policy.delay(afterAttempt: 10, unitRandom: 1) == .seconds(1))
        #expect(policy.delay(afterAttempt: 10, unitRandom: 0) == .milliseconds(500))
        #expect(policy.allowsAttempt(5) && !policy.allowsAttempt(6))
        #expect(RetryPolicy(maxAttempts: nil).allowsAttempt(1_000_000))
    }

    @Test("passwords never appear in the redacted URL")
    func redaction() {
        #expect(PostgresConfiguration(url: "postgres://clipd:s3cret@db:5432/clipd?sslmode=require").redactedURL
                == "postgres://clipd:***@db:5432/clipd?sslmode=require")
        #expect(!PostgresConfiguration(url: "postgresql://db/clipd?password=s3cret").redactedURL.contains("s3cret"))
        #expect(PostgresConfiguration(url: "host=db password=s3cret dbname=x").redactedURL == "host=db password=*** dbname=x")
    }

    @Test("advisory lock keys from names are stable")
    func lockKeys() {
        #expect(PostgresAdvisoryLockKey(name: "clipd.schema_migrations") == PostgresAdvisoryLockKey(name: "clipd.schema_migrations"))
        #expect(PostgresAdvisoryLockKey(name: "a").value != PostgresAdvisoryLockKey(name: "b").value)
        #expect(PostgresAdvisoryLockKey(name: "").value == Int64(bitPattern: 0xcbf2_9ce4_8422_2325))
    }
}

@Suite("Migrations on disk")
struct MigrationFileTests {
    @Test("SHA-256 matches the FIPS 180-4 test vectors")
    func sha256Vectors() {
        #expect(SHA256.hexDigest(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hexDigest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hexDigest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hexDigest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("the repository's migrations load in version order")
    func repositoryMigrations() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Schemas/postgres")
        let migrator = try PostgresMigrator(directory: directory, logger: .init(label: "test"))
        #expect(migrator.migrations.map(\.version) == migrator.migrations.map(\.version).sorted())
        #expect(migrator.migrations.first?.fileName == "0001_vector_support.sql")
        #expect(Set(migrator.migrations.map(\.version)).count == migrator.migrations.count)
    }

    @Test("badly named or clashing files are rejected with the file name")
    func badNames() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-migrations-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "SELECT 1;".write(to: directory.appendingPathComponent("0001_one.sql"), atomically: true, encoding: .utf8)
        try "SELECT 1;".write(to: directory.appendingPathComponent("0001_again.sql"), atomically: true, encoding: .utf8)
        #expect { try PostgresMigrator(directory: directory, logger: .init(label: "test")) } throws: {
            "\($0)".contains("0001_again.sql") && "\($0)".contains("0001_one.sql")
        }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("0001_again.sql"))
        try "SELECT 1;".write(to: directory.appendingPathComponent("two.sql"), atomically: true, encoding: .utf8)
        #expect { try PostgresMigrator(directory: directory, logger: .init(label: "test")) } throws: { "\($0)".contains("two.sql") }
    }

    @Test("fragments splice shared clauses and renumber their binds")
    func fragments() {
        let caption = "x"
        let clause: PostgresQuery = "AND caption = \(caption) AND id = \(7)"
        let labelSet = "s"
        let query: PostgresQuery = "SELECT \(identifiers: ["a", "b"]) FROM t WHERE label_set = \(labelSet) \(fragment: clause)"
        #expect(query.sql == #"SELECT "a", "b" FROM t WHERE label_set = $1 AND caption = $2 AND id = $3"#)
        #expect(query.binds.count == 3)
    }
}
