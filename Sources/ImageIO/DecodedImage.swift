/// How decoded samples are laid out: interleaved 8-bit channels, rows packed.
public enum PixelLayout: String, Sendable {
    /// One gray sample per pixel (Pillow mode "L").
    case gray = "L"
    case rgb = "RGB"
    /// Four ink samples per pixel, 0 = no ink (Pillow mode "CMYK").
    case cmyk = "CMYK"

    /// Bytes per stored pixel: RGB carries one byte of padding (RGBX) so that colour
    /// pixels are 32-bit lanes for the resampling kernels.
    public var bytesPerPixel: Int {
        switch self {
        case .gray: 1
        case .rgb, .cmyk: 4
        }
    }
}

/// Decoded 8-bit pixels with what the header said about them.
///
/// Immutable after creation, hence safe to hand between threads.
public final class DecodedImage: @unchecked Sendable {
    public let width: Int
    public let height: Int
    public let layout: PixelLayout
    public let format: ImageFormat
    /// Size stored in the file (before DCT-domain downscaling and orientation).
    public let sourceWidth: Int
    public let sourceHeight: Int
    /// 1 for a full decode; 2, 4 or 8 when libjpeg downscaled in the DCT domain.
    public let dctScaleDenominator: Int
    public let isProgressive: Bool
    /// EXIF orientation tag (1...8, 1 when absent).
    public let exifOrientation: Int
    /// Whether `exifOrientation` has been applied to these pixels.
    public let orientationApplied: Bool
    /// The 4th byte of each RGB pixel is alpha (PNG with an alpha channel), not padding.
    public let hasAlpha: Bool
    /// Pillow would open this picture in mode "P" or "1" (palette or 1-bit gray PNG), which
    /// its `resize` handles with nearest-neighbour sampling instead of bicubic.
    public let isPillowPaletteMode: Bool

    /// The rectangle of the picture held in storage: all of it, except inside the
    /// preprocessor, which may decode only what the centre crop needs.
    let regionX: Int
    let regionY: Int
    let regionWidth: Int
    let regionHeight: Int

    /// Bytes the C decoder allocated for this picture (PNG: pixels and row bookkeeping;
    /// 0 where the decoder does not count), so tests can bound memory by the work produced.
    public let decoderAllocatedBytes: Int

    private let storage: UnsafeMutablePointer<UInt8>
    private let storageFreedByC: Bool

    init(
        width: Int, height: Int, layout: PixelLayout, format: ImageFormat,
        sourceWidth: Int, sourceHeight: Int, dctScaleDenominator: Int, isProgressive: Bool,
        exifOrientation: Int, orientationApplied: Bool,
        storage: UnsafeMutablePointer<UInt8>, storageFreedByC: Bool,
        region: (x: Int, y: Int, width: Int, height: Int)? = nil,
        hasAlpha: Bool = false, isPillowPaletteMode: Bool = false, decoderAllocatedBytes: Int = 0
    ) {
        self.decoderAllocatedBytes = decoderAllocatedBytes
        self.width = width
        self.height = height
        self.layout = layout
        self.format = format
        self.sourceWidth = sourceWidth
        self.sourceHeight = sourceHeight
        self.dctScaleDenominator = dctScaleDenominator
        self.isProgressive = isProgressive
        self.exifOrientation = exifOrientation
        self.orientationApplied = orientationApplied
        self.storage = storage
        self.storageFreedByC = storageFreedByC
        self.hasAlpha = hasAlpha
        self.isPillowPaletteMode = isPillowPaletteMode
        let region = region ?? (0, 0, width, height)
        regionX = region.x
        regionY = region.y
        regionWidth = region.width
        regionHeight = region.height
    }

    var isComplete: Bool { regionWidth == width && regionHeight == height }

    deinit {
        if storageFreedByC {
            freeDecoderPixels(storage)
        } else {
            storage.deallocate()
        }
    }

    /// Bytes per row (rows are packed).
    public var rowBytes: Int { regionWidth * layout.bytesPerPixel }

    /// All pixels, row by row (`layout.bytesPerPixel` bytes each).
    public func withPixels<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        precondition(isComplete)
        return try body(UnsafeBufferPointer(start: storage, count: rowBytes * regionHeight))
    }

    /// The stored region, whatever its extent.
    func withStoredPixels<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        try body(UnsafeBufferPointer(start: storage, count: rowBytes * regionHeight))
    }

    /// The pixels as a viewer shows them: `exifOrientation` applied (Pillow's `ImageOps.exif_transpose`).
    public func applyingOrientation() -> DecodedImage {
        if orientationApplied || exifOrientation <= 1 || exifOrientation > 8 {
            return self
        }
        // Works on a stored region too: the result holds the upright region it shows.
        let orientation = Orientation(value: exifOrientation, storedWidth: width, storedHeight: height)
        let target = orientation.uprightRect(x: regionX, y: regionY, width: regionWidth, height: regionHeight)
        let bytesPerPixel = layout.bytesPerPixel
        let output = UnsafeMutablePointer<UInt8>.allocate(capacity: target.width * target.height * bytesPerPixel)
        // Upright pixel (x, y) of the region reads stored pixel origin + x * stepX + y * stepY
        // (linear pixel index within the stored region).
        func storedIndex(_ x: Int, _ y: Int) -> Int {
            let p = orientation.stored(target.x + x, target.y + y)
            return (p.y - regionY) * regionWidth + (p.x - regionX)
        }
        let origin = storedIndex(0, 0)
        let stepX = target.width > 1 ? storedIndex(1, 0) - origin : 0
        let stepY = target.height > 1 ? storedIndex(0, 1) - origin : 0
        let input = storage
        for y in 0..<target.height {
            var from = origin + y * stepY
            let row = output + y * target.width * bytesPerPixel
            if bytesPerPixel == 4 {
                let source = UnsafeRawPointer(input)
                let destination = UnsafeMutableRawPointer(row)
                for x in 0..<target.width {
                    destination.storeBytes(of: source.loadUnaligned(fromByteOffset: from * 4, as: UInt32.self),
                                           toByteOffset: x * 4, as: UInt32.self)
                    from += stepX
                }
            } else {
                for x in 0..<target.width {
                    row[x] = input[from]
                    from += stepX
                }
            }
        }
        let outWidth = orientation.uprightWidth
        let outHeight = orientation.uprightHeight
        return DecodedImage(
            width: outWidth, height: outHeight, layout: layout, format: format,
            sourceWidth: sourceWidth, sourceHeight: sourceHeight,
            dctScaleDenominator: dctScaleDenominator, isProgressive: isProgressive,
            exifOrientation: exifOrientation, orientationApplied: true,
            storage: output, storageFreedByC: false, region: target,
            hasAlpha: hasAlpha, isPillowPaletteMode: isPillowPaletteMode)
    }

    /// An image from raw interleaved pixels (`layout.bytesPerPixel` bytes each; tests, synthetic inputs).
    public static func fromPixels(_ pixels: [UInt8], width: Int, height: Int, layout: PixelLayout,
                                  hasAlpha: Bool = false, isPillowPaletteMode: Bool = false) -> DecodedImage {
        precondition(width > 0 && height > 0 && pixels.count == width * height * layout.bytesPerPixel)
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: pixels.count)
        storage.initialize(from: pixels, count: pixels.count)
        return DecodedImage(
            width: width, height: height, layout: layout, format: .png,
            sourceWidth: width, sourceHeight: height, dctScaleDenominator: 1, isProgressive: false,
            exifOrientation: 1, orientationApplied: false, storage: storage, storageFreedByC: false,
            hasAlpha: hasAlpha && layout == .rgb, isPillowPaletteMode: isPillowPaletteMode)
    }
}
