import CLIP
import Executors
import Foundation
import Logging
import Pipeline
import Tensor

/// One fine-tune run: load the base model and the stored pairs, evaluate, train, interpolate
/// (WiSE-FT), gate, and promote or reject. Numeric work runs on the job's own thread, never on
/// Swift's cooperative pool.
public struct FinetuneJob: Sendable {
    public let store: FinetuneRunStore
    /// The image source for the base model's input size and normalisation (known once its
    /// checkpoint is read, which happens once per run).
    public let images: @Sendable (CLIPConfig) -> TrainingImageSource
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
    /// Pairs from the stream's training set (stored crops) or from `records` (images fetched again).
    public var pairSource: PairSource = .database
    /// Checked before every optimizer step: true stops the run as `interrupted` (a shutdown).
    public var shouldStop: @Sendable () -> Bool = { false }
    private let executor = WorkerPool(name: "clipd-train", width: 1)

    public init(store: FinetuneRunStore, images: @escaping @Sendable (CLIPConfig) -> TrainingImageSource, tokenize: @escaping @Sendable (String, Int) throws -> [Int32],
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
        } catch let interruption as FinetuneInterruption {
            let message = "interrupted at step \(interruption.step) of \(parameters.steps); the next trainer resumes it from that step"
            logger.notice("fine-tune run \(runID): \(message)")
            outcome = FinetuneOutcome(status: .interrupted, lossCurve: losses, error: message)
        } catch {
            let message = (error as? TrainingError)?.message ?? (error as? CLIPError)?.message ?? "\(error)"
            logger.error("fine-tune run \(runID) failed: \(message)")
            outcome = FinetuneOutcome(status: .failed, resultVersion: nil, lossCurve: losses, metricsJSON: nil, resultsJSON: nil,
                                      error: message, reasons: [])
        }
        try await store.finish(runID: runID, outcome: outcome)
        if outcome.status != .interrupted {
            try? FileManager.default.removeItem(at: FinetuneResume.url(directory: checkpointDirectory, runID: runID))
        }
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
        let model: CLIPModel
        do {
            model = try await executor.run { CLIPModel(checkpoint: try CheckpointLoader.load(path: path)) }
        } catch let error as CLIPError {
            throw TrainingError(.noModel, "base model version \(base.version.id) (\(base.version.name)): \(error.message)")
        }
        let cfg = model.config
        let images = self.images(cfg)

        // Pairs: the held-out split by record id, images loaded, captions tokenized.
        // The pairs are fixed at the run's first start: an interrupted run trains again on the same ones.
        let records: [CaptionedRecord]
        if let fixed = try await store.runPairs(runID: runID) {
            records = fixed
            logger.info("fine-tune run \(runID): resuming on the \(fixed.count) pairs fixed at its first start")
        } else {
            records = pairSource == .stream ? try await store.trainingSetPairs(limit: p.maxPairs) : try await store.captionedRecords(limit: p.maxPairs)
            try await store.recordRunPairs(runID: runID, pairs: records)
        }
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
        let heldOut = try await encode(Array(distinctHeldOut.prefix(maxHeldOut)), config: cfg, images: images, skipped: &skipped)
        var sampleRNG = SeededGenerator(seed: p.seed &+ UInt64(bitPattern: runID) &+ 1)
        let usable = p.steps * p.batch
        let trainSample = trainRecords.count <= usable ? trainRecords : Array(trainRecords.shuffled(using: &sampleRNG).prefix(usable))
        let training = try await encode(trainSample, config: cfg, images: images, skipped: &skipped)
        logger.info("fine-tune run \(runID): \(training.count) training pairs (of \(trainRecords.count)), \(heldOut.count) held-out pairs, \(skipped) skipped")
        guard training.count >= 2 else {
            throw TrainingError(.notEnoughPairs, "\(training.count) usable training pairs (of \(records.count) captioned records); need at least 2")
        }
        guard Set(training.map(\.tokens)).count >= 2 else {
            throw TrainingError(.notEnoughPairs, "the \(training.count) training pairs have fewer than 2 distinct captions; contrastive training compares different captions")
        }
        guard heldOut.count >= 2 else {
            throw TrainingError(.notEnoughPairs, "\(heldOut.count) usable held-out pairs (held_out_fraction \(p.heldOutFraction) of \(records.count) captioned records); need at least 2")
        }

        let tokenize = self.tokenize, contextLength = cfg.contextLength
        let evaluator = ModelEvaluator(heldOut: heldOut, canary: try await loadCanary(images: images), tokenize: { try tokenize($0, contextLength) })
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
        // A run interrupted by a shutdown continues from the step it reached: weights, optimizer
        // state and loss curve from its resume file, the batch order replayed to that step.
        let resumeURL = FinetuneResume.url(directory: checkpointDirectory, runID: runID)
        let fingerprint = FinetuneResume.fingerprint(p, parameterCount: model.parameters.count)
        var firstStep = 0
        var resumedFromStep: Int?
        if let saved = try? FinetuneResume.load(from: resumeURL, fingerprint: fingerprint), saved.step < p.steps,
           saved.parameters.count == model.parameters.count {
            saved.parameters.withUnsafeBufferPointer { model.parameters.storage.update(from: $0.baseAddress!, count: model.parameters.count) }
            model.weightsDidChange()
            try trainer.optimizer.restore(step: saved.adamStep, m: saved.m, v: saved.v)
            for _ in 0..<saved.step { _ = sampler.next(max: p.batch) }
            losses = saved.losses
            firstStep = saved.step
            resumedFromStep = saved.step
            logger.notice("fine-tune run \(runID): resuming at step \(saved.step) of \(p.steps) with the saved weights and optimizer state")
        }
        let trainStart = ContinuousClock.now
        for step in firstStep..<p.steps {
            if shouldStop() {
                let lossesSoFar = losses
                do {
                    try await executor.run { try FinetuneResume.save(to: resumeURL, step: step, losses: lossesSoFar, model: model,
                                                                      optimizer: trainer.optimizer, fingerprint: fingerprint) }
                } catch {
                    logger.error("fine-tune run \(runID): cannot save its state for resuming: \(error); it will be trained again from the start")
                }
                throw FinetuneInterruption(step: step)
            }
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
        results.resumedFromStep = resumedFromStep
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
            let trained = model.parameters
            let lineage: [String: String] = [
                "clipd.parent": base.version.name, "clipd.parent_id": "\(base.version.id)", "clipd.finetune.run": "\(runID)",
                "clipd.finetune.mode": p.mode, "clipd.finetune.steps": "\(p.steps)", "clipd.wise_ft.alpha": "\(chosen.alpha)",
            ]
            try await executor.run {
                // Written to an exclusively created temporary file beside it, then renamed.
                try CheckpointWriter.write(WiseFT.interpolated(old: old, new: trained, alpha: chosen.alpha), to: file, metadata: lineage)
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

    private func encode(_ records: [CaptionedRecord], config: CLIPConfig, images: TrainingImageSource,
                        skipped: inout Int) async throws -> [EncodedPair] {
        let tokenize = self.tokenize, contextLength = config.contextLength
        // Stream samples carry the crop and token ids made when they were collected; they are
        // used when the model preprocesses the same way, else the image is fetched again.
        let sampleIDs = records.compactMap(\.sampleID)
        let stored = sampleIDs.isEmpty ? [:] : try await store.trainingSampleInputs(ids: sampleIDs)
        let key = TrainingPreprocessing.key(config)
        let usable = records.map { record -> StoredTrainingInput? in
            guard let id = record.sampleID, let input = stored[id], input.preprocessing == key,
                  input.pixels.count == 3 * config.imageSize * config.imageSize, input.tokens.count == contextLength else { return nil }
            return input
        }
        // Captions are tokenized on the job's own thread, not on Swift's cooperative pool.
        let captions = records.map(\.caption)
        let tokens = await executor.run {
            zip(captions, usable).map { caption, input -> Result<[Int32], Error> in input.map { .success($0.tokens) } ?? Result { try tokenize(caption, contextLength) } }
        }
        let missing = records.indices.filter { usable[$0] == nil }
        let fetched = await load(missing.map { records[$0].imageURL }, from: images)
        var loaded = usable.map { $0.map { Result<[Float], Error>.success($0.pixels) } }
        for (i, result) in zip(missing, fetched) { loaded[i] = result }
        var out: [EncodedPair] = []
        for ((record, result), tokenized) in zip(zip(records, loaded.map { $0! }), tokens) {
            switch (result, tokenized) {
            case (.success(let pixels), .success(let ids)):
                out.append(EncodedPair(id: record.id, pixels: pixels, tokens: ids))
            case (.success, .failure(let error)):
                skipped += 1
                logger.warning("fine-tune: skipping record \(record.id): caption: \(error)")
            case (.failure(let error), _):
                skipped += 1
                logger.warning("fine-tune: skipping record \(record.id): \(error)")
            }
        }
        return out
    }

    /// Loads images `loadConcurrency` at a time, results in input order.
    private func load(_ urls: [String], from images: TrainingImageSource) async -> [Result<[Float], Error>] {
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

    private func loadCanary(images: TrainingImageSource) async throws -> Canary {
        guard let labelSet = try await store.labelSet(named: canary.labelSet) else {
            throw TrainingError(.canary, "canary label set \(canary.labelSet) does not exist (create it with clipd labels put)")
        }
        let loaded = await load(canary.images.map(\.imageURL), from: images)
        var examples: [CanaryExample] = []
        for (image, result) in zip(canary.images, loaded) {
            switch result {
            case .success(let pixels): examples.append(CanaryExample(imageURL: image.imageURL, label: image.label, pixels: pixels))
            case .failure(let error): throw TrainingError(.canary, "canary image \(image.imageURL) cannot be loaded: \(error)")
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
