import Foundation
import Records

/// Message → validated record, the first stage of the pipeline: the record rules of
/// `Schemas/kafka/record.schema.json` (through `RecordValidator`), the id (the record's `id`,
/// else the message key, else `topic/partition/offset`), and what PostgreSQL text cannot hold.
public struct RecordParser: Sendable {
    let validator = RecordValidator()

    public init() {}

    /// - Throws: `PipelineFailure` of class `record.*`.
    public func parse(_ message: IncomingMessage) throws -> ParsedRecord {
        let record: Record
        switch validator.validate(message.value) {
        case .failure(let error): throw PipelineFailure(error)
        case .success(let valid): record = valid
        }
        let id = record.id ?? message.key.flatMap { String(validating: $0, as: UTF8.self) }
            ?? "\(message.partition.topic)/\(message.partition.partition)/\(message.offset)"
        for (field, value) in [("id", id), ("image_url", record.imageURL), ("caption", record.caption ?? ""), ("label_set", record.labelSet ?? "")]
        where value.unicodeScalars.contains("\u{0}") {
            throw PipelineFailure(.record(.invalid), "\(field) contains a NUL character")
        }
        var metadataJSON: String?
        if let metadata = record.metadata, let data = try? Self.encoder.encode(metadata) {
            let text = String(decoding: data, as: UTF8.self)
            if text.contains("\\u0000") { throw PipelineFailure(.record(.invalid), "metadata contains a NUL character") }
            metadataJSON = text
        }
        return ParsedRecord(id: id, imageURL: record.imageURL, caption: record.caption, labelSet: record.labelSet, metadataJSON: metadataJSON)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
