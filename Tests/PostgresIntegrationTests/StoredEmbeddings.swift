import Postgres
import Storage

/// Reading an embedding row back, for checking what a write stored.
extension ClipdDatabase {
    func embedding(recordID: String, modelVersionID: Int64) async throws -> StoredEmbedding? {
        guard let row = try await connection.query("""
            SELECT image_embedding::real[], text_embedding::real[], image_text_similarity
              FROM embeddings WHERE record_id = \(recordID) AND model_version_id = \(modelVersionID)
            """).first else { return nil }
        return StoredEmbedding(recordID: recordID, modelVersionID: modelVersionID,
                               image: try row.decode([Float].self, at: 0), text: try row.decode([Float]?.self, at: 1),
                               imageTextSimilarity: try row.decode(Float?.self, at: 2))
    }
}
