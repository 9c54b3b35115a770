import Foundation

/// Locates committed fixtures relative to this file, so tests run from any checkout.
enum FixturePaths {
    static let imagesDirectory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // FetchTests
        .deletingLastPathComponent()  // Tests
        .appendingPathComponent("Fixtures/images")

    static func bytes(_ relativePath: String) throws -> [UInt8] {
        Array(try Data(contentsOf: imagesDirectory.appendingPathComponent(relativePath)))
    }
}
