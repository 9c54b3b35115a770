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
        /// Bytes held by in-flight records: message bytes from admission until encoding, plus the
        /// preprocessed image tensor and tokens once loaded. Above it consumption pauses too
        /// (resumes once both counts are at half).
        public var maxInFlightBytes: Int
        /// Records fetching or decoding at once; the others wait holding only their message, so
        /// fetched, still-compressed images never pile up in front of the decode workers.
        public var maxConcurrentLoads: Int
        /// The label set of records that name none.
        public var defaultLabelSet: String
        public var topK: Int

        public init(group: String, batchSize: Int = 16, batchLatencyMs: Int = 200, maxInFlight: Int = 256,
                    maxInFlightBytes: Int = 256 * 1024 * 1024, maxConcurrentLoads: Int = 64,
                    defaultLabelSet: String = "default", topK: Int = 5) {
            self.group = group
            self.batchSize = batchSize
            self.batchLatencyMs = batchLatencyMs
            self.maxInFlight = maxInFlight
            self.maxInFlightBytes = maxInFlightBytes
            self.maxConcurrentLoads = maxConcurrentLoads
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

        /// What the item counts against `maxInFlightBytes`.
        var bytes: Int {
            switch self {
            case let .ready(message, _, pixels, tokens):
                return StreamPipeline.bytes(of: message) + StreamPipeline.bytes(pixels: pixels, tokens: tokens)
            case let .failed(failed): return StreamPipeline.bytes(of: failed.message)
            }
        }
    }

    static func bytes(of message: IncomingMessage) -> Int { message.value.count + (message.key?.count ?? 0) }
    static func bytes(pixels: [Float], tokens: [Int32]?) -> Int {
        pixels.count * MemoryLayout<Float>.stride + (tokens?.count ?? 0) * MemoryLayout<Int32>.stride
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
    let loads: AsyncSemaphore
    /// Bytes of in-flight records (see `Configuration.maxInFlightBytes`).
    let inFlightBytes = Locked(0)

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
        self.loads = AsyncSemaphore(permits: config.maxConcurrentLoads)
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
                    charge(Self.bytes(of: message))
                    applyBackpressure()
                    group.addTask { await self.process(message) }
                    await waitWhilePaused()
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
            let loadImage = stages.loadImage
            let pixels = try await loads.withPermit { try await loadImage(record.imageURL) }
            var tokens: [Int32]?
            if let caption = record.caption {
                let tokenize = stages.tokenize
                tokens = try await stages.workers?.run { tokenize(caption) } ?? tokenize(caption)
            }
            metrics.stageLatency("prepare", since: start)
            charge(Self.bytes(pixels: pixels, tokens: tokens))
            applyBackpressure()
            await batcher.add(.ready(message, record, pixels: pixels, tokens: tokens))
        } catch {
            let failure = error as? PipelineFailure ?? PipelineFailure(.internal, "\(error)")
            // The parser names the id of a record it refuses when the JSON had a valid one.
            let failed = FailedMessage(message: message, recordID: recordID ?? failure.recordID, failure: failure)
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

    /// While consumption is paused for back-pressure, admits nothing more: messages the source
    /// has already buffered wait there (the Kafka consumer stops fetching once its own buffer
    /// is full), so `maxInFlight` and `maxInFlightBytes` bound what the pipeline holds, not only
    /// what is fetched. (Without this wait, a burst the consumer had buffered, a thousand
    /// messages or more, was admitted past the bound, and memory grew with the encoder's lag.)
    /// Re-checks every 10 ms: writes, encodes and revocations shrink what is in flight.
    private func waitWhilePaused() async {
        while lock.withLock({ paused && !stopping }) && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(10))
            applyBackpressure()
        }
    }

    /// Adds `bytes` (negative: releases) to the in-flight byte count.
    func charge(_ bytes: Int) {
        inFlightBytes.withLock { $0 += bytes }
    }

    /// Pauses every assigned partition at `maxInFlight` records or `maxInFlightBytes` bytes in
    /// flight; resumes once both are at half or below.
    func applyBackpressure() {
        let inFlight = tracker.inFlightCount
        let bytes = inFlightBytes.value
        metrics.inFlight(inFlight)
        let action: Bool? = lock.withLock {
            if !paused && (inFlight >= config.maxInFlight || bytes >= config.maxInFlightBytes) { paused = true; return true }
            if paused && inFlight <= config.maxInFlight / 2 && bytes <= config.maxInFlightBytes / 2 { paused = false; return false }
            return nil
        }
        guard let action else { return }
        let partitions = Array(tracker.assigned)
        if action {
            source.pause(partitions)
            logger.debug("paused consumption", metadata: ["in_flight": "\(inFlight)", "in_flight_bytes": "\(bytes)"])
        } else {
            source.resume(partitions)
            logger.debug("resumed consumption", metadata: ["in_flight": "\(inFlight)", "in_flight_bytes": "\(bytes)"])
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
            // The tensors are encoded: what stays in flight until the write is small.
            charge(-items.reduce(0) { $0 + $1.bytes })
            applyBackpressure()
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
    /// with backoff while the database is unavailable. When the database refuses the rows
    /// themselves (a permanent error), the batch is split in halves, recursively, until the
    /// records it refuses are found: those become `store.rejected` failures (dead-letter topic
    /// and `failed_records`, with the server's message), every other record is written, and the
    /// offsets still cover the whole batch, so one poison record never stalls the stream.
    func write(records: [EncodedRecord], failures: [FailedMessage], model: ModelVersionRef) async throws {
        for r in records { tracker.complete(r.message.partition, offset: r.message.offset) }
        for f in failures { tracker.complete(f.message.partition, offset: f.message.offset) }
        let offsets = tracker.committableAll().filter { $0.value >= 0 }
        let start = ContinuousClock.now
        var stored = (records: records.count, failures: failures)
        if let refusal = try await attempt(BatchWrite(group: config.group, modelVersion: model, records: records,
                                                      failures: failures, offsets: offsets)) {
            logger.warning("the database refused a batch; isolating the records it refuses", metadata: [
                "error": "\(refusal)", "records": "\(records.count)", "failures": "\(failures.count)"])
            stored = try await writeIsolating(records: records, failures: failures, offsets: offsets, model: model, refusal: refusal)
        }
        metrics.stageLatency("write", since: start)
        metrics.written(stored.records)
        for f in stored.failures { metrics.failed(f.failure.errorClass) }
        if !offsets.isEmpty { source.commit(offsets) }
        applyBackpressure()
    }

    /// One write, retried with backoff while its errors are retriable. Returns nil once written,
    /// or the permanent error that refused it.
    private func attempt(_ batch: BatchWrite) async throws -> Error? {
        var delay = 0.2
        while true {
            do {
                try await store.write(batch)
                return nil
            } catch {
                if store.classify(error) == .permanent { return error }
                metrics.writeRetry()
                logger.warning("database write failed; retrying", metadata: ["error": "\(error)", "delay_s": "\(delay)",
                                                                              "records": "\(batch.records.count)", "failures": "\(batch.failures.count)"])
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 10)
            }
        }
    }

    /// The slow path after a permanent refusal of the whole batch: writes what the database
    /// accepts, in halves, without offsets (rows are idempotent, so a crash here only means they
    /// are written again), then the failures, refused records included, with the offsets.
    /// Returns how many records were written and the failures stored.
    private func writeIsolating(records: [EncodedRecord], failures: [FailedMessage], offsets: [TopicPartition: Int64],
                                model: ModelVersionRef, refusal: Error) async throws -> (records: Int, failures: [FailedMessage]) {
        var refusedRecords = 0
        var pending: [FailedMessage] = []
        var refusedFailures = Set<String>()
        let items = records.map(WriteItem.record) + failures.map(WriteItem.failure)
        try await bisect(items, model: model, knownRefusal: refusal) { item, error in
            switch item {
            case .record(let r):
                refusedRecords += 1
                let failed = FailedMessage(message: r.message, recordID: r.record.id, failure: PipelineFailure(
                    .store(.rejected), "PostgreSQL refused the record: \(Self.shortened(error))", recordID: r.record.id))
                logger.error("record refused by the database; sent to the dead-letter topic", metadata: [
                    "id": "\(r.record.id)", "partition": "\(r.message.partition)", "offset": "\(r.message.offset)", "error": "\(Self.shortened(error))"])
                await sendToDeadLetters(failed)
                pending.append(failed)
            case .failure(let f):
                refusedFailures.insert("\(f.message.partition)@\(f.message.offset)")
                pending.append(Self.minimalForm(of: f, refusedWith: error))
            }
        }
        var stored = failures.filter { !refusedFailures.contains("\($0.message.partition)@\($0.message.offset)") }
        if try await attempt(BatchWrite(group: config.group, modelVersion: model, records: [], failures: pending, offsets: offsets)) == nil {
            return (records.count - refusedRecords, stored + pending)
        }
        // Some failed_records row is refused too: store the rows the database accepts one by
        // one, each refused one in its minimal form or not at all (its dead letter is on the
        // topic already), then the offsets.
        for failed in pending {
            if try await attempt(BatchWrite(group: config.group, modelVersion: model, records: [], failures: [failed], offsets: [:])) == nil {
                stored.append(failed)
                continue
            }
            let minimal = Self.minimalForm(of: failed, refusedWith: nil)
            if try await attempt(BatchWrite(group: config.group, modelVersion: model, records: [], failures: [minimal], offsets: [:])) == nil {
                stored.append(minimal)
            } else {
                logger.error("the database refused a failed_records row; the failure is on the dead-letter topic only", metadata: [
                    "partition": "\(failed.message.partition)", "offset": "\(failed.message.offset)", "class": "\(failed.failure.errorClass)"])
            }
        }
        while let error = try await attempt(BatchWrite(group: config.group, modelVersion: model, records: [], failures: [], offsets: offsets)) {
            // No record causes this: the offsets themselves are refused. There is nothing to
            // isolate, so it is retried like an outage until an operator fixes the database.
            metrics.writeRetry()
            logger.error("the database refuses the consumer offsets; retrying in 10 s", metadata: ["error": "\(error)"])
            try await Task.sleep(for: .seconds(10))
        }
        return (records.count - refusedRecords, stored)
    }

    /// A failure whose `failed_records` row was refused, reduced to what any row can hold: its
    /// class and position, no record id, no payload, and a message saying why.
    static func minimalForm(of failed: FailedMessage, refusedWith error: Error?) -> FailedMessage {
        let why = error.map { "the failed_records row was refused (\(shortened($0)))" } ?? "the failed_records row was refused"
        return FailedMessage(
            message: IncomingMessage(partition: failed.message.partition, offset: failed.message.offset, key: nil, value: []),
            recordID: nil, failure: PipelineFailure(failed.failure.failureClass, "\(why); the failure is on the dead-letter topic"))
    }

    /// An error's text for a failure message: the server's message and detail ("Failing row
    /// contains …" can quote a whole row) cut to 1,000 characters.
    static func shortened(_ error: Error) -> String {
        let text = "\(error)"
        return text.count <= 1000 ? text : text.prefix(1000) + "…"
    }

    enum WriteItem {
        case record(EncodedRecord)
        case failure(FailedMessage)
    }

    /// Writes `items` without offsets, splitting in halves on a permanent refusal until each
    /// refused item is alone; `refused` receives those with the server's error. With
    /// `knownRefusal`, the items were just refused together and are split at once.
    private func bisect(_ items: [WriteItem], model: ModelVersionRef, knownRefusal: Error? = nil,
                        refused: (WriteItem, Error) async -> Void) async throws {
        guard !items.isEmpty else { return }
        var error = knownRefusal
        if error == nil {
            var records: [EncodedRecord] = [], failures: [FailedMessage] = []
            for item in items {
                switch item {
                case .record(let r): records.append(r)
                case .failure(let f): failures.append(f)
                }
            }
            error = try await attempt(BatchWrite(group: config.group, modelVersion: model, records: records, failures: failures, offsets: [:]))
        }
        guard let error else { return }
        if items.count == 1 { await refused(items[0], error); return }
        let middle = items.count / 2
        try await bisect(Array(items[..<middle]), model: model, refused: refused)
        try await bisect(Array(items[middle...]), model: model, refused: refused)
    }
}
