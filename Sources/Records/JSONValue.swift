/// A JSON document kept as a tree, so record metadata is stored exactly as it arrived.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The JSON Schema type name, used in error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer: "integer"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

import Foundation

extension JSONValue {
    struct SyntaxError: Error {}

    /// Parses JSON text. Foundation's JSONSerialization is an order of magnitude faster here
    /// than decoding this enum through Codable, whose type probing throws at every miss.
    static func parse(_ bytes: Data) throws -> JSONValue {
        try JSONValue(foundationObject: JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed]))
    }

    private static let booleanClass: AnyClass = type(of: NSNumber(value: true))

    private init(foundationObject object: Any) throws {
        switch object {
        case let string as String:
            self = .string(string)
        case let number as NSNumber:
            if type(of: number) == Self.booleanClass {
                self = .bool(number.boolValue)
            } else {
                switch UInt8(bitPattern: number.objCType.pointee) {
                case UInt8(ascii: "d"), UInt8(ascii: "f"), UInt8(ascii: "Q"):
                    self = .number(number.doubleValue)
                default:
                    self = .integer(number.int64Value)
                }
            }
        case let array as [Any]:
            self = .array(try array.map(JSONValue.init(foundationObject:)))
        case let object as [String: Any]:
            self = .object(try object.mapValues(JSONValue.init(foundationObject:)))
        case is NSNull:
            self = .null
        default:
            throw SyntaxError()
        }
    }
}
