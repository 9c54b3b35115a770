import Kafka
import Pipeline

/// HELP lines for `/metrics`: swift-metrics has no help text, so the exposition the executable's
/// Prometheus registry emits gets a `# HELP` line before each family's `# TYPE` line, from the
/// descriptions each module keeps next to its metrics.
public enum MetricsHelp {
    /// Every metric clipd exports, with its description.
    public static var texts: [String: String] {
        PipelineMetrics.help.merging(KafkaStatistics.help) { first, _ in first }
    }

    /// `exposition` (Prometheus text format) with HELP lines added where a family has none.
    public static func annotate(_ exposition: String, texts: [String: String] = texts) -> String {
        var out = ""
        out.reserveCapacity(exposition.utf8.count + 64 * texts.count)
        var helped = Set<Substring>()
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# HELP "), let name = line.split(separator: " ").dropFirst(2).first { helped.insert(name) }
            if line.hasPrefix("# TYPE "), let name = line.split(separator: " ").dropFirst(2).first, !helped.contains(name),
               let help = texts[String(name)] {
                out += "# HELP \(name) \(escape(help))\n"
            }
            out += line
            out += "\n"
        }
        if out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }

    /// HELP text escapes backslash and line feed.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
