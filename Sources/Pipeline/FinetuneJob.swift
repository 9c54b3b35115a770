import CLIP
import Foundation
import Logging
import Tensor

/// What one fine-tune run does; the job's flags give the defaults and a `finetune_runs` row's
/// `parameters` JSON overrides any of them (snake_case keys, e.g. `{"steps": 200, "lr": 1e-5}`).
public struct FinetuneParameters: Sendable, Equatable, Codable {
    /// full, projections, lock-image, last-vision-blocks:N, last-text-blocks:N.
    public var mode = "lock-image"
    public var steps = 100
    public var batch = 32
    public var learningRate: Float = 1e-5
    public var weightDecay: Float = 0.1
    /// Linear warmup steps before the cosine decay (nil: a tenth of the steps).
    public var warmupSteps: Int?
    public var gradClipNorm: Float = 1.0
    /// Fraction of records (by a hash of their id, so stable across runs) never trained on.
    public var heldOutFraction: Double = 0.1
    /// The newest this many captioned records are used.
    public var maxPairs = 10_000
    public var alphas: [Float] = WiseFT.defaultAlphas
    /// Largest absolute drop of canary accuracy that still allows promotion.
    public var canaryTolerance: Float = 0.02
    /// Held-out recall (mean of R@1/R@5 both ways) must rise by more than this to promote.
    public var minRecallGain: Float = 0
    public var seed: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case mode, steps, batch, learningRate = "lr", weightDecay = "weight_decay", warmupSteps = "warmup_steps"
        case gradClipNorm = "grad_clip_norm", heldOutFraction = "held_out_fraction", maxPairs = "max_pairs", alphas
        case canaryTolerance = "canary_tolerance", minRecallGain = "min_recall_gain", seed
    }

    public static let keys: [String] = ["mode", "steps", "batch", "lr", "weight_decay", "warmup_steps", "grad_clip_norm",
                                        "held_out_fraction", "max_pairs", "alphas", "canary_tolerance", "min_recall_gain", "seed"]

    /// These parameters with the keys present in `json` (a JSON object) replacing them.
    public func overriding(with json: String) throws -> FinetuneParameters {
        let trimmed = json.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty || trimmed == "{}" { return self }
        guard let overrides = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
            throw PipelineFailure("finetune.parameters", "run parameters are not a JSON object: \(trimmed)")
        }
        if let unknown = overrides.keys.sorted().first(where: { !Self.keys.contains($0) }) {
            throw PipelineFailure("finetune.parameters", "unknown run parameter \"\(unknown)\" (known: \(Self.keys.joined(separator: ", ")))")
        }
        var merged = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as! [String: Any]
        for (key, value) in overrides { merged[key] = value }
        do {
            let result = try JSONDecoder().decode(FinetuneParameters.self, from: JSONSerialization.data(withJSONObject: merged))
            try result.validate()
            return result
        } catch let failure as PipelineFailure {
            throw failure
        } catch {
            throw PipelineFailure("finetune.parameters", "run parameters \(trimmed) do not fit: \(error)")
        }
    }

    public func validate() throws {
        func fail(_ message: String) -> PipelineFailure { PipelineFailure("finetune.parameters", message) }
        guard FineTuneMode(mode) != nil else { throw fail("unknown mode \(mode) (full, projections, lock-image, last-vision-blocks:N, last-text-blocks:N)") }
        guard steps >= 1 else { throw fail("steps must be at least 1") }
        guard batch >= 2 else { throw fail("batch must be at least 2 (contrastive training compares pairs)") }
        guard learningRate > 0, learningRate.isFinite else { throw fail("lr must be positive") }
        guard weightDecay >= 0 else { throw fail("weight_decay must not be negative") }
        guard heldOutFraction > 0, heldOutFraction < 1 else { throw fail("held_out_fraction must be in (0, 1)") }
        guard maxPairs >= 4 else { throw fail("max_pairs must be at least 4") }
        guard !alphas.isEmpty, alphas.allSatisfy({ $0 >= 0 && $0 <= 1 }) else { throw fail("alphas must be values in [0, 1]") }
        guard canaryTolerance >= 0, canaryTolerance <= 1 else { throw fail("canary_tolerance must be in [0, 1]") }
        if let w = warmupSteps, w < 0 { throw fail("warmup_steps must not be negative") }
        guard gradClipNorm > 0 else { throw fail("grad_clip_norm must be positive") }
    }

    public var json: String {
        String(decoding: (try? Self.encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()
}

/// The deterministic held-out split: a record is held out when the 64-bit FNV-1a hash of its
/// id, finished with SplitMix64's mixer (FNV's high bits barely change between ids such as
/// `sku-1`, `sku-2`), falls in the first `fraction` of the hash range. It never changes for a record, so
/// nothing held out in one run is trained on in the next.
public enum HeldOutSplit {
    public static func isHeldOut(_ recordID: String, fraction: Double) -> Bool {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in recordID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        return Double(hash >> 11) / Double(UInt64(1) << 53) < fraction
    }
}

/// When the job schedules a run by itself. With both conditions, a run is due when the last one
/// was scheduled at least `interval` ago and at least `minNewPairs` captioned records arrived since.
public struct FinetuneTrigger: Sendable, Equatable {
    public var interval: Double?
    public var minNewPairs: Int?

    public init(interval: Double? = nil, minNewPairs: Int? = nil) {
        self.interval = interval
        self.minNewPairs = minNewPairs
    }

    /// Why a run is due now, or nil. `lastRun` is when the newest run was scheduled (nil: never),
    /// `newPairs` how many captioned records arrived since then.
    public func reasonToSchedule(now: Date, lastRun: Date?, newPairs: Int) -> String? {
        if interval == nil && minNewPairs == nil { return nil }
        var reasons: [String] = []
        if let interval {
            if let lastRun, now.timeIntervalSince(lastRun) < interval { return nil }
            reasons.append(lastRun.map { "last run scheduled \(Int(now.timeIntervalSince($0)))s ago (interval \(Int(interval))s)" } ?? "no run yet")
        }
        if let minNewPairs {
            if newPairs < minNewPairs { return nil }
            reasons.append("\(newPairs) new captioned records (threshold \(minNewPairs))")
        }
        return reasons.joined(separator: ", ")
    }
}

/// A stored (image URL, caption) pair to train or evaluate on.
public struct CaptionedRecord: Sendable, Equatable {
    public let id: String
    public let imageURL: String
    public let caption: String
    public init(id: String, imageURL: String, caption: String) {
        self.id = id
        self.imageURL = imageURL
        self.caption = caption
    }
}

/// The model a run starts from.
public struct BaseModel: Sendable {
    public let version: ModelVersionRef
    public let checkpointPath: String
    public init(version: ModelVersionRef, checkpointPath: String) {
        self.version = version
        self.checkpointPath = checkpointPath
    }
}

/// Which canary images carry which label, and the label set (stored in the database) they are
/// classified against.
public struct CanarySpec: Sendable, Equatable, Codable {
    public struct Image: Sendable, Equatable, Codable {
        public let imageURL: String
        public let label: String
        enum CodingKeys: String, CodingKey { case imageURL = "image_url", label }
        public init(imageURL: String, label: String) {
            self.imageURL = imageURL
            self.label = label
        }
    }
    public let labelSet: String
    public let images: [Image]
    enum CodingKeys: String, CodingKey { case labelSet = "label_set", images }

    public init(labelSet: String, images: [Image]) {
        self.labelSet = labelSet
        self.images = images
    }

    /// Parses `{"label_set": "...", "images": [{"image_url": "...", "label": "..."}, …]}`.
    public init(json: Data) throws {
        do {
            self = try JSONDecoder().decode(CanarySpec.self, from: json)
        } catch {
            throw PipelineFailure("finetune.canary", "canary file is not {\"label_set\": NAME, \"images\": [{\"image_url\": URL, \"label\": LABEL}, …]}: \(error)")
        }
        guard !labelSet.isEmpty, !images.isEmpty else { throw PipelineFailure("finetune.canary", "canary file needs a label_set and at least one image") }
    }
}

/// The database as the fine-tune job needs it.
public protocol FinetuneRunStore: Sendable {
    /// The given version, or the active one when nil.
    func baseModel(versionID: Int64?) async throws -> BaseModel
    /// The newest `limit` records that have an image URL and a non-empty caption.
    func captionedRecords(limit: Int) async throws -> [CaptionedRecord]
    func labelSet(named name: String) async throws -> LabelSet?
    /// Stores the run's effective parameters and base version.
    func recordStart(runID: Int64, parameters: FinetuneParameters, base: ModelVersionRef) async throws
    /// Stores the loss curve so far.
    func recordProgress(runID: Int64, losses: [Float]) async throws
    /// Registers a checkpoint as a new model version (parent = `parent`) and activates it, in one transaction.
    func promote(runID: Int64, name: String, parent: ModelVersionRef, checkpointPath: String, config: CLIPConfig,
                 metricsJSON: String) async throws -> ModelVersionRef
    func finish(runID: Int64, outcome: FinetuneOutcome) async throws
}

/// Image URL → preprocessed model input.
public protocol TrainingImageSource: Sendable {
    func pixels(_ imageURL: String) async throws -> [Float]
}

/// How a run ended, as recorded in its `finetune_runs` row.
public struct FinetuneOutcome: Sendable {
    public enum Status: String, Sendable { case finished, rejected, failed }
    public var status: Status
    public var resultVersion: ModelVersionRef?
    public var lossCurve: [Float]
    /// JSON: before/after evaluation and every WiSE-FT candidate.
    public var metricsJSON: String?
    /// JSON: decision, α, reasons, checkpoint, counts, timings.
    public var resultsJSON: String?
    public var error: String?
    /// Why it was rejected (empty otherwise).
    public var reasons: [String]

    public init(status: Status, resultVersion: ModelVersionRef? = nil, lossCurve: [Float] = [], metricsJSON: String? = nil,
                resultsJSON: String? = nil, error: String? = nil, reasons: [String] = []) {
        self.status = status
        self.resultVersion = resultVersion
        self.lossCurve = lossCurve
        self.metricsJSON = metricsJSON
        self.resultsJSON = resultsJSON
        self.error = error
        self.reasons = reasons
    }

    public static func failed(_ message: String) -> FinetuneOutcome { FinetuneOutcome(status: .failed, error: message) }
}

/// One fine-tune run: load the base model and the stored pairs, evaluate, train, interpolate
/// (WiSE-FT), gate, and promote or reject. Numeric work runs on the job's own thread, never on
/// Swift's cooperative pool.
public struct FinetuneJob: Sendable {
    public let store: FinetuneRunStore
    public let images: TrainingImageSource
    /// Caption → one row of `contextLength` token ids (the second argument).
    public let tokenize: @Sendable (String, Int) throws -> [Int32]
    public let canary: CanarySpec
    /// Where promoted checkpoints are written (shared storage when trainers and daemons run on different machines).
    public let checkpointDirectory: URL
    public let logger: Logger
    /// Loss curve written to the run row every this many steps.
    public var progressEvery = 10
    /// Images fetched and decoded at once.
    public var loadConcurrency = 4
    /// Held-out pairs evaluated at most (the newest).
    public var maxHeldOut = 1000
    private let executor = SerialExecutor(label: "clipd.finetune.train")

    public init(store: FinetuneRunStore, images: TrainingImageSource, tokenize: @escaping @Sendable (String, Int) throws -> [Int32],
                canary: CanarySpec, checkpointDirectory: URL, logger: Logger) {
        self.store = store
        self.images = images
        self.tokenize = tokenize
        self.canary = canary
        self.checkpointDirectory = checkpointDirectory
        self.logger = logger
    }

    /// Runs and records run `runID`; never throws (a failure is recorded on the row) unless the
    /// row itself cannot be written.
    @discardableResult
    public func execute(runID: Int64, baseVersionID: Int64?, parameters: FinetuneParameters) async throws -> FinetuneOutcome {
        var losses: [Float] = []
        let outcome: FinetuneOutcome
        do {
            outcome = try await train(runID: runID, baseVersionID: baseVersionID, parameters: parameters, losses: &losses)
        } catch {
            let message = (error as? PipelineFailure)?.message ?? (error as? CLIPError)?.message ?? "\(error)"
            logger.error("fine-tune run \(runID) failed: \(message)")
            outcome = FinetuneOutcome(status: .failed, resultVersion: nil, lossCurve: losses, metricsJSON: nil, resultsJSON: nil,
                                      error: message, reasons: [])
        }
        try await store.finish(runID: runID, outcome: outcome)
        return outcome
    }

    private func train(runID: Int64, baseVersionID: Int64?, parameters p: FinetuneParameters, losses: inout [Float]) async throws -> FinetuneOutcome {
        let started = ContinuousClock.now
        try p.validate()
        let mode = FineTuneMode(p.mode)!
        let base = try await store.baseModel(versionID: baseVersionID)
        try await store.recordStart(runID: runID, parameters: p, base: base.version)
        logger.info("fine-tune run \(runID): starting from model version \(base.version.id) (\(base.version.name)), mode \(mode), \(p.steps) steps of \(p.batch), lr \(p.learningRate)")
        let path = base.checkpointPath
        let model = try await executor.run { CLIPModel(checkpoint: try CheckpointLoader.load(path: path)) }
        let cfg = model.config

        // Pairs: the held-out split by record id, images loaded, captions tokenized.
        let records = try await store.captionedRecords(limit: p.maxPairs)
        let (heldOutRecords, trainRecords) = records.reduce(into: ([CaptionedRecord](), [CaptionedRecord]())) {
            if HeldOutSplit.isHeldOut($1.id, fraction: p.heldOutFraction) { $0.0.append($1) } else { $0.1.append($1) }
        }
        var skipped = 0
        // Retrieval needs one true match per query: repeated captions or images among the
        // held-out pairs would make each other's matches ambiguous, so only the first is kept.
        var seenCaptions = Set<String>(), seenImages = Set<String>()
        let distinctHeldOut = heldOutRecords.filter { seenCaptions.insert($0.caption).inserted && seenImages.insert($0.imageURL).inserted }
        // Preprocessed images are large (600 KB at 224 px), so only what the run can use is
        // loaded: the newest `maxHeldOut` held-out pairs, and at most steps × batch training
        // pairs (a seeded sample when there are more), each seen about once.
        let heldOut = try await encode(Array(distinctHeldOut.prefix(maxHeldOut)), config: cfg, skipped: &skipped)
        var sampleRNG = SeededGenerator(seed: p.seed &+ UInt64(bitPattern: runID) &+ 1)
        let usable = p.steps * p.batch
        let trainSample = trainRecords.count <= usable ? trainRecords : Array(trainRecords.shuffled(using: &sampleRNG).prefix(usable))
        let training = try await encode(trainSample, config: cfg, skipped: &skipped)
        logger.info("fine-tune run \(runID): \(training.count) training pairs (of \(trainRecords.count)), \(heldOut.count) held-out pairs, \(skipped) skipped")
        guard training.count >= 2 else {
            throw PipelineFailure("finetune.not_enough_pairs", "\(training.count) usable training pairs (of \(records.count) captioned records); need at least 2")
        }
        guard Set(training.map(\.tokens)).count >= 2 else {
            throw PipelineFailure("finetune.not_enough_pairs", "the \(training.count) training pairs have fewer than 2 distinct captions; contrastive training compares different captions")
        }
        guard heldOut.count >= 2 else {
            throw PipelineFailure("finetune.not_enough_pairs", "\(heldOut.count) usable held-out pairs (held_out_fraction \(p.heldOutFraction) of \(records.count) captioned records); need at least 2")
        }

        let tokenize = self.tokenize, contextLength = cfg.contextLength
        let evaluator = ModelEvaluator(heldOut: heldOut, canary: try await loadCanary(config: cfg), tokenize: { try tokenize($0, contextLength) })
        let before = try await executor.run { try evaluator.evaluate(model) }
        logger.info("fine-tune run \(runID): before: recall \(Self.describe(before.recall)), canary accuracy \(before.canaryAccuracy)")

        // Training, in place on `model`; the old weights are kept for WiSE-FT.
        let old = CLIPModel(config: cfg, parameters: model.parameters.copy())
        let trainer = CLIPTrainer(model: model, mode: mode,
                                  hyper: .init(learningRate: p.learningRate, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: p.weightDecay),
                                  gradClipNorm: p.gradClipNorm)
        let schedule = LearningRateSchedule(peak: p.learningRate, warmupSteps: p.warmupSteps ?? max(1, p.steps / 10), totalSteps: p.steps)
        var sampler = BatchSampler(captions: training.map(\.tokens), seed: p.seed &+ UInt64(bitPattern: runID))
        let per = 3 * cfg.imageSize * cfg.imageSize
        let trainStart = ContinuousClock.now
        for step in 0..<p.steps {
            let chosen = sampler.next(max: p.batch)
            var pixels: [Float] = []
            pixels.reserveCapacity(chosen.count * per)
            for i in chosen { pixels += training[i].pixels }
            let tokens = chosen.map { training[$0].tokens }
            let rate = schedule.rate(at: step), batchPixels = pixels
            let loss = try await executor.run { try trainer.step(pixels: batchPixels, tokens: tokens, learningRate: rate).loss }
            losses.append(loss)
            if (step + 1) % progressEvery == 0 || step + 1 == p.steps {
                let elapsed = Self.seconds(ContinuousClock.now - trainStart)
                logger.info("fine-tune run \(runID): step \(step + 1)/\(p.steps) loss \(loss) lr \(rate) (\(String(format: "%.1f", Double(step + 1) * Double(chosen.count) / max(elapsed, 1e-9))) pairs/s)")
                try await store.recordProgress(runID: runID, losses: losses)
            }
        }

        // WiSE-FT grid, then the gate.
        var candidates: [WiseFTCandidate] = []
        for alpha in Set(p.alphas).sorted() {
            let report: EvaluationReport
            if alpha == 0 {
                report = before  // θ(0) is the old model bit for bit
            } else {
                let trained = model.parameters
                report = try await executor.run { try evaluator.evaluate(WiseFT.interpolated(old: old, new: trained, alpha: alpha)) }
            }
            candidates.append(WiseFTCandidate(alpha: alpha, report: report))
            logger.info("fine-tune run \(runID): α=\(alpha): recall \(Self.describe(report.recall)), canary accuracy \(report.canaryAccuracy)")
        }
        let gate = PromotionGate(canaryTolerance: p.canaryTolerance, minRecallGain: p.minRecallGain)
        let decision = gate.decide(before: before, candidates: candidates)

        var metrics = RunMetrics(before: before, after: nil, alpha: nil, candidates: candidates, mode: p.mode, steps: p.steps,
                                 trainPairs: training.count, heldOutPairs: heldOut.count, canaryImages: evaluator.canary.examples.count,
                                 canaryLabelSet: canary.labelSet, runID: runID, baseModelVersion: base.version.id)
        var results = RunResults(decision: "rejected", alpha: nil, reasons: [], checkpoint: nil, skippedImages: skipped,
                                 finalLoss: losses.last.flatMap { $0.isFinite ? $0 : nil }, seconds: 0)
        switch decision {
        case .reject(let reasons):
            results.reasons = reasons
            results.seconds = Self.seconds(ContinuousClock.now - started)
            logger.warning("fine-tune run \(runID): rejected; model version \(base.version.id) stays active: \(reasons.joined(separator: "; "))")
            return FinetuneOutcome(status: .rejected, resultVersion: nil, lossCurve: losses, metricsJSON: metrics.json,
                                   resultsJSON: results.json, error: nil, reasons: reasons)
        case .promote(let chosen):
            metrics.after = chosen.report
            metrics.alpha = chosen.alpha
            let name = "finetune-run-\(runID)"
            try FileManager.default.createDirectory(at: checkpointDirectory, withIntermediateDirectories: true)
            let file = checkpointDirectory.appendingPathComponent("\(name).safetensors").standardizedFileURL
            let partial = checkpointDirectory.appendingPathComponent(".\(name).safetensors.partial")
            let trained = model.parameters
            let lineage: [String: String] = [
                "clipd.parent": base.version.name, "clipd.parent_id": "\(base.version.id)", "clipd.finetune.run": "\(runID)",
                "clipd.finetune.mode": p.mode, "clipd.finetune.steps": "\(p.steps)", "clipd.wise_ft.alpha": "\(chosen.alpha)",
            ]
            try await executor.run {
                try CheckpointWriter.write(WiseFT.interpolated(old: old, new: trained, alpha: chosen.alpha), to: partial, metadata: lineage)
                _ = try? FileManager.default.removeItem(at: file)
                try FileManager.default.moveItem(at: partial, to: file)
            }
            let version = try await store.promote(runID: runID, name: name, parent: base.version, checkpointPath: file.path,
                                                  config: cfg, metricsJSON: metrics.json)
            results.decision = "promoted"
            results.alpha = chosen.alpha
            results.checkpoint = file.path
            results.seconds = Self.seconds(ContinuousClock.now - started)
            logger.notice("fine-tune run \(runID): promoted model version \(version.id) (\(name), α=\(chosen.alpha)); recall \(before.recall.mean) → \(chosen.report.recall.mean), canary \(before.canaryAccuracy) → \(chosen.report.canaryAccuracy)")
            return FinetuneOutcome(status: .finished, resultVersion: version, lossCurve: losses, metricsJSON: metrics.json,
                                   resultsJSON: results.json, error: nil, reasons: [])
        }
    }

    private func encode(_ records: [CaptionedRecord], config: CLIPConfig, skipped: inout Int) async throws -> [EncodedPair] {
        let tokenize = self.tokenize
        let loaded = await load(records.map(\.imageURL))
        var out: [EncodedPair] = []
        for (record, result) in zip(records, loaded) {
            switch result {
            case .success(let pixels):
                do {
                    out.append(EncodedPair(id: record.id, pixels: pixels, tokens: try tokenize(record.caption, config.contextLength)))
                } catch {
                    skipped += 1
                    logger.warning("fine-tune: skipping record \(record.id): caption: \(error)")
                }
            case .failure(let error):
                skipped += 1
                logger.warning("fine-tune: skipping record \(record.id): \(error)")
            }
        }
        return out
    }

    /// Loads images `loadConcurrency` at a time, results in input order.
    private func load(_ urls: [String]) async -> [Result<[Float], Error>] {
        let images = self.images
        var results = [Result<[Float], Error>?](repeating: nil, count: urls.count)
        await withTaskGroup(of: (Int, Result<[Float], Error>).self) { group in
            var next = 0
            func add() {
                guard next < urls.count else { return }
                let i = next, url = urls[i]
                next += 1
                group.addTask {
                    do { return (i, .success(try await images.pixels(url))) } catch { return (i, .failure(error)) }
                }
            }
            for _ in 0..<max(1, loadConcurrency) { add() }
            while let (i, result) = await group.next() {
                results[i] = result
                add()
            }
        }
        return results.map { $0! }
    }

    private func loadCanary(config: CLIPConfig) async throws -> Canary {
        guard let labelSet = try await store.labelSet(named: canary.labelSet) else {
            throw PipelineFailure("finetune.canary", "canary label set \(canary.labelSet) does not exist (create it with clipd labels put)")
        }
        let loaded = await load(canary.images.map(\.imageURL))
        var examples: [CanaryExample] = []
        for (image, result) in zip(canary.images, loaded) {
            switch result {
            case .success(let pixels): examples.append(CanaryExample(imageURL: image.imageURL, label: image.label, pixels: pixels))
            case .failure(let error): throw PipelineFailure("finetune.canary", "canary image \(image.imageURL) cannot be loaded: \(error)")
            }
        }
        return try Canary(labelSet: labelSet, examples: examples)
    }

    static func describe(_ r: RetrievalRecall) -> String {
        String(format: "i→t R@1 %.3f R@5 %.3f, t→i R@1 %.3f R@5 %.3f", r.imageToText1, r.imageToText5, r.textToImage1, r.textToImage5)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// Draws training batches: a shuffled pass over the pairs, without two identical captions in
/// one batch (a duplicate would be a false negative for the contrastive loss).
struct BatchSampler {
    let captions: [[Int32]]
    var order: [Int]
    var cursor = 0
    var rng: SeededGenerator

    init(captions: [[Int32]], seed: UInt64) {
        self.captions = captions
        rng = SeededGenerator(seed: seed)
        order = Array(captions.indices).shuffled(using: &rng)
    }

    mutating func next(max size: Int) -> [Int] {
        var chosen: [Int] = [], seen = Set<[Int32]>()
        var visited = 0
        while chosen.count < size && visited < order.count {
            if cursor == order.count { order.shuffle(using: &rng); cursor = 0 }
            let i = order[cursor]
            cursor += 1
            visited += 1
            if seen.insert(captions[i]).inserted { chosen.append(i) }
        }
        return chosen
    }
}

struct RunMetrics: Codable {
    var before: EvaluationReport
    var after: EvaluationReport?
    var alpha: Float?
    var candidates: [WiseFTCandidate]
    var mode: String
    var steps: Int
    var trainPairs: Int
    var heldOutPairs: Int
    var canaryImages: Int
    var canaryLabelSet: String
    var runID: Int64
    var baseModelVersion: Int64

    enum CodingKeys: String, CodingKey {
        case before, after, alpha, candidates, mode, steps, trainPairs = "train_pairs", heldOutPairs = "held_out_pairs"
        case canaryImages = "canary_images", canaryLabelSet = "canary_label_set", runID = "finetune_run", baseModelVersion = "base_model_version"
    }

    var json: String { String(decoding: (try? FinetuneParameters.encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self) }
}

struct RunResults: Codable {
    var decision: String
    var alpha: Float?
    var reasons: [String]
    var checkpoint: String?
    var skippedImages: Int
    var finalLoss: Float?
    var seconds: Double

    enum CodingKeys: String, CodingKey {
        case decision, alpha, reasons, checkpoint, skippedImages = "skipped_images", finalLoss = "final_loss", seconds
    }

    var json: String { String(decoding: (try? FinetuneParameters.encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self) }
}
