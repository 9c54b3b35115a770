import Foundation

/// OpenAI CLIP's byte-level BPE vocabulary: 256 byte symbols, the same 256 with `</w>`,
/// one symbol per merge (id = 512 + merge rank), then `<start_of_text>` and `<end_of_text>`.
public struct BytePairVocabulary: Sendable {
    public static let mergeCount = 49152 - 256 - 2
    public static let size = 512 + mergeCount + 2
    public static let startOfTextId = 49406
    public static let endOfTextId = 49407

    /// Symbol id of each byte (GPT-2's `bytes_to_unicode` order), as a word-internal symbol.
    let byteSymbol: [Int32]
    /// Merge rank of each adjacent symbol pair (`first << 32 | second`); the merged symbol is 512 + rank.
    let mergeRanks: [UInt64: Int32]
    /// The vocabulary string of every id, in CLIP's printable byte alphabet.
    public let symbols: [String]
    /// Inverse of the byte alphabet, for decoding.
    let unicodeToByte: [Unicode.Scalar: UInt8]

    /// Loads `bpe_simple_vocab_16e6.txt.gz` shipped with this module.
    public static func bundled() throws -> BytePairVocabulary {
        guard let url = bundledFileURL else {
            throw CLIPTokenizerError(.vocabularyResourceMissing,
                                     "bpe_simple_vocab_16e6.txt.gz not found: install clipd_CLIPTokenizer.resources next to the executable")
        }
        return try load(from: url)
    }

    /// Loads a gzipped vocabulary file in OpenAI's format.
    public static func load(from url: URL) throws -> BytePairVocabulary {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CLIPTokenizerError(.vocabularyResourceMissing, "cannot read \(url.path): \(error)")
        }
        return try BytePairVocabulary(gzippedMerges: [UInt8](data))
    }

    /// The resource bundle SwiftPM puts next to the executable (or test runner), else the copy in
    /// the source tree. Looked up by hand because the generated `Bundle.module` traps when the
    /// bundle is missing, and a daemon should report that instead.
    static var bundledFileURL: URL? {
        for bundleName in ["clipd_CLIPTokenizer.resources", "clipd_CLIPTokenizer.bundle"] {
            let path = Bundle.main.bundleURL.appendingPathComponent(bundleName).path
            if let bundle = Bundle(path: path),
               let url = bundle.url(forResource: "bpe_simple_vocab_16e6.txt", withExtension: "gz") {
                return url
            }
        }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Resources/bpe_simple_vocab_16e6.txt.gz")
        return FileManager.default.fileExists(atPath: source.path) ? source : nil
    }

    public init(gzippedMerges: [UInt8]) throws {
        try self.init(mergesText: try gunzip(gzippedMerges))
    }

    /// `mergesText` is the decompressed file: a header line, then "first second" merges in rank order.
    public init(mergesText: [UInt8]) throws {
        let text = String(decoding: mergesText, as: Unicode.UTF8.self)
        guard !text.unicodeScalars.contains("\u{FFFD}") else {
            throw CLIPTokenizerError(.vocabularyMalformed, "vocabulary is not UTF-8")
        }
        // Only the header and the merges are used; the rest of the file is never split.
        let lines = text.split(separator: "\n", maxSplits: Self.mergeCount + 1, omittingEmptySubsequences: false)
        guard lines.count > Self.mergeCount else {
            throw CLIPTokenizerError(.vocabularyMalformed, "vocabulary has \(lines.count) lines, expected more than \(Self.mergeCount)")
        }

        let alphabet = Self.bytesToUnicode()
        var symbols = [String]()
        symbols.reserveCapacity(Self.size)
        for scalar in alphabet.scalarsInVocabularyOrder { symbols.append(String(Character(scalar))) }
        for scalar in alphabet.scalarsInVocabularyOrder { symbols.append(String(Character(scalar)) + "</w>") }
        var idOf = [String: Int32](minimumCapacity: Self.size)
        for (id, symbol) in symbols.enumerated() { idOf[symbol] = Int32(id) }

        var ranks = [UInt64: Int32](minimumCapacity: Self.mergeCount)
        for rank in 0..<Self.mergeCount {
            let parts = lines[1 + rank].split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, let first = idOf[String(parts[0])], let second = idOf[String(parts[1])] else {
                throw CLIPTokenizerError(.vocabularyMalformed, "merge line \(rank + 2) is not two known symbols: \(lines[1 + rank])")
            }
            let merged = String(parts[0]) + String(parts[1])
            // Merge ids are 512 + rank only if every merge makes a new string (true for CLIP's file).
            guard idOf.updateValue(Int32(symbols.count), forKey: merged) == nil else {
                throw CLIPTokenizerError(.vocabularyMalformed, "merge line \(rank + 2) repeats the symbol \(merged)")
            }
            symbols.append(merged)
            ranks[UInt64(UInt32(first)) << 32 | UInt64(UInt32(second))] = Int32(rank)
        }
        symbols.append("<start_of_text>")
        symbols.append("<end_of_text>")

        self.symbols = symbols
        self.mergeRanks = ranks
        self.byteSymbol = (0..<256).map { Int32(alphabet.vocabularyIndexOfByte[$0]) }
        var inverse = [Unicode.Scalar: UInt8]()
        for byte in 0..<256 { inverse[alphabet.scalarOfByte[byte]] = UInt8(byte) }
        self.unicodeToByte = inverse
    }

    struct ByteAlphabet {
        var scalarOfByte: [Unicode.Scalar]
        var vocabularyIndexOfByte: [Int]
        var scalarsInVocabularyOrder: [Unicode.Scalar]
    }

    /// GPT-2's reversible map from bytes to printable code points: printable Latin-1 bytes map to
    /// themselves, the rest to 256, 257, ... in byte order; the vocabulary lists the printable ones first.
    static func bytesToUnicode() -> ByteAlphabet {
        var printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var codePoints = printable
        var next = 0
        for byte in 0..<256 where !printable.contains(byte) {
            printable.append(byte)
            codePoints.append(256 + next)
            next += 1
        }
        var scalarOfByte = [Unicode.Scalar](repeating: " ", count: 256)
        var indexOfByte = [Int](repeating: 0, count: 256)
        for (index, byte) in printable.enumerated() {
            scalarOfByte[byte] = Unicode.Scalar(UInt32(codePoints[index]))!
            indexOfByte[byte] = index
        }
        return ByteAlphabet(scalarOfByte: scalarOfByte, vocabularyIndexOfByte: indexOfByte,
                            scalarsInVocabularyOrder: codePoints.map { Unicode.Scalar(UInt32($0))! })
    }

    @inline(__always)
    func rank(_ first: Int32, _ second: Int32) -> Int32? {
        mergeRanks[UInt64(UInt32(first)) << 32 | UInt64(UInt32(second))]
    }

    /// Pieces longer than this use the heap-based merge (O(n log n)); shorter ones the direct loop.
    static let longWordBytes = 48

    /// Applies the merges to one pre-split piece given as UTF-8 bytes (open_clip's `bpe`) and
    /// appends the ids to `out`.
    func mergeWord(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        if bytes.count > Self.longWordBytes {
            mergeLongWord(bytes, into: &out)
        } else {
            mergeWordDirectly(bytes, into: &out)
        }
    }

    /// The reference algorithm: repeatedly pick the lowest-ranked adjacent pair and merge every
    /// occurrence of it left to right. Quadratic in the piece length.
    func mergeWordDirectly(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        let count = bytes.count
        guard count > 0 else { return }
        if count == 1 {
            out.append(byteSymbol[Int(bytes[0])] + 256)
            return
        }
        var word = [Int32]()
        word.reserveCapacity(count)
        for byte in bytes { word.append(byteSymbol[Int(byte)]) }
        word[count - 1] += 256  // the last symbol carries `</w>`

        var scratch = [Int32]()
        scratch.reserveCapacity(count)
        while word.count > 1 {
            var bestRank = Int32.max
            var first = 0
            for i in 0..<(word.count - 1) {
                if let r = rank(word[i], word[i + 1]), r < bestRank {
                    bestRank = r
                    first = i
                }
            }
            if bestRank == Int32.max { break }
            let a = word[first], b = word[first + 1]
            let merged = 512 + bestRank
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: word[0..<first])
            var i = first
            while i < word.count {
                if i + 1 < word.count && word[i] == a && word[i + 1] == b {
                    scratch.append(merged)
                    i += 2
                } else {
                    scratch.append(word[i])
                    i += 1
                }
            }
            swap(&word, &scratch)
        }
        out.append(contentsOf: word)
    }

    /// Same result as `mergeWordDirectly` in O(n log n), for very long pieces (a caption that is
    /// one enormous "word"). Candidate pairs sit in a min-heap keyed by (rank, position); stale
    /// entries are skipped when popped. Equal to the reference because a merge can only create
    /// pairs of higher rank than its own (a symbol exists only after the merge that makes it), so
    /// processing by rank, then left to right, replays the reference's passes.
    func mergeLongWord(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        let count = bytes.count
        guard count > 0 else { return }
        var symbol = bytes.map { byteSymbol[Int($0)] }
        symbol[count - 1] += 256
        var next = Array(1...count)          // count = end of list
        var previous = Array(-1..<(count - 1))
        var alive = [Bool](repeating: true, count: count)
        var heap = MinHeap()
        for i in 0..<(count - 1) {
            if let r = rank(symbol[i], symbol[i + 1]) { heap.push(UInt64(r) << 32 | UInt64(i)) }
        }
        while let key = heap.pop() {
            let left = Int(key & 0xFFFF_FFFF)
            let keyRank = Int32(key >> 32)
            guard alive[left] else { continue }
            let right = next[left]
            guard right < count, rank(symbol[left], symbol[right]) == keyRank else { continue }
            symbol[left] = 512 + keyRank
            alive[right] = false
            next[left] = next[right]
            if next[right] < count { previous[next[right]] = left }
            let before = previous[left]
            if before >= 0, let r = rank(symbol[before], symbol[left]) { heap.push(UInt64(r) << 32 | UInt64(before)) }
            if next[left] < count, let r = rank(symbol[left], symbol[next[left]]) { heap.push(UInt64(r) << 32 | UInt64(left)) }
        }
        var i = 0
        while i < count {
            out.append(symbol[i])
            i = next[i]
        }
    }
}

/// A binary min-heap of UInt64 keys.
struct MinHeap {
    private var items = [UInt64]()

    mutating func push(_ key: UInt64) {
        items.append(key)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count && items[left] < items[smallest] { smallest = left }
                if right < items.count && items[right] < items[smallest] { smallest = right }
                if smallest == parent { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}
