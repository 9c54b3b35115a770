import XCTest
@testable import ImageIO

/// The preprocessor decodes only the rows and columns the centre crop reads
/// (jpeg_crop_scanline / jpeg_skip_scanlines); those pixels must equal a full decode's.
final class RegionDecodeTests: XCTestCase {
    static let photos = [
        "astronaut_512x512.jpg", "coffee_596x400_422_restart.jpg", "franz_kafka_450x655.jpg",
        "camera_512x512_gray.jpg", "rocket_640x427_progressive.jpg", "china_640x427_cmyk.jpg",
        "flower_427x640_exif6.jpg", "motorcycle_2000x1350.jpg", "clip_diagram_2162x762.jpg",
    ]

    func testRegionPixelsEqualFullDecode() throws {
        for name in Self.photos {
            let bytes = try Fixtures.bytes(Fixtures.images(name))
            let full = try ImageDecoder().decode(bytes)
            let fullPixels = full.withPixels { Array($0) }
            let bpp = full.layout.bytesPerPixel
            // Regions with and without iMCU alignment, touching and away from the borders.
            let regions = [
                (full.width / 3 + 5, full.height / 4 + 3, full.width / 3, full.height / 2),
                (0, 0, full.width / 2 + 1, full.height / 3),
                (full.width - 37, full.height - 29, 37, 29),
                (17, 9, full.width - 40, full.height - 20),
            ]
            for region in regions {
                let partial = try bytes.withUnsafeBytes {
                    try ImageDecoder().decode($0, dctScaleDenominator: 1, region: region)
                }
                XCTAssertLessThanOrEqual(partial.regionX, region.0, name)
                XCTAssertGreaterThanOrEqual(partial.regionX + partial.regionWidth, region.0 + region.2, name)
                XCTAssertEqual(partial.regionY, region.1, name)
                XCTAssertEqual(partial.regionHeight, region.3, name)
                let stored = partial.withStoredPixels { Array($0) }
                var mismatches = 0
                var firstDifference = ""
                for y in 0..<partial.regionHeight {
                    let fullStart = ((partial.regionY + y) * full.width + partial.regionX) * bpp
                    let partStart = y * partial.regionWidth * bpp
                    // Compare the asked-for columns only.
                    let skip = (region.0 - partial.regionX) * bpp
                    if stored[(partStart + skip)..<(partStart + skip + region.2 * bpp)]
                        != fullPixels[(fullStart + skip)..<(fullStart + skip + region.2 * bpp)] {
                        if mismatches == 0 {
                            let columns = (0..<(region.2 * bpp)).filter { stored[partStart + skip + $0] != fullPixels[fullStart + skip + $0] }
                            firstDifference = "row \(partial.regionY + y) columns \(columns.prefix(8).map { $0 / bpp + region.0 })"
                        }
                        mismatches += 1
                    }
                }
                XCTAssertEqual(mismatches, 0, "\(name) region \(region): \(mismatches) rows differ, first at \(firstDifference)")
            }
        }
    }

    /// Damage outside the crop is still found: the rest of the scan is read.
    func testTruncationOutsideTheCropIsReported() throws {
        let bytes = try Fixtures.bytes(Fixtures.images("franz_kafka_450x655.jpg"))
        for cut in [300, 2000, bytes.count / 5] {
            XCTAssertThrowsError(try Preprocessor(options: PreprocessOptions(applyExifOrientation: false))
                .preprocess(Array(bytes.prefix(bytes.count - cut))), "cut \(cut)") { error in
                XCTAssertEqual((error as? ImageIOError)?.errorClass, .truncated, "cut \(cut): \(error)")
            }
        }
        XCTAssertThrowsError(try Preprocessor().preprocess(Fixtures.bytes(Fixtures.images("bad/truncated_half.jpg")))) { error in
            XCTAssertEqual((error as? ImageIOError)?.errorClass, .truncated)
        }
    }
}

extension RegionDecodeTests {
    /// With DCT scaling the cropped decode still equals preprocessing the full scaled decode.
    func testCroppedDecodeWithDCTScalingEqualsFullScaledDecode() throws {
        let options = PreprocessOptions(applyExifOrientation: false, dctDownscale: .keepTarget)
        let preprocessor = Preprocessor(options: options)
        for name in ["motorcycle_2000x1350.jpg", "clip_diagram_2162x762.jpg", "franz_kafka_450x655.jpg", "china_640x427_cmyk.jpg"] {
            let bytes = try Fixtures.bytes(Fixtures.images(name))
            let (cropped, summary) = try preprocessor.preprocess(bytes)
            let full = try ImageDecoder().decode(bytes, dctScaleDenominator: summary.dctScaleDenominator)
            var reference = [Float](repeating: 0, count: preprocessor.outputCount)
            _ = reference.withUnsafeMutableBufferPointer { preprocessor.preprocess(full, into: $0) }
            XCTAssertEqual(cropped, reference, "\(name) at 1/\(summary.dctScaleDenominator)")
        }
    }
}
