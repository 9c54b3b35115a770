import Executors
import Foundation
import XCTest
@testable import Fetch

/// Per-host politeness against `TestHTTPServer`: `127.0.0.1` and `localhost` reach the same
/// server but are two hosts to the fetcher.
final class PoliteFetchTests: XCTestCase {
    private static let jpeg: [UInt8] = (try? FixturePaths.bytes("chelsea_16x16.jpg")) ?? []

    private func configuration(_ adjust: (inout FetchConfiguration) -> Void = { _ in }) -> FetchConfiguration {
        var configuration = FetchConfiguration(
            connectTimeout: .seconds(2), totalTimeout: .seconds(10), maxBytes: 1 << 20,
            retry: RetryPolicy(maxAttempts: 1, totalBudget: .seconds(30)), allowPrivateNetworks: true, userAgent: "clipd-polite-test",
            maxConcurrentTransfers: 16)
        configuration.hostMinInterval = .zero
        adjust(&configuration)
        return configuration
    }

    private func fetchAll(_ fetcher: ImageFetcher, _ urls: [String]) async -> [Result<FetchedImage, FetchError>] {
        await withTaskGroup(of: (Int, Result<FetchedImage, FetchError>).self) { group in
            for (index, url) in urls.enumerated() {
                group.addTask {
                    do { return (index, .success(try await fetcher.fetch(url))) } catch let error as FetchError { return (index, .failure(error)) } catch { return (index, .failure(FetchError(.io, "\(error)"))) }
                }
            }
            var results = [Result<FetchedImage, FetchError>?](repeating: nil, count: urls.count)
            for await (index, result) in group { results[index] = result }
            return results.map { $0! }
        }
    }

    func testTransfersToOneHostAreLimitedWhileAnotherHostIsNot() async throws {
        let server = try TestHTTPServer { _, _ in [.pause(0.15)] + TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let polite = ImageFetcher(configuration: configuration { $0.hostConcurrency = 2 })
        let results = await fetchAll(polite, (0..<8).map { server.url("/a\($0).jpg") })
        XCTAssertTrue(results.allSatisfy { if case .success = $0 { true } else { false } })
        XCTAssertEqual(server.peakOpenConnections, 2, "at most two transfers to 127.0.0.1 at once")

        // Two hosts: each gets its own two slots.
        let both = try TestHTTPServer { _, _ in [.pause(0.3)] + TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let urls = (0..<4).map { both.url("/b\($0).jpg") } + (0..<4).map { both.url("/c\($0).jpg", host: "localhost") }
        _ = await fetchAll(ImageFetcher(configuration: configuration { $0.hostConcurrency = 2 }), urls)
        XCTAssertGreaterThan(both.peakOpenConnections, 2, "a second host is not held back by the first one's limit")
        XCTAssertLessThanOrEqual(both.peakOpenConnections, 4)
    }

    func testMinimumIntervalSpacesTheStartsOfTransfersToOneHost() async throws {
        let starts = Locked([Date]())
        let server = try TestHTTPServer { _, _ in
            starts.withLock { $0.append(Date()) }
            return TestHTTPServer.response(status: 200, body: Self.jpeg)
        }
        let fetcher = ImageFetcher(configuration: configuration { $0.hostConcurrency = 8; $0.hostMinInterval = .milliseconds(150) })
        let began = Date()
        _ = await fetchAll(fetcher, (0..<5).map { server.url("/i\($0).jpg") })
        let times = starts.value.sorted()
        XCTAssertEqual(times.count, 5)
        // The fifth start is released no earlier than 4 × 150 ms after the first request.
        XCTAssertGreaterThanOrEqual(times[4].timeIntervalSince(began), 0.6)
    }

    func testRetryAfterHoldsBackTheWholeHost() async throws {
        let arrivals = Locked([String]())
        let server = try TestHTTPServer { request, _ in
            arrivals.withLock { $0.append(request.path) }
            if request.path == "/busy.jpg" { return TestHTTPServer.response(status: 429, headers: [("Retry-After", "2")]) }
            return TestHTTPServer.response(status: 200, body: Self.jpeg)
        }
        let fetcher = ImageFetcher(configuration: configuration())
        _ = await fetchAll(fetcher, [server.url("/busy.jpg")])
        // Another URL on the same host waits for the Retry-After; another host does not.
        let started = Date()
        let results = await fetchAll(fetcher, [server.url("/fine.jpg"), server.url("/other.jpg", host: "localhost")])
        XCTAssertTrue(results.allSatisfy { if case .success = $0 { true } else { false } })
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 1.5, "127.0.0.1 was asked to wait 2 s")
        XCTAssertEqual(arrivals.value, ["/busy.jpg", "/other.jpg", "/fine.jpg"], "localhost went ahead of the held-back host")
    }

    func testAHostThatKeepsFailingIsBackedOffWithoutStallingOthers() async throws {
        // Port 9 (discard) refuses connections on loopback.
        let dead = "http://127.0.0.1:9"
        let server = try TestHTTPServer { _, _ in TestHTTPServer.response(status: 200, body: Self.jpeg) }
        let fetcher = ImageFetcher(configuration: configuration {
            $0.hostFailuresBeforeBackoff = 3
            $0.hostBackoff = .seconds(60)
            $0.retry = RetryPolicy(maxAttempts: 1, totalBudget: .seconds(5))
        })
        for i in 0..<3 {
            do { _ = try await fetcher.fetch("\(dead)/\(i).jpg"); XCTFail("connection refused expected") } catch {
                XCTAssertEqual(error.class, .connection)
            }
        }
        // Backed off past the request's budget: refused at once, without a connection attempt.
        do { _ = try await fetcher.fetch("\(dead)/3.jpg"); XCTFail("backed off") } catch {
            XCTAssertEqual(error.class, .connection)
            XCTAssertTrue(error.message.contains("backed off"), error.message)
            XCTAssertTrue(error.isRetriable, "a later replay may succeed")
        }
        // Another host is served as usual.
        let image = try await fetcher.fetch(server.url("/ok.jpg", host: "localhost"))
        XCTAssertEqual(image.bytes, Self.jpeg)
    }

    func testUserAgentAndPerHostHeadersGoOnlyToTheirHost() async throws {
        let seen = Locked([String: [String: String]]())
        let server = try TestHTTPServer { request, _ in
            seen.withLock { $0[request.path] = request.headers }
            if request.path == "/hop.jpg" { return TestHTTPServer.redirect(to: "http://localhost:\(0)/elsewhere.jpg") }
            return TestHTTPServer.response(status: 200, body: Self.jpeg)
        }
        let hostKey = "127.0.0.1:\(server.port)"
        let fetcher = ImageFetcher(configuration: configuration {
            $0.userAgent = "clipd-polite-test/2"
            $0.hostHeaders = [hostKey: ["Authorization": "Bearer s3cr3t", "X-Bucket": "private"]]
        })
        _ = try await fetcher.fetch(server.url("/mine.jpg"))
        _ = try await fetcher.fetch(server.url("/theirs.jpg", host: "localhost"))
        let mine = seen.value["/mine.jpg"] ?? [:], theirs = seen.value["/theirs.jpg"] ?? [:]
        XCTAssertEqual(mine["authorization"], "Bearer s3cr3t")
        XCTAssertEqual(mine["x-bucket"], "private")
        XCTAssertEqual(mine["user-agent"], "clipd-polite-test/2")
        XCTAssertNil(theirs["authorization"], "headers of one host never go to another")
        XCTAssertEqual(theirs["user-agent"], "clipd-polite-test/2")
        // A redirect away from a request carrying the headers is not followed, and the failure
        // does not repeat the header's value.
        do { _ = try await fetcher.fetch(server.url("/hop.jpg")); XCTFail("redirect must not be followed") } catch {
            XCTAssertEqual(error.class, .httpStatus)
            XCTAssertFalse(error.message.contains("s3cr3t"), error.message)
        }
        XCTAssertNil(seen.value["/elsewhere.jpg"])
    }

    func testHostIsTheLowerCasedAuthorityWithoutCredentials() {
        XCTAssertEqual(HostGate.host(of: "https://Images.Example.com/a.jpg"), "images.example.com")
        XCTAssertEqual(HostGate.host(of: "http://user:pw@example.com:8080/a?b#c"), "example.com:8080")
        XCTAssertNil(HostGate.host(of: "not a url"))
    }
}
