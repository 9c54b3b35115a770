import ArgumentParser
import Foundation
import Postgres
import Storage
import ZeroShot

struct LabelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "labels",
        abstract: "Manage zero-shot label sets stored in PostgreSQL (also editable in plain SQL).",
        subcommands: [Put.self, Show.self])

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "put",
            abstract: "Create or replace a label set: its prompt templates and labels, in one transaction.")

        @OptionGroup var database: DatabaseOptions

        @Option(help: "Prompt templates: openai (80 ImageNet prompts), simple (7), identity, or a FILE (one template with {} per line, or a JSON array).")
        var templates: String = "openai"

        @Option(help: "Free-text description stored with the set.")
        var description: String?

        @Argument(help: "Name of the label set.")
        var name: String

        @Argument(help: "The labels, in order.")
        var labels: [String] = []

        func validate() throws {
            guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("label set NAME is empty") }
            guard !labels.isEmpty else { throw ValidationError("give at least one LABEL after the label set name") }
            if let empty = labels.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                throw ValidationError("label \(empty + 1) is empty")
            }
            var seen = Set<String>()
            for label in labels where !seen.insert(label).inserted {
                throw ValidationError("label \"\(label)\" is given twice")
            }
        }

        func run() async throws {
            let resolvedTemplates: [String]
            do {
                resolvedTemplates = try PromptTemplates.resolve(templates)
            } catch {
                throw CommandFailure("\(error)")
            }
            let connection = try await database.connect(logger: commandLogger("clipd.labels"))
            do {
                try await ClipdDatabase(connection: connection).putLabelSet(
                    name: name, templates: resolvedTemplates, labels: labels, description: description)
                let stored = try await ClipdDatabase(connection: connection).labelSet(named: name)
                await connection.close()
                print("{\"label_set\":\(jsonString(name)),\"labels\":\(labels.count),\"templates\":\(resolvedTemplates.count),\"version\":\(stored?.version ?? "0")}")
            } catch {
                await connection.close()
                throw explainingMissingSchema(error)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a label set as JSON.")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "Name of the label set.")
        var name: String

        func run() async throws {
            let connection = try await database.connect(logger: commandLogger("clipd.labels"))
            let labelSet: LabelSet?
            do {
                labelSet = try await ClipdDatabase(connection: connection).labelSet(named: name)
                await connection.close()
            } catch {
                await connection.close()
                throw explainingMissingSchema(error)
            }
            guard let labelSet else { throw CommandFailure("no label set named \(name)") }
            let labels = labelSet.labels.map { jsonString($0.name) }.joined(separator: ",")
            let templates = labelSet.templates.map(jsonString).joined(separator: ",")
            print("{\"label_set\":\(jsonString(name)),\"version\":\(labelSet.version),\"labels\":[\(labels)],\"templates\":[\(templates)]}")
        }
    }
}
