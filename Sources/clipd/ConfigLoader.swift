import Foundation
import Daemon

/// Builds the daemon configuration from defaults < JSON file < CLIPD_* environment < flags.
enum ConfigLoader {
    /// `overrides` are flag values by config key (already typed as JSON values).
    static func load(file: String?, environment: [String: String], overrides: [String: Any]) throws -> DaemonConfig {
        let defaults = try JSONSerialization.jsonObject(with: JSONEncoder().encode(DaemonConfig())) as! [String: Any]
        var merged = defaults
        let keys = Set(DaemonConfig.keys)
        let kinds = DaemonConfig.kinds

        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw CommandFailure("cannot read config file \(file)") }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw CommandFailure("config file \(file) is not a JSON object")
            }
            if let unknown = object.keys.filter({ !keys.contains($0) }).sorted().first {
                throw CommandFailure("config file \(file): unknown key \"\(unknown)\" (known: \(DaemonConfig.keys.joined(separator: ", ")))")
            }
            for (k, v) in object { merged[k] = v }
        }
        for key in DaemonConfig.keys {
            let variable = "CLIPD_" + key.uppercased()
            guard let raw = environment[variable] else { continue }
            merged[key] = try parse(raw, kind: kinds[key]!, name: variable)
        }
        for (k, v) in overrides { merged[k] = v }
        let config: DaemonConfig
        do {
            config = try JSONDecoder().decode(DaemonConfig.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw CommandFailure("configuration key \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        }
        if let problem = config.problem() { throw CommandFailure("invalid configuration: \(problem)") }
        return config
    }

    static func parse(_ raw: String, kind: DaemonConfig.ValueKind, name: String) throws -> Any {
        switch kind {
        case .stringList:
            return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        case .bool:
            switch raw.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw CommandFailure("\(name)=\(raw) is not a boolean (true/false/1/0)")
            }
        case .double:
            guard let d = Double(raw) else { throw CommandFailure("\(name)=\(raw) is not a number") }
            return d
        case .int:
            guard let i = Int(raw) else { throw CommandFailure("\(name)=\(raw) is not an integer") }
            return i
        case .string, .optionalString:
            return raw
        }
    }

    /// The effective configuration as JSON (for `--print-config`), the database password hidden.
    static func describe(_ config: DaemonConfig) -> String {
        var redacted = config
        if var components = URLComponents(string: config.databaseURL), components.password != nil {
            components.password = "***"
            redacted.databaseURL = components.string ?? config.databaseURL
        }
        let data = try! JSONEncoder.sorted.encode(redacted)
        return String(decoding: data, as: UTF8.self)
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
