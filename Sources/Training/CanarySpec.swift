import Foundation

/// Which canary images carry which label, and the label set (stored in the database) they are
/// classified against.
public struct CanarySpec: Sendable, Equatable, Codable {
    public struct Image: Sendable, Equatable, Codable {
        public let imageURL: String
        public let label: String
        enum CodingKeys: String, CodingKey { case imageURL = "image_url", label }
        public init(imageURL: String, label: String) {
            self.imageURL = imageURL
            self.label = label
        }
    }
    public let labelSet: String
    public let images: [Image]
    enum CodingKeys: String, CodingKey { case labelSet = "label_set", images }

    public init(labelSet: String, images: [Image]) {
        self.labelSet = labelSet
        self.images = images
    }

    /// Parses `{"label_set": "...", "images": [{"image_url": "...", "label": "..."}, …]}`.
    public init(json: Data) throws {
        do {
            self = try JSONDecoder().decode(CanarySpec.self, from: json)
        } catch {
            throw TrainingError(.canary, "canary file is not {\"label_set\": NAME, \"images\": [{\"image_url\": URL, \"label\": LABEL}, …]}: \(error)")
        }
        guard !labelSet.isEmpty, !images.isEmpty else { throw TrainingError(.canary, "canary file needs a label_set and at least one image") }
    }
}
