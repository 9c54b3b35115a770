import CLIP
import Fetch
import Foundation
import Logging
import Pipeline
import Postgres
import Storage
import TestSupport
import Synthetic
import Testing
import Training
import Daemon
import CLIPTokenizer

/// The periodic fine-tune job against a real PostgreSQL: a scheduled run is claimed, trained on
/// stored (file://) pairs with the tiny fixture model, evaluated, and promoted through the canary
/// gate; a run with a destructive learning rate is rejected with its reasons; the advisory lock
/// keeps a second trainer out.
@Suite("Fine-tune job on PostgreSQL", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL (Deploy/dev/test.sh does)"))
struct FinetuneJobTests {
    static let fixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures")
    /// A small random-weight CLIP, quick to train in a debug build.
    static let baseConfig = CLIPConfig(embedDim: 32, imageSize: 64, patchSize: 16, vision: .init(width: 64, layers: 2, heads: 4, mlpWidth: 256),
                                       text: .init(width: 64, layers: 2, heads: 4, mlpWidth: 256), activation: .quickGELU)
    /// Six large shapes of six colours: the colour is what the canary asks for.
    static let scenes: [ShapeScene] = zip(ShapeScene.Colour.allCases, [ShapeScene.Shape.circle, .square, .triangle, .cross, .circle, .square]).map { colour, shape in
        ShapeScene.all.first { $0.colour == colour && $0.shape == shape && $0.size == .large && $0.position == .center }!
    }

    /// Renders each scene (training variants 0..<4 and a separate canary variant) as PNG files.
    static func renderImages(into directory: URL) throws {
        for (i, scene) in scenes.enumerated() {
            for variant in 0..<5 {
                let data = PNGWriter.data(rgb: scene.render(side: 224, variant: UInt64(100 * i + variant)), width: 224, height: 224)
                try data.write(to: directory.appendingPathComponent("\(scene.colour.rawValue)-\(variant).png"))
            }
        }
    }

    static func url(_ directory: URL, _ scene: ShapeScene, variant: Int) -> String {
        "file://" + directory.appendingPathComponent("\(scene.colour.rawValue)-\(variant).png").path
    }

    /// The tiny model as the active version, four captioned renders of each scene as records,
    /// and a canary label set of the colours. Returns the base version id.
    static func seed(_ database: ClipdDatabase, images directory: URL) async throws -> Int64 {
        try renderImages(into: directory)
        let checkpoint = directory.appendingPathComponent("base.safetensors")
        // N(0, 0.02) weights map every image to nearly the same direction, a plateau that takes
        // longer to leave than a test should train; wider weights make the inputs distinguishable.
        let model = CLIPModel.random(config: baseConfig, seed: 3)
        for entry in model.parameters.entries where entry.shape.count >= 2 {
            for i in 0..<entry.count { model.parameters.storage[entry.offset + i] *= 6 }
        }
        try CheckpointWriter.write(model, to: checkpoint)
        let base = try await database.registerModelVersion(name: "small", architecture: "small", embeddingDimension: baseConfig.embedDim,
                                                           checkpointURI: checkpoint.path)
        try await database.activateModelVersion(id: base)
        try await database.putLabelSet(name: "colours", templates: ShapeTraining.colourLabels.templates, labels: scenes.map(\.colour.rawValue))
        var records: [StoredRecord] = []
        for scene in scenes {
            for copy in 0..<4 {
                records.append(StoredRecord(id: "\(scene.colour.rawValue)-\(copy)", imageURL: url(directory, scene, variant: copy), caption: scene.caption))
            }
        }
        records.append(StoredRecord(id: "uncaptioned", imageURL: url(directory, scenes[0], variant: 0)))  // never trained on
        try await database.write(WriteBatch(records: records))
        return base
    }

    static func canary(_ directory: URL) -> CanarySpec {
        CanarySpec(labelSet: "colours", images: scenes.map { .init(imageURL: url(directory, $0, variant: 4), label: $0.colour.rawValue) })
    }

    static func job(_ store: ClipdDatabase, images: URL, checkpoints: URL) throws -> FinetuneJob {
        var configuredFetch = FetchConfiguration()
        configuredFetch.allowedFileRoots = [images.path]
        let fetch = configuredFetch
        let config = baseConfig
        let tokenizer = try CLIPTokenizer.shared()
        var logger = Logger(label: "clipd.finetune.tests")
        logger.logLevel = ProcessInfo.processInfo.environment["CLIPD_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        var job = FinetuneJob(store: store, images: { config in ImageLoader(model: config, fetch: fetch, workers: 2, allowPlainPaths: false) },
                              tokenize: { tokenizer.tokenize($0, contextLength: $1).ids.map(Int32.init) },
                              canary: canary(images), checkpointDirectory: checkpoints, logger: logger)
        job.progressEvery = 4
        return job
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-ft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("a scheduled run is trained, gated and promoted; a damaged model is rejected with reasons")
    func promoteThenReject() async throws {
        try await onScratchDatabase(.plain) { scratch, connection in
            let database = ClipdDatabase(connection: connection)
            let work = try Self.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: work) }
            let base = try await Self.seed(database, images: work)
            let store = database
            let job = try Self.job(store, images: work, checkpoints: work.appendingPathComponent("checkpoints"))
            let listener = try await PostgresNotificationListener.start(configuration: quickConfiguration(scratch.url),
                                                                        channels: ["clipd_model_versions"], logger: testLogger)
            defer { listener.stop() }
            let activations = NotificationCollector(listener)

            // A held-out split with pairs on both sides (by record id, as the job computes it).
            let ids = Self.scenes.flatMap { scene in (0..<4).map { "\(scene.colour.rawValue)-\($0)" } }
            let heldOut = ids.filter { HeldOutSplit.isHeldOut($0, fraction: 0.3) }
            #expect(heldOut.count >= 2 && heldOut.count <= ids.count - 6)

            let (first, _) = try await store.scheduleFinetuneRun(parametersJSON: #"{"mode": "full", "steps": 60, "batch": 6, "lr": 0.01, "warmup_steps": 0, "held_out_fraction": 0.3, "seed": 1}"#)
            let claimed = try #require(try await store.claimFinetuneRun(worker: "test-trainer"))
            #expect(claimed.id == first)
            let outcome = try await job.execute(runID: claimed.id, baseVersionID: claimed.baseModelVersionID,
                                                parameters: try FinetuneParameters().overriding(with: claimed.parametersJSON))
            #expect(outcome.status == .finished, "\(outcome.reasons) \(outcome.error ?? "")")
            let promoted = try #require(outcome.resultVersion)

            let active = try #require(try await database.activeModelVersion())
            #expect(active.id == promoted.id)
            #expect(active.parentID == base)
            let checkpoint = try #require(active.checkpointURI)
            let reloaded = try CheckpointLoader.load(path: checkpoint)
            #expect(reloaded.metadata["clipd.parent_id"] == "\(base)")
            _ = try await activations.waitFor(count: 1, seconds: 10) { $0.payload == "\(promoted.id)" }

            let run = try #require(try await connection.query("""
                SELECT status, claimed_by, cardinality(loss_curve), loss_curve[1], loss_curve[60], results->>'decision',
                       (results->>'alpha')::real, (metrics->'before'->>'canary_accuracy')::real, (metrics->'after'->>'canary_accuracy')::real,
                       (metrics->'before'->'recall'->>'image_to_text_r1')::real, (metrics->'after'->'recall'->>'image_to_text_r1')::real,
                       jsonb_array_length(metrics->'candidates'), parameters->>'mode', result_model_version_id, base_model_version_id
                  FROM finetune_runs WHERE id = \(first)
                """).first)
            #expect(try run.decode(String.self, at: 0) == "finished")
            #expect(try run.decode(String.self, at: 1) == "test-trainer")
            #expect(try run.decode(Int.self, at: 2) == 60, "one loss per step")
            #expect(try run.decode(Float.self, at: 4) < run.decode(Float.self, at: 3), "training lowered the loss")
            #expect(try run.decode(String.self, at: 5) == "promoted")
            let alpha = try run.decode(Float.self, at: 6)
            #expect(alpha > 0 && alpha <= 1)
            let canaryBefore = try run.decode(Float.self, at: 7), canaryAfter = try run.decode(Float.self, at: 8)
            #expect(canaryAfter >= canaryBefore - 0.02)
            #expect(try run.decode(Float.self, at: 10) >= run.decode(Float.self, at: 9))
            #expect(try run.decode(Int.self, at: 11) == 5, "every WiSE-FT mixing weight is recorded")
            #expect(try run.decode(String.self, at: 12) == "full")
            #expect(try run.decode(Int64.self, at: 13) == promoted.id)
            #expect(try run.decode(Int64.self, at: 14) == base)
            let versionMetrics = try #require(try await connection.query(
                "SELECT (metrics->>'alpha')::real, metrics->'before' IS NOT NULL, (metrics->>'finetune_run')::bigint FROM model_versions WHERE id = \(promoted.id)").first)
            #expect(try versionMetrics.decode(Float.self, at: 0) == alpha)
            #expect(try versionMetrics.decode(Bool.self, at: 1))
            #expect(try versionMetrics.decode(Int64.self, at: 2) == first)

            // A destructive learning rate: every mixing weight loses the canary, so nothing is promoted.
            let (second, _) = try await store.scheduleFinetuneRun(parametersJSON: #"{"mode": "full", "steps": 3, "batch": 6, "lr": 5, "warmup_steps": 0, "held_out_fraction": 0.3, "grad_clip_norm": 1000}"#)
            let damaged = try #require(try await store.claimFinetuneRun(worker: "test-trainer"))
            #expect(damaged.id == second)
            let rejected = try await job.execute(runID: damaged.id, baseVersionID: damaged.baseModelVersionID,
                                                 parameters: try FinetuneParameters().overriding(with: damaged.parametersJSON))
            #expect(rejected.status == .rejected)
            #expect(rejected.resultVersion == nil)
            #expect(rejected.reasons.contains { $0.contains("canary accuracy fell") }, "\(rejected.reasons)")
            #expect(try await database.activeModelVersion()?.id == promoted.id, "the promoted version stays active")
            let row = try #require(try await connection.query("""
                SELECT status, results->>'decision', jsonb_array_length(results->'reasons'), result_model_version_id IS NULL,
                       base_model_version_id, (SELECT count(*) FROM model_versions)
                  FROM finetune_runs WHERE id = \(second)
                """).first)
            #expect(try row.decode(String.self, at: 0) == "rejected")
            #expect(try row.decode(String.self, at: 1) == "rejected")
            #expect(try row.decode(Int.self, at: 2) >= 1)
            #expect(try row.decode(Bool.self, at: 3))
            #expect(try row.decode(Int64.self, at: 4) == promoted.id, "the run started from the active (promoted) version")
            #expect(try row.decode(Int.self, at: 5) == 2, "no version was registered for the rejected run")
        }
    }

    @Test("the advisory lock keeps a second trainer out; runs due later wait; row parameters override the job; new pairs trigger a run")
    func oneTrainerAtATime() async throws {
        try await onScratchDatabase(.plain) { scratch, connection in
            let database = ClipdDatabase(connection: connection)
            let work = try Self.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: work) }
            _ = try await Self.seed(database, images: work)
            let store = database
            let canaryFile = work.appendingPathComponent("canary.json")
            try JSONEncoder().encode(Self.canary(work)).write(to: canaryFile)
            // The job as `clipd finetune run --once --steps 2 --batch 4 --held-out-fraction 0.3` runs it.
            func runJob(minNewPairs: Int? = nil) async throws {
                var options = FinetuneService.Options(canary: try CanarySpec(json: Data(contentsOf: canaryFile)),
                                                      checkpointDirectory: work.appendingPathComponent("checkpoints"), worker: "test")
                options.defaults = try FinetuneParameters().overriding(with: #"{"steps": 2, "batch": 4, "held_out_fraction": 0.3}"#)
                options.fetch.allowedFileRoots = [work.path]
                options.once = true
                options.trigger = FinetuneTrigger(minNewPairs: minNewPairs)
                try await FinetuneService(configuration: quickConfiguration(scratch.url), options: options,
                                          logger: Logger(label: "test"), report: { _ in }).run()
            }
            let (later, _) = try await store.scheduleFinetuneRun(parametersJSON: "{}", at: "2999-01-01 00:00+00")
            let (now, _) = try await store.scheduleFinetuneRun(parametersJSON: #"{"lr": 0.0001}"#)
            func status(_ id: Int64) async throws -> String {
                try await connection.query("SELECT status FROM finetune_runs WHERE id = \(id)").first!.decode(String.self, at: 0)
            }

            // Another trainer (this session) holds the lock: the job skips without touching any run.
            let other = try await scratch.connect()
            #expect(try await other.tryAdvisoryLock(FinetuneService.lockKey))
            try await runJob()
            #expect(try await status(now) == "scheduled")

            // Released: the due run is claimed and finished (promoted or rejected); the later one waits.
            #expect(try await other.advisoryUnlock(FinetuneService.lockKey))
            await other.close()
            try await runJob()
            #expect(["finished", "rejected"].contains(try await status(now)))
            #expect(try await status(later) == "scheduled")
            let row = try #require(try await connection.query(
                "SELECT parameters->>'steps', parameters->>'lr', cardinality(loss_curve) FROM finetune_runs WHERE id = \(now)").first)
            #expect(try row.decode(String.self, at: 0) == "2", "the job's --steps applies where the row is silent")
            #expect(try row.decode(String.self, at: 1) == "0.0001", "the row's lr overrides the job's")
            #expect(try row.decode(Int.self, at: 2) == 2)

            // Nothing else is due: --once exits without scheduling.
            try await runJob()
            #expect(try await connection.query("SELECT count(*) FROM finetune_runs").first!.decode(Int.self, at: 0) == 2)
            // --min-new-pairs: no records arrived since the last run was scheduled, so still nothing.
            try await runJob(minNewPairs: 1)
            #expect(try await connection.query("SELECT count(*) FROM finetune_runs").first!.decode(Int.self, at: 0) == 2)
            try await connection.query("UPDATE records SET received_at = now() + interval '1 second' WHERE id = 'red-0'")
            try await runJob(minNewPairs: 1)
            #expect(try await connection.query("SELECT count(*) FROM finetune_runs WHERE status IN ('finished', 'rejected')").first!.decode(Int.self, at: 0) == 2,
                    "one new captioned record scheduled and ran a second run")
        }
    }
}
