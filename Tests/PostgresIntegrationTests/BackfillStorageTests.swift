import Foundation
import Postgres
import Storage
import TestSupport
import Testing

/// Migration 0006 through `ClipdDatabase`: the backfill that activation starts, chunk claims
/// shared by workers, leases, settling, the search version cutover and retention.
@Suite("re-embedding backfill", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL / CLIPD_TEST_PGVECTOR_DATABASE_URL (Deploy/dev/test.sh does)"))
struct BackfillStorageTests {
    static let dimension = StorageTests.dimension

    /// Registers and activates a version whose embeddings (and tags) cover the batch's records.
    static func version(_ name: String, _ database: ClipdDatabase, records: Int, prefix: String = "r") async throws -> Int64 {
        let id = try await database.registerModelVersion(name: name, architecture: "test", embeddingDimension: dimension)
        try await database.activateModelVersion(id: id)
        try await database.write(StorageTests.batch(modelVersionID: id, count: records, prefix: prefix))
        return id
    }

    /// Claims, finishes and settles every chunk of the version's backfill as one worker would.
    static func complete(_ version: Int64, _ database: ClipdDatabase, chunkSize: Int = 1000) async throws -> [ClipdDatabase.BackfillSettlement] {
        try await database.planBackfill(modelVersionID: version, chunkSize: chunkSize)
        var settlements: [ClipdDatabase.BackfillSettlement] = []
        while let chunk = try await database.claimBackfillChunk(modelVersionID: version, worker: "w", leaseSeconds: 30) {
            #expect(try await database.backfillRecords(chunk, after: nil, limit: 10_000).isEmpty, "every record already has the version's embedding")
            try await database.finishBackfillChunk(chunk, worker: "w")
            settlements.append(try #require(try await database.settleBackfill(modelVersionID: version, threshold: 1)))
        }
        return settlements
    }

    @Test("chunks split the records once between workers; the search version switches once coverage is complete", arguments: TestServer.allCases)
    func sharedBackfillAndCutover(server: TestServer) async throws {
        try await onScratchDatabase(server) { scratch, connection in
            let database = ClipdDatabase(connection: connection)
            let v1 = try await Self.version("v1", database, records: 40)
            #expect(try await database.openBackfill() == .init(modelVersionID: v1, planned: false))
            let first = try await Self.complete(v1, database)
            #expect(first.map(\.startedServing) == [true])
            #expect(try await database.searchModelVersion()?.id == v1)

            // A second version: activation starts its backfill; search stays on v1 meanwhile.
            let v2 = try await database.registerModelVersion(name: "v2", architecture: "test", embeddingDimension: Self.dimension)
            try await database.activateModelVersion(id: v2)
            #expect(try await database.openBackfill() == .init(modelVersionID: v2, planned: false))
            #expect(try await database.searchModelVersion()?.id == v1)
            try await database.planBackfill(modelVersionID: v2, chunkSize: 7)
            try await database.planBackfill(modelVersionID: v2, chunkSize: 3)  // planned once: a no-op

            // Two workers on two connections claim concurrently: every chunk goes to exactly one.
            let other = try await scratch.connect()
            let databases = [database, ClipdDatabase(connection: other)]
            let claimed = try await withThrowingTaskGroup(of: [ClipdDatabase.BackfillChunk].self) { group in
                for (index, db) in databases.enumerated() {
                    group.addTask {
                        var mine: [ClipdDatabase.BackfillChunk] = []
                        while let chunk = try await db.claimBackfillChunk(modelVersionID: v2, worker: "w\(index)", leaseSeconds: 30) { mine.append(chunk) }
                        return mine
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(claimed.map(\.chunk).sorted() == Array(0..<6), "40 records in chunks of 7")
            var seen: [String] = []
            for chunk in claimed { seen += try await database.backfillRecords(chunk, after: nil, limit: 1000).map(\.id) }
            #expect(seen.sorted() == (0..<40).map { "r-\($0)" }.sorted(), "the chunks cover every record exactly once")

            // Embed all but one record, finish every chunk: the chunk with the gap is reopened.
            let embeddings = (0..<40).filter { $0 != 17 }.map { StoredEmbedding(recordID: "r-\($0)", modelVersionID: v2, image: StorageTests.vector($0)) }
            try await database.writeBackfill(modelVersionID: v2, embeddings: embeddings, tags: [], failures: [])
            for chunk in claimed {
                try await databases[chunk.chunk % 2 == 0 ? 0 : 1].finishBackfillChunk(chunk, worker: "w0")
                try await databases[chunk.chunk % 2 == 0 ? 0 : 1].finishBackfillChunk(chunk, worker: "w1")
            }
            #expect(try await database.settleBackfill(modelVersionID: v2, threshold: 1) == .init(status: "running", startedServing: false))
            #expect(try await database.searchModelVersion()?.id == v1, "not complete: search stays on v1")
            let reopened = try #require(try await database.claimBackfillChunk(modelVersionID: v2, worker: "w0", leaseSeconds: 30))
            #expect(try await database.backfillRecords(reopened, after: nil, limit: 100).map(\.id) == ["r-17"])
            #expect(try await database.claimBackfillChunk(modelVersionID: v2, worker: "w1", leaseSeconds: 30) == nil)

            // Its image cannot be loaded: recorded as a failure, which counts as covered.
            try await database.writeBackfill(modelVersionID: v2, embeddings: [], tags: [],
                                             failures: [.init(recordID: "r-17", errorClass: "fetch.not_found", message: "gone")])
            try await database.finishBackfillChunk(reopened, worker: "w0")
            #expect(try await database.settleBackfill(modelVersionID: v2, threshold: 1) == .init(status: "done", startedServing: true))
            #expect(try await database.settleBackfill(modelVersionID: v2, threshold: 1) == .init(status: "done", startedServing: false))
            #expect(try await database.searchModelVersion()?.id == v2)
            #expect(try await database.openBackfill() == nil)
            let coverage = try #require(try await database.versionCoverage().first { $0.modelVersionID == v2 })
            #expect(coverage.embedded == 39 && coverage.failed == 1 && coverage.total == 40 && coverage.covered == 40)
            #expect(coverage.fraction == 1 && coverage.etaSeconds == 0 && coverage.isSearchVersion && coverage.isActive)
            #expect(coverage.backfilled == 40)
            await other.close()
        }
    }

    @Test("latest_tags and the search version follow the cutover, not the activation", arguments: TestServer.allCases)
    func viewsFollowTheSearchVersion(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let v1 = try await Self.version("v1", database, records: 5)
            _ = try await Self.complete(v1, database)
            let v2 = try await database.registerModelVersion(name: "v2", architecture: "test", embeddingDimension: Self.dimension)
            try await database.activateModelVersion(id: v2)
            func tagVersions() async throws -> Set<Int64> {
                Set(try await connection.query("SELECT DISTINCT model_version_id FROM latest_tags").map { try $0.decode(Int64.self, at: 0) })
            }
            func searchView() async throws -> Int64? {
                try await connection.query("SELECT id FROM search_model_version").first?.decode(Int64.self, at: 0)
            }
            #expect(try await tagVersions() == [v1], "tags of the active but uncovered version are not served yet")
            #expect(try await searchView() == v1)
            try await database.write(StorageTests.batch(modelVersionID: v2, count: 5, prefix: "r"))
            #expect(try await tagVersions() == [v1])
            _ = try await Self.complete(v2, database)
            #expect(try await tagVersions() == [v2])
            #expect(try await searchView() == v2)
            // A threshold below 1 lets a version serve before its last chunk.
            let v3 = try await database.registerModelVersion(name: "v3", architecture: "test", embeddingDimension: Self.dimension)
            try await database.activateModelVersion(id: v3)
            try await database.planBackfill(modelVersionID: v3, chunkSize: 1)
            try await database.writeBackfill(modelVersionID: v3, embeddings: (0..<4).map { StoredEmbedding(recordID: "r-\($0)", modelVersionID: v3, image: StorageTests.vector($0)) },
                                             tags: [], failures: [])
            var chunks: [ClipdDatabase.BackfillChunk] = []
            for _ in 0..<4 { chunks.append(try #require(try await database.claimBackfillChunk(modelVersionID: v3, worker: "w", leaseSeconds: 30))) }
            for chunk in chunks.prefix(3) { try await database.finishBackfillChunk(chunk, worker: "w") }
            #expect(try await database.settleBackfill(modelVersionID: v3, threshold: 0.8)?.startedServing == false, "3 of 5 chunks")
            try await database.finishBackfillChunk(chunks[3], worker: "w")
            #expect(try await database.settleBackfill(modelVersionID: v3, threshold: 0.8)?.startedServing == true, "4 of 5 records")
            #expect(try await database.searchModelVersion()?.id == v3)
        }
    }

    @Test("a lapsed lease hands the chunk to another worker; the old holder can no longer extend or finish it", arguments: [TestServer.plain])
    func leases(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let v1 = try await Self.version("v1", database, records: 3)
            try await database.planBackfill(modelVersionID: v1, chunkSize: 100)
            let held = try #require(try await database.claimBackfillChunk(modelVersionID: v1, worker: "a", leaseSeconds: 0.3))
            #expect(try await database.claimBackfillChunk(modelVersionID: v1, worker: "b", leaseSeconds: 30) == nil)
            try await Task.sleep(for: .milliseconds(600))
            let taken = try #require(try await database.claimBackfillChunk(modelVersionID: v1, worker: "b", leaseSeconds: 30))
            #expect(taken == held)
            #expect(try await database.extendBackfillLease(held, worker: "a", leaseSeconds: 30) == false)
            try await database.finishBackfillChunk(held, worker: "a")
            let row = try #require(try await connection.query("SELECT status, claimed_by, attempts FROM model_backfill_chunks").first)
            let state = [try row.decode(String.self, at: 0), try row.decode(String.self, at: 1), String(try row.decode(Int.self, at: 2))]
            #expect(state == ["running", "b", "2"])
            // A graceful release makes it claimable at once.
            try await database.releaseBackfillChunk(taken, worker: "b")
            #expect(try await database.claimBackfillChunk(modelVersionID: v1, worker: "c", leaseSeconds: 30) == taken)
        }
    }

    @Test("retention keeps the last N activated versions' rows, never the active or search version", arguments: TestServer.allCases)
    func retention(server: TestServer) async throws {
        try await onScratchDatabase(server) { _, connection in
            let database = ClipdDatabase(connection: connection)
            var versions: [Int64] = []
            for name in ["v1", "v2", "v3"] {
                let id = try await Self.version(name, database, records: 4)
                _ = try await Self.complete(id, database)
                versions.append(id)
            }
            func rows(_ v: Int64) async throws -> Int {
                try await connection.query("SELECT (SELECT count(*) FROM embeddings WHERE model_version_id = \(v)) + (SELECT count(*) FROM tags WHERE model_version_id = \(v))")
                    .first!.decode(Int.self, at: 0)
            }
            #expect(try await database.pruneModelVersions(keep: 2) == [versions[0]])
            #expect(try await rows(versions[0]) == 0)
            #expect(try await rows(versions[1]) == 4 + 12)
            #expect(try await database.pruneModelVersions(keep: 2) == [])
            // v4 activated but not covered: v3 is still the search version and is kept even with keep = 1.
            let v4 = try await database.registerModelVersion(name: "v4", architecture: "test", embeddingDimension: Self.dimension)
            try await database.activateModelVersion(id: v4)
            #expect(try await database.pruneModelVersions(keep: 1) == [versions[1]])
            #expect(try await rows(versions[2]) == 16)
            #expect(try await database.searchModelVersion()?.id == versions[2])
        }
    }
}
