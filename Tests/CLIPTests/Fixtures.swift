import Foundation
@testable import CLIP

/// Paths into the repository's committed fixtures (Tests/Fixtures).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let tiny = root.appendingPathComponent("models/tiny")

    static func tensors(_ relative: String) throws -> [String: CheckpointTensor] {
        try SafeTensors.read(root.appendingPathComponent(relative)).tensors
    }

    static func json(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: root.appendingPathComponent(relative))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static var tinyModels: [(String, String)] {
        [("huggingface", tiny.appendingPathComponent("hf").path),
         ("openai-safetensors", tiny.appendingPathComponent("openai_format.safetensors").path),
         ("openai-torch", tiny.appendingPathComponent("openai_format.pt").path)]
    }
}

func maxAbsDiff(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Float {
    precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// The measured error, printed for the record (CLIPD_PRINT_FIDELITY=1), then returned.
func fidelity(_ label: String, _ a: some Collection<Float>, _ b: some Collection<Float>) -> Float {
    let d = maxAbsDiff(a, b)
    if ProcessInfo.processInfo.environment["CLIPD_PRINT_FIDELITY"] == "1" { print("fidelity \(label) max_abs=\(d)") }
    return d
}
