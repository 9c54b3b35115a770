/// Everything `clipd run` can be configured with. The executable layers it from defaults, a
/// JSON file, `CLIPD_*` environment variables and flags (in rising precedence); the pipeline
/// only ever sees this plain value.
public struct DaemonConfig: Sendable, Equatable, Codable {
    /// Kafka bootstrap servers, comma-separated host:port.
    public var brokers = "127.0.0.1:9092"
    public var topic = "clipd.records"
    /// Consumer group; daemons with the same group share the topic's partitions.
    public var group = "clipd"
    /// Dead-letter topic; default `<topic>.dlq`.
    public var dlqTopic: String?
    /// Partition assignment: `cooperative-sticky` or `range`.
    public var assignmentStrategy = "cooperative-sticky"
    public var databaseURL = "postgres://127.0.0.1:5432/clipd"
    /// Model checkpoint (see `clipd embed --help`); nil means the active row of model_versions.
    public var model: String?
    /// Label set for records that do not name one.
    public var labelSet = "default"
    public var topK = 5
    /// Directories `file://` image URLs may point into (none: file URLs refused).
    public var allowFileRoots: [String] = []
    /// Allow image URLs that resolve to loopback/private/link-local addresses.
    public var allowPrivateNetworks = false
    public var batchSize = 32
    public var batchLatencyMs = 250
    /// Decode/preprocess worker threads (0 = automatic: cores - BLAS threads, at least 1).
    public var workers = 0
    /// BLAS threads for the encoder (0 = automatic: all cores).
    public var threads = 0
    /// Records admitted but not yet written; the consumer pauses beyond this.
    public var maxInFlight = 256
    /// Bytes held by admitted-but-unwritten records (message bytes, then the preprocessed image
    /// tensor and tokens); the consumer pauses beyond this too, whichever limit comes first.
    public var maxInFlightBytes = 128 * 1024 * 1024
    /// Port of the /metrics, /healthz, /readyz endpoint (0 = off).
    public var httpPort = 9464
    public var httpHost = "0.0.0.0"
    /// On SIGTERM, how long in-flight batches may take to be written.
    public var drainTimeoutSeconds = 30.0
    public var progressIntervalSeconds = 10.0
    public var fetchTimeoutSeconds = 15.0
    public var fetchConnectTimeoutSeconds = 5.0
    public var fetchMaxBytes = 20 * 1024 * 1024
    public var fetchRetries = 3
    /// Concurrent image downloads/file reads (`clipd-fetch` threads).
    public var fetchWorkers = 4
    public var maxImagePixels = 40_000_000
    /// Re-embed every stored record with each newly activated model version (shared by all daemons).
    public var backfillEnabled = true
    /// Records per backfill encoder batch (small, so live batches wait little behind one).
    public var backfillBatchSize = 8
    /// Records per backfill chunk (the unit daemons claim).
    public var backfillChunkSize = 256
    /// How long a claimed chunk stays a daemon's without progress before another may take it.
    public var backfillLeaseSeconds = 30.0
    /// Fraction of records a new version must cover before search answers from it (1 = all).
    public var searchCoverageThreshold = 1.0
    /// Activated versions whose embeddings and tags are kept; older ones are removed.
    public var keepModelVersions = 3
    /// Run the fine-tune job inside the daemon (its own consumer group keeps the training set).
    public var finetuneEnabled = false
    /// The fine-tune job's consumer group (not `group`).
    public var finetuneGroup = "clipd-finetune"
    /// Canary file of the promotion gate (required with finetune_enabled).
    public var finetuneCanary: String?
    /// Where promoted checkpoints are written (storage every daemon can read).
    public var finetuneCheckpointDir = "clipd-checkpoints"
    /// Schedule a run when the last was scheduled at least this many seconds ago (0 = never by time).
    public var finetuneIntervalSeconds = 0.0
    /// Schedule a run when this many samples entered the training set since the last (0 = never by count).
    public var finetuneMinNewPairs = 0
    /// The training set keeps the newest this many samples.
    public var finetuneTrainingSetSize = 10_000
    /// User-Agent sent with every image request.
    public var fetchUserAgent = "clipd/0.1 (image fetcher)"
    /// Politeness: transfers to one host at a time.
    public var fetchHostConcurrency = 4
    /// Politeness: least milliseconds between the starts of two transfers to one host.
    public var fetchHostMinIntervalMs = 20
    /// Extra request headers per host, e.g. `{"images.example.com": {"Authorization": "Bearer …"}}`;
    /// never printed or logged.
    public var fetchHostHeaders: [String: [String: String]] = [:]

    public init() {}

    public var effectiveDLQTopic: String { dlqTopic ?? "\(topic).dlq" }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case brokers, topic, group
        case dlqTopic = "dlq_topic"
        case assignmentStrategy = "assignment_strategy"
        case databaseURL = "database_url"
        case model
        case labelSet = "label_set"
        case topK = "top_k"
        case allowFileRoots = "allow_file_roots"
        case allowPrivateNetworks = "allow_private_networks"
        case batchSize = "batch_size"
        case batchLatencyMs = "batch_latency_ms"
        case workers, threads
        case maxInFlight = "max_in_flight"
        case maxInFlightBytes = "max_in_flight_bytes"
        case httpPort = "http_port"
        case httpHost = "http_host"
        case drainTimeoutSeconds = "drain_timeout_seconds"
        case progressIntervalSeconds = "progress_interval_seconds"
        case fetchTimeoutSeconds = "fetch_timeout_seconds"
        case fetchConnectTimeoutSeconds = "fetch_connect_timeout_seconds"
        case fetchMaxBytes = "fetch_max_bytes"
        case fetchRetries = "fetch_retries"
        case fetchWorkers = "fetch_workers"
        case maxImagePixels = "max_image_pixels"
        case backfillEnabled = "backfill_enabled"
        case backfillBatchSize = "backfill_batch_size"
        case backfillChunkSize = "backfill_chunk_size"
        case backfillLeaseSeconds = "backfill_lease_seconds"
        case searchCoverageThreshold = "search_coverage_threshold"
        case keepModelVersions = "keep_model_versions"
        case finetuneEnabled = "finetune_enabled"
        case finetuneGroup = "finetune_group"
        case finetuneCanary = "finetune_canary"
        case finetuneCheckpointDir = "finetune_checkpoint_dir"
        case finetuneIntervalSeconds = "finetune_interval_seconds"
        case finetuneMinNewPairs = "finetune_min_new_pairs"
        case finetuneTrainingSetSize = "finetune_training_set_size"
        case fetchUserAgent = "fetch_user_agent"
        case fetchHostConcurrency = "fetch_host_concurrency"
        case fetchHostMinIntervalMs = "fetch_host_min_interval_ms"
        case fetchHostHeaders = "fetch_host_headers"
    }

    /// Every key of the configuration file, which is also the environment variable name
    /// upper-cased with a `CLIPD_` prefix (e.g. `batch_size` ↔ `CLIPD_BATCH_SIZE`).
    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

    public enum ValueKind: Sendable, Equatable { case string, optionalString, int, double, bool, stringList, headerMap }

    /// The value type of every key, for parsing environment variables and flags. (CodingKeys
    /// lists the properties in declaration order; DaemonConfigTests holds the two together.)
    public static var kinds: [String: ValueKind] {
        let values = Mirror(reflecting: DaemonConfig()).children.map(\.value)
        precondition(values.count == CodingKeys.allCases.count, "CodingKeys must list every property")
        return Dictionary(uniqueKeysWithValues: zip(CodingKeys.allCases, values).map { key, value in
            let kind: ValueKind
            switch value {
            case is Bool: kind = .bool
            case is Int: kind = .int
            case is Double: kind = .double
            case is [String]: kind = .stringList
            case is [String: [String: String]]: kind = .headerMap
            case is String: kind = .string
            default: kind = .optionalString
            }
            return (key.rawValue, kind)
        })
    }

    /// A problem that makes the configuration unusable, or nil.
    public func problem() -> String? {
        if brokers.isEmpty { return "brokers must not be empty" }
        if topic.isEmpty || group.isEmpty { return "topic and group must not be empty" }
        if !["cooperative-sticky", "range", "roundrobin"].contains(assignmentStrategy) {
            return "assignment_strategy must be cooperative-sticky, range or roundrobin"
        }
        if batchSize < 1 || batchSize > 4096 { return "batch_size must be in 1...4096" }
        if batchLatencyMs < 0 { return "batch_latency_ms must not be negative" }
        if workers < 0 || threads < 0 { return "workers and threads must not be negative" }
        if maxInFlight < batchSize { return "max_in_flight (\(maxInFlight)) must be at least batch_size (\(batchSize))" }
        if maxInFlightBytes < 1 << 20 { return "max_in_flight_bytes must be at least 1048576 (1 MiB)" }
        if fetchWorkers < 1 || fetchWorkers > 256 { return "fetch_workers must be in 1...256" }
        if httpHost.isEmpty { return "http_host must not be empty" }
        if httpPort < 0 || httpPort > 65535 { return "http_port must be in 0...65535" }
        if topK < 1 { return "top_k must be at least 1" }
        if !(drainTimeoutSeconds > 0) || !(progressIntervalSeconds > 0) { return "timeouts and intervals must be positive" }
        if !(fetchTimeoutSeconds > 0) || !(fetchConnectTimeoutSeconds > 0) || fetchMaxBytes < 1 || fetchRetries < 0 {
            return "fetch limits must be positive"
        }
        if maxImagePixels < 1 { return "max_image_pixels must be positive" }
        if backfillBatchSize < 1 || backfillBatchSize > 4096 || backfillChunkSize < 1 { return "backfill_batch_size must be in 1...4096 and backfill_chunk_size positive" }
        if !(backfillLeaseSeconds > 0) { return "backfill_lease_seconds must be positive" }
        if !(searchCoverageThreshold > 0 && searchCoverageThreshold <= 1) { return "search_coverage_threshold must be in (0, 1]" }
        if keepModelVersions < 1 { return "keep_model_versions must be at least 1" }
        if finetuneEnabled && (finetuneCanary ?? "").isEmpty { return "finetune_canary is required with finetune_enabled" }
        if finetuneEnabled && finetuneGroup == group { return "finetune_group must differ from group (the job has its own consumer group)" }
        if finetuneIntervalSeconds < 0 || finetuneMinNewPairs < 0 || finetuneTrainingSetSize < 1 {
            return "finetune_interval_seconds and finetune_min_new_pairs must not be negative, finetune_training_set_size must be positive"
        }
        if fetchUserAgent.isEmpty || fetchUserAgent.contains(where: \.isNewline) { return "fetch_user_agent must be one non-empty line" }
        if !(1...256).contains(fetchHostConcurrency) { return "fetch_host_concurrency must be in 1...256" }
        if !(0...600_000).contains(fetchHostMinIntervalMs) { return "fetch_host_min_interval_ms must be in 0...600000" }
        for (host, headers) in fetchHostHeaders {
            if host.isEmpty || host != host.lowercased() || host.contains("/") { return "fetch_host_headers: host \"\(host)\" must be a lower-case host[:port]" }
            for (name, value) in headers {
                let token = name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_".unicodeScalars.contains($0)) }
                if name.isEmpty || !token { return "fetch_host_headers: header name \"\(name)\" of \(host) is not a token" }
                if value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\u{0}" }) { return "fetch_host_headers: the value of \(name) for \(host) contains a line break" }
            }
        }
        return nil
    }
}
