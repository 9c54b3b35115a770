import ClipdAPI
import Kafka
import Pipeline

/// HELP lines for `/metrics`: swift-metrics has no help text, so the exposition the executable's
/// Prometheus registry emits gets a `# HELP` line before each family's `# TYPE` line, from the
/// descriptions each module keeps next to its metrics.
public enum MetricsHelp {
    /// Every metric clipd exports, with its description.
    public static var texts: [String: String] {
        PipelineMetrics.help.merging(KafkaStatistics.help) { first, _ in first }.merging(daemon) { first, _ in first }
            .merging(APIService.metricsHelp) { first, _ in first }
    }

    /// The Daemon module's own metrics (backfill, model loading).
    static let daemon: [String: String] = [
        "clipd_backfill_records_covered": "Stored records that have an embedding of this model version (re-embedding progress).",
        "clipd_backfill_records_to_cover": "Stored records a model version's re-embedding must cover.",
        "clipd_backfill_coverage_ratio": "Covered over stored records for a model version (search switches to it at search_coverage_threshold).",
        "clipd_backfill_records_per_second": "Re-embedding rate of a model version, all daemons together.",
        "clipd_backfill_eta_seconds": "Estimated seconds until a model version's re-embedding is complete.",
        "clipd_backfill_records_written_total": "Records this daemon re-embedded for a newly activated version.",
        "clipd_search_model_version_id": "Id of the model version search answers from (the newest with complete coverage).",
        "clipd_model_load_failures_total": "Activated model versions whose checkpoint could not be loaded (the daemon kept its model).",
        "clipd_model_load_failing": "1 while the active model version cannot be loaded and the daemon runs an older one, else 0.",
    ]

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
