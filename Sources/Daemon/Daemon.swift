import CLIP
import CLIPTokenizer
import Fetch
import Foundation
import Kafka
import Logging
import Pipeline
import Postgres
import ServiceLifecycle
import Storage
import Tensor

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

    public func run() async throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let blasThreads = config.threads > 0 ? config.threads : cores
        BLASKernel.setThreads(blasThreads)
        let workers = config.workers > 0 ? config.workers : max(1, cores - blasThreads)
        logger.info("starting", metadata: ["brokers": "\(config.brokers)", "topic": "\(config.topic)", "group": "\(config.group)",
                                          "blas": "\(BLASKernel.coreName), \(BLASKernel.threads) threads", "decode_workers": "\(workers)",
                                          "batch_size": "\(config.batchSize)", "max_in_flight": "\(config.maxInFlight)"])

        let health = HealthState()
        let endpoint: HTTPEndpoint? = config.httpPort > 0
            ? try HTTPEndpoint(host: config.httpHost, port: config.httpPort, handler: Self.routes(health: health, metricsText: metricsText))
            : nil
        if let endpoint { logger.info("http endpoint listening", metadata: ["address": "\(config.httpHost):\(endpoint.port)"]) }
        defer { endpoint?.stop() }

        // PostgreSQL: retried with backoff until it answers (the daemon waits, it does not crash).
        health.set(reason: "connecting to PostgreSQL")
        let pgConfig = PostgresConfiguration(url: config.databaseURL, applicationName: "clipd", connectTimeoutSeconds: 10,
                                             reconnect: Postgres.RetryPolicy(maxAttempts: nil, initialDelay: .milliseconds(250), maxDelay: .seconds(10)))
        let connection = try await PostgresConnection.connect(configuration: pgConfig, logger: logger)
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
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(bootstrapServers: config.brokers), logger: logger)
        let source = KafkaMessageSource(consumer: consumer, logger: logger)
        let metrics = PipelineMetrics()
        let pipeline = StreamPipeline(config: config.pipelineConfiguration, source: source, store: database,
                                      deadLetters: KafkaDeadLetterSink(producer: producer, topic: config.effectiveDLQTopic),
                                      stages: stages, model: loaded, tracker: tracker, logger: logger, metrics: metrics)

        let services: [any Service] = [
            ConsumerService(consumer: consumer, producer: producer),
            PipelineService(pipeline: pipeline, health: health),
            NotificationService(configuration: pgConfig, pipeline: pipeline, registry: registry, logger: logger),
            ProgressService(pipeline: pipeline, consumer: consumer, source: source, interval: config.progressIntervalSeconds,
                            stopWhenIdle: stopWhenIdle, logger: logger),
        ]
        // Any service returning ends the daemon gracefully (the progress service does once idle).
        var groupConfiguration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) }, logger: logger)
        groupConfiguration.gracefulShutdownSignals = [.sigterm, .sigint]
        groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int(config.drainTimeoutSeconds * 1000))
        try await ServiceGroup(configuration: groupConfiguration).run()
        await connection.close()
        logger.info("stopped", metadata: ["written": "\(metrics.snapshot.written)", "failed": "\(metrics.snapshot.failed)"])
    }

    /// /metrics, /healthz and /readyz.
    static func routes(health: HealthState, metricsText: @escaping @Sendable () -> String) -> HTTPEndpoint.Handler {
        { path in
            switch path {
            case "/metrics": return (200, "text/plain; version=0.0.4", metricsText())
            case "/healthz": return (200, "text/plain", "ok\n")
            case "/readyz": return health.isReady ? (200, "text/plain", "ready\n") : (503, "text/plain", "not ready: \(health.reason)\n")
            default: return (404, "text/plain", "not found\n")
            }
        }
    }
}

extension DaemonConfig {
    /// What the pipeline needs of the configuration.
    public var pipelineConfiguration: StreamPipeline.Configuration {
        StreamPipeline.Configuration(group: group, batchSize: batchSize, batchLatencyMs: batchLatencyMs, maxInFlight: maxInFlight,
                                     defaultLabelSet: labelSet, topK: topK)
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
