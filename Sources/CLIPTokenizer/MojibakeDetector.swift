/// ftfy's `badness` heuristic: character sequences that are far more likely to be mojibake
/// (UTF-8 decoded as a single-byte encoding) than intended text.
enum MojibakeDetector {
    struct Category: OptionSet, Sendable {
        let rawValue: UInt32
        static let common = Category(rawValue: 1 << 0)
        static let c1 = Category(rawValue: 1 << 1)
        static let bad = Category(rawValue: 1 << 2)
        static let law = Category(rawValue: 1 << 3)
        static let currency = Category(rawValue: 1 << 4)
        static let startPunctuation = Category(rawValue: 1 << 5)
        static let endPunctuation = Category(rawValue: 1 << 6)
        static let numeric = Category(rawValue: 1 << 7)
        static let kaomoji = Category(rawValue: 1 << 8)
        static let upperAccented = Category(rawValue: 1 << 9)
        static let lowerAccented = Category(rawValue: 1 << 10)
        static let upperCommon = Category(rawValue: 1 << 11)
        static let lowerCommon = Category(rawValue: 1 << 12)
        static let box = Category(rawValue: 1 << 13)
        static let utf8FirstOf2 = Category(rawValue: 1 << 14)
        static let utf8FirstOf3 = Category(rawValue: 1 << 15)
        static let utf8FirstOf4 = Category(rawValue: 1 << 16)
        static let utf8Continuation = Category(rawValue: 1 << 17)
        static let utf8ContinuationStrict = Category(rawValue: 1 << 18)
        /// Characters spelled out literally in the badness patterns.
        static let literal = Category(rawValue: 1 << 19)
    }

    /// Categories of every BMP scalar (all of ftfy's classes are in the BMP).
    static let categories: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 0x10000)
        precondition(mojibakeCategoryMembers.count == 19)
        for (bit, members) in mojibakeCategoryMembers.enumerated() {
            for scalar in members.unicodeScalars { table[Int(scalar.value)] |= 1 << UInt32(bit) }
        }
        let literals = " ŒœÂÃÎÐ€œŠš¢£Ÿž\u{A0}\u{AD}®©°·»–—´×²³ØÙµàÃ²µ¹¼½¾√±∂†≠™≤≥¥ø≈‚ÄìîïòôúùûπâóäêвЂГўВРСβΆāΒΓΞΟ"
        for scalar in literals.unicodeScalars { table[Int(scalar.value)] |= Category.literal.rawValue }
        return table
    }()

    @inline(__always)
    static func category(_ scalar: Unicode.Scalar) -> Category {
        scalar.value < 0x10000 ? Category(rawValue: categories[Int(scalar.value)]) : []
    }

    /// `ftfy.badness.is_bad`: does any badness pattern match anywhere?
    static func isBad(_ text: ArraySlice<Unicode.Scalar>) -> Bool {
        let s = Array(text)
        let table = categories
        let cats = s.map { $0.value < 0x10000 ? Category(rawValue: table[Int($0.value)]) : [] }
        // Every pattern needs at least one categorised character other than the space.
        guard zip(s, cats).contains(where: { !$0.1.isEmpty && $0.0 != " " }) else { return false }
        for i in 0..<s.count where matchesAt(s, cats, i) { return true }
        return false
    }

    static func isBad(_ text: [Unicode.Scalar]) -> Bool { isBad(text[...]) }

    // Class unions used by the patterns, named after ftfy's format fields.
    private static let accentedBoxPunctuation: Category = [.bad, .lowerAccented, .upperAccented, .box, .startPunctuation, .endPunctuation, .currency, .numeric, .law]
    private static let lettersBoxPunctuation: Category = [.lowerAccented, .upperAccented, .box, .startPunctuation, .endPunctuation, .currency, .numeric, .law]

    private static func matchesAt(_ s: [Unicode.Scalar], _ cats: [Category], _ i: Int) -> Bool {
        let n = s.count
        @inline(__always) func cat(_ j: Int) -> Category { j < n ? cats[j] : [] }
        @inline(__always) func has(_ j: Int, _ c: Category) -> Bool { j < n && !cat(j).isDisjoint(with: c) }
        // Every character spelled out in a pattern carries the `.literal` bit: a cheap first test.
        @inline(__always) func isOne(_ j: Int, _ chars: String) -> Bool {
            j < n && cats[j].contains(.literal) && chars.unicodeScalars.contains(s[j])
        }
        @inline(__always) func asciiLetter(_ j: Int) -> Bool {
            j < n && s[j].value < 0x80 && ((s[j].value | 0x20) >= 0x61 && (s[j].value | 0x20) <= 0x7A)
        }
        @inline(__always) func asciiLower(_ j: Int) -> Bool {
            j < n && s[j].value >= 0x61 && s[j].value <= 0x7A
        }
        @inline(__always) func space(_ j: Int) -> Bool { j < n && PythonText.isSpace(s[j].value) }

        let c0 = cat(i)
        if c0.isEmpty && s[i].value >= 0x80 && !space(i) { return false }

        if c0.contains(.c1) { return true }
        if has(i, accentedBoxPunctuation) && has(i + 1, .bad) { return true }
        if asciiLetter(i) && has(i + 1, [.lowerCommon, .upperCommon]) && has(i + 2, .bad) { return true }
        if c0.contains(.bad) && has(i + 1, lettersBoxPunctuation) { return true }
        if has(i, [.lowerAccented, .lowerCommon, .box, .endPunctuation, .currency, .numeric]) && has(i + 1, .upperAccented) { return true }
        if has(i, [.box, .endPunctuation, .currency, .numeric]) && has(i + 1, .lowerAccented) { return true }
        if has(i, [.lowerAccented, .box, .endPunctuation]) && has(i + 1, .currency) { return true }
        if space(i) && has(i + 1, .upperAccented) && has(i + 2, .currency) { return true }
        if has(i, [.upperAccented, .box]) && has(i + 1, [.numeric, .law]) { return true }
        if has(i, [.lowerAccented, .upperAccented, .box, .currency, .endPunctuation]) && has(i + 1, .startPunctuation) && has(i + 2, .numeric) { return true }
        if has(i, [.lowerAccented, .upperAccented, .currency, .numeric, .box, .law]) && has(i + 1, .endPunctuation) && has(i + 2, .startPunctuation) { return true }
        if has(i, [.currency, .numeric, .box]) && has(i + 1, .startPunctuation) { return true }
        if asciiLower(i) && has(i + 1, .upperAccented) && has(i + 2, [.startPunctuation, .currency]) { return true }
        if c0.contains(.box) && has(i + 1, .kaomoji) { return true }
        if has(i, [.lowerAccented, .upperAccented, .currency, .numeric, .startPunctuation, .endPunctuation, .law]) && has(i + 1, .box) { return true }
        if c0.contains(.box) && has(i + 1, .endPunctuation) { return true }
        if has(i, [.lowerAccented, .upperAccented]) && has(i + 1, [.startPunctuation, .endPunctuation]) && i + 2 < n && PythonText.isWordCharacter(s[i + 2]) { return true }
        // The ligature œ when not followed by an unaccented Latin letter.
        if isOne(i, "Œœ") && i + 1 < n && !asciiLetter(i + 1) { return true }
        // Degree signs after capital letters.
        if c0.contains(.upperAccented) && isOne(i + 1, "°") { return true }
        // Common Windows-1252 2-character mojibake.
        if isOne(i, "ÂÃÎÐ") && (isOne(i + 1, "€œŠš¢£Ÿž\u{A0}\u{AD}®©°·»–—´") || has(i + 1, [.startPunctuation, .endPunctuation])) { return true }
        if isOne(i, "×") && isOne(i + 1, "²³") { return true }
        // Windows-1252 mojibake of Arabic words: four characters.
        let arabicFollower: Category = [.common, .currency, .bad, .numeric, .startPunctuation]
        if isOne(i, "ØÙ") && (has(i + 1, arabicFollower) || isOne(i + 1, "ŸŠ®°µ»"))
            && isOne(i + 2, "ØÙ") && (has(i + 3, arabicFollower) || isOne(i + 3, "ŸŠ®°µ»")) { return true }
        if isOne(i, "à") && isOne(i + 1, "²µ¹¼½¾") { return true }
        // MacRoman mojibake.
        if isOne(i, "√") && isOne(i + 1, "±∂†≠®™´≤≥¥µø") { return true }
        if isOne(i, "≈") && isOne(i + 1, "°¢") { return true }
        if isOne(i, "‚") && isOne(i + 1, "Ä") && isOne(i + 2, "ìîïòôúùû†°¢π") { return true }
        if isOne(i, "‚") && isOne(i + 1, "âó") && isOne(i + 2, "àä°ê") { return true }
        // Windows-1251 mojibake.
        if isOne(i, "в") && isOne(i + 1, "Ђ") { return true }
        if isOne(i, "ВГРС") && (has(i + 1, [.c1, .bad, .startPunctuation, .endPunctuation, .currency]) || isOne(i + 1, "°µ")) && isOne(i + 2, "ВГРС") { return true }
        if isOne(i, "Г") && isOne(i + 1, "ў") && isOne(i + 2, "В") && isOne(i + 3, "Ђ") && isOne(i + 4, "В")
            && i + 5 < n && s[i + 5] != "\n" && (asciiLetter(i + 6) || isOne(i + 6, " ")) { return true }
        // Windows-1252 encodings of 'à' and 'á', and of U+A0 itself.
        if isOne(i, "Ã") && isOne(i + 1, "\u{A0}¡") { return true }
        if asciiLower(i) {
            if isOne(i + 1, "ÃÂ") && isOne(i + 2, " ") { return true }
            if space(i + 1) && isOne(i + 2, "ÃÂ") && isOne(i + 3, " ") { return true }
        }
        if i == 0 && isOne(0, "ÃÂ") && isOne(1, " ") { return true }
        // Â before a character it encodes as itself.
        if (asciiLower(i) || (s[i] == "." || s[i] == "," || s[i] == "?" || s[i] == "!") || c0.contains(.endPunctuation)) && isOne(i + 1, "Â")
            && (isOne(i + 2, " ") || has(i + 2, [.startPunctuation, .endPunctuation])) { return true }
        // Windows-1253 mojibake.
        if isOne(i, "β") && isOne(i + 1, "€") && isOne(i + 2, "™\u{A0}Ά\u{AD}®°") { return true }
        if isOne(i, "ΒΓΞΟ") && (has(i + 1, [.c1, .bad, .startPunctuation, .endPunctuation, .currency]) || isOne(i + 1, "°")) && isOne(i + 2, "ΒΓΞΟ") { return true }
        // Windows-1257 mojibake.
        if isOne(i, "ā") && isOne(i + 1, "€") { return true }
        return false
    }
}
