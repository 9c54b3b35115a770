import Foundation
import Postgres
import Storage
import TestSupport
import Testing

/// Search quality and stored precision of the vector layout (migration 0005): HNSW on image
/// vectors only (m = 6), caption index on request, exact scan on real[].
@Suite("vector storage and indexes", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL / CLIPD_TEST_PGVECTOR_DATABASE_URL (Deploy/dev/test.sh does)"))
struct VectorIndexTests {
    /// Deterministic clustered unit vectors: 30 Gaussian clusters around random centres, with a
    /// shared offset (embeddings are not centred), from a seeded SplitMix64.
    struct Clusters {
        var state: UInt64
        let dimension: Int
        var centres: [[Float]] = []

        init(dimension: Int, seed: UInt64, clusters: Int = 30) {
            self.dimension = dimension
            self.state = seed
            let shared = gaussians(scale: 0.5)
            centres = (0..<clusters).map { _ in zip(gaussians(scale: 1), shared).map { $0 + $1 } }
        }

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func gaussians(scale: Float) -> [Float] {
            (0..<dimension).map { _ in
                let u = max(Float(next() >> 40) / Float(1 << 24), 1e-7), v = Float(next() >> 40) / Float(1 << 24)
                return scale * (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
            }
        }

        mutating func vector() -> [Float] {
            let centre = centres[Int(next() % UInt64(centres.count))]
            let values = zip(centre, gaussians(scale: 0.6)).map { $0 + $1 }
            let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return values.map { $0 / norm }
        }
    }

    static func exactNearest(_ query: [Float], in vectors: [[Float]], k: Int) -> [Int] {
        // Cosine in double precision, as clipd_cosine_similarity computes it.
        func norm(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let scored = vectors.enumerated().map { index, vector in
            (index, zip(query, vector).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / (norm(query) * norm(vector)))
        }
        return scored.sorted { $0.1 > $1.1 }.prefix(k).map(\.0)
    }

    @Test("clipd_nearest finds the exact top 10 on real[] and ≥ 0.9 of it with pgvector's HNSW", arguments: TestServer.allCases)
    func recallOnClusteredVectors(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let dimension = 128
            let model = try await database.registerModelVersion(name: "recall", architecture: "ViT-B/32", embeddingDimension: dimension)
            var clusters = Clusters(dimension: dimension, seed: 12)
            let stored = (0..<3000).map { _ in clusters.vector() }
            let queries = (0..<40).map { _ in clusters.vector() }
            for start in stride(from: 0, to: stored.count, by: 250) {
                var batch = WriteBatch()
                for index in start..<min(start + 250, stored.count) {
                    batch.records.append(StoredRecord(id: "v\(index)", imageURL: "https://example.com/\(index).jpg"))
                    batch.embeddings.append(StoredEmbedding(recordID: "v\(index)", modelVersionID: model, image: stored[index]))
                }
                try await database.write(batch)
            }
            var hits = 0
            for query in queries {
                let expected = Self.exactNearest(query, in: stored, k: 10).map { "v\($0)" }
                let found = try await database.nearest(to: query, modelVersionID: model, limit: 10)
                #expect(found.count == 10)
                if server == .plain {
                    #expect(found.map(\.recordID) == expected)  // exact scan: the true top 10, in order
                }
                hits += Set(found.map(\.recordID)).intersection(expected).count
            }
            let recall = Double(hits) / Double(queries.count * 10)
            #expect(recall >= (server == .plain ? 1.0 : 0.9), "recall@10 = \(recall)")

            if server == .pgvector {
                // The search above went through the version's HNSW index, not an exact scan.
                try await connection.withTransaction { transaction in
                    let literal = "[" + queries[0].map { String($0) }.joined(separator: ",") + "]"
                    let explain: String = """
                        SELECT record_id FROM embeddings WHERE model_version_id = \(model)
                         ORDER BY image_embedding::vector(\(dimension)) <=> '\(literal)'::vector(\(dimension)) LIMIT 10
                        """
                    try await transaction.query("""
                        CREATE FUNCTION pg_temp.plan_of(statement text) RETURNS SETOF text LANGUAGE plpgsql AS
                        $$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN ' || statement; END $$
                        """)
                    try await transaction.query("SET LOCAL enable_seqscan = off")
                    let plan = try await transaction.query("SELECT pg_temp.plan_of(\(explain))")
                    let text = try plan.map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
                    #expect(text.contains("embeddings_image_embedding_hnsw_v\(model)"), "plan: \(text)")
                }
            }
        }
    }

    @Test("vectors round-trip at the stored type's precision (float4: exactly); unchanged replays keep the row", arguments: TestServer.allCases, ClipdDatabase.WriteMethod.allCases)
    func precisionRoundTrip(server: TestServer, method: ClipdDatabase.WriteMethod) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let dimension = 512
            let model = try await database.registerModelVersion(name: "precision", architecture: "ViT-B/32", embeddingDimension: dimension)
            // Values that neither float16 nor a decimal round trip with few digits would keep.
            var clusters = Clusters(dimension: dimension, seed: 99)
            var batch = WriteBatch()
            for index in 0..<20 {
                var image = clusters.vector()
                image[0] = 1.0 / 3.0
                image[1] = -Float.leastNormalMagnitude * 3
                image[2] = 65_519.996
                image[3] = Float(bitPattern: 0x3F80_0001)  // the float after 1
                batch.records.append(StoredRecord(id: "p\(index)", imageURL: "https://example.com/\(index).jpg"))
                batch.embeddings.append(StoredEmbedding(recordID: "p\(index)", modelVersionID: model, image: image,
                                                        text: index % 2 == 0 ? clusters.vector() : nil, imageTextSimilarity: 0.123_456_7))
            }
            try await database.write(batch, method: method)
            for embedding in batch.embeddings {
                let stored = try #require(try await database.embedding(recordID: embedding.recordID, modelVersionID: model))
                #expect(stored.image.map(\.bitPattern) == embedding.image.map(\.bitPattern))
                #expect(stored.text?.map(\.bitPattern) == embedding.text?.map(\.bitPattern))
                #expect(stored.imageTextSimilarity == embedding.imageTextSimilarity)
            }

            // Replaying the same batch leaves the rows as they are (no new row version, so no
            // second entry in the HNSW graph); a replay with changed vectors updates them.
            let versions = try await connection.query("SELECT record_id, xmin::text FROM embeddings ORDER BY record_id")
                .map { try "\($0.decode(String.self, at: 0))=\($0.decode(String.self, at: 1))" }
            try await database.write(batch, method: method)
            let after = try await connection.query("SELECT record_id, xmin::text FROM embeddings ORDER BY record_id")
                .map { try "\($0.decode(String.self, at: 0))=\($0.decode(String.self, at: 1))" }
            #expect(after == versions)
            var changed = batch
            changed.embeddings[3].image[5] += 0.25
            changed.embeddings[4].text = nil
            changed.embeddings[6].imageTextSimilarity = 0.5
            try await database.write(changed, method: method)
            for index in [3, 4, 6] {
                #expect(try await database.embedding(recordID: "p\(index)", modelVersionID: model) == changed.embeddings[index])
            }
        }
    }

    @Test("a new version indexes image vectors only; index_text_embeddings adds and drops the caption index", arguments: TestServer.allCases)
    func captionIndexOnRequest(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let model = try await database.registerModelVersion(name: "captions", architecture: "ViT-B/32", embeddingDimension: 8)
            func indexes() async throws -> [String] {
                try await connection.query("""
                    SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings' AND indexname LIKE '%hnsw%' ORDER BY indexname
                    """).map { try $0.decode(String.self, at: 0) }
            }
            let expectedImage = server == .pgvector ? ["embeddings_image_embedding_hnsw_v\(model)"] : []
            #expect(try await indexes() == expectedImage)
            let parameters = try await connection.query("""
                SELECT array_to_string(c.reloptions, ',') FROM pg_class c WHERE c.relname = \("embeddings_image_embedding_hnsw_v\(model)")
                """).map { try $0.decode(String.self, at: 0) }
            #expect(parameters == (server == .pgvector ? ["m=6,ef_construction=24"] : []))

            try await database.write(StorageTests.batch(modelVersionID: model, count: 40, prefix: "c"))
            try await connection.query("UPDATE model_versions SET index_text_embeddings = true WHERE id = \(model)")
            let expectedBoth = server == .pgvector ? expectedImage + ["embeddings_text_embedding_hnsw_v\(model)"] : []
            #expect(try await indexes() == expectedBoth.sorted())
            // Caption search gives the same answer with and without its index.
            let withIndex = try await database.nearest(to: StorageTests.vector(11), modelVersionID: model, limit: 1, against: .text)
            try await connection.query("UPDATE model_versions SET index_text_embeddings = false WHERE id = \(model)")
            #expect(try await indexes() == expectedImage)
            let withoutIndex = try await database.nearest(to: StorageTests.vector(11), modelVersionID: model, limit: 3, against: .text)
            #expect(withIndex.map(\.recordID) == ["c-10"])  // record 10's caption vector is vector(11)
            #expect(withoutIndex.first?.recordID == "c-10")
        }
    }
}
