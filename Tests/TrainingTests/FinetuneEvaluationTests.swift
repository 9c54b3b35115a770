import XCTest
import CLIP
import Tensor
@testable import Training
import Pipeline
import ZeroShot

final class RetrievalRecallTests: XCTestCase {
    /// Rows i of `images` and `texts` are pair i; 2-D embeddings make the ranks easy to read.
    func testRecallCountsTheTrueMatchRankInBothDirections() {
        // Images point at angles 0°, 90°, 180°, 270°; texts are the same except text 1 and 2 swapped.
        let images: [Float] = [1, 0, 0, 1, -1, 0, 0, -1]
        let texts: [Float] = [1, 0, -1, 0, 0, 1, 0, -1]
        let r = RetrievalRecall.measure(images: images, texts: texts, count: 4, dim: 2)
        XCTAssertEqual(r.imageToText1, 0.5, "images 0 and 3 find their own caption first; 1 and 2 find the swapped one")
        XCTAssertEqual(r.textToImage1, 0.5)
        XCTAssertEqual(r.imageToText5, 1, "with 4 candidates every match is in the top 5")
        XCTAssertEqual(r.textToImage5, 1)
        XCTAssertEqual(r.mean, 0.75)
        XCTAssertEqual(r.pairs, 4)
    }

    func testRecallAtFiveMissesAMatchRankedSixth() {
        // Seven pairs on a line of angles; image 0's own caption is the farthest of all.
        let n = 7
        var images = [Float](), texts = [Float]()
        for i in 0..<n {
            let angle = Float(i) * 0.2
            images += [cosf(angle), sinf(angle)]
            texts += i == 0 ? [cosf(3), sinf(3)] : [cosf(angle), sinf(angle)]
        }
        let r = RetrievalRecall.measure(images: images, texts: texts, count: n, dim: 2)
        XCTAssertEqual(r.imageToText5, 6 / 7, accuracy: 1e-6, "image 0 ranks its caption 7th")
        XCTAssertEqual(r.imageToText1, 6 / 7, accuracy: 1e-6)
    }

    func testIdenticalEmbeddingsScoreZeroNotOne() {
        let r = RetrievalRecall.measure(images: [Float](repeating: 1, count: 6), texts: [Float](repeating: 1, count: 6), count: 3, dim: 2)
        XCTAssertEqual(r.imageToText1, 0, "a tie with another candidate is not a hit")
        XCTAssertEqual(r.textToImage1, 0)
        let broken = RetrievalRecall.measure(images: [.nan, .nan, 1, 0], texts: [1, 0, 0, 1], count: 2, dim: 2)
        XCTAssertEqual(broken.imageToText1, 0, "NaN embeddings never retrieve anything")
    }

    func testScaleDoesNotMatterOnlyDirection() {
        let r = RetrievalRecall.measure(images: [10, 0, 0, 0.1], texts: [3, 0.1, 0.2, 7], count: 2, dim: 2)
        XCTAssertEqual(r.imageToText1, 1)
        XCTAssertEqual(r.textToImage1, 1)
    }
}

final class WiseFTTests: XCTestCase {
    func store(seed: UInt64) -> ParameterStore {
        let s = ParameterStore(layout: [("a", [3, 5]), ("b", [7])])
        var rng = SeededGenerator(seed: seed)
        for i in 0..<s.count { s.storage[i] = rng.normal(std: 3) }
        return s
    }

    func values(_ s: ParameterStore) -> [UInt32] { (0..<s.count).map { s.storage[$0].bitPattern } }

    func testEndpointsAreBitExactAndTheMiddleInterpolates() {
        let old = store(seed: 1), new = store(seed: 2), out = ParameterStore(zerosLike: old)
        WiseFT.interpolate(old: old, new: new, alpha: 0, into: out)
        XCTAssertEqual(values(out), values(old), "α = 0 is the old model bit for bit")
        WiseFT.interpolate(old: old, new: new, alpha: 1, into: out)
        XCTAssertEqual(values(out), values(new), "α = 1 is the fine-tuned model bit for bit")
        WiseFT.interpolate(old: old, new: new, alpha: 0.25, into: out)
        for i in 0..<old.count {
            let expected = 0.75 * Double(old.storage[i]) + 0.25 * Double(new.storage[i])
            XCTAssertEqual(Double(out.storage[i]), expected, accuracy: 1e-5 * max(1, abs(expected)))
        }
    }

    func testInterpolatedModelKeepsTheArchitecture() {
        let cfg = CLIPConfig(embedDim: 8, imageSize: 32, patchSize: 16, vision: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32),
                             contextLength: 8, vocabSize: 100, text: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32), activation: .gelu)
        let a = CLIPModel.random(config: cfg, seed: 1), b = CLIPModel.random(config: cfg, seed: 2)
        let mixed = WiseFT.interpolated(old: a, new: b.parameters, alpha: 0.5)
        XCTAssertEqual(mixed.config, cfg)
        let w = "visual.proj"
        let e = a.parameters.entry(w)!
        for i in 0..<e.count {
            XCTAssertEqual(mixed.parameters[w][i], 0.5 * a.parameters[w][i] + 0.5 * b.parameters[w][i], accuracy: 1e-7)
        }
    }
}

final class PromotionGateTests: XCTestCase {
    func report(_ recall: Float, canary: Float) -> EvaluationReport {
        EvaluationReport(recall: RetrievalRecall(imageToText1: recall, imageToText5: recall, textToImage1: recall, textToImage5: recall, pairs: 10),
                         canaryAccuracy: canary)
    }

    func testPicksTheBestRecallAmongCandidatesThatKeepTheCanary() {
        let before = report(0.4, canary: 0.80)
        let candidates = [
            WiseFTCandidate(alpha: 0, report: before),
            WiseFTCandidate(alpha: 0.5, report: report(0.6, canary: 0.79)),
            WiseFTCandidate(alpha: 1, report: report(0.9, canary: 0.60)),  // best recall, but forgets
        ]
        let decision = PromotionGate(canaryTolerance: 0.02).decide(before: before, candidates: candidates)
        XCTAssertEqual(decision, .promote(candidates[1]))
    }

    func testRefusesWhenEveryMixingWeightLosesTheCanary() {
        let before = report(0.4, canary: 0.80)
        let decision = PromotionGate(canaryTolerance: 0.02).decide(before: before, candidates: [
            WiseFTCandidate(alpha: 0, report: before),
            WiseFTCandidate(alpha: 0.5, report: report(0.7, canary: 0.75)),
            WiseFTCandidate(alpha: 1, report: report(0.9, canary: 0.10)),
        ])
        guard case .reject(let reasons) = decision else { return XCTFail("promoted a model that lost the canary: \(decision)") }
        XCTAssertEqual(reasons.count, 2)
        XCTAssertTrue(reasons[0].contains("canary accuracy fell from 0.8 to 0.75"), reasons[0])
    }

    func testToleranceIsInclusiveAndConfigurable() {
        let before = report(0.4, canary: 0.80)
        let at = [WiseFTCandidate(alpha: 1, report: report(0.5, canary: 0.78))]
        XCTAssertTrue(PromotionGate(canaryTolerance: 0.02).decide(before: before, candidates: at).isPromotion)
        XCTAssertFalse(PromotionGate(canaryTolerance: 0.01).decide(before: before, candidates: at).isPromotion)
        XCTAssertTrue(PromotionGate(canaryTolerance: 0).decide(before: before, candidates: [WiseFTCandidate(alpha: 1, report: report(0.5, canary: 0.9))]).isPromotion,
                      "a better canary always passes")
    }

    func testRefusesWhenRecallFallsOrOutputsAreNotFinite() {
        let before = report(0.5, canary: 0.8)
        let worse = PromotionGate().decide(before: before, candidates: [WiseFTCandidate(alpha: 1, report: report(0.3, canary: 0.8))])
        guard case .reject(let reasons) = worse else { return XCTFail("promoted a model with worse recall") }
        XCTAssertTrue(reasons.last!.contains("held-out recall did not improve"), reasons.last!)
        let gain = PromotionGate(minRecallGain: 0.05).decide(before: before, candidates: [WiseFTCandidate(alpha: 1, report: report(0.52, canary: 0.8))])
        XCTAssertFalse(gain.isPromotion, "needs a 0.05 gain")
        let same = PromotionGate().decide(before: before, candidates: [WiseFTCandidate(alpha: 1, report: report(0.5, canary: 0.9))])
        XCTAssertFalse(same.isPromotion, "equal recall is not an improvement worth a new version")
        let nan = PromotionGate().decide(before: before, candidates: [WiseFTCandidate(alpha: 1, report: report(.nan, canary: 0.8))])
        XCTAssertEqual(nan, .reject(reasons: ["α=1: the model's outputs are not finite"]))
        XCTAssertFalse(PromotionGate().decide(before: before, candidates: [WiseFTCandidate(alpha: 0, report: before)]).isPromotion,
                       "α = 0 is the old model: nothing to promote")
    }

    func testTiesPreferTheBetterCanaryThenTheSmallerAlpha() {
        let before = report(0.4, canary: 0.8)
        let a = WiseFTCandidate(alpha: 0.25, report: report(0.6, canary: 0.8))
        let b = WiseFTCandidate(alpha: 0.5, report: report(0.6, canary: 0.8))
        let c = WiseFTCandidate(alpha: 0.75, report: report(0.6, canary: 0.85))
        XCTAssertEqual(PromotionGate().decide(before: before, candidates: [b, a]), .promote(a))
        XCTAssertEqual(PromotionGate().decide(before: before, candidates: [a, b, c]), .promote(c))
    }

    /// A deliberately damaged model (every weight scrambled) goes through the real evaluator
    /// and is refused: the canary catches what the held-out recall alone might not.
    func testDamagedModelIsRefusedByTheRealEvaluation() throws {
        let cfg = CLIPConfig(embedDim: 16, imageSize: 32, patchSize: 16, vision: .init(width: 32, layers: 2, heads: 2, mlpWidth: 64),
                             contextLength: 8, vocabSize: 100, text: .init(width: 32, layers: 2, heads: 2, mlpWidth: 64), activation: .quickGELU)
        let model = CLIPModel.random(config: cfg, seed: 4)
        let tokenize: @Sendable (String) throws -> [Int32] = { s in
            var ids: [Int32] = [1] + s.unicodeScalars.prefix(5).map { Int32($0.value % 90) + 2 } + [99]
            ids += [Int32](repeating: 0, count: 8 - ids.count)
            return ids
        }
        var rng = SeededGenerator(seed: 11)
        let per = 3 * 32 * 32
        let images = (0..<24).map { _ in (0..<per).map { _ in rng.normal() } }
        // The canary's truth is what the healthy model answers, so it scores 1 by construction.
        let labelSet = LabelSet(name: "canary", labels: ["red", "blue", "green", "tall"].map { .init($0) }, templates: ["{}", "a {}"])
        let classifier = try ZeroShotClassifier(model: model, labelSet: labelSet, tokenize: tokenize)
        var examples: [CanaryExample] = []
        for (i, pixels) in images.enumerated() {
            var f = model.encodeImages(pixels, count: 1).data
            f.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 1, cols: 16) }
            examples.append(CanaryExample(imageURL: "img-\(i)", label: classifier.tags(f[...], topK: 1)[0].label, pixels: pixels))
        }
        let heldOut = (0..<6).map { EncodedPair(id: "p\($0)", pixels: images[$0], tokens: try! tokenize("cap\($0)")) }
        let evaluator = ModelEvaluator(heldOut: heldOut, canary: try Canary(labelSet: labelSet, examples: examples), tokenize: tokenize)
        let before = try evaluator.evaluate(model)
        XCTAssertEqual(before.canaryAccuracy, 1)

        let damaged = ParameterStore(zerosLike: model.parameters)
        var scramble = SeededGenerator(seed: 99)
        for i in 0..<damaged.count { damaged.storage[i] = model.parameters.storage[Int(scramble.next() % UInt64(damaged.count))] * 50 }
        var candidates = [WiseFTCandidate(alpha: 0, report: before)]
        for alpha: Float in [0.5, 1] {
            candidates.append(WiseFTCandidate(alpha: alpha, report: try evaluator.evaluate(WiseFT.interpolated(old: model, new: damaged, alpha: alpha))))
        }
        XCTAssertEqual(try evaluator.evaluate(WiseFT.interpolated(old: model, new: damaged, alpha: 0)), before, "α = 0 evaluates exactly as the old model")
        let decision = PromotionGate().decide(before: before, candidates: candidates)
        guard case .reject(let reasons) = decision else { return XCTFail("the gate promoted a scrambled model: \(candidates)") }
        XCTAssertTrue(reasons.contains { $0.contains("canary accuracy fell") }, "\(reasons)")
    }
}

final class FinetuneSchedulingTests: XCTestCase {
    func testRowParametersOverrideTheJobDefaults() throws {
        var defaults = FinetuneParameters()
        defaults.steps = 40
        let merged = try defaults.overriding(with: #"{"mode": "projections", "lr": 0.001, "alphas": [0, 0.5]}"#)
        XCTAssertEqual(merged.mode, "projections")
        XCTAssertEqual(merged.learningRate, 0.001)
        XCTAssertEqual(merged.alphas, [0, 0.5])
        XCTAssertEqual(merged.steps, 40, "keys the row leaves out keep the job's value")
        XCTAssertEqual(try defaults.overriding(with: "{}"), defaults)
        XCTAssertThrowsError(try defaults.overriding(with: #"{"stpes": 3}"#)) { XCTAssertTrue("\($0)".contains("unknown run parameter \"stpes\"")) }
        XCTAssertThrowsError(try defaults.overriding(with: #"{"mode": "everything"}"#)) { XCTAssertTrue("\($0)".contains("unknown mode")) }
        XCTAssertThrowsError(try defaults.overriding(with: #"{"batch": 1}"#))
        XCTAssertThrowsError(try defaults.overriding(with: #"{"steps": "many"}"#))
        XCTAssertThrowsError(try defaults.overriding(with: "[1]"))
        // The effective parameters round-trip through their JSON.
        XCTAssertEqual(try FinetuneParameters().overriding(with: merged.json), merged)
    }

    func testHostileParametersAreRefusedWithoutOverflowing() {
        let defaults = FinetuneParameters()
        // steps × batch overflows Int: refused, not trapped.
        XCTAssertThrowsError(try defaults.overriding(with: #"{"steps": 4611686018427387904, "batch": 4}"#)) { XCTAssertTrue("\($0)".contains("steps"), "\($0)") }
        XCTAssertThrowsError(try defaults.overriding(with: #"{"steps": 1000000, "batch": 4096}"#)) { XCTAssertTrue("\($0)".contains("steps × batch"), "\($0)") }
        XCTAssertThrowsError(try defaults.overriding(with: #"{"batch": 100000}"#)) { XCTAssertTrue("\($0)".contains("batch"), "\($0)") }
        XCTAssertThrowsError(try defaults.overriding(with: #"{"max_pairs": 9223372036854775807}"#))
        XCTAssertThrowsError(try defaults.overriding(with: #"{"warmup_steps": 9223372036854775807}"#))
        XCTAssertThrowsError(try defaults.overriding(with: #"{"lr": 1e30}"#))
        XCTAssertNoThrow(try defaults.overriding(with: #"{"lr": 5}"#), "a deliberately damaging rate is allowed")
        XCTAssertThrowsError(try defaults.overriding(with: #"{"alphas": []}"#))
        // The largest allowed product is accepted.
        XCTAssertNoThrow(try defaults.overriding(with: #"{"steps": 25000, "batch": 4000}"#))
    }

    func testHeldOutSplitIsStableAndNearTheFraction() {
        let ids = (0..<4000).map { "record-\($0)" }
        let held = ids.filter { HeldOutSplit.isHeldOut($0, fraction: 0.1) }
        XCTAssertEqual(Double(held.count) / 4000, 0.1, accuracy: 0.02)
        XCTAssertEqual(held, ids.filter { HeldOutSplit.isHeldOut($0, fraction: 0.1) })
        XCTAssertTrue(Set(held).isSubset(of: ids.filter { HeldOutSplit.isHeldOut($0, fraction: 0.2) }), "a larger fraction only adds records")
    }

    func testTriggerByIntervalByNewPairsOrBoth() {
        let now = Date(timeIntervalSince1970: 10_000)
        let hourAgo = now.addingTimeInterval(-3600)
        XCTAssertNil(FinetuneTrigger().reasonToSchedule(now: now, lastRun: nil, newPairs: 1000), "no trigger configured")
        let interval = FinetuneTrigger(interval: 1800)
        XCTAssertNotNil(interval.reasonToSchedule(now: now, lastRun: nil, newPairs: 0))
        XCTAssertNotNil(interval.reasonToSchedule(now: now, lastRun: hourAgo, newPairs: 0))
        XCTAssertNil(interval.reasonToSchedule(now: now, lastRun: now.addingTimeInterval(-60), newPairs: 0))
        let pairs = FinetuneTrigger(minNewPairs: 100)
        XCTAssertNil(pairs.reasonToSchedule(now: now, lastRun: hourAgo, newPairs: 99))
        XCTAssertEqual(pairs.reasonToSchedule(now: now, lastRun: hourAgo, newPairs: 100), "100 new captioned records (threshold 100)")
        let both = FinetuneTrigger(interval: 1800, minNewPairs: 100)
        XCTAssertNil(both.reasonToSchedule(now: now, lastRun: hourAgo, newPairs: 10), "interval passed but too few new pairs")
        XCTAssertNil(both.reasonToSchedule(now: now, lastRun: now.addingTimeInterval(-60), newPairs: 500), "enough pairs but too soon")
        XCTAssertNotNil(both.reasonToSchedule(now: now, lastRun: hourAgo, newPairs: 500))
    }

    func testCanaryFileFormat() throws {
        let spec = try CanarySpec(json: Data(#"{"label_set": "animals", "images": [{"image_url": "file:///c/cat.jpg", "label": "cat"}]}"#.utf8))
        XCTAssertEqual(spec, CanarySpec(labelSet: "animals", images: [.init(imageURL: "file:///c/cat.jpg", label: "cat")]))
        XCTAssertThrowsError(try CanarySpec(json: Data(#"{"label_set": "animals", "images": []}"#.utf8)))
        XCTAssertThrowsError(try CanarySpec(json: Data(#"[{"image_url": "x", "label": "cat"}]"#.utf8)))
        let set = LabelSet(name: "animals", labels: [.init("cat")], templates: ["{}"])
        XCTAssertThrowsError(try Canary(labelSet: set, examples: [CanaryExample(imageURL: "x", label: "dog", pixels: [])])) {
            XCTAssertTrue("\($0)".contains("not a label of set animals"))
        }
    }
}
