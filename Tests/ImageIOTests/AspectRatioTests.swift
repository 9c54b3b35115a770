import XCTest
@testable import ImageIO

/// Preprocessing cost is bounded by the model input, not by the source's aspect ratio:
/// pictures more than `maxAspectRatio` times longer than wide are refused from the header,
/// and a PNG keeps only the rows and columns the centre crop reads — with output identical to
/// the full decode's.
final class AspectRatioTests: XCTestCase {
    // MARK: a small PNG writer (stored deflate blocks, so no zlib is needed)

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + body
        return be32(UInt32(body.count)) + typed + be32(crc(typed))
    }

    /// An EXIF (TIFF, little-endian) block holding only the orientation tag.
    static func exif(orientation: UInt16) -> [UInt8] {
        [0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00,
         UInt8(orientation & 0xFF), UInt8(orientation >> 8), 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
    }

    enum ExifPlace { case none, beforePixels, afterPixels }

    /// A PNG of `width` x `height` with `channels` samples per pixel for `colorType`
    /// (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA), pixel values from `value`.
    static func png(width: Int, height: Int, colorType: UInt8, exifOrientation: UInt16 = 1, exifAt: ExifPlace = .none,
                    value: (Int, Int, Int) -> UInt8) -> [UInt8] {
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)]!
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (1 + width * channels))
        for y in 0..<height {
            raw.append(0)   // filter: none
            for x in 0..<width { for c in 0..<channels { raw.append(value(x, y, c)) } }
        }
        // zlib: header, stored blocks of at most 65535 bytes, Adler-32.
        var z: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65_535, raw.count - offset)
            let last: UInt8 = offset + n == raw.count ? 1 : 0
            let header: [UInt8] = [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            z += header
            z += raw[offset..<(offset + n)]
            offset += n
        } while offset < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65_521; b = (b + a) % 65_521 }
        z += be32(b << 16 | a)
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let ihdr: [UInt8] = be32(UInt32(width)) + be32(UInt32(height)) + [8, colorType, 0, 0, 0]
        out += chunk("IHDR", ihdr)
        if colorType == 3 {
            var palette: [UInt8] = []
            for i in 0..<256 {
                palette.append(UInt8(i))
                palette.append(UInt8(255 - i))
                palette.append(UInt8((i * 7) & 0xFF))
            }
            out += chunk("PLTE", palette)
        }
        if exifAt == .beforePixels { out += chunk("eXIf", exif(orientation: exifOrientation)) }
        out += chunk("IDAT", z)
        if exifAt == .afterPixels { out += chunk("eXIf", exif(orientation: exifOrientation)) }
        out += chunk("IEND", [])
        return out
    }

    static func pattern(_ x: Int, _ y: Int, _ c: Int) -> UInt8 { UInt8((x * 37 + y * 11 + c * 91 + (x * y) % 13) & 0xFF) }

    // MARK: the aspect-ratio rule

    func testOneByFortyMillionPNGIsRefusedFromItsHeader() throws {
        // Only the header matters: the refusal comes before any pixel is inflated.
        var bytes = Self.png(width: 1, height: 1, colorType: 0) { _, _, _ in 0 }
        bytes.replaceSubrange(16..<24, with: Self.be32(1) + Self.be32(40_000_000))
        bytes.replaceSubrange(29..<33, with: Self.be32(Self.crc(Array(bytes[12..<29]))))
        for attempt in [{ try ImageDecoder().decode(bytes) as Any }, { try Preprocessor().preprocess(bytes) as Any }] {
            XCTAssertThrowsError(try attempt()) { error in
                XCTAssertEqual((error as? ImageIOError)?.errorClass, .tooLarge, "\(error)")
                XCTAssertTrue("\(error)".contains("1x40000000"), "\(error)")
                XCTAssertTrue("\(error)".contains("aspect ratio"), "\(error)")
            }
        }
        // Wide as well as tall, and JPEG headers too.
        bytes.replaceSubrange(16..<24, with: Self.be32(20_000) + Self.be32(199))
        bytes.replaceSubrange(29..<33, with: Self.be32(Self.crc(Array(bytes[12..<29]))))
        XCTAssertThrowsError(try ImageDecoder().decode(bytes)) { XCTAssertEqual(($0 as? ImageIOError)?.errorClass, .tooLarge) }
    }

    func testAspectRatioBoundaryIsInclusive() throws {
        let atLimit = Self.png(width: 3, height: 300, colorType: 0, value: Self.pattern)
        XCTAssertNoThrow(try ImageDecoder().decode(atLimit))
        XCTAssertNoThrow(try Preprocessor().preprocess(atLimit))
        let beyond = Self.png(width: 3, height: 301, colorType: 0, value: Self.pattern)
        XCTAssertThrowsError(try ImageDecoder().decode(beyond)) { XCTAssertEqual(($0 as? ImageIOError)?.errorClass, .tooLarge) }
        XCTAssertNoThrow(try ImageDecoder(maxAspectRatio: 101).decode(beyond))
        let jpeg = try JPEGEncoder.encode(rgb: [UInt8](repeating: 128, count: 3 * 202 * 2), width: 202, height: 2, quality: 90)
        XCTAssertThrowsError(try ImageDecoder().decode(jpeg)) { XCTAssertEqual(($0 as? ImageIOError)?.errorClass, .tooLarge) }
        XCTAssertNoThrow(try ImageDecoder(maxAspectRatio: 101).decode(jpeg))
    }

    // MARK: the region path equals the full path

    func assertRegionPathEqualsFullPath(_ bytes: [UInt8], size: Int, exif: Bool, _ label: String,
                                        file: StaticString = #filePath, line: UInt = #line) throws {
        let options = PreprocessOptions(imageSize: size, applyExifOrientation: exif)
        let pre = Preprocessor(options: options)
        let (optimized, summary) = try pre.preprocess(bytes)
        var full = [Float](repeating: .nan, count: pre.outputCount)
        let fullSummary = try full.withUnsafeMutableBufferPointer { out in
            pre.preprocess(try ImageDecoder().decode(bytes), into: out)
        }
        XCTAssertEqual(summary, fullSummary, label, file: file, line: line)
        let differing = zip(optimized, full).filter { $0 != $1 }.count
        XCTAssertEqual(differing, 0, "\(label): \(differing) of \(optimized.count) values differ", file: file, line: line)
    }

    func testRegionPathEqualsFullPathOnExtremeAspectRatios() throws {
        let sizes = [(1, 99), (99, 1), (3, 290), (250, 5), (17, 1500), (1300, 14), (40, 1000), (64, 64), (45, 31)]
        for (width, height) in sizes {
            for colorType: UInt8 in [0, 2, 3, 4, 6] {
                for (orientation, place) in [(UInt16(1), ExifPlace.none), (6, .beforePixels), (8, .afterPixels)] {
                    let bytes = Self.png(width: width, height: height, colorType: colorType, exifOrientation: orientation,
                                         exifAt: place, value: Self.pattern)
                    for (size, exif) in [(224, true), (7, false)] {
                        try assertRegionPathEqualsFullPath(bytes, size: size, exif: exif,
                                                           "\(width)x\(height) type \(colorType) exif \(orientation) \(place) size \(size)")
                    }
                }
            }
        }
    }

    func testJPEGRegionPathEqualsFullPathOnExtremeAspectRatios() throws {
        for (width, height) in [(2000, 21), (21, 2000), (16, 1500), (1500, 16), (3, 290)] {
            var rgb = [UInt8](repeating: 0, count: width * height * 3)
            for y in 0..<height { for x in 0..<width { for c in 0..<3 { rgb[(y * width + x) * 3 + c] = Self.pattern(x, y, c) } } }
            let bytes = try JPEGEncoder.encode(rgb: rgb, width: width, height: height, quality: 92)
            for (size, exif) in [(224, true), (32, false)] {
                try assertRegionPathEqualsFullPath(bytes, size: size, exif: exif, "jpeg \(width)x\(height) size \(size)")
            }
        }
    }

    func testRegionPathEqualsFullPathOnTheFixturePNGs() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Data")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".png") }
        XCTAssertGreaterThanOrEqual(names.count, 5)
        for name in names {
            let bytes = try Fixtures.bytes(dir.appendingPathComponent(name))
            for (size, exif) in [(224, true), (16, false), (9, true)] {
                try assertRegionPathEqualsFullPath(bytes, size: size, exif: exif, "\(name) size \(size)")
            }
        }
    }

    /// Memory follows the crop: a tall PNG keeps about a crop's worth of rows, as counted by
    /// the decoder's own accounting.
    func testTallPNGKeepsOnlyTheCropRows() throws {
        let (width, height) = (90, 9_000)   // aspect 100: allowed
        let bytes = Self.png(width: width, height: height, colorType: 6, value: Self.pattern)
        let fullImage = try ImageDecoder().decode(bytes)
        XCTAssertGreaterThanOrEqual(fullImage.decoderAllocatedBytes, width * height * 4)
        let pre = Preprocessor(options: PreprocessOptions(imageSize: 224))
        _ = try pre.preprocess(bytes)
        // The region the preprocessor asks for: at most the short side plus the bicubic
        // support (and orientation slack) in rows, all 90 columns.
        let wanted = pre.pngRegion(width: width, height: height)
        let region = try bytes.withUnsafeBytes { try ImageDecoder().decode($0, dctScaleDenominator: 1, region: wanted) }
        XCTAssertLessThanOrEqual(region.regionHeight, width + 16)
        XCTAssertLessThanOrEqual(region.decoderAllocatedBytes, (width + 16) * width * 4 + width * 4)
        XCTAssertLessThan(region.decoderAllocatedBytes * 50, fullImage.decoderAllocatedBytes)
    }
}

