import Daemon
import Foundation
import Metrics
import Prometheus

/// What `clipd run` and `clipd serve` do alike before they start.
enum DaemonStartup {
    /// The layered configuration (defaults < --config FILE < CLIPD_* < flags); its database
    /// URL's credentials join the secrets kept out of output.
    static func configuration(file: String?, overrides: [String: Any]) throws -> DaemonConfig {
        let cfg: DaemonConfig
        do {
            cfg = try DaemonConfig.layered(file: file.map { ($0, FileManager.default.contents(atPath: $0)) },
                                           environment: ProcessInfo.processInfo.environment, overrides: overrides)
        } catch let error as DaemonError {
            throw CommandFailure(error.description)
        }
        ProcessSecrets.add(connection: cfg.databaseURL)
        return cfg
    }

    /// swift-metrics into a Prometheus registry; returns the /metrics text, HELP lines included.
    static func bootstrapMetrics() -> @Sendable () -> String {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return {
            var buffer = [UInt8]()
            registry.emit(into: &buffer)
            return MetricsHelp.annotate(String(decoding: buffer, as: UTF8.self))
        }
    }
}
