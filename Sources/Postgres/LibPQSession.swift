import CLibPQ
import Foundation

/// The module's only contact with libpq: one `PGconn` and synchronous operations on it.
/// Not thread-safe; each owner confines it to one thread or serial queue.
final class LibPQSession: @unchecked Sendable {
    private var connection: OpaquePointer?

    /// Receives server NOTICE/WARNING messages (which libpq would otherwise print to stderr).
    private let noticeHandler: @Sendable (String) -> Void

    init(noticeHandler: @escaping @Sendable (String) -> Void = { _ in }) {
        self.noticeHandler = noticeHandler
    }

    deinit { finish() }

    /// True after `close()` until the next successful connect: a later reconnect is expected, not a failure.
    private(set) var isClosedByOwner = false

    var isConnected: Bool {
        guard let connection else { return false }
        return PQstatus(connection) == CONNECTION_OK
    }

    /// The server's process id for this session (what `pg_backend_pid()` returns there).
    var backendPID: Int32 { connection.map { PQbackendPID($0) } ?? 0 }

    /// The socket to poll for readability, or -1.
    var socket: Int32 { connection.map { PQsocket($0) } ?? -1 }

    /// Connects with `url` (a `postgres://` URI or a `key=value` string); values in the URL win
    /// over the defaults given here.
    func connect(url: String, applicationName: String, connectTimeoutSeconds: Int) throws {
        finish()
        let keywords = ["connect_timeout", "application_name", "client_encoding", "dbname"]
        let values = [String(connectTimeoutSeconds), applicationName, "UTF8", url]
        let conn = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let conn else {
            throw PostgresError(kind: .connection, message: "libpq could not allocate a connection")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            // libpq quotes the pieces of a connection string it cannot parse, which may be the password.
            let message = PostgresRedaction.redact(Self.trimmed(PQerrorMessage(conn)), connection: url)
            PQfinish(conn)
            throw PostgresError(kind: .connection, message: message.isEmpty ? "connection failed" : message)
        }
        connection = conn
        isClosedByOwner = false
        PQsetNoticeReceiver(conn, { context, result in
            guard let context, let result else { return }
            let session = Unmanaged<LibPQSession>.fromOpaque(context).takeUnretainedValue()
            session.noticeHandler(LibPQSession.trimmed(PQresultErrorMessage(result)))
        }, Unmanaged.passUnretained(self).toOpaque())
        // Text formats this module parses: ISO dates in UTC, shortest exact floats.
        _ = try executeScript("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1; SET bytea_output = 'hex'")
    }

    func close() {
        finish()
        isClosedByOwner = true
    }

    private func finish() {
        if let connection { PQfinish(connection) }
        connection = nil
    }

    private func requireConnection() throws -> OpaquePointer {
        guard let connection, PQstatus(connection) == CONNECTION_OK else {
            throw PostgresError(kind: .connection, message: "not connected")
        }
        return connection
    }

    /// One parameterised statement (`PQexecParams`), all values in text format.
    func execute(_ query: PostgresQuery) throws -> PostgresRows {
        let conn = try requireConnection()
        let binds = query.binds
        for (index, bind) in binds.enumerated() where bind.text?.utf8.contains(0) == true {
            throw PostgresError(kind: .invalidInput, message: "parameter $\(index + 1) contains a NUL character, which PostgreSQL text cannot store")
        }
        guard binds.count <= PostgresQuery.maximumBindCount else {
            throw PostgresError(kind: .invalidInput, message: "\(binds.count) parameters exceed the protocol limit of \(PostgresQuery.maximumBindCount)")
        }
        let types = binds.map { Oid($0.type.oid) }
        var values: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        values.reserveCapacity(binds.count)
        defer { values.forEach { free($0) } }
        for bind in binds {
            if let binary = bind.binary {
                let buffer = malloc(max(binary.count, 1))!
                binary.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: binary.count) }
                values.append(buffer.assumingMemoryBound(to: CChar.self))
                lengths.append(Int32(binary.count))
                formats.append(1)
            } else {
                values.append(bind.text.map { strdup($0)! })
                lengths.append(0)
                formats.append(0)
            }
        }
        let result = values.withUnsafeBufferPointer { valueBuffer in
            types.withUnsafeBufferPointer { typeBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    formats.withUnsafeBufferPointer { formatBuffer in
                        valueBuffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(valueBuffer.count, 1)) { valuePointers in
                            PQexecParams(conn, query.sql, Int32(binds.count), typeBuffer.baseAddress,
                                         binds.isEmpty ? nil : valuePointers, lengthBuffer.baseAddress, formatBuffer.baseAddress, 0)
                        }
                    }
                }
            }
        }
        return try consume(result, on: conn)
    }

    /// Several statements without parameters in one round trip (`PQexec`): for migration files
    /// and fixed session/transaction commands, never for values.
    @discardableResult
    func executeScript(_ sql: String) throws -> PostgresRows {
        let conn = try requireConnection()
        guard !sql.utf8.contains(0) else {
            throw PostgresError(kind: .invalidInput, message: "SQL text contains a NUL character")
        }
        let result = PQexec(conn, sql)
        // PQexec returns only the last result; earlier errors stop the script and are returned.
        return try consume(result, on: conn)
    }

    /// `COPY … FROM STDIN` in text or binary format (the statement must say which). `next`
    /// supplies one row per call until it returns nil.
    func copyIn(_ copyStatement: String, binary: Bool, next: () throws -> [PostgresBind]?) throws -> Int {
        let conn = try requireConnection()
        let start = PQexec(conn, copyStatement)
        let startStatus = PQresultStatus(start)
        guard startStatus == PGRES_COPY_IN else {
            _ = try consume(start, on: conn)
            throw PostgresError(kind: .invalidInput, message: "statement did not start COPY FROM STDIN")
        }
        PQclear(start)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        func flush() throws {
            guard !buffer.isEmpty else { return }
            let sent = buffer.withUnsafeBufferPointer { bytes in
                bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    PQputCopyData(conn, $0, Int32(bytes.count))
                }
            }
            guard sent == 1 else { throw connectionError(conn, "sending COPY data failed") }
            buffer.removeAll(keepingCapacity: true)
        }
        var failure: Error?
        do {
            if binary {
                // Signature, flags, header extension length.
                buffer += Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00] + [0, 0, 0, 0] + [0, 0, 0, 0]
            }
            while let row = try next() {
                if binary {
                    buffer += PostgresBinaryFormat.bigEndian(UInt16(row.count))
                    for field in row {
                        if let bytes = try PostgresBinaryFormat.copyField(field) {
                            buffer += PostgresBinaryFormat.bigEndian(UInt32(bytes.count))
                            buffer += bytes
                        } else {
                            buffer += [0xFF, 0xFF, 0xFF, 0xFF]
                        }
                    }
                    if buffer.count >= 1 << 20 { try flush() }
                    continue
                }
                for (index, field) in row.enumerated() {
                    if index > 0 { buffer.append(UInt8(ascii: "\t")) }
                    if field.text?.utf8.contains(0) == true {
                        throw PostgresError(kind: .invalidInput, message: "COPY field contains a NUL character")
                    }
                    PostgresTextFormat.appendCopyField(field.text, to: &buffer)
                }
                buffer.append(UInt8(ascii: "\n"))
                if buffer.count >= 1 << 20 { try flush() }
            }
            if binary { buffer += [0xFF, 0xFF] }  // end-of-data marker
            try flush()
        } catch {
            failure = error
        }
        let reason = failure.map { "\($0)" }
        guard PQputCopyEnd(conn, reason) == 1 else { throw connectionError(conn, "ending COPY failed") }
        var rowsCopied = 0
        var serverError: Error?
        while let result = PQgetResult(conn) {
            do {
                let rows = try consume(result, on: conn)
                rowsCopied = rows.affectedRows ?? rowsCopied
            } catch {
                serverError = serverError ?? error
            }
        }
        if let failure { throw failure }
        if let serverError { throw serverError }
        return rowsCopied
    }

    /// Reads pending input and returns queued notifications; throws when the connection is gone.
    func drainNotifications() throws -> [PostgresNotification] {
        let conn = try requireConnection()
        guard PQconsumeInput(conn) == 1 else { throw connectionError(conn, "reading from the server failed") }
        var notifications: [PostgresNotification] = []
        while let notify = PQnotifies(conn) {
            notifications.append(PostgresNotification(
                channel: String(cString: notify.pointee.relname),
                payload: String(cString: notify.pointee.extra),
                backendPID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        return notifications
    }

    // MARK: results

    private func consume(_ result: OpaquePointer?, on conn: OpaquePointer) throws -> PostgresRows {
        guard let result else { throw connectionError(conn, "no result from server") }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(columnNames: [], columnTypes: [], cells: [], affectedRows: affectedRows(result))
        case PGRES_TUPLES_OK, PGRES_SINGLE_TUPLE:
            let rowCount = Int(PQntuples(result))
            let columnCount = Int(PQnfields(result))
            var names: [String] = []
            var types: [PostgresType] = []
            for column in 0..<columnCount {
                names.append(String(cString: PQfname(result, Int32(column))))
                types.append(PostgresType(oid: UInt32(PQftype(result, Int32(column)))))
            }
            var cells: [[String?]] = []
            cells.reserveCapacity(rowCount)
            for row in 0..<rowCount {
                var values: [String?] = []
                values.reserveCapacity(columnCount)
                for column in 0..<columnCount {
                    if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                        values.append(nil)
                    } else {
                        values.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                    }
                }
                cells.append(values)
            }
            return PostgresRows(columnNames: names, columnTypes: types, cells: cells, affectedRows: rowCount)
        default:
            if PQstatus(conn) != CONNECTION_OK {
                throw connectionError(conn, "connection lost")
            }
            func field(_ code: UInt8) -> String? {
                PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
            }
            let message = field(UInt8(ascii: "M")) ?? Self.trimmed(PQresultErrorMessage(result))
            throw PostgresError(kind: .server, message: message, sqlState: field(UInt8(ascii: "C")),
                                detail: field(UInt8(ascii: "D")), hint: field(UInt8(ascii: "H")))
        }
    }

    private func affectedRows(_ result: OpaquePointer) -> Int? {
        guard let text = PQcmdTuples(result) else { return nil }
        return Int(String(cString: text))
    }

    private func connectionError(_ conn: OpaquePointer, _ context: String) -> PostgresError {
        let message = Self.trimmed(PQerrorMessage(conn))
        return PostgresError(kind: .connection, message: message.isEmpty ? context : "\(context): \(message)")
    }

    private static func trimmed(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        // libpq messages span lines with tab indentation; logs and CLI errors want one line.
        return String(cString: text).split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }
}

private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { body($0) }
    }
}
