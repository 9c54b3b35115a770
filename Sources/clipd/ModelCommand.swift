import ArgumentParser
import CLIP
import CLIPTokenizer
import Daemon
import Foundation
import Pipeline
import Postgres
import Storage

/// Model versions: every row written carries the version that produced it.
struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Register, list, activate and roll back model versions (running daemons switch on activation).",
        subcommands: [Import.self, List.self, Activate.self, Rollback.self, Status.self]
    )

    static func database(_ options: DatabaseOptions) async throws -> ClipdDatabase {
        ClipdDatabase(connection: try await options.connect(logger: makeLogger("clipd.model")))
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a checkpoint as a model version (validated by loading it).")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "Version name (unique).") var name: String
        @Flag(help: "Make it the active version.") var activate = false
        @Argument(help: "Checkpoint path (see `clipd embed --help`).") var path: String

        func run() async throws {
            let checkpoint: LoadedCheckpoint
            do { checkpoint = try CheckpointLoader.load(path: path) } catch let e as CLIPError { throw CommandFailure("cannot load model: \(e.message)") }
            let database = try await ModelCommand.database(db)
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            let id = try await database.registerModelVersion(name: name, config: checkpoint.config, checkpointURI: absolute)
            if activate { try await database.activateModelVersion(id: id) }
            printLine("{\"id\":\(id),\"name\":\(jsonString(name)),\"active\":\(activate)}")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One JSON line per model version, newest first.")
        @OptionGroup var db: DatabaseOptions

        func run() async throws {
            let database = try await ModelCommand.database(db)
            for v in try await database.modelVersions() {
                printLine("{\"id\":\(v.id),\"name\":\(jsonString(v.name)),\"architecture\":\(jsonString(v.architecture)),"
                    + "\"embedding_dim\":\(v.embeddingDimension),\"checkpoint\":\(v.checkpointURI.map(jsonString) ?? "null"),"
                    + "\"parent_id\":\(v.parentID.map(String.init) ?? "null"),\"active\":\(v.isActive)}")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per model version: records covered / total by its embeddings, backfill rate and ETA, and which version search answers from.",
            discussion: "One JSON line per version that is active, has embeddings or was activated (re-embedding), newest first. covered counts records embedded plus records whose image the backfill could not load (failed); rate is backfilled records per second; eta_seconds is null when unknown.")
        @OptionGroup var db: DatabaseOptions

        func run() async throws {
            let database = try await ModelCommand.database(db)
            for c in try await database.versionCoverage() {
                let fraction = String(format: "%.4f", c.fraction)
                printLine("{\"id\":\(c.modelVersionID),\"name\":\(jsonString(c.name)),\"active\":\(c.isActive),\"search\":\(c.isSearchVersion),"
                    + "\"backfill\":\(c.backfillStatus.map(jsonString) ?? "null"),\"covered\":\(c.covered),\"embedded\":\(c.embedded),"
                    + "\"failed\":\(c.failed),\"total\":\(c.total),\"coverage\":\(fraction),"
                    + "\"rate\":\(c.rate.map { String(format: "%.2f", $0) } ?? "null"),"
                    + "\"eta_seconds\":\(c.etaSeconds.map { String(format: "%.1f", $0) } ?? "null")}")
            }
        }
    }

    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a version (id or name) the active one.")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "Version id or name.") var version: String

        func run() async throws {
            let database = try await ModelCommand.database(db)
            guard let id = try await database.modelVersion(idOrName: version)?.id else {
                throw CommandFailure("no model version \(version)")
            }
            try await database.activateModelVersion(id: id)
            printLine("{\"active\":\(id)}")
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Activate the active version's parent (the version it was fine-tuned from).")
        @OptionGroup var db: DatabaseOptions

        func run() async throws {
            let database = try await ModelCommand.database(db)
            guard let active = try await database.activeModelVersion() else { throw CommandFailure("no active model version") }
            guard let parent = active.parentID else { throw CommandFailure("active version \(active.id) (\(active.name)) has no parent to roll back to") }
            try await database.activateModelVersion(id: parent)
            printLine("{\"active\":\(parent),\"previous\":\(active.id)}")
        }
    }
}

/// Nearest images to a text query, with the active model (or --model).
struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Nearest stored images to a text query: one JSON line per hit, best first."
    )
    @OptionGroup var db: DatabaseOptions
    @Option(help: "Query text.") var text: String
    @Option(help: "How many results.") var limit = 10
    @Option(help: "Checkpoint to embed the query with (default: the version search answers from: the newest whose re-embedding covers the records, see `clipd model status`).") var model: String?

    func validate() throws {
        if limit < 1 || limit > 10_000 { throw ValidationError("--limit must be in 1...10000") }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw ValidationError("--text must not be empty") }
    }

    func run() async throws {
        let logger = makeLogger("clipd.search")
        let database = ClipdDatabase(connection: try await db.connect(logger: logger))
        let loaded: StreamPipeline.LoadedModel
        do {
            let registry = ModelRegistry(database: database, logger: logger)
            // One version throughout: the query is embedded by the version whose rows are searched.
            if model == nil, let version = try await database.searchModelVersion() {
                loaded = try await registry.load(version: version)
            } else {
                loaded = try await registry.load(path: model, activateIfNone: false)
            }
        } catch let error as DaemonError {
            throw CommandFailure(error.description)
        }
        let tokenizer = try sharedTokenizer()
        let ids = tokenizer.tokenize(text, contextLength: loaded.model.config.contextLength).ids.map(Int32.init)
        var query = try loaded.model.encodeTexts([ids]).data
        let norm = query.map { $0 * $0 }.reduce(0, +).squareRoot()
        query = query.map { $0 / max(norm, 1e-12) }
        let hits = try await database.nearest(to: query, modelVersionID: loaded.version.id, limit: limit)
        for hit in hits {
            printLine("{\"record_id\":\(jsonString(hit.recordID)),\"similarity\":\(1 - hit.distance),\"image_url\":\(hit.imageURL.map(jsonString) ?? "null"),\"caption\":\(hit.caption.map(jsonString) ?? "null"),\"model_version\":\(loaded.version.id)}")
        }
    }
}
