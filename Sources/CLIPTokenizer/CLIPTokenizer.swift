import Foundation

/// The ids of one caption in CLIP's fixed-length layout.
public struct TokenizedText: Sendable, Equatable {
    /// `contextLength` ids: `<start_of_text>`, the BPE ids, `<end_of_text>`, zero padding.
    /// Too long a caption is cut so that `<end_of_text>` stays last.
    public var ids: [Int]
    /// Number of non-padding ids (start and end tokens included).
    public var tokenCount: Int
    /// Index of the first `<end_of_text>` id (the argmax of `ids`), where CLIP pools the text.
    public var endOfTextIndex: Int
    /// True when BPE ids were dropped to fit the context.
    public var truncated: Bool

    /// The length the text tower must run: with the causal mask, positions after the pooled
    /// `<end_of_text>` cannot change the embedding.
    public var effectiveLength: Int { endOfTextIndex + 1 }
}

/// OpenAI CLIP's tokenizer, exactly as open_clip applies it: cleaning (ftfy, HTML unescaping,
/// whitespace, lower-case), pre-split, byte-level BPE, context layout.
///
/// Thread-safe: one instance can serve all worker threads (the word cache is lock-protected).
public final class CLIPTokenizer: Sendable {
    public static let defaultContextLength = 77
    public static let startOfTextId = BytePairVocabulary.startOfTextId
    public static let endOfTextId = BytePairVocabulary.endOfTextId

    public let vocabulary: BytePairVocabulary
    /// Captions longer than this many scalars are cleaned in growing prefixes until the context
    /// is full, so that a 1 MB caption costs about as much as a short one.
    public let cleaningPrefixScalars: Int
    /// Nothing after this many scalars is ever looked at, which bounds the cost of pathological
    /// captions (say a megabyte of line breaks). open_clip would read on: such a caption differs
    /// from it only if its first 65,536 characters clean to fewer tokens than the context holds.
    public let maximumCleanedScalars: Int
    private let cache: WordCache

    /// Uses the vocabulary bundled with this module.
    public convenience init(cacheCapacity: Int = 200_000, cleaningPrefixScalars: Int = 4096,
                            maximumCleanedScalars: Int = 65_536) throws {
        self.init(vocabulary: try BytePairVocabulary.bundled(), cacheCapacity: cacheCapacity,
                  cleaningPrefixScalars: cleaningPrefixScalars, maximumCleanedScalars: maximumCleanedScalars)
    }

    public init(vocabulary: BytePairVocabulary, cacheCapacity: Int = 200_000, cleaningPrefixScalars: Int = 4096,
                maximumCleanedScalars: Int = 65_536) {
        self.vocabulary = vocabulary
        self.cache = WordCache(capacity: cacheCapacity)
        self.cleaningPrefixScalars = max(64, cleaningPrefixScalars)
        self.maximumCleanedScalars = max(self.cleaningPrefixScalars, maximumCleanedScalars)
    }

    /// Tokenizes UTF-8 bytes; invalid sequences become U+FFFD first (as a lenient decoder does).
    public func tokenize(utf8 bytes: [UInt8], contextLength: Int = CLIPTokenizer.defaultContextLength) -> TokenizedText {
        tokenize(String(decoding: bytes, as: Unicode.UTF8.self), contextLength: contextLength)
    }

    /// open_clip's `tokenize([text], context_length)[0]`, with its length and pooling position.
    /// `contextLength` must be at least 2.
    public func tokenize(_ text: String, contextLength: Int = CLIPTokenizer.defaultContextLength) -> TokenizedText {
        precondition(contextLength >= 2, "context length must hold <start_of_text> and <end_of_text>")
        let bodyCapacity = contextLength - 2
        // One id beyond the capacity tells whether the caption was truncated.
        let body = encode(text, maxTokens: bodyCapacity + 1)
        let truncated = body.count > bodyCapacity
        var ids = [Int](repeating: 0, count: contextLength)
        ids[0] = Self.startOfTextId
        let kept = min(body.count, bodyCapacity)
        for k in 0..<kept { ids[1 + k] = Int(body[k]) }
        ids[1 + kept] = Self.endOfTextId
        let endIndex = ids.firstIndex(of: Self.endOfTextId)!
        return TokenizedText(ids: ids, tokenCount: kept + 2, endOfTextIndex: endIndex, truncated: truncated)
    }

    /// BPE ids of the cleaned caption, without start/end tokens, at most `maxTokens` of them.
    public func encode(_ text: String, maxTokens: Int = Int.max) -> [Int32] {
        var prefixLength = cleaningPrefixScalars
        while true {
            var input: [Unicode.Scalar]
            var cut = false
            if text.utf8.count <= prefixLength {
                input = Array(text.unicodeScalars)  // fewer bytes than the prefix: no cut possible
            } else {
                // One scalar more than the prefix tells whether the caption goes on.
                input = Array(text.unicodeScalars.prefix(prefixLength + 1))
                cut = input.count > prefixLength
                if cut { input.removeLast() }
            }
            let ids = encodeCleaned(TextCleaner.cleanLower(input), maxTokens: maxTokens)
            // A cut prefix is exact once it fills the context (the rest of the caption is dropped
            // anyway); otherwise retry with a longer prefix, up to the hard limit.
            if !cut || ids.count >= maxTokens || prefixLength >= maximumCleanedScalars { return ids }
            prefixLength = min(prefixLength * 4, maximumCleanedScalars)
        }
    }

    /// The pre-split and BPE of an already cleaned, lower-cased text.
    func encodeCleaned(_ cleaned: [Unicode.Scalar], maxTokens: Int) -> [Int32] {
        var ids = [Int32]()
        guard maxTokens > 0 else { return ids }
        var utf8 = [UInt8]()
        PreTokenizer.split(cleaned) { piece in
            switch piece {
            case .startOfText: ids.append(Int32(Self.startOfTextId))
            case .endOfText: ids.append(Int32(Self.endOfTextId))
            case .text(let range):
                utf8.removeAll(keepingCapacity: true)
                for scalar in cleaned[range] { utf8.append(contentsOf: Unicode.UTF8.encode(scalar)!) }
                appendWord(utf8, to: &ids)
            }
            return ids.count < maxTokens
        }
        if ids.count > maxTokens { ids.removeLast(ids.count - maxTokens) }
        return ids
    }

    /// Pieces longer than this are not cached: they are rare and would bloat the cache.
    static let cachedPieceBytes = 128

    private func appendWord(_ utf8: [UInt8], to ids: inout [Int32]) {
        let cacheable = utf8.count <= Self.cachedPieceBytes
        if cacheable, let cached = cache.lookup(utf8) {
            ids.append(contentsOf: cached)
            return
        }
        var word = [Int32]()
        utf8.withUnsafeBufferPointer { vocabulary.mergeWord($0, into: &word) }
        if cacheable { cache.store(utf8, word) }
        ids.append(contentsOf: word)
    }

    /// open_clip's `decode`: vocabulary strings joined, `</w>` read as a space, bytes decoded
    /// leniently. Padding zeros are skipped; with `skipSpecialTokens`, so are the start/end tokens.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var bytes = [UInt8]()
        var trailing = [UInt8]()
        let endOfWord = Array("</w>".unicodeScalars)
        for (position, id) in ids.enumerated() {
            guard id >= 0 && id < vocabulary.symbols.count else { continue }
            if id == 0 && ids[..<position].contains(Self.endOfTextId) { continue }  // padding
            if id >= Self.startOfTextId {
                if !skipSpecialTokens { bytes.append(contentsOf: Array(vocabulary.symbols[id].utf8)) }
                continue
            }
            var scalars = Array(vocabulary.symbols[id].unicodeScalars)
            trailing.removeAll()
            if scalars.count > endOfWord.count && Array(scalars.suffix(endOfWord.count)) == endOfWord {
                scalars.removeLast(endOfWord.count)
                trailing = [0x20]
            }
            for scalar in scalars { bytes.append(vocabulary.unicodeToByte[scalar] ?? 0x3F) }
            bytes.append(contentsOf: trailing)
        }
        var text = String(decoding: bytes, as: Unicode.UTF8.self)
        while text.hasSuffix(" ") { text.removeLast() }
        return text
    }
}

/// Memo of BPE results per pre-split piece, shared by all threads. Cleared when full so a
/// long-running daemon's memory stays bounded.
final class WordCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [[UInt8]: [Int32]] = [:]
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func lookup(_ key: [UInt8]) -> [Int32]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    func store(_ key: [UInt8], _ value: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[key] = value
    }
}
