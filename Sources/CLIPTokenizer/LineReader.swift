/// Lines of a byte stream, numbered from 1, for line-oriented tokenizer input (`clipd tokenize`
/// reads JSON strings one per line). A final line without '\n' counts; a '\r' before the '\n' is
/// dropped. Linear in the input: every byte is scanned for '\n' once, however long the line
/// (a 50 MB caption is one line) and however the input is split into chunks.
public struct LineReader {
    /// Returns the next chunk of input, empty at the end.
    private let read: () -> [UInt8]
    private var buffer: [UInt8] = []
    private var position = 0
    /// Where the search for '\n' resumes: bytes before it (from `position`) hold none.
    private var scanned = 0
    private var atEnd = false
    private var lineNumber = 0
    /// Bytes examined while looking for line ends (an operation count for tests).
    public private(set) var scannedBytes = 0
    /// Bytes moved to compact the buffer.
    public private(set) var movedBytes = 0

    public init(read: @escaping () -> [UInt8]) {
        self.read = read
    }

    public mutating func next() -> (number: Int, line: [UInt8])? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: 0x0A) {
                scannedBytes += newline - scanned + 1
                var line = Array(buffer[position..<newline])
                if line.last == 0x0D { line.removeLast() }
                position = newline + 1
                scanned = position
                lineNumber += 1
                return (lineNumber, line)
            }
            scannedBytes += buffer.count - scanned
            scanned = buffer.count
            if atEnd {
                guard position < buffer.count else { return nil }
                let line = Array(buffer[position...])
                position = buffer.count
                scanned = position
                lineNumber += 1
                return (lineNumber, line)
            }
            // Drop consumed lines only when they are at least half the buffer, so that
            // compaction costs O(1) per byte, amortized.
            if position > 0 && position >= buffer.count / 2 {
                movedBytes += buffer.count - position
                buffer.removeFirst(position)
                scanned -= position
                position = 0
            }
            let chunk = read()
            if chunk.isEmpty { atEnd = true } else { buffer.append(contentsOf: chunk) }
        }
    }
}
