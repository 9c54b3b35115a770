import ArgumentParser
import Daemon
import Foundation

/// `clipd serve`: the HTTP API and web page against the database, without the stream.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API and the web page (search, records, embeddings, classify, status) from PostgreSQL, without consuming Kafka.",
        discussion: "Takes the same configuration as `clipd run` (defaults < --config FILE < CLIPD_* < flags); the Kafka settings are not used. Queries are embedded with the model version search answers from (`clipd model status`), or --model before any version has embeddings. See the README's HTTP API section."
    )

    @Option(help: "JSON configuration file (as for clipd run).") var config: String?
    @Option(name: .customLong("database-url")) var databaseURL: String?
    @Option(help: "Checkpoint to use while no model version has embeddings yet.") var model: String?
    @Option(name: .customLong("http-port"), help: "Port of the API, the page and /metrics (default: the configuration's http_port, 9464).") var httpPort: Int?
    @Option(name: .customLong("http-host")) var httpHost: String?
    @Option(name: .customLong("allow-file-root"), help: "Directory file:// image URLs may point into (repeatable).") var allowFileRoot: [String] = []
    @Flag(name: .customLong("allow-private-networks")) var allowPrivateNetworks = false
    @Option(help: "Threads for the model (default: all cores).") var threads: Int?
    @Option(help: "Image decode threads (default 1).") var workers: Int?

    func run() async throws {
        var overrides: [String: Any] = [:]
        let pairs: [(String, Any?)] = [("database_url", databaseURL), ("model", model), ("http_port", httpPort), ("http_host", httpHost),
                                       ("threads", threads), ("workers", workers)]
        for (k, v) in pairs { if let v { overrides[k] = v } }
        if !allowFileRoot.isEmpty { overrides["allow_file_roots"] = allowFileRoot }
        if allowPrivateNetworks { overrides["allow_private_networks"] = true }
        let cfg = try DaemonStartup.configuration(file: config, overrides: overrides)
        let server = APIServer(config: cfg, logger: makeLogger("clipd.serve"), metricsText: DaemonStartup.bootstrapMetrics())
        do { try await server.run() } catch let error as DaemonError { throw CommandFailure(error.description) }
    }
}
