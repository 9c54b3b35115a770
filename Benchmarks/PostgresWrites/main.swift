// Measures ClipdDatabase's batched write path on one server. Each batch is what the daemon
// writes per transaction: records, 512-d image and caption embeddings, 5 tags per record and the
// consumer offsets.
//
// --mode layouts (default): the vector layout of migrations 0001–0004 ("old": HNSW on image and
// caption vectors, m = 16, ef_construction = 64, ef_search ≥ 40) against the current migrations
// ("new": HNSW on image vectors only, m = 6, ef_construction = 24, ef_search ≥ 200) and the
// current migrations with the caption index requested ("new+text"), each in its own scratch
// database on the same server. Batches alternate between the layouts (the order flips every
// batch), so drift (autovacuum, other load on the machine) hits all of them equally. Vectors come
// from a seeded Gaussian mixture shaped like CLIP embeddings (see `Mixture`). After the writes,
// recall@10 of `clipd_nearest` against exact search over the stored vectors, for held-out queries.
//
// --mode methods: COPY through staging vs multi-row INSERT on the current layout (random vectors).
//
//   PostgresWritesBench URL [--mode layouts|methods] [--rows N] [--batch B] [--dim D]
//                           [--queries Q] [--layouts old,new,new+text] [--label NAME]
import Foundation
import Logging
import Postgres
import Storage

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1]) else { return fallback }
    return value
}
func stringOption(_ name: String, _ fallback: String) -> String {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return fallback }
    return arguments[index + 1]
}
guard let adminURL = arguments.first, adminURL.hasPrefix("postgres") else {
    FileHandle.standardError.write("usage: PostgresWritesBench postgres://… [--mode layouts|methods] [--rows N] [--batch B] [--dim D] [--queries Q] [--layouts old,new,new+text] [--label NAME]\n".data(using: .utf8)!)
    exit(2)
}
let mode = stringOption("--mode", "layouts")
let batchSize = option("--batch", 64)
let dimension = option("--dim", 512)
let label = stringOption("--label", "server")
let migrationsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Schemas/postgres")

var logger = Logger(label: "bench") { StreamLogHandler.standardError(label: $0) }
logger.logLevel = .warning
let quick = RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(100))
let clock = ContinuousClock()

let admin = try await PostgresConnection.connect(configuration: PostgresConfiguration(url: adminURL, reconnect: quick), logger: logger)
var scratchDatabases: [String] = []

/// A scratch database migrated with the migrations up to `lastVersion` (all when nil).
@MainActor func scratchDatabase(lastVersion: Int?) async throws -> ClipdDatabase {
    let name = "clipd_bench_\(UInt32.random(in: 0...UInt32.max))"
    try await admin.query("CREATE DATABASE \(identifier: name)")
    scratchDatabases.append(name)
    var components = URLComponents(string: adminURL)!
    components.path = "/" + name
    let connection = try await PostgresConnection.connect(configuration: PostgresConfiguration(url: components.string!, reconnect: quick), logger: logger)
    let all = try PostgresMigrator(directory: migrationsDirectory, logger: logger).migrations
    try await PostgresMigrator(migrations: all.filter { $0.version <= (lastVersion ?? Int.max) }, logger: logger).migrate(on: connection)
    return ClipdDatabase(connection: connection)
}

func row(prefix: String, index: Int, model: Int64, image: [Float], text: [Float]) -> (StoredRecord, StoredEmbedding, [StoredTag]) {
    let id = "\(prefix)-\(index)"
    let record = StoredRecord(id: id, sourceTopic: "images", sourcePartition: Int32(index % 4), sourceOffset: Int64(index),
                              imageURL: "https://example.com/images/\(index).jpg", caption: "a caption for image \(index) with some words",
                              labelSet: "products", metadataJSON: "{\"n\": \(index)}")
    let embedding = StoredEmbedding(recordID: id, modelVersionID: model, image: image, text: text, imageTextSimilarity: 0.3)
    let tags = (1...5).map { StoredTag(recordID: id, modelVersionID: model, labelSet: "products", label: "label\($0)", score: 1 / Float($0 + 1), rank: Int32($0)) }
    return (record, embedding, tags)
}

func json(_ fields: [(String, Any)]) -> String {
    "{" + fields.map { key, value in
        let rendered: String
        switch value {
        case let text as String: rendered = "\"\(text)\""
        case let number as Double: rendered = String(format: "%.3f", number)
        default: rendered = "\(value)"
        }
        return "\"\(key)\":\(rendered)"
    }.joined(separator: ",") + "}"
}

/// Unit vectors shaped like CLIP embeddings, from a seeded generator: a shared mean direction
/// (CLIP vectors are not centred), 100 topics × 10 subtopics, and per-item noise whose variance
/// falls off as 1/i over i = 1…d random directions (a power-law spectrum, low intrinsic dimension
/// like real embeddings). Random pairs have cosine ≈ 0.2, nearest neighbours ≈ 0.9. Caption
/// vectors share the item's topic and subtopic with more noise.
struct Mixture {
    let dimension: Int
    var state: UInt64
    private var directions: [Float] = []  // dimension × dimension, row i scaled by spectrum[i]
    private var mean: [Float] = []
    private var topics: [[Float]] = []
    private var subtopics: [[Float]] = []

    init(dimension: Int, seed: UInt64) {
        self.dimension = dimension
        self.state = seed
        var weights = (1...dimension).map { 1 / Float($0).squareRoot() }
        let total = weights.reduce(0) { $0 + $1 * $1 }.squareRoot()
        weights = weights.map { $0 / total }
        directions = [Float](repeating: 0, count: dimension * dimension)
        for i in 0..<dimension {
            let direction = unit(gaussians(dimension))
            for j in 0..<dimension { directions[i * dimension + j] = direction[j] * weights[i] }
        }
        mean = unit(spectral())
        topics = (0..<100).map { _ in spectral() }
        subtopics = (0..<1000).map { _ in spectral() }
    }

    mutating func next() -> UInt64 {  // SplitMix64
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }

    mutating func gaussians(_ count: Int) -> [Float] {
        (0..<count).map { _ in
            let u = max(uniform(), 1e-7), v = uniform()
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
    }

    func unit(_ values: [Float]) -> [Float] {
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return values.map { $0 / norm }
    }

    /// A Gaussian vector with the power-law spectrum, expected norm 1.
    mutating func spectral() -> [Float] {
        let z = gaussians(dimension)
        var out = [Float](repeating: 0, count: dimension)
        directions.withUnsafeBufferPointer { rows in
            out.withUnsafeMutableBufferPointer { result in
                for i in 0..<dimension {
                    let scale = z[i]
                    let base = i * dimension
                    for j in 0..<dimension { result[j] += scale * rows[base + j] }
                }
            }
        }
        return out
    }

    /// One item: (image vector, caption vector).
    mutating func item() -> ([Float], [Float]) {
        let topic = Int(next() % 100)
        let subtopic = topic * 10 + Int(next() % 10)
        func make(_ noise: Float, _ sample: [Float]) -> [Float] {
            unit((0..<dimension).map { 0.7 * mean[$0] + topics[topic][$0] + 0.7 * subtopics[subtopic][$0] + noise * sample[$0] })
        }
        return (make(0.55, spectral()), make(0.8, spectral()))
    }
}

func exactNearest(_ query: [Float], in vectors: [[Float]], k: Int) -> [Int] {
    var best: [(Int, Float)] = []
    for (index, vector) in vectors.enumerated() {
        var dot: Float = 0
        for j in 0..<query.count { dot += query[j] * vector[j] }
        if best.count < k || dot > best[best.count - 1].1 {
            best.append((index, dot))
            best.sort { $0.1 > $1.1 }
            if best.count > k { best.removeLast() }
        }
    }
    return best.map(\.0)
}

switch mode {
case "methods": try await compareMethods()
default: try await compareLayouts()
}

for name in scratchDatabases { try await admin.query("DROP DATABASE \(identifier: name) WITH (FORCE)") }
await admin.close()

// MARK: layouts

@MainActor func compareLayouts() async throws {
    let rows = option("--rows", 10240)
    let queryCount = option("--queries", 200)
    let wanted = stringOption("--layouts", "old,new,new+text").split(separator: ",").map(String.init)
    struct Layout {
        var name: String
        var database: ClipdDatabase
        var model: Int64
        var seconds: Double = 0
        var lateSeconds: Double = 0  // batches after three quarters of the rows
        var replaySeconds: Double = 0
    }
    var layouts: [Layout] = []
    for name in wanted {
        let database = try await scratchDatabase(lastVersion: name == "old" ? 4 : nil)
        let model = try await database.registerModelVersion(name: "bench", architecture: "ViT-B/32", embeddingDimension: dimension)
        if name == "new+text" {
            try await database.connection.query("UPDATE model_versions SET index_text_embeddings = true WHERE id = \(model)")
        }
        layouts.append(Layout(name: name, database: database, model: model))
    }
    let backend = try await layouts[0].database.vectorBackend()

    var mixture = Mixture(dimension: dimension, seed: 20261129)
    var images: [[Float]] = [], texts: [[Float]] = []
    for _ in 0..<(rows + queryCount) {
        let (image, text) = mixture.item()
        images.append(image)
        texts.append(text)
    }
    func batch(_ layout: Layout, start: Int, count: Int) -> WriteBatch {
        var batch = WriteBatch()
        for index in start..<(start + count) {
            let (record, embedding, tags) = row(prefix: "r", index: index, model: layout.model, image: images[index], text: texts[index])
            batch.records.append(record)
            batch.embeddings.append(embedding)
            batch.tags += tags
        }
        batch.offsets = (0..<4).map { ConsumerOffset(group: "bench", topic: "images", partition: Int32($0), nextOffset: Int64(start + count)) }
        return batch
    }

    let batches = rows / batchSize
    for number in 0..<batches {
        let order = number % 2 == 0 ? Array(layouts.indices) : Array(layouts.indices.reversed())
        for index in order {
            let rowsBatch = batch(layouts[index], start: number * batchSize, count: batchSize)
            let began = clock.now
            try await layouts[index].database.write(rowsBatch)
            let elapsed = (clock.now - began).seconds
            layouts[index].seconds += elapsed
            if number >= batches * 3 / 4 { layouts[index].lateSeconds += elapsed }
        }
    }
    // Replays (the same batches again, as after a crash): the last 8 batches.
    let replayed = min(8, batches)
    for number in (batches - replayed)..<batches {
        for index in layouts.indices {
            let rowsBatch = batch(layouts[index], start: number * batchSize, count: batchSize)
            let began = clock.now
            try await layouts[index].database.write(rowsBatch)
            layouts[index].replaySeconds += (clock.now - began).seconds
        }
    }

    let stored = Array(images[0..<(batches * batchSize)])
    let storedTexts = Array(texts[0..<(batches * batchSize)])
    let queries = Array(images[rows..<(rows + queryCount)])
    let truth = queries.map { exactNearest($0, in: stored, k: 10) }
    let textTruth = queries.prefix(20).map { exactNearest($0, in: storedTexts, k: 10) }
    for layout in layouts {
        var hits = 0
        let began = clock.now
        for (query, expected) in zip(queries, truth) {
            let found = try await layout.database.nearest(to: query, modelVersionID: layout.model, limit: 10)
            hits += Set(found.map(\.recordID)).intersection(expected.map { "r-\($0)" }).count
        }
        let searchMs = (clock.now - began).seconds * 1000 / Double(queries.count)
        var textHits = 0
        for (query, expected) in zip(queries.prefix(20), textTruth) {
            let found = try await layout.database.nearest(to: query, modelVersionID: layout.model, limit: 10, against: .text)
            textHits += Set(found.map(\.recordID)).intersection(expected.map { "r-\($0)" }).count
        }
        let written = Double(batches * batchSize)
        print(json([("server", label), ("vectors", backend), ("layout", layout.name), ("batch", batchSize), ("dim", dimension),
                    ("rows", Int(written)), ("new_rows_per_s", Int(written / layout.seconds)),
                    ("last_quarter_rows_per_s", Int(written / 4 / max(layout.lateSeconds, 1e-9))),
                    ("replayed_rows_per_s", Int(Double(replayed * batchSize) / layout.replaySeconds)),
                    ("recall_at_10", Double(hits) / Double(queries.count * 10)), ("queries", queries.count),
                    ("search_ms", searchMs), ("caption_recall_at_10", Double(textHits) / Double(textTruth.count * 10))]))
    }
    if let old = layouts.first(where: { $0.name == "old" }), let new = layouts.first(where: { $0.name == "new" }) {
        print(json([("server", label), ("batch", batchSize), ("new_speedup_over_old", old.seconds / new.seconds)]))
    }
    for layout in layouts { await layout.database.connection.close() }
}

// MARK: methods

@MainActor func compareMethods() async throws {
    let rowsPerMethod = option("--rows", 4096)
    let database = try await scratchDatabase(lastVersion: nil)
    let backend = try await database.vectorBackend()
    let model = try await database.registerModelVersion(name: "bench", architecture: "ViT-B/32", embeddingDimension: dimension)
    func unitVector() -> [Float] {
        var values = (0..<dimension).map { _ in Float.random(in: -1...1) }
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for index in values.indices { values[index] /= norm }
        return values
    }
    func makeBatch(prefix: String, start: Int) -> WriteBatch {
        var batch = WriteBatch()
        for index in start..<(start + batchSize) {
            let (record, embedding, tags) = row(prefix: prefix, index: index, model: model, image: unitVector(), text: unitVector())
            batch.records.append(record)
            batch.embeddings.append(embedding)
            batch.tags += tags
        }
        batch.offsets = (0..<4).map { ConsumerOffset(group: "bench-\(prefix)", topic: "images", partition: Int32($0), nextOffset: Int64(start + batchSize)) }
        return batch
    }

    // Warm-up: one batch per method, not timed.
    for method in ClipdDatabase.WriteMethod.allCases {
        try await database.write(makeBatch(prefix: "warm-\(method.rawValue)", start: 0), method: method)
    }
    var seconds: [ClipdDatabase.WriteMethod: Double] = [:]
    var upsertSeconds: [ClipdDatabase.WriteMethod: Double] = [:]
    for start in stride(from: 0, to: rowsPerMethod, by: batchSize) {
        for method in (start / batchSize) % 2 == 0 ? ClipdDatabase.WriteMethod.allCases : ClipdDatabase.WriteMethod.allCases.reversed() {
            let batch = makeBatch(prefix: method.rawValue, start: start)
            let began = clock.now
            try await database.write(batch, method: method)
            seconds[method, default: 0] += (clock.now - began).seconds
            // The same batch again: every row conflicts (a replay after a crash).
            let replayBegan = clock.now
            try await database.write(batch, method: method)
            upsertSeconds[method, default: 0] += (clock.now - replayBegan).seconds
        }
    }
    let rowsWritten = Double(rowsPerMethod / batchSize * batchSize)
    for method in ClipdDatabase.WriteMethod.allCases {
        print(json([("server", label), ("vectors", backend), ("method", method.rawValue), ("batch", batchSize), ("dim", dimension),
                    ("rows", Int(rowsWritten)), ("new_rows_per_s", Int(rowsWritten / seconds[method]!)),
                    ("replayed_rows_per_s", Int(rowsWritten / upsertSeconds[method]!))]))
    }
    print(json([("server", label), ("batch", batchSize),
                ("copy_speedup_over_insert", seconds[.multiRowInsert]! / seconds[.copyThroughStaging]!),
                ("copy_speedup_replay", upsertSeconds[.multiRowInsert]! / upsertSeconds[.copyThroughStaging]!)]))
    await database.connection.close()
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
