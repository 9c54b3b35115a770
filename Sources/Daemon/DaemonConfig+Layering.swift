import Foundation
import Postgres

/// The daemon's configuration layered from defaults < JSON file < `CLIPD_*` environment < flags.
/// The executable reads the file and the environment and hands them in; this only merges and
/// checks them. Problems are `DaemonError`s naming the key or variable.
extension DaemonConfig {
    /// `file` is the configuration file's path and contents; `overrides` are flag values by
    /// config key (already typed as JSON values).
    public static func layered(file: (path: String, contents: Data?)?, environment: [String: String],
                               overrides: [String: Any]) throws -> DaemonConfig {
        let defaults = try JSONSerialization.jsonObject(with: JSONEncoder().encode(DaemonConfig())) as! [String: Any]
        var merged = defaults
        let keys = Set(DaemonConfig.keys)
        let kinds = DaemonConfig.kinds

        if let (file, contents) = file {
            guard let data = contents else { throw DaemonError("cannot read config file \(file)") }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw DaemonError("config file \(file) is not a JSON object")
            }
            if let unknown = object.keys.filter({ !keys.contains($0) }).sorted().first {
                throw DaemonError("config file \(file): unknown key \"\(unknown)\" (known: \(DaemonConfig.keys.joined(separator: ", ")))")
            }
            for (k, v) in object { merged[k] = v }
        }
        for key in DaemonConfig.keys {
            let variable = "CLIPD_" + key.uppercased()
            guard let raw = environment[variable] else { continue }
            merged[key] = try parse(raw, kind: kinds[key]!, name: variable)
        }
        for (k, v) in overrides { merged[k] = v }
        for (k, v) in merged.sorted(by: { $0.key < $1.key }) {
            if let number = v as? Double, !number.isFinite { throw DaemonError("\(k) must be a finite number, got \(number)") }
        }
        let config: DaemonConfig
        do {
            config = try JSONDecoder().decode(DaemonConfig.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw DaemonError("configuration key \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        }
        if let problem = config.problem() ?? config.rangeProblem() { throw DaemonError("invalid configuration: \(problem)") }
        return config
    }

    /// A numeric setting outside its sane range, or a number that is not finite, or nil. The
    /// maxima are far above real use and keep threads, allocations and durations bounded.
    public func rangeProblem() -> String? {
        let integers: [(String, Int, ClosedRange<Int>)] = [
            ("top_k", topK, 1...10_000),
            ("batch_latency_ms", batchLatencyMs, 0...3_600_000),
            ("workers", workers, 0...1024),
            ("threads", threads, 0...1024),
            ("max_in_flight", maxInFlight, 1...1_000_000),
            ("fetch_max_bytes", fetchMaxBytes, 1...(1 << 30)),
            ("fetch_retries", fetchRetries, 0...100),
            ("max_image_pixels", maxImagePixels, 1...(1 << 31)),
        ]
        for (key, value, range) in integers where !range.contains(value) {
            return "\(key) must be within \(range.lowerBound)...\(range.upperBound), got \(value)"
        }
        let seconds: [(String, Double, Double)] = [
            ("drain_timeout_seconds", drainTimeoutSeconds, 86_400),
            ("progress_interval_seconds", progressIntervalSeconds, 86_400),
            ("fetch_timeout_seconds", fetchTimeoutSeconds, 3600),
            ("fetch_connect_timeout_seconds", fetchConnectTimeoutSeconds, 3600),
        ]
        for (key, value, maximum) in seconds where !(value.isFinite && value > 0 && value <= maximum) {
            return "\(key) must be a number of seconds above 0 and at most \(Int(maximum)), got \(value)"
        }
        return nil
    }

    static func parse(_ raw: String, kind: ValueKind, name: String) throws -> Any {
        switch kind {
        case .stringList:
            return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        case .bool:
            switch raw.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw DaemonError("\(name)=\(raw) is not a boolean (true/false/1/0)")
            }
        case .double:
            guard let d = Double(raw) else { throw DaemonError("\(name)=\(raw) is not a number") }
            guard d.isFinite else { throw DaemonError("\(name)=\(raw) is not a finite number") }
            return d
        case .int:
            guard let i = Int(raw) else { throw DaemonError("\(name)=\(raw) is not an integer") }
            return i
        case .headerMap:
            guard let object = (try? JSONSerialization.jsonObject(with: Data(raw.utf8))) as? [String: [String: String]] else {
                throw DaemonError("\(name) is not a JSON object of host → {header: value}")
            }
            return object
        case .string, .optionalString:
            return raw
        }
    }

    /// The effective configuration as JSON (for `--print-config`), the database password hidden.
    public var redactedJSON: String {
        var redacted = self
        redacted.databaseURL = PostgresRedaction.redact(databaseURL)
        redacted.fetchHostHeaders = fetchHostHeaders.mapValues { $0.mapValues { _ in "***" } }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(redacted), as: UTF8.self)
    }
}
