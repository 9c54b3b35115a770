import Foundation
import XCTest
@testable import CLIPTokenizer

/// The shipped vocabulary is OpenAI's `bpe_simple_vocab_16e6.txt.gz`, read the way open_clip reads it.
final class VocabularyTests: XCTestCase {
    func testBundledFileIsTheOpenAIVocabulary() throws {
        let url = try XCTUnwrap(BytePairVocabulary.bundledFileURL)
        let text = try gunzip([UInt8](Data(contentsOf: url)))
        XCTAssertEqual(text.count, 3_194_984)
        // FNV-1a 64 of the decompressed text, computed from the fixture copy with Python.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        XCTAssertEqual(hash, 0xd167_c7eb_c811_9bcc)
    }

    func testLayoutAndSpotIds() {
        let symbols = sharedTokenizer.vocabulary.symbols
        XCTAssertEqual(symbols.count, 49_408)
        XCTAssertEqual(Set(symbols).count, 49_408, "every vocabulary string has one id")
        XCTAssertEqual(symbols[0], "!")
        XCTAssertEqual(symbols[256], "!</w>")
        XCTAssertEqual(symbols[512], "in", "first merge 'i n'")
        XCTAssertEqual(symbols[49_405], "jekyll</w>", "last merge 'jeky ll</w>'")
        XCTAssertEqual(symbols[320], "a</w>")
        XCTAssertEqual(symbols[1125], "photo</w>")
        XCTAssertEqual(symbols[2368], "cat</w>")
        XCTAssertEqual(symbols[49_406], "<start_of_text>")
        XCTAssertEqual(symbols[49_407], "<end_of_text>")
    }

    func testByteAlphabetIsAReversibleMapOfAllBytes() {
        let alphabet = BytePairVocabulary.bytesToUnicode()
        XCTAssertEqual(Set(alphabet.scalarOfByte).count, 256)
        XCTAssertEqual(alphabet.scalarOfByte[Int(UInt8(ascii: "a"))], "a")
        XCTAssertEqual(alphabet.scalarOfByte[0x20], "\u{120}", "space is Ġ")
        XCTAssertEqual(alphabet.scalarOfByte[0x00], "\u{100}")
    }

    func testMalformedVocabularyIsRejected() {
        XCTAssertThrowsError(try BytePairVocabulary(gzippedMerges: [1, 2, 3])) { error in
            XCTAssertEqual((error as? CLIPTokenizerError)?.code, .vocabularyNotGzip)
        }
        XCTAssertThrowsError(try BytePairVocabulary(mergesText: Array("header\ni n\n".utf8))) { error in
            XCTAssertEqual((error as? CLIPTokenizerError)?.code, .vocabularyMalformed)
        }
    }
}
