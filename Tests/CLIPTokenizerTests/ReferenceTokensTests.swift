import XCTest
@testable import CLIPTokenizer

/// Golden test: open_clip's ids for the 62 fixture captions (exact).
final class ReferenceTokensTests: XCTestCase {
    func testAllFixtureCaptionsGiveTheReferenceIds() throws {
        let file = try Fixtures.tokens()
        XCTAssertEqual(file.captions.count, 62)
        for caption in file.captions {
            let result = sharedTokenizer.tokenize(caption.text, contextLength: file.context_length)
            XCTAssertEqual(result.ids, caption.ids, "caption \(caption.index) (\(caption.category)): \(caption.text.debugDescription)")
            XCTAssertEqual(result.tokenCount, caption.length, "caption \(caption.index) length")
            XCTAssertEqual(result.endOfTextIndex, caption.eot_index, "caption \(caption.index) eot index")
            XCTAssertEqual(result.truncated, caption.truncated, "caption \(caption.index) truncated")
        }
    }

    func testCleaningMatchesOpenClipCleanText() throws {
        for caption in try Fixtures.tokens().captions {
            XCTAssertEqual(TextCleaner.cleanLower(caption.text), caption.clean_text,
                           "caption \(caption.index) (\(caption.category)): \(caption.text.debugDescription)")
        }
    }

    func testVocabularyStringsOfTheIdsMatchTheReferenceBPE() throws {
        for caption in try Fixtures.tokens().captions {
            let symbols = caption.ids[0..<caption.length].map { sharedTokenizer.vocabulary.symbols[$0] }
            XCTAssertEqual(symbols, caption.bpe, "caption \(caption.index)")
        }
    }

    func testUntruncatedLengthOfLongCaptions() throws {
        for caption in try Fixtures.tokens().captions {
            let body = sharedTokenizer.encode(caption.text)
            XCTAssertEqual(body.count + 2, caption.untruncated_length, "caption \(caption.index)")
        }
    }
}
