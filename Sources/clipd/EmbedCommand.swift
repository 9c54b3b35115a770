import ArgumentParser
import CLIP
import Foundation
import Tensor

struct EmbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Print L2-normalised CLIP embeddings of images and texts, one JSON line per input in input order."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Preprocessed image: raw little-endian float32 [3,S,S] (what `clipd preprocess` writes). Repeatable.")
    var pixels: [String] = []

    @Option(name: .long, help: "Token ids as a JSON array ([49406, …, 49407, 0, …]). Repeatable.")
    var tokens: [String] = []

    func validate() throws {
        if pixels.isEmpty && tokens.isEmpty { throw ValidationError("give at least one input (--pixels or --tokens)") }
    }

    func run() async throws {
        let logger = makeLogger("clipd.embed")
        let model = try modelOptions.load(logger: logger)
        let cfg = model.config
        // Read and check every input before computing anything.
        var images: [[Float]] = []
        for path in pixels { images.append(try Self.readPixels(path, imageSize: cfg.imageSize)) }
        var texts: [[Int32]] = []
        for json in tokens { texts.append(try Self.parseTokens(json, contextLength: cfg.contextLength, vocabSize: cfg.vocabSize)) }

        var imageFeatures = model.encodeImages(images.flatMap { $0 }, count: images.count)
        var textFeatures = try model.encodeTexts(texts)
        imageFeatures.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: images.count, cols: cfg.embedDim) }
        textFeatures.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: texts.count, cols: cfg.embedDim) }

        var nextImage = 0, nextText = 0
        for (option, value) in commandLineOrder(of: ["--pixels", "--tokens"]) {
            if option == "--pixels", nextImage < images.count {
                printLine("{\"kind\":\"image\",\"input\":\(jsonString(value)),\"embedding\":\(jsonNumbers(imageFeatures.row(nextImage)))}")
                nextImage += 1
            } else if option == "--tokens", nextText < texts.count {
                printLine("{\"kind\":\"text\",\"input\":\(jsonString(value)),\"embedding\":\(jsonNumbers(textFeatures.row(nextText)))}")
                nextText += 1
            }
        }
    }

    static func readPixels(_ path: String, imageSize s: Int) throws -> [Float] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure("cannot read pixels file \(path)")
        }
        let expected = 3 * s * s * 4
        guard data.count == expected else {
            throw CommandFailure("\(path): \(data.count) bytes, expected \(expected) (float32 [3,\(s),\(s)] for this model)")
        }
        let values = data.withUnsafeBytes { raw in
            (0..<(3 * s * s)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw CommandFailure("\(path): value \(i) is not finite")
        }
        return values
    }

    static func parseTokens(_ json: String, contextLength: Int, vocabSize: Int) throws -> [Int32] {
        guard let array = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [Any] else {
            throw CommandFailure("--tokens \(json.prefix(40)): not a JSON array of token ids")
        }
        var ids: [Int32] = []
        for item in array {
            guard let n = item as? NSNumber, let v = Int32(exactly: n.doubleValue), v >= 0, Int(v) < vocabSize else {
                throw CommandFailure("--tokens: \(item) is not a token id in 0..<\(vocabSize)")
            }
            ids.append(v)
        }
        guard !ids.isEmpty else { throw CommandFailure("--tokens: empty token list") }
        guard ids.count <= contextLength else {
            throw CommandFailure("--tokens: \(ids.count) ids exceed the model's context length \(contextLength)")
        }
        return ids + [Int32](repeating: 0, count: contextLength - ids.count)
    }
}
