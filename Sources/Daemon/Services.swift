import Foundation
import Kafka
import Logging
import Metrics
import Pipeline
import Postgres
import Storage
import ServiceLifecycle

/// A service that runs one async body: the daemon proper, or `clipd serve`'s backend, next to
/// the HTTP endpoint in one ServiceGroup.
struct BodyService: Service {
    let body: @Sendable () async throws -> Void

    func run() async throws {
        try await body()
    }
}

/// Runs the Kafka consumer (polling, rebalances) until the pipeline has drained, then leaves
/// the group and flushes the dead-letter producer (if a dead letter created it).
struct ConsumerService: Service {
    let consumer: KafkaConsumer
    let producer: OnDemandProducer

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
    let health: HealthState
    let logger: Logger

    /// Activated versions whose checkpoint could not be loaded (each failure counts once per attempt).
    static let loadFailures = Counter(label: "clipd_model_load_failures_total")
    /// 1 while the active model version cannot be loaded and the daemon runs an older one.
    static let loadFailing = Gauge(label: "clipd_model_load_failing")

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
                    await switchToActiveVersion()
                }
            }
        } onGracefulShutdown: {
            listener.stop()
        }
        listener.stop()
    }

    /// Loads the active version and swaps it in between batches. A version whose checkpoint
    /// cannot be loaded (missing, corrupt, hostile, wrong dimension) is never swapped in: the
    /// daemon keeps encoding with its current model, logs the error, counts it in
    /// `clipd_model_load_failures_total`, sets `clipd_model_load_failing` and reports it on /readyz.
    func switchToActiveVersion() async {
        let running = pipeline.currentModel.version
        let active: ClipdDatabase.ModelVersion
        do {
            guard let found = try await registry.database.activeModelVersion() else { return }
            active = found
        } catch {
            logger.error("cannot read the active model version", metadata: ["error": "\(error)"])
            return
        }
        guard active.id != running.id else {
            // Back on the running version (e.g. the bad activation was reverted).
            clearProblem()
            return
        }
        do {
            let next = try await registry.load(version: active)
            pipeline.useModel(next)
            clearProblem()
            logger.info("loaded new active model version; switching between batches", metadata: ["id": "\(active.id)", "name": "\(active.name)"])
        } catch {
            Self.loadFailures.increment()
            Self.loadFailing.record(1)
            let text = "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
            health.setModelProblem("active model version \(active.id) (\(active.name)) cannot be loaded; still encoding with version \(running.id) (\(running.name)): \(text)")
            logger.error("cannot switch to the active model version; keeping the current model",
                         metadata: ["id": "\(active.id)", "name": "\(active.name)", "running_id": "\(running.id)", "error": "\(text)"])
        }
    }

    private func clearProblem() {
        if health.modelProblem != nil {
            health.setModelProblem(nil)
            Self.loadFailing.record(0)
        }
    }
}

/// The periodic progress line (records/s, lag) and per-partition lag metrics; optionally
/// ends the daemon once the topic is idle.
struct ProgressService: Service {
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
                   let next = pipeline.tracker.committable(TopicPartition(l.topicPartition)) ?? -1
                   return next >= l.highWatermark || (next < 0 && l.highWatermark <= l.lowWatermark)
               }) {
                // Returning ends the group gracefully (successTerminationBehavior).
                logger.info("idle; draining and stopping", metadata: ["idle_s": "\(idle)"])
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
                    // The offset stored with the results is ahead of Kafka's committed one (the
                    // commit above is asynchronous and may have been refused): use the larger.
                    let partition = TopicPartition(l.topicPartition)
                    let stored = pipeline.tracker.committable(partition) ?? -1
                    let lag = stored >= 0 ? min(l.lag, max(0, l.highWatermark - stored)) : l.lag
                    pipeline.metrics.lag(partition, lag)
                    lagTotal += lag
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
