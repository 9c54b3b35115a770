import Foundation
import XCTest
@testable import CLIPTokenizer

/// The tokenizer is expensive to build (49k merges); tests share one instance.
let sharedTokenizer: CLIPTokenizer = {
    do { return try CLIPTokenizer() } catch { fatalError("cannot load the bundled vocabulary: \(error)") }
}()

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Caption: Decodable {
        let index: Int
        let category: String
        let text: String
        let clean_text: String
        let ids: [Int]
        let length: Int
        let untruncated_length: Int
        let truncated: Bool
        let eot_index: Int
        let bpe: [String]
    }

    struct TokensFile: Decodable {
        let context_length: Int
        let sot_token_id: Int
        let eot_token_id: Int
        let captions: [Caption]
    }

    static func tokens() throws -> TokensFile {
        let data = try Data(contentsOf: directory.appendingPathComponent("tokenizer/tokens.json"))
        return try JSONDecoder().decode(TokensFile.self, from: data)
    }
}
