import CImageCodecs

/// Turns encoded bytes into pixels. JPEG (libjpeg-turbo), PNG (libpng), WebP (libwebp, first
/// frame) and GIF (giflib, first frame) decode;
/// other recognised formats are refused with `unsupported_format`.
public struct ImageDecoder: Sendable {
    /// Largest accepted width x height, checked against the header before any pixel memory exists.
    public var maxPixels: Int

    public static let defaultMaxPixels = 40_000_000

    public init(maxPixels: Int = ImageDecoder.defaultMaxPixels) {
        self.maxPixels = maxPixels
    }

    public func decode(_ bytes: [UInt8], dctScaleDenominator: Int = 1) throws -> DecodedImage {
        try bytes.withUnsafeBytes { try decode($0, dctScaleDenominator: dctScaleDenominator) }
    }

    /// - Parameter dctScaleDenominator: 1 for the exact decode; 2, 4 or 8 let libjpeg
    ///   downscale while decoding (JPEG only; ignored for PNG).
    public func decode(_ bytes: UnsafeRawBufferPointer, dctScaleDenominator: Int = 1) throws -> DecodedImage {
        try decode(bytes, dctScaleDenominator: dctScaleDenominator, region: nil)
    }

    /// With a `region` (JPEG only), only that part of the picture, widened to iMCU
    /// boundaries, is converted to pixels; the result's storage covers just that part.
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
            status = cic_png_decode(data, bytes.count, limit, &image, &message)
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
            hasAlpha: image.has_alpha != 0, isPillowPaletteMode: image.pillow_palette_mode != 0)
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
