import CImageCodecs

/// Pillow's antialiased bicubic resampling (`Image.resize(..., Image.BICUBIC)`), re-implemented
/// to give the same bytes: Keys cubic with a = -0.5, support widened by the downscale factor,
/// weights normalised to sum 1 then rounded to fixed point with 22 fractional bits, two
/// separable passes (horizontal first) each rounded and clipped to uint8. The weights are
/// computed here; the passes run in C (`resample_kernels.c`).
enum PillowBicubic {
    /// Fractional bits of the fixed-point weights (32 - 8 - 2: 8 bits of sample, 2 of headroom).
    static let precisionBits = 22
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
}

/// Fixed-point weights for output positions `outputs` of one axis resized from `inputSize`
/// to `outputSize`. Every output has exactly `taps` weights starting at `starts[i]`; windows
/// that Pillow cuts at the image border are shifted inwards and padded with zero weights, so
/// the inner loops have a fixed length and the sums equal Pillow's.
struct ResampleWeights {
    let taps: Int
    let starts: [Int]
    let weights: [Int32]   // outputs.count x taps

    var starts32: [Int32] { starts.map { Int32($0) } }

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

    /// Source columns the horizontal pass reads.
    var sourceColumns: Range<Int> {
        guard let horizontal else { return cropLeft..<(cropLeft + cropWidth) }
        return horizontal.starts.first!..<(horizontal.starts.last! + horizontal.taps)
    }

    /// Source rows the vertical pass reads.
    var sourceRows: Range<Int> { firstSourceRow..<(firstSourceRow + sourceRowCount) }

    /// Runs both passes; `emitRow(y, row)` receives each finished output row
    /// (`cropWidth * bytesPerPixel` bytes) in order. `source` holds `sourceWidth` pixels per
    /// row and starts at pixel (`sourceOriginX`, `sourceOriginY`) of the picture; it must
    /// cover `sourceColumns` x `sourceRows`. `useSIMD: false` forces the plain C kernels
    /// (tests compare both).
    func run(source: UnsafePointer<UInt8>, sourceWidth: Int, sourceOriginX: Int = 0, sourceOriginY: Int = 0,
             bytesPerPixel: Int, useSIMD: Bool = true, emitRow: (Int, UnsafePointer<UInt8>) -> Void) {
        precondition(sourceColumns.lowerBound >= sourceOriginX && sourceColumns.upperBound <= sourceOriginX + sourceWidth)
        precondition(sourceRows.lowerBound >= sourceOriginY)
        let rowBytes = cropWidth * bytesPerPixel
        let sourceStride = sourceWidth * bytesPerPixel
        let simd: Int32 = useSIMD ? 1 : 0
        // Horizontal pass over the source rows the vertical pass needs.
        let intermediate = UnsafeMutablePointer<UInt8>.allocate(capacity: sourceRowCount * rowBytes)
        defer { intermediate.deallocate() }
        let firstRow = source + (firstSourceRow - sourceOriginY) * sourceStride
        if let horizontal {
            horizontal.starts.map { Int32($0 - sourceOriginX) }.withUnsafeBufferPointer { starts in
                horizontal.weights.withUnsafeBufferPointer { weights in
                    cic_resample_horizontal(
                        firstRow, sourceStride, intermediate, rowBytes, Int32(sourceRowCount), Int32(cropWidth),
                        Int32(bytesPerPixel), starts.baseAddress, weights.baseAddress, Int32(horizontal.taps), simd)
                }
            }
        } else {
            for row in 0..<sourceRowCount {
                (intermediate + row * rowBytes).update(
                    from: firstRow + row * sourceStride + (cropLeft - sourceOriginX) * bytesPerPixel, count: rowBytes)
            }
        }
        guard let vertical else {
            for y in 0..<cropHeight {
                emitRow(y, intermediate + y * rowBytes)
            }
            return
        }
        let finished = UnsafeMutablePointer<UInt8>.allocate(capacity: cropHeight * rowBytes)
        defer { finished.deallocate() }
        let relativeStarts = vertical.starts32.map { $0 - Int32(firstSourceRow) }
        relativeStarts.withUnsafeBufferPointer { starts in
            vertical.weights.withUnsafeBufferPointer { weights in
                cic_resample_vertical(
                    intermediate, rowBytes, finished, rowBytes, Int32(cropHeight), Int32(rowBytes),
                    starts.baseAddress, weights.baseAddress, Int32(vertical.taps), simd)
            }
        }
        for y in 0..<cropHeight {
            emitRow(y, finished + y * rowBytes)
        }
    }
}
