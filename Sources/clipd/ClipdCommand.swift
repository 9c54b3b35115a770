import ArgumentParser

struct ClipdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clipd",
        abstract: "CLIP embeddings and zero-shot tags for a Kafka stream, stored in PostgreSQL.",
        subcommands: [
            PublishCommand.self,
            DevBrokerCommand.self,
        ]
    )
}
