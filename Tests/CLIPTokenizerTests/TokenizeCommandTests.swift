import Foundation
import TestSupport
import XCTest

/// `clipd tokenize` end to end: runs the executable built beside this test bundle
/// (`swift build --build-tests` builds it; TestSupport finds it) on stdin and checks the CLI contract.
final class TokenizeCommandTests: XCTestCase {
    func testOneJSONArrayPerLineWithTheReferenceIds() throws {
        let captions = try Fixtures.tokens().captions
        let stdin = captions.map { caption -> String in
            let data = try! JSONSerialization.data(withJSONObject: caption.text, options: [.fragmentsAllowed])
            return String(decoding: data, as: UTF8.self)
        }.joined(separator: "\n") + "\n"
        let result = try runClipd(["tokenize"], stdin: stdin)
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, captions.count)
        for (line, caption) in zip(lines, captions) {
            let ids = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Int]
            XCTAssertEqual(ids, caption.ids, "caption \(caption.index)")
        }
    }

    func testContextLengthOption() throws {
        let result = try runClipd(["tokenize", "--context-length", "5"], stdin: "\"a photo of a cat\"\n\"\"\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "[49406,320,1125,539,49407]\n[49406,49407,0,0,0]\n")
    }

    func testBadLineStopsWithOneLineErrorNamingIt() throws {
        let result = try runClipd(["tokenize", "--context-length", "4"], stdin: "\"ok\"\n{\"not\": \"a string\"}\n\"never reached\"\n")
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stdout, "[49406,2481,49407,0]\n")
        let errorLines = result.stderr.split(separator: "\n")
        XCTAssertEqual(errorLines.count, 1)
        XCTAssertTrue(errorLines.first?.contains("line 2") ?? false, result.stderr)
    }

    func testContextLengthBelowTwoIsRejected() throws {
        let result = try runClipd(["tokenize", "--context-length", "1"], stdin: "\"a\"\n")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--context-length"), result.stderr)
        XCTAssertEqual(result.stdout, "")
    }
}
