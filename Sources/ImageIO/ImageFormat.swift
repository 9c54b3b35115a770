/// Container formats recognised by their leading bytes, never by file name or Content-Type
/// (servers mislabel Content-Type and URLs lie about extensions, so the bytes decide). The one
/// format vocabulary of clipd: `Fetch` reports it, `ImageIO` decodes by it.
public enum ImageFormat: String, Sendable, Hashable, CaseIterable {
    case jpeg, png
    case gif, webp, bmp, tiff, ico, heif, avif, jpeg2000, jpegXL = "jpeg_xl", psd, qoi
    /// No known signature.
    case unknown

    /// Identifies the format from the first bytes of `bytes` (at most 32 are looked at).
    public init<Bytes: Collection>(sniffing bytes: Bytes) where Bytes.Element == UInt8 {
        let head = Array(bytes.prefix(32))
        self = head.withUnsafeBytes { Self.detect($0) } ?? .unknown
    }

    public var isDecodable: Bool { [.jpeg, .png, .webp, .gif].contains(self) }

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
        if looksLikeBMP(bytes) { return .bmp }
        // Classic TIFF and BigTIFF, both byte orders.
        if starts(with: [0x49, 0x49, 0x2A, 0x00]) || starts(with: [0x4D, 0x4D, 0x00, 0x2A])
            || starts(with: [0x49, 0x49, 0x2B, 0x00]) || starts(with: [0x4D, 0x4D, 0x00, 0x2B]) { return .tiff }
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

    /// "BM" alone is two printable bytes that text often starts with; the DIB header size
    /// at offset 14 takes one of a few fixed values in every BMP variant.
    private static func looksLikeBMP(_ head: UnsafeRawBufferPointer) -> Bool {
        guard head.count >= 26, head[0] == 0x42, head[1] == 0x4D else { return false }
        let dibHeaderSize = UInt32(head[14]) | UInt32(head[15]) << 8 | UInt32(head[16]) << 16 | UInt32(head[17]) << 24
        return [12, 40, 52, 56, 64, 108, 124].contains(dibHeaderSize)
    }
}
