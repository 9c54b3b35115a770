/// What went wrong while building or using a tokenizer.
///
/// Tokenizing text never fails (any input yields ids); only loading a vocabulary can.
public struct CLIPTokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// The bundled vocabulary resource is missing from the build.
        case vocabularyResourceMissing
        /// The vocabulary bytes are not a valid gzip stream.
        case vocabularyNotGzip
        /// The vocabulary text does not have CLIP's shape (merge lines, UTF-8).
        case vocabularyMalformed
    }

    public let code: Code
    public let message: String
    /// A vocabulary problem is a packaging or input problem: retrying does not help.
    public var isRetriable: Bool { false }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
