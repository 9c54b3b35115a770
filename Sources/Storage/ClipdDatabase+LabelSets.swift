import Foundation
import Postgres
import ZeroShot

/// `label_sets` / `labels`: the zero-shot vocabularies (NOTIFY clipd_label_sets on change).
extension ClipdDatabase {
    /// Creates or replaces a label set with its templates and labels (in this order), atomically.
    public func putLabelSet(name: String, templates: [String], labels: [String], description: String? = nil) async throws {
        guard !name.isEmpty else { throw PostgresError(kind: .invalidInput, message: "label set name is empty") }
        guard !labels.isEmpty else { throw PostgresError(kind: .invalidInput, message: "label set \(name) needs at least one label") }
        if let duplicate = Dictionary(grouping: labels, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw PostgresError(kind: .invalidInput, message: "label \"\(duplicate)\" appears twice in label set \(name)")
        }
        try await connection.withTransaction { transaction in
            try await transaction.execute("""
                INSERT INTO label_sets (name, templates, description) VALUES (\(name), \(templates), \(description))
                ON CONFLICT (name) DO UPDATE SET templates = EXCLUDED.templates, description = EXCLUDED.description
                """)
            try await transaction.execute("DELETE FROM labels WHERE label_set = \(name)")
            try await transaction.execute("""
                INSERT INTO labels (label_set, label, position)
                SELECT \(name), label, position::integer FROM unnest(\(labels)) WITH ORDINALITY AS l(label, position)
                """)
        }
    }

    /// A label set as the classifier uses it; `version` changes on every edit.
    public func labelSet(named name: String) async throws -> LabelSet? {
        guard let row = try await connection.query("""
            SELECT s.templates, s.version,
                   coalesce((SELECT array_agg(l.label ORDER BY l.position) FROM labels l WHERE l.label_set = s.name), '{}'),
                   coalesce((SELECT array_agg(coalesce(l.threshold::text, '') ORDER BY l.position) FROM labels l WHERE l.label_set = s.name), '{}')
              FROM label_sets s WHERE s.name = \(name)
            """).first else { return nil }
        let thresholds = try row.decode([String].self, at: 3).map { $0.isEmpty ? nil : Float($0) }
        let labels = zip(try row.decode([String].self, at: 2), thresholds).map { LabelSet.Label($0, threshold: $1) }
        return LabelSet(name: name, version: String(try row.decode(Int.self, at: 1)), labels: labels,
                        templates: try row.decode([String].self, at: 0))
    }
}
