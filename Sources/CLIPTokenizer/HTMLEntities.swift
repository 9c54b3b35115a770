/// HTML character references, as Python's `html.unescape` and ftfy's `unescape_html` resolve them.
enum HTMLEntities {
    /// Python's `html.entities.html5`: names with their `;` where HTML5 has one, plus the legacy
    /// names that are also valid without it.
    static let html5: [String: [Unicode.Scalar]] = parse(html5EntityLines)

    /// ftfy's table: the `;`-terminated HTML5 names, plus upper-cased variants (`&EACUTE;` → É).
    static let ftfy: [String: [Unicode.Scalar]] = {
        var table = html5.filter { $0.key.hasSuffix(";") }
        for (name, value) in parse(ftfyUppercaseEntityLines) { table[name] = value }
        return table
    }()

    private static func parse(_ lines: String) -> [String: [Unicode.Scalar]] {
        var table = [String: [Unicode.Scalar]]()
        for line in lines.split(separator: "\n") {
            let fields = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            table[String(fields[0])] = Array(fields[1].unicodeScalars)
        }
        return table
    }

    /// Python's `html.unescape`: `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`.
    static func pythonUnescape(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("&") else { return text }
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        var i = 0
        let n = text.count
        while i < n {
            let c = text[i]
            guard c == "&", i + 1 < n else {
                out.append(c)
                i += 1
                continue
            }
            if let (consumed, replacement) = numericReference(text, i + 1) {
                out.append(contentsOf: replacement)
                i += 1 + consumed
                continue
            }
            // Named: up to 32 characters outside the stop set, then an optional ';'.
            var j = i + 1
            while j < n && j - (i + 1) < 32 && !isNameStop(text[j]) { j += 1 }
            if j == i + 1 {
                out.append(c)
                i += 1
                continue
            }
            if j < n && text[j] == ";" { j += 1 }
            let name = text[(i + 1)..<j]
            if let value = html5[String(String.UnicodeScalarView(name))] {
                out.append(contentsOf: value)
                i = j
                continue
            }
            // The longest known prefix of at least two characters wins; the rest stays literal.
            var matched = false
            var length = name.count - 1
            while length > 1 {
                let prefix = name.prefix(length)
                if let value = html5[String(String.UnicodeScalarView(prefix))] {
                    out.append(contentsOf: value)
                    out.append(contentsOf: name.dropFirst(length))
                    matched = true
                    break
                }
                length -= 1
            }
            if !matched {
                out.append("&")
                out.append(contentsOf: name)
            }
            i = j
        }
        return out
    }

    @inline(__always)
    private static func isNameStop(_ c: Unicode.Scalar) -> Bool {
        c == "\t" || c == "\n" || c == "\u{0C}" || c == " " || c == "<" || c == "&" || c == "#" || c == ";"
    }

    /// Parses `#123;?` or `#x1F;?` at `start` (just after '&'); returns the characters consumed
    /// after '&' and the replacement, with Python's rules for invalid code points.
    private static func numericReference(_ text: [Unicode.Scalar], _ start: Int) -> (Int, [Unicode.Scalar])? {
        let n = text.count
        guard start < n, text[start] == "#" else { return nil }
        var j = start + 1
        var hex = false
        if j < n && (text[j] == "x" || text[j] == "X") {
            hex = true
            j += 1
        }
        let digitsStart = j
        var value: UInt64 = 0
        while j < n, let d = digitValue(text[j], hex: hex) {
            value = min(value * (hex ? 16 : 10) + UInt64(d), 0x7FFF_FFFF)  // saturate: anything this big is > U+10FFFF
            j += 1
        }
        guard j > digitsStart else { return nil }
        if j < n && text[j] == ";" { j += 1 }
        return (j - start, pythonCharref(UInt32(value)))
    }

    @inline(__always)
    private static func digitValue(_ c: Unicode.Scalar, hex: Bool) -> UInt32? {
        let v = c.value
        if v >= 0x30 && v <= 0x39 { return v - 0x30 }
        if hex {
            if v >= 0x61 && v <= 0x66 { return v - 0x61 + 10 }
            if v >= 0x41 && v <= 0x46 { return v - 0x41 + 10 }
        }
        return nil
    }

    private static func pythonCharref(_ number: UInt32) -> [Unicode.Scalar] {
        if let replacement = invalidCharrefReplacements[number] { return Array(replacement.unicodeScalars) }
        if (0xD800...0xDFFF).contains(number) || number > 0x10FFFF { return ["\u{FFFD}"] }
        if isInvalidCodePoint(number) { return [] }
        return [Unicode.Scalar(number)!]
    }

    /// Python's `html._invalid_codepoints`.
    private static func isInvalidCodePoint(_ v: UInt32) -> Bool {
        switch v {
        case 0x1...0x8, 0xB, 0xE...0x1F, 0x7F...0x9F, 0xFDD0...0xFDEF: return true
        default: return (v & 0xFFFE) == 0xFFFE
        }
    }

    /// ftfy's `unescape_html`: only `&#?[0-9A-Za-z]{1,24};` is considered; names come from ftfy's
    /// table, numbers from Python's rules (kept literal if Python would only decode part of it).
    static func ftfyUnescape(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("&") else { return text }
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        var i = 0
        let n = text.count
        while i < n {
            let c = text[i]
            guard c == "&" else {
                out.append(c)
                i += 1
                continue
            }
            var j = i + 1
            let numeric = j < n && text[j] == "#"
            if numeric { j += 1 }
            let bodyStart = j
            while j < n && j - bodyStart < 24 && isASCIIAlphanumeric(text[j]) { j += 1 }
            guard j > bodyStart, j < n, text[j] == ";" else {
                out.append(c)
                i += 1
                continue
            }
            let reference = Array(text[i...j])
            let name = String(String.UnicodeScalarView(text[(i + 1)...j]))
            if let value = ftfy[name] {
                out.append(contentsOf: value)
            } else if numeric {
                let unescaped = pythonUnescape(reference)
                out.append(contentsOf: unescaped.contains(";") ? reference : unescaped)
            } else {
                out.append(contentsOf: reference)
            }
            i = j + 1
        }
        return out
    }

    @inline(__always)
    private static func isASCIIAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A)
    }
}
