/// One Kafka message value: an image to embed and tag, with optional caption and metadata.
/// The wire format is `Schemas/kafka/record.schema.json`; build one with `RecordValidator`.
public struct Record: Sendable, Hashable, Codable {
    public var id: String?
    public var imageURL: String
    public var caption: String?
    public var labelSet: String?
    public var metadata: [String: JSONValue]?

    public init(
        id: String? = nil, imageURL: String, caption: String? = nil,
        labelSet: String? = nil, metadata: [String: JSONValue]? = nil
    ) {
        self.id = id
        self.imageURL = imageURL
        self.caption = caption
        self.labelSet = labelSet
        self.metadata = metadata
    }

    enum CodingKeys: String, CodingKey {
        case id
        case imageURL = "image_url"
        case caption
        case labelSet = "label_set"
        case metadata
    }

    /// The image URL's scheme, lower-cased (`http`, `https` or `file`).
    public var imageURLScheme: String {
        String(imageURL.prefix { $0 != ":" }).lowercased()
    }
}
