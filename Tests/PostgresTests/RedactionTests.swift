@testable import Postgres
import Testing

@Suite("Password redaction")
struct RedactionTests {
    /// Every connection-string form with its secret, and what must remain readable.
    static let forms: [(url: String, secret: String, kept: [String])] = [
        ("postgres://clipd:s3cret-pw@db.example:5432/clipd?sslmode=require", "s3cret-pw", ["clipd", "db.example", "sslmode=require"]),
        ("postgresql://clipd:s%65cret-pw@db/clipd", "secret-pw", ["db/clipd"]),
        ("postgres://clipd:p%40ss%2Fword@db/clipd", "p@ss/word", ["db/clipd"]),
        ("postgres://db/clipd?user=u&password=s3cret-pw&sslmode=disable", "s3cret-pw", ["sslmode=disable", "user=u"]),
        ("postgres://clipd:s3cret-pw@h1:5432,h2:5433/clipd", "s3cret-pw", ["h1", "h2"]),
        ("host=db password=s3cret-pw dbname=clipd", "s3cret-pw", ["host=db", "dbname=clipd"]),
        ("host=db password = s3cret-pw dbname=clipd", "s3cret-pw", ["host=db", "dbname=clipd"]),
        ("host=db password='se cret pw' dbname=clipd", "se cret pw", ["host=db", "dbname=clipd"]),
        ("host=db password='it\\'s-s3cret' dbname=clipd", "it's-s3cret", ["host=db", "dbname=clipd"]),
        ("host=db password=se\\ cret-pw dbname=clipd", "se cret-pw", ["host=db", "dbname=clipd"]),
        ("password='unterminated s3cret", "unterminated s3cret", []),
        // Unquoted with a space: libpq reads password=se and quotes "cret" in its error.
        ("host=db password=se cret-pw more dbname=clipd", "cret-pw", ["host=db", "dbname=clipd"]),
    ]

    @Test("no form of password survives redaction, and the rest stays readable", arguments: 0..<forms.count)
    func everyForm(_ index: Int) {
        let form = Self.forms[index]
        let redacted = PostgresRedaction.redact(form.url)
        #expect(!redacted.contains(form.secret), "\(redacted)")
        for piece in form.secret.split(separator: " ") where piece.count >= 3 {
            #expect(!redacted.contains(piece), "\(redacted) shows \(piece)")
        }
        #expect(!redacted.contains("s3cret"), "\(redacted)")
        for kept in form.kept { #expect(redacted.contains(kept), "\(redacted) lost \(kept)") }
        #expect(PostgresConfiguration(url: form.url).redactedURL == redacted)
    }

    @Test("a secret quoted back in an error message is masked, in every spelling")
    func echoedSecrets() {
        let uri = "postgres://u:s%65cret@db/clipd"
        #expect(PostgresRedaction.secrets(in: uri).contains("secret"))
        #expect(PostgresRedaction.secrets(in: uri).contains("s%65cret"))
        let message = "invalid percent-encoded token: \"s%65cret\"; password \"secret\" refused"
        let redacted = PostgresRedaction.redact(message, connection: uri)
        #expect(!redacted.contains("s%65cret") && !redacted.contains("secret"), "\(redacted)")
        let quoted = "host=db password='se cret'"
        #expect(PostgresConfiguration(url: quoted).redact("could not parse se cret") == "could not parse ***")
        let unquoted = "host=db password=s3 cret4 dbname=clipd"
        let libpq = "missing \"=\" after \"cret4\" in connection info string"
        #expect(PostgresRedaction.redact(libpq, connection: unquoted) == "missing \"=\" after \"***\" in connection info string")
    }

    @Test("secrets given as values (PGPASSWORD, a password file) are masked anywhere")
    func givenSecrets() {
        let redacted = PostgresRedaction.redact("FATAL: password authentication failed; tried hunter2-pw", secrets: ["hunter2-pw"])
        #expect(redacted == "FATAL: password authentication failed; tried ***")
    }

    @Test("text without secrets is unchanged")
    func unchanged() {
        for text in ["postgres://db:5432/clipd", "host=db dbname=clipd user=u", "connection refused", "passwords=none of this"] {
            #expect(PostgresRedaction.redact(text) == text)
        }
    }
}

@Suite("Error classification")
struct ErrorClassificationTests {
    @Test("retriable: outages, failover, exhausted resources; not: what the data causes")
    func retriable() {
        for state in ["25006", "53100", "53200", "53300", "55P03", "57P01", "57P02", "57P03", "40001", "40P01", "08006", "58030"] {
            #expect(PostgresError(kind: .server, message: "", sqlState: state).isRetriable, "\(state)")
            #expect(!PostgresError(kind: .server, message: "", sqlState: state).isDataRejection, "\(state)")
        }
    }

    @Test("data rejections: data exceptions, constraints, size limits, trigger exceptions, unsendable text")
    func dataRejections() {
        for state in ["54000", "54001", "22001", "22P02", "22P05", "23505", "23514", "23503", "P0001"] {
            let error = PostgresError(kind: .server, message: "", sqlState: state)
            #expect(error.isDataRejection, "\(state)")
            #expect(!error.isRetriable, "\(state)")
        }
        #expect(PostgresError(kind: .invalidInput, message: "text contains NUL").isDataRejection)
        // Nothing a record causes: never isolate records for these.
        for state in ["42501", "42P01", "3F000", "XX000"] {
            #expect(!PostgresError(kind: .server, message: "", sqlState: state).isDataRejection, "\(state)")
        }
        #expect(!PostgresError(kind: .connection, message: "lost").isDataRejection)
    }
}
