import Foundation

/// The rows of one result, copied out of libpq (text format).
public struct PostgresRows: Sendable, RandomAccessCollection {
    public let columnNames: [String]
    let columnTypes: [PostgresType]
    let cells: [[String?]]
    /// Rows affected by INSERT/UPDATE/DELETE/COPY, when the command reports it.
    public let affectedRows: Int?

    init(columnNames: [String], columnTypes: [PostgresType], cells: [[String?]], affectedRows: Int?) {
        self.columnNames = columnNames
        self.columnTypes = columnTypes
        self.cells = cells
        self.affectedRows = affectedRows
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { cells.count }

    public subscript(position: Int) -> PostgresRow {
        PostgresRow(columnNames: columnNames, columnTypes: columnTypes, values: cells[position])
    }
}

/// One result row; columns are decoded by position or by name into `PostgresDecodable` types.
public struct PostgresRow: Sendable {
    public let columnNames: [String]
    let columnTypes: [PostgresType]
    let values: [String?]

    public func decode<Value: PostgresDecodable>(_ type: Value.Type = Value.self, at column: Int) throws -> Value {
        guard column >= 0 && column < values.count else {
            throw PostgresError(kind: .decoding, message: "column index \(column) out of range (\(values.count) columns)")
        }
        let name = columnNames[column]
        guard let text = values[column] else {
            do { return try Value.postgresNull() } catch let error as PostgresError {
                throw PostgresError(kind: .decoding, message: "column \(name): \(error.message)")
            }
        }
        do {
            return try Value(postgresText: text, type: columnTypes[column])
        } catch let error as PostgresError {
            throw PostgresError(kind: .decoding, message: "column \(name): \(error.message)")
        }
    }

    public func decode<Value: PostgresDecodable>(_ type: Value.Type = Value.self, named name: String) throws -> Value {
        guard let column = columnNames.firstIndex(of: name) else {
            throw PostgresError(kind: .decoding, message: "no column named \(name) (columns: \(columnNames.joined(separator: ", ")))")
        }
        return try decode(type, at: column)
    }

    public func isNull(at column: Int) -> Bool { values[column] == nil }
}

/// A Swift type a column can be decoded into, from PostgreSQL's text output.
public protocol PostgresDecodable: Sendable {
    init(postgresText text: String, type: PostgresType) throws
    /// The value for SQL NULL; throws unless the type can represent it (`Optional`).
    static func postgresNull() throws -> Self
}

extension PostgresDecodable {
    public static func postgresNull() throws -> Self {
        throw PostgresError(kind: .decoding, message: "unexpected NULL for \(Self.self)")
    }
}

func decodingFailure<T>(_ text: String, as type: T.Type) -> PostgresError {
    let shown = text.count > 60 ? String(text.prefix(60)) + "…" : text
    return PostgresError(kind: .decoding, message: "cannot read '\(shown)' as \(T.self)")
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        self = .some(try Wrapped(postgresText: text, type: type))
    }
    public static func postgresNull() throws -> Self { nil }
}

/// Any column as its text output; `json`/`jsonb` columns arrive as their JSON text.
extension String: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws { self = text }
}

extension Int: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let value = Int(text) else { throw decodingFailure(text, as: Int.self) }
        self = value
    }
}

extension Int64: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let value = Int64(text) else { throw decodingFailure(text, as: Int64.self) }
        self = value
    }
}

extension Int32: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let value = Int32(text) else { throw decodingFailure(text, as: Int32.self) }
        self = value
    }
}

extension Double: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let value = PostgresTextFormat.parseDouble(Substring(text)) else { throw decodingFailure(text, as: Double.self) }
        self = value
    }
}

extension Float: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let value = PostgresTextFormat.parseDouble(Substring(text)) else { throw decodingFailure(text, as: Float.self) }
        // float4 output is the shortest round-trip text, so parsing it as Float is exact.
        self = Float(text) ?? Float(value)
    }
}

extension Bool: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw decodingFailure(text, as: Bool.self)
        }
    }
}

extension Date: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let date = PostgresTextFormat.parseTimestamp(text) else { throw decodingFailure(text, as: Date.self) }
        self = date
    }
}

extension PostgresBytes: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let bytes = PostgresTextFormat.parseByteaHex(text) else { throw decodingFailure(text, as: PostgresBytes.self) }
        self.init(bytes)
    }
}

extension Data: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let bytes = PostgresTextFormat.parseByteaHex(text) else { throw decodingFailure(text, as: Data.self) }
        self.init(bytes)
    }
}

extension PostgresJSON: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws { self.init(text) }
}

/// `real[]`, `double precision[]` and pgvector `vector` columns all decode to `[Float]`.
extension Array: PostgresDecodable where Element: PostgresArrayElement & PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws {
        guard let elements = PostgresTextFormat.parseArray(text) else { throw decodingFailure(text, as: Self.self) }
        self = try elements.map { element in
            guard let element else { return try Element.postgresNull() }
            return try Element(postgresText: element, type: .unspecified)
        }
    }
}
