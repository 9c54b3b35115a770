import ArgumentParser
import Daemon
import Foundation
import Kafka
import Postgres
import Storage

/// `clipd dlq list|replay`: dead letters in `failed_records`, and republishing them.
struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List dead letters (failed_records) and replay them to their topic once the cause is fixed.",
        subcommands: [List.self, Replay.self])

    /// Which dead letters a command takes.
    struct Selection: ParsableArguments {
        @Option(name: .customLong("class"), help: "An error class (fetch.timeout) or a stage ending in a dot (fetch.).") var errorClass: String?
        @Option(help: "Only those that failed at or after this time: any timestamp PostgreSQL reads, e.g. '2026-11-29 10:00+00' or 'yesterday'.") var since: String?
        @Option(help: "At most this many.") var limit: Int = 1000

        func validate() throws {
            guard (1...1_000_000).contains(limit) else { throw ValidationError("--limit must be in 1...1000000") }
            if let errorClass, errorClass.isEmpty { throw ValidationError("--class must not be empty") }
        }

        func filter(includeReplayed: Bool) -> ClipdDatabase.DeadLetterFilter {
            ClipdDatabase.DeadLetterFilter(errorClass: errorClass, since: since, includeReplayed: includeReplayed, limit: limit)
        }
    }

    static func explain(_ error: Error, since: String?) -> Error {
        if let error = error as? PostgresError, error.sqlState?.hasPrefix("22") == true {
            return CommandFailure("invalid --since \(since ?? ""): \(error.message)")
        }
        return explainingMissingSchema(error)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One JSON line per dead letter, oldest first (not yet replayed, unless --all).")
        @OptionGroup var db: DatabaseOptions
        @OptionGroup var selection: Selection
        @Flag(help: "Include dead letters already replayed.") var all = false

        func run() async throws {
            let database = ClipdDatabase(connection: try await db.connect(logger: makeLogger("clipd.dlq")))
            let letters: [ClipdDatabase.DeadLetter]
            do { letters = try await database.deadLetters(selection.filter(includeReplayed: all)) } catch {
                throw DeadLetterCommand.explain(error, since: selection.since)
            }
            for letter in letters { printLine(Self.json(letter)) }
        }

        static func json(_ d: ClipdDatabase.DeadLetter) -> String {
            func text(_ bytes: [UInt8]?) -> String {
                guard let bytes else { return "null" }
                if let utf8 = String(validating: bytes, as: UTF8.self) { return jsonString(utf8) }
                return "{\"base64\":\(jsonString(Data(bytes).base64EncodedString()))}"
            }
            return "{\"id\":\(d.id),\"record_id\":\(d.recordID.map(jsonString) ?? "null"),\"error_class\":\(jsonString(d.errorClass)),"
                + "\"error\":\(jsonString(d.errorMessage)),\"topic\":\(d.sourceTopic.map(jsonString) ?? "null"),"
                + "\"partition\":\(d.sourcePartition.map(String.init) ?? "null"),\"offset\":\(d.sourceOffset.map(String.init) ?? "null"),"
                + "\"failed_at\":\(jsonString(d.failedAt)),\"replayed_at\":\(d.replayedAt.map(jsonString) ?? "null"),"
                + "\"replay_count\":\(d.replayCount),\"key\":\(text(d.key)),\"payload\":\(text(d.payload))}"
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Republish pending dead letters (original key and payload) and mark them replayed; safe to run twice.",
            discussion: """
                Each dead letter goes to the topic it came from (or --topic) with its original key; one that had \
                no key is sent with its record id as the key, so the record keeps its id. Dead letters are taken \
                in chunks, each marked replayed once all of its messages are delivered: a replay that fails or is \
                killed leaves the rest pending for the next one. Prints {"replayed":N,"skipped":M} \
                ({"would_replay":N} with --dry-run).
                """)
        @OptionGroup var db: DatabaseOptions
        @OptionGroup var selection: Selection
        @Option(help: "Kafka bootstrap servers, host:port[,host:port…].") var brokers: String?
        @Option(help: "Publish to this topic instead of each dead letter's own.") var topic: String?
        @Flag(help: "Only count what would be replayed.") var dryRun = false
        @Option(help: "Seconds to keep retrying a message before the replay fails.") var deliveryTimeout: Int = 30

        func validate() throws {
            if !dryRun && (brokers ?? "").isEmpty { throw ValidationError("missing --brokers (needed unless --dry-run)") }
            guard (1...3600).contains(deliveryTimeout) else { throw ValidationError("--delivery-timeout must be in 1...3600 seconds") }
        }

        func run() async throws {
            let logger = makeLogger("clipd.dlq")
            let database = ClipdDatabase(connection: try await db.connect(logger: logger))
            do {
                if dryRun {
                    printLine("{\"would_replay\":\(try await database.deadLetters(selection.filter(includeReplayed: false)).count)}")
                    return
                }
                var configuration = KafkaProducerConfiguration(bootstrapServers: brokers!)
                configuration.messageTimeout = .seconds(deliveryTimeout)
                let producer = try KafkaProducer(configuration: configuration, logger: logger)
                let outcome: DeadLetterRedrive.Outcome
                do {
                    outcome = try await DeadLetterRedrive(database: database, producer: producer, topic: topic, logger: logger)
                        .run(selection.filter(includeReplayed: false))
                } catch {
                    await producer.shutdown(timeout: .seconds(deliveryTimeout))
                    throw error
                }
                await producer.shutdown(timeout: .seconds(deliveryTimeout))
                printLine("{\"replayed\":\(outcome.replayed),\"skipped\":\(outcome.skipped)}")
            } catch let error as KafkaError {
                throw CommandFailure("replay stopped: \(error) (dead letters not delivered stay pending)")
            } catch {
                throw DeadLetterCommand.explain(error, since: selection.since)
            }
        }
    }
}
