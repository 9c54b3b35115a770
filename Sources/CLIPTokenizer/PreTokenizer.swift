/// open_clip's pre-split, by hand over scalars:
/// `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
/// with IGNORECASE, scanned like `regex.findall` (first alternative that matches at a position
/// wins; characters no alternative matches are skipped).
enum PreTokenizer {
    enum Piece: Equatable {
        case text(Range<Int>)
        case startOfText
        case endOfText
    }

    private static let startOfText = Array("<start_of_text>".unicodeScalars)
    private static let endOfText = Array("<end_of_text>".unicodeScalars)
    private static let contractions: [[Unicode.Scalar]] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].map { Array($0.unicodeScalars) }

    /// Calls `emit` for each piece in order until it returns false.
    static func split(_ s: [Unicode.Scalar], _ emit: (Piece) -> Bool) {
        let n = s.count
        var i = 0
        while i < n {
            let c = s[i]
            let v = c.value
            if c == "<" {
                // open_clip maps only the exact strings to the special ids (through its BPE cache);
                // a case-folded spelling such as "<ſtart_of_text>" is split here but BPE-encoded.
                if matches(s, i, startOfText) {
                    let range = i..<(i + startOfText.count)
                    if !emit(s[range].elementsEqual(startOfText) ? .startOfText : .text(range)) { return }
                    i = range.upperBound
                    continue
                }
                if matches(s, i, endOfText) {
                    let range = i..<(i + endOfText.count)
                    if !emit(s[range].elementsEqual(endOfText) ? .endOfText : .text(range)) { return }
                    i = range.upperBound
                    continue
                }
            } else if c == "'" {
                if let contraction = contractions.first(where: { matches(s, i, $0) }) {
                    if !emit(.text(i..<(i + contraction.count))) { return }
                    i += contraction.count
                    continue
                }
            }
            if UnicodeClasses.isLetter(v) {
                var j = i + 1
                while j < n && UnicodeClasses.isLetter(s[j].value) { j += 1 }
                if !emit(.text(i..<j)) { return }
                i = j
            } else if UnicodeClasses.isNumber(v) {
                if !emit(.text(i..<(i + 1))) { return }
                i += 1
            } else if UnicodeClasses.isSkipped(v) {
                i += 1
            } else {
                var j = i + 1
                while j < n {
                    let w = s[j].value
                    if UnicodeClasses.isSkipped(w) || UnicodeClasses.isLetter(w) || UnicodeClasses.isNumber(w) { break }
                    j += 1
                }
                if !emit(.text(i..<j)) { return }
                i = j
            }
        }
    }

    /// Case-insensitive literal match. The text is already lower-cased, so beyond ASCII case only
    /// the characters whose simple case folding is an ASCII letter matter: ſ (s) and K (k).
    @inline(__always)
    private static func matches(_ s: [Unicode.Scalar], _ at: Int, _ literal: [Unicode.Scalar]) -> Bool {
        guard at + literal.count <= s.count else { return false }
        for (k, expected) in literal.enumerated() {
            let actual = s[at + k]
            if actual == expected { continue }
            let a = actual.value, e = expected.value
            if e >= 0x61 && e <= 0x7A && a == e - 0x20 { continue }
            if e == 0x73 && a == 0x17F { continue }
            if e == 0x6B && a == 0x212A { continue }
            return false
        }
        return true
    }
}
