import Foundation

/// Model inputs given as files or text (the `embed` and `finetune step` commands' explicit
/// inputs), checked against the model's shapes and vocabulary.
public enum ModelInput {
    /// A preprocessed image as raw little-endian float32 [3,S,S] (what `clipd preprocess` writes).
    public static func pixels(file path: String, imageSize s: Int) throws -> [Float] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIPError(.invalidInput, "cannot read pixels file \(path)")
        }
        let expected = 3 * s * s * 4
        guard data.count == expected else {
            throw CLIPError(.invalidInput, "\(path): \(data.count) bytes, expected \(expected) (float32 [3,\(s),\(s)] for this model)")
        }
        let values = data.withUnsafeBytes { raw in
            (0..<(3 * s * s)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw CLIPError(.invalidInput, "\(path): value \(i) is not finite")
        }
        return values
    }

    /// Token ids as a JSON array (what `clipd tokenize` prints), zero-padded to the context length.
    public static func tokens(json: String, contextLength: Int, vocabSize: Int) throws -> [Int32] {
        guard let array = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [Any] else {
            throw CLIPError(.invalidInput, "--tokens \(json.prefix(40)): not a JSON array of token ids")
        }
        var ids: [Int32] = []
        for item in array {
            guard let n = item as? NSNumber, let v = Int32(exactly: n.doubleValue), v >= 0, Int(v) < vocabSize else {
                throw CLIPError(.invalidInput, "--tokens: \(item) is not a token id in 0..<\(vocabSize)")
            }
            ids.append(v)
        }
        guard !ids.isEmpty else { throw CLIPError(.invalidInput, "--tokens: empty token list") }
        guard ids.count <= contextLength else {
            throw CLIPError(.invalidInput, "--tokens: \(ids.count) ids exceed the model's context length \(contextLength)")
        }
        return ids + [Int32](repeating: 0, count: contextLength - ids.count)
    }
}
