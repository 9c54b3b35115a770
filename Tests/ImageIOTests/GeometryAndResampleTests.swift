import XCTest
@testable import ImageIO

final class GeometryAndResampleTests: XCTestCase {
    func testCropUsesRoundHalfToEven() {
        // 333 - 224 = 109 -> 54.5 -> 54 (round-half-up would say 55).
        let coffee = ResizeGeometry(width: 596, height: 400, size: 224)
        XCTAssertEqual(coffee.resizedWidth, 333)
        XCTAssertEqual(coffee.resizedHeight, 224)
        XCTAssertEqual(coffee.cropLeft, 54)
        XCTAssertEqual(ResizeGeometry.centerOffset(224 + 3, 224), 2)   // 1.5 -> 2
        XCTAssertEqual(ResizeGeometry.centerOffset(224 + 5, 224), 2)   // 2.5 -> 2
        XCTAssertEqual(ResizeGeometry.centerOffset(224 + 7, 224), 4)   // 3.5 -> 4
        XCTAssertEqual(ResizeGeometry.centerOffset(224, 224), 0)
    }

    func testShortestSideResizeTruncatesTheLongSide() {
        let cases: [(Int, Int, Int, Int, Int, Int)] = [
            // w, h, resized w, resized h, left, top
            (512, 512, 224, 224, 0, 0),
            (450, 655, 224, 326, 0, 51),      // 224 * 655 / 450 = 326.04
            (640, 427, 335, 224, 56, 0),      // 335.74 truncated
            (2000, 1350, 331, 224, 54, 0),    // 331.85 truncated; (331 - 224) / 2 = 53.5 -> 54
            (2162, 762, 635, 224, 206, 0),
            (16, 16, 224, 224, 0, 0),
            (1, 1000, 224, 224_000, 0, 111_888),
        ]
        for (w, h, rw, rh, left, top) in cases {
            let g = ResizeGeometry(width: w, height: h, size: 224)
            XCTAssertEqual([g.resizedWidth, g.resizedHeight, g.cropLeft, g.cropTop], [rw, rh, left, top], "\(w)x\(h)")
        }
        XCTAssertEqual(ResizeGeometry(width: 300, height: 200, size: 336).resizedWidth, 504)
    }

    func testFixedPointWeightsSumToOne() {
        for (input, output) in [(512, 224), (16, 224), (2162, 635), (5, 3), (3, 224)] {
            let weights = ResampleWeights(inputSize: input, outputSize: output, outputs: 0..<output)
            for row in 0..<output {
                let sum = weights.weights[(row * weights.taps)..<((row + 1) * weights.taps)].reduce(0, +)
                // Rounding each weight moves the sum by at most half a unit per tap.
                XCTAssertLessThanOrEqual(abs(Int(sum) - (1 << 22)), weights.taps, "\(input)->\(output) row \(row)")
                XCTAssertGreaterThanOrEqual(weights.starts[row], 0)
                XCTAssertLessThanOrEqual(weights.starts[row] + weights.taps, input)
            }
        }
    }

    /// The fast cropped resize against a literal transcription of Pillow's algorithm
    /// (full image, variable-length windows, both passes, then crop).
    func testCroppedResizeEqualsNaiveFullResizeThenCrop() {
        var generator = SplitMix(seed: 7)
        let shapes: [(Int, Int, Int)] = [(37, 23, 16), (23, 37, 16), (64, 64, 20), (9, 5, 12), (1, 1, 4), (2, 7, 3), (100, 30, 30), (30, 31, 30)]
        for (width, height, size) in shapes {
            for layout in [PixelLayout.gray, .rgb, .cmyk] {
                let c = layout.bytesPerPixel
                let pixels = (0..<(width * height * c)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                let g = ResizeGeometry(width: width, height: height, size: size)
                let expected = NaivePillowResize.resize(pixels, width: width, height: height, channels: c,
                                                        to: g.resizedWidth, g.resizedHeight)
                let resize = CroppedResize(inputWidth: width, inputHeight: height,
                                           outputWidth: g.resizedWidth, outputHeight: g.resizedHeight,
                                           cropLeft: g.cropLeft, cropTop: g.cropTop, cropWidth: size, cropHeight: size)
                var cropped = [UInt8]()
                for y in g.cropTop..<(g.cropTop + size) {
                    let start = (y * g.resizedWidth + g.cropLeft) * c
                    cropped.append(contentsOf: expected[start..<(start + size * c)])
                }
                for useSIMD in [true, false] {
                    var actual = [UInt8]()
                    pixels.withUnsafeBufferPointer { source in
                        resize.run(source: source.baseAddress!, sourceWidth: width, bytesPerPixel: c, useSIMD: useSIMD) { _, row in
                            actual.append(contentsOf: UnsafeBufferPointer(start: row, count: size * c))
                        }
                    }
                    XCTAssertEqual(actual, cropped, "\(width)x\(height) \(layout) -> \(size) simd \(useSIMD)")
                }
            }
        }
    }

    func testOrientationTransforms() {
        // 3x2 picture:  1 2 3 / 4 5 6  (as gray, and as RGBX with each value in all 4 bytes)
        let expected: [Int: (Int, Int, [UInt8])] = [
            2: (3, 2, [3, 2, 1, 6, 5, 4]),
            3: (3, 2, [6, 5, 4, 3, 2, 1]),
            4: (3, 2, [4, 5, 6, 1, 2, 3]),
            5: (2, 3, [1, 4, 2, 5, 3, 6]),
            6: (2, 3, [4, 1, 5, 2, 6, 3]),
            7: (2, 3, [6, 3, 5, 2, 4, 1]),
            8: (2, 3, [3, 6, 2, 5, 1, 4]),
        ]
        for layout in [PixelLayout.gray, .rgb] {
            let bpp = layout.bytesPerPixel
            let pixels: [UInt8] = [1, 2, 3, 4, 5, 6].flatMap { [UInt8](repeating: $0, count: bpp) }
            for (orientation, (w, h, values)) in expected {
                let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: pixels.count)
                storage.initialize(from: pixels, count: pixels.count)
                let tagged = DecodedImage(
                    width: 3, height: 2, layout: layout, format: .jpeg, sourceWidth: 3, sourceHeight: 2,
                    dctScaleDenominator: 1, isProgressive: false, exifOrientation: orientation,
                    orientationApplied: false, storage: storage, storageFreedByC: false)
                let upright = tagged.applyingOrientation()
                XCTAssertEqual(upright.width, w, "orientation \(orientation)")
                XCTAssertEqual(upright.height, h, "orientation \(orientation)")
                XCTAssertEqual(upright.withPixels { Array($0) }, values.flatMap { [UInt8](repeating: $0, count: bpp) },
                               "orientation \(orientation) \(layout)")
                XCTAssertTrue(upright.orientationApplied)
            }
        }
    }

    func testCMYKConversionIsPillowsNaiveFormula() {
        XCTAssertEqual(Preprocessor.cmykToRGB(0, 0), 255)
        XCTAssertEqual(Preprocessor.cmykToRGB(255, 0), 0)
        XCTAssertEqual(Preprocessor.cmykToRGB(0, 255), 0)
        for ink in stride(from: 0, through: 255, by: 5) {
            for black in stride(from: 0, through: 255, by: 3) {
                let exact = Double((255 - ink) * (255 - black)) / 255
                XCTAssertLessThanOrEqual(abs(Double(Preprocessor.cmykToRGB(UInt8(ink), UInt8(black))) - exact), 0.5 + 1e-9)
            }
        }
    }

    func testNormalisationIsTorchsFloat32Arithmetic() throws {
        let preprocessor = Preprocessor(options: PreprocessOptions(imageSize: 4))
        let white = DecodedImage.fromPixels([UInt8](repeating: 255, count: 4 * 4 * 4), width: 4, height: 4, layout: .rgb)
        var output = [Float](repeating: 0, count: 48)
        _ = output.withUnsafeMutableBufferPointer { preprocessor.preprocess(white, into: $0) }
        for channel in 0..<3 {
            let expected = (Float(1) - PreprocessOptions.openAIMean[channel]) / PreprocessOptions.openAIStd[channel]
            XCTAssertEqual(output[channel * 16], expected)
        }
    }
}

/// Pillow's `ImagingResampleInner` for 8-bit images, written out as plainly as possible.
enum NaivePillowResize {
    static func coefficients(inSize: Int, outSize: Int) -> [(first: Int, weights: [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        return (0..<outSize).map { output in
            let center = (Double(output) + 0.5) * scale
            let first = max(Int(center - support + 0.5), 0)
            let end = min(Int(center + support + 0.5), inSize)
            let inverseFilterScale = 1.0 / filterScale
            let raw = (first..<end).map { PillowBicubic.kernel((Double($0) - center + 0.5) * inverseFilterScale) }
            let total = raw.reduce(0, +)
            let fixed = raw.map { w -> Int32 in
                let n = total != 0 ? w / total : w
                return n < 0 ? Int32(-0.5 + n * 4194304) : Int32(0.5 + n * 4194304)
            }
            return (first, fixed)
        }
    }

    static func resize(_ pixels: [UInt8], width: Int, height: Int, channels: Int, to outWidth: Int, _ outHeight: Int) -> [UInt8] {
        func clip(_ s: Int32) -> UInt8 { UInt8(max(0, min(255, s >> 22))) }
        var current = pixels
        var currentWidth = width
        if outWidth != width {
            let horizontal = coefficients(inSize: width, outSize: outWidth)
            var next = [UInt8](repeating: 0, count: outWidth * height * channels)
            for y in 0..<height {
                for x in 0..<outWidth {
                    for c in 0..<channels {
                        var s: Int32 = 1 << 21
                        for (k, w) in horizontal[x].weights.enumerated() {
                            s += Int32(current[(y * currentWidth + horizontal[x].first + k) * channels + c]) * w
                        }
                        next[(y * outWidth + x) * channels + c] = clip(s)
                    }
                }
            }
            current = next
            currentWidth = outWidth
        }
        if outHeight != height {
            let vertical = coefficients(inSize: height, outSize: outHeight)
            var next = [UInt8](repeating: 0, count: currentWidth * outHeight * channels)
            for y in 0..<outHeight {
                for x in 0..<currentWidth {
                    for c in 0..<channels {
                        var s: Int32 = 1 << 21
                        for (k, w) in vertical[y].weights.enumerated() {
                            s += Int32(current[((vertical[y].first + k) * currentWidth + x) * channels + c]) * w
                        }
                        next[(y * currentWidth + x) * channels + c] = clip(s)
                    }
                }
            }
            current = next
        }
        return current
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension GeometryAndResampleTests {
    func testDCTDownscalePolicies() {
        XCTAssertEqual(DCTDownscalePolicy.off.denominator(shortestSide: 5000, imageSize: 224), 1)
        // keepTwiceTarget: shortest side / d >= 448
        XCTAssertEqual(DCTDownscalePolicy.keepTwiceTarget.denominator(shortestSide: 1350, imageSize: 224), 2)
        XCTAssertEqual(DCTDownscalePolicy.keepTwiceTarget.denominator(shortestSide: 762, imageSize: 224), 1)
        XCTAssertEqual(DCTDownscalePolicy.keepTwiceTarget.denominator(shortestSide: 3584, imageSize: 224), 8)
        // keepTarget: shortest side / d >= 224
        XCTAssertEqual(DCTDownscalePolicy.keepTarget.denominator(shortestSide: 1350, imageSize: 224), 4)
        XCTAssertEqual(DCTDownscalePolicy.keepTarget.denominator(shortestSide: 448, imageSize: 224), 2)
        XCTAssertEqual(DCTDownscalePolicy.keepTarget.denominator(shortestSide: 447, imageSize: 224), 1)
    }

    /// The DCT fast path stays close to the exact path on a large photo (motorcycle: 1/2).
    func testFastDCTStaysCloseToExact() throws {
        let bytes = try Fixtures.bytes(Fixtures.images("motorcycle_2000x1350.jpg"))
        let exact = try Preprocessor().preprocess(bytes)
        let fast = try Preprocessor(options: PreprocessOptions(dctDownscale: .keepTwiceTarget)).preprocess(bytes)
        XCTAssertEqual(fast.summary.dctScaleDenominator, 2)
        XCTAssertEqual(fast.summary.decodedWidth, 1000)
        XCTAssertEqual(fast.summary.decodeMode, "jpeg baseline dct 1/2")
        let difference = Difference(exact.tensor, fast.tensor)
        XCTAssertGreaterThan(difference.maxAbs, 0)       // it is a different pipeline
        XCTAssertLessThan(difference.meanAbs, 0.01)      // measured 0.0039
    }
}
