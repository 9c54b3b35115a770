import Foundation

/// JSON output with keys in the order given and floats written as Swift prints them (the
/// shortest text that reads back as the same `Float`), so an embedding sent over HTTP parses to
/// exactly the vector clipd computed.
public indirect enum JSONOutput: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case double(Double)
    case float(Float)
    case bool(Bool)
    case null
    case array([JSONOutput])
    case object([(String, JSONOutput)])
    /// Text that is already valid JSON (a stored `jsonb` column).
    case raw(String)

    public static func == (a: JSONOutput, b: JSONOutput) -> Bool { a.rendered == b.rendered }

    public static func optional(_ text: String?) -> JSONOutput { text.map(JSONOutput.string) ?? .null }

    public var rendered: String {
        var out = ""
        render(into: &out)
        return out
    }

    func render(into out: inout String) {
        switch self {
        case .string(let s): Self.quote(s, into: &out)
        case .int(let n): out += String(n)
        case .double(let d): out += d.isFinite ? "\(d)" : "null"
        case .float(let f): out += f.isFinite ? "\(f)" : "null"
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .raw(let text): out += text
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.render(into: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out += "," }
                Self.quote(key, into: &out)
                out += ":"
                value.render(into: &out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            // "</" would end an inline <script>; U+2028/2029 end a JavaScript line.
            case "/": out += "\\/"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
