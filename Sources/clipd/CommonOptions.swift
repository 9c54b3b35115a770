import ArgumentParser
import CLIP
import CLIPTokenizer
import Foundation
import Logging
import Tensor
import Fetch
import ImageIO
import Pipeline

/// A failure of a command, printed by ArgumentParser as one line.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Options shared by every command that runs the model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model: a Hugging Face CLIPModel directory, or an OpenAI/open_clip state dict (.safetensors, .pt, .bin).")
    var model: String

    @Option(name: .long, help: "BLAS threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        try FlagRange.check(threads, "--threads", 1...FlagRange.maxThreads)
    }

    func load(logger: Logger) throws -> CLIPModel {
        configureThreads(threads, logger: logger)
        do {
            let checkpoint = try CheckpointLoader.load(path: model)
            logger.info("loaded model", metadata: ["path": "\(model)", "format": "\(checkpoint.format)",
                                                  "embed_dim": "\(checkpoint.config.embedDim)", "image_size": "\(checkpoint.config.imageSize)"])
            return CLIPModel(checkpoint: checkpoint)
        } catch let error as CLIPError {
            throw CommandFailure("cannot load model: \(error.message)")
        }
    }
}

func configureThreads(_ threads: Int?, logger: Logger) {
    if let threads { BLASKernel.setThreads(threads) }
    logger.info("\(BLASSelection.current.summary)")
}

/// A logger writing to standard error (standard output carries the commands' results).
func makeLogger(_ label: String) -> Logger {
    LoggingBootstrap.once
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["CLIPD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    return logger
}

enum LoggingBootstrap {
    static let once: Void = { LoggingSystem.bootstrap { RedactingLogHandler(StreamLogHandler.standardError(label: $0)) } }()
}

/// Compact JSON for float vectors: shortest round-trip decimal of each Float.
func jsonNumbers(_ values: some Sequence<Float>) -> String {
    "[" + values.map { $0.isFinite ? "\($0)" : "null" }.joined(separator: ",") + "]"
}

func jsonString(_ s: String) -> String {
    let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
    return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
}

/// Writes one line to standard output without buffering surprises at exit.
func printLine(_ s: String) {
    FileHandle.standardOutput.write((s + "\n").data(using: .utf8)!)
}

/// The positions of the given options on the command line, so outputs can follow the order in
/// which the user named the inputs across different options.
func commandLineOrder(of options: [String], arguments: [String] = CommandLine.arguments) -> [(option: String, value: String)] {
    var out: [(String, String)] = []
    var i = 1
    while i < arguments.count {
        let arg = arguments[i]
        if arg == "--" { break }
        if let eq = arg.firstIndex(of: "="), options.contains(String(arg[..<eq])) {
            out.append((String(arg[..<eq]), String(arg[arg.index(after: eq)...])))
        } else if options.contains(arg), i + 1 < arguments.count {
            out.append((arg, arguments[i + 1]))
            i += 1
        }
        i += 1
    }
    return out
}

/// How commands read images named on the command line.
struct ImageInputOptions: ParsableArguments {
    @Flag(name: .long, help: "Allow image URLs that resolve to loopback or private addresses.")
    var allowPrivateNetworks = false

    @Flag(name: .customLong("no-exif"), help: "Ignore EXIF orientation (reproduces open_clip exactly).")
    var ignoreExif = false

    @Option(name: .long, help: "Fetch timeout in seconds for image URLs.")
    var fetchTimeout: Double = 15

    @Flag(name: .customLong("fast-dct"), help: "Let libjpeg downscale by 1/2, 1/4 or 1/8 while the shortest side stays >= 2*S (faster, not identical; see Benchmarks/README.md).")
    var fastDCT = false

    func validate() throws {
        try FlagRange.checkPositive(fetchTimeout, "--fetch-timeout", atMost: 3600)
    }

    func loader(model: CLIPConfig) -> ImageLoader {
        var fetch = FetchConfiguration()
        fetch.allowPrivateNetworks = allowPrivateNetworks
        fetch.totalTimeout = .milliseconds(Int(fetchTimeout * 1000))
        return ImageLoader(model: model, fetch: fetch, workers: 2, applyExif: !ignoreExif,
                           dctDownscale: fastDCT ? .keepTwiceTarget : .off, allowPlainPaths: true)
    }
}

/// The process's tokenizer, with a command's one-line error when the vocabulary cannot load.
func sharedTokenizer() throws -> CLIPTokenizer {
    do { return try CLIPTokenizer.shared() } catch {
        throw CommandFailure("cannot load the tokenizer vocabulary: \(error)")
    }
}
