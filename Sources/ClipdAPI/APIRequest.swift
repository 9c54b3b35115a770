import Foundation
import HTTPServer
import ZeroShot

/// Limits on what one API request may ask for (sizes the response and the work it causes).
public struct APILimits: Sendable, Equatable {
    /// `limit` of `/v1/search`.
    public var maxResults = 100
    /// Inputs of one `/v1/embeddings` request.
    public var maxInputs = 64
    /// UTF-8 bytes of one text input or query (CLIP reads at most 77 tokens of it anyway).
    public var maxTextBytes = 16 * 1024
    /// Bytes of one image URL or record id.
    public var maxURLBytes = 4096
    /// Ad-hoc labels of one `/v1/classify` request, and labels × templates (prompts encoded).
    public var maxLabels = 256
    public var maxPrompts = 2048
    /// Requests waiting for the model at once; more are answered 503 with Retry-After.
    public var maxQueuedJobs = 32

    public init() {}
}

/// An error an API route answers with: HTTP status, a stable machine-readable type, a message.
public struct APIError: Error, Equatable, CustomStringConvertible {
    public var status: Int
    public var type: String
    public var message: String
    public var headers: [String: String] = [:]

    public init(_ status: Int, _ type: String, _ message: String, headers: [String: String] = [:]) {
        self.status = status
        self.type = type
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status) \(type): \(message)" }

    public var reply: HTTPEndpoint.Reply { .jsonError(status: status, type: type, message: message, headers: headers) }

    static func invalid(_ message: String) -> APIError { APIError(400, "invalid_request", message) }
}

/// One input of `/v1/embeddings`.
public enum EmbeddingInput: Sendable, Equatable {
    case text(String)
    case imageURL(String)
}

/// A request the API understood, with every parameter checked against `APILimits`.
public enum APIRoute: Sendable, Equatable {
    public enum SearchQuery: Sendable, Equatable {
        case text(String)
        case imageURL(String)
    }

    public enum Labels: Sendable, Equatable {
        /// A label set stored in PostgreSQL (`clipd labels put`).
        case named(String)
        /// Labels given in the request, with templates (default: the `simple` set).
        case adHoc(labels: [String], templates: [String])
    }

    case page
    case status
    case search(SearchQuery, limit: Int)
    case record(id: String)
    case thumbnail(id: String)
    case embeddings(inputs: [EmbeddingInput], model: String?, base64: Bool)
    case classify(imageURL: String, labels: Labels, topK: Int?)

    /// The route for `request`: nil when the path is none of the API's (the caller answers 404
    /// or serves it otherwise), an `APIError` when the request is malformed or over a limit.
    public static func parse(_ request: HTTPEndpoint.Request, limits: APILimits = APILimits()) -> Result<APIRoute, APIError>? {
        let path = request.path
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        let reading = ["GET", "HEAD"]
        func method(_ allowed: [String], _ make: () throws -> APIRoute) -> Result<APIRoute, APIError> {
            guard allowed.contains(request.method) else {
                return .failure(APIError(405, "method_not_allowed", "\(path) accepts \(allowed.joined(separator: ", "))",
                                         headers: ["Allow": allowed.joined(separator: ", ")]))
            }
            do { return .success(try make()) } catch let error as APIError { return .failure(error) } catch {
                return .failure(.invalid("\(error)"))
            }
        }
        let isRecord = segments.count >= 3 && segments[0] == "v1" && segments[1] == "records"
            && (segments.count == 3 || (segments.count == 4 && segments[3] == "thumbnail"))
        if segments == [""] || segments == ["index.html"] { return method(reading) { .page } }
        if segments == ["v1", "status"] { return method(reading) { .status } }
        if segments == ["v1", "search"] { return method(reading) { try search(request, limits: limits) } }
        if segments == ["v1", "embeddings"] { return method(["POST"]) { try embeddings(try jsonObject(request), limits: limits) } }
        if segments == ["v1", "classify"] { return method(["POST"]) { try classify(try jsonObject(request), limits: limits) } }
        if isRecord {
            return method(reading) {
                guard let id = segments[2].removingPercentEncoding, !id.isEmpty, id.utf8.count <= 256, !id.contains("\u{0}") else {
                    throw APIError.invalid("the record id in the path must be 1–256 characters of percent-encoded UTF-8")
                }
                return segments.count == 3 ? .record(id: id) : .thumbnail(id: id)
            }
        }
        return segments.first == "v1" ? .failure(APIError(404, "not_found", "no API route \(path); see the README's HTTP API section")) : nil
    }

    static func search(_ request: HTTPEndpoint.Request, limits: APILimits) throws -> APIRoute {
        let limitText = request.queryValue("limit") ?? "10"
        guard let limit = Int(limitText), (1...limits.maxResults).contains(limit) else {
            throw APIError.invalid("limit must be an integer in 1...\(limits.maxResults), got \(limitText.prefix(40))")
        }
        let text = request.queryValue("text").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let imageURL = request.queryValue("image_url").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        switch (text, imageURL) {
        case (let text?, nil) where !text.isEmpty:
            return .search(.text(try checkedText(text, "text", limits)), limit: limit)
        case (nil, let url?) where !url.isEmpty:
            return .search(.imageURL(try checkedURL(url, "image_url", limits)), limit: limit)
        case (.some, .some):
            throw APIError.invalid("give text or image_url, not both")
        default:
            throw APIError.invalid("give a non-empty text=… or image_url=… query parameter")
        }
    }

    static func embeddings(_ body: [String: Any], limits: APILimits) throws -> APIRoute {
        let items: [Any]
        switch body["input"] {
        case let text as String: items = [text]
        case let array as [Any]: items = array
        case nil: throw APIError.invalid("the body needs \"input\": a string, or an array of strings and {\"image_url\": …} objects")
        default: throw APIError.invalid("\"input\" must be a string or an array")
        }
        guard !items.isEmpty else { throw APIError.invalid("\"input\" is empty") }
        guard items.count <= limits.maxInputs else {
            throw APIError(413, "too_many_inputs", "at most \(limits.maxInputs) inputs per request, got \(items.count)")
        }
        let inputs = try items.enumerated().map { index, item -> EmbeddingInput in
            switch item {
            case let text as String:
                guard !text.isEmpty else { throw APIError.invalid("input \(index) is an empty string") }
                return .text(try checkedText(text, "input \(index)", limits))
            case let object as [String: Any]:
                if let url = object["image_url"] {
                    // OpenAI's content parts spell it {"type": "image_url", "image_url": {"url": …}}.
                    let text = (url as? String) ?? ((url as? [String: Any])?["url"] as? String)
                    guard let text, !text.isEmpty else { throw APIError.invalid("input \(index): image_url must be a non-empty string") }
                    return .imageURL(try checkedURL(text, "input \(index)", limits))
                }
                if let text = object["text"] as? String, !text.isEmpty {
                    return .text(try checkedText(text, "input \(index)", limits))
                }
                throw APIError.invalid("input \(index): an object needs \"image_url\" or \"text\"")
            default:
                throw APIError.invalid("input \(index) must be a string or an object with \"image_url\" or \"text\"")
            }
        }
        let model: String?
        switch body["model"] {
        case nil, is NSNull: model = nil
        case let name as String where !name.isEmpty && name.utf8.count <= 256: model = name
        default: throw APIError.invalid("\"model\" must be a model version's name or id")
        }
        let format = body["encoding_format"] as? String ?? "float"
        guard format == "float" || format == "base64" else { throw APIError.invalid("encoding_format must be float or base64") }
        return .embeddings(inputs: inputs, model: model, base64: format == "base64")
    }

    static func classify(_ body: [String: Any], limits: APILimits) throws -> APIRoute {
        guard let url = body["image_url"] as? String, !url.isEmpty else { throw APIError.invalid("the body needs \"image_url\": a URL") }
        let topK: Int?
        switch body["top_k"] {
        case nil, is NSNull: topK = nil
        case let n as Int where n >= 1 && n <= limits.maxLabels: topK = n
        default: throw APIError.invalid("top_k must be an integer in 1...\(limits.maxLabels)")
        }
        let labels: Labels
        switch (body["label_set"], body["labels"]) {
        case (let name as String, nil) where !name.isEmpty && name.utf8.count <= 256:
            labels = .named(name)
        case (nil, let list as [Any]):
            let names = try list.map { item -> String in
                guard let s = item as? String, !s.trimmingCharacters(in: .whitespaces).isEmpty, s.utf8.count <= 1024 else {
                    throw APIError.invalid("labels must be non-empty strings of at most 1024 bytes")
                }
                return s
            }
            guard !names.isEmpty, names.count <= limits.maxLabels else { throw APIError.invalid("give 1...\(limits.maxLabels) labels") }
            guard Set(names).count == names.count else { throw APIError.invalid("labels must be distinct") }
            let templates = try templates(body["templates"])
            guard names.count * templates.count <= limits.maxPrompts else {
                throw APIError(413, "too_many_prompts", "labels × templates is \(names.count * templates.count), more than \(limits.maxPrompts)")
            }
            labels = .adHoc(labels: names, templates: templates)
        default:
            throw APIError.invalid("give \"label_set\" (a stored label set's name) or \"labels\" (an array of strings), not both")
        }
        return .classify(imageURL: try checkedURL(url, "image_url", limits), labels: labels, topK: topK)
    }

    /// `simple` (default), `openai`, `identity`, or an array of templates with `{}`. Never a file.
    static func templates(_ value: Any?) throws -> [String] {
        switch value {
        case nil, is NSNull: return PromptTemplates.simple
        case let name as String:
            guard let templates = namedTemplates(name) else { throw APIError.invalid("templates must be simple, openai, identity or an array") }
            return templates
        case let list as [Any]:
            let templates = list.compactMap { $0 as? String }
            guard templates.count == list.count, !templates.isEmpty, templates.count <= 128, templates.allSatisfy({ $0.contains("{}") && $0.utf8.count <= 1024 }) else {
                throw APIError.invalid("templates must be 1...128 strings, each containing {}")
            }
            return templates
        default:
            throw APIError.invalid("templates must be simple, openai, identity or an array")
        }
    }

    static func namedTemplates(_ name: String) -> [String]? {
        switch name.lowercased() {
        case "simple": PromptTemplates.simple
        case "openai": PromptTemplates.openAIImageNet
        case "identity", "none": PromptTemplates.identity
        default: nil
        }
    }

    static func jsonObject(_ request: HTTPEndpoint.Request) throws -> [String: Any] {
        guard !request.body.isEmpty else { throw APIError.invalid("the request needs a JSON body") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any] else {
            throw APIError.invalid("the body is not a JSON object")
        }
        return object
    }

    static func checkedText(_ text: String, _ what: String, _ limits: APILimits) throws -> String {
        guard text.utf8.count <= limits.maxTextBytes else {
            throw APIError(413, "input_too_large", "\(what) is longer than \(limits.maxTextBytes) bytes")
        }
        return text
    }

    static func checkedURL(_ url: String, _ what: String, _ limits: APILimits) throws -> String {
        guard url.utf8.count <= limits.maxURLBytes else { throw APIError(413, "input_too_large", "\(what): the URL is longer than \(limits.maxURLBytes) bytes") }
        guard url.contains("://") else { throw APIError.invalid("\(what) must be an http, https or file URL") }
        return url
    }
}
