import Foundation
import Postgres

/// clipd's tables (Schemas/postgres) as typed operations: the one home of clipd's SQL, used by
/// the daemon (as the pipeline's `PipelineStore`), the fine-tune job (as its `FinetuneRunStore`)
/// and the CLI alike. The operations are grouped by table in the `ClipdDatabase+*.swift` files.
public struct ClipdDatabase: Sendable {
    public let connection: PostgresConnection

    public init(connection: PostgresConnection) {
        self.connection = connection
    }

    /// `pgvector` or `array`: how this database stores vectors.
    public func vectorBackend() async throws -> String {
        try await connection.query("SELECT clipd_vector_backend()").first!.decode(String.self, at: 0)
    }
}
