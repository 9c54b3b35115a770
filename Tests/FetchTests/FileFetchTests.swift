import Foundation
import XCTest
@testable import Fetch

/// `file://` URLs: readable only below the configured roots, whatever `..` or symlinks say.
final class FileFetchTests: XCTestCase {
    private var scratch: URL!
    private var root: URL!
    private var outside: URL!
    private let jpeg: [UInt8] = (try? FixturePaths.bytes("chelsea_16x16.jpg")) ?? []

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fetch-tests-\(UUID().uuidString)")
        root = scratch.appendingPathComponent("root")
        outside = scratch.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try Data(jpeg).write(to: root.appendingPathComponent("sub/cat.jpg"))
        try Data(jpeg).write(to: root.appendingPathComponent("with space.jpg"))
        try Data(jpeg).write(to: outside.appendingPathComponent("secret.jpg"))
        try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("escape.jpg"),
                                                   withDestinationURL: outside.appendingPathComponent("secret.jpg"))
        try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("escape-dir"), withDestinationURL: outside)
        try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("alias.jpg"),
                                                   withDestinationURL: root.appendingPathComponent("sub/cat.jpg"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private func fetcher(roots: [String]? = nil, maxBytes: Int = 1 << 20) -> ImageFetcher {
        ImageFetcher(configuration: FetchConfiguration(maxBytes: maxBytes, allowedFileRoots: roots ?? [root.path]))
    }

    private func failure(_ fetcher: ImageFetcher, _ url: String,
                         file: StaticString = #filePath, line: UInt = #line) async -> FetchError? {
        do {
            _ = try await fetcher.fetch(url)
            XCTFail("expected a failure for \(url)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    private func expectFailure(_ expected: FetchError.Class, _ fetcher: ImageFetcher, _ url: String,
                               file: StaticString = #filePath, line: UInt = #line) async {
        let error = await failure(fetcher, url, file: file, line: line)
        XCTAssertEqual(error?.class, expected, url, file: file, line: line)
    }

    func testFileInsideRootIsRead() async throws {
        let fetcher = fetcher()
        let image = try await fetcher.fetch("file://\(root.path)/sub/cat.jpg")
        XCTAssertEqual(image.bytes, jpeg)
        XCTAssertEqual(image.format, .jpeg)
        let fetched1 = try await fetcher.fetch("file://localhost\(root.path)/with%20space.jpg")
        XCTAssertEqual(fetched1.bytes, jpeg)
        // A symlink that stays inside the root, and `..` that stays inside, are fine.
        let fetched2 = try await fetcher.fetch("file://\(root.path)/alias.jpg")
        XCTAssertEqual(fetched2.bytes, jpeg)
        let fetched3 = try await fetcher.fetch("file://\(root.path)/sub/../sub/cat.jpg")
        XCTAssertEqual(fetched3.bytes, jpeg)
    }

    func testRootGivenThroughASymlinkStillWorks() async throws {
        let linkedRoot = scratch.appendingPathComponent("root-link")
        try FileManager.default.createSymbolicLink(at: linkedRoot, withDestinationURL: root)
        let image = try await fetcher(roots: [linkedRoot.path]).fetch("file://\(root.path)/sub/cat.jpg")
        XCTAssertEqual(image.bytes, jpeg)
    }

    func testEscapesFromTheRootAreRefused() async throws {
        let fetcher = fetcher()
        let attempts = [
            "file://\(outside.path)/secret.jpg",
            "file://\(root.path)/../outside/secret.jpg",
            "file://\(root.path)/sub/%2E%2E/%2E%2E/outside/secret.jpg",
            "file://\(root.path)/escape.jpg",
            "file://\(root.path)/escape-dir/secret.jpg",
            "file:///etc/passwd",
            "file://\(root.path)/../outside/does-not-exist.jpg",
        ]
        for url in attempts {
            let error = await failure(fetcher, url)
            XCTAssertEqual(error?.class, .fileNotAllowed, url)
            XCTAssertEqual(error?.isRetriable, false, url)
        }
        // A sibling directory whose name merely starts with the root's name is outside it.
        let sibling = scratch.appendingPathComponent("rootsibling")
        try FileManager.default.createDirectory(at: sibling, withIntermediateDirectories: true)
        try Data(jpeg).write(to: sibling.appendingPathComponent("x.jpg"))
        await expectFailure(.fileNotAllowed, fetcher, "file://\(sibling.path)/x.jpg")
    }

    func testMissingDirectoryAndOversizedFiles() async throws {
        await expectFailure(.notFound, fetcher(), "file://\(root.path)/sub/nope.jpg")
        await expectFailure(.fileNotAllowed, fetcher(), "file://\(root.path)/sub")
        let tooSmallCap = fetcher(maxBytes: jpeg.count - 1)
        await expectFailure(.tooLarge, tooSmallCap, "file://\(root.path)/sub/cat.jpg")
        let fetched4 = try await fetcher(maxBytes: jpeg.count).fetch("file://\(root.path)/sub/cat.jpg")
        XCTAssertEqual(fetched4.bytes, jpeg)
    }

    func testFileURLsNeedConfiguredRootsAndALocalHost() async throws {
        await expectFailure(.fileNotAllowed, fetcher(roots: []), "file://\(root.path)/sub/cat.jpg")
        await expectFailure(.fileNotAllowed, fetcher(roots: ["/no/such/root"]), "file://\(root.path)/sub/cat.jpg")
        await expectFailure(.badURL, fetcher(), "file://fileserver\(root.path)/sub/cat.jpg")
        await expectFailure(.badURL, fetcher(), "file:relative/cat.jpg")
    }

    func testFIFOIsRefusedWithoutBlocking() async throws {
        let fifo = root.appendingPathComponent("pipe.jpg")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        await expectFailure(.fileNotAllowed, fetcher(), "file://\(fifo.path)")
    }
}
