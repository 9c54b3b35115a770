import Foundation

/// Why a message is not a valid record; `field` is nil when the message as a whole is wrong.
public struct RecordValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem, for machines (dead-letter classes); `message` is for people.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The bytes are not JSON at all.
        case invalidJSON = "invalid_json"
        /// JSON, but not a record: wrong types, missing or unknown fields, limits, schemes.
        case invalid
    }

    public var kind: Kind
    public var field: String?
    public var message: String

    public init(_ kind: Kind = .invalid, field: String?, message: String) {
        self.kind = kind
        self.field = field
        self.message = message
    }

    public var description: String {
        if let field { return "\(field): \(message)" }
        return message
    }
}

/// Checks a message value against the rules of `Schemas/kafka/record.schema.json`.
/// The limits are public so tests can compare them with the schema file.
public struct RecordValidator: Sendable {
    public static let maxMessageBytes = 1_048_576
    public static let idLength = 1...256
    public static let imageURLLength = 8...2048
    public static let captionMaxLength = 65_536
    public static let labelSetLength = 1...128
    public static let metadataMaxProperties = 256
    public static let allowedFields: Set<String> = ["id", "image_url", "caption", "label_set", "metadata"]
    public static let allowedSchemes = ["http", "https", "file"]

    public init() {}

    public func validate(_ bytes: some Collection<UInt8>) -> Result<Record, RecordValidationError> {
        if bytes.count > Self.maxMessageBytes {
            return .failure(.init(field: nil, message: "message is \(bytes.count) bytes, over the limit of \(Self.maxMessageBytes)"))
        }
        let document: JSONValue
        do {
            document = try JSONValue.parse(Data(bytes))
        } catch {
            return .failure(.init(.invalidJSON, field: nil, message: "not valid JSON"))
        }
        return validate(document)
    }

    public func validate(_ text: String) -> Result<Record, RecordValidationError> {
        validate(Array(text.utf8))
    }

    public func validate(_ document: JSONValue) -> Result<Record, RecordValidationError> {
        guard case .object(let fields) = document else {
            return .failure(.init(field: nil, message: "expected a JSON object, got \(document.typeName)"))
        }
        do {
            if let unknown = fields.keys.filter({ !Self.allowedFields.contains($0) }).sorted().first {
                throw RecordValidationError(field: unknown, message: "unknown field (allowed: id, image_url, caption, label_set, metadata)")
            }
            guard let imageURL = try Self.optionalString(fields, "image_url") else {
                throw RecordValidationError(field: "image_url", message: "required")
            }
            try Self.checkImageURL(imageURL)
            let id = try Self.optionalString(fields, "id")
            if let id { try Self.checkText(id, field: "id", length: Self.idLength) }
            let caption = try Self.optionalString(fields, "caption")
            if let caption { try Self.checkText(caption, field: "caption", length: 0...Self.captionMaxLength) }
            let labelSet = try Self.optionalString(fields, "label_set")
            if let labelSet { try Self.checkText(labelSet, field: "label_set", length: Self.labelSetLength) }
            var metadata: [String: JSONValue]?
            switch fields["metadata"] {
            case nil, .null?: metadata = nil
            case .object(let object)?:
                if object.count > Self.metadataMaxProperties {
                    throw RecordValidationError(field: "metadata", message: "has \(object.count) properties, over the limit of \(Self.metadataMaxProperties)")
                }
                metadata = object
            case let other?:
                throw RecordValidationError(field: "metadata", message: "expected an object, got \(other.typeName)")
            }
            return .success(Record(id: id, imageURL: imageURL, caption: caption, labelSet: labelSet, metadata: metadata))
        } catch let error as RecordValidationError {
            return .failure(error)
        } catch {
            return .failure(.init(field: nil, message: "\(error)"))
        }
    }

    private static func optionalString(_ fields: [String: JSONValue], _ name: String) throws -> String? {
        switch fields[name] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        case let other?: throw RecordValidationError(field: name, message: "expected a string, got \(other.typeName)")
        }
    }

    /// Lengths count Unicode code points, as JSON Schema's minLength/maxLength do.
    private static func checkText(_ text: String, field: String, length: ClosedRange<Int>) throws {
        let count = text.unicodeScalars.count
        if count < length.lowerBound {
            throw RecordValidationError(field: field, message: count == 0 ? "must not be empty" : "shorter than \(length.lowerBound) characters")
        }
        if count > length.upperBound {
            throw RecordValidationError(field: field, message: "is \(count) characters, over the limit of \(length.upperBound)")
        }
        if text.unicodeScalars.contains("\u{0}") {
            throw RecordValidationError(field: field, message: "contains a NUL character (U+0000)")
        }
    }

    private static func checkImageURL(_ url: String) throws {
        let field = "image_url"
        let count = url.unicodeScalars.count
        if count > imageURLLength.upperBound {
            throw RecordValidationError(field: field, message: "is \(count) characters, over the limit of \(imageURLLength.upperBound)")
        }
        guard let separator = url.range(of: "://") else {
            throw RecordValidationError(field: field, message: "not a URL (expected http://, https:// or file://)")
        }
        let scheme = url[..<separator.lowerBound].lowercased()
        guard allowedSchemes.contains(scheme) else {
            throw RecordValidationError(field: field, message: "scheme \"\(url[..<separator.lowerBound])\" is not supported (use http, https or file)")
        }
        if url.unicodeScalars.contains(where: { $0.isASCII ? $0 == " " || ("\t"..."\r").contains($0) : $0.properties.isWhitespace }) {
            throw RecordValidationError(field: field, message: "contains whitespace (percent-encode it)")
        }
        let rest = url[separator.upperBound...]
        if scheme == "file" {
            guard rest.hasPrefix("/") || rest.hasPrefix("localhost/") else {
                throw RecordValidationError(field: field, message: "file URLs need an absolute path on this host (file:///path)")
            }
        } else {
            let host = rest.prefix { !"/?#".contains($0) }
            if host.isEmpty {
                throw RecordValidationError(field: field, message: "\(scheme) URL has no host")
            }
        }
        if count < imageURLLength.lowerBound {
            throw RecordValidationError(field: field, message: "shorter than \(imageURLLength.lowerBound) characters")
        }
    }
}
