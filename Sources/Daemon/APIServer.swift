import CLIP
import CLIPTokenizer
import Tensor
import ClipdAPI
import Executors
import Foundation
import HTTPServer
import Logging
import Pipeline
import Postgres
import ServiceLifecycle
import Storage

/// `clipd serve`: the HTTP API and the web page against the database, without consuming the
/// stream. Model work runs on an encoder thread of its own (one API job at a time); images are
/// fetched with the configuration's fetch rules (SSRF guard, file roots, politeness).
public struct APIServer: Sendable {
    public let config: DaemonConfig
    public let logger: Logger
    public let metricsText: @Sendable () -> String

    public init(config: DaemonConfig, logger: Logger, metricsText: @escaping @Sendable () -> String) {
        self.config = config
        self.logger = logger
        self.metricsText = metricsText
    }

    public func run() async throws {
        guard config.httpPort > 0 else { throw DaemonError("clipd serve needs an HTTP port (--http-port)") }
        let health = HealthState()
        let api = Locked<APIService?>(nil)
        let endpoint = HTTPEndpoint(configuration: config.httpConfiguration, logger: logger,
                                    asyncHandler: Daemon.handler(health: health, metricsText: metricsText, api: { api.value }))
        var configuration = ServiceGroupConfiguration(services: [
            .init(service: endpoint),
            .init(service: BodyService { try await self.runBackend(health: health, api: api) }),
        ], logger: logger)
        configuration.gracefulShutdownSignals = [.sigterm, .sigint]
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        try await ServiceGroup(configuration: configuration).run()
    }

    /// Connects (retrying until PostgreSQL answers), then serves until shutdown.
    func runBackend(health: HealthState, api: Locked<APIService?>) async throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        BLASKernel.setThreads(config.threads > 0 ? config.threads : cores)
        let connection = try await Daemon.connectWaiting(config.postgresConfiguration(applicationName: "clipd-serve"), health: health, logger: logger)
        let database = ClipdDatabase(connection: connection)
        let registry = ModelRegistry(database: database, logger: logger)
        // The loader needs the model's input size: that of the version search answers from, or the
        // configured checkpoint's when no version has embeddings yet.
        let initial: StreamPipeline.LoadedModel?
        if let version = try await database.searchModelVersion() {
            initial = try await registry.load(version: version)
        } else if let model = config.model, !model.isEmpty {
            initial = try await registry.load(path: model, activateIfNone: false)
        } else {
            initial = nil
        }
        guard let initial else {
            throw DaemonError("no model version has embedded any records yet, and no --model was given: clipd serve needs a model for the image input size")
        }
        let tokenizer = try CLIPTokenizer.shared()
        let modelConfig = initial.model.config
        let workers = config.workers > 0 ? config.workers : 1
        let loader = ImageLoader(model: modelConfig, fetch: config.fetchConfiguration, workers: workers,
                                 maxPixels: config.maxImagePixels, applyExif: true, allowPlainPaths: false)
                api.withLock {
            $0 = APIService(backend: APIService.Backend(
                database: { database }, loader: loader, tokenizer: tokenizer, encoder: WorkerPool(name: "clipd-api-enc", width: 1),
                loadVersion: { version in try await registry.load(version: version) },
                currentModel: { initial }), logger: logger)
        }
        health.set(ready: true, reason: "serving")
        logger.info("serving the HTTP API", metadata: ["search_model_version": "\(initial.version.id) (\(initial.version.name))"])
        try? await gracefulShutdown()
        api.withLock { $0 = nil }
        await connection.close()
    }
}
