import ArgumentParser
import Foundation
import ImageIO

/// `clipd preprocess IMAGE --output FILE`: the exact CLIP model input of one picture.
struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Decode an image and write the CLIP model input as little-endian float32 [3,S,S] (C order).",
        discussion: "Prints a one-line JSON summary (source size, mode, decode mode, orientation, resize and crop)."
    )

    @Argument(help: ArgumentHelp("JPEG or PNG file (type detected from its bytes).", valueName: "image"))
    var images: [String]

    @Option(name: .long, help: "Where to write the float32 tensor.")
    var output: String?

    @Flag(name: .customLong("no-exif"), help: "Ignore the EXIF orientation tag (reproduces open_clip).")
    var ignoreExif = false

    @Option(name: .customLong("image-size"), help: "Side S of the square model input.")
    var imageSize = 224

    @Flag(name: .customLong("fast-dct"),
          help: "Let libjpeg downscale by 1/2, 1/4 or 1/8 while decoding while the shortest side stays >= 2*S (faster, not identical).")
    var fastDCT = false

    @Flag(name: .customLong("fast-dct-max"),
          help: "Like --fast-dct, down to a shortest side of S (fastest, furthest from the reference).")
    var fastDCTMax = false

    @Option(name: .long, help: "Per-channel mean, \"r,g,b\" (default OpenAI CLIP's).")
    var mean: String?

    @Option(name: .long, help: "Per-channel standard deviation, \"r,g,b\" (default OpenAI CLIP's).")
    var std: String?

    @Option(name: .customLong("max-pixels"), help: "Refuse images with more pixels than this.")
    var maxPixels = ImageDecoder.defaultMaxPixels

    @Option(name: .customLong("bench-seconds"), help: .hidden)
    var benchSeconds: Double?

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give an IMAGE to preprocess") }
        guard (1...4096).contains(imageSize) else { throw ValidationError("--image-size must be between 1 and 4096") }
        try FlagRange.check(maxPixels, "--max-pixels", 1...(1 << 31))
        try FlagRange.checkPositive(benchSeconds, "--bench-seconds", atMost: FlagRange.day)
        guard !(fastDCT && fastDCTMax) else { throw ValidationError("choose one of --fast-dct and --fast-dct-max") }
        _ = try Self.triple(mean, name: "--mean", default: PreprocessOptions.openAIMean)
        let deviations = try Self.triple(std, name: "--std", default: PreprocessOptions.openAIStd)
        guard deviations.allSatisfy({ $0 > 0 }) else { throw ValidationError("--std values must be positive") }
        if benchSeconds == nil {
            guard images.count == 1 else { throw ValidationError("give exactly one IMAGE (several only with --bench-seconds)") }
            guard output != nil else { throw ValidationError("--output FILE is required") }
        }
    }

    static func triple(_ text: String?, name: String, default fallback: [Float]) throws -> [Float] {
        guard let text else { return fallback }
        let values = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == 3, values.allSatisfy({ $0 != nil && $0!.isFinite }) else {
            throw ValidationError("\(name) needs three comma-separated numbers, got \"\(text)\"")
        }
        return values.map { $0! }
    }

    var dctPolicy: DCTDownscalePolicy {
        fastDCTMax ? .keepTarget : (fastDCT ? .keepTwiceTarget : .off)
    }

    func run() throws {
        let preprocessor = Preprocessor(
            options: PreprocessOptions(
                imageSize: imageSize,
                mean: try Self.triple(mean, name: "--mean", default: PreprocessOptions.openAIMean),
                std: try Self.triple(std, name: "--std", default: PreprocessOptions.openAIStd),
                applyExifOrientation: !ignoreExif, dctDownscale: dctPolicy),
            decoder: ImageDecoder(maxPixels: maxPixels))
        let inputs = try images.map { path -> [UInt8] in
            guard let data = FileManager.default.contents(atPath: path) else {
                throw FileError(description: "cannot read \(path)")
            }
            return [UInt8](data)
        }
        if let benchSeconds {
            let r = try PreprocessBenchmark.run(preprocessor, inputs: inputs, seconds: benchSeconds)
            print("{\"images\":\(r.images),\"seconds\":\(r.seconds),\"cpu_seconds\":\(r.cpuSeconds),\"images_per_second\":\(Double(r.images) / r.seconds),"
                + "\"images_per_cpu_second\":\(Double(r.images) / r.cpuSeconds),\"dct_downscale\":\"\(dctPolicy.rawValue)\",\"checksum\":\(r.checksum)}")
            return
        }
        let (tensor, summary) = try preprocessor.preprocess(inputs[0])
        var bytes = [UInt8]()
        bytes.reserveCapacity(tensor.count * 4)
        for value in tensor {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: output!), options: .atomic)
        } catch {
            throw FileError(description: "cannot write \(output!): \(error.localizedDescription)")
        }
        print(summary.json(image: images[0], output: output!))
    }
}

/// A file that cannot be read or written: reported without the usage text.
struct FileError: Error, CustomStringConvertible {
    let description: String
}
