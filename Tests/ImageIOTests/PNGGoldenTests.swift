import Foundation
import XCTest
@testable import ImageIO

/// PNG decoding + preprocessing against Pillow (references made by Data/make_png_references.py).
final class PNGGoldenTests: XCTestCase {
    static let data = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Data")

    func check(_ stem: String, layout: PixelLayout, file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = try Fixtures.bytes(Self.data.appendingPathComponent(stem + ".png"))
        let raw = try Data(contentsOf: Self.data.appendingPathComponent(stem + ".f32"))
        let expected = raw.withUnsafeBytes { buffer in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
        let (tensor, summary) = try Preprocessor(options: PreprocessOptions(imageSize: 16)).preprocess(bytes)
        XCTAssertEqual(summary.format, .png, file: file, line: line)
        XCTAssertEqual(summary.mode, layout, file: file, line: line)
        XCTAssertEqual(tensor.count, expected.count, file: file, line: line)
        XCTAssertLessThanOrEqual(Difference(tensor, expected).maxAbs, 1e-6, stem, file: file, line: line)
    }

    func testRGB() throws { try check("rgb_37x23", layout: .rgb) }
    func testGray() throws { try check("gray_23x37", layout: .gray) }
    /// tRNS on an RGB image: Pillow keeps mode RGB and ignores it; so do we.
    func testRGBWithTransparentColour() throws { try check("rgb_trns_41x29", layout: .rgb) }

    /// RGBA: Pillow resizes premultiplied ("RGBa") and divides alpha out before dropping it.
    func testRGBAIsResizedPremultiplied() throws { try check("rgba_35x27", layout: .rgb) }
    /// LA: premultiplied too, then replicated to RGB.
    func testGrayWithAlpha() throws { try check("gray_alpha_26x33", layout: .rgb) }
    /// Palette pictures are mode "P" in Pillow, whose resize then samples nearest neighbours.
    func testPaletteUsesNearestNeighbour() throws { try check("palette_45x31", layout: .rgb) }
    func testPaletteWithTransparentIndex() throws { try check("palette_trns_45x31", layout: .rgb) }
    /// 1-bit gray is mode "1": nearest neighbour as well.
    func testBilevel() throws { try check("bilevel_30x40", layout: .gray) }

    /// PNG's eXIf chunk: orientation 6 applied like `ImageOps.exif_transpose`.
    func testExifOrientationInPNG() throws {
        try check("rgb_exif6_34x22", layout: .rgb)
        let image = try ImageDecoder().decode(Fixtures.bytes(Self.data.appendingPathComponent("rgb_exif6_34x22.png")))
        XCTAssertEqual(image.exifOrientation, 6)
    }
}
