import Foundation

/// Prompt templates for zero-shot classification: each `{}` is replaced by a label, the label's
/// text embedding is the normalised mean over its prompts (CLIP's prompt ensembling).
///
/// The CLI (`clipd classify`, `clipd labels put`), the pipeline's tagger and the fine-tune job's
/// canary share this one definition.
public enum PromptTemplates {
    /// The 80 ImageNet prompts from OpenAI's CLIP paper ("Prompt Engineering for ImageNet").
    public static let openAIImageNet: [String] = [
        "a bad photo of a {}.",
        "a photo of many {}.",
        "a sculpture of a {}.",
        "a photo of the hard to see {}.",
        "a low resolution photo of the {}.",
        "a rendering of a {}.",
        "graffiti of a {}.",
        "a bad photo of the {}.",
        "a cropped photo of the {}.",
        "a tattoo of a {}.",
        "the embroidered {}.",
        "a photo of a hard to see {}.",
        "a bright photo of a {}.",
        "a photo of a clean {}.",
        "a photo of a dirty {}.",
        "a dark photo of the {}.",
        "a drawing of a {}.",
        "a photo of my {}.",
        "the plastic {}.",
        "a photo of the cool {}.",
        "a close-up photo of a {}.",
        "a black and white photo of the {}.",
        "a painting of the {}.",
        "a painting of a {}.",
        "a pixelated photo of the {}.",
        "a sculpture of the {}.",
        "a bright photo of the {}.",
        "a cropped photo of a {}.",
        "a plastic {}.",
        "a photo of the dirty {}.",
        "a jpeg corrupted photo of a {}.",
        "a blurry photo of the {}.",
        "a photo of the {}.",
        "a good photo of the {}.",
        "a rendering of the {}.",
        "a {} in a video game.",
        "a photo of one {}.",
        "a doodle of a {}.",
        "a close-up photo of the {}.",
        "a photo of a {}.",
        "the origami {}.",
        "the {} in a video game.",
        "a sketch of a {}.",
        "a doodle of the {}.",
        "a origami {}.",
        "a low resolution photo of a {}.",
        "the toy {}.",
        "a rendition of the {}.",
        "a photo of the clean {}.",
        "a photo of a large {}.",
        "a rendition of a {}.",
        "a photo of a nice {}.",
        "a photo of a weird {}.",
        "a blurry photo of a {}.",
        "a cartoon {}.",
        "art of a {}.",
        "a sketch of the {}.",
        "a embroidered {}.",
        "a pixelated photo of a {}.",
        "itap of the {}.",
        "a jpeg corrupted photo of the {}.",
        "a good photo of a {}.",
        "a plushie {}.",
        "a photo of the nice {}.",
        "a photo of the small {}.",
        "a photo of the weird {}.",
        "the cartoon {}.",
        "art of the {}.",
        "a drawing of the {}.",
        "a photo of the large {}.",
        "a black and white photo of a {}.",
        "the plushie {}.",
        "a dark photo of a {}.",
        "itap of a {}.",
        "graffiti of the {}.",
        "a toy {}.",
        "itap of my {}.",
        "a photo of a cool {}.",
        "a photo of a small {}.",
        "a tattoo of the {}.",
    ]

    /// The 7-prompt subset OpenAI found best on ImageNet (also open_clip's "simple" set).
    public static let simple: [String] = [
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ]

    /// The label itself, for sets whose labels are already full descriptions.
    public static let identity: [String] = ["{}"]

    /// `openai`, `simple`, `identity`, or a path to a file with one template per line
    /// (blank lines and lines starting with `#` ignored) or a JSON array of strings.
    public static func resolve(_ specification: String) throws -> [String] {
        switch specification.lowercased() {
        case "openai": return openAIImageNet
        case "simple": return simple
        case "identity", "none": return identity
        default: break
        }
        let url = URL(fileURLWithPath: specification)
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw PromptTemplateError("templates must be openai, simple, identity or a readable file; cannot read \(specification)")
        }
        let templates: [String]
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("[") {
            guard let decoded = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
                throw PromptTemplateError("\(specification) is not a JSON array of strings")
            }
            templates = decoded
        } else {
            templates = text.split(whereSeparator: \.isNewline).map(String.init)
                .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.hasPrefix("#") }
        }
        try validate(templates, source: specification)
        return templates
    }

    /// Every template must contain `{}`; the list must not be empty.
    public static func validate(_ templates: [String], source: String = "templates") throws {
        guard !templates.isEmpty else { throw PromptTemplateError("\(source) has no templates") }
        if let index = templates.firstIndex(where: { !$0.contains("{}") }) {
            throw PromptTemplateError("template \(index + 1) in \(source) has no {} placeholder: \(templates[index])")
        }
    }

    /// The prompts for one label.
    public static func prompts(for label: String, templates: [String]) -> [String] {
        templates.map { $0.replacingOccurrences(of: "{}", with: label) }
    }
}

public struct PromptTemplateError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
