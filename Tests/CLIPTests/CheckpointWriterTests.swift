import CLIP
import Foundation
import XCTest

/// Checkpoints are written through an exclusively created temporary file in the target
/// directory and renamed: a symlink planted at a predictable path never redirects the write.
final class CheckpointWriterTests: XCTestCase {
    var directory: URL!
    var victim: URL!
    let victimText = "do not overwrite me\n"

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-writer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        victim = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-victim-\(UUID().uuidString)")
        try victimText.write(to: victim, atomically: false, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
        try? FileManager.default.removeItem(at: victim)
    }

    static let config = CLIPConfig(embedDim: 8, imageSize: 32, patchSize: 16, vision: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32),
                                   contextLength: 16, vocabSize: 100, text: .init(width: 16, layers: 1, heads: 2, mlpWidth: 32), activation: .gelu)

    func plant(_ name: String) throws {
        try FileManager.default.createSymbolicLink(at: directory.appendingPathComponent(name), withDestinationURL: victim)
    }

    func assertVictimUntouched(file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try String(contentsOf: victim, encoding: .utf8), victimText, "a planted symlink redirected the write", file: file, line: line)
    }

    func testPlantedSymlinksAtEveryPredictableTemporaryPathAreNotFollowed() throws {
        let output = directory.appendingPathComponent("out.safetensors")
        // The names writers used before: `.NAME.tmp-PID` (this process's pid) and `.NAME.partial`.
        try plant(".out.safetensors.tmp-\(getpid())")
        try plant(".out.safetensors.partial")
        try plant(".finetune-run-1.safetensors.partial")
        let model = CLIPModel.random(config: Self.config, seed: 1)
        try CheckpointWriter.write(model, to: output, metadata: ["clipd.note": "test"], writeOpenCLIPConfig: true)
        try assertVictimUntouched()
        let attributes = try FileManager.default.attributesOfItem(atPath: output.path)
        XCTAssertEqual(attributes[.type] as? FileAttributeType, .typeRegular)
        let read = try SafeTensors.read(output)
        XCTAssertEqual(read.metadata["clipd.note"], "test")
        XCTAssertEqual(read.tensors.count, model.parameters.entries.count)
        // Nothing is left behind but what was planted and what was written.
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: directory.path))
        XCTAssertEqual(names, ["out.safetensors", "open_clip_config.json", ".out.safetensors.tmp-\(getpid())",
                               ".out.safetensors.partial", ".finetune-run-1.safetensors.partial"])
    }

    func testASymlinkAtTheTargetItselfIsReplacedNotFollowed() throws {
        try plant("out.safetensors")
        try plant("open_clip_config.json")
        try CheckpointWriter.write(CLIPModel.random(config: Self.config, seed: 2), to: directory.appendingPathComponent("out.safetensors"),
                                   writeOpenCLIPConfig: true)
        try assertVictimUntouched()
        for name in ["out.safetensors", "open_clip_config.json"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name).path)
            XCTAssertEqual(attributes[.type] as? FileAttributeType, .typeRegular, name)
        }
    }

    func testTheTemporaryFileIsInAFreshPrivateDirectoryBesideTheTarget() throws {
        let target = directory.appendingPathComponent("x.bin")
        var seen: [URL] = []
        for round in 0..<2 {
            try CheckpointWriter.replaceAtomically(target) { temporary in
                seen.append(temporary)
                let parent = temporary.deletingLastPathComponent()
                XCTAssertEqual(parent.deletingLastPathComponent().standardizedFileURL.path, self.directory.standardizedFileURL.path,
                               "the temporary file is in the target's directory (same file system: rename is atomic)")
                let mode = (try FileManager.default.attributesOfItem(atPath: parent.path)[.posixPermissions] as? NSNumber)?.intValue
                XCTAssertEqual(mode, 0o700)
                try Data("round \(round)".utf8).write(to: temporary)
            }
            XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "round \(round)")
        }
        XCTAssertNotEqual(seen[0].deletingLastPathComponent(), seen[1].deletingLastPathComponent(), "random names")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["x.bin"], "the temporary directory is removed")
    }

    func testAFailedWriteLeavesTheOldFileAndNoTemporaryFiles() throws {
        let target = directory.appendingPathComponent("keep.bin")
        try Data("old".utf8).write(to: target)
        struct Boom: Error {}
        XCTAssertThrowsError(try CheckpointWriter.replaceAtomically(target) { temporary in
            try Data("half".utf8).write(to: temporary)
            throw Boom()
        })
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "old")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["keep.bin"])
    }
}
