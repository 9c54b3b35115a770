import ArgumentParser
import CLIP
import CLIPTokenizer
import Foundation
import Pipeline
import Postgres
import Storage
import Tensor
import ZeroShot

/// Zero-shot classification of images against labels with prompt ensembling.
struct ClassifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Zero-shot classify images: one JSON line per image, {\"input\":…,\"tags\":[{\"label\":…,\"score\":…}]}, scores are softmax probabilities.",
        discussion: "Label text embeddings average the normalised embeddings of every template filled with the label (prompt ensembling)."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var imageOptions: ImageInputOptions

    @Option(name: .long, help: "Comma-separated labels, e.g. \"cat,dog,sea lion\".")
    var labels: String?

    @Option(name: .long, help: "File with one label per line.")
    var labelsFile: String?

    @Option(name: .long, help: "A label set stored in PostgreSQL (with --database-url); its templates are used.")
    var labelSet: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL for --label-set (default: $CLIPD_DATABASE_URL).")
    var databaseURL: String?

    @Option(name: .long, help: "Prompt templates: openai (80 ImageNet prompts), simple, identity, or a FILE.")
    var templates: String = "openai"

    @Option(name: .long, help: "How many labels to print per image.")
    var topK: Int = 5

    @Argument(help: "Image files or URLs.")
    var images: [String] = []

    func validate() throws {
        let sources = [labels, labelsFile, labelSet].compactMap { $0 }.count
        if sources != 1 { throw ValidationError("give exactly one of --labels, --labels-file or --label-set") }
        if images.isEmpty { throw ValidationError("give at least one IMAGE") }
        try FlagRange.check(topK, "--top-k", 1...10_000)
    }

    func resolveLabelSet() async throws -> LabelSet {
        if let labelSet {
            guard let url = databaseURL ?? ProcessInfo.processInfo.environment["CLIPD_DATABASE_URL"] else {
                throw CommandFailure("--label-set needs --database-url (or CLIPD_DATABASE_URL)")
            }
            ProcessSecrets.add(connection: url)
            let connection = try await PostgresConnection.connect(
                configuration: PostgresConfiguration(url: url, applicationName: "clipd-classify", connectTimeoutSeconds: 10,
                                                     reconnect: RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(250), maxDelay: .seconds(2))),
                logger: makeLogger("clipd.classify"))
            defer { Task { await connection.close() } }
            guard let stored = try await ClipdDatabase(connection: connection).labelSet(named: labelSet) else {
                throw CommandFailure("no label set named \(labelSet)")
            }
            return stored
        }
        var names: [String]
        if let labels {
            names = labels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        } else {
            guard let text = try? String(contentsOfFile: labelsFile!, encoding: .utf8) else {
                throw CommandFailure("cannot read labels file \(labelsFile!)")
            }
            names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        names = names.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw CommandFailure("no labels given") }
        let resolved: [String]
        do { resolved = try PromptTemplates.resolve(templates) } catch { throw CommandFailure("\(error)") }
        return LabelSet(name: "cli", labels: names.map { .init($0) }, templates: resolved)
    }

    func run() async throws {
        let logger = makeLogger("clipd.classify")
        let set = try await resolveLabelSet()
        let model = try modelOptions.load(logger: logger)
        let tokenizer = try sharedTokenizer()
        let context = model.config.contextLength
        let classifier = try ZeroShotClassifier(model: model, labelSet: set) { tokenizer.tokenize($0, contextLength: context).ids.map(Int32.init) }
        let loader = imageOptions.loader(model: model.config)
        var failed = false
        for location in images {
            do {
                let pixels = try await loader.load(location)
                var features = model.encodeImages(pixels, count: 1)
                let e = model.config.embedDim
                features.data.withUnsafeMutableBufferPointer { l2NormalizeRows($0.baseAddress!, rows: 1, cols: e) }
                let tags = classifier.tags(features.data[...], topK: topK)
                let items = tags.map { "{\"label\":\(jsonString($0.label)),\"score\":\($0.score)}" }.joined(separator: ",")
                printLine("{\"input\":\(jsonString(location)),\"tags\":[\(items)]}")
            } catch let f as PipelineFailure {
                // One bad image does not stop the others; the exit status reports it.
                FileHandle.standardError.write("Error: \(location): \(f.errorClass): \(f.message)\n".data(using: .utf8)!)
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}
