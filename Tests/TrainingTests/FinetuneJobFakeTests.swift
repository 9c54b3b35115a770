import XCTest
import CLIP
import Logging
import Tensor
@testable import Training
import Pipeline
import ZeroShot

/// The job's bookkeeping with an in-memory store: failures are recorded on the run, never thrown.
final class FinetuneJobFakeTests: XCTestCase {
    final class MemoryStore: FinetuneRunStore, @unchecked Sendable {
        let lock = NSLock()
        let checkpoint: String
        let records: [CaptionedRecord]
        var finished: [Int64: FinetuneOutcome] = [:]
        var started: [Int64: FinetuneParameters] = [:]

        init(checkpoint: String, records: [CaptionedRecord]) {
            self.checkpoint = checkpoint
            self.records = records
        }

        func baseModel(versionID: Int64?) async throws -> BaseModel {
            if let versionID, versionID != 1 { throw TrainingError(.noModel, "model version \(versionID) does not exist") }
            return BaseModel(version: ModelVersionRef(id: 1, name: "base"), checkpointPath: checkpoint)
        }
        func captionedRecords(limit: Int) async throws -> [CaptionedRecord] { Array(records.prefix(limit)) }
        func labelSet(named name: String) async throws -> LabelSet? { LabelSet(name: name, labels: [.init("a"), .init("b")], templates: ["{}"]) }
        func recordStart(runID: Int64, parameters: FinetuneParameters, base: ModelVersionRef) async throws {
            lock.withLock { started[runID] = parameters }
        }
        func recordProgress(runID: Int64, losses: [Float]) async throws {}
        func promote(runID: Int64, name: String, parent: ModelVersionRef, checkpointPath: String, config: CLIPConfig,
                     metricsJSON: String) async throws -> ModelVersionRef { ModelVersionRef(id: 2, name: name) }
        func finish(runID: Int64, outcome: FinetuneOutcome) async throws { lock.withLock { finished[runID] = outcome } }
    }

    struct NoiseImages: TrainingImageSource {
        let size: Int
        func pixels(_ imageURL: String) async throws -> [Float] {
            if imageURL.hasPrefix("broken") { throw PipelineFailure(.image(.corrupt), "not an image") }
            var rng = SeededGenerator(seed: UInt64(abs(imageURL.hashValue % 1000)))
            return (0..<(3 * size * size)).map { _ in rng.normal() }
        }
    }

    func makeJob(records: [CaptionedRecord]) throws -> (FinetuneJob, MemoryStore, URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-ftfake-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cfg = CLIPConfig(embedDim: 8, imageSize: 32, patchSize: 16, vision: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32),
                             contextLength: 8, vocabSize: 100, text: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32), activation: .gelu)
        let checkpoint = dir.appendingPathComponent("base.safetensors")
        try CheckpointWriter.write(CLIPModel.random(config: cfg, seed: 1), to: checkpoint)
        let store = MemoryStore(checkpoint: checkpoint.path, records: records)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let job = FinetuneJob(store: store, images: { _ in NoiseImages(size: 32) }, tokenize: { text, length in
            var ids: [Int32] = [1] + text.unicodeScalars.suffix(length - 2).map { Int32($0.value % 90) + 2 } + [99]
            ids += [Int32](repeating: 0, count: length - ids.count)
            return ids
        }, canary: CanarySpec(labelSet: "c", images: [.init(imageURL: "x", label: "a")]), checkpointDirectory: dir, logger: logger)
        return (job, store, dir)
    }

    func testTooFewPairsIsRecordedAsAFailedRun() async throws {
        let (job, store, dir) = try makeJob(records: [CaptionedRecord(id: "only", imageURL: "img", caption: "one caption")])
        defer { try? FileManager.default.removeItem(at: dir) }
        let outcome = try await job.execute(runID: 7, baseVersionID: nil, parameters: FinetuneParameters())
        XCTAssertEqual(outcome.status, .failed)
        XCTAssertTrue(outcome.error?.contains("need at least 2") == true, outcome.error ?? "")
        XCTAssertEqual(store.finished[7]?.status, .failed, "the failure is written to the run")
        XCTAssertNotNil(store.started[7], "parameters were recorded when the run started")
    }

    func testIdenticalCaptionsCannotTrain() async throws {
        let records = (0..<30).map { CaptionedRecord(id: "r\($0)", imageURL: "img\($0)", caption: "the same caption") }
        let (job, _, dir) = try makeJob(records: records)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outcome = try await job.execute(runID: 3, baseVersionID: nil, parameters: FinetuneParameters())
        XCTAssertEqual(outcome.status, .failed)
        XCTAssertTrue(outcome.error?.contains("fewer than 2 distinct captions") == true, outcome.error ?? "")
    }

    func testUnloadableImagesAreSkippedAndAMissingBaseFailsTheRun() async throws {
        var records = (0..<40).map { CaptionedRecord(id: "r\($0)", imageURL: "img\($0)", caption: "caption \($0)") }
        records += (0..<5).map { CaptionedRecord(id: "b\($0)", imageURL: "broken\($0)", caption: "broken \($0)") }
        let (job, store, dir) = try makeJob(records: records)
        defer { try? FileManager.default.removeItem(at: dir) }
        var p = FinetuneParameters()
        p.steps = 12  // 12 × 4 ≥ the 45 records: every one is loaded
        p.batch = 4
        p.heldOutFraction = 0.25
        let outcome = try await job.execute(runID: 1, baseVersionID: nil, parameters: p)
        XCTAssertNotEqual(outcome.status, .failed, outcome.error ?? "")
        XCTAssertEqual(outcome.lossCurve.count, 12)
        let results = try JSONSerialization.jsonObject(with: Data((outcome.resultsJSON ?? "{}").utf8)) as! [String: Any]
        XCTAssertEqual(results["skipped_images"] as? Int, 5)

        let missing = try await job.execute(runID: 2, baseVersionID: 99, parameters: p)
        XCTAssertEqual(missing.status, .failed)
        XCTAssertEqual(store.finished[2]?.error, "model version 99 does not exist")
    }
}
