import XCTest
@testable import Daemon

final class DaemonConfigTests: XCTestCase {
    func testKindsFollowThePropertyTypes() {
        let kinds = DaemonConfig.kinds
        XCTAssertEqual(Set(kinds.keys), Set(DaemonConfig.keys))
        XCTAssertEqual(kinds["brokers"], .string)
        XCTAssertEqual(kinds["dlq_topic"], .optionalString)
        XCTAssertEqual(kinds["model"], .optionalString)
        XCTAssertEqual(kinds["allow_file_roots"], .stringList)
        XCTAssertEqual(kinds["allow_private_networks"], .bool)
        XCTAssertEqual(kinds["batch_size"], .int)
        XCTAssertEqual(kinds["drain_timeout_seconds"], .double)
        XCTAssertEqual(kinds["max_image_pixels"], .int)
    }

    func testProblemsAreReported() {
        var c = DaemonConfig()
        XCTAssertNil(c.problem())
        c.maxInFlight = 4
        XCTAssertNotNil(c.problem())
        c = DaemonConfig()
        c.assignmentStrategy = "sticky-ish"
        XCTAssertNotNil(c.problem())
        XCTAssertEqual(DaemonConfig().effectiveDLQTopic, "clipd.records.dlq")
    }
}
