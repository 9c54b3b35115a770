import CImageCodecs

/// Packed RGB pixels -> baseline JFIF JPEG bytes, through libjpeg (the same library that
/// decodes), so synthetic images travel the daemon's real input path.
public enum JPEGEncoder {
    /// `rgb` holds `width * height * 3` bytes, rows packed, top row first. `quality` is
    /// libjpeg's 1...100 scale (4:2:0 chroma subsampling, as libjpeg's defaults).
    public static func encode(rgb: [UInt8], width: Int, height: Int, quality: Int = 90) throws -> [UInt8] {
        guard width > 0, height > 0, width <= 65_500, height <= 65_500 else {
            throw ImageIOError(.encodingFailed, "cannot encode a \(width)x\(height) image")
        }
        guard rgb.count == width * height * 3 else {
            throw ImageIOError(.encodingFailed, "expected \(width * height * 3) RGB bytes for \(width)x\(height), got \(rgb.count)")
        }
        guard (1...100).contains(quality) else {
            throw ImageIOError(.encodingFailed, "JPEG quality must be within 1...100, got \(quality)")
        }
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: Int(CIC_MESSAGE_CAPACITY))
        let status = rgb.withUnsafeBufferPointer {
            cic_jpeg_encode_rgb($0.baseAddress, UInt32(width), UInt32(height), Int32(quality), &output, &size, &message)
        }
        guard status == CIC_OK, let output else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageIOError(.encodingFailed, text.isEmpty ? "libjpeg could not encode the image" : text)
        }
        defer { cic_free_encoded(output) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }
}
