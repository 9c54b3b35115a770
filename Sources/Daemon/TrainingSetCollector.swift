import CLIP
import CLIPTokenizer
import Executors
import Fetch
import Foundation
import Kafka
import Logging
import Pipeline
import Postgres
import Storage
import Training

/// The fine-tune job's own consumer of the topic: its consumer group reads the records, keeps the
/// captioned ones, fetches and preprocesses their images through the daemon's `ImageLoader` and
/// `RecordParser`, tokenizes the captions, and stores them in `training_samples` (a window of the
/// newest `maxSamples`, exact duplicate images and repeated captions kept out). A batch's samples
/// and the group's next offsets are written in one transaction, and only then committed to Kafka,
/// so a sample is never lost to a crash and a restart resumes after what was stored.
public struct TrainingSetCollector: Sendable {
    public struct Options: Sendable, Equatable {
        public var brokers: String
        public var topic: String
        /// The job's own consumer group (not the daemons').
        public var group: String
        /// The training set keeps the newest this many samples.
        public var maxSamples = 10_000
        /// Messages prepared and stored per transaction.
        public var batchSize = 32
        /// With `untilCaughtUp`: the longest wait for the end of the topic.
        public var catchUpTimeout: Double = 120

        public init(brokers: String, topic: String, group: String) {
            self.brokers = brokers
            self.topic = topic
            self.group = group
        }
    }

    /// What one call of `run` did.
    public struct Stats: Sendable, Equatable {
        public var consumed = 0
        public var added = 0
        /// Parsed and loaded, but an image or caption already in the set.
        public var duplicates = 0
        public var uncaptioned = 0
        /// Invalid records and images that could not be loaded.
        public var failed = 0
    }

    public let options: Options
    let configuration: PostgresConfiguration
    let fetch: FetchConfiguration
    let logger: Logger

    public init(options: Options, configuration: PostgresConfiguration, fetch: FetchConfiguration, logger: Logger) {
        self.options = options
        self.configuration = configuration
        self.fetch = fetch
        self.logger = logger
    }

    /// Consumes until `stopping()` turns true or, with `untilCaughtUp`, until every assigned
    /// partition is stored up to its end (or `catchUpTimeout` passed). `model` fixes the
    /// preprocessing (input size, normalisation, context length).
    @discardableResult
    public func run(model: CLIPConfig, untilCaughtUp: Bool, stopping: @escaping @Sendable () -> Bool) async throws -> Stats {
        let connection = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        let database = ClipdDatabase(connection: connection)
        let tracker = OffsetTracker()
        let assignments = PartitionAssignments(store: database, group: options.group, tracker: tracker, logger: logger)
        var consumerConfiguration = KafkaConsumerConfiguration(bootstrapServers: options.brokers, groupID: options.group, topics: [options.topic])
        consumerConfiguration.startingOffsets = { partitions in
            await assignments.assigned(partitions.map(TopicPartition.init)).kafkaOffsets
        }
        consumerConfiguration.partitionsRevoked = { partitions, _ in
            assignments.revoked(partitions.map(TopicPartition.init))
        }
        let consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)
        let source = KafkaMessageSource(consumer: consumer, logger: logger)
        let polling = Task { try await consumer.run() }
        let buffer = Locked<[IncomingMessage]>([])
        let limit = options.batchSize * 4
        let reader = Task {
            for try await message in source.messages() {
                // Bounded: while the buffer is full the consumer's own buffer fills and pauses fetching.
                while buffer.withLock({ $0.count }) >= limit && !Task.isCancelled { try await Task.sleep(for: .milliseconds(20)) }
                buffer.withLock { $0.append(message) }
            }
        }
        defer {
            reader.cancel()
            source.stop()
            consumer.shutdown()
        }

        let loader = ImageLoader(model: model, fetch: fetch, workers: 2, allowPlainPaths: false)
        let tokenizer = try CLIPTokenizer.shared()
        let key = TrainingPreprocessing.key(model)
        var stats = Stats()
        var next: [TopicPartition: Int64] = [:]
        let started = ContinuousClock.now
        logger.info("collecting the training set", metadata: ["topic": "\(options.topic)", "group": "\(options.group)", "max_samples": "\(options.maxSamples)"])
        while !stopping() {
            let batch = buffer.withLock { pending -> [IncomingMessage] in
                let taken = Array(pending.prefix(options.batchSize))
                pending.removeFirst(taken.count)
                return taken
            }
            if batch.isEmpty {
                if untilCaughtUp {
                    if await caughtUp(consumer: consumer, tracker: tracker, next: next) { break }
                    if ContinuousClock.now - started > .milliseconds(Int(options.catchUpTimeout * 1000)) {
                        logger.warning("the training set did not reach the end of the topic in time; training on what was collected",
                                       metadata: ["catch_up_timeout_s": "\(options.catchUpTimeout)"])
                        break
                    }
                }
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            stats.consumed += batch.count
            var samples: [ClipdDatabase.TrainingSample] = []
            for outcome in await prepare(batch, loader: loader, tokenizer: tokenizer, contextLength: model.contextLength, key: key) {
                switch outcome {
                case .sample(let sample): samples.append(sample)
                case .uncaptioned: stats.uncaptioned += 1
                case .failed(let why):
                    stats.failed += 1
                    logger.debug("record left out of the training set", metadata: ["reason": "\(why)"])
                }
            }
            for message in batch { next[message.partition] = max(next[message.partition] ?? 0, message.offset + 1) }
            let offsets = Dictionary(grouping: batch, by: \.partition).keys.map { (topic: $0.topic, partition: $0.partition, next: next[$0]!) }
            var delay = 0.2
            while true {
                do {
                    let added = try await database.storeTrainingSamples(samples, group: options.group, offsets: offsets, maxSamples: options.maxSamples)
                    stats.added += added
                    stats.duplicates += samples.count - added
                    break
                } catch {
                    logger.warning("cannot store training samples; retrying", metadata: ["error": "\(error)", "delay_s": "\(delay)"])
                    try await Task.sleep(for: .seconds(delay))
                    delay = min(delay * 2, 10)
                }
            }
            // Stored: now the broker may hear about it (lag visibility; PostgreSQL holds the truth).
            source.commit(Dictionary(uniqueKeysWithValues: offsets.map { (TopicPartition($0.topic, $0.partition), $0.next) }))
        }
        reader.cancel()
        source.stop()
        consumer.shutdown()
        _ = try? await polling.value
        await connection.close()
        logger.info("training set collection stopped", metadata: ["consumed": "\(stats.consumed)", "added": "\(stats.added)",
                                                                  "duplicates": "\(stats.duplicates)", "uncaptioned": "\(stats.uncaptioned)",
                                                                  "failed": "\(stats.failed)"])
        return stats
    }

    enum Prepared: Sendable {
        case sample(ClipdDatabase.TrainingSample)
        case uncaptioned
        case failed(String)
    }

    private func prepare(_ batch: [IncomingMessage], loader: ImageLoader, tokenizer: CLIPTokenizer, contextLength: Int, key: String) async -> [Prepared] {
        let parser = RecordParser()
        return await withTaskGroup(of: (Int, Prepared).self) { group in
            for (index, message) in batch.enumerated() {
                group.addTask {
                    do {
                        let record = try parser.parse(message)
                        guard let caption = record.caption?.trimmingCharacters(in: .whitespacesAndNewlines), !caption.isEmpty else {
                            return (index, .uncaptioned)
                        }
                        let bytes = try await loader.bytes(record.imageURL)
                        let pixels = try await loader.pixels(from: bytes)
                        let tokens = await loader.pool.run { tokenizer.tokenize(caption, contextLength: contextLength).ids.map(Int32.init) }
                        return (index, .sample(.init(recordID: record.id, imageURL: record.imageURL, caption: caption, imageBytes: bytes,
                                                     preprocessing: key, pixels: pixels, tokens: tokens, sourceTopic: message.partition.topic,
                                                     sourcePartition: message.partition.partition, sourceOffset: message.offset)))
                    } catch {
                        return (index, .failed("\(error)"))
                    }
                }
            }
            var out = [Prepared?](repeating: nil, count: batch.count)
            for await (index, prepared) in group { out[index] = prepared }
            return out.map { $0! }
        }
    }

    /// Every assigned partition is stored up to its high watermark.
    private func caughtUp(consumer: KafkaConsumer, tracker: OffsetTracker, next: [TopicPartition: Int64]) async -> Bool {
        guard let lags = try? await consumer.lag(timeout: .seconds(2)), !lags.isEmpty else { return false }
        return lags.allSatisfy { lag in
            let partition = TopicPartition(lag.topicPartition)
            let position = next[partition] ?? tracker.committable(partition) ?? -1
            return position >= lag.highWatermark || (position < 0 && lag.highWatermark <= lag.lowWatermark)
        }
    }
}
