/// The parts of Python's `str` semantics that open_clip's cleaning relies on, over Unicode scalars.
enum PythonText {
    /// `str.isspace()`: the separators `str.split()` and `str.strip()` use.
    @inline(__always)
    static func isSpace(_ v: UInt32) -> Bool {
        if v < 0x80 { return (v >= 0x09 && v <= 0x0D) || (v >= 0x1C && v <= 0x20) }
        switch v {
        case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// `' '.join(text.split())` (which also strips both ends).
    static func collapseWhitespace(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        var pendingSpace = false
        for scalar in text {
            if isSpace(scalar.value) {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(scalar)
            }
        }
        return out
    }

    /// `str.lower()`: full lower-case mappings (İ → i + U+0307) and the Final_Sigma rule for Σ.
    static func lower(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count)
        for (index, scalar) in text.enumerated() {
            let v = scalar.value
            if v < 0x80 {
                out.append((v >= 0x41 && v <= 0x5A) ? Unicode.Scalar(UInt8(v + 0x20)) : scalar)
            } else if v == 0x3A3 {
                out.append(isFinalSigma(text, index) ? "\u{3C2}" : "\u{3C3}")
            } else if scalar.properties.changesWhenLowercased && knownToReferencePython(scalar) {
                out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return out
    }

    /// The reference ran Python 3.11, whose case tables are Unicode 14.0: characters assigned
    /// later have no case mapping there, even if this Swift runtime knows one.
    static let referenceUnicodeVersion = (major: 14, minor: 0)

    @inline(__always)
    static func knownToReferencePython(_ scalar: Unicode.Scalar) -> Bool {
        guard let age = scalar.properties.age else { return false }
        return (age.major, age.minor) <= referenceUnicodeVersion
    }

    /// Python's rule: a cased letter (skipping case-ignorables) before, and no cased letter
    /// (skipping case-ignorables) after.
    private static func isFinalSigma(_ text: [Unicode.Scalar], _ index: Int) -> Bool {
        var j = index - 1
        while j >= 0 && text[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && text[j].properties.isCased else { return false }
        var k = index + 1
        while k < text.count && text[k].properties.isCaseIgnorable { k += 1 }
        return k == text.count || !text[k].properties.isCased
    }

    /// `\d` of Python's `re` on str patterns: Unicode decimal digits.
    @inline(__always)
    static func isDecimalDigit(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x80 { return scalar.value >= 0x30 && scalar.value <= 0x39 }
        return scalar.properties.generalCategory == .decimalNumber
    }

    /// `\w` of Python's `re` on str patterns: alphanumerics and underscore.
    @inline(__always)
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || UnicodeClasses.isLetter(scalar.value) || UnicodeClasses.isNumber(scalar.value)
    }
}

/// `[\p{L}]` and `[\p{N}]` exactly as the `regex` module of the reference saw them (generated tables),
/// so the pre-split does not drift with the Unicode version of the Swift runtime.
enum UnicodeClasses {
    @inline(__always)
    static func isLetter(_ v: UInt32) -> Bool {
        if v < 0x80 { return (v | 0x20) >= 0x61 && (v | 0x20) <= 0x7A }
        return inRanges(letterRanges, v)
    }

    @inline(__always)
    static func isNumber(_ v: UInt32) -> Bool {
        if v < 0x80 { return v >= 0x30 && v <= 0x39 }
        return inRanges(numberRanges, v)
    }

    /// Matched by no alternative of the pre-split, so skipped: the regex module's `\s`, plus
    /// U+0345 (under IGNORECASE its case variant ι keeps it out of `[^\s\p{L}\p{N}]`).
    @inline(__always)
    static func isSkipped(_ v: UInt32) -> Bool {
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
        return inRanges(skippedRanges, v)
    }

    /// Binary search over closed ranges stored as [lo0, hi0, lo1, hi1, ...].
    static func inRanges(_ ranges: [UInt32], _ v: UInt32) -> Bool {
        var low = 0, high = ranges.count / 2
        while low < high {
            let mid = (low + high) / 2
            if ranges[2 * mid + 1] < v { low = mid + 1 } else { high = mid }
        }
        return low < ranges.count / 2 && ranges[2 * low] <= v
    }
}
