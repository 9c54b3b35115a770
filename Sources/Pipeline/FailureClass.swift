import Fetch
import ImageIO
import Records

/// Why a record could not be embedded, as stored in `failed_records.error_class` and the
/// dead-letter envelope's `error_class`: `<stage>.<reason>`, e.g. `record.invalid_json`,
/// `fetch.timeout`, `image.corrupt`, `store.rejected`. The one vocabulary of record failures,
/// from validation to the dead-letter topic; each stage's own error type supplies the reason.
public enum FailureClass: Hashable, Sendable, CustomStringConvertible {
    /// The message is not a valid record.
    case record(RecordValidationError.Kind)
    /// The image URL could not be fetched (after the fetcher's retries).
    case fetch(FetchError.Class)
    /// The fetched bytes are not an image clipd can decode and preprocess.
    case image(ImageIOError.Class)
    /// PostgreSQL refused the record's rows.
    case store(StoreProblem)
    /// A defect in clipd; the message says what.
    case `internal`

    /// Reasons a record's rows are refused by the database.
    public enum StoreProblem: String, Hashable, Sendable, CaseIterable {
        /// A permanent error on this record's rows (size limits, data exceptions, constraints).
        case rejected
    }

    /// The stored form, `stage.reason`.
    public var rawValue: String {
        switch self {
        case .record(let kind): return "record.\(kind.rawValue)"
        case .fetch(let reason): return "fetch.\(reason.rawValue)"
        case .image(let reason): return "image.\(reason.rawValue)"
        case .store(let reason): return "store.\(reason.rawValue)"
        case .internal: return "internal"
        }
    }

    public var description: String { rawValue }

    /// Every class clipd can store, in stage order (the README's list is checked against it).
    public static var allCases: [FailureClass] {
        RecordValidationError.Kind.allCases.map(FailureClass.record)
            + FetchError.Class.allCases.map(FailureClass.fetch)
            + ImageIOError.Class.allCases.map(FailureClass.image)
            + StoreProblem.allCases.map(FailureClass.store)
            + [.internal]
    }

    /// The class stored as `rawValue`, if clipd knows it.
    public init?(rawValue: String) {
        guard let found = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = found
    }
}

/// A per-record failure: its class and a message for people. Never stops the stream.
public struct PipelineFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let failureClass: FailureClass
    public let message: String
    /// The record's id when the failing stage knew it (the parser sets it for a record whose
    /// JSON parsed with a valid id, even when the record is refused).
    public var recordID: String?

    public init(_ failureClass: FailureClass, _ message: String, recordID: String? = nil) {
        self.failureClass = failureClass
        self.message = message
        self.recordID = recordID
    }

    public init(_ error: RecordValidationError) { self.init(.record(error.kind), error.description) }
    public init(_ error: FetchError) { self.init(.fetch(error.class), error.message) }
    public init(_ error: ImageIOError) { self.init(.image(error.errorClass), error.message) }

    /// The stored class string.
    public var errorClass: String { failureClass.rawValue }

    public var description: String { "\(failureClass): \(message)" }
}
