import Logging
import Postgres
import Storage

/// A PostgreSQL connection opened on first use (the HTTP API's): a daemon whose API is never
/// called holds no extra connection and no thread for it. A failed connect is reported to the
/// caller and tried again on the next use.
actor OnDemandConnection {
    let configuration: PostgresConfiguration
    let logger: Logger
    private var connection: PostgresConnection?
    private var closed = false

    init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    func database() async throws -> ClipdDatabase {
        if let connection { return ClipdDatabase(connection: connection) }
        guard !closed else { throw DaemonError("the daemon is stopping") }
        let opened = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        if closed {
            await opened.close()
            throw DaemonError("the daemon is stopping")
        }
        connection = opened
        return ClipdDatabase(connection: opened)
    }

    func close() async {
        closed = true
        await connection?.close()
        connection = nil
    }
}
