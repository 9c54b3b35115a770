import CLIP
import Executors
import Foundation
import Logging
import Tensor
import ZeroShot

/// The daemon's data path: messages → parse → fetch + decode (worker pool) → batcher →
/// CLIP (one encoder thread) → zero-shot tags → one Postgres transaction per batch holding the
/// rows and the consumer offsets → offsets committed to Kafka for lag visibility.
///
/// A record is "done" once its row or its failure is committed in the same transaction as an
/// offset that covers it; offsets only ever cover done records, and rows are upserted by
/// record id, so a crash at any moment loses nothing and a replay writes nothing twice.
public final class StreamPipeline: @unchecked Sendable {
    /// The pipeline's settings (the daemon's configuration maps onto these).
    public struct Configuration: Sendable, Equatable {
        /// The consumer group whose offsets are stored with the rows.
        public var group: String
        public var batchSize: Int
        public var batchLatencyMs: Int
        /// Records admitted but not yet written; above it consumption pauses (resumes at half).
        public var maxInFlight: Int
        /// The label set of records that name none.
        public var defaultLabelSet: String
        public var topK: Int

        public init(group: String, batchSize: Int = 16, batchLatencyMs: Int = 200, maxInFlight: Int = 256,
                    defaultLabelSet: String = "default", topK: Int = 5) {
            self.group = group
            self.batchSize = batchSize
            self.batchLatencyMs = batchLatencyMs
            self.maxInFlight = maxInFlight
            self.defaultLabelSet = defaultLabelSet
            self.topK = topK
        }
    }

    /// What the pipeline does per record, injected so tests can use fakes.
    public struct Stages: Sendable {
        /// Throws `PipelineFailure` (class `record.*`).
        public var parse: @Sendable (IncomingMessage) throws -> ParsedRecord
        /// Fetches, decodes and preprocesses an image URL into model input; runs off the
        /// cooperative pool; throws PipelineFailure.
        public var loadImage: @Sendable (String) async throws -> [Float]
        /// Caption → one context-length row of token ids.
        public var tokenize: @Sendable (String) -> [Int32]
        /// Where CPU-bound per-record work (tokenization) runs; nil: the calling task.
        public var workers: WorkerPool?

        public init(parse: @escaping @Sendable (IncomingMessage) throws -> ParsedRecord,
                    loadImage: @escaping @Sendable (String) async throws -> [Float],
                    tokenize: @escaping @Sendable (String) -> [Int32],
                    workers: WorkerPool? = nil) {
            self.parse = parse
            self.loadImage = loadImage
            self.tokenize = tokenize
            self.workers = workers
        }
    }

    /// A model with the version its rows are stored under.
    public struct LoadedModel: Sendable {
        public let model: CLIPModel
        public let version: ModelVersionRef
        public init(model: CLIPModel, version: ModelVersionRef) {
            self.model = model
            self.version = version
        }
    }

    enum Item: Sendable {
        case ready(IncomingMessage, ParsedRecord, pixels: [Float], tokens: [Int32]?)
        case failed(FailedMessage)
    }

    public let config: Configuration
    let source: MessageSource
    let store: PipelineStore
    let deadLetters: DeadLetterSink
    let stages: Stages
    let logger: Logger
    public let metrics: PipelineMetrics
    public let tracker: OffsetTracker
    let batcher: Batcher<Item>
    let encoder = WorkerPool(name: "clipd-encoder", width: 1)

    private let lock = NSLock()
    private var model: LoadedModel
    private var pendingModel: LoadedModel?
    private var classifiers: [String: ZeroShotClassifier] = [:]
    private var missingLabelSets = Set<String>()
    private var paused = false
    private var stopping = false

    /// `tracker` is shared with the consumer's rebalance hooks (`PartitionAssignments`), which
    /// exist before the pipeline does.
    public init(config: Configuration, source: MessageSource, store: PipelineStore, deadLetters: DeadLetterSink,
                stages: Stages, model: LoadedModel, tracker: OffsetTracker = OffsetTracker(), logger: Logger,
                metrics: PipelineMetrics = PipelineMetrics()) {
        self.config = config
        self.tracker = tracker
        self.source = source
        self.store = store
        self.deadLetters = deadLetters
        self.stages = stages
        self.model = model
        self.logger = logger
        self.metrics = metrics
        self.batcher = Batcher(maxSize: config.batchSize, maxLatency: .milliseconds(config.batchLatencyMs))
        metrics.modelVersion(model.version)
    }

    public var currentModel: LoadedModel { lock.withLock { model } }

    /// The model the next batch will use: a pending swap, else the current model.
    public var latestModel: LoadedModel { lock.withLock { pendingModel ?? model } }

    /// The encoder thread (FIFO, width 1). The re-embedding backfill queues its small batches
    /// here, so a live batch waits for at most one of them.
    public var encoderPool: WorkerPool { encoder }

    // MARK: models and label sets

    /// Swaps the model between batches (a new active version).
    public func useModel(_ next: LoadedModel) {
        lock.withLock { pendingModel = next }
    }

    /// Label sets changed in the database: recompute their text embeddings on next use.
    public func labelSetsChanged() {
        lock.withLock {
            classifiers.removeAll()
            missingLabelSets.removeAll()
        }
    }

    // MARK: running

    /// Consumes until `shutdown()` (or the source ends), then drains: every record already
    /// fetched is written and its offset stored.
    public func run() async throws {
        let encoderLoop = Task { try await self.encodeLoop() }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                for try await message in source.messages() {
                    guard tracker.admit(message.partition, offset: message.offset) else { continue }
                    metrics.consumed()
                    applyBackpressure()
                    group.addTask { await self.process(message) }
                }
            }
        } catch {
            logger.error("consumer failed", metadata: ["error": "\(error)"])
            await batcher.finish()
            _ = try? await encoderLoop.value
            throw error
        }
        await batcher.finish()
        try await encoderLoop.value
        logger.info("pipeline drained", metadata: ["offsets": "\(tracker.committableAll().filter { $0.value >= 0 }.map { "\($0.key)=\($0.value)" }.sorted())"])
    }

    /// Stops consuming; `run()` then drains and returns.
    public func shutdown() {
        lock.withLock { stopping = true }
        source.stop()
    }

    func process(_ message: IncomingMessage) async {
        let start = ContinuousClock.now
        var recordID: String?
        do {
            let record: ParsedRecord
            do { record = try stages.parse(message) } catch let f as PipelineFailure { throw f } catch {
                throw PipelineFailure(.internal, "parsing failed: \(error)")
            }
            recordID = record.id
            let pixels = try await stages.loadImage(record.imageURL)
            var tokens: [Int32]?
            if let caption = record.caption {
                let tokenize = stages.tokenize
                tokens = try await stages.workers?.run { tokenize(caption) } ?? tokenize(caption)
            }
            metrics.stageLatency("prepare", since: start)
            await batcher.add(.ready(message, record, pixels: pixels, tokens: tokens))
        } catch {
            let failure = error as? PipelineFailure ?? PipelineFailure(.internal, "\(error)")
            let failed = FailedMessage(message: message, recordID: recordID, failure: failure)
            await sendToDeadLetters(failed)
            await batcher.add(.failed(failed))
        }
    }

    private func sendToDeadLetters(_ failed: FailedMessage) async {
        var delay = 0.2
        while true {
            do {
                try await deadLetters.send(failed)
                return
            } catch {
                // The record stays in flight (its offset is not stored) until the dead letter
                // is delivered, so a broker outage delays but loses nothing.
                logger.warning("dead-letter delivery failed; retrying", metadata: ["error": "\(error)", "delay_s": "\(delay)"])
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 10)
            }
        }
    }

    func applyBackpressure() {
        let inFlight = tracker.inFlightCount
        metrics.inFlight(inFlight)
        let action: Bool? = lock.withLock {
            if !paused && inFlight >= config.maxInFlight { paused = true; return true }
            if paused && inFlight <= config.maxInFlight / 2 { paused = false; return false }
            return nil
        }
        guard let action else { return }
        let partitions = Array(tracker.assigned)
        if action {
            source.pause(partitions)
            logger.debug("paused consumption", metadata: ["in_flight": "\(inFlight)"])
        } else {
            source.resume(partitions)
            logger.debug("resumed consumption", metadata: ["in_flight": "\(inFlight)"])
        }
    }

    // MARK: encoding and writing

    func encodeLoop() async throws {
        // Batch N is written while batch N+1 is encoded; writes stay in order.
        var previousWrite: Task<Void, Error>?
        while let items = await batcher.next() {
            let swap: LoadedModel? = lock.withLock {
                defer { pendingModel = nil }
                if let p = pendingModel { model = p; self.classifiers.removeAll(); missingLabelSets.removeAll() }
                return pendingModel
            }
            if let swap {
                metrics.modelVersion(swap.version)
                logger.info("switched model", metadata: ["version": "\(swap.version.name)", "id": "\(swap.version.id)"])
            }
            let current = currentModel
            let ready = items.compactMap { item -> (IncomingMessage, ParsedRecord, [Float], [Int32]?)? in
                if case let .ready(m, r, p, t) = item { return (m, r, p, t) }
                return nil
            }
            let failures = items.compactMap { item -> FailedMessage? in
                if case let .failed(f) = item { return f }
                return nil
            }
            let labelSetNames = Set(ready.map { $0.1.labelSet ?? config.defaultLabelSet })
            var batchClassifiers: [String: ZeroShotClassifier] = [:]
            for name in labelSetNames { batchClassifiers[name] = await classifier(named: name, model: current) }
            let encodeStart = ContinuousClock.now
            let encoded = try await encoder.run { [batchClassifiers, config] in
                try Self.encode(ready, model: current.model, classifiers: batchClassifiers, defaultLabelSet: config.defaultLabelSet, topK: config.topK)
            }
            metrics.stageLatency("encode", since: encodeStart)
            metrics.batch(size: items.count)
            try await previousWrite?.value
            previousWrite = Task { try await self.write(records: encoded, failures: failures, model: current.version) }
        }
        try await previousWrite?.value
    }

    static func encode(_ ready: [(IncomingMessage, ParsedRecord, [Float], [Int32]?)], model: CLIPModel,
                       classifiers: [String: ZeroShotClassifier], defaultLabelSet: String, topK: Int) throws -> [EncodedRecord] {
        guard !ready.isEmpty else { return [] }
        let e = model.config.embedDim
        var images = model.encodeImages(ready.flatMap { $0.2 }, count: ready.count)
        images.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: ready.count, cols: e) }
        let captioned = ready.indices.filter { ready[$0].3 != nil }
        var texts = try model.encodeTexts(captioned.map { ready[$0].3! })
        texts.data.withUnsafeMutableBufferPointer { if !captioned.isEmpty { l2NormalizeRows($0.baseAddress!, rows: captioned.count, cols: e) } }
        var textRow: [Int: Int] = [:]
        for (j, i) in captioned.enumerated() { textRow[i] = j }
        return ready.indices.map { i in
            let image = Array(images.data[(i * e)..<((i + 1) * e)])
            let text = textRow[i].map { Array(texts.data[($0 * e)..<(($0 + 1) * e)]) }
            let similarity = text.map { t in zip(image, t).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
            let setName = ready[i].1.labelSet ?? defaultLabelSet
            let tags = classifiers[setName]?.tags(image[...], topK: topK) ?? []
            return EncodedRecord(message: ready[i].0, record: ready[i].1, imageEmbedding: image, textEmbedding: text,
                                 similarity: similarity, labelSet: classifiers[setName] == nil ? nil : setName, tags: tags)
        }
    }

    /// The classifier of a label set for the current model, computed once per model and
    /// label-set version; nil when the set does not exist.
    func classifier(named name: String, model current: LoadedModel) async -> ZeroShotClassifier? {
        if let cached = lock.withLock({ classifiers[name] }) { return cached }
        if lock.withLock({ missingLabelSets.contains(name) }) { return nil }
        do {
            guard let set = try await store.labelSet(named: name) else {
                lock.withLock { _ = missingLabelSets.insert(name) }
                logger.warning("label set not found; records naming it are stored without tags", metadata: ["label_set": "\(name)"])
                return nil
            }
            let tokenize = stages.tokenize
            let built = try await encoder.run { try ZeroShotClassifier(model: current.model, labelSet: set, tokenize: tokenize) }
            lock.withLock { classifiers[name] = built }
            logger.info("label set embedded", metadata: ["label_set": "\(name)", "labels": "\(set.labels.count)",
                                                        "templates": "\(set.templates.count)", "model": "\(current.version.name)"])
            return built
        } catch {
            logger.error("cannot load label set", metadata: ["label_set": "\(name)", "error": "\(error)"])
            return nil
        }
    }

    /// Marks the batch's records done and writes rows + offsets in one transaction, retrying
    /// with backoff while the database is unavailable.
    func write(records: [EncodedRecord], failures: [FailedMessage], model: ModelVersionRef) async throws {
        for r in records { tracker.complete(r.message.partition, offset: r.message.offset) }
        for f in failures { tracker.complete(f.message.partition, offset: f.message.offset) }
        let offsets = tracker.committableAll().filter { $0.value >= 0 }
        let batch = BatchWrite(group: config.group, modelVersion: model, records: records, failures: failures, offsets: offsets)
        let start = ContinuousClock.now
        var delay = 0.2
        while true {
            do {
                try await store.write(batch)
                break
            } catch {
                metrics.writeRetry()
                logger.warning("database write failed; retrying", metadata: ["error": "\(error)", "delay_s": "\(delay)",
                                                                              "records": "\(records.count)", "failures": "\(failures.count)"])
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 10)
            }
        }
        metrics.stageLatency("write", since: start)
        metrics.written(records.count)
        for f in failures { metrics.failed(f.failure.errorClass) }
        if !offsets.isEmpty { source.commit(offsets) }
        applyBackpressure()
    }
}
