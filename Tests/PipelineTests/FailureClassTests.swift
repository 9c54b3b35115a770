import Fetch
import Foundation
import ImageIO
@testable import Pipeline
import Records
import XCTest

final class FailureClassTests: XCTestCase {
    func testEveryClassHasAUniqueStageQualifiedNameThatRoundTrips() {
        let names = FailureClass.allCases.map(\.rawValue)
        XCTAssertEqual(Set(names).count, names.count)
        for failureClass in FailureClass.allCases {
            XCTAssertEqual(FailureClass(rawValue: failureClass.rawValue), failureClass)
            XCTAssertTrue(failureClass == .internal || ["record", "fetch", "image", "store"].contains(failureClass.rawValue.split(separator: ".").first),
                          failureClass.rawValue)
        }
        XCTAssertNil(FailureClass(rawValue: "invalid_record"))
        XCTAssertEqual(PipelineFailure(FetchError(.timeout, "slow")).errorClass, "fetch.timeout")
        XCTAssertEqual(PipelineFailure(ImageIOError(.tooLarge, "big")).errorClass, "image.too_large")
        XCTAssertEqual(FailureClass.store(.rejected).rawValue, "store.rejected")
    }

    /// The README's list of failure classes is exactly what clipd can store.
    func testReadmeListsEveryFailureClass() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        guard let start = text.range(of: "<!-- failure-classes -->"), let end = text.range(of: "<!-- /failure-classes -->") else {
            return XCTFail("README.md has no <!-- failure-classes --> section")
        }
        let section = text[start.upperBound..<end.lowerBound]
        var listed = Set<String>()
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            listed.insert(String(line.dropFirst(3).prefix { $0 != "`" }))
        }
        XCTAssertEqual(listed, Set(FailureClass.allCases.map(\.rawValue)))
    }
}
