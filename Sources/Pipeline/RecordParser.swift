import Foundation
import Records

/// Message → validated record, the first stage of the pipeline: the record rules of
/// `Schemas/kafka/record.schema.json` (through `RecordValidator`), the id (the record's `id`,
/// else the message key, else `topic/partition/offset`), and what PostgreSQL text cannot hold.
///
/// An id taken from the message key obeys the rules of an `id` field: 1…256 characters, no
/// NUL. A key that is empty or not UTF-8 counts as no key.
public struct RecordParser: Sendable {
    let validator = RecordValidator()

    public init() {}

    /// - Throws: `PipelineFailure` of class `record.*`; its `recordID` is the record's id when
    ///   the JSON parsed with a valid one.
    public func parse(_ message: IncomingMessage) throws -> ParsedRecord {
        let record: Record
        switch validator.validate(message.value) {
        case .failure(let error):
            var failure = PipelineFailure(error)
            if error.kind != .invalidJSON { failure.recordID = Self.validID(inRefused: message) }
            throw failure
        case .success(let valid): record = valid
        }
        let keyID = Self.keyText(message)
        if record.id == nil, let keyID, let problem = Self.idProblem(keyID) {
            throw PipelineFailure(.record(.invalid), "the message key, used as the id (the record has no \"id\"), \(problem)")
        }
        let id = record.id ?? keyID ?? "\(message.partition.topic)/\(message.partition.partition)/\(message.offset)"
        for (field, value) in [("image_url", record.imageURL), ("caption", record.caption ?? ""), ("label_set", record.labelSet ?? "")]
        where value.unicodeScalars.contains("\u{0}") {
            throw PipelineFailure(.record(.invalid), "\(field) contains a NUL character", recordID: id)
        }
        var metadataJSON: String?
        if let metadata = record.metadata {
            // A real U+0000 anywhere in the tree (PostgreSQL's jsonb cannot hold it) is refused;
            // the six characters `\u0000` written as text (an escaped backslash) are just text.
            if metadata.contains(where: { Self.containsNUL($0.key) || Self.containsNUL($0.value) }) {
                throw PipelineFailure(.record(.invalid), "metadata contains a NUL character (U+0000)", recordID: id)
            }
            do {
                metadataJSON = String(decoding: try Self.encoder.encode(metadata), as: UTF8.self)
            } catch {
                throw PipelineFailure(.record(.invalid), "metadata cannot be stored as JSON: \(error)", recordID: id)
            }
        }
        return ParsedRecord(id: id, imageURL: record.imageURL, caption: record.caption, labelSet: record.labelSet, metadataJSON: metadataJSON)
    }

    /// Why `id` is not a valid record id (nil: it is one); the rules of the `id` field.
    static func idProblem(_ id: String) -> String? {
        let count = id.unicodeScalars.count
        if count < RecordValidator.idLength.lowerBound { return "must not be empty" }
        if count > RecordValidator.idLength.upperBound {
            return "is \(count) characters, over the limit of \(RecordValidator.idLength.upperBound)"
        }
        if id.unicodeScalars.contains("\u{0}") { return "contains a NUL character (U+0000)" }
        return nil
    }

    /// The message key as text; nil when there is none, it is empty or it is not UTF-8.
    static func keyText(_ message: IncomingMessage) -> String? {
        guard let key = message.key, !key.isEmpty else { return nil }
        return String(validating: key, as: UTF8.self)
    }

    /// For a message that failed validation but is a JSON object: its `id` if that is a valid
    /// id, else (no `id` at all) its key if that is one.
    static func validID(inRefused message: IncomingMessage) -> String? {
        guard message.value.count <= RecordValidator.maxMessageBytes,
              let object = (try? JSONSerialization.jsonObject(with: Data(message.value))) as? [String: Any] else { return nil }
        switch object["id"] {
        case let id as String: return idProblem(id) == nil ? id : nil
        case nil, is NSNull: return keyText(message).flatMap { idProblem($0) == nil ? $0 : nil }
        default: return nil
        }
    }

    static func containsNUL(_ text: String) -> Bool { text.unicodeScalars.contains("\u{0}") }

    static func containsNUL(_ value: JSONValue) -> Bool {
        switch value {
        case .null, .bool, .integer, .number: return false
        case .string(let text): return containsNUL(text)
        case .array(let values): return values.contains(where: containsNUL)
        case .object(let fields): return fields.contains { containsNUL($0.key) || containsNUL($0.value) }
        }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
