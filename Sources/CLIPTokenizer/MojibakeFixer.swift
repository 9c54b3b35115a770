/// ftfy's `fix_encoding`: undo UTF-8 text that was decoded with a single-byte encoding, possibly
/// several times, but only where the badness heuristic says the text looks like mojibake, and
/// only when the re-encoded bytes are valid UTF-8. Ordinary accented text is left alone.
enum MojibakeFixer {
    /// One of ftfy's single-byte codecs, with its encoder (the exact inverse of its decoder).
    struct Charmap: Sendable {
        let name: String
        let decode: [UInt32]
        let encode: [UInt32: UInt8]
        var isSloppy: Bool { name.hasPrefix("sloppy") }

        init(name: String, decode: [UInt32]) {
            self.name = name
            self.decode = decode
            var encode = [UInt32: UInt8]()
            for byte in 0..<256 { encode[decode[byte]] = UInt8(byte) }
            self.encode = encode
        }

        /// `chardata.possible_encoding`: ASCII except U+1A, or a character this codec decodes
        /// from a byte 0x80-0xFF or 0x1A.
        func canEncode(_ scalar: Unicode.Scalar) -> Bool {
            let v = scalar.value
            if v < 0x80 && v != 0x1A { return true }
            guard let byte = encode[v] else { return false }
            return byte >= 0x80 || byte == 0x1A
        }

        func encoded(_ text: ArraySlice<Unicode.Scalar>) -> [UInt8] {
            text.map { $0.value < 0x80 && $0.value != 0x1A ? UInt8($0.value) : encode[$0.value]! }
        }
    }

    static let charmaps: [Charmap] = zip(charmapEncodingNames, charmapDecodingTables).map {
        Charmap(name: $0.0, decode: $0.1)
    }
    static let sloppyWindows1252 = charmaps.first { $0.name == "sloppy-windows-1252" }!

    /// Repeats single fixing steps until the text stops changing.
    static func fixEncoding(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var current = Array(text)
        while true {
            let next = fixOneStep(current)
            if next == current { return current }
            current = next
        }
    }

    static func fixOneStep(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        if text.isEmpty || text.allSatisfy({ $0.value < 0x80 }) || !MojibakeDetector.isBad(text) { return text }

        var possible = Set<String>()
        for charmap in charmaps where text.allSatisfy(charmap.canEncode) {
            possible.insert(charmap.name)
            var bytes = charmap.encoded(text[...])
            if charmap.name != "macroman" && BytePatterns.alteredUTF8.firstMatch(in: bytes) != nil {
                bytes = restoreByteA0(bytes)
            }
            if charmap.isSloppy {
                bytes = BytePatterns.lossyUTF8.replaceAll(in: bytes, with: [0xEF, 0xBF, 0xBD])
            }
            let variants = bytes.contains(0xED) || bytes.contains(0xC0)
            if let fixed = StrictUTF8.decodeStrict(bytes, allowVariants: variants) { return fixed }
        }

        if containsUTF8Clue(text) {
            let fixed = decodeInconsistentUTF8(text)
            if fixed != text { return fixed }
        }

        // Latin-1 text that is not valid Windows-1252 has C1 controls; read them as Windows-1252.
        // (ftfy checks for "windows-1252" among the sloppy codec names, which never matches.)
        if possible.contains("latin-1") {
            let undefinedInWindows1252: Set<UInt32> = [0x81, 0x8D, 0x8F, 0x90, 0x9D]
            if !text.contains(where: { undefinedInWindows1252.contains($0.value) }) {
                let fixed = fixC1Controls(text)
                if fixed != text { return fixed }
            }
        }
        if text.contains(where: { (0x80...0x9F).contains($0.value) }) {
            return fixC1Controls(text)
        }
        return text
    }

    /// `fixes.fix_c1_controls`: C1 controls become their Windows-1252 characters, as browsers do.
    static func fixC1Controls(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        text.map { (0x80...0x9F).contains($0.value) ? Unicode.Scalar(sloppyWindows1252.decode[Int($0.value)])! : $0 }
    }

    /// `fixes.restore_byte_a0`: a space that must have been U+A0 inside a UTF-8 sequence.
    static func restoreByteA0(_ bytes: [UInt8]) -> [UInt8] {
        // "Ã " is "à " in Portuguese-like contexts, except before these words.
        var out = [UInt8]()
        out.reserveCapacity(bytes.count + 8)
        var i = 0
        let exceptions: [[UInt8]] = [" ", "quele", "quela", "quilo", "s "].map { Array($0.utf8) }
        while i < bytes.count {
            if bytes[i] == 0xC3 && i + 1 < bytes.count && bytes[i + 1] == 0x20 {
                let rest = bytes[(i + 2)...]
                if !exceptions.contains(where: { rest.starts(with: $0) }) {
                    out.append(contentsOf: [0xC3, 0xA0, 0x20])
                    i += 2
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return BytePatterns.alteredUTF8.transformAll(in: out) { match in match.map { $0 == 0x20 ? 0xA0 : $0 } }
    }

    static func containsUTF8Clue(_ text: [Unicode.Scalar]) -> Bool {
        for i in text.indices where utf8ClueRun(text, from: i) > 0 { return true }
        return false
    }

    /// Length of `UTF8_DETECTOR_RE`'s match starting at `start` (0 if none): lead characters
    /// followed by the right number of continuation characters, repeated, not preceded by a
    /// strict continuation character.
    static func utf8ClueRun(_ text: [Unicode.Scalar], from start: Int) -> Int {
        if start > 0 && MojibakeDetector.category(text[start - 1]).contains(.utf8ContinuationStrict) { return 0 }
        var i = start
        while i < text.count {
            let c = MojibakeDetector.category(text[i])
            let continuations: Int
            if c.contains(.utf8FirstOf2) { continuations = 1 }
            else if c.contains(.utf8FirstOf3) { continuations = 2 }
            else if c.contains(.utf8FirstOf4) { continuations = 3 }
            else { break }
            guard i + continuations < text.count,
                  (1...continuations).allSatisfy({ MojibakeDetector.category(text[i + $0]).contains(.utf8Continuation) })
            else { break }
            i += 1 + continuations
        }
        return i - start
    }

    /// `fixes.decode_inconsistent_utf8`: fix each mojibake-looking run on its own.
    static func decodeInconsistentUTF8(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            let run = utf8ClueRun(text, from: i)
            if run == 0 {
                out.append(text[i])
                i += 1
                continue
            }
            let piece = text[i..<(i + run)]
            if run < text.count && MojibakeDetector.isBad(piece) {
                out.append(contentsOf: fixEncoding(piece))
            } else {
                out.append(contentsOf: piece)
            }
            i += run
        }
        return out
    }
}

/// Strict UTF-8 decoding as Python does it, optionally with ftfy's `utf-8-variants`
/// (CESU-8 surrogate pairs and Java's C0 80 for NUL).
enum StrictUTF8 {
    static func decodeStrict(_ bytes: [UInt8], allowVariants: Bool) -> [Unicode.Scalar]? {
        var out = [Unicode.Scalar]()
        out.reserveCapacity(bytes.count)
        var i = 0
        let n = bytes.count
        @inline(__always) func cont(_ j: Int) -> UInt32? {
            j < n && bytes[j] & 0xC0 == 0x80 ? UInt32(bytes[j] & 0x3F) : nil
        }
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                out.append(Unicode.Scalar(b0))
                i += 1
                continue
            }
            if allowVariants {
                if b0 == 0xC0 && i + 1 < n && bytes[i + 1] == 0x80 {
                    out.append("\u{0}")
                    i += 2
                    continue
                }
                if b0 == 0xED && i + 5 < n && (0xA0...0xAF).contains(bytes[i + 1]) && bytes[i + 2] & 0xC0 == 0x80
                    && bytes[i + 3] == 0xED && (0xB0...0xBF).contains(bytes[i + 4]) && bytes[i + 5] & 0xC0 == 0x80 {
                    let v = (UInt32(bytes[i + 1] & 0x0F) << 16) + (UInt32(bytes[i + 2] & 0x3F) << 10)
                        + (UInt32(bytes[i + 4] & 0x0F) << 6) + UInt32(bytes[i + 5] & 0x3F) + 0x10000
                    out.append(Unicode.Scalar(v)!)
                    i += 6
                    continue
                }
            }
            if b0 >= 0xC2 && b0 <= 0xDF, let c1 = cont(i + 1) {
                out.append(Unicode.Scalar((UInt32(b0 & 0x1F) << 6) | c1)!)
                i += 2
            } else if b0 >= 0xE0 && b0 <= 0xEF, let c1 = cont(i + 1), let c2 = cont(i + 2) {
                let v = (UInt32(b0 & 0x0F) << 12) | (c1 << 6) | c2
                guard v >= 0x800, !(0xD800...0xDFFF).contains(v) else { return nil }
                out.append(Unicode.Scalar(v)!)
                i += 3
            } else if b0 >= 0xF0 && b0 <= 0xF4, let c1 = cont(i + 1), let c2 = cont(i + 2), let c3 = cont(i + 3) {
                let v = (UInt32(b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3
                guard v >= 0x10000, v <= 0x10FFFF else { return nil }
                out.append(Unicode.Scalar(v)!)
                i += 4
            } else {
                return nil
            }
        }
        return out
    }
}

/// Byte regexes of ftfy (alternations of byte classes), matched left to right without overlap.
struct BytePatterns: Sendable {
    struct ByteClass: Sendable {
        var bits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        init(_ ranges: [ClosedRange<UInt8>]) {
            for r in ranges { for b in r { insert(b) } }
        }
        init(_ bytes: UInt8...) { for b in bytes { insert(b) } }
        mutating func insert(_ b: UInt8) {
            let bit = UInt64(1) << UInt64(b & 63)
            switch b >> 6 {
            case 0: bits.0 |= bit
            case 1: bits.1 |= bit
            case 2: bits.2 |= bit
            default: bits.3 |= bit
            }
        }
        func contains(_ b: UInt8) -> Bool {
            let bit = UInt64(1) << UInt64(b & 63)
            switch b >> 6 {
            case 0: return bits.0 & bit != 0
            case 1: return bits.1 & bit != 0
            case 2: return bits.2 & bit != 0
            default: return bits.3 & bit != 0
            }
        }
    }

    let alternatives: [[ByteClass]]

    func matchLength(in bytes: [UInt8], at i: Int) -> Int? {
        for alternative in alternatives where i + alternative.count <= bytes.count {
            if alternative.indices.allSatisfy({ alternative[$0].contains(bytes[i + $0]) }) { return alternative.count }
        }
        return nil
    }

    func firstMatch(in bytes: [UInt8]) -> Int? {
        bytes.indices.first { matchLength(in: bytes, at: $0) != nil }
    }

    func transformAll(in bytes: [UInt8], _ transform: (ArraySlice<UInt8>) -> [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if let length = matchLength(in: bytes, at: i) {
                out.append(contentsOf: transform(bytes[i..<(i + length)]))
                i += length
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    func replaceAll(in bytes: [UInt8], with replacement: [UInt8]) -> [UInt8] {
        transformAll(in: bytes) { _ in replacement }
    }

    private static let continuation = ByteClass([0x80...0xBF])

    /// `chardata.ALTERED_UTF8_RE`: UTF-8 sequences where byte A0 was replaced by a space.
    static let alteredUTF8: BytePatterns = {
        let space = ByteClass(0x20)
        let notA0 = ByteClass([0x80...0x84, 0x86...0x9F, 0xA1...0xBF])
        let f0 = ByteClass(0xF0)
        return BytePatterns(alternatives: [
            [ByteClass(0xC2, 0xC3, 0xC5, 0xCE, 0xD0, 0xD9), space],
            [ByteClass(0xE2, 0xE3), space, notA0],
            [ByteClass([0xE0...0xE3]), notA0, space],
            [f0, space, continuation, continuation],
            [f0, continuation, space, continuation],
            [f0, continuation, continuation, space],
        ])
    }()

    /// `chardata.LOSSY_UTF8_RE`: UTF-8 sequences with bytes lost to 0x1A (U+FFFD) or '?'.
    static let lossyUTF8: BytePatterns = {
        let sub = ByteClass(0x1A)
        let subOrQuestion = ByteClass(0x1A, 0x3F)
        let subOrCont = ByteClass([0x1A...0x1A, 0x80...0xBF])
        let subQuestionOrCont = ByteClass([0x1A...0x1A, 0x3F...0x3F, 0x80...0xBF])
        let ed = ByteClass(0xED)
        let lead3 = ByteClass([0xE0...0xEF])
        let lead4 = ByteClass([0xF0...0xF4])
        return BytePatterns(alternatives: [
            [ByteClass([0xC2...0xDF]), sub],
            [ByteClass([0xC2...0xC3]), ByteClass(0x3F)],
            [ed, ByteClass([0xA0...0xAF]), subOrQuestion, ed, ByteClass([0xB0...0xBF]), subQuestionOrCont],
            [ed, ByteClass([0xA0...0xAF]), subQuestionOrCont, ed, ByteClass([0xB0...0xBF]), subOrQuestion],
            [lead3, subOrQuestion, subOrCont],
            [lead3, subOrCont, subOrQuestion],
            [lead4, subOrQuestion, subOrCont, subOrCont],
            [lead4, subOrCont, subOrQuestion, subOrCont],
            [lead4, subOrCont, subOrCont, subOrQuestion],
            [sub],
        ])
    }()
}
