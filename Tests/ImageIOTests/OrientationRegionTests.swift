import XCTest
@testable import ImageIO

/// EXIF-rotated JPEGs take the cropped-decode path too: the stored region under the upright
/// crop is decoded and rotated. Its result must equal rotating the full decode.
final class OrientationRegionTests: XCTestCase {
    /// `jpeg` with an APP1 EXIF segment (little-endian TIFF, one IFD0 entry: Orientation)
    /// inserted right after SOI.
    static func tagged(_ jpeg: [UInt8], orientation: UInt8) -> [UInt8] {
        let tiff: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00,   // II, 42, IFD0 at 8
                             0x01, 0x00,                                       // one entry
                             0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00,   // 0x0112 SHORT x1
                             orientation, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00]                           // no next IFD
        let payload = Array("Exif".utf8) + [0, 0] + tiff
        let length = payload.count + 2
        return [0xFF, 0xD8, 0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + payload + jpeg.dropFirst(2)
    }

    func fullPath(_ bytes: [UInt8], _ preprocessor: Preprocessor) throws -> [Float] {
        let header = try bytes.withUnsafeBytes { try ImageDecoder.jpegHeader($0) }
        let denominator = preprocessor.options.dctDownscale.denominator(
            shortestSide: min(header.width, header.height), imageSize: preprocessor.options.imageSize)
        let decoded = try ImageDecoder().decode(bytes, dctScaleDenominator: denominator)
        var output = [Float](repeating: 0, count: preprocessor.outputCount)
        _ = output.withUnsafeMutableBufferPointer { preprocessor.preprocess(decoded, into: $0) }
        return output
    }

    func testAllOrientationsMatchTheFullDecodePath() throws {
        let preprocessor = Preprocessor()
        for name in ["coffee_596x400_422_restart.jpg", "franz_kafka_450x655.jpg", "china_640x427_cmyk.jpg", "camera_512x512_gray.jpg"] {
            let original = try Fixtures.bytes(Fixtures.images(name))
            for orientation in UInt8(1)...8 {
                let bytes = Self.tagged(original, orientation: orientation)
                let (tensor, summary) = try preprocessor.preprocess(bytes)
                XCTAssertEqual(summary.exifOrientation, Int(orientation))
                XCTAssertEqual(tensor, try fullPath(bytes, preprocessor), "\(name) orientation \(orientation)")
            }
        }
    }

    func testRotatedWithDCTScaling() throws {
        let preprocessor = Preprocessor(options: PreprocessOptions(dctDownscale: .keepTarget))
        let original = try Fixtures.bytes(Fixtures.images("motorcycle_2000x1350.jpg"))
        for orientation: UInt8 in [6, 7] {
            let bytes = Self.tagged(original, orientation: orientation)
            let (tensor, summary) = try preprocessor.preprocess(bytes)
            XCTAssertEqual(summary.dctScaleDenominator, 4)
            XCTAssertEqual(summary.decodedWidth, 338)   // upright: ceil(1350 / 4) wide
            XCTAssertEqual(tensor, try fullPath(bytes, preprocessor), "orientation \(orientation)")
        }
    }

    func testOrientationMapsAreInverses() {
        for value in 1...8 {
            let orientation = Orientation(value: value, storedWidth: 7, storedHeight: 4)
            for y in 0..<orientation.uprightHeight {
                for x in 0..<orientation.uprightWidth {
                    let stored = orientation.stored(x, y)
                    XCTAssertTrue((0..<7).contains(stored.x) && (0..<4).contains(stored.y), "\(value)")
                    let back = orientation.upright(stored.x, stored.y)
                    XCTAssertEqual([back.x, back.y], [x, y], "orientation \(value)")
                }
            }
        }
    }
}
