import Foundation
import Testing
import ZeroShot

@Suite("Prompt templates")
struct PromptTemplatesTests {
    @Test("OpenAI's ImageNet set has 80 distinct templates, the simple set 7, all with one placeholder")
    func builtInSets() throws {
        #expect(PromptTemplates.openAIImageNet.count == 80)
        #expect(Set(PromptTemplates.openAIImageNet).count == 80)
        #expect(PromptTemplates.simple.count == 7)
        #expect(Set(PromptTemplates.simple).isSubset(of: Set(PromptTemplates.openAIImageNet)))
        for template in PromptTemplates.openAIImageNet + PromptTemplates.simple {
            #expect(template.components(separatedBy: "{}").count == 2, "\(template)")
        }
        #expect(try PromptTemplates.resolve("OpenAI") == PromptTemplates.openAIImageNet)
        #expect(PromptTemplates.prompts(for: "bicycle", templates: ["a photo of a {}.", "{}"]) == ["a photo of a bicycle.", "bicycle"])
    }

    @Test("template files: lines or a JSON array; errors name the problem")
    func files() throws {
        let directory = FileManager.default.temporaryDirectory
        let lines = directory.appendingPathComponent("templates-\(UUID()).txt")
        try "# product shots\na studio photo of a {}.\n\na {} on a white background.\n".write(to: lines, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: lines) }
        #expect(try PromptTemplates.resolve(lines.path) == ["a studio photo of a {}.", "a {} on a white background."])

        let json = directory.appendingPathComponent("templates-\(UUID()).json")
        try "[\"a {}\", \"the {}\"]".write(to: json, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: json) }
        #expect(try PromptTemplates.resolve(json.path) == ["a {}", "the {}"])

        let bad = directory.appendingPathComponent("templates-\(UUID()).txt")
        try "a photo\n".write(to: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: bad) }
        #expect { try PromptTemplates.resolve(bad.path) } throws: { "\($0)".contains("no {} placeholder") }
        #expect { try PromptTemplates.resolve("/no/such/file") } throws: { "\($0)".contains("/no/such/file") }
    }
}
