/// Settings of the CLIP image transform.
public struct PreprocessOptions: Sendable, Equatable {
    /// OpenAI CLIP's normalisation (open_clip `OPENAI_DATASET_MEAN` / `_STD`).
    public static let openAIMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    /// Side of the square model input.
    public var imageSize: Int
    public var mean: [Float]
    public var std: [Float]
    /// Rotate/mirror by the EXIF orientation tag first (what viewers show). open_clip
    /// ignores the tag; turn this off to reproduce it.
    public var applyExifOrientation: Bool
    /// Let libjpeg downscale large JPEGs by 1/2, 1/4 or 1/8 in the DCT domain before the
    /// bicubic resize. Faster, but not identical to the reference (Benchmarks/README.md has
    /// the measured differences); off by default.
    public var dctDownscale: DCTDownscalePolicy

    public init(imageSize: Int = 224, mean: [Float] = PreprocessOptions.openAIMean,
                std: [Float] = PreprocessOptions.openAIStd, applyExifOrientation: Bool = true,
                dctDownscale: DCTDownscalePolicy = .off) {
        precondition(mean.count == 3 && std.count == 3, "mean and std need three channels")
        self.imageSize = imageSize
        self.mean = mean
        self.std = std
        self.applyExifOrientation = applyExifOrientation
        self.dctDownscale = dctDownscale
    }
}

/// How far libjpeg may shrink a JPEG while decoding (the largest of 1/2, 1/4, 1/8 allowed).
public enum DCTDownscalePolicy: String, Sendable, CaseIterable {
    /// Exact decode; the output equals the reference.
    case off
    /// Keep the shortest side at least twice the model input, so the bicubic resize still
    /// antialiases a 2x reduction (differences of a few uint8 levels at edges).
    case keepTwiceTarget = "twice"
    /// Keep the shortest side at least the model input (fastest; blurrier than the reference).
    case keepTarget = "target"

    /// Largest denominator in {1, 2, 4, 8} allowed for a picture whose shortest side is `short`.
    public func denominator(shortestSide short: Int, imageSize: Int) -> Int {
        let margin: Int
        switch self {
        case .off: return 1
        case .keepTwiceTarget: margin = 2
        case .keepTarget: margin = 1
        }
        for denominator in [8, 4, 2] where short >= margin * denominator * imageSize {
            return denominator
        }
        return 1
    }
}

/// What happened to one image on its way to the model.
public struct PreprocessSummary: Sendable, Equatable {
    public var format: ImageFormat
    public var sourceWidth: Int
    public var sourceHeight: Int
    public var mode: PixelLayout
    /// The mode Pillow opens the file in: L, RGB, CMYK, or for PNGs also RGBA (LA shows
    /// as RGBA), P and 1.
    public var pillowMode: String
    public var progressive: Bool
    public var dctScaleDenominator: Int
    public var exifOrientation: Int
    public var orientationApplied: Bool
    /// Size of the pixels that were resized (after DCT scaling and orientation).
    public var decodedWidth: Int
    public var decodedHeight: Int
    public var geometry: ResizeGeometry

    /// e.g. "jpeg baseline", "jpeg progressive dct 1/4", "png".
    public var decodeMode: String {
        var text = format.rawValue
        if format == .jpeg { text += progressive ? " progressive" : " baseline" }
        if dctScaleDenominator > 1 { text += " dct 1/\(dctScaleDenominator)" }
        return text
    }
}

/// Encoded bytes -> CLIP model input: Float32 [3, S, S] (CHW, RGB), computed the way
/// open_clip's eval transform computes it (Pillow decode, bicubic resize of the shortest
/// side, centre crop, RGB conversion after the resize, /255, normalise).
public struct Preprocessor: Sendable {
    public let options: PreprocessOptions
    public let decoder: ImageDecoder
    /// Per channel, the normalised value of each uint8 level (exactly torch's float32 ops).
    private let levels: [Float]

    public init(options: PreprocessOptions = PreprocessOptions(), decoder: ImageDecoder = ImageDecoder()) {
        precondition(options.imageSize > 0)
        self.options = options
        self.decoder = decoder
        var levels = [Float](repeating: 0, count: 3 * 256)
        for channel in 0..<3 {
            for value in 0..<256 {
                levels[channel * 256 + value] = (Float(value) / 255 - options.mean[channel]) / options.std[channel]
            }
        }
        self.levels = levels
    }

    public var outputCount: Int { 3 * options.imageSize * options.imageSize }

    public func preprocess(_ bytes: [UInt8]) throws -> (tensor: [Float], summary: PreprocessSummary) {
        var summary: PreprocessSummary?
        let tensor = try [Float](unsafeUninitializedCapacity: outputCount) { buffer, initialized in
            summary = try bytes.withUnsafeBytes { try preprocess($0, into: buffer) }
            initialized = buffer.count
        }
        return (tensor, summary!)
    }

    /// Writes `outputCount` floats into `output` (e.g. one slot of a batch).
    public func preprocess(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>) throws -> PreprocessSummary {
        precondition(output.count >= outputCount)
        if ImageFormat.detect(bytes) == .jpeg, let header = try? ImageDecoder.jpegHeader(bytes) {
            let denominator = options.dctDownscale.denominator(
                shortestSide: min(header.width, header.height), imageSize: options.imageSize)
            let withinLimit = header.width > 0 && header.height > 0 && header.width * header.height <= decoder.maxPixels
            if withinLimit {
                // Decode only the stored rows and columns that the centre crop of the upright
                // picture reads. libjpeg's output size at 1/d is ceil(size / d).
                let orientation = Orientation(
                    value: options.applyExifOrientation ? header.exifOrientation : 1,
                    storedWidth: (header.width + denominator - 1) / denominator,
                    storedHeight: (header.height + denominator - 1) / denominator)
                let plan = ResizePlan(width: orientation.uprightWidth, height: orientation.uprightHeight, size: options.imageSize)
                let region = orientation.storedRect(columns: plan.resize.sourceColumns, rows: plan.resize.sourceRows)
                let decoded = try decoder.decode(bytes, dctScaleDenominator: denominator, region: region)
                let image = options.applyExifOrientation ? decoded.applyingOrientation() : decoded
                return resample(image, plan: plan, into: output)
            }
            return preprocess(try decoder.decode(bytes, dctScaleDenominator: denominator), into: output)
        }
        if ImageFormat.detect(bytes) == .png, let (width, height) = ImageDecoder.headerSize(bytes, format: .png),
           width > 0, height > 0, width.multipliedReportingOverflow(by: height).partialValue <= decoder.maxPixels,
           !width.multipliedReportingOverflow(by: height).overflow {
            // The aspect rule first: the region's cost grows with the resized long side.
            try decoder.checkAspectRatio(bytes, format: .png)
            let region = pngRegion(width: width, height: height)
            let decoded = try decoder.decode(bytes, dctScaleDenominator: 1, region: region)
            return preprocess(decoded, into: output)
        }
        return preprocess(try decoder.decode(bytes), into: output)
    }

    /// The stored rectangle of a `width` x `height` PNG that the centre crop reads. The
    /// orientation (an eXIf chunk may follow the pixels) is not known before decoding, so with
    /// `applyExifOrientation` it covers what any of the eight orientations needs.
    func pngRegion(width: Int, height: Int) -> (x: Int, y: Int, width: Int, height: Int) {
        let values = options.applyExifOrientation ? Array(1...8) : [1]
        var box = (x0: Int.max, y0: Int.max, x1: 0, y1: 0)
        for value in values {
            let orientation = Orientation(value: value, storedWidth: width, storedHeight: height)
            let (columns, rows) = Self.sourceRanges(width: orientation.uprightWidth, height: orientation.uprightHeight,
                                                    size: options.imageSize)
            let r = orientation.storedRect(columns: columns, rows: rows)
            box = (min(box.x0, r.x), min(box.y0, r.y), max(box.x1, r.x + r.width), max(box.y1, r.y + r.height))
        }
        return (box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0)
    }

    /// Upright source columns and rows that the resize + centre crop of a `width` x `height`
    /// picture reads: the bicubic windows and, for palette pictures, the nearest samples.
    static func sourceRanges(width: Int, height: Int, size: Int) -> (columns: Range<Int>, rows: Range<Int>) {
        let plan = ResizePlan(width: width, height: height, size: size)
        let g = plan.geometry
        let columns = nearestIndices(source: width, resized: g.resizedWidth, from: g.cropLeft, count: size)
        let rows = nearestIndices(source: height, resized: g.resizedHeight, from: g.cropTop, count: size)
        let c = plan.resize.sourceColumns, r = plan.resize.sourceRows
        return (min(c.lowerBound, columns.first!)..<max(c.upperBound, columns.last! + 1),
                min(r.lowerBound, rows.first!)..<max(r.upperBound, rows.last! + 1))
    }

    public func preprocess(_ decoded: DecodedImage, into output: UnsafeMutableBufferPointer<Float>) -> PreprocessSummary {
        precondition(output.count >= outputCount)
        let image = options.applyExifOrientation ? decoded.applyingOrientation() : decoded
        return resample(image, plan: ResizePlan(width: image.width, height: image.height, size: options.imageSize), into: output)
    }

    private func resample(_ image: DecodedImage, plan: ResizePlan, into output: UnsafeMutableBufferPointer<Float>) -> PreprocessSummary {
        let size = options.imageSize
        let plane = size * size
        let layout = image.layout
        levels.withUnsafeBufferPointer { levels in
            let red = levels.baseAddress!, green = red + 256, blue = red + 512
            let out = output.baseAddress!
            let unpremultiply = image.hasAlpha && !image.isPillowPaletteMode
            let writeRow = { (y: Int, row: UnsafePointer<UInt8>) in
                let r = out + y * size, g = r + plane, b = g + plane
                switch layout {
                case .rgb where unpremultiply:
                    for x in 0..<size {
                        let p = row + 4 * x
                        r[x] = red[Int(Self.unpremultiply(p[0], alpha: p[3]))]
                        g[x] = green[Int(Self.unpremultiply(p[1], alpha: p[3]))]
                        b[x] = blue[Int(Self.unpremultiply(p[2], alpha: p[3]))]
                    }
                case .rgb:
                    for x in 0..<size {
                        r[x] = red[Int(row[4 * x])]
                        g[x] = green[Int(row[4 * x + 1])]
                        b[x] = blue[Int(row[4 * x + 2])]
                    }
                case .gray:
                    for x in 0..<size {
                        let v = Int(row[x])
                        r[x] = red[v]
                        g[x] = green[v]
                        b[x] = blue[v]
                    }
                case .cmyk:
                    for x in 0..<size {
                        let p = row + 4 * x
                        r[x] = red[Int(Self.cmykToRGB(p[0], p[3]))]
                        g[x] = green[Int(Self.cmykToRGB(p[1], p[3]))]
                        b[x] = blue[Int(Self.cmykToRGB(p[2], p[3]))]
                    }
                }
            }
            image.withStoredPixels { pixels in
                if image.isPillowPaletteMode {
                    Self.nearestResize(image, pixels: pixels.baseAddress!, geometry: plan.geometry, emitRow: writeRow)
                } else if unpremultiply {
                    // Pillow resizes RGBA premultiplied ("RGBa") and divides the alpha out afterwards.
                    let premultiplied = UnsafeMutablePointer<UInt8>.allocate(capacity: pixels.count)
                    defer { premultiplied.deallocate() }
                    var i = 0
                    while i < pixels.count {
                        let alpha = pixels[i + 3]
                        premultiplied[i] = Self.multiply255(pixels[i], alpha)
                        premultiplied[i + 1] = Self.multiply255(pixels[i + 1], alpha)
                        premultiplied[i + 2] = Self.multiply255(pixels[i + 2], alpha)
                        premultiplied[i + 3] = alpha
                        i += 4
                    }
                    plan.resize.run(source: premultiplied, sourceWidth: image.regionWidth,
                                    sourceOriginX: image.regionX, sourceOriginY: image.regionY,
                                    bytesPerPixel: 4, emitRow: writeRow)
                } else {
                    plan.resize.run(source: pixels.baseAddress!, sourceWidth: image.regionWidth,
                                    sourceOriginX: image.regionX, sourceOriginY: image.regionY,
                                    bytesPerPixel: layout.bytesPerPixel, emitRow: writeRow)
                }
            }
        }
        return PreprocessSummary(
            format: image.format, sourceWidth: image.sourceWidth, sourceHeight: image.sourceHeight,
            mode: layout,
            pillowMode: image.isPillowPaletteMode ? (layout == .gray ? "1" : "P") : (image.hasAlpha ? "RGBA" : layout.rawValue),
            progressive: image.isProgressive, dctScaleDenominator: image.dctScaleDenominator,
            exifOrientation: image.exifOrientation, orientationApplied: image.orientationApplied,
            decodedWidth: image.width, decodedHeight: image.height, geometry: plan.geometry)
    }

    /// Pillow's `resize` of a mode "P" / "1" picture: nearest neighbour through an affine
    /// map whose source position advances by `source / resized` per pixel, accumulated in
    /// doubles from half a step (ImagingScaleAffine), then the centre crop.
    static func nearestResize(_ image: DecodedImage, pixels: UnsafePointer<UInt8>, geometry: ResizeGeometry,
                              emitRow: (Int, UnsafePointer<UInt8>) -> Void) {
        let size = geometry.cropSize
        let bytesPerPixel = image.layout.bytesPerPixel
        let columns = nearestIndices(source: image.width, resized: geometry.resizedWidth, from: geometry.cropLeft, count: size)
        let rows = nearestIndices(source: image.height, resized: geometry.resizedHeight, from: geometry.cropTop, count: size)
        let row = UnsafeMutablePointer<UInt8>.allocate(capacity: size * bytesPerPixel)
        defer { row.deallocate() }
        // `pixels` hold the stored region (all of the picture unless the decoder kept less).
        let regionRowBytes = image.regionWidth * bytesPerPixel
        precondition(rows.allSatisfy { $0 >= image.regionY && $0 < image.regionY + image.regionHeight }
            && columns.allSatisfy { $0 >= image.regionX && $0 < image.regionX + image.regionWidth })
        for (y, sourceRow) in rows.enumerated() {
            let input = pixels + (sourceRow - image.regionY) * regionRowBytes
            for (x, sourceColumn) in columns.enumerated() {
                let from = (sourceColumn - image.regionX) * bytesPerPixel
                for byte in 0..<bytesPerPixel {
                    row[x * bytesPerPixel + byte] = input[from + byte]
                }
            }
            emitRow(y, row)
        }
    }

    /// Source index of each output `first..<first+count` of Pillow's nearest-neighbour
    /// resize from `source` to `resized` (the position accumulated in doubles as Pillow does).
    static func nearestIndices(source: Int, resized: Int, from first: Int, count: Int) -> [Int] {
        let step = Double(source) / Double(resized)
        var position = step * 0.5
        var indices = [Int]()
        indices.reserveCapacity(count)
        for index in 0..<(first + count) {
            if index >= first {
                indices.append(min(max(position < 0 ? 0 : Int(position), 0), source - 1))
            }
            position += step
        }
        return indices
    }

    /// Pillow's MULDIV255: a * b / 255 rounded, in integers.
    @inline(__always)
    static func multiply255(_ a: UInt8, _ b: UInt8) -> UInt8 {
        let product = Int32(a) * Int32(b) + 128
        return UInt8(truncatingIfNeeded: ((product >> 8) + product) >> 8)
    }

    /// Pillow's RGBa -> RGBA: 255 * c / alpha (integer division, clipped) unless alpha is 0 or 255.
    @inline(__always)
    static func unpremultiply(_ value: UInt8, alpha: UInt8) -> UInt8 {
        if alpha == 255 || alpha == 0 { return value }
        return UInt8(clamping: 255 * Int32(value) / Int32(alpha))
    }

    /// Pillow's naive CMYK -> RGB (no ICC): `255 - K` scaled by the missing ink, with
    /// Pillow's rounded division by 255.
    @inline(__always)
    static func cmykToRGB(_ ink: UInt8, _ black: UInt8) -> UInt8 {
        let remaining = 255 - Int32(black)
        let product = Int32(ink) * remaining + 128
        let scaled = ((product >> 8) + product) >> 8
        let value = remaining - scaled
        return UInt8(clamping: value)
    }
}

/// Geometry plus resampling weights for one picture size.
struct ResizePlan {
    let geometry: ResizeGeometry
    let resize: CroppedResize

    init(width: Int, height: Int, size: Int) {
        geometry = ResizeGeometry(width: width, height: height, size: size)
        resize = CroppedResize(
            inputWidth: width, inputHeight: height,
            outputWidth: geometry.resizedWidth, outputHeight: geometry.resizedHeight,
            cropLeft: geometry.cropLeft, cropTop: geometry.cropTop, cropWidth: size, cropHeight: size)
    }
}
