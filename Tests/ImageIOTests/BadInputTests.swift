import Foundation
import XCTest
@testable import ImageIO

/// Every malformed input of `Fixtures/images/bad` fails with its class (or, where
/// expected.json leaves the behaviour to the implementation, decodes as documented).
final class BadInputTests: XCTestCase {
    func decode(_ name: String, decoder: ImageDecoder = ImageDecoder()) throws -> DecodedImage {
        try decoder.decode(Fixtures.bytes(Fixtures.images("bad/" + name)))
    }

    func assertFails(_ name: String, with expected: ImageIOError.Class, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let image = try decode(name)
            XCTFail("\(name) decoded to \(image.width)x\(image.height)", file: file, line: line)
        } catch let error as ImageIOError {
            XCTAssertEqual(error.errorClass, expected, "\(name): \(error)", file: file, line: line)
            XCTAssertFalse(error.message.isEmpty, file: file, line: line)
        } catch {
            XCTFail("\(name): unexpected error \(error)", file: file, line: line)
        }
    }

    func testTruncatedHalf() { assertFails("truncated_half.jpg", with: .truncated) }
    func testEmpty() { assertFails("empty.jpg", with: .empty) }
    func testRandomBytesAreCorrupt() { assertFails("random_bytes.jpg", with: .corrupt) }
    /// A bitmap is recognised but not decoded.
    func testBitmapIsUnsupported() { assertFails("bitmap.bmp", with: .unsupportedFormat) }
    /// SOI and part of APP0: the file ends inside the header.
    func testHeaderOnly() { assertFails("header_only.jpg", with: .truncated) }
    func testBomb() { assertFails("bomb_60000x60000.jpg", with: .tooLarge) }

    /// The bomb is refused from its header: no pixel memory, whatever the claimed size.
    func testBombIsRefusedBeforeAllocation() throws {
        let before = Self.peakResidentKilobytes()
        for _ in 0..<3 {
            XCTAssertThrowsError(try decode("bomb_60000x60000.jpg")) { error in
                XCTAssertEqual((error as? ImageIOError)?.errorClass, .tooLarge)
                XCTAssertTrue("\(error)".contains("60000x60000"), "\(error)")
            }
        }
        XCTAssertThrowsError(try Preprocessor().preprocess(Fixtures.bytes(Fixtures.images("bad/bomb_60000x60000.jpg")))) { error in
            XCTAssertEqual((error as? ImageIOError)?.errorClass, .tooLarge)
        }
        // A 60000x60000 RGB buffer is 10.8 GB; touching even a row band would show.
        XCTAssertLessThan(Self.peakResidentKilobytes() - before, 64 * 1024)
    }

    /// The limit is the header's width x height, inclusive.
    func testPixelLimitBoundary() throws {
        let bytes = try Fixtures.bytes(Fixtures.images("astronaut_512x512.jpg"))
        XCTAssertNoThrow(try ImageDecoder(maxPixels: 512 * 512).decode(bytes))
        XCTAssertThrowsError(try ImageDecoder(maxPixels: 512 * 512 - 1).decode(bytes)) { error in
            XCTAssertEqual((error as? ImageIOError)?.errorClass, .tooLarge)
        }
        let png = try Fixtures.bytes(Fixtures.images("bad/png_named.jpg"))
        XCTAssertThrowsError(try ImageDecoder(maxPixels: 64 * 43 - 1).decode(png)) { error in
            XCTAssertEqual((error as? ImageIOError)?.errorClass, .tooLarge)
        }
    }

    /// Content sniffing: a PNG named .jpg decodes as the PNG it is (64x43 RGB).
    func testPNGWithJPEGNameDecodesAsPNG() throws {
        let image = try decode("png_named.jpg")
        XCTAssertEqual(image.format, .png)
        XCTAssertEqual(image.layout, .rgb)
        XCTAssertEqual(image.width, 64)
        XCTAssertEqual(image.height, 43)
        let summary = try Preprocessor().preprocess(Fixtures.bytes(Fixtures.images("bad/png_named.jpg"))).summary
        XCTAssertEqual(summary.decodeMode, "png")
        XCTAssertEqual(summary.geometry, ResizeGeometry(width: 64, height: 43, size: 224))
    }

    /// All pixel data is present, only the EOI marker is missing: libjpeg-turbo decodes it
    /// completely, and so do we (Pillow refuses it unless LOAD_TRUNCATED_IMAGES is set).
    func testMissingEOIDecodesIdenticallyToTheFullFile() throws {
        let partial = try decode("no_eoi.jpg")
        let full = try ImageDecoder().decode(Fixtures.bytes(Fixtures.images("astronaut_512x512.jpg")))
        XCTAssertEqual(partial.width, 512)
        XCTAssertEqual(partial.height, 512)
        XCTAssertEqual(partial.withPixels { Array($0) }, full.withPixels { Array($0) })
    }

    /// Every cut of a JPEG fails cleanly (or, cut only after the last scan, decodes).
    func testEveryTruncationPointOfAProgressiveAndABaselineFile() throws {
        for name in ["rocket_640x427_progressive.jpg", "chelsea_16x16.jpg", "coffee_596x400_422_restart.jpg"] {
            let bytes = try Fixtures.bytes(Fixtures.images(name))
            let full = try ImageDecoder().decode(bytes).withPixels { Array($0) }
            let step = max(1, bytes.count / 97)
            for length in stride(from: 0, to: bytes.count - 2, by: step) {
                do {
                    let image = try ImageDecoder().decode(Array(bytes.prefix(length)))
                    XCTAssertEqual(image.withPixels { Array($0) }, full, "\(name) cut at \(length) decoded to different pixels")
                } catch let error as ImageIOError {
                    XCTAssertTrue([.truncated, .empty].contains(error.errorClass), "\(name) cut at \(length): \(error)")
                }
            }
        }
    }

    /// Damaged entropy-coded data is reported, not silently decoded to garbage.
    func testCorruptScanData() throws {
        var bytes = try Fixtures.bytes(Fixtures.images("astronaut_512x512.jpg"))
        // Overwrite a stretch in the middle of the scan with a restart marker sequence
        // that does not belong there.
        for i in stride(from: bytes.count / 2, to: bytes.count / 2 + 64, by: 2) {
            bytes[i] = 0xFF
            bytes[i + 1] = 0xD3
        }
        XCTAssertThrowsError(try ImageDecoder().decode(bytes)) { error in
            XCTAssertEqual((error as? ImageIOError)?.errorClass, .corrupt, "\(error)")
        }
    }

    func testRecognisedButUnsupportedFormats() {
        let signatures: [(String, [UInt8])] = [
            // A BMP header: "BM", file header, then the DIB header size (40) at offset 14.
            ("bmp", Array("BM".utf8) + [UInt8](repeating: 0, count: 12) + [40, 0, 0, 0] + [UInt8](repeating: 0, count: 36)),
            ("tiff", [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0]),
            ("avif", [0, 0, 0, 0x1C] + Array("ftypavif".utf8)),
            ("heif", [0, 0, 0, 0x18] + Array("ftypheic".utf8)),
        ]
        for (name, bytes) in signatures {
            XCTAssertThrowsError(try ImageDecoder().decode(bytes), name) { error in
                XCTAssertEqual((error as? ImageIOError)?.errorClass, .unsupportedFormat, name)
            }
        }
    }

    func testTruncatedPNG() throws {
        let bytes = try Fixtures.bytes(Fixtures.images("bad/png_named.jpg"))
        for length in [8, 20, 40, bytes.count / 2, bytes.count - 13] {
            XCTAssertThrowsError(try ImageDecoder().decode(Array(bytes.prefix(length))), "\(length)") { error in
                XCTAssertEqual((error as? ImageIOError)?.errorClass, .truncated, "\(length): \(error)")
            }
        }
    }

    func testCorruptPNGChecksum() throws {
        var bytes = try Fixtures.bytes(Fixtures.images("bad/png_named.jpg"))
        bytes[bytes.count / 2] ^= 0x55   // inside IDAT: its CRC no longer matches
        XCTAssertThrowsError(try ImageDecoder().decode(bytes)) { error in
            XCTAssertEqual((error as? ImageIOError)?.errorClass, .corrupt, "\(error)")
        }
    }

    static func peakResidentKilobytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss
    }
}

extension BadInputTests {
    /// A progressive file whose last scan is repeated hundreds of times is refused after
    /// 500 scans instead of being decoded for as long as the attacker likes.
    func testScanFloodIsRefused() throws {
        let bytes = try Fixtures.bytes(Fixtures.images("rocket_640x427_progressive.jpg"))
        var lastScan = 0
        for i in 0..<(bytes.count - 1) where bytes[i] == 0xFF && bytes[i + 1] == 0xDA {
            lastScan = i
        }
        XCTAssertGreaterThan(lastScan, 0)
        let scan = bytes[lastScan..<(bytes.count - 2)]   // up to, not including, EOI
        var flooded = Array(bytes[..<lastScan])
        for _ in 0..<600 { flooded.append(contentsOf: scan) }
        flooded.append(contentsOf: [0xFF, 0xD9])
        XCTAssertThrowsError(try ImageDecoder().decode(flooded)) { error in
            XCTAssertEqual((error as? ImageIOError)?.errorClass, .corrupt, "\(error)")
            XCTAssertTrue("\(error)".contains("scans"), "\(error)")
        }
    }

    /// Mutated files (bit flips, cuts, inserted and deleted bytes) never crash or hang:
    /// each decodes or fails with a class.
    func testMutatedFilesFailCleanly() throws {
        var generator = SplitMix(seed: 2026)
        let sources = try ["chelsea_16x16.jpg", "rocket_640x427_progressive.jpg", "coffee_596x400_422_restart.jpg"]
            .map { try Fixtures.bytes(Fixtures.images($0)) }
            + [try Fixtures.bytes(Fixtures.images("bad/png_named.jpg"))]
        var outcomes: [String: Int] = [:]
        for round in 0..<240 {
            var bytes = sources[round % sources.count]
            let edits = 1 + Int(generator.next() % 8)
            for _ in 0..<edits {
                let position = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 4 {
                case 0: bytes[position] ^= UInt8(truncatingIfNeeded: 1 << (generator.next() % 8))
                case 1: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 2: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
                default: if bytes.count > 4 { bytes.remove(at: position) }
                }
            }
            if generator.next() % 5 == 0 {
                bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count))))
            }
            do {
                if round % 2 == 0 {
                    let image = try ImageDecoder().decode(bytes)
                    XCTAssertGreaterThan(image.width * image.height, 0)
                } else {
                    // The preprocessor's cropped decode path.
                    let (tensor, _) = try Preprocessor(options: PreprocessOptions(imageSize: 32)).preprocess(bytes)
                    XCTAssertFalse(tensor.contains { !$0.isFinite })
                }
                outcomes["decoded", default: 0] += 1
            } catch let error as ImageIOError {
                outcomes[error.errorClass.rawValue, default: 0] += 1
            }
        }
        // Both outcomes occur: the mutations are neither all harmless nor all fatal.
        XCTAssertGreaterThan(outcomes["decoded", default: 0], 0, "\(outcomes)")
        XCTAssertGreaterThan(outcomes.count, 2, "\(outcomes)")
    }
}

extension BadInputTests {
    func testMissingEOIPreprocessesLikeTheFullFile() throws {
        let partial = try Preprocessor().preprocess(Fixtures.bytes(Fixtures.images("bad/no_eoi.jpg"))).tensor
        let full = try Preprocessor().preprocess(Fixtures.bytes(Fixtures.images("astronaut_512x512.jpg"))).tensor
        XCTAssertEqual(partial, full)
    }
}

extension BadInputTests {
    /// JPEG variants libjpeg-turbo's 8-bit decoder does not handle are unsupported, not corrupt.
    func testLosslessAndTwelveBitJPEGsAreUnsupported() throws {
        let bytes = try Fixtures.bytes(Fixtures.images("chelsea_16x16.jpg"))
        let sof = try XCTUnwrap((0..<(bytes.count - 1)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        var lossless = bytes
        lossless[sof + 1] = 0xC3
        var twelveBit = bytes
        twelveBit[sof + 4] = 12
        for (name, variant) in [("SOF3", lossless), ("12-bit", twelveBit)] {
            XCTAssertThrowsError(try ImageDecoder().decode(variant), name) { error in
                XCTAssertEqual((error as? ImageIOError)?.errorClass, .unsupportedFormat, "\(name): \(error)")
            }
        }
    }
}
