import Foundation
@testable import Pipeline
import XCTest

final class RecordParserTests: XCTestCase {
    let parser = RecordParser()

    func message(_ json: String, key: String? = nil, offset: Int64 = 7) -> IncomingMessage {
        IncomingMessage(partition: TopicPartition("records", 2), offset: offset, key: key.map { Array($0.utf8) }, value: Array(json.utf8))
    }

    func failure(_ json: String) -> PipelineFailure? {
        do { _ = try parser.parse(message(json)); return nil } catch { return error as? PipelineFailure }
    }

    func testTheIdComesFromTheRecordThenTheKeyThenThePosition() throws {
        let url = "https://example.com/a.jpg"
        XCTAssertEqual(try parser.parse(message("{\"id\":\"sku-1\",\"image_url\":\"\(url)\"}", key: "k")).id, "sku-1")
        XCTAssertEqual(try parser.parse(message("{\"image_url\":\"\(url)\"}", key: "k")).id, "k")
        XCTAssertEqual(try parser.parse(message("{\"image_url\":\"\(url)\"}")).id, "records/2/7")
    }

    func testFailuresCarryTheirKindNotAMessageToCompare() {
        XCTAssertEqual(failure("{not json")?.failureClass, .record(.invalidJSON))
        XCTAssertEqual(failure("{\"caption\":\"no url\"}")?.failureClass, .record(.invalid))
        XCTAssertEqual(failure("[1,2]")?.failureClass, .record(.invalid))
        XCTAssertEqual(failure("{\"image_url\":\"ftp://example.com/a.jpg\"}")?.failureClass, .record(.invalid))
    }

    func testMetadataIsKeptAsSortedJSON() throws {
        let parsed = try parser.parse(message("{\"image_url\":\"https://example.com/a.jpg\",\"metadata\":{\"b\":1,\"a\":\"x/y\"}}"))
        XCTAssertEqual(parsed.metadataJSON, "{\"a\":\"x/y\",\"b\":1}")
    }

    func testAnIdFromTheKeyObeysTheRulesOfAnIdField() throws {
        let url = "https://example.com/a.jpg"
        let long = String(repeating: "k", count: 5_000)
        do {
            _ = try parser.parse(message("{\"image_url\":\"\(url)\"}", key: long))
            XCTFail("a 5,000-character key became an id")
        } catch let failure as PipelineFailure {
            XCTAssertEqual(failure.failureClass, .record(.invalid))
            XCTAssertTrue(failure.message.contains("5000 characters"), failure.message)
            XCTAssertNil(failure.recordID)
        }
        let limit = String(repeating: "é", count: 256)  // 256 characters, 512 bytes
        XCTAssertEqual(try parser.parse(message("{\"image_url\":\"\(url)\"}", key: limit)).id, limit)
        XCTAssertThrowsError(try parser.parse(message("{\"image_url\":\"\(url)\"}", key: limit + "é")))
        XCTAssertThrowsError(try parser.parse(message("{\"image_url\":\"\(url)\"}", key: "a\u{0}b"))) {
            XCTAssertEqual(($0 as? PipelineFailure)?.failureClass, .record(.invalid))
        }
        // An empty key is no key; a record's own id wins over any key, however long.
        XCTAssertEqual(try parser.parse(message("{\"image_url\":\"\(url)\"}", key: "")).id, "records/2/7")
        XCTAssertEqual(try parser.parse(message("{\"id\":\"sku\",\"image_url\":\"\(url)\"}", key: long)).id, "sku")
    }

    func testLiteralBackslashU0000TextInMetadataIsAcceptedARealNULIsNot() throws {
        let url = "https://example.com/a.jpg"
        // The JSON text "\\u0000" is the six characters \u0000: legal text.
        let parsed = try parser.parse(message("{\"image_url\":\"\(url)\",\"metadata\":{\"note\":\"\\\\u0000\",\"k\\\\u0000\":[\"\\\\u0000\"]}}"))
        let metadata = try XCTUnwrap(parsed.metadataJSON)
        let decoded = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(metadata.utf8)) as? [String: Any])
        XCTAssertEqual(decoded["note"] as? String, "\\u0000")
        XCTAssertEqual(decoded["k\\u0000"] as? [String], ["\\u0000"])
        // A real U+0000 (the JSON escape \u0000), in a value, a key or nested, is refused.
        for json in ["{\"note\":\"a\\u0000b\"}", "{\"a\\u0000\":1}", "{\"deep\":[{\"x\":\"\\u0000\"}]}"] {
            XCTAssertEqual(failure("{\"id\":\"n1\",\"image_url\":\"\(url)\",\"metadata\":\(json)}")?.failureClass, .record(.invalid), json)
            XCTAssertEqual(failure("{\"id\":\"n1\",\"image_url\":\"\(url)\",\"metadata\":\(json)}")?.recordID, "n1", json)
        }
    }

    func testARefusedRecordKeepsItsIdWhenItsJSONParsed() {
        let long = String(repeating: "c", count: 70_000)
        XCTAssertEqual(failure("{\"id\":\"sku-1\",\"image_url\":\"https://example.com/a.jpg\",\"caption\":\"\(long)\"}")?.recordID, "sku-1")
        XCTAssertEqual(failure("{\"id\":\"sku-2\",\"image_url\":\"ftp://example.com/a.jpg\"}")?.recordID, "sku-2")
        XCTAssertEqual(failure("{\"id\":\"sku-3\"}")?.recordID, "sku-3", "missing image_url")
        // Not a valid id, or not parsed: no id.
        XCTAssertNil(failure("{\"id\":\"\(String(repeating: "i", count: 300))\",\"image_url\":\"https://example.com/a.jpg\"}")?.recordID)
        XCTAssertNil(failure("{\"id\":7,\"image_url\":\"https://example.com/a.jpg\"}")?.recordID)
        XCTAssertNil(failure("{not json")?.recordID)
        do {
            _ = try parser.parse(message("{\"image_url\":\"ftp://example.com/a.jpg\"}", key: "from-key"))
            XCTFail("accepted")
        } catch {
            XCTAssertEqual((error as? PipelineFailure)?.recordID, "from-key", "without an id field, the key is the id")
        }
    }
}
