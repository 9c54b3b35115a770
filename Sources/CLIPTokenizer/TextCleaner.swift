import Foundation

/// open_clip's caption cleaning (`_clean_lower`): `ftfy.fix_text` (ftfy 6.3.1 defaults), then
/// `html.unescape` twice, whitespace collapse (`' '.join(s.split())`) and `str.lower()`.
public enum TextCleaner {
    /// The full open_clip cleaning; the result is what the pre-split regex sees.
    public static func cleanLower(_ text: String) -> String {
        String(String.UnicodeScalarView(cleanLower(Array(text.unicodeScalars))))
    }

    static func cleanLower(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var scalars = fixText(text)
        scalars = HTMLEntities.pythonUnescape(HTMLEntities.pythonUnescape(scalars))
        scalars = PythonText.collapseWhitespace(scalars)
        return PythonText.lower(scalars)
    }

    /// `ftfy.fix_text`: fixes each line on its own; HTML unescaping is switched off from the first
    /// line that contains '<' onwards (the text is then treated as HTML).
    public static func fixText(_ text: String) -> String {
        String(String.UnicodeScalarView(fixText(Array(text.unicodeScalars))))
    }

    static func fixText(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        var unescapeHTML = true
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count && text[end] != "\n" { end += 1 }
            if end < text.count { end += 1 }  // the line keeps its '\n'
            let line = text[start..<end]
            if unescapeHTML && line.contains("<") { unescapeHTML = false }
            if line.allSatisfy(isPlainASCII) {
                out.append(contentsOf: line)  // no fixer can change it
            } else {
                out.append(contentsOf: fixSegment(Array(line), unescapeHTML: unescapeHTML))
            }
            start = end
        }
        return out
    }

    /// Printable ASCII, tab and line feed, without '&': nothing ftfy would touch.
    @inline(__always)
    static func isPlainASCII(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return (v >= 0x20 && v < 0x7F && v != 0x26) || v == 0x0A || v == 0x09
    }

    /// `ftfy.fix_and_explain` on one segment: all fixers in ftfy's order until nothing changes.
    static func fixSegment(_ segment: [Unicode.Scalar], unescapeHTML: Bool) -> [Unicode.Scalar] {
        var text = segment
        while true {
            let original = text
            if unescapeHTML { text = HTMLEntities.ftfyUnescape(text) }
            let isASCII = text.allSatisfy { $0.value < 0x80 }
            if !isASCII {
                text = MojibakeFixer.fixEncoding(text[...])
                text = mapScalars(text)
                text = uncurlQuotes(text)
            }
            text = fixLineBreaks(text)
            text = removeTerminalEscapes(text)
            text = removeControlCharacters(text)
            if !isASCII { text = normalizeNFC(text) }
            if text == original { return text }
        }
    }

    /// `fix_c1_controls`, `fix_latin_ligatures` and `fix_character_width` in one pass (they commute:
    /// none produces a character another one maps).
    static func mapScalars(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains(where: { $0.value >= 0x80 && ($0.value <= 0x9F || $0.value >= 0x132) }) else { return text }
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        for scalar in text {
            let v = scalar.value
            if v >= 0x80 && v <= 0x9F {
                out.append(Unicode.Scalar(MojibakeFixer.sloppyWindows1252.decode[Int(v)])!)
            } else if let ligature = latinLigatures[v] {
                out.append(contentsOf: ligature.unicodeScalars)
            } else if let narrow = widthMap[v] {
                out.append(contentsOf: narrow)
            } else {
                out.append(scalar)
            }
        }
        return out
    }

    /// ftfy's LIGATURES: Latin typographic ligatures and digraphs (other scripts are left alone).
    static let latinLigatures: [UInt32: String] = [
        0x132: "IJ", 0x133: "ij", 0x149: "\u{2BC}n",
        0x1F1: "DZ", 0x1F2: "Dz", 0x1F3: "dz", 0x1C4: "D\u{17D}", 0x1C5: "D\u{17E}", 0x1C6: "d\u{17E}",
        0x1C7: "LJ", 0x1C8: "Lj", 0x1C9: "lj", 0x1CA: "NJ", 0x1CB: "Nj", 0x1CC: "nj",
        0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "\u{17F}t", 0xFB06: "st",
    ]

    /// ftfy's WIDTH_MAP: U+3000 and the NFKC forms of U+FF01-U+FFEF.
    static let widthMap: [UInt32: [Unicode.Scalar]] = {
        var map = [UInt32: [Unicode.Scalar]]()
        for (codePoint, replacement) in widthMapPairs { map[codePoint] = Array(replacement.unicodeScalars) }
        return map
    }()

    /// `uncurl_quotes`: U+02BC and U+2018-U+201B become ', U+201C-U+201F become ".
    static func uncurlQuotes(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        text.map { scalar in
            switch scalar.value {
            case 0x2BC, 0x2018...0x201B: return "'"
            case 0x201C...0x201F: return "\""
            default: return scalar
            }
        }
    }

    /// `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 become '\n'.
    static func fixLineBreaks(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains(where: { $0 == "\r" || $0 == "\u{2028}" || $0 == "\u{2029}" || $0 == "\u{85}" }) else { return text }
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            let c = text[i]
            if c == "\r" && i + 1 < text.count && text[i + 1] == "\n" {
                out.append("\n")
                i += 2
                continue
            }
            out.append(c == "\r" || c == "\u{2028}" || c == "\u{2029}" || c == "\u{85}" ? "\n" : c)
            i += 1
        }
        return out
    }

    /// `remove_terminal_escapes`: ESC '[' (digits | ';')* letter.
    static func removeTerminalEscapes(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("\u{1B}") else { return text }
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            if text[i] == "\u{1B}" && i + 1 < text.count && text[i + 1] == "[" {
                var j = i + 2
                while j < text.count && (text[j] == ";" || PythonText.isDecimalDigit(text[j])) { j += 1 }
                if j < text.count && text[j].value < 0x80 && text[j].properties.isAlphabetic {
                    i = j + 1
                    continue
                }
            }
            out.append(text[i])
            i += 1
        }
        return out
    }

    /// `remove_control_chars`: C0 controls except \t \n \f \r, DEL, deprecated Arabic format
    /// characters, the BOM and interlinear annotation marks. U+200B and U+00AD stay.
    static func removeControlCharacters(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains(where: isRemovedControl) else { return text }
        return text.filter { !isRemovedControl($0) }
    }

    @inline(__always)
    static func isRemovedControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC: return true
        default: return false
        }
    }

    /// NFC; text below U+0300 is always already in NFC.
    static func normalizeNFC(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains(where: { $0.value >= 0x300 }) else { return text }
        let string = String(String.UnicodeScalarView(text))
        return Array(string.precomposedStringWithCanonicalMapping.unicodeScalars)
    }
}
