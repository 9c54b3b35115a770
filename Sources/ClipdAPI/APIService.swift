import CLIP
import CLIPTokenizer
import Executors
import Foundation
import HTTPServer
import ImageIO
import Logging
import Metrics
import Pipeline
import Storage
import Tensor
import ZeroShot

/// The HTTP API and the web page (`/`, `/v1/*`), on the daemon's port or alone (`clipd serve`).
///
/// Model work (text and image encoding, label-set embeddings) runs on `encoder`: in the daemon
/// that is the pipeline's own encoder thread (FIFO), so API work never runs a second model
/// next to the stream's and never oversubscribes the cores. At most one API job is on it at a
/// time (`jobs`), so a live batch waits behind at most one API job; up to
/// `limits.maxQueuedJobs` more wait without a thread, further requests get 503 + Retry-After.
/// Images are fetched and decoded through the daemon's `ImageLoader` (same SSRF guard, file
/// roots, per-host politeness and decode pool).
public final class APIService: Sendable {
    /// What the daemon (or `clipd serve`) provides.
    public struct Backend: Sendable {
        /// The database the API reads (connected on first use in the daemon).
        public var database: @Sendable () async throws -> ClipdDatabase
        public var loader: ImageLoader
        public var tokenizer: CLIPTokenizer
        /// Where model work runs (see the type's comment).
        public var encoder: WorkerPool
        /// Loads a model version's checkpoint (the daemon's `ModelRegistry`).
        public var loadVersion: @Sendable (ClipdDatabase.ModelVersion) async throws -> StreamPipeline.LoadedModel
        /// The model the stream holds, reused when it is the version asked for.
        public var currentModel: @Sendable () -> StreamPipeline.LoadedModel?
        /// The stream's figures in the daemon; nil for `clipd serve`.
        public var stream: (@Sendable () -> StreamStatus)?

        public init(database: @escaping @Sendable () async throws -> ClipdDatabase, loader: ImageLoader, tokenizer: CLIPTokenizer, encoder: WorkerPool,
                    loadVersion: @escaping @Sendable (ClipdDatabase.ModelVersion) async throws -> StreamPipeline.LoadedModel,
                    currentModel: @escaping @Sendable () -> StreamPipeline.LoadedModel? = { nil },
                    stream: (@Sendable () -> StreamStatus)? = nil) {
            self.database = database
            self.loader = loader
            self.tokenizer = tokenizer
            self.encoder = encoder
            self.loadVersion = loadVersion
            self.currentModel = currentModel
            self.stream = stream
        }
    }

    /// This daemon's stream, for the status panel.
    public struct StreamStatus: Sendable {
        public var consumed: Int
        public var written: Int
        public var failed: Int
        /// (topic, partition) → records not yet consumed.
        public var lag: [(topic: String, partition: Int32, lag: Int64)]

        public init(consumed: Int, written: Int, failed: Int, lag: [(topic: String, partition: Int32, lag: Int64)]) {
            self.consumed = consumed
            self.written = written
            self.failed = failed
            self.lag = lag
        }
    }

    let backend: Backend
    let limits: APILimits
    let logger: Logger
    let jobs = AsyncSemaphore(permits: 1)
    let models = Locked<[(id: Int64, model: StreamPipeline.LoadedModel)]>([])
    let modelLoads = AsyncSemaphore(permits: 1)
    let classifiers = Locked<[String: ZeroShotClassifier]>([:])
    let thumbnails = Locked<ThumbnailCache>(ThumbnailCache(capacityBytes: 16 << 20))
    let rateSamples = Locked<[(at: ContinuousClock.Instant, written: Int)]>([])

    public init(backend: Backend, limits: APILimits = APILimits(), logger: Logger) {
        self.backend = backend
        self.limits = limits
        self.logger = logger
    }

    /// HELP text of the API's metrics (`/metrics`).
    public static let metricsHelp: [String: String] = [
        "clipd_api_requests_total": "HTTP API and page requests, by route and response status.",
        "clipd_api_request_duration_seconds": "Time to answer an HTTP API request, by route (waiting for the encoder included).",
    ]

    /// The reply for an API path or the page; nil for any other path.
    public func handle(_ request: HTTPEndpoint.Request) async -> HTTPEndpoint.Reply? {
        guard let parsed = APIRoute.parse(request, limits: limits) else { return nil }
        let start = ContinuousClock.now
        let reply = await answer(parsed, path: request.path)
        let route = (try? parsed.get()).map(Self.routeName) ?? "invalid"
        Counter(label: "clipd_api_requests_total", dimensions: [("route", route), ("status", "\(reply.status)")]).increment()
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        Metrics.Timer(label: "clipd_api_request_duration_seconds", dimensions: [("route", route)], preferredDisplayUnit: .seconds)
            .recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        return reply
    }

    static func routeName(_ route: APIRoute) -> String {
        switch route {
        case .page: "page"
        case .status: "status"
        case .search: "search"
        case .record: "record"
        case .thumbnail: "thumbnail"
        case .embeddings: "embeddings"
        case .classify: "classify"
        }
    }

    func answer(_ parsed: Result<APIRoute, APIError>, path: String) async -> HTTPEndpoint.Reply {
        do {
            switch try parsed.get() {
            case .page: return WebPage.reply
            case .status: return json(try await status())
            case .search(let query, let limit): return json(try await search(query, limit: limit))
            case .record(let id): return json(try await record(id))
            case .thumbnail(let id): return try await thumbnail(id)
            case .embeddings(let inputs, let model, let base64): return json(try await embeddings(inputs, model: model, base64: base64))
            case .classify(let url, let labels, let topK): return json(try await classify(url, labels: labels, topK: topK))
            }
        } catch let error as APIError {
            return error.reply
        } catch let failure as PipelineFailure {
            return Self.failureReply(failure).reply
        } catch {
            logger.error("API request failed", metadata: ["path": "\(path)", "error": "\(error)"])
            return APIError(500, "internal", "\(error)").reply
        }
    }

    func json(_ value: JSONOutput) -> HTTPEndpoint.Reply {
        HTTPEndpoint.Reply(status: 200, contentType: "application/json", body: value.rendered, headers: ["Cache-Control": "no-store"])
    }

    /// A failed fetch or decode of a URL the client gave: its class, as dead letters carry it.
    static func failureReply(_ failure: PipelineFailure) -> APIError {
        switch failure.failureClass {
        case .fetch, .image: APIError(422, failure.errorClass, failure.message)
        default: APIError(500, failure.errorClass, failure.message)
        }
    }

    // MARK: models

    /// The version search answers from, and its model.
    func searchModel() async throws -> StreamPipeline.LoadedModel {
        guard let version = try await backend.database().searchModelVersion() else {
            throw APIError(503, "no_model", "no model version has embedded the stored records yet", headers: ["Retry-After": "5"])
        }
        return try await model(version)
    }

    func model(named name: String?) async throws -> StreamPipeline.LoadedModel {
        guard let name else { return try await searchModel() }
        guard let version = try await backend.database().modelVersion(idOrName: name) else {
            throw APIError(404, "model_not_found", "no model version is named \(name) (see `clipd model list`)")
        }
        return try await model(version)
    }

    /// The stream's model when it is `version`, else a cached or freshly loaded one (two kept).
    func model(_ version: ClipdDatabase.ModelVersion) async throws -> StreamPipeline.LoadedModel {
        if let current = backend.currentModel(), current.version.id == version.id { return current }
        if let cached = models.withLock({ $0.first { $0.id == version.id }?.model }) { return cached }
        return try await modelLoads.withPermit {
            if let cached = models.withLock({ $0.first { $0.id == version.id }?.model }) { return cached }
            let loaded: StreamPipeline.LoadedModel
            do { loaded = try await backend.loadVersion(version) } catch {
                throw APIError(503, "model_unavailable", "model version \(version.id) (\(version.name)) cannot be loaded: \(error)")
            }
            models.withLock {
                $0.removeAll { $0.id == version.id }
                $0.insert((version.id, loaded), at: 0)
                if $0.count > 2 { $0.removeLast($0.count - 2) }
            }
            return loaded
        }
    }

    /// Runs model work on the encoder, one API job at a time.
    func onEncoder<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        guard jobs.snapshot.waiting < limits.maxQueuedJobs else {
            throw APIError(503, "busy", "\(limits.maxQueuedJobs) requests are already waiting for the model", headers: ["Retry-After": "1"])
        }
        return try await jobs.withPermit { try await backend.encoder.run(work) }
    }

    func tokenIDs(_ text: String, _ model: StreamPipeline.LoadedModel) -> [Int32] {
        backend.tokenizer.tokenize(text, contextLength: model.model.config.contextLength).ids.map(Int32.init)
    }

    /// L2-normalised embeddings of texts (in order).
    func encodeTexts(_ texts: [String], _ model: StreamPipeline.LoadedModel) async throws -> [[Float]] {
        let ids = texts.map { tokenIDs($0, model) }
        let clip = model.model
        return try await onEncoder {
            var features = try clip.encodeTexts(ids)
            let e = clip.config.embedDim
            features.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: ids.count, cols: e) }
            return (0..<ids.count).map { Array(features.data[$0 * e..<($0 + 1) * e]) }
        }
    }

    /// L2-normalised embeddings of preprocessed images (in order).
    func encodeImages(_ pixels: [[Float]], _ model: StreamPipeline.LoadedModel) async throws -> [[Float]] {
        let clip = model.model
        return try await onEncoder {
            var features = clip.encodeImages(pixels.flatMap { $0 }, count: pixels.count)
            let e = clip.config.embedDim
            features.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: pixels.count, cols: e) }
            return (0..<pixels.count).map { Array(features.data[$0 * e..<($0 + 1) * e]) }
        }
    }

    /// Fetches (SSRF guard and file roots as the daemon's) and preprocesses images concurrently.
    func loadImages(_ urls: [String]) async throws -> [[Float]] {
        let loader = backend.loader
        return try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (i, url) in urls.enumerated() {
                group.addTask {
                    do { return (i, try await loader.load(url)) } catch let failure as PipelineFailure {
                        throw APIError(422, failure.errorClass, "\(url): \(failure.message)")
                    }
                }
            }
            var out = [[Float]](repeating: [], count: urls.count)
            for try await (i, pixels) in group { out[i] = pixels }
            return out
        }
    }

    // MARK: routes

    func search(_ query: APIRoute.SearchQuery, limit: Int) async throws -> JSONOutput {
        let model = try await searchModel()
        let vector: [Float]
        switch query {
        case .text(let text): vector = try await encodeTexts([text], model)[0]
        case .imageURL(let url): vector = try await encodeImages(try await loadImages([url]), model)[0]
        }
        let database = try await backend.database()
        let hits = try await database.nearest(to: vector, modelVersionID: model.version.id, limit: limit)
        let tags = Dictionary(grouping: try await database.tags(recordIDs: hits.map(\.recordID), modelVersionID: model.version.id), by: \.recordID)
        return .object([
            ("model_version", .int(model.version.id)),
            ("model_version_name", .string(model.version.name)),
            ("results", .array(hits.map { hit in
                .object([
                    ("record_id", .string(hit.recordID)),
                    ("similarity", .double(1 - hit.distance)),
                    ("image_url", .optional(hit.imageURL)),
                    ("caption", .optional(hit.caption)),
                    ("thumbnail_url", .string("/v1/records/\(Self.pathSegment(hit.recordID))/thumbnail")),
                    ("tags", .array((tags[hit.recordID] ?? []).map(Self.tagJSON))),
                ])
            })),
        ])
    }

    static func tagJSON(_ tag: StoredTag) -> JSONOutput {
        .object([("label_set", .string(tag.labelSet)), ("label", .string(tag.label)), ("score", .float(tag.score)), ("rank", .int(Int64(tag.rank)))])
    }

    static func pathSegment(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#%"))) ?? id
    }

    func storedRecord(_ id: String) async throws -> ClipdDatabase.RecordDetail {
        guard let record = try await backend.database().record(id: id) else {
            throw APIError(404, "record_not_found", "no record has id \(id)")
        }
        return record
    }

    func record(_ id: String) async throws -> JSONOutput {
        let database = try await backend.database()
        let record = try await storedRecord(id)
        let search = try await database.searchModelVersion()
        let embeddings = try await database.embeddings(recordID: id)
        let tags = try await database.tags(recordIDs: [id], modelVersionID: nil)
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return .object([
            ("id", .string(record.id)),
            ("image_url", .string(record.imageURL)),
            ("caption", .optional(record.caption)),
            ("label_set", .optional(record.labelSet)),
            ("metadata", record.metadataJSON.map(JSONOutput.raw) ?? .null),
            ("source", .object([("topic", .optional(record.sourceTopic)), ("partition", record.sourcePartition.map { .int(Int64($0)) } ?? .null),
                                ("offset", record.sourceOffset.map(JSONOutput.int) ?? .null)])),
            ("received_at", .string(iso.string(from: record.receivedAt))),
            ("updated_at", .string(iso.string(from: record.updatedAt))),
            ("search_model_version", search.map { .int($0.id) } ?? .null),
            ("thumbnail_url", .string("/v1/records/\(Self.pathSegment(record.id))/thumbnail")),
            ("embeddings", .array(embeddings.map {
                .object([("model_version", .int($0.modelVersionID)), ("model_version_name", .string($0.modelVersionName)),
                         ("image_text_similarity", $0.imageTextSimilarity.map(JSONOutput.float) ?? .null),
                         ("created_at", .string(iso.string(from: $0.createdAt)))])
            })),
            ("tags", .array(tags.map { tag in
                .object([("model_version", .int(tag.modelVersionID)), ("label_set", .string(tag.labelSet)), ("label", .string(tag.label)),
                         ("score", .float(tag.score)), ("rank", .int(Int64(tag.rank)))])
            })),
        ])
    }

    func thumbnail(_ id: String) async throws -> HTTPEndpoint.Reply {
        let record = try await storedRecord(id)
        let key = record.imageURL
        if let cached = thumbnails.withLock({ $0.get(key) }) { return Self.jpegReply(cached) }
        let loader = backend.loader
        let bytes = try await loader.bytes(record.imageURL)
        let decoder = loader.preprocessor.decoder
        let result: Result<[UInt8], PipelineFailure> = await loader.pool.run {
            do { return .success(try Thumbnail.jpeg(bytes, decoder: decoder).jpeg) } catch let error as ImageIOError {
                return .failure(PipelineFailure(error))
            } catch {
                return .failure(PipelineFailure(.internal, "\(error)"))
            }
        }
        let jpeg = try result.get()
        thumbnails.withLock { $0.put(key, jpeg) }
        return Self.jpegReply(jpeg)
    }

    static func jpegReply(_ jpeg: [UInt8]) -> HTTPEndpoint.Reply {
        HTTPEndpoint.Reply(status: 200, contentType: "image/jpeg", bytes: jpeg, headers: ["Cache-Control": "max-age=3600"])
    }

    func embeddings(_ inputs: [EmbeddingInput], model name: String?, base64: Bool) async throws -> JSONOutput {
        let model = try await model(named: name)
        var texts: [(index: Int, text: String)] = []
        var images: [(index: Int, url: String)] = []
        for (i, input) in inputs.enumerated() {
            switch input {
            case .text(let t): texts.append((i, t))
            case .imageURL(let u): images.append((i, u))
            }
        }
        // Fetch first (no model held meanwhile), then one encoder job per kind.
        let pixels = images.isEmpty ? [] : try await loadImages(images.map(\.url))
        var vectors = [[Float]](repeating: [], count: inputs.count)
        if !texts.isEmpty {
            for (k, v) in try await encodeTexts(texts.map(\.text), model).enumerated() { vectors[texts[k].index] = v }
        }
        if !images.isEmpty {
            for (k, v) in try await encodeImages(pixels, model).enumerated() { vectors[images[k].index] = v }
        }
        // Tokens read per text (up to and including the end token), as OpenAI counts prompt tokens.
        let tokens = texts.reduce(0) { total, t in
            let ids = tokenIDs(t.text, model)
            return total + (ids.lastIndex { $0 != 0 }.map { $0 + 1 } ?? 0)
        }
        return .object([
            ("object", .string("list")),
            ("data", .array(vectors.enumerated().map { i, v in
                .object([("object", .string("embedding")), ("index", .int(Int64(i))),
                         ("embedding", base64 ? .string(Self.base64(v)) : .array(v.map(JSONOutput.float)))])
            })),
            ("model", .string(model.version.name)),
            ("model_version", .int(model.version.id)),
            ("usage", .object([("prompt_tokens", .int(Int64(tokens))), ("total_tokens", .int(Int64(tokens)))])),
        ])
    }

    /// Little-endian float32 bytes in base64 (OpenAI's `encoding_format: "base64"`).
    static func base64(_ v: [Float]) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(v.count * 4)
        for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return Data(bytes).base64EncodedString()
    }

    func classify(_ url: String, labels: APIRoute.Labels, topK: Int?) async throws -> JSONOutput {
        let model = try await searchModel()
        let set: LabelSet
        switch labels {
        case .named(let name):
            guard let stored = try await backend.database().labelSet(named: name) else {
                throw APIError(404, "label_set_not_found", "no label set is named \(name) (see `clipd labels list`)")
            }
            set = stored
        case .adHoc(let names, let templates):
            set = LabelSet(name: "", labels: names.map { LabelSet.Label($0) }, templates: templates)
        }
        let pixels = try await loadImages([url])
        let key = "\(model.version.id)\u{1}\(set.name)\u{1}\(set.version)\u{1}\(set.labels.map(\.name).joined(separator: "\u{2}"))\u{1}\(set.templates.joined(separator: "\u{2}"))"
        let classifier: ZeroShotClassifier
        if let cached = classifiers.withLock({ $0[key] }) {
            classifier = cached
        } else {
            let tokenizer = backend.tokenizer
            let context = model.model.config.contextLength
            let clip = model.model
            classifier = try await onEncoder {
                try ZeroShotClassifier(model: clip, labelSet: set, tokenize: { tokenizer.tokenize($0, contextLength: context).ids.map(Int32.init) })
            }
            classifiers.withLock {
                if $0.count >= 64 { $0.removeAll() }
                $0[key] = classifier
            }
        }
        let image = try await encodeImages(pixels, model)[0]
        let tags = classifier.tags(image[...], topK: topK ?? set.labels.count)
        return .object([
            ("model_version", .int(model.version.id)),
            ("model_version_name", .string(model.version.name)),
            ("label_set", set.name.isEmpty ? .null : .string(set.name)),
            ("tags", .array(tags.map { .object([("label", .string($0.label)), ("score", .float($0.score)), ("rank", .int(Int64($0.rank)))]) })),
        ])
    }

    func status() async throws -> JSONOutput {
        let database = try await backend.database()
        let coverage = try await database.versionCoverage()
        let failures = try await database.failureCounts()
        var stream: JSONOutput = .null
        if let snapshot = backend.stream?() {
            let now = ContinuousClock.now
            let rate: Double? = rateSamples.withLock { samples in
                samples.append((now, snapshot.written))
                samples.removeAll { now - $0.at > .seconds(60) }
                guard let first = samples.first, now - first.at >= .seconds(1) else { return nil }
                let (s, a) = (now - first.at).components
                return Double(snapshot.written - first.written) / (Double(s) + Double(a) / 1e18)
            }
            stream = .object([
                ("records_per_second", rate.map(JSONOutput.double) ?? .null),
                ("consumed", .int(Int64(snapshot.consumed))), ("written", .int(Int64(snapshot.written))), ("failed", .int(Int64(snapshot.failed))),
                ("lag", .array(snapshot.lag.map { .object([("topic", .string($0.topic)), ("partition", .int(Int64($0.partition))), ("lag", .int($0.lag))]) })),
            ])
        }
        return .object([
            ("stream", stream),
            ("model_versions", .array(coverage.map { c in
                .object([("id", .int(c.modelVersionID)), ("name", .string(c.name)), ("active", .bool(c.isActive)), ("search", .bool(c.isSearchVersion)),
                         ("covered", .int(c.covered)), ("total", .int(c.total)), ("coverage", .double(c.fraction)),
                         ("backfill", .optional(c.backfillStatus)), ("eta_seconds", c.etaSeconds.map(JSONOutput.double) ?? .null)])
            })),
            ("failures_by_class", .object(failures.map { ($0.errorClass, .int($0.count)) })),
        ])
    }
}

/// Thumbnails by image URL, least recently used dropped past `capacityBytes`.
struct ThumbnailCache {
    let capacityBytes: Int
    private var entries: [String: [UInt8]] = [:]
    private var order: [String] = []
    private var bytes = 0

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
    }

    mutating func get(_ key: String) -> [UInt8]? {
        guard let value = entries[key] else { return nil }
        if let i = order.firstIndex(of: key) { order.remove(at: i) }
        order.append(key)
        return value
    }

    mutating func put(_ key: String, _ value: [UInt8]) {
        guard value.count <= capacityBytes else { return }
        if let old = entries.removeValue(forKey: key) {
            bytes -= old.count
            order.removeAll { $0 == key }
        }
        while bytes + value.count > capacityBytes, !order.isEmpty {
            let evicted = order.removeFirst()
            bytes -= entries.removeValue(forKey: evicted)?.count ?? 0
        }
        entries[key] = value
        order.append(key)
        bytes += value.count
    }
}
