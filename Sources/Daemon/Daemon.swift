import CLIP
import ClipdAPI
import Executors
import CLIPTokenizer
import Fetch
import HTTPServer
import Foundation
import Kafka
import Logging
import Pipeline
import Postgres
import ServiceLifecycle
import Storage
import Tensor
#if canImport(Glibc)
import Glibc

/// glibc's `int mallopt(int, int)` (declared in <malloc.h>, which the Glibc module leaves out).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// `clipd run`: wires Kafka, PostgreSQL, the model and the pipeline into one ServiceGroup.
///
/// One record's path: `KafkaMessageSource` (consumer) → `StreamPipeline` (parse with
/// `RecordParser`, load with `ImageLoader`, tokenize, batch, encode, tag) → `ClipdDatabase`
/// (`PipelineStore`: rows and offsets in one transaction) → offsets committed to Kafka.
/// Failures go to `KafkaDeadLetterSink` and `failed_records`.
public struct Daemon: Sendable {
    public let config: DaemonConfig
    public let logger: Logger
    /// Drain and exit after this many seconds without new records (demos, batch jobs).
    public let stopWhenIdle: Double?
    /// The Prometheus text for /metrics (the executable owns the metrics backend).
    public let metricsText: @Sendable () -> String

    public init(config: DaemonConfig, logger: Logger, stopWhenIdle: Double?, metricsText: @escaping @Sendable () -> String) {
        self.config = config
        self.logger = logger
        self.stopWhenIdle = stopWhenIdle
        self.metricsText = metricsText
    }

    /// Runs the HTTP endpoint from the start (so /healthz answers while PostgreSQL and the model
    /// are awaited) next to the daemon proper, both in one ServiceGroup that SIGTERM/SIGINT shut
    /// down gracefully: the daemon drains first, then the endpoint closes.
    public func run() async throws {
        let health = HealthState()
        let api = Locked<APIService?>(nil)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if config.httpPort > 0 {
            let endpoint = HTTPEndpoint(configuration: config.httpConfiguration, logger: logger,
                                        asyncHandler: Self.handler(health: health, metricsText: metricsText, api: { api.value }))
            services.append(.init(service: endpoint))
        }
        services.append(.init(service: BodyService { try await self.runCore(health: health, api: api) }, successTerminationBehavior: .gracefullyShutdownGroup))
        var configuration = ServiceGroupConfiguration(services: services, logger: logger)
        configuration.gracefulShutdownSignals = [.sigterm, .sigint]
        // The core's own group bounds the drain; this bounds set-up that does not end by itself.
        configuration.maximumGracefulShutdownDuration = .milliseconds(Int(config.drainTimeoutSeconds * 1000) + 5000)
        try await ServiceGroup(configuration: configuration).run()
    }

    /// Set-up (PostgreSQL, model, consumer, pipeline) and the pipeline's services.
    func runCore(health: HealthState, api: Locked<APIService?> = Locked(nil)) async throws {
        Self.boundMallocArenas()
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let blasThreads = config.threads > 0 ? config.threads : cores
        BLASKernel.setThreads(blasThreads)
        let workers = config.workers > 0 ? config.workers : max(1, cores - blasThreads)
        logger.info("starting", metadata: ["brokers": "\(config.brokers)", "topic": "\(config.topic)", "group": "\(config.group)",
                                          "blas": "\(BLASKernel.coreName), \(BLASKernel.threads) threads", "decode_workers": "\(workers)",
                                          "batch_size": "\(config.batchSize)", "max_in_flight": "\(config.maxInFlight)",
                                          "max_in_flight_bytes": "\(config.maxInFlightBytes)", "fetch_workers": "\(config.fetchWorkers)"])

        let pgConfig = config.postgresConfiguration(applicationName: "clipd")
        let connection = try await Self.connectWaiting(pgConfig, health: health, logger: logger)
        let database = ClipdDatabase(connection: connection)
        let registry = ModelRegistry(database: database, logger: logger)
        health.set(reason: "loading the model")
        let loaded = try await registry.load(path: config.model)
        logger.info("model ready", metadata: ["version": "\(loaded.version.name)", "id": "\(loaded.version.id)",
                                             "embed_dim": "\(loaded.model.config.embedDim)"])

        // Stages: record validation, image loading (Fetch + ImageIO on a worker pool), tokenizer.
        let loader = ImageLoader(model: loaded.model.config, fetch: config.fetchConfiguration, workers: workers,
                                 maxPixels: config.maxImagePixels, applyExif: true, allowPlainPaths: false)
        let tokenizer = try CLIPTokenizer.shared()
        let context = loaded.model.config.contextLength
        let parser = RecordParser()
        let stages = StreamPipeline.Stages(
            parse: { message in try parser.parse(message) },
            loadImage: { url in try await loader.load(url) },
            tokenize: { tokenizer.tokenize($0, contextLength: context).ids.map(Int32.init) },
            workers: loader.pool)

        // Rebalance hooks first: the consumer calls them, the pipeline shares their offset tracker.
        let tracker = OffsetTracker()
        let assignments = PartitionAssignments(store: database, group: config.group, tracker: tracker, logger: logger)
        let consumer = try KafkaConsumer(configuration: config.consumerConfiguration(assignments: assignments), logger: logger)
        // The dead-letter producer starts with the first dead letter (its librdkafka threads
        // are not taken by runs that never send one).
        let producer = OnDemandProducer(configuration: KafkaProducerConfiguration(bootstrapServers: config.brokers), logger: logger)
        let source = KafkaMessageSource(consumer: consumer, logger: logger)
        let metrics = PipelineMetrics()
        let pipeline = StreamPipeline(config: config.pipelineConfiguration(decodeWorkers: workers), source: source, store: database,
                                      deadLetters: KafkaDeadLetterSink(producer: producer, topic: config.effectiveDLQTopic),
                                      stages: stages, model: loaded, tracker: tracker, logger: logger, metrics: metrics)

        // The HTTP API reads through a connection of its own (never queued behind batch writes),
        // opened on its first request, and runs model work on the pipeline's encoder (one API job
        // at a time).
        var apiConfiguration = config.postgresConfiguration(applicationName: "clipd-api")
        apiConfiguration.reconnect = Postgres.RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(100), maxDelay: .seconds(1))
        let apiDatabase = OnDemandConnection(configuration: apiConfiguration, logger: logger)
        api.withLock {
            $0 = APIService(backend: APIService.Backend(
                database: { try await apiDatabase.database() }, loader: loader, tokenizer: tokenizer, encoder: pipeline.encoderPool,
                loadVersion: { version in try await ModelRegistry(database: try await apiDatabase.database(), logger: logger).load(version: version) },
                currentModel: { pipeline.latestModel },
                stream: {
                    let totals = metrics.snapshot
                    return APIService.StreamStatus(consumed: totals.consumed, written: totals.written, failed: totals.failed,
                                                   lag: metrics.lagSnapshot.map { ($0.partition.topic, $0.partition.partition, $0.lag) })
                }), logger: logger)
        }

        var services: [any Service] = [
            ConsumerService(consumer: consumer, producer: producer),
            PipelineService(pipeline: pipeline, health: health),
            NotificationService(configuration: pgConfig, pipeline: pipeline, registry: registry, health: health, logger: logger),
        ]
        if config.backfillEnabled {
            services.append(BackfillService(configuration: pgConfig, pipeline: pipeline, loader: loader, tokenize: stages.tokenize,
                                            settings: config.backfillSettings, worker: Self.workerName(), logger: logger))
        }
        if config.finetuneEnabled {
            services.append(try FinetuneService.inDaemon(config: config, configuration: pgConfig, worker: Self.workerName(), logger: logger))
        }
        services += [
            ProgressService(pipeline: pipeline, consumer: consumer, source: source, interval: config.progressIntervalSeconds,
                            stopWhenIdle: stopWhenIdle, logger: logger),
        ]
        // Any service returning ends the daemon gracefully (the progress service does once idle).
        // Signals reach this group through the outer one (`run()`), as a graceful shutdown.
        var groupConfiguration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) }, logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int(config.drainTimeoutSeconds * 1000))
        let group = ServiceGroup(configuration: groupConfiguration)
        try await withGracefulShutdownHandler {
            try await group.run()
        } onGracefulShutdown: {
            Task { await group.triggerGracefulShutdown() }
        }
        api.withLock { $0 = nil }
        await apiDatabase.close()
        await connection.close()
        logger.info("stopped", metadata: ["written": "\(metrics.snapshot.written)", "failed": "\(metrics.snapshot.failed)"])
    }

    /// PostgreSQL at set-up: retried with backoff until it answers (the daemon waits, it does not
    /// crash); a graceful shutdown meanwhile cancels the wait.
    static func connectWaiting(_ configuration: PostgresConfiguration, health: HealthState, logger: Logger) async throws -> PostgresConnection {
        health.set(reason: "connecting to PostgreSQL")
        return try await cancelWhenGracefulShutdown {
            try await PostgresConnection.connect(configuration: configuration, logger: logger)
        }
    }

    /// glibc's allocator, left to itself, keeps freed decode buffers (a 3 MP photo is ~9 MB of
    /// RGB, more as floats) in per-thread arenas: its mmap threshold grows to the largest block
    /// freed, so later large buffers come from arenas that fragment and are not returned to the
    /// system. RSS then climbs with the number of threads that ever decoded or fetched. A fixed
    /// threshold keeps every large buffer in its own mapping, unmapped when freed, and a few
    /// arenas bound what small allocations can strand.
    static func boundMallocArenas() {
        #if canImport(Glibc)
        let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
        let arenaMax: Int32 = -8  // M_ARENA_MAX
        _ = glibcMallopt(mmapThreshold, 256 * 1024)
        _ = glibcMallopt(arenaMax, 4)
        #endif
    }

    /// host:pid, naming this daemon in `model_backfill_chunks.claimed_by`.
    static func workerName() -> String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// /metrics, /healthz, /readyz, then the API and the page (`ClipdAPI`) once `api` gives one:
    /// until then (PostgreSQL or the model still awaited) API paths answer 503.
    public static func handler(health: HealthState, metricsText: @escaping @Sendable () -> String,
                               api: @escaping @Sendable () -> APIService?) -> HTTPEndpoint.AsyncHandler {
        let probes = routes(health: health, metricsText: metricsText)
        return { request in
            if ["/metrics", "/healthz", "/readyz"].contains(request.path) {
                return HTTPEndpoint.reply(method: .init(request.method) ?? .get, path: request.path, handler: probes)
            }
            if let service = api(), let reply = await service.handle(request) { return reply }
            if APIRoute.parse(request) != nil {
                return .jsonError(status: 503, type: "starting", message: "not ready: \(health.reason)", headers: ["Retry-After": "2"])
            }
            return .jsonError(status: 404, type: "not_found", message: "no route \(request.path)")
        }
    }

    /// /metrics, /healthz and /readyz.
    public static func routes(health: HealthState, metricsText: @escaping @Sendable () -> String) -> HTTPEndpoint.Handler {
        { path in
            switch path {
            case "/metrics": return .init(status: 200, contentType: "text/plain; version=0.0.4", body: metricsText())
            case "/healthz": return .init(status: 200, contentType: "text/plain", body: "ok\n")
            case "/readyz":
                return health.isReady ? .init(status: 200, contentType: "text/plain", body: "ready\n")
                    : .init(status: 503, contentType: "text/plain", body: "not ready: \(health.reason)\n")
            default: return .init(status: 404, contentType: "text/plain", body: "not found\n")
            }
        }
    }
}

extension DaemonConfig {
    /// What the pipeline needs of the configuration.
    /// Loads in progress at once: enough to keep every fetch and decode worker busy, and no more,
    /// so fetched images wait compressed and at most `decodeWorkers` are decoded at a time.
    public func pipelineConfiguration(decodeWorkers: Int) -> StreamPipeline.Configuration {
        StreamPipeline.Configuration(group: group, batchSize: batchSize, batchLatencyMs: batchLatencyMs, maxInFlight: maxInFlight,
                                     maxInFlightBytes: maxInFlightBytes, maxConcurrentLoads: fetchWorkers + 2 * max(1, decodeWorkers),
                                     defaultLabelSet: labelSet, topK: topK)
    }

    /// The connection settings of `database_url`: connect within 10 s, reconnect without limit
    /// (250 ms doubling to 10 s).
    func postgresConfiguration(applicationName: String) -> PostgresConfiguration {
        PostgresConfiguration(url: databaseURL, applicationName: applicationName, connectTimeoutSeconds: 10,
                              reconnect: Postgres.RetryPolicy(maxAttempts: nil, initialDelay: .milliseconds(250), maxDelay: .seconds(10)))
    }

    /// The HTTP endpoint's address and limits.
    public var httpConfiguration: HTTPEndpoint.Configuration {
        HTTPEndpoint.Configuration(host: httpHost, port: httpPort)
    }

    /// What the re-embedding backfill needs of the configuration.
    var backfillSettings: BackfillService.Settings {
        var settings = BackfillService.Settings(batchSize: backfillBatchSize, chunkSize: backfillChunkSize, leaseSeconds: backfillLeaseSeconds,
                                                coverageThreshold: searchCoverageThreshold, keepVersions: keepModelVersions,
                                                defaultLabelSet: labelSet, topK: topK, liveBatchSize: batchSize)
        // The coverage gauges count embeddings per version: not more often than the progress line.
        settings.metricsInterval = .milliseconds(Int(max(progressIntervalSeconds, 2) * 1000))
        return settings
    }

    /// Fetch limits and policies of the configuration.
    public var fetchConfiguration: FetchConfiguration {
        var fetch = FetchConfiguration()
        fetch.connectTimeout = .milliseconds(Int(fetchConnectTimeoutSeconds * 1000))
        fetch.totalTimeout = .milliseconds(Int(fetchTimeoutSeconds * 1000))
        fetch.maxBytes = fetchMaxBytes
        fetch.retry.maxAttempts = fetchRetries + 1
        fetch.allowedFileRoots = allowFileRoots
        fetch.allowPrivateNetworks = allowPrivateNetworks
        fetch.maxConcurrentTransfers = fetchWorkers
        fetch.userAgent = fetchUserAgent
        fetch.hostConcurrency = fetchHostConcurrency
        fetch.hostMinInterval = .milliseconds(fetchHostMinIntervalMs)
        fetch.hostHeaders = fetchHostHeaders
        return fetch
    }

    /// The consumer group member, its rebalance hooks calling `assignments`.
    func consumerConfiguration(assignments: PartitionAssignments) -> KafkaConsumerConfiguration {
        var consumer = KafkaConsumerConfiguration(bootstrapServers: brokers, groupID: group, topics: [topic])
        consumer.assignmentStrategy = KafkaAssignmentStrategy(rawValue: assignmentStrategy) ?? .cooperativeSticky
        consumer.startingOffsets = { partitions in
            await assignments.assigned(partitions.map(TopicPartition.init)).kafkaOffsets
        }
        consumer.partitionsRevoked = { partitions, _ in
            assignments.revoked(partitions.map(TopicPartition.init))
        }
        return consumer
    }
}
