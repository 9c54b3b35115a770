import Foundation
import Records
import Testing

/// The repository root, found from this file so the tests run on a fresh clone.
private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func exampleLines(_ name: String) throws -> [String] {
    let url = repositoryRoot.appendingPathComponent("Schemas/kafka/examples/\(name)")
    return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
}

private func loadSchema() throws -> JSONValue {
    let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("Schemas/kafka/record.schema.json"))
    return try JSONDecoder().decode(JSONValue.self, from: data)
}

@Suite struct RecordValidatorTests {
    let validator = RecordValidator()

    @Test func acceptsTheArchitectureExample() throws {
        let line = #"{"id": "sku-123", "image_url": "https://example.com/a.jpg", "caption": "a red bicycle", "label_set": "products", "metadata": {"any": "json"}}"#
        let record = try validator.validate(line).get()
        #expect(record == Record(id: "sku-123", imageURL: "https://example.com/a.jpg", caption: "a red bicycle",
                                 labelSet: "products", metadata: ["any": .string("json")]))
        #expect(record.imageURLScheme == "https")
    }

    @Test func nullOptionalFieldsCountAsAbsent() throws {
        let record = try validator.validate(#"{"id":null,"image_url":"file:///a.jpg","caption":null,"metadata":null}"#).get()
        #expect(record == Record(imageURL: "file:///a.jpg"))
    }

    @Test func errorsNameTheFieldAndTheProblem() {
        func message(_ line: String) -> String? {
            if case .failure(let error) = validator.validate(line) { return error.description }
            return nil
        }
        #expect(message("{}") == "image_url: required")
        #expect(message(#"{"image_url":"ftp://h/a.jpg"}"#) == #"image_url: scheme "ftp" is not supported (use http, https or file)"#)
        #expect(message(#"{"image_url":"https://h/a","id":7}"#) == "id: expected a string, got integer")
        #expect(message(#"{"image_url":"https://h/a","imageUrl":"x"}"#)?.hasPrefix("imageUrl: unknown field") == true)
        #expect(message("[1]") == "expected a JSON object, got array")
        #expect(message("{") == "not valid JSON")
        #expect(message(#"{"image_url":"https://h/a","caption":"a\u0000b"}"#) == "caption: contains a NUL character (U+0000)")
    }

    @Test func metadataKeepsJSONTypesExactly() throws {
        let record = try validator.validate(#"{"image_url":"https://h/a","metadata":{"t":true,"f":false,"one":1,"half":0.5,"big":12345678901234567890,"neg":-7,"s":"1","n":null,"a":[0,1.0,"x"],"o":{"k":{}}}}"#).get()
        #expect(record.metadata == [
            "t": .bool(true), "f": .bool(false), "one": .integer(1), "half": .number(0.5),
            "big": .number(12345678901234567890), "neg": .integer(-7), "s": .string("1"), "n": .null,
            "a": .array([.integer(0), .number(1.0), .string("x")]), "o": .object(["k": .object([:])]),
        ])
    }

    @Test func rejectsMessagesOverTheByteLimit() {
        let caption = String(repeating: "a", count: RecordValidator.maxMessageBytes)
        let result = validator.validate(#"{"image_url":"https://h/a","metadata":{"big":"\#(caption)"}}"#)
        guard case .failure(let error) = result else { Issue.record("accepted an oversized message"); return }
        #expect(error.field == nil)
        #expect(error.message.contains("over the limit of 1048576"))
    }

    @Test func validExamplesAreAccepted() throws {
        for (index, line) in try exampleLines("valid.jsonl").enumerated() {
            if case .failure(let error) = validator.validate(line) {
                Issue.record("valid.jsonl line \(index + 1) rejected: \(error)")
            }
        }
    }

    @Test func invalidExamplesAreRejected() throws {
        for (index, line) in try exampleLines("invalid.jsonl").enumerated() {
            if case .success = validator.validate(line) {
                Issue.record("invalid.jsonl line \(index + 1) accepted: \(line.prefix(80))")
            }
        }
    }

    /// The schema file and the Swift validator must give the same verdict on every example.
    @Test func schemaAndValidatorAgreeOnEveryExample() throws {
        let schema = SchemaSubsetEvaluator(schema: try loadSchema())
        let lines = try exampleLines("valid.jsonl") + exampleLines("invalid.jsonl")
        #expect(lines.count > 30)
        for line in lines {
            let swiftVerdict = (try? validator.validate(line).get()) != nil
            let schemaVerdict: Bool
            if let document = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) {
                schemaVerdict = try schema.accepts(document)
            } else {
                schemaVerdict = false
            }
            #expect(swiftVerdict == schemaVerdict, "disagree on \(line.prefix(100))")
        }
    }

    @Test func schemaLimitsMatchTheValidatorConstants() throws {
        guard case .object(let schema) = try loadSchema(),
              case .object(let properties)? = schema["properties"] else {
            Issue.record("schema has no properties"); return
        }
        #expect(Set(properties.keys) == RecordValidator.allowedFields)
        #expect(schema["additionalProperties"] == .bool(false))
        #expect(schema["required"] == .array([.string("image_url")]))
        func limit(_ field: String, _ keyword: String) -> Int? {
            guard case .object(let property)? = properties[field], case .integer(let value)? = property[keyword] else { return nil }
            return Int(value)
        }
        #expect(limit("id", "minLength") == RecordValidator.idLength.lowerBound)
        #expect(limit("id", "maxLength") == RecordValidator.idLength.upperBound)
        #expect(limit("image_url", "minLength") == RecordValidator.imageURLLength.lowerBound)
        #expect(limit("image_url", "maxLength") == RecordValidator.imageURLLength.upperBound)
        #expect(limit("caption", "maxLength") == RecordValidator.captionMaxLength)
        #expect(limit("label_set", "minLength") == RecordValidator.labelSetLength.lowerBound)
        #expect(limit("label_set", "maxLength") == RecordValidator.labelSetLength.upperBound)
        #expect(limit("metadata", "maxProperties") == RecordValidator.metadataMaxProperties)
    }
}

/// Evaluates the JSON Schema keywords the record schema uses (type, required, properties,
/// additionalProperties, min/maxLength, pattern, maxProperties), independently of RecordValidator.
struct SchemaSubsetEvaluator {
    let schema: JSONValue

    struct UnsupportedKeyword: Error { let keyword: String }

    func accepts(_ value: JSONValue) throws -> Bool { try accepts(value, schema) }

    private func accepts(_ value: JSONValue, _ schema: JSONValue) throws -> Bool {
        guard case .object(let keywords) = schema else { return true }
        let known: Set = ["$schema", "$id", "title", "description", "type", "required", "properties",
                          "additionalProperties", "minLength", "maxLength", "pattern", "maxProperties"]
        if let unknown = keywords.keys.first(where: { !known.contains($0) }) { throw UnsupportedKeyword(keyword: unknown) }
        if let type = keywords["type"] {
            let allowed: [JSONValue] = if case .array(let types) = type { types } else { [type] }
            let name = value.typeName == "integer" ? ["integer", "number"] : [value.typeName]
            if !allowed.contains(where: { if case .string(let t) = $0 { name.contains(t) } else { false } }) { return false }
        }
        if case .string(let text) = value {
            let length = text.unicodeScalars.count
            if case .integer(let min)? = keywords["minLength"], length < min { return false }
            if case .integer(let max)? = keywords["maxLength"], length > max { return false }
            if case .string(let pattern)? = keywords["pattern"] {
                let regex = try NSRegularExpression(pattern: pattern)
                if regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil { return false }
            }
        }
        if case .object(let fields) = value {
            if case .integer(let max)? = keywords["maxProperties"], fields.count > max { return false }
            if case .array(let required)? = keywords["required"] {
                for case .string(let name) in required where fields[name] == nil { return false }
            }
            var properties: [String: JSONValue] = [:]
            if case .object(let declared)? = keywords["properties"] { properties = declared }
            for (name, fieldValue) in fields {
                if let propertySchema = properties[name] {
                    if try !accepts(fieldValue, propertySchema) { return false }
                } else if keywords["additionalProperties"] == .bool(false) {
                    return false
                }
            }
        }
        return true
    }
}
