import CLIP
import CLIPTokenizer
import Executors
import Fetch
import Foundation
import Logging
import Pipeline
import Postgres
import ServiceLifecycle
import Storage
import Training

/// The periodic fine-tune job as a service: one trainer at a time across machines (a session
/// advisory lock), runs from `finetune_runs` (inserted by `clipd finetune schedule`, plain SQL,
/// or by this job's own interval / new-pairs trigger), each trained, evaluated, WiSE-FT
/// interpolated and promoted only through the canary gate. Idle, it sleeps until a NOTIFY on
/// `clipd_finetune_runs`, the next scheduled run, or the trigger's interval.
public struct FinetuneService: Service {
    public struct Options: Sendable {
        /// The job's run parameters; a run row's `parameters` override them.
        public var defaults = FinetuneParameters()
        public var canary: CanarySpec
        /// Where promoted checkpoints are written (shared storage when daemons run elsewhere).
        public var checkpointDirectory: URL
        public var fetch = FetchConfiguration()
        /// Process at most one run, then return (skip at once if another trainer holds the lock).
        public var once = false
        public var trigger = FinetuneTrigger()
        /// Longest sleep between checks when nothing wakes the job sooner.
        public var poll: Double = 30
        /// Name recorded in `claimed_by`.
        public var worker: String
        /// The job's own consumer of the topic, keeping the training set (nil: no consumer).
        public var collector: TrainingSetCollector.Options?
        /// Train on the training set from the stream or on `records` (`--source`).
        public var pairSource: PairSource = .database

        public init(canary: CanarySpec, checkpointDirectory: URL, worker: String) {
            self.canary = canary
            self.checkpointDirectory = checkpointDirectory
            self.worker = worker
        }
    }

    /// What the job did, for the caller to report.
    public enum Event: Sendable {
        case skipped(String)
        case finished(runID: Int64, FinetuneOutcome)
    }

    public static let lockKey = PostgresAdvisoryLockKey(name: "clipd.finetune.trainer")

    let configuration: PostgresConfiguration
    let options: Options
    let logger: Logger
    let report: @Sendable (Event) -> Void

    public init(configuration: PostgresConfiguration, options: Options, logger: Logger, report: @escaping @Sendable (Event) -> Void) {
        self.configuration = configuration
        self.options = options
        self.logger = logger
        self.report = report
    }

    /// The job as a service of `clipd run` (`finetune_enabled`): it consumes the daemon's topic with
    /// its own group (`finetune_group`) into the training set and trains on it.
    static func inDaemon(config: DaemonConfig, configuration: PostgresConfiguration, worker: String, logger: Logger) throws -> FinetuneService {
        guard let path = config.finetuneCanary, let data = FileManager.default.contents(atPath: path) else {
            throw DaemonError("cannot read finetune_canary \(config.finetuneCanary ?? "")")
        }
        let canary: CanarySpec
        do { canary = try CanarySpec(json: data) } catch let error as TrainingError { throw DaemonError("finetune_canary \(path): \(error.message)") }
        var options = Options(canary: canary, checkpointDirectory: URL(fileURLWithPath: config.finetuneCheckpointDir).standardizedFileURL, worker: worker)
        options.fetch = config.fetchConfiguration
        options.trigger = FinetuneTrigger(interval: config.finetuneIntervalSeconds > 0 ? config.finetuneIntervalSeconds : nil,
                                          minNewPairs: config.finetuneMinNewPairs > 0 ? config.finetuneMinNewPairs : nil)
        options.pairSource = .stream
        var collector = TrainingSetCollector.Options(brokers: config.brokers, topic: config.topic, group: config.finetuneGroup)
        collector.maxSamples = config.finetuneTrainingSetSize
        options.collector = collector
        return FinetuneService(configuration: configuration, options: options, logger: logger) { event in
            if case .finished(let runID, let outcome) = event {
                logger.info("fine-tune run ended", metadata: ["run": "\(runID)", "status": "\(outcome.status.rawValue)"])
            }
        }
    }

    /// Runs as the only service of a ServiceGroup that turns SIGTERM and SIGINT into a graceful
    /// shutdown (`clipd finetune run`): a run in progress stops between two steps as `interrupted`.
    public func runHandlingSignals() async throws {
        var configuration = ServiceGroupConfiguration(services: [.init(service: self, successTerminationBehavior: .gracefullyShutdownGroup)], logger: logger)
        configuration.gracefulShutdownSignals = [.sigterm, .sigint]
        try await ServiceGroup(configuration: configuration).run()
    }

    public func run() async throws {
        let doorbell = Doorbell()
        let stopping = Locked(false)
        try await withGracefulShutdownHandler {
            try await work(doorbell: doorbell, stopping: stopping)
        } onGracefulShutdown: {
            stopping.withLock { $0 = true }
            doorbell.ring()
        }
    }

    private func work(doorbell: Doorbell, stopping: Locked<Bool>) async throws {
        // The lock lives on its own session: it is held exactly as long as this process is connected.
        let lockConnection = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        defer { Task { await lockConnection.close() } }
        if try await !lockConnection.tryAdvisoryLock(Self.lockKey) {
            if options.once {
                logger.notice("another trainer holds the fine-tune lock; skipping this run")
                report(.skipped("another trainer holds the fine-tune lock"))
                return
            }
            logger.notice("another trainer holds the fine-tune lock; waiting for it")
            while try await !lockConnection.tryAdvisoryLock(Self.lockKey) {
                if stopping.value { return }
                await doorbell.wait(seconds: 5)
            }
        }
        logger.info("holding the fine-tune lock as \(options.worker)")

        let database = ClipdDatabase(connection: try await PostgresConnection.connect(configuration: configuration, logger: logger))
        defer { Task { [connection = database.connection] in await connection.close() } }
        let abandoned = try await database.failAbandonedFinetuneRuns()
        if abandoned > 0 { logger.warning("marked \(abandoned) run(s) left running by a stopped trainer as failed") }

        // The training set: with --once, consumed up to the end of the topic before the run;
        // otherwise consumed alongside, for as long as the job runs.
        var collecting: Task<Void, Error>?
        if let collectorOptions = options.collector {
            let collector = TrainingSetCollector(options: collectorOptions, configuration: configuration, fetch: options.fetch, logger: logger)
            let model = try await preprocessingModel(database)
            if options.once {
                let stats = try await collector.run(model: model, untilCaughtUp: true, stopping: { stopping.value })
                logger.info("training set caught up with the topic", metadata: ["added": "\(stats.added)", "consumed": "\(stats.consumed)"])
            } else {
                collecting = Task { try await collector.run(model: model, untilCaughtUp: false, stopping: { stopping.value }) }
            }
        }
        defer { collecting?.cancel() }

        var listener: PostgresNotificationListener?
        if !options.once {
            let started = try await PostgresNotificationListener.start(configuration: configuration, channels: ["clipd_finetune_runs"], logger: logger)
            listener = started
            Task { for await _ in started.notifications { doorbell.ring() } }
        }
        defer { listener?.stop() }

        var job = makeJob(database: database)
        // A shutdown stops the run between two steps; it is recorded as `interrupted`.
        job.shouldStop = { stopping.value }
        while !stopping.value {
            if let run = try await database.claimFinetuneRun(worker: options.worker) {
                logger.info("claimed fine-tune run \(run.id)")
                let outcome: FinetuneOutcome
                do {
                    let parameters = try options.defaults.overriding(with: run.parametersJSON)
                    outcome = try await job.execute(runID: run.id, baseVersionID: run.baseModelVersionID, parameters: parameters)
                } catch let error as TrainingError {
                    logger.error("fine-tune run \(run.id): \(error.message)")
                    outcome = .failed(error.message)
                    try await database.finish(runID: run.id, outcome: outcome)
                }
                report(.finished(runID: run.id, outcome))
                if options.once { return }
                continue
            }
            let (lastRun, newPairs) = options.pairSource == .stream
                ? try await database.trainingSetActivitySinceLastRun() : try await database.finetuneActivitySinceLastRun()
            if let reason = options.trigger.reasonToSchedule(now: Date(), lastRun: lastRun, newPairs: newPairs) {
                let (id, _) = try await database.scheduleFinetuneRun()
                logger.info("scheduled fine-tune run \(id): \(reason)")
                continue
            }
            if options.once {
                logger.info("no fine-tune run is due")
                report(.skipped("no run is due"))
                return
            }
            var wait = options.poll
            if let next = try await database.secondsUntilNextScheduledRun() { wait = min(wait, max(0.5, next)) }
            if let interval = options.trigger.interval, let lastRun {
                wait = min(wait, max(0.5, interval - Date().timeIntervalSince(lastRun)))
            }
            logger.debug("idle; next check in \(Int(wait))s")
            await doorbell.wait(seconds: wait)
        }
    }

    private func makeJob(database: ClipdDatabase) -> FinetuneJob {
        let fetch = options.fetch
        var job = FinetuneJob(
            store: database,
            images: { config in ImageLoader(model: config, fetch: fetch, workers: 2, allowPlainPaths: false) },
            tokenize: { text, length in try CLIPTokenizer.shared().tokenize(text, contextLength: length).ids.map(Int32.init) },
            canary: options.canary, checkpointDirectory: options.checkpointDirectory, logger: logger)
        job.pairSource = options.pairSource
        return job
    }

    /// The configuration the training set is preprocessed for: the active version's (runs start
    /// from it unless a row names another base; a base that preprocesses differently re-fetches).
    private func preprocessingModel(_ database: ClipdDatabase) async throws -> CLIPConfig {
        guard let active = try await database.activeModelVersion(), let path = active.checkpointPath else {
            throw TrainingError(.noModel, "the training set is preprocessed for the active model version, and none (with a checkpoint) is active")
        }
        return try await ModelRegistry.checkpoint(path).config
    }
}

/// Wakes one waiter: a notification, a shutdown, or the waiter's own timeout. A ring while
/// nobody waits is kept for the next wait.
final class Doorbell: Sendable {
    private let state = Locked<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else { state.rung = true; return nil }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    func wait(seconds: Double) async {
        let timer = Task { [self] in
            try? await Task.sleep(for: .milliseconds(Int(max(0, seconds) * 1000)))
            if !Task.isCancelled { ring() }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.rung { state.rung = false; return true }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
        timer.cancel()
    }
}
