import ArgumentParser
import CLIP
import CLIPTokenizer
import Foundation
import Pipeline
import Tensor

struct EmbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Print L2-normalised CLIP embeddings of images and texts, one JSON line per input in input order."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Preprocessed image: raw little-endian float32 [3,S,S] (what `clipd preprocess` writes). Repeatable.")
    var pixels: [String] = []

    @Option(name: .long, help: "Image file or URL (http, https, file): decoded and preprocessed exactly as CLIP does. Repeatable.")
    var image: [String] = []

    @OptionGroup var imageOptions: ImageInputOptions

    @Option(name: .long, help: "Token ids as a JSON array ([49406, …, 49407, 0, …]). Repeatable.")
    var tokens: [String] = []

    @Option(name: .long, help: "Text, tokenized with CLIP's tokenizer (truncated to the context length). Repeatable.")
    var text: [String] = []

    @Option(name: .long, help: "JSON Lines file: one JSON string per line, each embedded as a text.")
    var textsFile: [String] = []

    func validate() throws {
        if pixels.isEmpty && image.isEmpty && tokens.isEmpty && text.isEmpty && textsFile.isEmpty {
            throw ValidationError("give at least one input (--image, --pixels, --tokens, --text or --texts-file)")
        }
    }

    /// Reads a JSON Lines file of strings; blank lines are skipped.
    static func readTextsFile(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw CommandFailure("cannot read texts file \(path)") }
        var out: [String] = []
        for (n, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }) { continue }
            guard let s = (try? JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])) as? String else {
                throw CommandFailure("\(path): line \(n + 1) is not a JSON string")
            }
            out.append(s)
        }
        return out
    }

    func run() async throws {
        let logger = makeLogger("clipd.embed")
        let model = try modelOptions.load(logger: logger)
        let cfg = model.config
        // Read and check every input before computing anything.
        var images: [[Float]] = []
        var imageLabels: [String] = []
        let loader = image.isEmpty ? nil : imageOptions.loader(model: cfg)
        // Text inputs in command-line order; a texts file expands in place.
        let order = commandLineOrder(of: ["--pixels", "--image", "--tokens", "--text", "--texts-file"])
        let tokenizer = text.isEmpty && textsFile.isEmpty ? nil : try sharedTokenizer()
        var textInputs: [(label: String, ids: [Int32])] = []
        var outputs: [(kind: String, index: Int)] = []
        var nextImage = 0
        for (option, value) in order {
            switch option {
            case "--pixels":
                images.append(try ModelInput.pixels(file: value, imageSize: cfg.imageSize))
                imageLabels.append(value)
                outputs.append(("image", nextImage)); nextImage += 1
            case "--image":
                do { images.append(try await loader!.load(value)) } catch let f as PipelineFailure {
                    throw CommandFailure("\(value): \(f.errorClass): \(f.message)")
                }
                imageLabels.append(value)
                outputs.append(("image", nextImage)); nextImage += 1
            case "--tokens":
                outputs.append(("text", textInputs.count))
                textInputs.append((value, try ModelInput.tokens(json: value, contextLength: cfg.contextLength, vocabSize: cfg.vocabSize)))
            case "--text":
                outputs.append(("text", textInputs.count))
                textInputs.append((value, tokenizer!.tokenize(value, contextLength: cfg.contextLength).ids.map(Int32.init)))
            default:
                for line in try Self.readTextsFile(value) {
                    outputs.append(("text", textInputs.count))
                    textInputs.append((line, tokenizer!.tokenize(line, contextLength: cfg.contextLength).ids.map(Int32.init)))
                }
            }
        }
        let texts = textInputs.map(\.ids)

        var imageFeatures = model.encodeImages(images.flatMap { $0 }, count: images.count)
        var textFeatures = try model.encodeTexts(texts)
        imageFeatures.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: images.count, cols: cfg.embedDim) }
        textFeatures.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: texts.count, cols: cfg.embedDim) }

        for (kind, index) in outputs {
            if kind == "image" {
                printLine("{\"kind\":\"image\",\"input\":\(jsonString(imageLabels[index])),\"embedding\":\(jsonNumbers(imageFeatures.row(index)))}")
            } else {
                printLine("{\"kind\":\"text\",\"input\":\(jsonString(textInputs[index].label)),\"embedding\":\(jsonNumbers(textFeatures.row(index)))}")
            }
        }
    }
}
