/// Container formats recognised by their leading bytes (never by file name or Content-Type).
public enum ImageFormat: String, Sendable, CaseIterable {
    case jpeg, png
    case gif, webp, bmp, tiff, ico, heif, avif, jpeg2000, jpegXL = "jpeg_xl", psd, qoi

    public var isDecodable: Bool { self == .jpeg || self == .png }

    /// The format whose signature starts `bytes`, or nil for unrecognised data.
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        func starts(with signature: [UInt8], at offset: Int = 0) -> Bool {
            guard bytes.count >= offset + signature.count else { return false }
            for (index, byte) in signature.enumerated() where bytes[offset + index] != byte {
                return false
            }
            return true
        }
        if starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts(with: Array("GIF87a".utf8)) || starts(with: Array("GIF89a".utf8)) { return .gif }
        if starts(with: Array("RIFF".utf8)) && starts(with: Array("WEBP".utf8), at: 8) { return .webp }
        if starts(with: Array("BM".utf8)) && bytes.count >= 26 { return .bmp }
        if starts(with: [0x49, 0x49, 0x2A, 0x00]) || starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return .tiff }
        if starts(with: [0x00, 0x00, 0x01, 0x00]) || starts(with: [0x00, 0x00, 0x02, 0x00]) { return .ico }
        if starts(with: Array("ftyp".utf8), at: 4) {
            if starts(with: Array("avif".utf8), at: 8) || starts(with: Array("avis".utf8), at: 8) { return .avif }
            for brand in ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"]
            where starts(with: Array(brand.utf8), at: 8) {
                return .heif
            }
        }
        if starts(with: [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || starts(with: [0xFF, 0x4F, 0xFF, 0x51]) {
            return .jpeg2000
        }
        if starts(with: [0xFF, 0x0A]) || starts(with: [0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) {
            return .jpegXL
        }
        if starts(with: Array("8BPS".utf8)) { return .psd }
        if starts(with: Array("qoif".utf8)) { return .qoi }
        return nil
    }
}
