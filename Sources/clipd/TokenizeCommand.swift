import ArgumentParser
import CLIPTokenizer
import Foundation

/// `clipd tokenize`: one JSON string per input line -> one JSON array of ids per output line.
///
/// Output line k belongs to input line k. Invalid UTF-8 inside a line becomes U+FFFD. At the
/// first line that is not a JSON string the
/// command stops with a one-line error naming that line and exits 1; the lines before it have
/// been written in full, nothing after it is.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize captions exactly as open_clip does (stdin: one JSON string per line; stdout: one JSON array per line)."
    )

    @Option(name: .long, help: "Number of ids per caption (start and end tokens included, zero padded).")
    var contextLength: Int = CLIPTokenizer.defaultContextLength

    @Option(name: .long, help: ArgumentHelp("Benchmark: tokenize the input captions round-robin on one thread for this many seconds and print the rate as JSON.", visibility: .hidden))
    var benchSeconds: Double?

    func validate() throws {
        guard contextLength >= 2 else {
            throw ValidationError("--context-length must be at least 2 (start and end tokens), got \(contextLength)")
        }
        try FlagRange.check(contextLength, "--context-length", 2...Self.maxContextLength)
        try FlagRange.checkPositive(benchSeconds, "--bench-seconds", atMost: FlagRange.day)
    }

    /// Far above any CLIP text tower's context (77), low enough that a caption's row of ids stays small.
    static let maxContextLength = 16_384

    func run() throws {
        let tokenizer: CLIPTokenizer
        do { tokenizer = try CLIPTokenizer() } catch {
            throw TokenizeInputError(description: "cannot load the tokenizer vocabulary: \(error)")
        }
        let input = StandardInputLines()
        if let seconds = benchSeconds {
            var captions = [String]()
            while let (number, line) = input.next() { captions.append(try Self.parseCaption(line, lineNumber: number)) }
            guard !captions.isEmpty else { throw ValidationError("--bench-seconds needs captions on stdin") }
            print(tokenizer.benchmark(captions, contextLength: contextLength, seconds: seconds))
            return
        }
        var output = FileHandleBuffer()
        while let (number, line) = input.next() {
            let caption: String
            do { caption = try Self.parseCaption(line, lineNumber: number) } catch {
                output.flush()
                throw error
            }
            let ids = tokenizer.tokenize(caption, contextLength: contextLength).ids
            output.append("[" + ids.map(String.init).joined(separator: ",") + "]\n")
        }
        output.flush()
    }

    static func parseCaption(_ line: [UInt8], lineNumber: Int) throws -> String {
        let caption: String?
        // Invalid UTF-8 inside a line is replaced with U+FFFD rather than rejected, like the library API.
        let text = Data(String(decoding: line, as: UTF8.self).utf8)
        do { caption = try JSONSerialization.jsonObject(with: text, options: [.fragmentsAllowed]) as? String } catch {
            caption = nil
        }
        guard let caption else {
            let shown = String(decoding: line.prefix(60), as: UTF8.self)
            throw TokenizeInputError(description: "line \(lineNumber): expected a JSON string such as \"a photo of a cat\", got \(shown.debugDescription)\(line.count > 60 ? "…" : "")")
        }
        return caption
    }
}

/// A bad input line (or a missing vocabulary): printed as one line, exit status 1.
struct TokenizeInputError: Error, CustomStringConvertible {
    let description: String
}

/// Lines of standard input as bytes, numbered from 1 (`LineReader`: linear in the input).
final class StandardInputLines {
    private var reader = LineReader { [UInt8](FileHandle.standardInput.readData(ofLength: 1 << 16)) }

    func next() -> (Int, [UInt8])? {
        reader.next().map { ($0.number, $0.line) }
    }
}

/// Buffered stdout writes: one syscall per 64 KiB rather than per caption.
struct FileHandleBuffer {
    private var pending = [UInt8]()

    mutating func append(_ text: String) {
        pending.append(contentsOf: text.utf8)
        if pending.count >= 1 << 16 { flush() }
    }

    mutating func flush() {
        guard !pending.isEmpty else { return }
        FileHandle.standardOutput.write(Data(pending))
        pending.removeAll(keepingCapacity: true)
    }
}
