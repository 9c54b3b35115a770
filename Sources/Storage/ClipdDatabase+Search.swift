import Foundation
import Postgres

/// Nearest-neighbour search over `embeddings` (`clipd_nearest`: with pgvector, the version's HNSW
/// index on image vectors, and on caption vectors when `index_text_embeddings` asked for one, else
/// an exact scan; an exact scan over real[] otherwise).
extension ClipdDatabase {
    public enum EmbeddingKind: String, Sendable { case image, text }

    public struct SearchHit: Sendable, Equatable {
        public var recordID: String
        /// Cosine distance, 1 − cosine similarity.
        public var distance: Double
        public var imageURL: String?
        public var caption: String?
    }

    /// The `limit` records whose image (or caption) embedding of `modelVersionID` is nearest to
    /// `query`, best first, with their image URL and caption.
    public func nearest(to query: [Float], modelVersionID: Int64, limit: Int, against: EmbeddingKind = .image) async throws -> [SearchHit] {
        try await connection.query("""
            SELECT n.record_id, n.distance, r.image_url, r.caption
              FROM clipd_nearest(\(query), \(modelVersionID), \(Int32(limit)), \(against.rawValue)) n
              LEFT JOIN records r ON r.id = n.record_id
             ORDER BY n.distance, n.record_id
            """).map {
            SearchHit(recordID: try $0.decode(String.self, at: 0), distance: try $0.decode(Double.self, at: 1),
                      imageURL: try $0.decode(String?.self, at: 2), caption: try $0.decode(String?.self, at: 3))
        }
    }
}
