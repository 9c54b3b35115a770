import ClipdAPI
import Foundation
import HTTPServer
import ImageIO
import XCTest

/// Request validation, JSON output and query parsing of the HTTP API (no server, no database):
/// every malformed or oversized request gets its status and error type before any work.
final class APIRequestTests: XCTestCase {
    func route(_ method: String, _ path: String, query: String = "", json: String? = nil, limits: APILimits = APILimits()) -> Result<APIRoute, APIError>? {
        APIRoute.parse(HTTPEndpoint.Request(method: method, path: path, query: QueryString.parse(query) ?? [], body: Array((json ?? "").utf8)), limits: limits)
    }

    func error(_ result: Result<APIRoute, APIError>?) -> APIError? {
        if case .failure(let e) = result { return e }
        return nil
    }

    func testRoutesAndMethods() {
        XCTAssertEqual(try route("GET", "/")?.get(), .page)
        XCTAssertEqual(try route("HEAD", "/index.html")?.get(), .page)
        XCTAssertEqual(try route("GET", "/v1/status")?.get(), .status)
        XCTAssertEqual(try route("GET", "/v1/search", query: "text=a+red%20circle&limit=5")?.get(), .search(.text("a red circle"), limit: 5))
        XCTAssertEqual(try route("GET", "/v1/search", query: "image_url=https%3A%2F%2Fexample.com%2Fa.jpg")?.get(),
                       .search(.imageURL("https://example.com/a.jpg"), limit: 10))
        XCTAssertEqual(try route("GET", "/v1/records/a%2Fb%20c")?.get(), .record(id: "a/b c"))
        XCTAssertEqual(try route("GET", "/v1/records/r1/thumbnail")?.get(), .thumbnail(id: "r1"))
        XCTAssertNil(route("GET", "/metrics"), "not an API path: left to the caller")
        XCTAssertEqual(error(route("GET", "/v1/records/r1/other"))?.status, 404)
        XCTAssertEqual(error(route("GET", "/v1/unknown"))?.type, "not_found")
        let wrong = error(route("POST", "/v1/search", query: "text=x"))
        XCTAssertEqual(wrong?.status, 405)
        XCTAssertEqual(wrong?.headers["Allow"], "GET, HEAD")
        XCTAssertEqual(error(route("GET", "/v1/embeddings"))?.status, 405)
    }

    func testSearchParametersAreChecked() {
        for (query, fragment) in [("text=x&limit=0", "limit"), ("text=x&limit=101", "limit"), ("text=x&limit=ten", "limit"),
                                  ("", "text"), ("text=%20%20", "text"), ("text=x&image_url=http%3A%2F%2Fa%2Fb", "not both"),
                                  ("image_url=example.com%2Fa.jpg", "URL")] {
            let e = error(route("GET", "/v1/search", query: query))
            XCTAssertEqual(e?.status, 400, query)
            XCTAssertTrue(e?.message.contains(fragment) ?? false, "\(query): \(e?.message ?? "no error")")
        }
        var limits = APILimits()
        limits.maxTextBytes = 10
        XCTAssertEqual(error(route("GET", "/v1/search", query: "text=" + String(repeating: "a", count: 11), limits: limits))?.status, 413)
    }

    func testEmbeddingsBodies() {
        XCTAssertEqual(try route("POST", "/v1/embeddings", json: #"{"input": "a cat"}"#)?.get(), .embeddings(inputs: [.text("a cat")], model: nil, base64: false))
        XCTAssertEqual(try route("POST", "/v1/embeddings", json: #"{"input": ["a", {"image_url": "file:///x.jpg"}, {"type": "image_url", "image_url": {"url": "https://h/i.png"}}, {"text": "b"}], "model": "v2", "encoding_format": "base64"}"#)?.get(),
                       .embeddings(inputs: [.text("a"), .imageURL("file:///x.jpg"), .imageURL("https://h/i.png"), .text("b")], model: "v2", base64: true))
        for body in ["", "{", "[]", #"{"input": 5}"#, #"{"input": []}"#, #"{"input": [""]}"#, #"{"input": [{"image_url": 3}]}"#,
                     #"{"input": "x", "encoding_format": "int8"}"#, #"{"input": "x", "model": 7}"#, #"{"nothing": 1}"#] {
            XCTAssertEqual(error(route("POST", "/v1/embeddings", json: body))?.status, 400, body)
        }
        let many = "{\"input\": [" + Array(repeating: "\"x\"", count: 65).joined(separator: ",") + "]}"
        XCTAssertEqual(error(route("POST", "/v1/embeddings", json: many))?.type, "too_many_inputs")
    }

    func testClassifyBodies() {
        XCTAssertEqual(try route("POST", "/v1/classify", json: #"{"image_url": "file:///a.jpg", "label_set": "colours"}"#)?.get(),
                       .classify(imageURL: "file:///a.jpg", labels: .named("colours"), topK: nil))
        guard case .classify(_, .adHoc(let labels, let templates), let k)? = try? route("POST", "/v1/classify",
                json: #"{"image_url": "file:///a.jpg", "labels": ["cat", "dog"], "top_k": 1}"#)?.get() else {
            return XCTFail("ad-hoc labels not parsed")
        }
        XCTAssertEqual(labels, ["cat", "dog"])
        XCTAssertTrue(templates.allSatisfy { $0.contains("{}") } && !templates.isEmpty)
        XCTAssertEqual(k, 1)
        for body in [#"{"label_set": "x"}"#, #"{"image_url": "file:///a.jpg"}"#, #"{"image_url": "file:///a.jpg", "label_set": "x", "labels": ["a"]}"#,
                     #"{"image_url": "file:///a.jpg", "labels": []}"#, #"{"image_url": "file:///a.jpg", "labels": ["a", "a"]}"#,
                     #"{"image_url": "file:///a.jpg", "labels": ["a"], "templates": ["no placeholder"]}"#,
                     #"{"image_url": "file:///a.jpg", "labels": ["a"], "templates": "/etc/passwd"}"#,
                     #"{"image_url": "file:///a.jpg", "labels": ["a"], "top_k": 0}"#] {
            XCTAssertEqual(error(route("POST", "/v1/classify", json: body))?.status, 400, body)
        }
        let labels300 = "[" + (0..<300).map { "\"l\($0)\"" }.joined(separator: ",") + "]"
        XCTAssertEqual(error(route("POST", "/v1/classify", json: "{\"image_url\": \"file:///a\", \"labels\": \(labels300)}"))?.status, 400)
        let prompts = "[" + (0..<100).map { "\"l\($0)\"" }.joined(separator: ",") + "]"
        XCTAssertEqual(error(route("POST", "/v1/classify", json: "{\"image_url\": \"file:///a\", \"labels\": \(prompts), \"templates\": \"openai\"}"))?.type,
                       "too_many_prompts")
    }

    func testQueryStrings() {
        XCTAssertEqual(QueryString.parse("a=1&b=x+y%21&c&=v&&d=%E2%9C%93")?.map { "\($0.name)=\($0.value)" }, ["a=1", "b=x y!", "c=", "=v", "d=✓"])
        XCTAssertNil(QueryString.parse("a=%4"))
        XCTAssertNil(QueryString.parse("a=%zz"))
        XCTAssertNil(QueryString.parse("a=%ff"), "not UTF-8")
    }

    func testJSONOutputRoundTripsFloatsAndEscapes() throws {
        let values: [Float] = [0.1, -1e-38, 3.4028235e38, 1.17549435e-38, 0.33333334, 1, 0]
        let text = JSONOutput.object([("v", .array(values.map(JSONOutput.float))), ("s", .string("a\"b\\c\n</script>\u{1}\u{2028}")),
                                     ("n", .float(.nan)), ("raw", .raw(#"{"k":[1,2]}"#))]).rendered
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual((object["v"] as? [Double])?.map(Float.init), values)
        XCTAssertEqual(object["s"] as? String, "a\"b\\c\n</script>\u{1}\u{2028}")
        XCTAssertFalse(text.contains("</script>"), "a string cannot end an inline script")
        XCTAssertTrue(object["n"] is NSNull)
        XCTAssertEqual((object["raw"] as? [String: Any])?["k"] as? [Int], [1, 2])
    }

    func testErrorReplyShape() throws {
        let reply = APIError(413, "request_too_large", "too big").reply
        XCTAssertEqual(reply.status, 413)
        XCTAssertEqual(reply.contentType, "application/json")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: [String: Any]])
        XCTAssertEqual(object["error"]?["type"] as? String, "request_too_large")
        XCTAssertEqual(object["error"]?["message"] as? String, "too big")
    }

    /// Thumbnails: upright, fitted into 256 px, a JPEG; a large JPEG is decoded at reduced DCT scale.
    func testThumbnailOfAFixturePhoto() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/images")
        let names = try FileManager.default.contentsOfDirectory(atPath: fixtures.path).filter { $0.hasSuffix(".jpg") || $0.hasSuffix(".png") }.sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names.prefix(6) {
            let bytes = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(name)))
            guard let source = try? ImageDecoder().decode(bytes).applyingOrientation() else { continue }
            let thumb = try Thumbnail.jpeg(bytes, maxSide: 128)
            XCTAssertLessThanOrEqual(max(thumb.width, thumb.height), 128, name)
            let back = try ImageDecoder().decode(thumb.jpeg)
            XCTAssertEqual(back.width, thumb.width, name)
            XCTAssertEqual(back.height, thumb.height, name)
            // The aspect ratio survives (within a pixel of rounding).
            if max(source.width, source.height) > 128 {
                let expected = Double(source.width) / Double(source.height)
                XCTAssertEqual(Double(thumb.width) / Double(thumb.height), expected, accuracy: max(0.05, expected * 2 / Double(min(thumb.width, thumb.height))), name)
            }
        }
        XCTAssertThrowsError(try Thumbnail.jpeg(Array("not an image".utf8)))
    }
}
