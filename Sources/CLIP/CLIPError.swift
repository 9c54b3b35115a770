/// Everything that can go wrong in the CLIP module. Model files are user input: every
/// problem is reported with the file and, where it applies, the tensor it concerns.
public struct CLIPError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case fileNotFound = "file_not_found"
        case unreadable
        case corrupt
        case unsupportedFormat = "unsupported_format"
        case unsupportedArchitecture = "unsupported_architecture"
        case missingTensor = "missing_tensor"
        case shapeMismatch = "shape_mismatch"
        case unexpectedTensor = "unexpected_tensor"
        case invalidInput = "invalid_input"
    }
    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
