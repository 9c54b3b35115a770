/// A SQL statement and its parameters. Built with string interpolation, every interpolated value
/// becomes a `$n` parameter, so values can never be spliced into the SQL text:
///
///     try await connection.query("SELECT id FROM items WHERE caption = \(caption) LIMIT \(limit)")
///
/// The explicit form takes SQL that must be a literal in the source:
///
///     try await connection.query(PostgresQuery("SELECT $1::int + $2", binds: [1, 2]))
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var sql: String
    public private(set) var binds: [PostgresBind]

    /// SQL written as a literal in the source, with `$1…$n` placeholders for `binds`.
    public init(_ sql: StaticString, binds: [any PostgresEncodable] = []) {
        self.sql = sql.description
        self.binds = binds.map(\.postgresBind)
    }

    public init(stringLiteral value: StaticString) {
        self.sql = value.description
        self.binds = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
    }

    /// For SQL assembled inside this module from literals and quoted identifiers only.
    init(assembledSQL sql: String, binds: [PostgresBind]) {
        self.sql = sql
        self.binds = binds
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [PostgresBind] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        public mutating func appendLiteral(_ literal: StaticString) {
            sql += literal.description
        }

        /// A value: sent as the next `$n` parameter.
        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            binds.append(value.postgresBind)
            sql += "$\(binds.count)"
        }

        /// A value that may be NULL.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            binds.append(value?.postgresBind ?? .null())
            sql += "$\(binds.count)"
        }

        /// A table or column name, double-quoted so it is always read as one identifier.
        public mutating func appendInterpolation(identifier: String) {
            sql += PostgresTextFormat.quoteIdentifier(identifier)
        }

        /// Names separated by commas (a column list), each double-quoted.
        public mutating func appendInterpolation(identifiers: [String]) {
            sql += identifiers.map(PostgresTextFormat.quoteIdentifier).joined(separator: ", ")
        }

        /// Another query's SQL spliced in (a shared clause); its `$n` placeholders are renumbered
        /// after the binds already present.
        public mutating func appendInterpolation(fragment: PostgresQuery) {
            let offset = binds.count
            binds += fragment.binds
            guard offset > 0, !fragment.binds.isEmpty else { sql += fragment.sql; return }
            var out = ""
            var scalars = fragment.sql.unicodeScalars.makeIterator()
            var pending: Unicode.Scalar? = scalars.next()
            while let c = pending {
                pending = scalars.next()
                guard c == "$", let first = pending, ("0"..."9").contains(first) else { out.unicodeScalars.append(c); continue }
                var digits = ""
                while let d = pending, ("0"..."9").contains(d) { digits.unicodeScalars.append(d); pending = scalars.next() }
                out += "$\(Int(digits)! + offset)"
            }
            sql += out
        }
    }

    /// `INSERT INTO table (columns) VALUES ($1,…),(…) suffix`: one statement for many rows.
    /// `suffix` (e.g. an `ON CONFLICT … DO UPDATE` clause) must not carry binds of its own.
    public static func multiRowInsert(
        into table: String, columns: [String], rows: [[PostgresBind]], suffix: PostgresQuery = ""
    ) throws -> PostgresQuery {
        guard !rows.isEmpty, !columns.isEmpty else {
            throw PostgresError(kind: .invalidInput, message: "multi-row insert into \(table) needs at least one row and one column")
        }
        guard suffix.binds.isEmpty else {
            throw PostgresError(kind: .invalidInput, message: "multi-row insert suffix must not have parameters")
        }
        var sql = "INSERT INTO \(PostgresTextFormat.quoteIdentifier(table)) ("
        sql += columns.map(PostgresTextFormat.quoteIdentifier).joined(separator: ", ")
        sql += ") VALUES "
        var binds: [PostgresBind] = []
        binds.reserveCapacity(rows.count * columns.count)
        for (rowIndex, row) in rows.enumerated() {
            guard row.count == columns.count else {
                throw PostgresError(kind: .invalidInput, message: "row \(rowIndex) has \(row.count) values for \(columns.count) columns")
            }
            sql += rowIndex == 0 ? "(" : ", ("
            for (columnIndex, value) in row.enumerated() {
                binds.append(value)
                sql += columnIndex == 0 ? "$\(binds.count)" : ", $\(binds.count)"
            }
            sql += ")"
        }
        guard binds.count <= maximumBindCount else {
            throw PostgresError(kind: .invalidInput, message: "multi-row insert has \(binds.count) parameters; the protocol allows \(maximumBindCount)")
        }
        if !suffix.sql.isEmpty { sql += " " + suffix.sql }
        return PostgresQuery(assembledSQL: sql, binds: binds)
    }

    /// The wire protocol counts parameters in 16 bits.
    public static let maximumBindCount = 65_535

    public var description: String { sql }
}
