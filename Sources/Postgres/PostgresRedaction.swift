import Foundation

/// Hides PostgreSQL passwords in text meant for people: logs at every level, error messages,
/// a printed configuration. The one place that knows every form a password takes:
///
/// - a URI with a password: `postgres://user:secret@host/db` (percent-encoded or not);
/// - a URI query parameter: `postgres://host/db?password=secret`;
/// - a libpq `key=value` string: `host=h password=secret`, `password = 'se cret'`, `password=se\ cret`;
/// - secrets that arrive another way (`PGPASSWORD`, a password file), passed in as values.
///
/// Every password field is masked, and every occurrence of a known secret value anywhere in the
/// text (raw, percent-decoded or unescaped) is masked too, because libpq quotes pieces of a
/// connection string it cannot parse in its error messages.
public enum PostgresRedaction {
    /// What a hidden secret reads as.
    public static let mask = "***"

    /// `text` with the password fields of any connection string in it masked, and every
    /// occurrence of the secrets of `connection` (a URL or `key=value` string) and of `secrets`.
    public static func redact(_ text: String, connection: String? = nil, secrets: [String] = []) -> String {
        var known = Set(secrets)
        if let connection { known.formUnion(Self.secrets(in: connection)) }
        known.formUnion(Self.secrets(in: text))
        var result = maskFields(text)
        // Longest first, so a secret that contains another is masked whole.
        for secret in known.filter({ !$0.isEmpty && $0 != mask }).sorted(by: { $0.count > $1.count }) {
            result = result.replacingOccurrences(of: secret, with: mask)
        }
        return result
    }

    /// The password values a connection string carries, in every spelling that may be echoed:
    /// as written, percent-decoded (URIs) and unescaped (`key=value`).
    public static func secrets(in connection: String) -> [String] {
        var found: [String] = []
        func add(_ raw: Substring) {
            guard !raw.isEmpty else { return }
            found.append(String(raw))
            let decoded = percentDecoded(raw)
            if decoded != String(raw) { found.append(decoded) }
        }
        // URIs, wherever they start in the text.
        var searchStart = connection.startIndex
        while let scheme = connection.range(of: "postgres", options: [.caseInsensitive], range: searchStart..<connection.endIndex) {
            searchStart = scheme.upperBound
            var rest = connection[scheme.upperBound...]
            if rest.lowercased().hasPrefix("ql") { rest = rest.dropFirst(2) }
            guard rest.hasPrefix("://") else { continue }
            rest = rest.dropFirst(3)
            // libpq: the user information ends at the first '@' before any '/'.
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "@" } ?? rest.endIndex
            if authorityEnd < rest.endIndex, rest[authorityEnd] == "@" {
                let userInfo = rest[..<authorityEnd]
                if let colon = userInfo.firstIndex(of: ":") { add(userInfo[userInfo.index(after: colon)...]) }
            }
            if let question = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: question)...].prefix { !$0.isWhitespace && $0 != "#" }
                for item in query.split(separator: "&") {
                    let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    if parts.count == 2, percentDecoded(parts[0]) == "password" { add(parts[1]) }
                }
            }
        }
        // key=value pairs (libpq's conninfo syntax), wherever `password` is a keyword.
        for value in keywordValues(named: "password", in: connection) {
            add(value.raw)
            if value.unescaped != String(value.raw) { found.append(value.unescaped) }
        }
        return found
    }

    /// Masks password fields: a URI's user information, a `password=` query parameter and a
    /// `password=` keyword (quoted or not).
    static func maskFields(_ text: String) -> String {
        var result = text
        for (pattern, template) in fieldPatterns {
            result = pattern.stringByReplacingMatches(in: result, range: NSRange(result.startIndex..., in: result), withTemplate: template)
        }
        return result
    }

    nonisolated(unsafe) private static let fieldPatterns: [(NSRegularExpression, String)] = [
        // postgres://user:secret@ → postgres://user:***@ (the password runs to the '@', no '/').
        (try! NSRegularExpression(pattern: #"(postgres(?:ql)?://[^:@/\s]*:)[^@/]*@"#, options: [.caseInsensitive]), "$1***@"),
        // ?password=secret or &password=secret in a URI query.
        (try! NSRegularExpression(pattern: #"([?&]password=)[^&#\s]*"#, options: [.caseInsensitive]), "$1***"),
        // password=secret, password = 'se cret', password=se\ cret in a key=value string.
        (try! NSRegularExpression(pattern: #"(^|[\s"])password\s*=\s*(?:'(?:[^'\\]|\\.)*'?|(?:[^\s'\\]|\\.)+(?:\s+(?:[^\s=\\]|\\.)+(?=\s|$))*)"#, options: []), "$1password=***"),
    ]

    struct KeywordValue {
        var raw: Substring
        var unescaped: String
    }

    /// The values of `keyword` in a libpq `key=value` string: `key = value`, values quoted with
    /// single quotes or not, backslash escapes in both.
    static func keywordValues(named keyword: String, in text: String) -> [KeywordValue] {
        var values: [KeywordValue] = []
        let scalars = Array(text.unicodeScalars)
        let word = Array(keyword.unicodeScalars)
        var i = 0
        while i + word.count <= scalars.count {
            let atWordStart = i == 0 || scalars[i - 1].properties.isWhitespace || scalars[i - 1] == "\""
            guard atWordStart, Array(scalars[i..<(i + word.count)]) == word else { i += 1; continue }
            var j = i + word.count
            while j < scalars.count, scalars[j].properties.isWhitespace { j += 1 }
            guard j < scalars.count, scalars[j] == "=" else { i += 1; continue }
            j += 1
            while j < scalars.count, scalars[j].properties.isWhitespace { j += 1 }
            let start = j
            var unescaped = String.UnicodeScalarView()
            if j < scalars.count, scalars[j] == "'" {
                j += 1
                while j < scalars.count, scalars[j] != "'" {
                    if scalars[j] == "\\", j + 1 < scalars.count { j += 1 }
                    unescaped.append(scalars[j])
                    j += 1
                }
                if j < scalars.count { j += 1 }
            } else {
                while j < scalars.count, !scalars[j].properties.isWhitespace {
                    if scalars[j] == "\\", j + 1 < scalars.count { j += 1 }
                    unescaped.append(scalars[j])
                    j += 1
                }
            }
            let rawText = String(String.UnicodeScalarView(scalars[start..<j]))
            if !rawText.isEmpty { values.append(KeywordValue(raw: Substring(rawText), unescaped: String(unescaped))) }
            // An unquoted password with spaces (`password=se cret`): libpq stops at the space and
            // quotes the rest ("cret") in its error, so words without '=' that follow are secret too.
            if !rawText.hasPrefix("'") {
                while true {
                    var k = j
                    while k < scalars.count, scalars[k].properties.isWhitespace { k += 1 }
                    let wordStart = k
                    while k < scalars.count, !scalars[k].properties.isWhitespace, scalars[k] != "=" { k += 1 }
                    guard k > wordStart, k == scalars.count || scalars[k].properties.isWhitespace else { break }
                    let word = String(String.UnicodeScalarView(scalars[wordStart..<k]))
                    values.append(KeywordValue(raw: Substring(word), unescaped: word))
                    j = k
                }
            }
            i = max(j, i + 1)
        }
        return values
    }

    /// Percent-decoding that keeps malformed escapes as written (libpq would refuse them, and
    /// the text must still be masked).
    static func percentDecoded(_ text: Substring) -> String {
        if let decoded = String(text).removingPercentEncoding { return decoded }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
               let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
