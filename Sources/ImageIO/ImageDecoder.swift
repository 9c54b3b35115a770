import CImageCodecs

/// Turns encoded bytes into pixels. JPEG (libjpeg-turbo), PNG (libpng), WebP (libwebp, first
/// frame) and GIF (giflib, first frame) decode;
/// other recognised formats are refused with `unsupported_format`.
public struct ImageDecoder: Sendable {
    /// Largest accepted width x height, checked against the header before any pixel memory exists.
    public var maxPixels: Int

    public static let defaultMaxPixels = 40_000_000

    /// Largest accepted ratio of the long side to the short side, checked against the header
    /// before any pixel memory exists. The model sees a square centre crop of the short side,
    /// so a picture longer than this shows the model a sliver of itself while decoding costs
    /// rows or columns the crop never reads (a 78 KB PNG of 1 x 40,000,000 pixels).
    public var maxAspectRatio: Int

    public static let defaultMaxAspectRatio = 100

    public init(maxPixels: Int = ImageDecoder.defaultMaxPixels, maxAspectRatio: Int = ImageDecoder.defaultMaxAspectRatio) {
        self.maxPixels = maxPixels
        self.maxAspectRatio = maxAspectRatio
    }

    /// Width and height from the header (JPEG SOF, PNG IHDR) without decoding; nil when the
    /// header cannot be read (the decoder then reports why).
    static func headerSize(_ bytes: UnsafeRawBufferPointer, format: ImageFormat) -> (width: Int, height: Int)? {
        switch format {
        case .jpeg:
            return (try? jpegHeader(bytes)).map { ($0.width, $0.height) }
        case .png:
            // Signature (8), IHDR length (4) and type (4), then width and height (big-endian).
            guard bytes.count >= 24, bytes[12] == 0x49, bytes[13] == 0x48, bytes[14] == 0x44, bytes[15] == 0x52 else { return nil }
            func be32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 << 8 | Int(bytes[at + $1]) } }
            return (be32(16), be32(20))
        default:
            return nil
        }
    }

    /// Refuses, from the header, a picture whose sides differ by more than `maxAspectRatio`.
    func checkAspectRatio(_ bytes: UnsafeRawBufferPointer, format: ImageFormat) throws {
        guard let (width, height) = Self.headerSize(bytes, format: format), width > 0, height > 0 else { return }
        let (short, long) = (min(width, height), max(width, height))
        if long / short >= maxAspectRatio && long > short * maxAspectRatio {
            throw ImageIOError(.tooLarge, "\(format.rawValue): image is \(width)x\(height), more than \(maxAspectRatio) times longer than wide (the limit on the aspect ratio)")
        }
    }

    public func decode(_ bytes: [UInt8], dctScaleDenominator: Int = 1) throws -> DecodedImage {
        try bytes.withUnsafeBytes { try decode($0, dctScaleDenominator: dctScaleDenominator) }
    }

    /// - Parameter dctScaleDenominator: 1 for the exact decode; 2, 4 or 8 let libjpeg
    ///   downscale while decoding (JPEG only; ignored for PNG).
    public func decode(_ bytes: UnsafeRawBufferPointer, dctScaleDenominator: Int = 1) throws -> DecodedImage {
        try decode(bytes, dctScaleDenominator: dctScaleDenominator, region: nil)
    }

    /// With a `region`, only that part of the picture is kept: a JPEG converts just that part
    /// (widened to iMCU boundaries) to pixels; a non-interlaced PNG decodes every row but keeps
    /// only the region's. The result's storage covers just that part.
    func decode(_ bytes: UnsafeRawBufferPointer, dctScaleDenominator: Int,
                region: (x: Int, y: Int, width: Int, height: Int)?) throws -> DecodedImage {
        guard bytes.count > 0, let base = bytes.baseAddress else {
            throw ImageIOError(.empty, "no image data (0 bytes)")
        }
        guard let format = ImageFormat.detect(bytes) else {
            throw ImageIOError(.corrupt, "not a recognised image format (first bytes \(hexPrefix(bytes)))")
        }
        guard [1, 2, 4, 8].contains(dctScaleDenominator) else {
            throw ImageIOError(.corrupt, "DCT scale denominator must be 1, 2, 4 or 8")
        }
        try checkAspectRatio(bytes, format: format)
        var image = cic_image()
        var message = [CChar](repeating: 0, count: Int(CIC_MESSAGE_CAPACITY))
        let limit = UInt64(max(0, maxPixels))
        let data = base.assumingMemoryBound(to: UInt8.self)
        let status: cic_status
        switch format {
        case .jpeg:
            if let region {
                var wanted = cic_region(x: UInt32(region.x), y: UInt32(region.y),
                                        width: UInt32(region.width), height: UInt32(region.height))
                status = cic_jpeg_decode(data, bytes.count, limit, UInt32(dctScaleDenominator), &wanted, &image, &message)
            } else {
                status = cic_jpeg_decode(data, bytes.count, limit, UInt32(dctScaleDenominator), nil, &image, &message)
            }
        case .png:
            if let region {
                var wanted = cic_region(x: UInt32(clamping: region.x), y: UInt32(clamping: region.y),
                                        width: UInt32(clamping: region.width), height: UInt32(clamping: region.height))
                status = cic_png_decode(data, bytes.count, limit, &wanted, &image, &message)
            } else {
                status = cic_png_decode(data, bytes.count, limit, nil, &image, &message)
            }
        case .webp:
            status = cic_webp_decode(data, bytes.count, limit, &image, &message)
        case .gif:
            status = cic_gif_decode(data, bytes.count, limit, &image, &message)
        default:
            throw ImageIOError(.unsupportedFormat, "\(format.rawValue) images are not supported (JPEG, PNG, WebP and GIF are)")
        }
        guard status == CIC_OK, let pixels = image.pixels else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageIOError(Self.errorClass(status), "\(format.rawValue): \(text.isEmpty ? "decoding failed" : text)")
        }
        let layout: PixelLayout = switch image.channels {
        case 1: .gray
        case 4: .cmyk
        default: .rgb
        }
        return DecodedImage(
            width: Int(image.width), height: Int(image.height), layout: layout, format: format,
            sourceWidth: Int(image.source_width), sourceHeight: Int(image.source_height),
            dctScaleDenominator: Int(image.scale_denominator), isProgressive: image.progressive != 0,
            exifOrientation: Int(image.exif_orientation), orientationApplied: false,
            storage: pixels, storageFreedByC: true,
            region: (Int(image.region_x), Int(image.region_y), Int(image.region_width), Int(image.region_height)),
            hasAlpha: image.has_alpha != 0, isPillowPaletteMode: image.pillow_palette_mode != 0,
            decoderAllocatedBytes: Int(image.allocated_bytes))
    }

    /// Header facts of a JPEG without decoding pixels.
    public static func jpegHeader(_ bytes: UnsafeRawBufferPointer) throws -> (width: Int, height: Int, layout: PixelLayout, exifOrientation: Int) {
        var header = cic_header()
        var message = [CChar](repeating: 0, count: Int(CIC_MESSAGE_CAPACITY))
        let status = cic_jpeg_read_header(
            bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, &header, &message)
        guard status == CIC_OK else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageIOError(errorClass(status), "jpeg: \(text)")
        }
        let layout: PixelLayout = header.channels == 1 ? .gray : (header.channels == 4 ? .cmyk : .rgb)
        return (Int(header.width), Int(header.height), layout, Int(header.exif_orientation))
    }

    static func errorClass(_ status: cic_status) -> ImageIOError.Class {
        switch status {
        case CIC_TRUNCATED: .truncated
        case CIC_TOO_LARGE: .tooLarge
        case CIC_UNSUPPORTED: .unsupportedFormat
        case CIC_EMPTY: .empty
        default: .corrupt
        }
    }

    private func hexPrefix(_ bytes: UnsafeRawBufferPointer) -> String {
        bytes.prefix(8).map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined(separator: " ")
    }
}

func freeDecoderPixels(_ pixels: UnsafeMutablePointer<UInt8>) {
    cic_free_pixels(pixels)
}
