// Measures the two batched write paths of ClipdDatabase side by side on one server:
// multi-row INSERT … ON CONFLICT versus COPY into temp tables + INSERT … SELECT … ON CONFLICT.
// Each batch is what the daemon writes per transaction: records, 512-d image and text
// embeddings, 5 tags per record and the consumer offsets. Methods alternate batch by batch so
// drift (autovacuum, cache, other load) hits both equally.
//
//   PostgresWritesBench URL [--rows N] [--batch B] [--dim D] [--label NAME]
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
    FileHandle.standardError.write("usage: PostgresWritesBench postgres://… [--rows N] [--batch B] [--dim D] [--label NAME]\n".data(using: .utf8)!)
    exit(2)
}
let rowsPerMethod = option("--rows", 4096)
let batchSize = option("--batch", 64)
let dimension = option("--dim", 512)
let label = stringOption("--label", "server")
let migrations = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Schemas/postgres")

var logger = Logger(label: "bench") { StreamLogHandler.standardError(label: $0) }
logger.logLevel = .warning
let quick = RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(100))

let admin = try await PostgresConnection.connect(configuration: PostgresConfiguration(url: adminURL, reconnect: quick), logger: logger)
let databaseName = "clipd_bench_\(UInt32.random(in: 0...UInt32.max))"
try await admin.query("CREATE DATABASE \(identifier: databaseName)")
var components = URLComponents(string: adminURL)!
components.path = "/" + databaseName
let connection = try await PostgresConnection.connect(configuration: PostgresConfiguration(url: components.string!, reconnect: quick), logger: logger)
try await PostgresMigrator(directory: migrations, logger: logger).migrate(on: connection)
let database = ClipdDatabase(connection: connection)
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
        let id = "\(prefix)-\(index)"
        batch.records.append(StoredRecord(id: id, sourceTopic: "images", sourcePartition: Int32(index % 4), sourceOffset: Int64(index),
                                          imageURL: "https://example.com/images/\(index).jpg", caption: "a caption for image \(index) with some words",
                                          labelSet: "products", metadataJSON: "{\"n\": \(index)}"))
        batch.embeddings.append(StoredEmbedding(recordID: id, modelVersionID: model, image: unitVector(), text: unitVector(), imageTextSimilarity: 0.3))
        for rank in 1...5 {
            batch.tags.append(StoredTag(recordID: id, modelVersionID: model, labelSet: "products", label: "label\(rank)", score: 1 / Float(rank + 1), rank: Int32(rank)))
        }
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
let clock = ContinuousClock()
for start in stride(from: 0, to: rowsPerMethod, by: batchSize) {
    for method in (start / batchSize) % 2 == 0 ? ClipdDatabase.WriteMethod.allCases : ClipdDatabase.WriteMethod.allCases.reversed() {
        let batch = makeBatch(prefix: method.rawValue, start: start)
        let began = clock.now
        try await database.write(batch, method: method)
        seconds[method, default: 0] += (clock.now - began).seconds
        // The same batch again: every row conflicts and is updated (a replay after a crash).
        let replayBegan = clock.now
        try await database.write(batch, method: method)
        upsertSeconds[method, default: 0] += (clock.now - replayBegan).seconds
    }
}

let rowsWritten = Double(rowsPerMethod / batchSize * batchSize)
var results: [String] = []
for method in ClipdDatabase.WriteMethod.allCases {
    let insertRate = rowsWritten / seconds[method]!
    let upsertRate = rowsWritten / upsertSeconds[method]!
    results.append("{\"server\":\"\(label)\",\"vectors\":\"\(backend)\",\"method\":\"\(method.rawValue)\",\"batch\":\(batchSize),\"dim\":\(dimension),\"rows\":\(Int(rowsWritten)),\"new_rows_per_s\":\(Int(insertRate)),\"replayed_rows_per_s\":\(Int(upsertRate))}")
}
let ratio = seconds[.multiRowInsert]! / seconds[.copyThroughStaging]!
results.append("{\"server\":\"\(label)\",\"batch\":\(batchSize),\"copy_speedup_over_insert\":\(String(format: "%.2f", ratio)),\"copy_speedup_replay\":\(String(format: "%.2f", upsertSeconds[.multiRowInsert]! / upsertSeconds[.copyThroughStaging]!))}")
results.forEach { print($0) }

await connection.close()
try await admin.query("DROP DATABASE \(identifier: databaseName) WITH (FORCE)")
await admin.close()

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
