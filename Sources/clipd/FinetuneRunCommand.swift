import ArgumentParser
import Daemon
import Fetch
import Foundation
import Logging
import Postgres
import Storage
import Training

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
        // JSON cannot carry inf or nan: refuse them here, naming the flag (the ranges are the
        // parameters' own, checked by FinetuneParameters.validate).
        try FlagRange.checkFinite(lr, "--lr")
        try FlagRange.checkFinite(weightDecay, "--weight-decay")
        try FlagRange.checkFinite(heldOutFraction, "--held-out-fraction")
        try FlagRange.checkFinite(canaryTolerance, "--canary-tolerance")
        do { return try base.overriding(with: try json()) } catch let failure as TrainingError { throw CommandFailure(failure.message) }
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
        let database = ClipdDatabase(connection: try await db.connect(logger: logger))
        do {
            let (id, scheduledAt) = try await database.scheduleFinetuneRun(parametersJSON: try parameters.json(), at: at, baseVersionID: baseVersion)
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
        try FlagRange.check(limit, "--limit", 1...100_000)
        if let status, !["scheduled", "running", "finished", "rejected", "failed", "cancelled"].contains(status) {
            throw ValidationError("unknown --status \(status)")
        }
    }

    func run() async throws {
        let logger = makeLogger("clipd.finetune")
        let database = ClipdDatabase(connection: try await db.connect(logger: logger))
        do {
            for run in try await database.finetuneRunsJSON(status: status, limit: limit) { printLine(run) }
        } catch {
            throw explainingMissingSchema(error)
        }
    }
}

/// The periodic job (`FinetuneService`): flags → options; one JSON line per run or skip.
extension PairSource: ExpressibleByArgument {}

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
    @Option(help: "Kafka bootstrap servers of the topic to collect the training set from (also CLIPD_BROKERS or brokers in --config). Given: --source stream is the default.") var brokers: String?
    @Option(help: "Topic of the records (default: CLIPD_TOPIC, topic in --config, else clipd.records).") var topic: String?
    @Option(help: "The job's own consumer group (not the daemons').") var group: String = "clipd-finetune"
    @Option(help: "JSON configuration file of the daemon (`clipd run --config`): its brokers and topic are used.") var config: String?
    @Option(help: "Where pairs come from: stream (the training set this job's consumer group keeps from the topic) or database (captioned records the daemons wrote).") var source: PairSource?
    @Option(help: "The training set keeps the newest this many samples (stream source).") var trainingSetSize: Int = 10_000
    @Option(help: "With --once: the longest wait, in seconds, for the training set to reach the end of the topic.") var catchUpTimeout: Double = 120

    func validate() throws {
        _ = try parameters.parameters()
        try FlagRange.checkPositive(interval, "--interval", atMost: 366 * FlagRange.day)
        try FlagRange.check(minNewPairs, "--min-new-pairs", 1...1_000_000_000)
        try FlagRange.checkPositive(poll, "--poll", atMost: FlagRange.day)
        try FlagRange.check(threads, "--threads", 1...FlagRange.maxThreads)
        if trainingSetSize < 1 { throw ValidationError("--training-set-size must be at least 1") }
        if !(catchUpTimeout > 0) { throw ValidationError("--catch-up-timeout must be positive") }
        if group.isEmpty { throw ValidationError("--group must not be empty") }
    }

    /// The stream to collect from: brokers and topic from the flags, else CLIPD_BROKERS /
    /// CLIPD_TOPIC, else the --config file; nil when no brokers are given anywhere.
    func stream() throws -> (brokers: String, topic: String)? {
        let environment = ProcessInfo.processInfo.environment
        var file: [String: Any] = [:]
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else { throw CommandFailure("cannot read config file \(config)") }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw CommandFailure("config file \(config) is not a JSON object")
            }
            file = object
        }
        let givenBrokers = brokers ?? environment["CLIPD_BROKERS"] ?? file["brokers"] as? String
        let givenTopic = topic ?? environment["CLIPD_TOPIC"] ?? file["topic"] as? String ?? DaemonConfig().topic
        return givenBrokers.map { ($0, givenTopic) }
    }

    func run() async throws {
        let logger = makeLogger("clipd.finetune")
        configureThreads(threads, logger: logger)
        let canarySpec: CanarySpec
        do {
            guard let data = FileManager.default.contents(atPath: canary) else { throw CommandFailure("cannot read canary file \(canary)") }
            canarySpec = try CanarySpec(json: data)
        } catch let failure as TrainingError {
            throw CommandFailure("\(canary): \(failure.message)")
        }
        var options = FinetuneService.Options(
            canary: canarySpec, checkpointDirectory: URL(fileURLWithPath: checkpointDir).standardizedFileURL,
            worker: worker ?? "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)")
        options.defaults = try parameters.parameters()
        options.fetch.allowedFileRoots = fileRoot.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        options.fetch.allowPrivateNetworks = allowPrivateNetworks
        options.once = once
        options.trigger = FinetuneTrigger(interval: interval, minNewPairs: minNewPairs)
        options.poll = poll
        let stream = try stream()
        options.pairSource = source ?? (stream == nil ? .database : .stream)
        if options.pairSource == .stream {
            guard let stream else { throw CommandFailure("--source stream needs --brokers (or CLIPD_BROKERS, or brokers in --config)") }
            var collector = TrainingSetCollector.Options(brokers: stream.brokers, topic: stream.topic, group: group)
            collector.maxSamples = trainingSetSize
            collector.catchUpTimeout = catchUpTimeout
            options.collector = collector
        }
        let service = FinetuneService(configuration: db.configuration, options: options, logger: logger) { event in
            switch event {
            case .skipped(let why):
                printLine("{\"skipped\":\(jsonString(why))}")
            case .finished(let runID, let outcome):
                printLine("{\"run\":\(runID),\"status\":\(jsonString(outcome.status.rawValue)),\"model_version\":\(outcome.resultVersion.map { String($0.id) } ?? "null"),"
                          + "\"reasons\":[\(outcome.reasons.map(jsonString).joined(separator: ","))],\"error\":\(outcome.error.map(jsonString) ?? "null")}")
            }
        }
        do {
            // SIGTERM/SIGINT: a run in progress stops between two steps and is marked
            // `interrupted`; the next trainer trains it again on the same pairs and seed. The
            // training set and its offsets are committed per batch, so collection resumes where
            // it stopped. (kill -9 leaves the run `running` until the next trainer marks it failed.)
            try await service.runHandlingSignals()
        } catch {
            throw explainingMissingSchema(error)
        }
    }
}
