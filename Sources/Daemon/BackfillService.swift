import CLIP
import Executors
import Foundation
import Logging
import Metrics
import Pipeline
import Postgres
import ServiceLifecycle
import Storage
import Tensor
import ZeroShot

/// Re-embedding on activation: when a version becomes active, every stored record gets an
/// embedding and tags from it. All running daemons share the work through
/// `model_backfill_chunks` (claimed with `FOR UPDATE SKIP LOCKED` under a lease, see migration
/// 0006); a daemon killed mid-chunk leaves it to whoever claims it after the lease lapses.
///
/// Priority: images are re-fetched through the daemon's `ImageLoader`, and each small batch is
/// encoded on the pipeline's own encoder thread (FIFO, width 1), so a live batch waits for at most
/// one backfill batch; before each one the service also waits (up to `maxYield`) while the live
/// pipeline holds a full batch's worth of records in flight.
struct BackfillService: Service {
    struct Settings: Sendable {
        var batchSize: Int
        var chunkSize: Int
        var leaseSeconds: Double
        var coverageThreshold: Double
        var keepVersions: Int
        var defaultLabelSet: String
        var topK: Int
        /// The live pipeline's batch size: in-flight records at or above it mean live work is queued.
        var liveBatchSize: Int
        var idlePoll: Duration = .milliseconds(500)
        var maxYield: Duration = .seconds(2)
        var metricsInterval: Duration = .seconds(2)
    }

    let configuration: PostgresConfiguration
    let pipeline: StreamPipeline
    let loader: ImageLoader
    let tokenize: @Sendable (String) -> [Int32]
    let settings: Settings
    let worker: String
    let logger: Logger
    let metrics = BackfillMetrics()

    func run() async throws {
        let connection = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        let database = ClipdDatabase(connection: connection)
        var classifiers: [String: ZeroShotClassifier] = [:]
        var lastMetrics: ContinuousClock.Instant?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                if lastMetrics.map({ ContinuousClock.now - $0 >= settings.metricsInterval }) ?? true {
                    metrics.publish(try await database.versionCoverage())
                    lastMetrics = .now
                }
                guard let open = try await database.openBackfill() else {
                    await pause(settings.idlePoll)
                    continue
                }
                // The version the daemon runs or is about to switch to (a swap applies at the next
                // live batch, which an idle topic may not bring soon).
                let model = pipeline.latestModel
                // Until this daemon has switched to the activated version it cannot help.
                guard open.modelVersionID == model.version.id else {
                    await pause(settings.idlePoll)
                    continue
                }
                if !open.planned { try await database.planBackfill(modelVersionID: open.modelVersionID, chunkSize: settings.chunkSize) }
                guard let chunk = try await database.claimBackfillChunk(modelVersionID: open.modelVersionID, worker: worker,
                                                                        leaseSeconds: settings.leaseSeconds) else {
                    // Every chunk is done or held by another daemon.
                    try await settle(open.modelVersionID, database: database)
                    await pause(settings.idlePoll)
                    continue
                }
                switch try await process(chunk, model: model, database: database, classifiers: &classifiers) {
                case .finished:
                    try await database.finishBackfillChunk(chunk, worker: worker)
                    try await settle(open.modelVersionID, database: database)
                case .interrupted:
                    try await database.releaseBackfillChunk(chunk, worker: worker)
                case .lost:
                    logger.warning("backfill chunk lease lost to another worker", metadata: ["version": "\(chunk.modelVersionID)", "chunk": "\(chunk.chunk)"])
                }
            } catch {
                logger.warning("backfill step failed; retrying", metadata: ["error": "\(error)"])
                await pause(.seconds(1))
            }
        }
        await connection.close()
    }

    private func pause(_ duration: Duration) async {
        let end = ContinuousClock.now + duration
        while ContinuousClock.now < end && !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: min(.milliseconds(100), end - .now))
        }
    }

    private func settle(_ version: Int64, database: ClipdDatabase) async throws {
        guard let settled = try await database.settleBackfill(modelVersionID: version, threshold: settings.coverageThreshold) else { return }
        if settled.startedServing {
            logger.info("search now answers from the new model version", metadata: ["version": "\(version)", "backfill": "\(settled.status)"])
            let pruned = try await database.pruneModelVersions(keep: settings.keepVersions)
            if !pruned.isEmpty { logger.info("removed embeddings and tags of old model versions", metadata: ["versions": "\(pruned)"]) }
            metrics.publish(try await database.versionCoverage())
        }
    }

    enum ChunkOutcome { case finished, interrupted, lost }

    private func process(_ chunk: ClipdDatabase.BackfillChunk, model: StreamPipeline.LoadedModel, database: ClipdDatabase,
                         classifiers: inout [String: ZeroShotClassifier]) async throws -> ChunkOutcome {
        var after: String?
        var labelSetsSeen: Set<String> = []
        while true {
            if Task.isCancelled || Task.isShuttingDownGracefully { return .interrupted }
            // A newer activation (or a pending swap) makes this chunk's version stale.
            if pipeline.latestModel.version.id != chunk.modelVersionID { return .interrupted }
            let records = try await database.backfillRecords(chunk, after: after, limit: settings.batchSize)
            guard let last = records.last else { return .finished }
            after = last.id

            let loaded = await load(records)
            // Label-set classifiers for this model, refreshed once per chunk (edits bump the set's version).
            for name in Set(records.map { $0.labelSet ?? settings.defaultLabelSet }) where !labelSetsSeen.contains(name) {
                labelSetsSeen.insert(name)
                let key = "\(model.version.id)\u{1}\(name)"
                guard let set = try await database.labelSet(named: name) else { classifiers[key] = nil; continue }
                if classifiers[key]?.labelSet.version == set.version { continue }
                let tokenize = self.tokenize
                classifiers[key] = try await pipeline.encoderPool.run { try ZeroShotClassifier(model: model.model, labelSet: set, tokenize: tokenize) }
            }
            var batchClassifiers: [String: ZeroShotClassifier] = [:]
            for name in labelSetsSeen { batchClassifiers[name] = classifiers["\(model.version.id)\u{1}\(name)"] }

            await yieldToLiveTraffic()
            let ready = loaded.compactMap { item -> (ClipdDatabase.BackfillRecord, [Float], [Int32]?)? in
                if case .success(let pixels) = item.1 { return (item.0, pixels, item.2) }
                return nil
            }
            let failures = loaded.compactMap { item -> ClipdDatabase.BackfillFailure? in
                if case .failure(let f) = item.1 { return .init(recordID: item.0.id, errorClass: f.failureClass.rawValue, message: f.message) }
                return nil
            }
            let chosen = batchClassifiers, defaultLabelSet = settings.defaultLabelSet, topK = settings.topK
            let rows = try await pipeline.encoderPool.run {
                try Self.encode(ready, model: model, classifiers: chosen, defaultLabelSet: defaultLabelSet, topK: topK)
            }
            try await database.writeBackfill(modelVersionID: chunk.modelVersionID, embeddings: rows.embeddings, tags: rows.tags, failures: failures)
            metrics.backfilled(rows.embeddings.count + failures.count)
            guard try await database.extendBackfillLease(chunk, worker: worker, leaseSeconds: settings.leaseSeconds) else { return .lost }
        }
    }

    /// Fetch + decode + preprocess through the daemon's loader, captions tokenized on its pool.
    private func load(_ records: [ClipdDatabase.BackfillRecord]) async -> [(ClipdDatabase.BackfillRecord, Result<[Float], PipelineFailure>, [Int32]?)] {
        await withTaskGroup(of: (Int, Result<[Float], PipelineFailure>, [Int32]?).self) { group in
            for (index, record) in records.enumerated() {
                group.addTask {
                    let pixels: Result<[Float], PipelineFailure>
                    do { pixels = .success(try await loader.load(record.imageURL)) } catch {
                        pixels = .failure(error as? PipelineFailure ?? PipelineFailure(.internal, "\(error)"))
                    }
                    var tokens: [Int32]?
                    if let caption = record.caption {
                        let tokenize = self.tokenize
                        tokens = await loader.pool.run { tokenize(caption) }
                    }
                    return (index, pixels, tokens)
                }
            }
            var out = [(ClipdDatabase.BackfillRecord, Result<[Float], PipelineFailure>, [Int32]?)?](repeating: nil, count: records.count)
            for await (index, pixels, tokens) in group { out[index] = (records[index], pixels, tokens) }
            return out.compactMap { $0 }
        }
    }

    /// Waits (bounded) while the live pipeline has at least a batch of records in flight.
    private func yieldToLiveTraffic() async {
        let end = ContinuousClock.now + settings.maxYield
        while pipeline.tracker.inFlightCount >= settings.liveBatchSize && ContinuousClock.now < end && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Image and caption embeddings (L2-normalised), their similarity and the zero-shot tags,
    /// computed as the live pipeline computes them.
    static func encode(_ ready: [(ClipdDatabase.BackfillRecord, [Float], [Int32]?)], model: StreamPipeline.LoadedModel,
                       classifiers: [String: ZeroShotClassifier], defaultLabelSet: String, topK: Int) throws -> (embeddings: [StoredEmbedding], tags: [StoredTag]) {
        guard !ready.isEmpty else { return ([], []) }
        let e = model.model.config.embedDim
        let version = model.version.id
        var images = model.model.encodeImages(ready.flatMap { $0.1 }, count: ready.count)
        images.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: ready.count, cols: e) }
        let captioned = ready.indices.filter { ready[$0].2 != nil }
        var textRow: [Int: Int] = [:]
        var texts: [Float] = []
        if !captioned.isEmpty {
            var encoded = try model.model.encodeTexts(captioned.map { ready[$0].2! })
            encoded.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: captioned.count, cols: e) }
            texts = encoded.data
            for (j, i) in captioned.enumerated() { textRow[i] = j }
        }
        var embeddings: [StoredEmbedding] = []
        var tags: [StoredTag] = []
        for i in ready.indices {
            let record = ready[i].0
            let image = Array(images.data[(i * e)..<((i + 1) * e)])
            let text = textRow[i].map { Array(texts[($0 * e)..<(($0 + 1) * e)]) }
            let similarity = text.map { t in zip(image, t).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
            embeddings.append(StoredEmbedding(recordID: record.id, modelVersionID: version, image: image, text: text, imageTextSimilarity: similarity))
            let setName = record.labelSet ?? defaultLabelSet
            if let classifier = classifiers[setName] {
                tags += classifier.tags(image[...], topK: topK).map {
                    StoredTag(recordID: record.id, modelVersionID: version, labelSet: setName, label: $0.label, score: $0.score, rank: Int32($0.rank))
                }
            }
        }
        return (embeddings, tags)
    }
}

/// Gauges of re-embedding coverage per model version (exported on /metrics):
/// `clipd_backfill_records_covered`, `clipd_backfill_records_to_cover`,
/// `clipd_backfill_coverage_ratio`, `clipd_backfill_records_per_second`,
/// `clipd_backfill_eta_seconds` (label `model_version`), `clipd_search_model_version_id`, and
/// the counter `clipd_backfill_records_written_total` of this daemon's backfill writes.
final class BackfillMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var gauges: [String: Gauge] = [:]
    private let written = Counter(label: "clipd_backfill_records_written_total")
    private let searchVersion = Gauge(label: "clipd_search_model_version_id")

    func backfilled(_ n: Int) {
        if n > 0 { written.increment(by: n) }
    }

    private func gauge(_ label: String, _ version: Int64) -> Gauge {
        lock.withLock {
            let key = "\(label)\u{1}\(version)"
            if let g = gauges[key] { return g }
            let g = Gauge(label: label, dimensions: [("model_version", String(version))])
            gauges[key] = g
            return g
        }
    }

    func publish(_ coverage: [ClipdDatabase.VersionCoverage]) {
        for c in coverage {
            gauge("clipd_backfill_records_covered", c.modelVersionID).record(Double(c.covered))
            gauge("clipd_backfill_records_to_cover", c.modelVersionID).record(Double(c.total))
            gauge("clipd_backfill_coverage_ratio", c.modelVersionID).record(c.fraction)
            gauge("clipd_backfill_records_per_second", c.modelVersionID).record(c.rate ?? 0)
            gauge("clipd_backfill_eta_seconds", c.modelVersionID).record(c.etaSeconds ?? -1)
            if c.isSearchVersion { searchVersion.record(Double(c.modelVersionID)) }
        }
    }
}
