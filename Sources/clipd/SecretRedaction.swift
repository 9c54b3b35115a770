import Foundation
import Logging
import Postgres

/// The database secrets this process knows: every connection string it was given, `PGPASSWORD`
/// and the passwords of the libpq password file. Every log line and every error message clipd
/// prints passes through `PostgresRedaction` with them, whatever the level.
enum ProcessSecrets {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var connections: [String] = []
    nonisolated(unsafe) private static var values: [String]?

    /// A connection string the process will use (flags, configuration, environment).
    static func add(connection: String) {
        lock.withLock { if !connections.contains(connection) { connections.append(connection) } }
    }

    /// `text` with every known secret masked.
    static func redact(_ text: String) -> String {
        let (connections, values) = lock.withLock { () -> ([String], [String]) in
            if Self.values == nil { Self.values = environmentSecrets(ProcessInfo.processInfo.environment) }
            return (Self.connections, Self.values!)
        }
        var secrets = values
        for connection in connections { secrets += PostgresRedaction.secrets(in: connection) }
        return PostgresRedaction.redact(text, secrets: secrets)
    }

    /// `PGPASSWORD`, the connection strings of `CLIPD_DATABASE_URL`, and the password field of
    /// every line of the password file (`PGPASSFILE`, else `~/.pgpass`).
    static func environmentSecrets(_ environment: [String: String]) -> [String] {
        var secrets: [String] = []
        if let password = environment["PGPASSWORD"], !password.isEmpty { secrets.append(password) }
        if let url = environment["CLIPD_DATABASE_URL"] { secrets += PostgresRedaction.secrets(in: url) }
        let passfile = environment["PGPASSFILE"] ?? environment["HOME"].map { $0 + "/.pgpass" }
        if let passfile, let data = FileManager.default.contents(atPath: passfile), data.count <= 1 << 20 {
            secrets += passwordFileSecrets(String(decoding: data, as: UTF8.self))
        }
        return secrets
    }

    /// The passwords of a libpq password file: `host:port:database:user:password` per line,
    /// `\:` and `\\` escaped, `#` comments.
    static func passwordFileSecrets(_ text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).compactMap { line -> String? in
            guard !line.hasPrefix("#") else { return nil }
            var fields: [String] = [""]
            var escaped = false
            for character in line {
                if escaped { fields[fields.count - 1].append(character); escaped = false }
                else if character == "\\" { escaped = true }
                else if character == ":" && fields.count < 5 { fields.append("") }
                else { fields[fields.count - 1].append(character) }
            }
            return fields.count == 5 && !fields[4].isEmpty ? fields[4] : nil
        }
    }
}

/// A log handler that masks database secrets in messages and metadata before `inner` writes them.
struct RedactingLogHandler: LogHandler {
    var inner: any LogHandler

    init(_ inner: any LogHandler) { self.inner = inner }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue.mapValues(Self.redact) }
    }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue.map(Self.redact) }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = "\(ProcessSecrets.redact(event.message.description))"
        event.metadata = event.metadata?.mapValues(Self.redact)
        inner.log(event: event)
    }

    static func redact(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        .string(ProcessSecrets.redact(value.description))
    }
}
