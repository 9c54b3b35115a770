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

/// One query parameter: its type and its value in PostgreSQL's text input format (`nil` is NULL).
/// Values travel separately from the SQL text (`PQexecParams`), so they are never parsed as SQL.
public struct PostgresBind: Sendable, Equatable {
    public var type: PostgresType
    public var text: String?

    public init(type: PostgresType, text: String?) {
        self.type = type
        self.text = text
    }

    public static func null(_ type: PostgresType = .unspecified) -> PostgresBind {
        PostgresBind(type: type, text: nil)
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
        PostgresBind(type: Element.postgresArrayType, text: PostgresTextFormat.array(self.map { $0.postgresArrayElementText }))
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
