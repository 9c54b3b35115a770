import ArgumentParser

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
    ClipdCommand.exit(withError: error)
}
