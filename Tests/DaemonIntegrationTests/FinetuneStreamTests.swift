import Foundation
import Postgres
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `clipd finetune run --brokers --topic --group --once` with no daemon and an empty `records`
/// table: the job's own consumer group reads the topic into `training_samples` (duplicates and
/// uncaptioned records kept out, offsets stored with the samples) and finishes a run on it.
final class FinetuneStreamTests: XCTestCase {
    var harness: DaemonHarness!
    var work: URL!

    override func tearDown() async throws {
        await harness?.tearDown()
        harness = nil
        if let work { try? FileManager.default.removeItem(at: work) }
    }

    static let checkpoint = Repository.fixtures.appendingPathComponent("models/tiny/openai_format.safetensors").path

    func testOnceTrainsFromTheTopicWithNoDaemonAndAnEmptyRecordsTable() async throws {
        harness = try await DaemonHarness(partitions: 2)
        let h = harness!
        work = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-ft-stream-\(UUID().uuidString)")
        let images = work.appendingPathComponent("images")
        let synth = try runClipd(["synth", "--output", images.path, "--side", "64", "--sample", "44"], timeout: 120)
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let lines = try String(contentsOf: images.appendingPathComponent("records.jsonl"), encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 44)
        let records = lines.map(jsonObject)
        let first30 = Array(lines[0..<30]), later10 = Array(lines[30..<40])

        // 30 distinct pairs, then what the training set must keep out: a copy of record 0's image
        // (new caption) and of record 1's caption (new image; case and spacing differ). Across
        // partitions either of a pair may arrive first; exactly one of each pair is kept.
        let copyOfImage = try json(["id": "copy-of-image", "image_url": records[0]["image_url"]!, "caption": "an entirely different caption"])
        let copyOfCaption = try json(["id": "copy-of-caption", "image_url": records[40]["image_url"]!,
                                      "caption": "  " + (records[1]["caption"] as! String).uppercased().replacingOccurrences(of: " ", with: "  ") + "  "])
        let uncaptioned = try json(["id": "uncaptioned", "image_url": records[41]["image_url"]!])
        let blank = try json(["id": "blank", "image_url": records[42]["image_url"]!, "caption": "   "])
        let messages = (first30 + [copyOfImage, copyOfCaption, uncaptioned, blank, "{not json"]).map { (key: String?.none, value: $0) }
        try await h.produce(messages)

        let imported = try runClipd(["model", "import", "--database-url", h.database.url, "--name", "base", "--activate", Self.checkpoint], timeout: 120)
        XCTAssertEqual(imported.status, 0, imported.stderr)
        // The canary: one image per colour present, against a label set of the colours.
        var canaryImages: [[String: String]] = []
        var colours: [String] = []
        for record in records.prefix(30) {
            let colour = (record["metadata"] as! [String: Any])["colour"] as! String
            if !colours.contains(colour) {
                colours.append(colour)
                canaryImages.append(["image_url": record["image_url"] as! String, "label": colour])
            }
        }
        XCTAssertGreaterThanOrEqual(colours.count, 2)
        let labels = try runClipd(["labels", "put", "--database-url", h.database.url, "colours", "--templates", "simple"] + colours, timeout: 60)
        XCTAssertEqual(labels.status, 0, labels.stderr)
        let canary = work.appendingPathComponent("canary.json")
        try JSONSerialization.data(withJSONObject: ["label_set": "colours", "images": canaryImages]).write(to: canary)

        func finetune(_ extra: [String]) throws -> ClipdResult {
            try runClipd(["finetune", "run", "--database-url", h.database.url, "--brokers", h.brokers, "--topic", h.topic, "--group", "trainer",
                          "--once", "--canary", canary.path, "--file-root", images.path, "--checkpoint-dir", work.appendingPathComponent("checkpoints").path,
                          "--steps", "3", "--batch", "4", "--held-out-fraction", "0.3", "--catch-up-timeout", "60"] + extra,
                         environment: ["CLIPD_LOG_LEVEL": "info"], timeout: 600)
        }

        // --min-new-pairs: the samples read from the topic schedule the run.
        let run = try finetune(["--min-new-pairs", "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let outcome = jsonObject(try XCTUnwrap(run.stdout.split(separator: "\n").last.map(String.init), run.stderr))
        XCTAssertTrue(["finished", "rejected"].contains(outcome["status"] as? String), run.stdout + run.stderr)
        let recordsRows = try await h.count("SELECT count(*) FROM records")
        XCTAssertEqual(recordsRows, 0, "no daemon ran: the run trained on what the job read from Kafka")
        let samples = try await h.count("SELECT count(*) FROM training_samples")
        XCTAssertEqual(samples, 30, "the duplicate image, the duplicate caption, the uncaptioned and blank records are kept out")
        let imagePair = [records[0]["id"] as! String, "copy-of-image"], captionPair = [records[1]["id"] as! String, "copy-of-caption"]
        let keptOfImagePair = try await h.count("SELECT count(*) FROM training_samples WHERE record_id = ANY(\(imagePair))")
        let keptOfCaptionPair = try await h.count("SELECT count(*) FROM training_samples WHERE record_id = ANY(\(captionPair))")
        let keptEmpty = try await h.count("SELECT count(*) FROM training_samples WHERE record_id IN ('uncaptioned', 'blank')")
        XCTAssertEqual(keptOfImagePair, 1, "one image, stored once")
        XCTAssertEqual(keptOfCaptionPair, 1, "one caption, stored once")
        XCTAssertEqual(keptEmpty, 0)
        let offsets = try await h.count("SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets WHERE consumer_group = 'trainer'")
        XCTAssertEqual(offsets, messages.count, "the group's offsets cover every message, stored with the samples")
        let trained = try await h.count("SELECT (metrics->>'train_pairs')::bigint FROM finetune_runs WHERE status IN ('finished', 'rejected')")
        XCTAssertGreaterThanOrEqual(trained, 2, run.stderr)

        // Resumed from the stored offsets: nothing new, no run due, nothing added twice.
        let idle = try finetune(["--min-new-pairs", "1000"])
        XCTAssertEqual(idle.status, 0, idle.stderr)
        XCTAssertTrue(idle.stdout.contains("\"skipped\""), idle.stdout)
        let unchanged = try await h.count("SELECT count(*) FROM training_samples")
        XCTAssertEqual(unchanged, 30)

        // A bounded window: the newest --training-set-size samples are kept.
        try await h.produce(later10.map { (key: String?.none, value: $0) })
        let bounded = try finetune(["--min-new-pairs", "1000", "--training-set-size", "35"])
        XCTAssertEqual(bounded.status, 0, bounded.stderr)
        let windowed = try await h.count("SELECT count(*) FROM training_samples")
        XCTAssertEqual(windowed, 35)
        let laterIDs = later10.map { jsonObject($0)["id"] as! String }
        let newest = try await h.count("SELECT count(*) FROM training_samples WHERE record_id = ANY(\(laterIDs))")
        XCTAssertEqual(newest, 10, "the newest samples are the ones kept")
    }

    func testSIGTERMMidRunLeavesItInterruptedAndTheNextTrainerFinishesIt() async throws {
        harness = try await DaemonHarness(partitions: 1)
        let h = harness!
        work = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-ft-sigterm-\(UUID().uuidString)")
        let images = work.appendingPathComponent("images")
        let synth = try runClipd(["synth", "--output", images.path, "--side", "64", "--sample", "24"], timeout: 120)
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let lines = try String(contentsOf: images.appendingPathComponent("records.jsonl"), encoding: .utf8).split(separator: "\n").map(String.init)
        try await h.produce(lines.map { (key: String?.none, value: $0) })
        let imported = try runClipd(["model", "import", "--database-url", h.database.url, "--name", "base", "--activate", Self.checkpoint], timeout: 120)
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let first = jsonObject(lines[0])
        let colour = (first["metadata"] as! [String: Any])["colour"] as! String
        let labels = try runClipd(["labels", "put", "--database-url", h.database.url, "colours", "--templates", "simple", colour, "other"], timeout: 60)
        XCTAssertEqual(labels.status, 0, labels.stderr)
        let canary = work.appendingPathComponent("canary.json")
        try JSONSerialization.data(withJSONObject: ["label_set": "colours", "images": [["image_url": first["image_url"] as! String, "label": colour]]]).write(to: canary)
        let schedule = try runClipd(["finetune", "schedule", "--database-url", h.database.url, "--steps", "60", "--batch", "4", "--held-out-fraction", "0.3"], timeout: 60)
        XCTAssertEqual(schedule.status, 0, schedule.stderr)
        let arguments = ["finetune", "run", "--database-url", h.database.url, "--brokers", h.brokers, "--topic", h.topic, "--group", "trainer",
                         "--once", "--canary", canary.path, "--file-root", images.path, "--checkpoint-dir", work.appendingPathComponent("checkpoints").path]

        let trainer = try BackgroundProcess(arguments, environment: ["CLIPD_LOG_LEVEL": "info"], name: "trainer")
        defer { trainer.stop() }
        try await waitUntil("the run has trained 10 steps", timeout: .seconds(300), interval: .milliseconds(100)) {
            try await h.count("SELECT coalesce(max(cardinality(loss_curve)), 0) FROM finetune_runs WHERE status = 'running'") >= 10
        }
        trainer.signal(SIGTERM)
        XCTAssertEqual(trainer.wait(timeout: 120), 0, trainer.stderr)
        let interrupted = try await h.count("SELECT count(*) FROM finetune_runs WHERE status = 'interrupted' AND interrupted_at_step BETWEEN 10 AND 59")
        XCTAssertEqual(interrupted, 1, trainer.stdout + trainer.stderr)

        // The next trainer takes the interrupted run first and finishes it on the same pairs.
        let pairsBefore = try await h.count("SELECT jsonb_array_length(pairs) FROM finetune_runs")
        let next = try runClipd(arguments, environment: ["CLIPD_LOG_LEVEL": "info"], timeout: 600)
        XCTAssertEqual(next.status, 0, next.stderr)
        let finished = try await h.count("SELECT count(*) FROM finetune_runs WHERE status IN ('finished', 'rejected') AND cardinality(loss_curve) = 60")
        XCTAssertEqual(finished, 1, next.stdout + next.stderr)
        let pairsAfter = try await h.count("SELECT jsonb_array_length(pairs) FROM finetune_runs")
        XCTAssertEqual(pairsAfter, pairsBefore)
        XCTAssertGreaterThan(pairsBefore, 2)
        let runs = try await h.count("SELECT count(*) FROM finetune_runs")
        XCTAssertEqual(runs, 1)
    }

    func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
