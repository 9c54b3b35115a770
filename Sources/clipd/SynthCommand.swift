import ArgumentParser
import Foundation
import ImageIO
import Synthetic
import Tensor

struct SynthCommand: ParsableCommand {
    enum Split: String, ExpressibleByArgument, CaseIterable {
        case train, heldout, all
    }

    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Render the synthetic shape scenes as JPEG files with records.jsonl (the stream's record format).",
        discussion: """
        Each record: {"id", "image_url", "caption", "metadata": {"colour", "shape", "size", "position", "variant", "held_out"}}. \
        The output is deterministic: the same options write the same bytes.
        """
    )

    @Option(help: "Directory for the JPEG files and records.jsonl (created if missing).") var output: String
    @Option(help: "Side of the square images in pixels.") var side = 128
    @Option(help: "Renderings per scene (jittered position, size, tint and noise).") var variants = 1
    @Option(help: "Which scenes: train (seen colour-shape combinations), heldout (never trained on), or all.") var split: Split = .all
    @Option(help: "Keep only N scenes, a fixed pseudo-random pick from the split.") var sample: Int?
    @Option(name: .customLong("url-prefix"), help: "Prefix of image_url (default: file:// URL of --output); the file name is appended.") var urlPrefix: String?
    @Option(name: .customLong("jpeg-quality"), help: "JPEG quality 1...100.") var jpegQuality = 90

    func validate() throws {
        guard (8...4096).contains(side) else { throw ValidationError("--side must be within 8...4096") }
        guard variants > 0 else { throw ValidationError("--variants must be positive") }
        if let sample, sample < 1 { throw ValidationError("--sample must be positive") }
        guard (1...100).contains(jpegQuality) else { throw ValidationError("--jpeg-quality must be within 1...100") }
    }

    func run() throws {
        let directory = URL(fileURLWithPath: output, isDirectory: true).standardizedFileURL
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw CommandFailure("cannot create \(directory.path): \(error.localizedDescription)")
        }
        let prefix = urlPrefix ?? directory.absoluteString
        let entries = SynthCommand.entries(split: split, variants: variants, sample: sample)
        var lines: [String] = []
        for entry in entries {
            let scene = entry.scene
            let id = "\(scene.colour.rawValue)-\(scene.shape.rawValue)-\(scene.size.rawValue)-\(scene.position.rawValue)-\(entry.variant)"
            let name = id + ".jpg"
            let bytes = try JPEGEncoder.encode(rgb: scene.render(side: side, variant: entry.variant, grainy: true), width: side, height: side, quality: jpegQuality)
            do {
                try Data(bytes).write(to: directory.appendingPathComponent(name))
            } catch {
                throw CommandFailure("cannot write \(name): \(error.localizedDescription)")
            }
            let record: [String: Any] = [
                "id": "shape-" + id,
                "image_url": prefix.hasSuffix("/") || prefix.isEmpty ? prefix + name : prefix + "/" + name,
                "caption": scene.caption,
                "metadata": ["colour": scene.colour.rawValue, "shape": scene.shape.rawValue, "size": scene.size.rawValue,
                             "position": scene.position.rawValue, "variant": entry.variant, "held_out": scene.isHeldOut] as [String: Any],
            ]
            let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
            lines.append(String(decoding: data, as: UTF8.self))
        }
        let records = directory.appendingPathComponent("records.jsonl")
        do {
            try (lines.joined(separator: "\n") + "\n").write(to: records, atomically: true, encoding: .utf8)
        } catch {
            throw CommandFailure("cannot write \(records.path): \(error.localizedDescription)")
        }
        printLine("wrote \(entries.count) images and \(records.path)")
    }

    /// The scenes and variants of a split, in a fixed order; with `sample`, every k-th of them.
    static func entries(split: Split, variants: Int, sample: Int?) -> [(scene: ShapeScene, variant: UInt64)] {
        let scenes = ShapeScene.all.filter {
            switch split {
            case .train: !$0.isHeldOut
            case .heldout: $0.isHeldOut
            case .all: true
            }
        }
        var all: [(ShapeScene, UInt64)] = []
        for scene in scenes { for v in 0..<variants { all.append((scene, UInt64(v))) } }
        guard let sample, sample < all.count else { return all }
        // A seeded shuffle mixes shapes, colours, sizes and positions (evenly spaced picks
        // would follow the scene order's periods); the picks keep the scene order.
        var rng = SeededGenerator(seed: 42)
        let picked = Array(all.indices).shuffled(using: &rng).prefix(sample).sorted()
        return picked.map { all[$0] }
    }
}
