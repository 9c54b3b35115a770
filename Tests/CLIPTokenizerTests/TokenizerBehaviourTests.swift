import Dispatch
import Executors
import XCTest
@testable import CLIPTokenizer

final class TokenizerBehaviourTests: XCTestCase {
    func testEmptyAndWhitespaceOnlyCaptions() {
        for text in ["", "   ", "\n\t", "&nbsp;", "\u{0}\u{7}"] {
            let result = sharedTokenizer.tokenize(text)
            XCTAssertEqual(result.ids, [49406, 49407] + Array(repeating: 0, count: 75), text.debugDescription)
            XCTAssertEqual(result.tokenCount, 2)
            XCTAssertEqual(result.effectiveLength, 2)
        }
    }

    func testTruncationKeepsEndOfTextLast() {
        let text = Array(repeating: "word", count: 200).joined(separator: " ")
        let result = sharedTokenizer.tokenize(text)
        XCTAssertEqual(result.ids.count, 77)
        XCTAssertEqual(result.ids[76], 49407)
        XCTAssertFalse(result.ids.contains(0))
        XCTAssertTrue(result.truncated)
        XCTAssertEqual(result.endOfTextIndex, 76)
        XCTAssertEqual(Array(result.ids[1..<76]), sharedTokenizer.encode(text).prefix(75).map { Int($0) })
    }

    func testConfigurableContextLength() {
        let text = "a photo of a cat"
        let short = sharedTokenizer.tokenize(text, contextLength: 4)
        XCTAssertEqual(short.ids, [49406, 320, 1125, 49407])
        XCTAssertTrue(short.truncated)
        let long = sharedTokenizer.tokenize(text, contextLength: 10)
        XCTAssertEqual(long.ids, [49406, 320, 1125, 539, 320, 2368, 49407, 0, 0, 0])
        XCTAssertFalse(long.truncated)
        XCTAssertEqual(long.effectiveLength, 7)
        XCTAssertEqual(sharedTokenizer.tokenize(text, contextLength: 2).ids, [49406, 49407])
    }

    func testInvalidUTF8IsReplacedNotFatal() {
        let bytes: [UInt8] = Array("caf".utf8) + [0xC3] + Array(" ok ".utf8) + [0xFF, 0xFE, 0xED, 0xA0, 0x80] + Array("end".utf8)
        let result = sharedTokenizer.tokenize(utf8: bytes)
        XCTAssertEqual(result.ids.first, 49406)
        XCTAssertEqual(result.ids[result.endOfTextIndex], 49407)
        XCTAssertEqual(result.ids, sharedTokenizer.tokenize("caf\u{FFFD} ok \u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}end").ids)
    }

    func testNULBytesAreRemovedLikeOtherControls() {
        XCTAssertEqual(sharedTokenizer.tokenize("a\u{0}cat").ids, sharedTokenizer.tokenize("acat").ids)
        XCTAssertEqual(sharedTokenizer.tokenize(utf8: [0, 0, 0]).tokenCount, 2)
    }

    func testOneMegabyteCaptionIsTruncatedFromABoundedPrefix() {
        let unit = "a very long caption about a busy street at dusk, "
        let text = String(repeating: unit, count: 1_048_576 / unit.utf8.count + 1)
        XCTAssertGreaterThan(text.utf8.count, 1_000_000)
        let result = sharedTokenizer.tokenize(text)
        XCTAssertTrue(result.truncated)
        XCTAssertEqual(result.ids[76], 49407)
        XCTAssertEqual(result.ids, sharedTokenizer.tokenize(String(text.prefix(2000))).ids, "only the beginning matters")
    }

    func testLongWhitespaceRunBeforeTheCaptionStillFindsIt() {
        let text = String(repeating: " \n", count: 30_000) + "a cat"
        XCTAssertEqual(Array(sharedTokenizer.tokenize(text).ids.prefix(4)), [49406, 320, 2368, 49407])
    }

    func testNothingBeyondTheHardLimitIsRead() {
        // The documented deviation that bounds the cost: a megabyte of line breaks is not scanned.
        let text = String(repeating: "\n", count: 1_000_000) + "a cat"
        XCTAssertEqual(sharedTokenizer.tokenize(text).tokenCount, 2)
    }

    func testDecodeRoundTripsCleanedText() {
        for text in ["a photo of a cat", "café ☺ 🐱🚀 東京"] {
            XCTAssertEqual(sharedTokenizer.decode(sharedTokenizer.tokenize(text).ids), text)
        }
        // Like open_clip's decode, every pre-split piece ends a word.
        XCTAssertEqual(sharedTokenizer.decode(sharedTokenizer.tokenize("Don't stop, it's fine").ids), "don 't stop , it 's fine")
        XCTAssertEqual(sharedTokenizer.decode([49406, 320, 49407, 0, 0], skipSpecialTokens: false), "<start_of_text>a <end_of_text>")
    }

    func testConcurrentUseFromManyThreadsGivesTheSameIds() throws {
        let captions = try Fixtures.tokens().captions
        let tokenizer = try CLIPTokenizer(cacheCapacity: 16)  // tiny cache: constant eviction under contention
        let mismatches = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for round in 0..<3 {
                for caption in captions where (caption.index + worker + round) % 2 == 0 {
                    if tokenizer.tokenize(caption.text).ids != caption.ids { mismatches.withLock { $0 += 1 } }
                }
            }
        }
        XCTAssertEqual(mismatches.value, 0)
    }
}
