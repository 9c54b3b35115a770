import XCTest
@testable import ImageIO

final class ImageFormatTests: XCTestCase {
    func testRealFilesAreRecognisedByContentNotName() throws {
        XCTAssertEqual(ImageFormat(sniffing: try Fixtures.bytes(Fixtures.images("chelsea_16x16.jpg"))), .jpeg)
        XCTAssertEqual(ImageFormat(sniffing: try Fixtures.bytes(Fixtures.images("rocket_640x427_progressive.jpg"))), .jpeg)
        XCTAssertEqual(ImageFormat(sniffing: try Fixtures.bytes(Fixtures.images("bad/animated.gif"))), .gif)
        // A GIF saved with a .jpg name is still a GIF.
        XCTAssertEqual(ImageFormat(sniffing: try Fixtures.bytes(Fixtures.images("bad/gif_named.jpg"))), .gif)
        XCTAssertEqual(ImageFormat(sniffing: try Fixtures.bytes(Fixtures.images("bad/empty.jpg"))), .unknown)
    }

    func testMagicNumbers() {
        XCTAssertEqual(ImageFormat(sniffing: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]), .png)
        XCTAssertEqual(ImageFormat(sniffing: Array("GIF87a".utf8) + [1, 0]), .gif)
        XCTAssertEqual(ImageFormat(sniffing: Array("RIFF".utf8) + [0x24, 0, 0, 0] + Array("WEBPVP8 ".utf8)), .webp)
        XCTAssertEqual(ImageFormat(sniffing: Array("RIFF".utf8) + [0x24, 0, 0, 0] + Array("WAVEfmt ".utf8)), .unknown)
        XCTAssertEqual(ImageFormat(sniffing: [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0]), .tiff)
        XCTAssertEqual(ImageFormat(sniffing: [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8]), .tiff)
        var bmp = [UInt8](repeating: 0, count: 54)
        bmp[0] = 0x42; bmp[1] = 0x4D; bmp[14] = 40
        XCTAssertEqual(ImageFormat(sniffing: bmp), .bmp)
        // Text that happens to start with "BM" is not a bitmap.
        XCTAssertEqual(ImageFormat(sniffing: Array("BMW press photos, see attached".utf8)), .unknown)
        XCTAssertEqual(ImageFormat(sniffing: Array("<html><body>not found</body></html>".utf8)), .unknown)
        // A truncated JPEG marker is not enough.
        XCTAssertEqual(ImageFormat(sniffing: [0xFF, 0xD8]), .unknown)
        XCTAssertEqual(ImageFormat(sniffing: [UInt8]()), .unknown)
    }
}
