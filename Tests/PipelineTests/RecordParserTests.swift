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
}
