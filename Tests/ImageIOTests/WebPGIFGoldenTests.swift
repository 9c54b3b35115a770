import Foundation
import XCTest
@testable import ImageIO

/// WebP and GIF decoding + preprocessing against Pillow (references made by
/// Data/make_webp_gif_references.py with Pillow 13.0, which bundles libwebp 1.6.0; clipd uses
/// Debian's libwebp 1.2.4 and giflib 5.2.1).
final class WebPGIFGoldenTests: XCTestCase {
    static let data = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Data")

    @discardableResult
    func check(_ name: String, format: ImageFormat, tolerance: Float, file: StaticString = #filePath, line: UInt = #line) throws -> Float {
        let bytes = try Fixtures.bytes(Self.data.appendingPathComponent(name))
        let stem = String(name[..<name.lastIndex(of: ".")!])
        let raw = try Data(contentsOf: Self.data.appendingPathComponent(stem + ".f32"))
        let expected = raw.withUnsafeBytes { buffer in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
        let (tensor, summary) = try Preprocessor(options: PreprocessOptions(imageSize: 16)).preprocess(bytes)
        XCTAssertEqual(summary.format, format, file: file, line: line)
        XCTAssertEqual(tensor.count, expected.count, file: file, line: line)
        let difference = Difference(tensor, expected).maxAbs
        if ProcessInfo.processInfo.environment["CLIPD_PRINT_FIDELITY"] == "1" { print("fidelity \(name): max abs \(difference)") }
        XCTAssertLessThanOrEqual(difference, tolerance, name, file: file, line: line)
        return difference
    }

    // Lossless WebP and every GIF are exact (max abs 0 up to float rounding).
    func testLosslessWebP() throws { try check("webp_lossless_37x23.webp", format: .webp, tolerance: 1e-6) }
    func testPaletteGIFInterlaced() throws { try check("gif_palette_45x31.gif", format: .gif, tolerance: 1e-6) }
    func testSmallGIF() throws { try check("gif_small_15x12.gif", format: .gif, tolerance: 1e-6) }
    /// The first frame of an animation, with a transparent index (ignored, as convert('RGB') does).
    func testAnimatedGIFFirstFrame() throws { try check("gif_animated_33x25.gif", format: .gif, tolerance: 1e-6) }
    func testGrayGIF() throws { try check("gif_gray_19x26.gif", format: .gif, tolerance: 1e-6) }

    // Lossy WebP: libwebp versions may round the YUV→RGB conversion differently; the bound is
    // stated here and the measured value printed with CLIPD_PRINT_FIDELITY=1.
    func testLossyWebP() throws { try check("webp_lossy_41x29.webp", format: .webp, tolerance: 1e-6) }
    func testLossyWebPWithAlphaIsResizedPremultiplied() throws { try check("webp_lossy_alpha_35x27.webp", format: .webp, tolerance: 1e-6) }
    func testAnimatedWebPFirstFrame() throws { try check("webp_animated_30x22.webp", format: .webp, tolerance: 1e-6) }

    /// The fixture GIFs (an animation, and a GIF named .jpg) decode to their first frame like Pillow.
    func testFixtureGIFsDecodeLikePillow() throws {
        for (source, stem) in [("animated.gif", "fixture_animated_gif"), ("gif_named.jpg", "fixture_gif_named")] {
            let bytes = try Fixtures.bytes(Fixtures.images("bad/" + source))
            let raw = try Data(contentsOf: Self.data.appendingPathComponent(stem + ".f32"))
            let expected = raw.withUnsafeBytes { buffer in
                (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            let (tensor, summary) = try Preprocessor(options: PreprocessOptions(imageSize: 16)).preprocess(bytes)
            XCTAssertEqual(summary.format, .gif)
            XCTAssertLessThanOrEqual(Difference(tensor, expected).maxAbs, 1e-6, source)
        }
    }

    /// A bare WebP signature with no image is damaged, not unsupported.
    func testEmptyWebPContainerIsCorruptOrTruncated() {
        XCTAssertThrowsError(try ImageDecoder().decode(Array("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ".utf8))) { error in
            let errorClass = (error as? ImageIOError)?.errorClass
            XCTAssertTrue(errorClass == .truncated || errorClass == .corrupt, "\(error)")
        }
    }

    func testTruncatedAndDamagedFilesGetTheirClass() throws {
        for name in ["webp_lossy_41x29.webp", "gif_palette_45x31.gif"] {
            let bytes = try Fixtures.bytes(Self.data.appendingPathComponent(name))
            for cut in [12, bytes.count / 2, bytes.count - 3] {
                XCTAssertThrowsError(try ImageDecoder().decode(Array(bytes.prefix(cut))), "\(name) cut at \(cut)") { error in
                    let errorClass = (error as? ImageIOError)?.errorClass
                    XCTAssertTrue(errorClass == .truncated || errorClass == .corrupt, "\(name) cut at \(cut): \(error)")
                }
            }
        }
    }

    func testPixelLimitIsCheckedFromTheHeader() throws {
        for name in ["webp_lossless_37x23.webp", "gif_palette_45x31.gif"] {
            let bytes = try Fixtures.bytes(Self.data.appendingPathComponent(name))
            XCTAssertThrowsError(try ImageDecoder(maxPixels: 100).decode(bytes)) { error in
                XCTAssertEqual((error as? ImageIOError)?.errorClass, .tooLarge, name)
            }
        }
    }
}
