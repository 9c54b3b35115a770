import ArgumentParser
import Foundation

/// Runs the parsed command; an explicitly async function so the async `run()` is the one called.
func runParsed(_ command: inout ParsableCommand) async throws {
    if var asyncCommand = command as? AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        try command.run()
    }
}

BLASSelection.selectFastKernel()
do {
    var command = try ClipdCommand.parseAsRoot()
    try await runParsed(&command)
} catch {
    // Error messages pass through the same redaction as log lines: no database secret is printed.
    // Help, a clean exit and an explicit exit status (the command already said why) print as usual.
    if error is CleanExit || error is ExitCode || ClipdCommand.exitCode(for: error) == .success {
        ClipdCommand.exit(withError: error)
    }
    // Every failure is one line and exit status 1, a bad flag (which the argument parser would
    // answer with its usage text and status 64) included.
    let brief = ClipdCommand.message(for: error).split(whereSeparator: \.isNewline).joined(separator: " ")
    let message = ProcessSecrets.redact(brief.hasPrefix("Error:") ? brief : "Error: " + brief)
    FileHandle.standardError.write(Data((message + "\n").utf8))
    Foundation.exit(1)
}
