import ArgumentParser
import Daemon
import Foundation

/// `clipd run`: the daemon.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: Kafka records → CLIP embeddings and zero-shot tags in PostgreSQL.",
        discussion: "Configuration: defaults < --config FILE (JSON) < CLIPD_* environment variables < flags. See Deploy/README.md for every key. SIGTERM/SIGINT drain in-flight batches, store offsets and exit 0."
    )

    @Option(help: "JSON configuration file.") var config: String?
    @Option var brokers: String?
    @Option var topic: String?
    @Option var group: String?
    @Option(name: .customLong("dlq-topic")) var dlqTopic: String?
    @Option(name: .customLong("assignment-strategy")) var assignmentStrategy: String?
    @Option(name: .customLong("database-url")) var databaseURL: String?
    @Option var model: String?
    @Option(name: .customLong("label-set")) var labelSet: String?
    @Option(name: .customLong("top-k")) var topK: Int?
    @Option(name: .customLong("allow-file-root"), help: "Directory file:// image URLs may point into (repeatable).") var allowFileRoot: [String] = []
    @Flag(name: .customLong("allow-private-networks")) var allowPrivateNetworks = false
    @Option(name: .customLong("batch-size")) var batchSize: Int?
    @Option(name: .customLong("batch-latency-ms")) var batchLatencyMs: Int?
    @Option var workers: Int?
    @Option var threads: Int?
    @Option(name: .customLong("max-in-flight")) var maxInFlight: Int?
    @Option(name: .customLong("max-in-flight-bytes")) var maxInFlightBytes: Int?
    @Option(name: .customLong("http-port")) var httpPort: Int?
    @Option(name: .customLong("http-host")) var httpHost: String?
    @Option(name: .customLong("drain-timeout-seconds")) var drainTimeoutSeconds: Double?
    @Option(name: .customLong("progress-interval-seconds")) var progressIntervalSeconds: Double?
    @Option(name: .customLong("fetch-timeout-seconds")) var fetchTimeoutSeconds: Double?
    @Option(name: .customLong("fetch-connect-timeout-seconds")) var fetchConnectTimeoutSeconds: Double?
    @Option(name: .customLong("fetch-max-bytes")) var fetchMaxBytes: Int?
    @Option(name: .customLong("fetch-retries")) var fetchRetries: Int?
    @Option(name: .customLong("fetch-workers")) var fetchWorkers: Int?
    @Option(name: .customLong("max-image-pixels")) var maxImagePixels: Int?
    @Option(name: .customLong("backfill-enabled"), help: "Re-embed stored records on activation: true or false.") var backfillEnabled: Bool?
    @Option(name: .customLong("backfill-batch-size")) var backfillBatchSize: Int?
    @Option(name: .customLong("backfill-chunk-size")) var backfillChunkSize: Int?
    @Option(name: .customLong("backfill-lease-seconds")) var backfillLeaseSeconds: Double?
    @Option(name: .customLong("search-coverage-threshold")) var searchCoverageThreshold: Double?
    @Option(name: .customLong("keep-model-versions")) var keepModelVersions: Int?
    @Option(name: .customLong("finetune-enabled"), help: "Run the fine-tune job inside the daemon: true or false.") var finetuneEnabled: Bool?
    @Option(name: .customLong("finetune-group")) var finetuneGroup: String?
    @Option(name: .customLong("finetune-canary")) var finetuneCanary: String?
    @Option(name: .customLong("finetune-checkpoint-dir")) var finetuneCheckpointDir: String?
    @Option(name: .customLong("finetune-interval-seconds")) var finetuneIntervalSeconds: Double?
    @Option(name: .customLong("finetune-min-new-pairs")) var finetuneMinNewPairs: Int?
    @Option(name: .customLong("finetune-training-set-size")) var finetuneTrainingSetSize: Int?
    @Option(name: .customLong("fetch-user-agent")) var fetchUserAgent: String?
    @Option(name: .customLong("fetch-host-concurrency")) var fetchHostConcurrency: Int?
    @Option(name: .customLong("fetch-host-min-interval-ms")) var fetchHostMinIntervalMs: Int?
    @Option(name: .customLong("fetch-host-header"),
            help: "'HOST Name: value' (repeatable). Command lines are visible to other users: put credentials in the config file or CLIPD_FETCH_HOST_HEADERS instead.")
    var fetchHostHeader: [String] = []
    @Flag(name: .customLong("print-config"), help: "Print the effective configuration as JSON and exit.") var printConfig = false
    @Option(name: .customLong("stop-when-idle"), help: "Drain and exit after this many seconds without new records (demos, batch jobs).")
    var stopWhenIdle: Double?

    func validate() throws {
        try FlagRange.checkPositive(stopWhenIdle, "--stop-when-idle", atMost: FlagRange.day)
        for flag in fetchHostHeader {
            guard let space = flag.firstIndex(of: " "), flag[space...].contains(":") else {
                throw ValidationError("--fetch-host-header must look like 'images.example.com Authorization: Bearer …'")
            }
        }
    }

    var overrides: [String: Any] {
        var o: [String: Any] = [:]
        let pairs: [(String, Any?)] = [
            ("brokers", brokers), ("topic", topic), ("group", group), ("dlq_topic", dlqTopic),
            ("assignment_strategy", assignmentStrategy), ("database_url", databaseURL), ("model", model),
            ("label_set", labelSet), ("top_k", topK), ("batch_size", batchSize), ("batch_latency_ms", batchLatencyMs),
            ("workers", workers), ("threads", threads), ("max_in_flight", maxInFlight), ("max_in_flight_bytes", maxInFlightBytes), ("http_port", httpPort),
            ("http_host", httpHost), ("drain_timeout_seconds", drainTimeoutSeconds),
            ("progress_interval_seconds", progressIntervalSeconds), ("fetch_timeout_seconds", fetchTimeoutSeconds),
            ("fetch_connect_timeout_seconds", fetchConnectTimeoutSeconds), ("fetch_max_bytes", fetchMaxBytes),
            ("fetch_retries", fetchRetries), ("fetch_workers", fetchWorkers), ("max_image_pixels", maxImagePixels),
            ("backfill_enabled", backfillEnabled), ("backfill_batch_size", backfillBatchSize),
            ("backfill_chunk_size", backfillChunkSize), ("backfill_lease_seconds", backfillLeaseSeconds),
            ("search_coverage_threshold", searchCoverageThreshold), ("keep_model_versions", keepModelVersions),
            ("finetune_enabled", finetuneEnabled), ("finetune_group", finetuneGroup), ("finetune_canary", finetuneCanary),
            ("finetune_checkpoint_dir", finetuneCheckpointDir), ("finetune_interval_seconds", finetuneIntervalSeconds),
            ("finetune_min_new_pairs", finetuneMinNewPairs), ("finetune_training_set_size", finetuneTrainingSetSize),
            ("fetch_user_agent", fetchUserAgent),
            ("fetch_host_concurrency", fetchHostConcurrency), ("fetch_host_min_interval_ms", fetchHostMinIntervalMs),
        ]
        for (k, v) in pairs { if let v { o[k] = v } }
        if !allowFileRoot.isEmpty { o["allow_file_roots"] = allowFileRoot }
        if allowPrivateNetworks { o["allow_private_networks"] = true }
        if !fetchHostHeader.isEmpty { o["fetch_host_headers"] = Self.hostHeaders(fetchHostHeader) }
        return o
    }

    /// `HOST Name: value` flags as host → {name: value}; malformed ones are left for validate().
    static func hostHeaders(_ flags: [String]) -> [String: [String: String]] {
        var map: [String: [String: String]] = [:]
        for flag in flags {
            guard let space = flag.firstIndex(of: " "), let colon = flag[space...].firstIndex(of: ":") else { continue }
            let host = String(flag[..<space]).lowercased()
            let name = flag[flag.index(after: space)..<colon].trimmingCharacters(in: .whitespaces)
            map[host, default: [:]][name] = flag[flag.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return map
    }

    func run() async throws {
        let cfg = try DaemonStartup.configuration(file: config, overrides: overrides)
        if printConfig {
            printLine(cfg.redactedJSON)
            return
        }
        let logger = makeLogger("clipd.run")
        logger.info("\(BLASSelection.current.summary)")
        let daemon = Daemon(config: cfg, logger: logger, stopWhenIdle: stopWhenIdle, metricsText: DaemonStartup.bootstrapMetrics())
        do { try await daemon.run() } catch let error as DaemonError { throw CommandFailure(error.description) }
    }
}
