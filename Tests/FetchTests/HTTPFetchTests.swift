import Foundation
import XCTest
@testable import Fetch

/// End-to-end fetches through libcurl against `TestHTTPServer` on 127.0.0.1.
final class HTTPFetchTests: XCTestCase {
    /// Short limits so failure paths finish quickly; loopback allowed unless a test says not.
    private func configuration(_ adjust: (inout FetchConfiguration) -> Void = { _ in }) -> FetchConfiguration {
        var configuration = FetchConfiguration(
            connectTimeout: .seconds(2), totalTimeout: .seconds(5), maxBytes: 1 << 20,
            retry: RetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(100),
                               jitter: 0.5, maxRetryAfter: .seconds(2), totalBudget: .seconds(10)),
            allowPrivateNetworks: true, userAgent: "clipd-test")
        adjust(&configuration)
        return configuration
    }

    private func failure(_ fetcher: ImageFetcher, _ url: String,
                         file: StaticString = #filePath, line: UInt = #line) async -> FetchError? {
        do {
            let image = try await fetcher.fetch(url)
            XCTFail("expected a failure, got \(image.bytes.count) bytes", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    private func expectFailure(_ expected: FetchError.Class, _ fetcher: ImageFetcher, _ url: String,
                               file: StaticString = #filePath, line: UInt = #line) async {
        let error = await failure(fetcher, url, file: file, line: line)
        XCTAssertEqual(error?.class, expected, url, file: file, line: line)
    }

    private static let jpeg: [UInt8] = (try? FixturePaths.bytes("chelsea_16x16.jpg")) ?? []

    func testFetchReturnsTheBodyAndSniffsItsFormat() async throws {
        let server = try TestHTTPServer { request, _ in
            guard request.headers["user-agent"] == "clipd-test", request.headers["accept"]?.hasPrefix("image/jpeg") == true else {
                return TestHTTPServer.response(status: 400)
            }
            // The Content-Type lies; the bytes decide.
            return TestHTTPServer.response(status: 200, headers: [("Content-Type", "text/html")], body: Self.jpeg)
        }
        let image = try await ImageFetcher(configuration: configuration()).fetch(server.url("/cat.png"))
        XCTAssertEqual(image.bytes, Self.jpeg)
        XCTAssertEqual(image.format, .jpeg)
        XCTAssertEqual(image.attempts, 1)
        XCTAssertEqual(image.finalURL, server.url("/cat.png"))
    }

    func testConcurrentFetchesShareABoundedPool() async throws {
        let server = try TestHTTPServer { _, _ in
            [.pause(0.05)] + TestHTTPServer.response(status: 200, body: Self.jpeg)
        }
        let fetcher = ImageFetcher(configuration: configuration { $0.maxConcurrentTransfers = 2 })
        let results = try await withThrowingTaskGroup(of: FetchedImage.self) { group in
            for index in 0..<8 { group.addTask { try await fetcher.fetch(server.url("/\(index)")) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(results.count, 8)
        XCTAssertTrue(results.allSatisfy { $0.bytes == Self.jpeg })
    }

    func testSlowResponseTimesOut() async throws {
        let server = try TestHTTPServer { _, _ in
            [.pause(3)] + TestHTTPServer.response(status: 200, body: Self.jpeg)
        }
        let fetcher = ImageFetcher(configuration: configuration {
            $0.totalTimeout = .milliseconds(300)
            $0.retry = .none
        })
        let error = await failure(fetcher, server.url("/slow"))
        XCTAssertEqual(error?.class, .timeout)
        XCTAssertEqual(error?.isRetriable, true)
    }

    func testStalledBodyTimesOut() async throws {
        let server = try TestHTTPServer { _, _ in
            [.send(TestHTTPServer.head(status: 200, headers: [("Content-Length", "1000")])),
             .send(Array(Self.jpeg.prefix(100))), .pause(3)]
        }
        let fetcher = ImageFetcher(configuration: configuration {
            $0.totalTimeout = .milliseconds(400)
            $0.retry = .none
        })
        await expectFailure(.timeout, fetcher, server.url("/stall"))
    }

    func testOversizedStreamedBodyIsCutOffAtTheCap() async throws {
        let chunk = [UInt8](repeating: 0xAB, count: 64 << 10)
        let total = 64 << 20
        let server = try TestHTTPServer { _, _ in
            // No Content-Length: the size is only discovered while streaming.
            [.send(TestHTTPServer.head(status: 200, headers: [])), .sendRepeated(chunk: chunk, times: total / chunk.count)]
        }
        let fetcher = ImageFetcher(configuration: configuration { $0.maxBytes = 256 << 10 })
        let error = await failure(fetcher, server.url("/huge"))
        XCTAssertEqual(error?.class, .tooLarge)
        XCTAssertEqual(error?.attempts, 1, "an oversized body is not retried")
        server.waitForConnectionsToClose()
        XCTAssertLessThan(server.bytesSent("/huge"), total / 4, "the client must stop reading at the cap")
    }

    func testAnnouncedContentLengthOverTheCapIsRejectedEarly() async throws {
        let chunk = [UInt8](repeating: 0xCD, count: 64 << 10)
        let total = 64 << 20
        let server = try TestHTTPServer { _, _ in
            [.send(TestHTTPServer.head(status: 200, headers: [("Content-Length", "\(total)")])),
             .pause(0.2), .sendRepeated(chunk: chunk, times: total / chunk.count)]
        }
        let fetcher = ImageFetcher(configuration: configuration { $0.maxBytes = 256 << 10 })
        await expectFailure(.tooLarge, fetcher, server.url("/announced"))
        server.waitForConnectionsToClose()
        XCTAssertLessThan(server.bytesSent("/announced"), total / 4)
    }

    func testBodyExactlyAtTheCapIsAccepted() async throws {
        let body = Self.jpeg + [UInt8](repeating: 7, count: 1000)
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 200, body: body, announceLength: false) }
        let fetcher = ImageFetcher(configuration: configuration { $0.maxBytes = body.count })
        let image = try await fetcher.fetch(server.url("/exact"))
        XCTAssertEqual(image.bytes, body)
        let smaller = ImageFetcher(configuration: configuration { $0.maxBytes = body.count - 1 })
        await expectFailure(.tooLarge, smaller, server.url("/exact"))
    }

    func testRedirectsAreFollowed() async throws {
        let server = try TestHTTPServer { request, _ in
            switch request.path {
            case "/a": return TestHTTPServer.redirect(to: "/b", status: 301)
            case "/b": return TestHTTPServer.redirect(to: "/c")
            default: return TestHTTPServer.response(status: 200, body: Self.jpeg)
            }
        }
        let image = try await ImageFetcher(configuration: configuration()).fetch(server.url("/a"))
        XCTAssertEqual(image.bytes, Self.jpeg)
        XCTAssertEqual(image.finalURL, server.url("/c"))
    }

    func testRedirectLoopEndsWithTooManyRedirects() async throws {
        let server = try TestHTTPServer { _, _ in TestHTTPServer.redirect(to: "/loop") }
        let fetcher = ImageFetcher(configuration: configuration { $0.maxRedirects = 5 })
        let error = await failure(fetcher, server.url("/loop"))
        XCTAssertEqual(error?.class, .tooManyRedirects)
        XCTAssertEqual(error?.isRetriable, false)
        XCTAssertEqual(server.hits("/loop"), 6, "the first request and 5 redirects, without retries")
    }

    func testRedirectToAnotherSchemeIsRefused() async throws {
        let server = try TestHTTPServer { _, _ in TestHTTPServer.redirect(to: "file:///etc/passwd") }
        await expectFailure(.unsupportedScheme, ImageFetcher(configuration: configuration()), server.url("/r"))
    }

    func testServerErrorIsRetriedUntilSuccess() async throws {
        let server = try TestHTTPServer { _, hit in
            hit == 1 ? TestHTTPServer.response(status: 500, body: Array("oops".utf8))
                     : TestHTTPServer.response(status: 200, body: Self.jpeg)
        }
        let image = try await ImageFetcher(configuration: configuration()).fetch(server.url("/flaky"))
        XCTAssertEqual(image.bytes, Self.jpeg)
        XCTAssertEqual(image.attempts, 2)
        XCTAssertEqual(server.hits("/flaky"), 2)
    }

    func testClientErrorsAreNotRetried() async throws {
        let server = try TestHTTPServer { request, _ in
            TestHTTPServer.response(status: request.path == "/missing" ? 404 : 403, body: Array("no".utf8))
        }
        let fetcher = ImageFetcher(configuration: configuration())
        let missing = await failure(fetcher, server.url("/missing"))
        XCTAssertEqual(missing?.class, .notFound)
        XCTAssertEqual(missing?.httpStatus, 404)
        XCTAssertEqual(missing?.attempts, 1)
        XCTAssertEqual(server.hits("/missing"), 1)
        let forbidden = await failure(fetcher, server.url("/private"))
        XCTAssertEqual(forbidden?.class, .httpStatus)
        XCTAssertEqual(forbidden?.httpStatus, 403)
        XCTAssertEqual(forbidden?.isRetriable, false)
        XCTAssertEqual(server.hits("/private"), 1)
    }

    func testPersistentServerErrorGivesUpAfterMaxAttempts() async throws {
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 503) }
        let error = await failure(ImageFetcher(configuration: configuration()), server.url("/down"))
        XCTAssertEqual(error?.class, .httpStatus)
        XCTAssertEqual(error?.httpStatus, 503)
        XCTAssertEqual(error?.isRetriable, true, "a later replay may succeed")
        XCTAssertEqual(error?.attempts, 3)
        XCTAssertEqual(server.hits("/down"), 3)
    }

    func testRetryBudgetBoundsTheTimeSpentOnOneURL() async throws {
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 503) }
        let fetcher = ImageFetcher(configuration: configuration {
            $0.retry = RetryPolicy(maxAttempts: 100, initialBackoff: .milliseconds(200), maxBackoff: .milliseconds(200),
                                   multiplier: 1, jitter: 0, totalBudget: .milliseconds(1000))
        })
        let error = await failure(fetcher, server.url("/down"))
        XCTAssertEqual(error?.class, .httpStatus)
        // Each retry waits 200 ms, so at most 4 retries fit into 1 s.
        XCTAssertLessThanOrEqual(server.hits("/down"), 5)
        XCTAssertGreaterThanOrEqual(server.hits("/down"), 2)
    }

    func testRetryBudgetCutsAnAttemptShort() async throws {
        // The response would arrive within the per-attempt timeout, but not within the budget.
        let server = try TestHTTPServer { _, _ in [.pause(2)] + TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let fetcher = ImageFetcher(configuration: configuration {
            $0.totalTimeout = .seconds(5)
            $0.retry.totalBudget = .milliseconds(400)
        })
        let error = await failure(fetcher, server.url("/slow"))
        XCTAssertEqual(error?.class, .timeout)
        XCTAssertEqual(error?.attempts, 1)
    }

    func testRetryAfterIsHonoured() async throws {
        let server = try TestHTTPServer { _, hit in
            hit == 1 ? TestHTTPServer.response(status: 429, headers: [("Retry-After", "1")])
                     : TestHTTPServer.response(status: 200, body: Self.jpeg)
        }
        let started = ContinuousClock.now
        let image = try await ImageFetcher(configuration: configuration()).fetch(server.url("/busy"))
        XCTAssertEqual(image.attempts, 2)
        // The backoff alone would be ≤ 20 ms; the server asked for a second.
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(950))
    }

    func testLongRetryAfterEndsRetrying() async throws {
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 429, headers: [("Retry-After", "3600")]) }
        let error = await failure(ImageFetcher(configuration: configuration()), server.url("/busy"))
        XCTAssertEqual(error?.class, .httpStatus)
        XCTAssertEqual(error?.httpStatus, 429)
        XCTAssertEqual(error?.attempts, 1)
        XCTAssertEqual(error?.isRetriable, true)
    }

    func testConnectionRefusedIsAConnectionError() async throws {
        let server = try TestHTTPServer { _, _ in [] }
        let url = server.url("/gone")
        server.stop()  // nothing listens on the port any more
        let fetcher = ImageFetcher(configuration: configuration { $0.retry.maxAttempts = 2 })
        let error = await failure(fetcher, url)
        XCTAssertEqual(error?.class, .connection)
        XCTAssertEqual(error?.isRetriable, true)
        XCTAssertEqual(error?.attempts, 2)
    }

    func testLoopbackIsRefusedByDefault() async throws {
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let fetcher = ImageFetcher(configuration: configuration { $0.allowPrivateNetworks = false })
        for url in [server.url("/x"), server.url("/x", host: "localhost"), server.url("/x", host: "[::ffff:127.0.0.1]"),
                    server.url("/x", host: "127.1"), server.url("/x", host: "2130706433")] {
            let error = await failure(fetcher, url)
            XCTAssertEqual(error?.class, .forbiddenAddress, url)
            XCTAssertEqual(error?.attempts, 1, url)
        }
        XCTAssertEqual(server.connectionCount, 0, "no connection may reach a forbidden address")
    }

    func testAllowListAdmitsOnlyItsRangeOnEveryRedirectHop() async throws {
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let fetcher = ImageFetcher(configuration: configuration {
            $0.allowPrivateNetworks = false
            $0.allowedAddressRanges = [IPAddressRange(cidr: "127.0.0.1/32")!]
        })
        let image = try await fetcher.fetch(server.url("/image"))
        XCTAssertEqual(image.bytes, Self.jpeg)

        // A hop to another loopback address is checked when it connects, not waved through.
        let redirecting = try TestHTTPServer { _, _ in TestHTTPServer.redirect(to: "http://127.0.0.2:\(server.port)/image") }
        let error = await failure(fetcher, redirecting.url("/hop"))
        XCTAssertEqual(error?.class, .forbiddenAddress)
        XCTAssertEqual(redirecting.hits("/hop"), 1)
    }

    func testCancellationAbortsTheTransfer() async throws {
        let server = try TestHTTPServer { _, _ in [.pause(5)] + TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let fetcher = ImageFetcher(configuration: configuration { $0.totalTimeout = .seconds(20) })
        let task = Task { try await fetcher.fetch(server.url("/slow")) }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("a cancelled fetch must not return bytes")
        } catch let error as FetchError {
            XCTAssertEqual(error.class, .cancelled)
        }
    }

    func testMalformedURLsAndOtherSchemes() async throws {
        let fetcher = ImageFetcher(configuration: configuration())
        let expectations: [(String, FetchError.Class)] = [
            ("", .badURL), ("not a url", .badURL), ("/just/a/path.jpg", .badURL), ("http:example.com/a.jpg", .badURL),
            ("http://", .badURL), ("http://exa mple.com/a.jpg", .badURL), ("1http://example.com", .badURL),
            ("http://example.com/\u{7}", .badURL), (String(repeating: "a", count: 9000), .badURL),
            ("ftp://example.com/a.jpg", .unsupportedScheme), ("gopher://example.com/", .unsupportedScheme),
            ("data:image/png;base64,iVBORw0KGgo=", .unsupportedScheme), ("javascript:alert(1)", .unsupportedScheme),
            ("dict://127.0.0.1:11211/stats", .unsupportedScheme),
        ]
        for (url, expected) in expectations {
            let error = await failure(fetcher, url)
            XCTAssertEqual(error?.class, expected, url)
            XCTAssertEqual(error?.attempts, 1, url)
        }
    }

    func testHTTPSSpeaksTLS() async throws {
        // A plain-HTTP server cannot answer a TLS handshake: the fetch must fail at the TLS
        // layer rather than fall back to plain text.
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let fetcher = ImageFetcher(configuration: configuration { $0.retry = .none })
        let error = await failure(fetcher, "https://127.0.0.1:\(server.port)/a")
        XCTAssertTrue([.connection, .tls].contains(error?.class), "\(String(describing: error))")
        XCTAssertEqual(server.tlsHandshakeCount, 1)
        XCTAssertEqual(server.hits("/a"), 0)
    }

    func testSchemeIsCaseInsensitive() async throws {
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let image = try await ImageFetcher(configuration: configuration()).fetch("HTTP://127.0.0.1:\(server.port)/a")
        XCTAssertEqual(image.format, .jpeg)
    }
}
