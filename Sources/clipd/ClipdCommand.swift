import ArgumentParser

@main
struct ClipdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clipd",
        abstract: "CLIP embeddings and zero-shot tags for a Kafka stream, stored in PostgreSQL.",
        subcommands: [MigrateCommand.self, LabelsCommand.self]
    )
}
