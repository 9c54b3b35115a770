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

    private let storage: UnsafeMutablePointer<UInt8>
    private let storageFreedByC: Bool

    init(
        width: Int, height: Int, layout: PixelLayout, format: ImageFormat,
        sourceWidth: Int, sourceHeight: Int, dctScaleDenominator: Int, isProgressive: Bool,
        exifOrientation: Int, orientationApplied: Bool,
        storage: UnsafeMutablePointer<UInt8>, storageFreedByC: Bool
    ) {
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
    }

    deinit {
        if storageFreedByC {
            freeDecoderPixels(storage)
        } else {
            storage.deallocate()
        }
    }

    /// Bytes per row (rows are packed).
    public var rowBytes: Int { width * layout.bytesPerPixel }

    public func withPixels<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        try body(UnsafeBufferPointer(start: storage, count: rowBytes * height))
    }

    /// The pixels as a viewer shows them: `exifOrientation` applied (Pillow's `ImageOps.exif_transpose`).
    public func applyingOrientation() -> DecodedImage {
        if orientationApplied || exifOrientation <= 1 || exifOrientation > 8 {
            return self
        }
        let swapsAxes = exifOrientation >= 5
        let outWidth = swapsAxes ? height : width
        let outHeight = swapsAxes ? width : height
        let channels = layout.bytesPerPixel
        let output = UnsafeMutablePointer<UInt8>.allocate(capacity: outWidth * outHeight * channels)
        let orientation = exifOrientation
        let inWidth = width
        let inHeight = height
        let input = storage
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let (sourceX, sourceY): (Int, Int)
                switch orientation {
                case 2: (sourceX, sourceY) = (inWidth - 1 - x, y)                    // mirror
                case 3: (sourceX, sourceY) = (inWidth - 1 - x, inHeight - 1 - y)     // rotate 180
                case 4: (sourceX, sourceY) = (x, inHeight - 1 - y)                   // flip
                case 5: (sourceX, sourceY) = (y, x)                                  // transpose
                case 6: (sourceX, sourceY) = (y, inHeight - 1 - x)                   // rotate 90 clockwise
                case 7: (sourceX, sourceY) = (inWidth - 1 - y, inHeight - 1 - x)     // transverse
                default: (sourceX, sourceY) = (inWidth - 1 - y, x)                   // 8: rotate 90 counter-clockwise
                }
                let from = (sourceY * inWidth + sourceX) * channels
                let to = (y * outWidth + x) * channels
                for channel in 0..<channels {
                    output[to + channel] = input[from + channel]
                }
            }
        }
        return DecodedImage(
            width: outWidth, height: outHeight, layout: layout, format: format,
            sourceWidth: sourceWidth, sourceHeight: sourceHeight,
            dctScaleDenominator: dctScaleDenominator, isProgressive: isProgressive,
            exifOrientation: exifOrientation, orientationApplied: true,
            storage: output, storageFreedByC: false)
    }

    /// An image from raw interleaved pixels (`layout.bytesPerPixel` bytes each; tests, synthetic inputs).
    public static func fromPixels(_ pixels: [UInt8], width: Int, height: Int, layout: PixelLayout) -> DecodedImage {
        precondition(width > 0 && height > 0 && pixels.count == width * height * layout.bytesPerPixel)
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: pixels.count)
        storage.initialize(from: pixels, count: pixels.count)
        return DecodedImage(
            width: width, height: height, layout: layout, format: .png,
            sourceWidth: width, sourceHeight: height, dctScaleDenominator: 1, isProgressive: false,
            exifOrientation: 1, orientationApplied: false, storage: storage, storageFreedByC: false)
    }
}
