import Foundation

/// A PostgreSQL type OID. Binds carry their type so the server never has to guess.
public struct PostgresType: Hashable, Sendable, CustomStringConvertible {
    public var oid: UInt32
    public init(oid: UInt32) { self.oid = oid }

    /// Let the server infer the type from context (OID 0).
    public static let unspecified = PostgresType(oid: 0)
    public static let bool = PostgresType(oid: 16)
    public static let bytea = PostgresType(oid: 17)
    public static let int8 = PostgresType(oid: 20)
    public static let int2 = PostgresType(oid: 21)
    public static let int4 = PostgresType(oid: 23)
    public static let text = PostgresType(oid: 25)
    public static let json = PostgresType(oid: 114)
    public static let float4 = PostgresType(oid: 700)
    public static let float8 = PostgresType(oid: 701)
    public static let textArray = PostgresType(oid: 1009)
    public static let int8Array = PostgresType(oid: 1016)
    public static let float4Array = PostgresType(oid: 1021)
    public static let timestamp = PostgresType(oid: 1114)
    public static let timestamptz = PostgresType(oid: 1184)
    public static let uuid = PostgresType(oid: 2950)
    public static let jsonb = PostgresType(oid: 3802)

    public var description: String { "oid \(oid)" }
}

/// One query parameter: its type and its value (`nil` text is NULL). Values travel separately from
/// the SQL text (`PQexecParams`), so they are never parsed as SQL. Most values are sent in
/// PostgreSQL's text input format; `real[]` vectors go in binary, which spares the server from
/// parsing a thousand floats of text per embedding.
public struct PostgresBind: Sendable, Equatable {
    public var type: PostgresType
    let value: Value

    enum Value: Sendable, Equatable {
        case null
        case text(String)
        case float4Array([Float])
    }

    public init(type: PostgresType, text: String?) {
        self.type = type
        self.value = text.map(Value.text) ?? .null
    }

    init(float4Array: [Float]) {
        self.type = .float4Array
        self.value = .float4Array(float4Array)
    }

    public static func null(_ type: PostgresType = .unspecified) -> PostgresBind {
        PostgresBind(type: type, text: nil)
    }

    public var isNull: Bool { value == .null }

    /// The value in text input format (what COPY sends); nil for NULL.
    public var text: String? {
        switch value {
        case .null: return nil
        case .text(let text): return text
        case .float4Array(let values): return PostgresTextFormat.array(values.map { PostgresTextFormat.float($0) })
        }
    }

    /// The binary send format, for values that have one here.
    var binary: [UInt8]? {
        guard case .float4Array(let values) = value else { return nil }
        return PostgresBinaryFormat.float4Array(values)
    }
}

/// A Swift value that can be sent as a query parameter.
public protocol PostgresEncodable: Sendable {
    var postgresBind: PostgresBind { get }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresBind: PostgresBind {
        switch self {
        case .some(let value): return value.postgresBind
        case .none: return .null()
        }
    }
}

extension PostgresBind: PostgresEncodable {
    public var postgresBind: PostgresBind { self }
}

extension String: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .text, text: self) }
}

extension Substring: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .text, text: String(self)) }
}

extension Int: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .int8, text: String(self)) }
}

extension Int64: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .int8, text: String(self)) }
}

extension Int32: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .int4, text: String(self)) }
}

extension Int16: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .int2, text: String(self)) }
}

extension Bool: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .bool, text: self ? "t" : "f") }
}

extension Float: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .float4, text: PostgresTextFormat.float(self)) }
}

extension Double: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .float8, text: PostgresTextFormat.double(self)) }
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public var postgresBind: PostgresBind {
        if let floats = self as? [Float] { return PostgresBind(float4Array: floats) }
        return PostgresBind(type: Element.postgresArrayType, text: PostgresTextFormat.array(self.map { $0.postgresArrayElementText }))
    }
}

/// PostgreSQL's binary send formats (network byte order), for binds sent in binary and for
/// `COPY … (FORMAT binary)`.
enum PostgresBinaryFormat {
    /// The field bytes for binary COPY (nil for NULL). The column's type must be exactly the
    /// bind's type: binary input does no conversions.
    static func copyField(_ bind: PostgresBind) throws -> [UInt8]? {
        let text: String
        switch bind.value {
        case .null: return nil
        case .float4Array(let values): return float4Array(values)
        case .text(let value): text = value
        }
        if text.utf8.contains(0) {
            throw PostgresError(kind: .invalidInput, message: "COPY field contains a NUL character, which PostgreSQL text cannot store")
        }
        func failure() -> PostgresError {
            PostgresError(kind: .invalidInput, message: "cannot send '\(text.prefix(40))' as \(bind.type) in binary COPY")
        }
        switch bind.type {
        case .text, .unspecified, .json:
            return Array(text.utf8)
        case .jsonb:
            return [1] + Array(text.utf8)  // jsonb binary format version 1, then the JSON text
        case .int8:
            guard let value = Int64(text) else { throw failure() }
            return bigEndian(UInt64(bitPattern: value))
        case .int4:
            guard let value = Int32(text) else { throw failure() }
            return bigEndian(UInt32(bitPattern: value))
        case .int2:
            guard let value = Int16(text) else { throw failure() }
            return [UInt8(truncatingIfNeeded: UInt16(bitPattern: value) >> 8), UInt8(truncatingIfNeeded: UInt16(bitPattern: value))]
        case .float4:
            guard let value = PostgresTextFormat.parseDouble(Substring(text)) else { throw failure() }
            return bigEndian((Float(text) ?? Float(value)).bitPattern)
        case .float8:
            guard let value = PostgresTextFormat.parseDouble(Substring(text)) else { throw failure() }
            return bigEndian(value.bitPattern)
        case .bool:
            return [text == "t" ? 1 : 0]
        case .bytea:
            guard let bytes = PostgresTextFormat.parseByteaHex(text) else { throw failure() }
            return bytes
        case .timestamptz, .timestamp:
            guard let date = PostgresTextFormat.parseTimestamp(text) else { throw failure() }
            // Microseconds since 2000-01-01 00:00:00 UTC.
            let micros = Int64(((date.timeIntervalSince1970 - 946_684_800) * 1_000_000).rounded())
            return bigEndian(UInt64(bitPattern: micros))
        default:
            throw PostgresError(kind: .invalidInput, message: "binary COPY does not support \(bind.type); use text COPY")
        }
    }

    static func bigEndian<Word: FixedWidthInteger>(_ word: Word) -> [UInt8] {
        withUnsafeBytes(of: word.bigEndian) { Array($0) }
    }

    /// One-dimensional `float4[]` without NULLs: header (ndim, has-null flag, element type,
    /// length, lower bound), then each element as a 4-byte length and its IEEE bits.
    static func float4Array(_ values: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20 + values.count * 8)
        func append(_ word: UInt32) {
            out.append(UInt8(truncatingIfNeeded: word >> 24))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word))
        }
        guard !values.isEmpty else {
            append(0); append(0); append(PostgresType.float4.oid)
            return out
        }
        append(1)
        append(0)
        append(PostgresType.float4.oid)
        append(UInt32(values.count))
        append(1)
        for value in values {
            append(4)
            append(value.bitPattern)
        }
        return out
    }
}

extension Data: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .bytea, text: PostgresTextFormat.byteaHex(self)) }
}

extension Date: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .timestamptz, text: PostgresTextFormat.timestamp(self)) }
}

extension UUID: PostgresEncodable {
    public var postgresBind: PostgresBind { PostgresBind(type: .uuid, text: uuidString.lowercased()) }
}

/// Binary data for a `bytea` parameter or column (a distinct type so `[UInt8]` is never mistaken
/// for a numeric array).
public struct PostgresBytes: PostgresEncodable, Hashable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var postgresBind: PostgresBind { PostgresBind(type: .bytea, text: PostgresTextFormat.byteaHex(bytes)) }
}

/// JSON text for a `jsonb` parameter; the server validates it.
public struct PostgresJSON: PostgresEncodable, Hashable {
    public var text: String
    public init(_ text: String) { self.text = text }
    public var postgresBind: PostgresBind { PostgresBind(type: .jsonb, text: text) }
}

/// Element types of one-dimensional array parameters.
public protocol PostgresArrayElement: Sendable {
    static var postgresArrayType: PostgresType { get }
    /// Unquoted element text, or nil for NULL.
    var postgresArrayElementText: String? { get }
}

extension Float: PostgresArrayElement {
    public static var postgresArrayType: PostgresType { .float4Array }
    public var postgresArrayElementText: String? { PostgresTextFormat.float(self) }
}

extension String: PostgresArrayElement {
    public static var postgresArrayType: PostgresType { .textArray }
    public var postgresArrayElementText: String? { self }
}

extension Int: PostgresArrayElement {
    public static var postgresArrayType: PostgresType { .int8Array }
    public var postgresArrayElementText: String? { String(self) }
}
