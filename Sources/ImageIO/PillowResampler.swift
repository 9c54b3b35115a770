/// Pillow's antialiased bicubic resampling (`Image.resize(..., Image.BICUBIC)`), re-implemented
/// to give the same bytes: Keys cubic with a = -0.5, support widened by the downscale factor,
/// weights normalised to sum 1 then rounded to fixed point with 22 fractional bits, two
/// separable passes (horizontal first) each rounded and clipped to uint8.
enum PillowBicubic {
    /// Fractional bits of the fixed-point weights (32 - 8 - 2: 8 bits of sample, 2 of headroom).
    static let precisionBits: Int32 = 22
    static let rounding: Int32 = 1 << (precisionBits - 1)
    static let support = 2.0

    static func kernel(_ distance: Double) -> Double {
        let a = -0.5
        let x = distance < 0 ? -distance : distance
        if x < 1.0 {
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
        }
        if x < 2.0 {
            return (((x - 5) * x + 8) * x - 4) * a
        }
        return 0.0
    }

    @inline(__always)
    static func clip8(_ sum: Int32) -> UInt8 {
        let shifted = sum >> precisionBits
        return shifted < 0 ? 0 : (shifted > 255 ? 255 : UInt8(truncatingIfNeeded: shifted))
    }
}

/// Fixed-point weights for output positions `outputs` of one axis resized from `inputSize`
/// to `outputSize`. Every output has exactly `taps` weights starting at `starts[i]`; windows
/// that Pillow cuts at the image border are shifted inwards and padded with zero weights, so
/// the inner loops have a fixed length and the sums equal Pillow's.
struct ResampleWeights {
    let taps: Int
    let starts: [Int]
    let weights: [Int32]   // outputs.count x taps

    init(inputSize: Int, outputSize: Int, outputs: Range<Int>) {
        precondition(inputSize > 0 && outputSize > 0)
        let scale = Double(inputSize) / Double(outputSize)
        let filterScale = max(scale, 1.0)
        let support = PillowBicubic.support * filterScale
        let pillowKernelSize = Int(support.rounded(.up)) * 2 + 1
        let taps = min(pillowKernelSize, inputSize)
        let inverseFilterScale = 1.0 / filterScale
        var starts = [Int](repeating: 0, count: outputs.count)
        var weights = [Int32](repeating: 0, count: outputs.count * taps)
        var exact = [Double](repeating: 0, count: pillowKernelSize)
        for (row, output) in outputs.enumerated() {
            let center = (Double(output) + 0.5) * scale
            // Int(...) truncates toward zero like C's (int) cast.
            let first = max(Int(center - support + 0.5), 0)
            let end = min(Int(center + support + 0.5), inputSize)
            let count = end - first
            var total = 0.0
            for k in 0..<count {
                let w = PillowBicubic.kernel((Double(k + first) - center + 0.5) * inverseFilterScale)
                exact[k] = w
                total += w
            }
            let start = min(first, inputSize - taps)
            let offset = first - start
            let one = Double(1 << PillowBicubic.precisionBits)
            for k in 0..<count {
                let normalised = total != 0.0 ? exact[k] / total : exact[k]
                let fixed = normalised < 0 ? Int32(-0.5 + normalised * one) : Int32(0.5 + normalised * one)
                weights[row * taps + offset + k] = fixed
            }
            starts[row] = start
        }
        self.taps = taps
        self.starts = starts
        self.weights = weights
    }
}

/// Pillow's bicubic resize restricted to an output window: only the pixels of
/// `crop` (in the coordinates of the full `outputWidth` x `outputHeight` result) are
/// computed, each exactly as Pillow computes it for the whole image.
struct CroppedResize {
    let horizontal: ResampleWeights?   // nil when the width does not change
    let vertical: ResampleWeights?     // nil when the height does not change
    let cropLeft: Int
    let cropTop: Int
    let cropWidth: Int
    let cropHeight: Int
    /// Source rows the vertical pass reads.
    let firstSourceRow: Int
    let sourceRowCount: Int

    init(inputWidth: Int, inputHeight: Int, outputWidth: Int, outputHeight: Int,
         cropLeft: Int, cropTop: Int, cropWidth: Int, cropHeight: Int) {
        precondition(cropLeft >= 0 && cropTop >= 0 && cropLeft + cropWidth <= outputWidth
            && cropTop + cropHeight <= outputHeight)
        self.cropLeft = cropLeft
        self.cropTop = cropTop
        self.cropWidth = cropWidth
        self.cropHeight = cropHeight
        horizontal = outputWidth == inputWidth ? nil
            : ResampleWeights(inputSize: inputWidth, outputSize: outputWidth, outputs: cropLeft..<(cropLeft + cropWidth))
        if outputHeight == inputHeight {
            vertical = nil
            firstSourceRow = cropTop
            sourceRowCount = cropHeight
        } else {
            let weights = ResampleWeights(inputSize: inputHeight, outputSize: outputHeight, outputs: cropTop..<(cropTop + cropHeight))
            vertical = weights
            firstSourceRow = weights.starts.first!
            sourceRowCount = weights.starts.last! + weights.taps - weights.starts.first!
        }
    }

    /// Runs both passes; `emitRow(y, row)` receives each finished uint8 output row
    /// (`cropWidth * channels` interleaved samples) in order.
    func run(source: UnsafePointer<UInt8>, sourceWidth: Int, channels: Int,
             emitRow: (Int, UnsafePointer<UInt8>) -> Void) {
        let rowSamples = cropWidth * channels
        // Horizontal pass over the source rows the vertical pass needs.
        let intermediate = UnsafeMutablePointer<UInt8>.allocate(capacity: sourceRowCount * rowSamples)
        defer { intermediate.deallocate() }
        for row in 0..<sourceRowCount {
            let input = source + (firstSourceRow + row) * sourceWidth * channels
            let output = intermediate + row * rowSamples
            if let horizontal {
                Self.resampleRow(input, into: output, weights: horizontal, count: cropWidth, channels: channels)
            } else {
                output.update(from: input + cropLeft * channels, count: rowSamples)
            }
        }
        guard let vertical else {
            for y in 0..<cropHeight {
                emitRow(y, intermediate + y * rowSamples)
            }
            return
        }
        let sums = UnsafeMutablePointer<Int32>.allocate(capacity: rowSamples)
        let finished = UnsafeMutablePointer<UInt8>.allocate(capacity: rowSamples)
        defer {
            sums.deallocate()
            finished.deallocate()
        }
        vertical.weights.withUnsafeBufferPointer { weights in
            let taps = vertical.taps
            for y in 0..<cropHeight {
                sums.update(repeating: PillowBicubic.rounding, count: rowSamples)
                let firstRow = vertical.starts[y] - firstSourceRow
                for tap in 0..<taps {
                    let weight = weights[y * taps + tap]
                    if weight == 0 { continue }
                    let input = intermediate + (firstRow + tap) * rowSamples
                    for i in 0..<rowSamples {
                        sums[i] = sums[i] &+ Int32(input[i]) &* weight
                    }
                }
                for i in 0..<rowSamples {
                    finished[i] = PillowBicubic.clip8(sums[i])
                }
                emitRow(y, finished)
            }
        }
    }

    private static func resampleRow(_ input: UnsafePointer<UInt8>, into output: UnsafeMutablePointer<UInt8>,
                                    weights: ResampleWeights, count: Int, channels: Int) {
        let taps = weights.taps
        weights.weights.withUnsafeBufferPointer { allWeights in
            weights.starts.withUnsafeBufferPointer { starts in
                let k = allWeights.baseAddress!
                switch channels {
                case 3:
                    for x in 0..<count {
                        var s0 = PillowBicubic.rounding, s1 = s0, s2 = s0
                        let w = k + x * taps
                        var p = input + starts[x] * 3
                        for t in 0..<taps {
                            let weight = w[t]
                            s0 = s0 &+ Int32(p[0]) &* weight
                            s1 = s1 &+ Int32(p[1]) &* weight
                            s2 = s2 &+ Int32(p[2]) &* weight
                            p += 3
                        }
                        output[x * 3] = PillowBicubic.clip8(s0)
                        output[x * 3 + 1] = PillowBicubic.clip8(s1)
                        output[x * 3 + 2] = PillowBicubic.clip8(s2)
                    }
                case 1:
                    for x in 0..<count {
                        var s0 = PillowBicubic.rounding
                        let w = k + x * taps
                        let p = input + starts[x]
                        for t in 0..<taps {
                            s0 = s0 &+ Int32(p[t]) &* w[t]
                        }
                        output[x] = PillowBicubic.clip8(s0)
                    }
                default:
                    for x in 0..<count {
                        let w = k + x * taps
                        let p = input + starts[x] * channels
                        for c in 0..<channels {
                            var s = PillowBicubic.rounding
                            for t in 0..<taps {
                                s = s &+ Int32(p[t * channels + c]) &* w[t]
                            }
                            output[x * channels + c] = PillowBicubic.clip8(s)
                        }
                    }
                }
            }
        }
    }
}
