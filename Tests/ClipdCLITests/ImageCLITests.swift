import CLIP
import Foundation
import TestSupport
import XCTest

final class ImageCLITests: XCTestCase {
    let model = Repository.fixtures.appendingPathComponent("models/tiny/openai_format.safetensors").path

    func testEmbedImageDecodesExactlyAsCLIP() throws {
        let ref = try SafeTensors.read(Repository.fixtures.appendingPathComponent("models/tiny/reference.safetensors")).tensors
        let keys = (try JSONSerialization.jsonObject(with: Data(contentsOf: Repository.fixtures.appendingPathComponent("models/tiny/reference_meta.json"))) as! [String: Any])["image_keys"] as! [String]
        let want = ref["image_features_normalized"]!.floats()
        let picks = ["rocket_640x427_progressive", "china_640x427_cmyk", "flower_427x640_exif6"]
        let r = try runClipd(["embed", "--model", model, "--no-exif"] + picks.flatMap { ["--image", Repository.fixtures.appendingPathComponent("images/\($0).jpg").path] })
        XCTAssertEqual(r.status, 0, r.stderr)
        for (line, key) in zip(r.lines.map(jsonObject), picks) {
            let i = keys.firstIndex(of: key)!
            let got = (line["embedding"] as! [NSNumber]).map(\.floatValue)
            XCTAssertLessThan(zip(got, want[(i * 32)..<((i + 1) * 32)]).map { abs($0 - $1) }.max()!, 1e-5, key)
        }
    }

    func testClassifyPrintsRankedProbabilitiesAndReportsBadImages() throws {
        let good = Repository.fixtures.appendingPathComponent("images/astronaut_512x512.jpg").path
        let bad = Repository.fixtures.appendingPathComponent("images/bad/truncated_half.jpg").path
        let r = try runClipd(["classify", "--model", model, "--labels", "astronaut,cat,rocket,coffee", "--templates", "simple",
                             "--top-k", "3", good, bad])
        XCTAssertEqual(r.status, 1, "a bad image makes the exit status non-zero")
        XCTAssertTrue(r.stderr.contains("image.truncated"), r.stderr)
        XCTAssertEqual(r.lines.count, 1)
        let line = jsonObject(r.lines[0])
        XCTAssertEqual(line["input"] as? String, good)
        let tags = line["tags"] as! [[String: Any]]
        XCTAssertEqual(tags.count, 3)
        let scores = tags.map { ($0["score"] as! NSNumber).floatValue }
        XCTAssertEqual(scores, scores.sorted(by: >))
        XCTAssertLessThanOrEqual(scores.reduce(0, +), 1.0001)
        XCTAssertTrue(Set(tags.map { $0["label"] as! String }).isSubset(of: ["astronaut", "cat", "rocket", "coffee"]))
        assertCleanFailure(try runClipd(["classify", "--model", model, good]), mentioning: ["--labels"])
    }

    /// A WebP and a GIF are embedded exactly like their PNG twins (same pixels, same palette).
    func testWebPAndGIFEmbedLikeTheirPNGTwins() throws {
        let data = Repository.root.appendingPathComponent("Tests/ImageIOTests/Data")
        let inputs = ["twin_rgb_52x40.webp", "twin_rgb_52x40.png", "twin_palette_52x40.gif", "twin_palette_52x40.png"]
        let r = try runClipd(["embed", "--model", model] + inputs.flatMap { ["--image", data.appendingPathComponent($0).path] })
        XCTAssertEqual(r.status, 0, r.stderr)
        let embeddings = r.lines.map { (jsonObject($0)["embedding"] as! [NSNumber]).map(\.floatValue) }
        XCTAssertEqual(embeddings.count, 4)
        XCTAssertEqual(embeddings[0], embeddings[1], "lossless WebP = PNG")
        XCTAssertEqual(embeddings[2], embeddings[3], "GIF = palette PNG")
        XCTAssertNotEqual(embeddings[0], embeddings[2])
    }
}
