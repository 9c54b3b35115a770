import XCTest
@testable import CLIPTokenizer

/// The heap-based merge for long pieces must equal the direct reference loop.
final class BytePairMergeTests: XCTestCase {
    private func merged(_ text: String, long: Bool) -> [Int32] {
        var out = [Int32]()
        Array(text.utf8).withUnsafeBufferPointer { bytes in
            if long {
                sharedTokenizer.vocabulary.mergeLongWord(bytes, into: &out)
            } else {
                sharedTokenizer.vocabulary.mergeWordDirectly(bytes, into: &out)
            }
        }
        return out
    }

    func testHeapMergeEqualsDirectMergeOnFixtureWords() throws {
        for caption in try Fixtures.tokens().captions {
            for word in caption.clean_text.split(separator: " ") {
                XCTAssertEqual(merged(String(word), long: true), merged(String(word), long: false), String(word))
            }
        }
    }

    func testHeapMergeEqualsDirectMergeOnLongRandomWords() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("aaaabcdeeeefghiiijklmnooopqrstuuvwxyzéñ東京")
        for length in [1, 2, 3, 49, 200, 700] {
            for _ in 0..<5 {
                let word = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
                XCTAssertEqual(merged(word, long: true), merged(word, long: false), word)
            }
        }
        let repeated = String(repeating: "a", count: 301)
        XCTAssertEqual(merged(repeated, long: true), merged(repeated, long: false))
    }

    func testOneMegabyteWordIsBounded() {
        let word = String(repeating: "supercalifragilistic", count: 52_429)  // ~1 MB, no spaces
        let result = sharedTokenizer.tokenize(word)
        XCTAssertTrue(result.truncated)
        XCTAssertEqual(result.ids[76], 49407)
        XCTAssertEqual(result.ids, sharedTokenizer.tokenize(String(word.prefix(8000))).ids)
    }
}
