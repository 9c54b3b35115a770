import Foundation
import Postgres
import Storage
import TestSupport
import Testing
import Training

@Suite("clipd tables", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL / CLIPD_TEST_PGVECTOR_DATABASE_URL (Deploy/dev/test.sh does)"))
struct StorageTests {
    static let dimension = 8

    /// A deterministic unit vector per index, spread around a circle in the first two axes.
    static func vector(_ index: Int, dimension: Int = dimension) -> [Float] {
        var values = [Float](repeating: 0.01, count: dimension)
        let angle = Float(index) * 0.1
        values[0] = cos(angle)
        values[1] = sin(angle)
        values[2] = Float(index % 3) * 0.05
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return values.map { $0 / norm }
    }

    static func batch(modelVersionID: Int64, count: Int, prefix: String) -> WriteBatch {
        var batch = WriteBatch()
        for index in 0..<count {
            let id = "\(prefix)-\(index)"
            batch.records.append(StoredRecord(id: id, sourceTopic: "images", sourcePartition: Int32(index % 3), sourceOffset: Int64(index),
                                              imageURL: "https://example.com/\(index).jpg", caption: index % 4 == 0 ? nil : "caption \(index)",
                                              labelSet: "animals", metadataJSON: "{\"index\": \(index)}"))
            batch.embeddings.append(StoredEmbedding(recordID: id, modelVersionID: modelVersionID, image: vector(index),
                                                    text: index % 4 == 0 ? nil : vector(index + 1), imageTextSimilarity: index % 4 == 0 ? nil : 0.25))
            for (rank, label) in ["cat", "dog", "bird"].enumerated() {
                batch.tags.append(StoredTag(recordID: id, modelVersionID: modelVersionID, labelSet: "animals", label: label,
                                            score: [0.7, 0.2, 0.1][rank] - Float(index % 2) * 0.05 * Float(rank == 0 ? 1 : -1),
                                            rank: Int32(rank + 1)))
            }
        }
        batch.failures = [FailedRecord(sourceTopic: "images", sourcePartition: 0, sourceOffset: 999, errorClass: "record.invalid_json",
                                       errorMessage: "unexpected end of input", rawPayload: [0x7B, 0xFF, 0x00, 0x22])]
        batch.offsets = (0..<3).map { ConsumerOffset(group: "clipd", topic: "images", partition: Int32($0), nextOffset: Int64(count + $0)) }
        return batch
    }

    @Test("a batch of records, embeddings and tags is written and read back", arguments: TestServer.allCases, ClipdDatabase.WriteMethod.allCases)
    func writeAndReadBack(server: TestServer, method: ClipdDatabase.WriteMethod) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let model = try await database.registerModelVersion(name: "test-vit", architecture: "ViT-B/32", embeddingDimension: Self.dimension)
            try await database.activateModelVersion(id: model)
            let batch = Self.batch(modelVersionID: model, count: 40, prefix: method.rawValue)
            try await database.write(batch, method: method)
            // Writing the same batch again (a replay after a crash) changes nothing.
            try await database.write(batch, method: method)

            let counts = try await connection.query("""
                SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM embeddings), (SELECT count(*) FROM tags),
                       (SELECT count(*) FROM failed_records)
                """).first!
            #expect(try counts.decode(Int.self, at: 0) == 40)
            #expect(try counts.decode(Int.self, at: 1) == 40)
            #expect(try counts.decode(Int.self, at: 2) == 120)
            #expect(try counts.decode(Int.self, at: 3) == 1)

            for index in [0, 1, 17, 39] {
                let stored = try #require(try await database.embedding(recordID: "\(method.rawValue)-\(index)", modelVersionID: model))
                #expect(stored == batch.embeddings[index])  // Float values round-trip exactly
            }
            let record = try #require(try await connection.query("""
                SELECT image_url, caption, metadata->>'index', source_partition, source_offset FROM records WHERE id = \("\(method.rawValue)-5")
                """).first)
            #expect(try record.decode(String.self, at: 0) == "https://example.com/5.jpg")
            #expect(try record.decode(String?.self, at: 1) == "caption 5")
            #expect(try record.decode(String.self, at: 2) == "5")
            #expect(try record.decode(Int.self, at: 3) == 2)
            #expect(try record.decode(Int64.self, at: 4) == 5)

            let failure = try #require(try await connection.query("SELECT error_class, raw_payload FROM failed_records").first)
            #expect(try failure.decode(String.self, at: 0) == "record.invalid_json")
            #expect(try failure.decode(PostgresBytes.self, at: 1).bytes == [0x7B, 0xFF, 0x00, 0x22])
            #expect(try await database.consumerOffsets(group: "clipd", topic: "images") == [0: 40, 1: 41, 2: 42])

            // The one-SELECT questions.
            let tags = try await connection.query("SELECT label, rank FROM latest_tags WHERE record_id = \("\(method.rawValue)-3") ORDER BY rank")
            #expect(try tags.map { try $0.decode(String.self, at: 0) } == ["cat", "dog", "bird"])
            let tagged = try await connection.query("SELECT record_id FROM records_tagged('cat', 0.7)")
            #expect(tagged.count == 20)  // even indices score 0.7, odd 0.65
        }
    }

    @Test("a record repeated within a batch is stored once, as its last occurrence", arguments: [TestServer.plain], ClipdDatabase.WriteMethod.allCases)
    func repeatedRecordInBatch(server: TestServer, method: ClipdDatabase.WriteMethod) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let model = try await database.registerModelVersion(name: "dup", architecture: "ViT-B/32", embeddingDimension: Self.dimension)
            var batch = Self.batch(modelVersionID: model, count: 2, prefix: "dup")
            let second = Self.batch(modelVersionID: model, count: 1, prefix: "dup")
            batch.records.append(StoredRecord(id: "dup-0", imageURL: "https://example.com/replaced.jpg", caption: "replaced"))
            batch.embeddings.append(StoredEmbedding(recordID: "dup-0", modelVersionID: model, image: Self.vector(9)))
            batch.tags += second.tags.map { StoredTag(recordID: $0.recordID, modelVersionID: $0.modelVersionID, labelSet: $0.labelSet,
                                                      label: $0.label, score: 0.5, rank: $0.rank) }
            try await database.write(batch, method: method)
            let row = try #require(try await connection.query("SELECT image_url, caption FROM records WHERE id = 'dup-0'").first)
            #expect(try row.decode(String.self, at: 0) == "https://example.com/replaced.jpg")
            #expect(try await database.embedding(recordID: "dup-0", modelVersionID: model)?.image == Self.vector(9))
            let scores = try await connection.query("SELECT score FROM tags WHERE record_id = 'dup-0'").map { try $0.decode(Float.self, at: 0) }
            #expect(scores == [0.5, 0.5, 0.5])
        }
    }

    @Test("nearest-neighbour search returns the closest embeddings", arguments: TestServer.allCases)
    func nearestNeighbours(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let model = try await database.registerModelVersion(name: "nn", architecture: "ViT-B/32", embeddingDimension: Self.dimension)
            let other = try await database.registerModelVersion(name: "nn-other", architecture: "ViT-B/32", embeddingDimension: Self.dimension)
            try await database.write(Self.batch(modelVersionID: model, count: 60, prefix: "nn"))
            // Another model version's vectors sit exactly on the query and must not be returned.
            var decoys = Self.batch(modelVersionID: other, count: 5, prefix: "nn")
            decoys.embeddings = decoys.embeddings.map { StoredEmbedding(recordID: $0.recordID, modelVersionID: other, image: Self.vector(30)) }
            decoys.tags = []
            decoys.records = []
            decoys.failures = []
            try await database.write(decoys)

            let query = Self.vector(30)
            let exact = Self.batch(modelVersionID: model, count: 60, prefix: "nn").embeddings
                .map { ($0.recordID, 1 - zip($0.image, query).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }) }
                .sorted { $0.1 < $1.1 }
            let neighbours = try await database.nearest(to: query, modelVersionID: model, limit: 5)
            #expect(neighbours.map(\.recordID) == exact.prefix(5).map(\.0))
            #expect(abs(neighbours[0].distance) < 1e-5)
            for (found, expected) in zip(neighbours, exact) { #expect(abs(found.distance - expected.1) < 1e-5) }

            // More than pgvector's default ef_search (40) neighbours are still all returned, in order.
            let many = try await database.nearest(to: query, modelVersionID: model, limit: 55)
            #expect(many.map(\.recordID) == exact.prefix(55).map(\.0))

            let captions = try await database.nearest(to: Self.vector(31), modelVersionID: model, limit: 1, against: .text)
            #expect(captions.map(\.recordID) == ["nn-30"])  // record 30's caption vector is vector(31)

            if server == .pgvector {
                // The version's HNSW index serves the ordered scan once sorting is made unattractive.
                try await connection.withTransaction { transaction in
                    try await transaction.query("SET LOCAL enable_seqscan = off")
                    try await transaction.query("SET LOCAL enable_sort = off")
                    // Through the index, k beyond the default ef_search (40) still yields k rows.
                    let viaIndex = try await transaction.query("SELECT record_id FROM clipd_nearest(\(query), \(model), \(Int32(55)))")
                    #expect(try viaIndex.map { try $0.decode(String.self, at: 0) }.count == 55)
                    let plan = try await transaction.query(PostgresQuery(
                        "EXPLAIN SELECT record_id FROM embeddings WHERE model_version_id = 1 ORDER BY image_embedding::vector(8) <=> '[1,0,0,0,0,0,0,0]'::vector(8) LIMIT 5"))
                    let text = try plan.map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
                    #expect(text.contains("embeddings_image_embedding_hnsw_v1"), "plan: \(text)")
                }
            }
        }
    }

    @Test("captions with quotes, SQL, Unicode and 64 KB are stored verbatim", arguments: TestServer.allCases, ClipdDatabase.WriteMethod.allCases)
    func hostileTextVerbatim(server: TestServer, method: ClipdDatabase.WriteMethod) async throws {
        let longText = String((0..<(64 * 1024)).map { index -> Character in
            let alphabet = Array("abcdefghij klmnopqrstuvwxyz\t\n\\\"'é😀")
            return alphabet[index % alphabet.count]
        })
        let captions = [
            "it's a \"quoted\" caption",
            "'; DROP TABLE records; --",
            "Robert'); DROP TABLE records;--",
            "$1 $2 \\N \\. \\\\ tab\there newline\nthere cr\rend",
            "Ünïcödé: 日本語のキャプション, Ελληνικά, עברית, emoji 🚲👩‍👩‍👧 e\u{301}",
            longText,
        ]
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let records = captions.enumerated().map { StoredRecord(id: "hostile-\($0.offset) '\"", imageURL: "file:///tmp/x'y.jpg", caption: $0.element) }
            try await database.write(WriteBatch(records: records), method: method)
            for record in records {
                let stored = try await connection.query("SELECT caption, octet_length(caption) FROM records WHERE id = \(record.id)")
                #expect(stored.count == 1)
                let caption = try stored.first!.decode(String.self, at: 0)
                #expect(caption == record.caption, "caption of \(record.id) changed")
                #expect(try stored.first!.decode(Int.self, at: 1) == record.caption!.utf8.count)
            }
            #expect(try await connection.query("SELECT count(*) FROM records").first!.decode(Int.self, at: 0) == captions.count)
            // Search by the injection string finds exactly that row: it was a value, never SQL.
            let found = try await connection.query("SELECT id FROM records WHERE caption = \(captions[1])")
            #expect(try found.map { try $0.decode(String.self, at: 0) } == ["hostile-1 '\""])
        }
    }

    @Test("text containing NUL is rejected before it reaches the server", arguments: [TestServer.plain])
    func nulRejected(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            for method in ClipdDatabase.WriteMethod.allCases {
                await #expect {
                    try await database.write(WriteBatch(records: [StoredRecord(id: "nul", imageURL: "x", caption: "a\u{0}b")]), method: method)
                } throws: { ($0 as? PostgresError)?.kind == .invalidInput }
            }
            let count = try await connection.query("SELECT count(*) FROM records").first!.decode(Int.self, at: 0)
            #expect(count == 0)
            // A dead letter is always stored: NUL in its message is replaced, the payload kept exactly.
            try await database.write(WriteBatch(failures: [FailedRecord(recordID: "id\u{0}", sourceTopic: "images", sourcePartition: 0, sourceOffset: 5,
                                                                        errorClass: "record.invalid", errorMessage: "caption contains \u{0}",
                                                                        rawPayload: [0x61, 0x00, 0x62])]))
            let dead = try #require(try await connection.query("SELECT record_id, error_message, raw_payload FROM failed_records").first)
            #expect(try dead.decode(String.self, at: 0) == "id\u{FFFD}")
            #expect(try dead.decode(String.self, at: 1) == "caption contains \u{FFFD}")
            #expect(try dead.decode(PostgresBytes.self, at: 2).bytes == [0x61, 0x00, 0x62])
        }
    }

    @Test("label sets: put replaces, SQL edits bump the version and NOTIFY", arguments: [TestServer.plain])
    func labelSets(server: TestServer) async throws {
        try await onScratchDatabase(server) { scratch, connection in
            let database = ClipdDatabase(connection: connection)
            let listener = try await PostgresNotificationListener.start(configuration: quickConfiguration(scratch.url),
                                                                        channels: ["clipd_label_sets"], logger: testLogger)
            defer { listener.stop() }
            try await database.putLabelSet(name: "animals", templates: ["a photo of a {}."], labels: ["cat", "dog"])
            try await database.putLabelSet(name: "animals", templates: ["a photo of a {}.", "a drawing of a {}."], labels: ["dog", "bird", "cat"])
            var stored = try #require(try await database.labelSet(named: "animals"))
            #expect(stored.labels.map(\.name) == ["dog", "bird", "cat"])
            #expect(stored.labels.map(\.threshold) == [nil, nil, nil])
            #expect(stored.templates.count == 2)
            let versionAfterPut = stored.version

            try await connection.query("INSERT INTO labels (label_set, label, position) VALUES ('animals', 'fish', 4)")
            try await connection.query("UPDATE labels SET threshold = 0.25 WHERE label = 'bird'")  // its own transaction: one more bump
            stored = try #require(try await database.labelSet(named: "animals"))
            #expect(stored.labels.map(\.name) == ["dog", "bird", "cat", "fish"])
            #expect(stored.labels.map(\.threshold) == [nil, 0.25, nil, nil])
            #expect(Int(stored.version) == Int(versionAfterPut)! + 2)

            let collector = NotificationCollector(listener)
            let payloads = try await collector.waitFor(count: 4, seconds: 10).map(\.payload)
            #expect(payloads == ["animals", "animals", "animals", "animals"])  // one per transaction

            await #expect(throws: PostgresError.self) {
                try await connection.query("INSERT INTO label_sets (name, templates) VALUES ('bad', ARRAY['no placeholder'])")
            }
        }
    }

    @Test("model versions: at most one active, activation notifies; fine-tune runs are claimed once", arguments: [TestServer.plain])
    func modelVersionsAndFinetuneRuns(server: TestServer) async throws {
        try await onScratchDatabase(server) { scratch, connection in
            let database = ClipdDatabase(connection: connection)
            let listener = try await PostgresNotificationListener.start(configuration: quickConfiguration(scratch.url),
                                                                        channels: ["clipd_model_versions", "clipd_finetune_runs"], logger: testLogger)
            defer { listener.stop() }
            let collector = NotificationCollector(listener)
            #expect(try await database.activeModelVersion() == nil)
            let base = try await database.registerModelVersion(name: "base", architecture: "ViT-B/32", embeddingDimension: 512)
            let tuned = try await database.registerModelVersion(name: "tuned", architecture: "ViT-B/32", embeddingDimension: 512, parentID: base)
            try await database.activateModelVersion(id: base)
            try await database.activateModelVersion(id: tuned)
            let active = try #require(try await database.activeModelVersion())
            #expect(active.id == tuned && active.parentID == base && active.embeddingDimension == 512)
            await #expect(throws: PostgresError.self) {
                try await connection.query("UPDATE model_versions SET is_active = true WHERE id = \(base)")
            }
            await #expect(throws: PostgresError.self) { try await database.activateModelVersion(id: 999_999) }

            let first = try await database.scheduleFinetuneRun(parametersJSON: "{\"epochs\": 2}", baseVersionID: tuned).id
            let second = try await database.scheduleFinetuneRun(baseVersionID: tuned).id
            let claims = try await withThrowingTaskGroup(of: Int64?.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        let own = try await scratch.connect()
                        defer { Task { await own.close() } }
                        return try await ClipdDatabase(connection: own).claimFinetuneRun(worker: "worker-\(worker)")?.id
                    }
                }
                return try await group.reduce(into: [Int64]()) { if let id = $1 { $0.append(id) } }
            }
            #expect(claims.sorted() == [first, second])
            try await database.finish(runID: first, outcome: FinetuneOutcome(status: .finished, resultVersion: .init(id: tuned, name: "tuned"), resultsJSON: "{\"recall@1\": 0.5}"))
            let status = try await connection.query("SELECT status FROM finetune_runs WHERE id = \(first)").first!.decode(String.self, at: 0)
            #expect(status == "finished")

            let received = try await collector.waitFor(count: 4, seconds: 10)
            #expect(received.filter { $0.channel == "clipd_model_versions" }.map(\.payload) == [String(base), String(tuned)])
            #expect(received.filter { $0.channel == "clipd_finetune_runs" }.map(\.payload) == [String(first), String(second)])
        }
    }
}
