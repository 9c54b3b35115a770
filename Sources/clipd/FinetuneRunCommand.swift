import ArgumentParser
import CLIP
import Fetch
import Foundation
import Logging
import Pipeline
import Postgres

/// Run parameters shared by `finetune schedule` (stored on the row) and `finetune run` (the
/// job's defaults, which a row's parameters override).
struct FinetuneParameterOptions: ParsableArguments {
    @Option(help: "What to train: lock-image (LiT), projections, last-vision-blocks:N, last-text-blocks:N, full.") var mode: String?
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Pairs per step.") var batch: Int?
    @Option(help: "Peak learning rate (warmup, then cosine decay).") var lr: Float?
    @Option(help: "Decoupled weight decay of ≥2-D weights except embeddings.") var weightDecay: Float?
    @Option(help: "Fraction of records held out for evaluation (by a hash of the record id).") var heldOutFraction: Double?
    @Option(help: "Use at most the newest N captioned records.") var maxPairs: Int?
    @Option(help: "WiSE-FT mixing weights to try, comma separated.") var alphas: String?
    @Option(help: "Largest absolute drop of canary accuracy that still promotes (default 0.02).") var canaryTolerance: Float?
    @Option(help: "Seed of the batch order.") var seed: UInt64?

    /// The options given, as a run-parameters JSON object.
    func json() throws -> String {
        var object: [String: Any] = [:]
        if let mode { object["mode"] = mode }
        if let steps { object["steps"] = steps }
        if let batch { object["batch"] = batch }
        if let lr { object["lr"] = Double(lr) }
        if let weightDecay { object["weight_decay"] = Double(weightDecay) }
        if let heldOutFraction { object["held_out_fraction"] = heldOutFraction }
        if let maxPairs { object["max_pairs"] = maxPairs }
        if let alphas {
            let values = alphas.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { throw ValidationError("--alphas must be numbers separated by commas, e.g. 0,0.25,0.5,0.75,1") }
            object["alphas"] = values.map { $0! }
        }
        if let canaryTolerance { object["canary_tolerance"] = Double(canaryTolerance) }
        if let seed { object["seed"] = seed }
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    /// Validates by applying the options to the defaults.
    func parameters(over base: FinetuneParameters = FinetuneParameters()) throws -> FinetuneParameters {
        do { return try base.overriding(with: try json()) } catch let failure as PipelineFailure { throw ValidationError(failure.message) }
    }
}

struct FinetuneScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Schedule a fine-tune run (a finetune_runs row); a running `clipd finetune run` picks it up.")
    @OptionGroup var db: DatabaseOptions
    @OptionGroup var parameters: FinetuneParameterOptions
    @Option(help: "When the run becomes due: any timestamp PostgreSQL reads, e.g. '2026-12-01 03:00+00' (default: now).") var at: String?
    @Option(help: "Model version id to start from (default: the active version when the run starts).") var baseVersion: Int64?

    func validate() throws { _ = try parameters.parameters() }

    func run() async throws {
        let logger = makeLogger("clipd.finetune")
        let store = PostgresFinetuneStore(database: ClipdDatabase(connection: try await db.connect(logger: logger)))
        do {
            let (id, scheduledAt) = try await store.schedule(parametersJSON: try parameters.json(), at: at, baseVersionID: baseVersion)
            printLine("{\"id\":\(id),\"scheduled_at\":\(jsonString(scheduledAt)),\"parameters\":\(try parameters.json())}")
        } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
            throw CommandFailure("invalid --at \(at ?? ""): \(error.message)")
        } catch let error as PostgresError where error.sqlState == "23503" {
            throw CommandFailure("no model version \(baseVersion.map(String.init) ?? "")")
        } catch {
            throw explainingMissingSchema(error)
        }
    }
}

struct FinetuneListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Fine-tune runs as JSON lines, newest first: status, parameters, loss curve, metrics, results.")
    @OptionGroup var db: DatabaseOptions
    @Option(help: "Only runs with this status (scheduled, running, finished, rejected, failed, cancelled).") var status: String?
    @Option(help: "At most this many runs.") var limit: Int = 100

    func validate() throws {
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let status, !["scheduled", "running", "finished", "rejected", "failed", "cancelled"].contains(status) {
            throw ValidationError("unknown --status \(status)")
        }
    }

    func run() async throws {
        let logger = makeLogger("clipd.finetune")
        let connection = try await db.connect(logger: logger)
        do {
            for row in try await connection.query("""
                SELECT row_to_json(r)::text FROM (
                    SELECT id, status, parameters, base_model_version_id, result_model_version_id, claimed_by,
                           scheduled_at, started_at, finished_at, coalesce(cardinality(loss_curve), 0) AS steps_done,
                           loss_curve, metrics, results, error
                      FROM finetune_runs WHERE \(status)::text IS NULL OR status = \(status)::text
                     ORDER BY id DESC LIMIT \(Int64(limit))) r
                """) {
                printLine(try row.decode(String.self, at: 0))
            }
        } catch {
            throw explainingMissingSchema(error)
        }
    }
}

/// The periodic job: one trainer at a time across machines (a session advisory lock), runs from
/// `finetune_runs` (inserted by `clipd finetune schedule`, plain SQL, or by this job's own
/// interval / new-pairs trigger), each trained on the stored pairs, evaluated, WiSE-FT
/// interpolated and promoted only through the canary gate.
struct FinetuneRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the fine-tune job: claim scheduled runs (or schedule by interval / new pairs), train, evaluate, gate, promote.")
    @OptionGroup var db: DatabaseOptions
    @OptionGroup var parameters: FinetuneParameterOptions
    @Flag(help: "Process at most one run, then exit (skip at once if another trainer holds the lock).") var once = false
    @Option(help: "Schedule a run when the last was scheduled at least this many seconds ago.") var interval: Double?
    @Option(help: "Schedule a run when at least this many captioned records arrived since the last run.") var minNewPairs: Int?
    @Option(help: "Canary file: {\"label_set\": NAME, \"images\": [{\"image_url\": URL, \"label\": LABEL}, …]}; NAME is a label set in the database.") var canary: String
    @Option(help: "Directory for promoted checkpoints (shared storage when daemons run elsewhere).") var checkpointDir: String = "clipd-checkpoints"
    @Option(help: "Directory whose files file:// image URLs may read. Repeatable.") var fileRoot: [String] = []
    @Flag(help: "Allow image URLs that resolve to loopback or private addresses.") var allowPrivateNetworks = false
    @Option(help: "Seconds between checks for due runs when idle (a NOTIFY on clipd_finetune_runs wakes it sooner).") var poll: Double = 30
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?
    @Option(help: "Name recorded in claimed_by (default: host:pid).") var worker: String?

    static let lockKey = PostgresAdvisoryLockKey(name: "clipd.finetune.trainer")

    func validate() throws {
        _ = try parameters.parameters()
        if let interval, !(interval > 0) { throw ValidationError("--interval must be positive seconds") }
        if let minNewPairs, minNewPairs < 1 { throw ValidationError("--min-new-pairs must be at least 1") }
        if !(poll > 0) { throw ValidationError("--poll must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() async throws {
        let logger = makeLogger("clipd.finetune")
        configureThreads(threads, logger: logger)
        let defaults = try parameters.parameters()
        let canarySpec: CanarySpec
        do {
            guard let data = FileManager.default.contents(atPath: canary) else { throw CommandFailure("cannot read canary file \(canary)") }
            canarySpec = try CanarySpec(json: data)
        } catch let failure as PipelineFailure {
            throw CommandFailure("\(canary): \(failure.message)")
        }
        let workerName = worker ?? "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"

        // The lock lives on its own session: it is held exactly as long as this process is connected.
        let lockConnection = try await db.connect(logger: logger)
        if try await !lockConnection.tryAdvisoryLock(Self.lockKey) {
            if once {
                logger.notice("another trainer holds the fine-tune lock; skipping this run")
                printLine("{\"skipped\":\"another trainer holds the fine-tune lock\"}")
                return
            }
            logger.notice("another trainer holds the fine-tune lock; waiting for it")
            while try await !lockConnection.tryAdvisoryLock(Self.lockKey) { try await Task.sleep(for: .seconds(5)) }
        }
        logger.info("holding the fine-tune lock as \(workerName)")

        let database = ClipdDatabase(connection: try await db.connect(logger: logger))
        let store = PostgresFinetuneStore(database: database)
        do {
            let abandoned = try await store.failAbandonedRuns()
            if abandoned > 0 { logger.warning("marked \(abandoned) run(s) left running by a stopped trainer as failed") }
        } catch {
            throw explainingMissingSchema(error)
        }
        var fetch = FetchConfiguration()
        fetch.allowedFileRoots = fileRoot.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        fetch.allowPrivateNetworks = allowPrivateNetworks
        let tokenizer = try CLIPTokenizerLoader.shared()
        let trigger = FinetuneTrigger(interval: interval, minNewPairs: minNewPairs)
        let checkpoints = URL(fileURLWithPath: checkpointDir).standardizedFileURL
        var listener: PostgresNotificationListener?
        var wakeups: WakeupFlag?
        if !once {
            let started = try await PostgresNotificationListener.start(configuration: database.connection.configuration,
                                                                       channels: ["clipd_finetune_runs"], logger: logger)
            listener = started
            wakeups = WakeupFlag(started.notifications)
        }
        defer { listener?.stop() }

        while true {
            if let run = try await store.claim(worker: workerName) {
                let runParameters: FinetuneParameters
                do {
                    runParameters = try defaults.overriding(with: run.parametersJSON)
                } catch let failure as PipelineFailure {
                    logger.error("fine-tune run \(run.id): \(failure.message)")
                    try await store.finish(runID: run.id, outcome: .failed(failure.message))
                    if once { return }
                    continue
                }
                logger.info("claimed fine-tune run \(run.id)")
                // The model's image size is only known once the base checkpoint is read; the
                // loader preprocesses for the model the job loads, so build it per run.
                let config: CLIPConfig
                do {
                    let base = try await store.baseModel(versionID: run.baseModelVersionID)
                    config = try CheckpointLoader.load(path: base.checkpointPath).config
                } catch {
                    let message = (error as? PipelineFailure)?.message ?? (error as? CLIPError)?.message ?? "\(error)"
                    logger.error("fine-tune run \(run.id): \(message)")
                    try await store.finish(runID: run.id, outcome: .failed(message))
                    printLine("{\"run\":\(run.id),\"status\":\"failed\",\"error\":\(jsonString(message))}")
                    if once { return }
                    continue
                }
                let images = ImageLoader(model: config, fetch: fetch, workers: 2, allowPlainPaths: false)
                let job = FinetuneJob(store: store, images: images, tokenize: { text, length in
                    tokenizer.tokenize(text, contextLength: length).ids.map(Int32.init)
                }, canary: canarySpec, checkpointDirectory: checkpoints, logger: logger)
                let outcome = try await job.execute(runID: run.id, baseVersionID: run.baseModelVersionID, parameters: runParameters)
                printLine("{\"run\":\(run.id),\"status\":\(jsonString(outcome.status.rawValue)),\"model_version\":\(outcome.resultVersion.map { String($0.id) } ?? "null"),"
                          + "\"reasons\":[\(outcome.reasons.map(jsonString).joined(separator: ","))],\"error\":\(outcome.error.map(jsonString) ?? "null")}")
                if once { return }
                continue
            }
            let (lastRun, newPairs) = try await store.activitySinceLastRun()
            if let reason = trigger.reasonToSchedule(now: Date(), lastRun: lastRun, newPairs: newPairs) {
                let (id, _) = try await store.schedule(parametersJSON: "{}")
                logger.info("scheduled fine-tune run \(id): \(reason)")
                continue
            }
            if once {
                logger.info("no fine-tune run is due")
                printLine("{\"skipped\":\"no run is due\"}")
                return
            }
            var wait = poll
            if let next = try await store.secondsUntilNextScheduledRun() { wait = min(wait, max(0.5, next)) }
            if let interval, let lastRun { wait = min(wait, max(0.5, interval - Date().timeIntervalSince(lastRun))) }
            logger.debug("idle; next check in \(Int(wait))s")
            await waitForNotification(wakeups, seconds: wait)
        }
    }

    /// Returns after `seconds`, or within half a second of a run being inserted.
    private func waitForNotification(_ wakeup: WakeupFlag?, seconds: Double) async {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if wakeup?.consume() == true { return }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// Set by every notification a background task reads; the idle loop consumes it.
final class WakeupFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false
    private var task: Task<Void, Never>?

    init(_ notifications: AsyncStream<PostgresNotification>) {
        task = Task { [weak self] in
            for await _ in notifications { self?.raise() }
        }
    }

    deinit { task?.cancel() }

    private func raise() { lock.withLock { raised = true } }

    func consume() -> Bool { lock.withLock { defer { raised = false }; return raised } }
}
