/// The one error type of ImageIO: what failed, as a machine-readable class, and why.
///
/// None of these is worth retrying with the same bytes: decoding is deterministic.
/// (Fetch failures, which can be retried, belong to the fetcher.)
public struct ImageIOError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Class: String, Sendable, CaseIterable {
        /// The data ends before the image does.
        case truncated
        /// Not an image we recognise, or an image whose data is damaged.
        case corrupt
        /// More pixels than the configured limit, or sides more than `maxAspectRatio` apart
        /// (both checked from the header, before decoding).
        case tooLarge = "too_large"
        /// A recognised image format that clipd does not decode (BMP, TIFF, HEIF, AVIF, ...).
        case unsupportedFormat = "unsupported_format"
        /// Zero bytes.
        case empty
        /// Encoding pixels as an image failed (invalid size or an encoder error).
        case encodingFailed = "encoding_failed"
    }

    public let errorClass: Class
    public let message: String

    public init(_ errorClass: Class, _ message: String) {
        self.errorClass = errorClass
        self.message = message
    }

    /// Decoding the same bytes again gives the same result.
    public var isRetriable: Bool { false }

    public var description: String { "\(errorClass.rawValue): \(message)" }
}
