import XCTest
@testable import ImageIO

final class JPEGEncoderTests: XCTestCase {
    /// A smooth gradient with a hard-edged block: JPEG reproduces it closely at high quality.
    func gradient(width: Int, height: Int) -> [UInt8] {
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = 3 * (y * width + x)
                let inBlock = x >= width / 4 && x < width / 2 && y >= height / 4 && y < height / 2
                rgb[i] = inBlock ? 200 : UInt8(x * 255 / (width - 1))
                rgb[i + 1] = inBlock ? 30 : UInt8(y * 255 / (height - 1))
                rgb[i + 2] = inBlock ? 40 : 128
            }
        }
        return rgb
    }

    func meanAbsoluteError(_ source: [UInt8], _ image: DecodedImage) -> Double {
        image.withPixels { pixels in
            var total = 0, count = 0
            for p in 0..<(image.width * image.height) {
                for c in 0..<3 { total += abs(Int(source[3 * p + c]) - Int(pixels[4 * p + c])); count += 1 }
            }
            return Double(total) / Double(count)
        }
    }

    func testRoundTripIsCloseToTheSource() throws {
        let (width, height) = (48, 40)
        let source = gradient(width: width, height: height)
        let bytes = try JPEGEncoder.encode(rgb: source, width: width, height: height, quality: 95)
        XCTAssertEqual(Array(bytes.prefix(2)), [0xFF, 0xD8])
        XCTAssertEqual(Array(bytes.suffix(2)), [0xFF, 0xD9])
        let image = try ImageDecoder().decode(bytes)
        XCTAssertEqual(image.width, width)
        XCTAssertEqual(image.height, height)
        XCTAssertEqual(image.layout, .rgb)
        XCTAssertEqual(image.format, .jpeg)
        XCTAssertLessThan(meanAbsoluteError(source, image), 3.0)
    }

    func testLowerQualityIsSmallerAndLessFaithful() throws {
        let source = gradient(width: 64, height: 64)
        let high = try JPEGEncoder.encode(rgb: source, width: 64, height: 64, quality: 95)
        let low = try JPEGEncoder.encode(rgb: source, width: 64, height: 64, quality: 10)
        XCTAssertLessThan(low.count, high.count)
        let decoder = ImageDecoder()
        XCTAssertGreaterThan(meanAbsoluteError(source, try decoder.decode(low)),
                             meanAbsoluteError(source, try decoder.decode(high)))
    }

    func testEncodingIsDeterministic() throws {
        let source = gradient(width: 20, height: 17)
        XCTAssertEqual(try JPEGEncoder.encode(rgb: source, width: 20, height: 17, quality: 80),
                       try JPEGEncoder.encode(rgb: source, width: 20, height: 17, quality: 80))
    }

    func testInvalidInputsAreRefused() {
        for (rgb, width, height, quality) in [([UInt8](repeating: 0, count: 11), 2, 2, 90), ([], 0, 0, 90),
                                             ([UInt8](repeating: 0, count: 12), 2, 2, 0)] {
            XCTAssertThrowsError(try JPEGEncoder.encode(rgb: rgb, width: width, height: height, quality: quality)) { error in
                XCTAssertEqual((error as? ImageIOError)?.errorClass, .encodingFailed)
            }
        }
    }
}
