import ArgumentParser


struct ClipdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clipd",
        abstract: "CLIP embeddings and zero-shot tags for a Kafka stream, stored in PostgreSQL.",
        subcommands: [
            EmbedCommand.self,
            BenchCommand.self,
            BLASCheckCommand.self,
            ClassifyCommand.self,
            ModelCommand.self,
            RunCommand.self,
            ServeCommand.self,
            SearchCommand.self,
            FinetuneCommand.self,
            TokenizeCommand.self,
            FetchCommand.self,
            PreprocessCommand.self,
            MigrateCommand.self,
            LabelsCommand.self,
            PublishCommand.self,
            DevBrokerCommand.self,
            SynthCommand.self,
            DeadLetterCommand.self,
        ]
    )
}
