import Foundation
import XCTest
@testable import CLIPTokenizer

/// ~1,000 generated captions (Scripts/generate_tokenizer_cases.py): mojibake in ftfy's ten codecs,
/// double and lossy encodings, legitimate accented text that must stay unchanged, HTML references,
/// controls, widths, casing and seeded random strings, with ftfy's and open_clip's outputs.
final class CleaningCasesTests: XCTestCase {
    struct Case: Decodable {
        let category: String
        let text: String
        let fix_text: String
        let clean_text: String
        let ids: [Int]
    }

    struct File: Decodable {
        let context_length: Int
        let cases: [Case]
    }

    private func load() throws -> File {
        let url = Fixtures.directory.appendingPathComponent("tokenizer/cleaning_cases.json")
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
    }

    func testFtfyFixTextPort() throws {
        let file = try load()
        XCTAssertGreaterThan(file.cases.count, 1000)
        var failures = 0
        for (index, item) in file.cases.enumerated() where TextCleaner.fixText(item.text) != item.fix_text {
            failures += 1
            if failures <= 15 {
                XCTFail("case \(index) [\(item.category)] \(item.text.debugDescription): got \(TextCleaner.fixText(item.text).debugDescription), ftfy \(item.fix_text.debugDescription)")
            }
        }
        XCTAssertEqual(failures, 0, "fix_text mismatches")
    }

    func testCleanTextAndIds() throws {
        let file = try load()
        var failures = 0
        for (index, item) in file.cases.enumerated() {
            let clean = TextCleaner.cleanLower(item.text)
            let ids = sharedTokenizer.tokenize(item.text, contextLength: file.context_length).ids
            if clean != item.clean_text || ids != item.ids {
                failures += 1
                if failures <= 15 {
                    XCTFail("case \(index) [\(item.category)] \(item.text.debugDescription): clean \(clean.debugDescription) vs \(item.clean_text.debugDescription); ids equal: \(ids == item.ids)")
                }
            }
        }
        XCTAssertEqual(failures, 0, "clean_text / ids mismatches")
    }
}
