import Foundation
import Postgres
import Training

/// `training_samples` (migration 0006): the fine-tune job's bounded, durable training set when it
/// consumes the topic, written together with its consumer group's offsets.
extension ClipdDatabase {
    /// One captioned record as the collector prepared it.
    public struct TrainingSample: Sendable {
        public var recordID: String
        public var imageURL: String
        public var caption: String
        /// The fetched image bytes: only their SHA-256 is stored (exact-duplicate detection).
        public var imageBytes: [UInt8]
        /// `TrainingPreprocessing.key` of the crop.
        public var preprocessing: String
        public var pixels: [Float]
        public var tokens: [Int32]
        public var sourceTopic: String
        public var sourcePartition: Int32
        public var sourceOffset: Int64

        public init(recordID: String, imageURL: String, caption: String, imageBytes: [UInt8], preprocessing: String, pixels: [Float],
                    tokens: [Int32], sourceTopic: String, sourcePartition: Int32, sourceOffset: Int64) {
            self.recordID = recordID
            self.imageURL = imageURL
            self.caption = caption
            self.imageBytes = imageBytes
            self.preprocessing = preprocessing
            self.pixels = pixels
            self.tokens = tokens
            self.sourceTopic = sourceTopic
            self.sourcePartition = sourcePartition
            self.sourceOffset = sourceOffset
        }
    }

    /// Inserts the samples (duplicates of a stored image or caption are skipped), stores the
    /// group's next offsets and trims the set to the newest `maxSamples`, in one transaction.
    /// Returns how many samples were added.
    @discardableResult
    public func storeTrainingSamples(_ samples: [TrainingSample], group: String, offsets: [(topic: String, partition: Int32, next: Int64)],
                                     maxSamples: Int) async throws -> Int {
        try await connection.withTransaction { transaction in
            var added = 0
            for s in samples {
                let pixels = s.pixels.withUnsafeBufferPointer { Data(buffer: $0) }
                added += try await transaction.execute("""
                    INSERT INTO training_samples (record_id, image_url, caption, caption_key, image_sha256, preprocessing, pixels, token_ids,
                                                  consumer_group, source_topic, source_partition, source_offset)
                    VALUES (\(s.recordID), \(s.imageURL), \(s.caption), clipd_caption_key(\(s.caption)), sha256(\(Data(s.imageBytes))),
                            \(s.preprocessing), \(pixels), \(s.tokens.map(Int.init)), \(group), \(s.sourceTopic), \(s.sourcePartition), \(s.sourceOffset))
                    ON CONFLICT DO NOTHING
                    """)
            }
            for o in offsets {
                try await transaction.execute("""
                    INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES (\(group), \(o.topic), \(o.partition), \(o.next))
                    ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
                    """)
            }
            if added > 0 {
                try await transaction.execute("""
                    DELETE FROM training_samples WHERE id <= (SELECT id FROM training_samples ORDER BY id DESC OFFSET \(Int64(maxSamples)) LIMIT 1)
                    """)
            }
            return added
        }
    }

    /// Samples in the training set.
    public func trainingSampleCount() async throws -> Int {
        try await connection.query("SELECT count(*) FROM training_samples").first!.decode(Int.self, at: 0)
    }
}

extension ClipdDatabase {
    /// The newest `limit` training samples as pairs (crops are read later, only for the pairs a run uses).
    public func trainingSetPairs(limit: Int) async throws -> [CaptionedRecord] {
        try await connection.query("""
            SELECT id, record_id, image_url, caption FROM training_samples ORDER BY id DESC LIMIT \(Int64(limit))
            """).map {
            CaptionedRecord(id: try $0.decode(String.self, at: 1), imageURL: try $0.decode(String.self, at: 2), caption: try $0.decode(String.self, at: 3),
                            sampleID: try $0.decode(Int64.self, at: 0))
        }
    }

    /// The stored crops and token ids of these samples.
    public func trainingSampleInputs(ids: [Int64]) async throws -> [Int64: StoredTrainingInput] {
        var out: [Int64: StoredTrainingInput] = [:]
        for row in try await connection.query("""
            SELECT id, preprocessing, pixels, token_ids FROM training_samples WHERE id = ANY(\(ids.map(Int.init)))
            """) {
            let data = try row.decode(Data.self, at: 2)
            var pixels = [Float](repeating: 0, count: data.count / MemoryLayout<Float>.size)
            _ = pixels.withUnsafeMutableBytes { data.copyBytes(to: $0) }
            out[try row.decode(Int64.self, at: 0)] = StoredTrainingInput(preprocessing: try row.decode(String.self, at: 1), pixels: pixels,
                                                                        tokens: try row.decode([Int].self, at: 3).map(Int32.init))
        }
        return out
    }

    /// When the last run was scheduled and how many samples entered the training set since.
    public func trainingSetActivitySinceLastRun() async throws -> (lastRun: Date?, newPairs: Int) {
        let row = try await connection.query("""
            WITH last AS (SELECT max(scheduled_at) AS at FROM finetune_runs WHERE scheduled_at <= now())
            SELECT extract(epoch FROM (SELECT at FROM last))::float8,
                   (SELECT count(*) FROM training_samples WHERE added_at > coalesce((SELECT at FROM last), '-infinity'))
            """).first!
        return (try row.decode(Double?.self, at: 0).map { Date(timeIntervalSince1970: $0) }, try row.decode(Int.self, at: 1))
    }
}

extension ClipdDatabase {
    /// The pairs fixed when the run first started (`finetune_runs.pairs`).
    public func runPairs(runID: Int64) async throws -> [CaptionedRecord]? {
        guard let text = try await connection.query("SELECT pairs::text FROM finetune_runs WHERE id = \(runID)").first?.decode(String?.self, at: 0),
              let array = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else { return nil }
        return array.compactMap { object in
            guard let id = object["id"] as? String, let url = object["image_url"] as? String, let caption = object["caption"] as? String else { return nil }
            return CaptionedRecord(id: id, imageURL: url, caption: caption, sampleID: (object["sample_id"] as? NSNumber)?.int64Value)
        }
    }

    public func recordRunPairs(runID: Int64, pairs: [CaptionedRecord]) async throws {
        let array: [[String: Any]] = pairs.map { pair in
            var object: [String: Any] = ["id": pair.id, "image_url": pair.imageURL, "caption": pair.caption]
            if let sample = pair.sampleID { object["sample_id"] = sample }
            return object
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: array), as: UTF8.self)
        try await connection.query("UPDATE finetune_runs SET pairs = \(PostgresJSON(json)) WHERE id = \(runID)")
    }
}
