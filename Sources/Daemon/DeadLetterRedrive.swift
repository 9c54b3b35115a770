import Foundation
import Kafka
import Logging
import Storage

/// `clipd dlq replay`: republishes dead letters (their exact key and payload) to the topic they
/// came from, or to `topic`, chunk by chunk, and marks each chunk replayed once every message of
/// it is delivered. Safe to run twice and concurrently: only dead letters not yet replayed are
/// taken, and a chunk another replay holds is skipped. A message that had no key is published
/// with its record id as the key, so the replayed record keeps the id it was given the first
/// time (rows are upserted by id: a record replayed twice is still written once).
public struct DeadLetterRedrive: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var replayed = 0
        /// Dead letters without a payload or a topic to send to; left pending.
        public var skipped = 0
    }

    let database: ClipdDatabase
    let producer: KafkaProducer
    /// Where to publish; nil: each dead letter's own source topic.
    let topic: String?
    let logger: Logger

    public init(database: ClipdDatabase, producer: KafkaProducer, topic: String?, logger: Logger) {
        self.database = database
        self.producer = producer
        self.topic = topic
        self.logger = logger
    }

    /// The message a dead letter is replayed as, or nil when it cannot be (no payload, no topic).
    public static func message(for letter: ClipdDatabase.DeadLetter, topic override: String?) -> KafkaProducerMessage? {
        guard let payload = letter.payload, let topic = override ?? letter.sourceTopic else { return nil }
        let key = letter.key ?? letter.recordID.map { Array($0.utf8) }
        return KafkaProducerMessage(topic: topic, key: key, value: payload)
    }

    /// Replays every pending dead letter that `filter` selects (at most `filter.limit`), `chunk` at a time.
    public func run(_ filter: ClipdDatabase.DeadLetterFilter, chunk: Int = 500) async throws -> Outcome {
        var outcome = Outcome()
        var take = filter
        while outcome.replayed < filter.limit {
            take.limit = min(chunk, filter.limit - outcome.replayed)
            let producer = self.producer, topic = self.topic
            let (letters, delivered) = try await database.replayDeadLetters(take) { letters in
                let sendable = letters.compactMap { letter in Self.message(for: letter, topic: topic).map { (letter.id, $0) } }
                for report in await producer.send(sendable.map(\.1)) {
                    if case .failure(let error) = report { throw error }
                }
                return sendable.map(\.0)
            }
            if letters.isEmpty { break }
            let skipped = Set(letters.map(\.id)).subtracting(delivered)
            outcome.replayed += delivered.count
            outcome.skipped += skipped.count
            take.excludedIDs += skipped
            logger.info("replayed \(outcome.replayed) dead letters", metadata: ["skipped": "\(outcome.skipped)"])
        }
        return outcome
    }
}
