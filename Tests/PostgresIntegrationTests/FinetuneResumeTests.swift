import CLIP
import Foundation
import Postgres
import Storage
import TestSupport
import Testing
import Training

/// A run stopped mid-training (as SIGTERM stops it) is `interrupted` with its weights and optimizer
/// state saved; the next trainer claims it first, continues from that step, and ends with the
/// losses and weights an uninterrupted run of the same run, pairs and seed has.
@Suite("Interrupted fine-tune runs", .enabled(if: TestServer.enabled, "set CLIPD_TEST_DATABASE_URL (Deploy/dev/test.sh does)"))
struct FinetuneResumeTests {
    static let parameters = #"{"mode": "full", "steps": 30, "batch": 6, "lr": 0.01, "warmup_steps": 0, "held_out_fraction": 0.3, "seed": 1, "alphas": [0, 1]}"#

    /// Seeds a scratch database, runs run 1 (interrupting it before step `stopAt` when given, then
    /// claiming and running it again), and returns the final outcome and the trained weights.
    static func trainRun(stopAt: Int?) async throws -> (outcome: FinetuneOutcome, weights: [Float]?, statuses: [String]) {
        var result: (FinetuneOutcome, [Float]?, [String])?
        try await onScratchDatabase(.plain) { _, connection in
            let database = ClipdDatabase(connection: connection)
            let work = try FinetuneJobTests.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: work) }
            _ = try await FinetuneJobTests.seed(database, images: work)
            let (id, _) = try await database.scheduleFinetuneRun(parametersJSON: parameters)
            func status() async throws -> String {
                try await connection.query("SELECT status FROM finetune_runs WHERE id = \(id)").first!.decode(String.self, at: 0)
            }
            var statuses: [String] = []
            var job = try FinetuneJobTests.job(database, images: work, checkpoints: work.appendingPathComponent("checkpoints"))
            if let stopAt {
                let steps = StepCounter()
                // Stops before step `stopAt`, as a shutdown between two steps would.
                job.shouldStop = { steps.next() > stopAt }
                let claimed = try #require(try await database.claimFinetuneRun(worker: "first"))
                let interrupted = try await job.execute(runID: claimed.id, baseVersionID: claimed.baseModelVersionID,
                                                        parameters: try FinetuneParameters().overriding(with: claimed.parametersJSON))
                #expect(interrupted.status == .interrupted)
                #expect(interrupted.lossCurve.count == stopAt)
                statuses.append(try await status())
                let step = try await connection.query("SELECT interrupted_at_step FROM finetune_runs WHERE id = \(id)").first!.decode(Int?.self, at: 0)
                #expect(step == stopAt)
                // The weights and optimizer state it reached are saved for the next trainer.
                let resumeFiles = try FileManager.default.contentsOfDirectory(atPath: work.appendingPathComponent("checkpoints").path)
                    .filter { $0.hasSuffix(".resume.safetensors") }
                #expect(resumeFiles.count == 1)
                // A run scheduled meanwhile waits: the interrupted one is claimed first.
                _ = try await database.scheduleFinetuneRun(parametersJSON: "{}")
                job.shouldStop = { false }
            }
            let claimed = try #require(try await database.claimFinetuneRun(worker: "second"))
            #expect(claimed.id == id)
            let outcome = try await job.execute(runID: claimed.id, baseVersionID: claimed.baseModelVersionID,
                                                parameters: try FinetuneParameters().overriding(with: claimed.parametersJSON))
            statuses.append(try await status())
            if let stopAt {
                // It continued from the step it reached rather than training again from step 0.
                let results = try await connection.query("SELECT results->>'resumed_from_step' FROM finetune_runs WHERE id = \(id)").first!.decode(String?.self, at: 0)
                #expect(results == String(stopAt))
            }
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: work.appendingPathComponent("checkpoints").path)
                .filter { $0.hasSuffix(".resume.safetensors") }
            #expect(leftovers.isEmpty, "the resume file is removed when the run ends")
            let weights = try outcome.resultVersion.map { version -> [Float] in
                let path = work.appendingPathComponent("checkpoints/\(version.name).safetensors").path
                let parameters = CLIPModel(checkpoint: try CheckpointLoader.load(path: path)).parameters
                return Array(UnsafeBufferPointer(start: parameters.storage, count: parameters.count))
            }
            result = (outcome, weights, statuses)
        }
        guard let result else { throw SkipServer() }
        return result
    }

    @Test("interrupt at step 12 of 30 and run again: the same losses, metrics and final weights as an uninterrupted run")
    func interruptedRunEndsWithTheSameWeights() async throws {
        let straight: (outcome: FinetuneOutcome, weights: [Float]?, statuses: [String])
        do { straight = try await Self.trainRun(stopAt: nil) } catch is SkipServer { return }
        let resumed = try await Self.trainRun(stopAt: 12)
        #expect(resumed.statuses.first == "interrupted")
        #expect(resumed.statuses.last == straight.statuses.last)
        #expect(straight.outcome.status == resumed.outcome.status)
        #expect(straight.outcome.lossCurve.count == 30)
        #expect(straight.outcome.lossCurve.count == resumed.outcome.lossCurve.count)
        let lossDifference = zip(straight.outcome.lossCurve, resumed.outcome.lossCurve).map { abs($0 - $1) }.max() ?? 0
        #expect(lossDifference <= 1e-5, "the same batches in the same order from the same weights: largest loss difference \(lossDifference)")
        if let a = straight.weights, let b = resumed.weights {
            #expect(a.count == b.count)
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5, "largest weight difference \(worst)")
        } else {
            #expect(straight.weights == nil && resumed.weights == nil, "both promoted or both rejected")
        }
    }

}

/// Counts calls across the job's tasks.
final class StepCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func next() -> Int { lock.withLock { count += 1; return count } }
}
