import ArgumentParser
import CLIP
import Fetch
import Foundation
import Kafka
import Logging
import Metrics
import Pipeline
import Postgres
import Prometheus
import Records
import ServiceLifecycle
import Tensor

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
    @Option(name: .customLong("http-port")) var httpPort: Int?
    @Option(name: .customLong("http-host")) var httpHost: String?
    @Option(name: .customLong("drain-timeout-seconds")) var drainTimeoutSeconds: Double?
    @Option(name: .customLong("progress-interval-seconds")) var progressIntervalSeconds: Double?
    @Option(name: .customLong("fetch-timeout-seconds")) var fetchTimeoutSeconds: Double?
    @Option(name: .customLong("fetch-connect-timeout-seconds")) var fetchConnectTimeoutSeconds: Double?
    @Option(name: .customLong("fetch-max-bytes")) var fetchMaxBytes: Int?
    @Option(name: .customLong("fetch-retries")) var fetchRetries: Int?
    @Option(name: .customLong("max-image-pixels")) var maxImagePixels: Int?
    @Flag(name: .customLong("print-config"), help: "Print the effective configuration as JSON and exit.") var printConfig = false
    @Option(name: .customLong("stop-when-idle"), help: "Drain and exit after this many seconds without new records (demos, batch jobs).")
    var stopWhenIdle: Double?

    var overrides: [String: Any] {
        var o: [String: Any] = [:]
        let pairs: [(String, Any?)] = [
            ("brokers", brokers), ("topic", topic), ("group", group), ("dlq_topic", dlqTopic),
            ("assignment_strategy", assignmentStrategy), ("database_url", databaseURL), ("model", model),
            ("label_set", labelSet), ("top_k", topK), ("batch_size", batchSize), ("batch_latency_ms", batchLatencyMs),
            ("workers", workers), ("threads", threads), ("max_in_flight", maxInFlight), ("http_port", httpPort),
            ("http_host", httpHost), ("drain_timeout_seconds", drainTimeoutSeconds),
            ("progress_interval_seconds", progressIntervalSeconds), ("fetch_timeout_seconds", fetchTimeoutSeconds),
            ("fetch_connect_timeout_seconds", fetchConnectTimeoutSeconds), ("fetch_max_bytes", fetchMaxBytes),
            ("fetch_retries", fetchRetries), ("max_image_pixels", maxImagePixels),
        ]
        for (k, v) in pairs { if let v { o[k] = v } }
        if !allowFileRoot.isEmpty { o["allow_file_roots"] = allowFileRoot }
        if allowPrivateNetworks { o["allow_private_networks"] = true }
        return o
    }

    func run() async throws {
        let cfg = try ConfigLoader.load(file: config, environment: ProcessInfo.processInfo.environment, overrides: overrides)
        if printConfig {
            printLine(ConfigLoader.describe(cfg))
            return
        }
        let logger = makeLogger("clipd.run")
        try await Daemon(config: cfg, logger: logger, stopWhenIdle: stopWhenIdle).run()
    }
}

/// Wires Kafka, PostgreSQL, the model and the pipeline into one ServiceGroup.
struct Daemon {
    let config: DaemonConfig
    let logger: Logger
    let stopWhenIdle: Double?

    func run() async throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let blasThreads = config.threads > 0 ? config.threads : cores
        BLASKernel.setThreads(blasThreads)
        let workers = config.workers > 0 ? config.workers : max(1, cores - blasThreads)
        logger.info("starting", metadata: ["brokers": "\(config.brokers)", "topic": "\(config.topic)", "group": "\(config.group)",
                                          "blas": "\(BLASSelection.current.summary)", "decode_workers": "\(workers)",
                                          "batch_size": "\(config.batchSize)", "max_in_flight": "\(config.maxInFlight)"])

        // Metrics: swift-metrics → Prometheus text on /metrics.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let health = HealthState()
        let endpoint: HTTPEndpoint? = config.httpPort > 0
            ? try HTTPEndpoint(host: config.httpHost, port: config.httpPort) { path in
                switch path {
                case "/metrics":
                    var buffer = [UInt8]()
                    registry.emit(into: &buffer)
                    return (200, "text/plain; version=0.0.4", String(decoding: buffer, as: UTF8.self))
                case "/healthz": return (200, "text/plain", "ok\n")
                case "/readyz": return health.isReady ? (200, "text/plain", "ready\n") : (503, "text/plain", "not ready: \(health.reason)\n")
                default: return (404, "text/plain", "not found\n")
                }
            } : nil
        if let endpoint { logger.info("http endpoint listening", metadata: ["address": "\(config.httpHost):\(endpoint.port)"]) }
        defer { endpoint?.stop() }

        // PostgreSQL: retried with backoff until it answers (the daemon waits, it does not crash).
        health.set(reason: "connecting to PostgreSQL")
        let pgConfig = PostgresConfiguration(url: config.databaseURL, applicationName: "clipd", connectTimeoutSeconds: 10,
                                             reconnect: Postgres.RetryPolicy(maxAttempts: nil, initialDelay: .milliseconds(250), maxDelay: .seconds(10)))
        let connection = try await PostgresConnection.connect(configuration: pgConfig, logger: logger)
        let database = ClipdDatabase(connection: connection)
        let registryDB = ModelRegistry(database: database, logger: logger)
        health.set(reason: "loading the model")
        let loaded = try await registryDB.load(path: config.model)
        logger.info("model ready", metadata: ["version": "\(loaded.version.name)", "id": "\(loaded.version.id)",
                                             "embed_dim": "\(loaded.model.config.embedDim)"])

        // Stages: record validation, image loading (Fetch + ImageIO on a worker pool), tokenizer.
        var fetch = FetchConfiguration()
        fetch.connectTimeout = .milliseconds(Int(config.fetchConnectTimeoutSeconds * 1000))
        fetch.totalTimeout = .milliseconds(Int(config.fetchTimeoutSeconds * 1000))
        fetch.maxBytes = config.fetchMaxBytes
        fetch.retry.maxAttempts = config.fetchRetries + 1
        fetch.allowedFileRoots = config.allowFileRoots
        fetch.allowPrivateNetworks = config.allowPrivateNetworks
        let loader = ImageLoader(model: loaded.model.config, fetch: fetch, workers: workers, maxPixels: config.maxImagePixels,
                                 applyExif: true, allowPlainPaths: false)
        let tokenizer = try CLIPTokenizerLoader.shared()
        let context = loaded.model.config.contextLength
        let validator = RecordValidator()
        let stages = StreamPipeline.Stages(
            parse: { message in try Daemon.parse(message, validator: validator) },
            loadImage: { url in try await loader.load(url) },
            tokenize: { tokenizer.tokenize($0, contextLength: context).ids.map(Int32.init) },
            workers: loader.pool)

        // Kafka: consumer (offsets from PostgreSQL on assignment), producer for dead letters.
        let box = PipelineBox()
        var consumerConfig = KafkaConsumerConfiguration(bootstrapServers: config.brokers, groupID: config.group, topics: [config.topic])
        consumerConfig.assignmentStrategy = KafkaAssignmentStrategy(rawValue: config.assignmentStrategy) ?? .cooperativeSticky
        consumerConfig.startingOffsets = { [logger] partitions in
            await Daemon.startingOffsets(partitions, box: box, logger: logger)
        }
        consumerConfig.partitionsRevoked = { partitions, _ in
            box.pipeline?.partitionsRevoked(partitions.map { TopicPartition($0.topic, $0.partition) })
        }
        let consumer = try KafkaConsumer(configuration: consumerConfig, logger: logger)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(bootstrapServers: config.brokers), logger: logger)
        let source = KafkaMessageSource(consumer: consumer, logger: logger)
        let metrics = PipelineMetrics()
        let pipeline = StreamPipeline(config: config, source: source, store: PostgresPipelineStore(database: database),
                                      deadLetters: KafkaDeadLetterSink(producer: producer, topic: config.effectiveDLQTopic),
                                      stages: stages, model: loaded, logger: logger, metrics: metrics)
        box.pipeline = pipeline

        let services: [any Service] = [
            ConsumerService(consumer: consumer, producer: producer),
            PipelineService(pipeline: pipeline, health: health),
            NotificationService(configuration: pgConfig, pipeline: pipeline, registry: registryDB, logger: logger),
            ProgressService(pipeline: pipeline, consumer: consumer, source: source, interval: config.progressIntervalSeconds,
                            stopWhenIdle: stopWhenIdle, logger: logger),
        ]
        let group = ServiceGroup(configuration: {
            var c = ServiceGroupConfiguration(services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) }, logger: logger)
            c.gracefulShutdownSignals = [.sigterm, .sigint]
            c.maximumGracefulShutdownDuration = .milliseconds(Int(config.drainTimeoutSeconds * 1000))
            return c
        }())
        ProgressService.groupBox.group = group
        try await group.run()
        await connection.close()
        logger.info("stopped", metadata: ["written": "\(metrics.snapshot.written)", "failed": "\(metrics.snapshot.failed)"])
    }

    static func parse(_ message: IncomingMessage, validator: RecordValidator) throws -> ParsedRecord {
        switch validator.validate(message.value) {
        case .failure(let e):
            throw PipelineFailure(e.message == "not valid JSON" ? "record.invalid_json" : "record.invalid", e.description)
        case .success(let r):
            let id = r.id ?? message.key.flatMap { String(validating: $0, as: UTF8.self) } ?? "\(message.partition.topic)/\(message.partition.partition)/\(message.offset)"
            for (field, value) in [("id", id), ("image_url", r.imageURL), ("caption", r.caption ?? ""), ("label_set", r.labelSet ?? "")]
            where value.unicodeScalars.contains("\u{0}") {
                throw PipelineFailure("record.invalid", "\(field) contains a NUL character")
            }
            var metadataJSON: String?
            if let m = r.metadata, let data = try? JSONEncoder.sorted.encode(m) {
                metadataJSON = String(decoding: data, as: UTF8.self)
                if metadataJSON!.contains("\\u0000") { throw PipelineFailure("record.invalid", "metadata contains a NUL character") }
            }
            return ParsedRecord(id: id, imageURL: r.imageURL, caption: r.caption, labelSet: r.labelSet, metadataJSON: metadataJSON)
        }
    }

    /// Offsets stored in PostgreSQL for newly assigned partitions; PostgreSQL being down makes
    /// the consumer wait (librdkafka's rebalance waits for this hook) and then fall back to the
    /// group's committed offsets, which never run ahead of PostgreSQL's.
    static func startingOffsets(_ partitions: [KafkaTopicPartition], box: PipelineBox, logger: Logger) async -> [KafkaTopicPartition: Int64] {
        guard let pipeline = box.pipeline else { return [:] }
        let tps = partitions.map { TopicPartition($0.topic, $0.partition) }
        for attempt in 1...8 {
            do {
                let stored = try await pipeline.partitionsAssigned(tps)
                var out: [KafkaTopicPartition: Int64] = [:]
                for (tp, o) in stored { out[KafkaTopicPartition(topic: tp.topic, partition: tp.partition)] = o }
                return out
            } catch {
                logger.warning("reading stored offsets failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250 * (1 << min(attempt, 5))))
            }
        }
        for tp in tps { pipeline.tracker.assign(tp, next: OffsetTracker.unknown) }
        logger.error("stored offsets unavailable; resuming from the group's committed offsets (records may be reprocessed, never lost)")
        return [:]
    }
}

final class PipelineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: StreamPipeline?
    var pipeline: StreamPipeline? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

final class HealthState: @unchecked Sendable {
    private let lock = NSLock()
    private var ready = false
    private var why = "starting"
    var isReady: Bool { lock.withLock { ready } }
    var reason: String { lock.withLock { why } }
    func set(ready: Bool = false, reason: String) { lock.withLock { self.ready = ready; why = reason } }
}

struct ConsumerService: Service {
    let consumer: KafkaConsumer
    let producer: KafkaProducer

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await consumer.run()
        } onGracefulShutdown: {
            // The pipeline (started after us) has drained by now: leave the group.
            consumer.shutdown()
        }
        await producer.shutdown()
    }
}

struct PipelineService: Service {
    let pipeline: StreamPipeline
    let health: HealthState

    func run() async throws {
        health.set(ready: true, reason: "ready")
        try await withGracefulShutdownHandler {
            try await pipeline.run()
        } onGracefulShutdown: {
            health.set(reason: "draining")
            pipeline.shutdown()
        }
        health.set(reason: "stopped")
    }
}

/// LISTEN clipd_label_sets / clipd_model_versions: re-embed label sets, switch models.
struct NotificationService: Service {
    let configuration: PostgresConfiguration
    let pipeline: StreamPipeline
    let registry: ModelRegistry
    let logger: Logger

    func run() async throws {
        let listener = try await PostgresNotificationListener.start(configuration: configuration,
                                                                    channels: ["clipd_label_sets", "clipd_model_versions"], logger: logger)
        await withGracefulShutdownHandler {
            for await note in listener.notifications.cancelOnGracefulShutdown() {
                if note.channel == "clipd_label_sets" || note.isResynchronization {
                    pipeline.labelSetsChanged()
                    logger.info("label sets changed; re-embedding on next use")
                }
                if note.channel == "clipd_model_versions" || note.isResynchronization {
                    do {
                        guard let active = try await registry.database.activeModelVersion(),
                              active.id != pipeline.currentModel.version.id else { continue }
                        let next = try await registry.load(version: active)
                        pipeline.useModel(next)
                        logger.info("loaded new active model version; switching between batches", metadata: ["id": "\(active.id)", "name": "\(active.name)"])
                    } catch {
                        logger.error("cannot switch to the active model version", metadata: ["error": "\(error)"])
                    }
                }
            }
        } onGracefulShutdown: {
            listener.stop()
        }
        listener.stop()
    }
}

/// The periodic progress line (records/s, lag) and per-partition lag metrics; optionally
/// ends the daemon once the topic is idle.
struct ProgressService: Service {
    final class GroupBox: @unchecked Sendable { var group: ServiceGroup? }
    nonisolated(unsafe) static let groupBox = GroupBox()

    let pipeline: StreamPipeline
    let consumer: KafkaConsumer
    let source: KafkaMessageSource
    let interval: Double
    let stopWhenIdle: Double?
    let logger: Logger

    func run() async throws {
        var last = pipeline.metrics.snapshot
        var lastTime = ContinuousClock.now
        var lastReport = ContinuousClock.now
        let started = ContinuousClock.now
        let tick = min(interval, 0.5)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .milliseconds(Int(tick * 1000)))
            let now = ContinuousClock.now
            // Idle: nothing in flight, nothing new for `idle` seconds, and every assigned
            // partition's stored offset has reached its end (so a paused consumer is not idle).
            // Kafka's committed offsets are not used: a commit refused during a rebalance would
            // leave them behind for good.
            if let idle = stopWhenIdle, now - source.lastMessageAt > .milliseconds(Int(idle * 1000)),
               pipeline.tracker.inFlightCount == 0,
               pipeline.metrics.snapshot.consumed > 0 || now - started > .milliseconds(Int(idle * 3000)),
               let lags = try? await consumer.lag(timeout: .seconds(2)), !lags.isEmpty,
               lags.allSatisfy({ l in
                   let next = pipeline.tracker.committable(TopicPartition(l.topicPartition.topic, l.topicPartition.partition)) ?? -1
                   return next >= l.highWatermark || (next < 0 && l.highWatermark <= l.lowWatermark)
               }) {
                logger.info("idle; draining and stopping", metadata: ["idle_s": "\(idle)"])
                await Self.groupBox.group?.triggerGracefulShutdown()
                return
            }
            guard now - lastReport >= .milliseconds(Int(interval * 1000)) else { continue }
            lastReport = now
            // Re-commit the stored offsets to Kafka so lag stays visible even when a commit was
            // refused (e.g. during a rebalance).
            let stored = pipeline.tracker.committableAll().filter { $0.value >= 0 }
            if !stored.isEmpty { source.commit(stored) }
            let snap = pipeline.metrics.snapshot
            let seconds = Double((now - lastTime).components.seconds) + Double((now - lastTime).components.attoseconds) / 1e18
            let rate = Double(snap.written + snap.failed - last.written - last.failed) / max(seconds, 1e-9)
            var lagTotal: Int64 = 0
            if let lags = try? await consumer.lag(timeout: .seconds(2)) {
                for l in lags {
                    pipeline.metrics.lag(TopicPartition(l.topicPartition.topic, l.topicPartition.partition), l.lag)
                    lagTotal += l.lag
                }
            }
            logger.info("progress", metadata: ["records_per_s": "\(String(format: "%.1f", rate))", "consumed": "\(snap.consumed)",
                                              "written": "\(snap.written)", "failed": "\(snap.failed)",
                                              "in_flight": "\(pipeline.tracker.inFlightCount)", "lag": "\(lagTotal)"])
            last = snap
            lastTime = now
        }
    }
}
