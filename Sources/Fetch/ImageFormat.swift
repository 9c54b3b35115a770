/// An image container format recognised by its leading bytes.
///
/// Servers mislabel Content-Type and URLs lie about extensions, so the bytes decide.
public enum ImageFormat: String, Sendable, Hashable, CaseIterable {
    case jpeg, png, gif, webp, bmp, tiff, unknown

    /// Identifies the format from the first bytes of `bytes` (at most 32 are looked at).
    public init<Bytes: Collection>(sniffing bytes: Bytes) where Bytes.Element == UInt8 {
        let head = Array(bytes.prefix(32))
        func starts(with magic: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + magic.count && Array(head[offset..<offset + magic.count]) == magic
        }
        if starts(with: [0xFF, 0xD8, 0xFF]) {
            self = .jpeg
        } else if starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else if starts(with: Array("GIF87a".utf8)) || starts(with: Array("GIF89a".utf8)) {
            self = .gif
        } else if starts(with: Array("RIFF".utf8)) && starts(with: Array("WEBP".utf8), at: 8) {
            self = .webp
        } else if starts(with: [0x49, 0x49, 0x2A, 0x00]) || starts(with: [0x4D, 0x4D, 0x00, 0x2A])
                    || starts(with: [0x49, 0x49, 0x2B, 0x00]) || starts(with: [0x4D, 0x4D, 0x00, 0x2B]) {
            // Classic TIFF and BigTIFF, both byte orders.
            self = .tiff
        } else if Self.looksLikeBMP(head) {
            self = .bmp
        } else {
            self = .unknown
        }
    }

    /// "BM" alone is two printable bytes that text often starts with; the DIB header size
    /// at offset 14 takes one of a few fixed values in every BMP variant.
    private static func looksLikeBMP(_ head: [UInt8]) -> Bool {
        guard head.count >= 18, head[0] == 0x42, head[1] == 0x4D else { return false }
        let dibHeaderSize = UInt32(head[14]) | UInt32(head[15]) << 8 | UInt32(head[16]) << 16 | UInt32(head[17]) << 24
        return [12, 40, 52, 56, 64, 108, 124].contains(dibHeaderSize)
    }
}
