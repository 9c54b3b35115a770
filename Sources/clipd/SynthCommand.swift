import ArgumentParser
import Foundation
import ImageIO
import Synthetic
import Training
import Tensor

struct SynthCommand: ParsableCommand {
    enum Split: String, ExpressibleByArgument, CaseIterable {
        var samplesSplit: ShapeSamples.Split { ShapeSamples.Split(rawValue: rawValue)! }
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
        try FlagRange.check(variants, "--variants", 1...10_000)
        try FlagRange.check(sample, "--sample", 1...100_000_000)
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
        let entries = ShapeSamples.entries(split: split.samplesSplit, variants: variants, sample: sample)
        var lines: [String] = []
        for entry in entries {
            let scene = entry.scene
            let name = ShapeSamples.fileName(scene, variant: entry.variant)
            let bytes = try JPEGEncoder.encode(rgb: scene.render(side: side, variant: entry.variant, grainy: true), width: side, height: side, quality: jpegQuality)
            do {
                try Data(bytes).write(to: directory.appendingPathComponent(name))
            } catch {
                throw CommandFailure("cannot write \(name): \(error.localizedDescription)")
            }
            lines.append(try ShapeSamples.recordJSON(scene, variant: entry.variant,
                                                     imageURL: prefix.hasSuffix("/") || prefix.isEmpty ? prefix + name : prefix + "/" + name))
        }
        let records = directory.appendingPathComponent("records.jsonl")
        do {
            try (lines.joined(separator: "\n") + "\n").write(to: records, atomically: true, encoding: .utf8)
        } catch {
            throw CommandFailure("cannot write \(records.path): \(error.localizedDescription)")
        }
        printLine("wrote \(entries.count) images and \(records.path)")
    }
}
