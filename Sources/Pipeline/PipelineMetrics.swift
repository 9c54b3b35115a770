import Foundation
import Metrics

/// The pipeline's counters, histograms and gauges (swift-metrics; the executable exports
/// them as Prometheus), plus totals for the periodic progress line.
public final class PipelineMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var totals = (consumed: 0, written: 0, failed: 0)
    private var failedByClass: [String: Counter] = [:]
    private let consumedCounter = Counter(label: "clipd_records_consumed_total")
    private let writtenCounter = Counter(label: "clipd_records_written_total")
    private let retries = Counter(label: "clipd_database_write_retries_total")
    private let batchSizes = Recorder(label: "clipd_batch_size_records", aggregate: true)
    private let inFlightGauge = Gauge(label: "clipd_records_in_flight")
    private let modelGauge = Gauge(label: "clipd_model_version_id")
    private var stageTimers: [String: Metrics.Timer] = [:]
    private var lagGauges: [String: Gauge] = [:]
    private var lagValues: [TopicPartition: Int64] = [:]

    public init() {}

    /// HELP text of every metric the pipeline exports (a test checks that each exported family has one).
    public static let help: [String: String] = [
        "clipd_records_consumed_total": "Records taken from the topic (admitted into the pipeline).",
        "clipd_records_written_total": "Records whose embedding and tags were written to PostgreSQL.",
        "clipd_records_failed_total": "Records that became dead letters, by failure class (see the README's failure classes).",
        "clipd_database_write_retries_total": "Batch writes retried because PostgreSQL was unavailable.",
        "clipd_batch_size_records": "Records per encoded batch.",
        "clipd_records_in_flight": "Records admitted but not yet written or failed; consumption pauses at max_in_flight.",
        "clipd_model_version_id": "Id (model_versions.id) of the model version the pipeline encodes with.",
        "clipd_stage_duration_seconds": "Time per pipeline stage: prepare (fetch, decode, tokenize) per record, encode and write per batch.",
        "clipd_consumer_lag_records": "Records of a partition not yet consumed by this group (high watermark minus stored offset).",
    ]

    public var snapshot: (consumed: Int, written: Int, failed: Int) { lock.withLock { totals } }

    /// The last lag reported per partition, by topic and partition.
    public var lagSnapshot: [(partition: TopicPartition, lag: Int64)] {
        lock.withLock { lagValues.map { ($0.key, $0.value) } }.sorted { ($0.partition.topic, $0.partition.partition) < ($1.partition.topic, $1.partition.partition) }
    }

    func consumed() {
        lock.withLock { totals.consumed += 1 }
        consumedCounter.increment()
    }

    func written(_ n: Int) {
        guard n > 0 else { return }
        lock.withLock { totals.written += n }
        writtenCounter.increment(by: n)
    }

    func failed(_ errorClass: String) {
        let counter = lock.withLock {
            totals.failed += 1
            if let c = failedByClass[errorClass] { return c }
            let c = Counter(label: "clipd_records_failed_total", dimensions: [("class", errorClass)])
            failedByClass[errorClass] = c
            return c
        }
        counter.increment()
    }

    func writeRetry() { retries.increment() }
    func batch(size: Int) { batchSizes.record(size) }
    func inFlight(_ n: Int) { inFlightGauge.record(n) }
    func modelVersion(_ v: ModelVersionRef) { modelGauge.record(Double(v.id)) }

    func stageLatency(_ stage: String, since start: ContinuousClock.Instant) {
        let timer = lock.withLock {
            if let t = stageTimers[stage] { return t }
            let t = Metrics.Timer(label: "clipd_stage_duration_seconds", dimensions: [("stage", stage)], preferredDisplayUnit: .seconds)
            stageTimers[stage] = t
            return t
        }
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        timer.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Consumer lag of one partition (reported by the source adapter).
    public func lag(_ partition: TopicPartition, _ value: Int64) {
        let key = partition.description
        let gauge = lock.withLock {
            lagValues[partition] = value
            if let g = lagGauges[key] { return g }
            let g = Gauge(label: "clipd_consumer_lag_records", dimensions: [("topic", partition.topic), ("partition", "\(partition.partition)")])
            lagGauges[key] = g
            return g
        }
        gauge.record(Double(value))
    }
}
