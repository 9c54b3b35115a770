import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ImageIO
import TestSupport
import XCTest

/// The HTTP API and the web page of a running daemon over the demo's sample records and model
/// (real PostgreSQL, the dev broker): search, records, thumbnails, embeddings equal to
/// `clipd embed`, classify, status, errors and limits, and the page in headless Chromium.
final class APITests: XCTestCase {
    var harness: DaemonHarness!

    override func tearDown() async throws {
        await harness?.tearDown()
        harness = nil
    }

    static let demo = Repository.root.appendingPathComponent("Deploy/demo")
    static let samples = demo.appendingPathComponent("samples")
    static let model = demo.appendingPathComponent("model/clipd-shapes.safetensors").path

    struct Answer {
        let status: Int
        let body: Data
        let headers: [AnyHashable: Any]
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func call(_ port: Int, _ path: String, method: String = "GET", json: Any? = nil, body: Data? = nil) async throws -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 60
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        } else if let body {
            request.httpBody = body
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return Answer(status: http.statusCode, body: data, headers: http.allHeaderFields)
    }

    /// The demo's records and label set, a daemon on `port` with the demo model; returns once every record is settled.
    func startDemoDaemon(port: Int) async throws -> DaemonHarness {
        let h = try await DaemonHarness()
        harness = h
        let templates = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-api-templates-\(UUID().uuidString).json")
        try Data(#"["a red {}", "a green {}", "a blue {}", "a yellow {}", "a purple {}", "a orange {}"]"#.utf8).write(to: templates)
        defer { try? FileManager.default.removeItem(at: templates) }
        let put = try runClipd(["labels", "put", "--database-url", h.databaseURL, "shape-kinds", "--templates", templates.path,
                                "circle", "square", "triangle", "cross"], timeout: 120)
        XCTAssertEqual(put.status, 0, put.stderr)
        let lines = try String(contentsOf: Self.samples.appendingPathComponent("records.jsonl"), encoding: .utf8)
            .replacingOccurrences(of: "{{SAMPLES_URL}}", with: "file://\(Self.samples.path)")
            .split(separator: "\n").map(String.init)
        try await h.produce(lines.map { (nil, $0) })
        var arguments = h.daemonArguments(extra: ["--http-port", "\(port)", "--http-host", "127.0.0.1", "--label-set", "shape-kinds",
                                                  "--allow-file-root", Self.samples.path])
        if let i = arguments.firstIndex(of: "--model") { arguments[i + 1] = Self.model }
        h.daemons.append(try BackgroundProcess(arguments, environment: ["CLIPD_LOG_LEVEL": "info"], name: "api-daemon"))
        let settled = try await eventually(timeout: .seconds(180), interval: .milliseconds(250)) {
            try await h.count("SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM failed_records)") >= lines.count
        }
        XCTAssertTrue(settled, h.daemonLogs)
        return h
    }

    func testSearchRecordsEmbeddingsClassifyStatusAndErrors() async throws {
        let port = try MetricsTests.freePort()
        let h = try await startDemoDaemon(port: port)

        // Text search: the red circle first, best first, with tags and a thumbnail route.
        let search = try await call(port, "/v1/search?text=a%20red%20circle&limit=5")
        XCTAssertEqual(search.status, 200, search.text)
        let results = search.json["results"] as? [[String: Any]] ?? []
        XCTAssertEqual(results.count, 5, search.text)
        XCTAssertEqual(results.first?["record_id"] as? String, "shape-red-circle-large-right-0", search.text)
        let similarities = results.compactMap { $0["similarity"] as? Double }
        XCTAssertEqual(similarities, similarities.sorted(by: >), "best first")
        XCTAssertNotNil(search.json["model_version"] as? Int)
        let firstTags = results.first?["tags"] as? [[String: Any]] ?? []
        XCTAssertEqual(firstTags.first?["label_set"] as? String, "shape-kinds", search.text)
        XCTAssertEqual(firstTags.first?["label"] as? String, "circle", search.text)

        // The same ranking as `clipd search` (one version throughout).
        let cli = try runClipd(["search", "--database-url", h.databaseURL, "--text", "a red circle", "--limit", "5"], timeout: 120)
        XCTAssertEqual(cli.status, 0, cli.stderr)
        XCTAssertEqual(cli.stdout.split(separator: "\n").map { jsonObject(String($0))["record_id"] as? String },
                       results.map { $0["record_id"] as? String })

        // Image-to-image search: a picture finds itself first.
        let blue = "file://\(Self.samples.path)/blue-circle-large-right-0.jpg"
        let byImage = try await call(port, "/v1/search?image_url=\(blue.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&limit=3")
        XCTAssertEqual(byImage.status, 200, byImage.text)
        XCTAssertEqual((byImage.json["results"] as? [[String: Any]])?.first?["record_id"] as? String, "shape-blue-circle-large-right-0", byImage.text)

        // One record: fields, tags, the version that embedded it; its thumbnail is a JPEG of at most 256 px.
        let record = try await call(port, "/v1/records/shape-red-circle-large-right-0")
        XCTAssertEqual(record.status, 200, record.text)
        XCTAssertEqual(record.json["caption"] as? String, "a large red circle on the right")
        XCTAssertEqual((record.json["metadata"] as? [String: Any])?["colour"] as? String, "red")
        XCTAssertEqual((record.json["embeddings"] as? [[String: Any]])?.count, 1, record.text)
        XCTAssertEqual((record.json["tags"] as? [[String: Any]])?.count, 3, record.text)
        let thumbnail = try await call(port, "/v1/records/shape-red-circle-large-right-0/thumbnail")
        XCTAssertEqual(thumbnail.status, 200)
        XCTAssertEqual(thumbnail.headers["Content-Type"] as? String, "image/jpeg")
        let decoded = try ImageDecoder().decode([UInt8](thumbnail.body))
        XCTAssertLessThanOrEqual(max(decoded.width, decoded.height), 256)
        XCTAssertGreaterThan(min(decoded.width, decoded.height), 16)

        // Embeddings, OpenAI-shaped, equal to `clipd embed` with the same model.
        let redCircle = "\(Self.samples.path)/red-circle-large-right-0.jpg"
        let embeddings = try await call(port, "/v1/embeddings", method: "POST",
                                        json: ["input": ["a red circle", ["image_url": "file://\(redCircle)"]], "model": NSNull()])
        XCTAssertEqual(embeddings.status, 200, embeddings.text)
        XCTAssertEqual(embeddings.json["object"] as? String, "list")
        let data = embeddings.json["data"] as? [[String: Any]] ?? []
        XCTAssertEqual(data.map { $0["index"] as? Int }, [0, 1])
        XCTAssertGreaterThan((embeddings.json["usage"] as? [String: Any])?["prompt_tokens"] as? Int ?? 0, 2)
        let embed = try runClipd(["embed", "--model", Self.model, "--text", "a red circle", "--image", redCircle, "--threads", "1"], timeout: 120)
        XCTAssertEqual(embed.status, 0, embed.stderr)
        let expected = embed.stdout.split(separator: "\n").map { (jsonObject(String($0))["embedding"] as? [Double] ?? []).map(Float.init) }
        let got = data.map { ($0["embedding"] as? [Double] ?? []).map(Float.init) }
        XCTAssertEqual(got.map(\.count), expected.map(\.count))
        XCTAssertEqual(expected.count, 2)
        for (a, b) in zip(got, expected) {
            XCTAssertEqual(a.count, b.count)
            let diff = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(diff, 1e-6, "API vs clipd embed")
            print("max abs difference, POST /v1/embeddings vs clipd embed (\(a.count)-d): \(diff)")
        }
        // base64, as OpenAI's client asks by default: the same floats.
        let packed = try await call(port, "/v1/embeddings", method: "POST", json: ["input": "a red circle", "encoding_format": "base64"])
        let bytes = Data(base64Encoded: ((packed.json["data"] as? [[String: Any]])?.first?["embedding"] as? String) ?? "") ?? Data()
        let floats = stride(from: 0, to: bytes.count, by: 4).map { i in Float(bitPattern: bytes[i..<i + 4].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }) }
        XCTAssertEqual(floats, got.first)

        // Classify against the stored label set and against ad-hoc labels.
        let classified = try await call(port, "/v1/classify", method: "POST", json: ["image_url": "file://\(redCircle)", "label_set": "shape-kinds"])
        XCTAssertEqual(classified.status, 200, classified.text)
        let tags = classified.json["tags"] as? [[String: Any]] ?? []
        XCTAssertEqual(tags.count, 4)
        XCTAssertEqual(tags.first?["label"] as? String, "circle", classified.text)
        XCTAssertEqual(tags.compactMap { $0["score"] as? Double }.reduce(0, +), 1, accuracy: 1e-4)
        let adHoc = try await call(port, "/v1/classify", method: "POST",
                                   json: ["image_url": "file://\(redCircle)", "labels": ["red", "green", "blue"], "templates": ["a {} circle"], "top_k": 2])
        XCTAssertEqual(adHoc.status, 200, adHoc.text)
        XCTAssertEqual((adHoc.json["tags"] as? [[String: Any]])?.map { $0["label"] as? String }.first, "red", adHoc.text)
        XCTAssertEqual((adHoc.json["tags"] as? [[String: Any]])?.count, 2)

        // Status: coverage, failures by class, this daemon's stream.
        let status = try await call(port, "/v1/status")
        XCTAssertEqual(status.status, 200, status.text)
        let versions = status.json["model_versions"] as? [[String: Any]] ?? []
        XCTAssertEqual(versions.first?["coverage"] as? Double, 1, status.text)
        XCTAssertEqual(versions.first?["search"] as? Bool, true)
        XCTAssertFalse((status.json["failures_by_class"] as? [String: Any] ?? [:]).isEmpty, status.text)
        XCTAssertNotNil((status.json["stream"] as? [String: Any])?["written"] as? Int, status.text)

        // Every record consumed: the lag the panel shows reaches 0 by the next progress tick.
        let caughtUp = try await eventually(timeout: .seconds(20), interval: .milliseconds(500)) {
            let lag = (try await self.call(port, "/v1/status").json["stream"] as? [String: Any])?["lag"] as? [[String: Any]] ?? []
            return !lag.isEmpty && lag.allSatisfy { $0["lag"] as? Int == 0 }
        }
        XCTAssertTrue(caughtUp, "lag per partition never reached 0")

        // Errors: JSON bodies with the status a client can act on.
        for (path, code, type) in [("/v1/search?text=x&limit=0", 400, "invalid_request"), ("/v1/search", 400, "invalid_request"),
                                   ("/v1/records/no-such-record", 404, "record_not_found"), ("/v1/nothing", 404, "not_found"),
                                   ("/v1/search?image_url=file%3A%2F%2F%2Fetc%2Fhostname", 422, "fetch.file_not_allowed"),
                                   ("/v1/search?image_url=http%3A%2F%2F127.0.0.1%3A9%2Fx.jpg", 422, "fetch.forbidden_address")] {
            let answer = try await call(port, path)
            XCTAssertEqual(answer.status, code, "\(path): \(answer.text)")
            XCTAssertEqual((answer.json["error"] as? [String: Any])?["type"] as? String, type, path)
        }
        let wrongMethod = try await call(port, "/v1/search?text=x", method: "DELETE")
        XCTAssertEqual(wrongMethod.status, 405)
        let huge = try await call(port, "/v1/embeddings", method: "POST", body: Data(repeating: UInt8(ascii: " "), count: 2 << 20))
        XCTAssertEqual(huge.status, 413, huge.text)
        let tooMany = try await call(port, "/v1/embeddings", method: "POST", json: ["input": Array(repeating: "x", count: 65)])
        XCTAssertEqual(tooMany.status, 413, tooMany.text)
        let notJSON = try await call(port, "/v1/classify", method: "POST", body: Data("{".utf8))
        XCTAssertEqual(notJSON.status, 400, notJSON.text)
        let health = try await call(port, "/healthz")
        XCTAssertEqual(health.status, 200, "probes still answer")

        // The API's own metrics, with HELP text.
        let metrics = try await call(port, "/metrics").text
        XCTAssertTrue(metrics.contains("# HELP clipd_api_requests_total "), metrics)
        XCTAssertTrue(metrics.contains(#"clipd_api_requests_total{route="search",status="200"}"#) || metrics.contains(#"clipd_api_requests_total{status="200",route="search"}"#), metrics)
        XCTAssertTrue(metrics.contains("# HELP clipd_api_request_duration_seconds "), metrics)

        // `clipd serve`: the same API from the database alone (no stream in its status).
        let servePort = try MetricsTests.freePort()
        let serve = try BackgroundProcess(["serve", "--database-url", h.databaseURL, "--http-port", "\(servePort)", "--http-host", "127.0.0.1",
                                           "--allow-file-root", Self.samples.path, "--threads", "1"], name: "serve")
        h.daemons.append(serve)
        let serving = try await eventually(timeout: .seconds(60), interval: .milliseconds(250)) {
            (try? await self.call(servePort, "/v1/status"))?.status == 200
        }
        XCTAssertTrue(serving, serve.stderr)
        let served = try await call(servePort, "/v1/search?text=a%20red%20circle&limit=5")
        XCTAssertEqual((served.json["results"] as? [[String: Any]])?.map { $0["record_id"] as? String }, results.map { $0["record_id"] as? String })
        let servedStatus = try await call(servePort, "/v1/status")
        XCTAssertTrue(servedStatus.json["stream"] is NSNull, servedStatus.text)
        let servedEmbedding = try await call(servePort, "/v1/embeddings", method: "POST", json: ["input": "a red circle"])
        XCTAssertEqual(((servedEmbedding.json["data"] as? [[String: Any]])?.first?["embedding"] as? [Double])?.map(Float.init), got.first)
    }

    /// The page in a real browser: type a query, press Enter, the red circle is the first card;
    /// the screenshot is kept (CLIPD_TEST_ARTIFACTS, default .build/test-artifacts/web-page.png).
    func testWebPageSearchesInHeadlessChromium() async throws {
        guard let executable = HeadlessChromium.executable else {
            if TestServer.mustRun { XCTFail("chromium is not installed (Deploy/dev/install-deps.sh installs it)") }
            throw XCTSkip("chromium is not installed")
        }
        let port = try MetricsTests.freePort()
        _ = try await startDemoDaemon(port: port)
        let browser = try HeadlessChromium(executable: executable)
        defer { browser.close() }
        try browser.attachToPage()
        try browser.send("Page.enable")
        try browser.send("Page.navigate", ["url": "http://127.0.0.1:\(port)/"])
        try browser.waitFor("document.readyState === 'complete' && !!document.getElementById('q')")
        // The status panel fills from /v1/status.
        try browser.waitFor("document.getElementById('status').textContent.includes('Model versions')")
        _ = try browser.evaluate("document.getElementById('q').focus()")
        try browser.type("a red circle")
        try browser.waitFor("document.querySelectorAll('#results .result').length > 0")
        // The first row is in view (the others load lazily as the page scrolls).
        try browser.waitFor("Array.from(document.querySelectorAll('#results img')).slice(0, 4).every(i => i.complete && i.naturalWidth > 0)")
        let first = try browser.evaluate("document.querySelector('#results .result .caption').textContent") as? String
        XCTAssertEqual(first, "a large red circle on the right")
        let count = try browser.evaluate("document.querySelectorAll('#results .result').length") as? Int
        XCTAssertEqual(count, 24)
        let location = try browser.evaluate("location.search") as? String
        XCTAssertEqual(location, "?q=a%20red%20circle")
        let failedPanel = try browser.evaluate("document.getElementById('status').textContent") as? String ?? ""
        XCTAssertTrue(failedPanel.contains("image."), failedPanel)  // the demo's broken images, by class

        let directory = ProcessInfo.processInfo.environment["CLIPD_TEST_ARTIFACTS"].map { URL(fileURLWithPath: $0) }
            ?? Repository.root.appendingPathComponent(".build/test-artifacts")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let png = try browser.screenshot()
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        let path = directory.appendingPathComponent("web-page.png")
        try png.write(to: path)
        print("screenshot of the web page: \(path.path)")
    }
}
