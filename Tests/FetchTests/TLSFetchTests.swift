import Foundation
import XCTest
@testable import Fetch

/// https through a real TLS server (`openssl s_server`) with a certificate made for the test:
/// verification is on, a configured CA file is honoured, failures are class `tls`.
final class TLSFetchTests: XCTestCase {
    private var directory: URL!
    private var server: Process?
    private var port = 0
    private let jpeg: [UInt8] = (try? FixturePaths.bytes("chelsea_16x16.jpg")) ?? []

    override func setUpWithError() throws {
        guard let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("openssl is not installed (Deploy/dev/install-deps.sh installs it)")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("fetch-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(jpeg).write(to: directory.appendingPathComponent("cat.jpg"))

        let makeCertificate = Process()
        makeCertificate.executableURL = URL(fileURLWithPath: openssl)
        makeCertificate.currentDirectoryURL = directory
        makeCertificate.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                     "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
                                     "-addext", "subjectAltName=IP:127.0.0.1"]
        makeCertificate.standardError = FileHandle.nullDevice
        try makeCertificate.run()
        makeCertificate.waitUntilExit()
        XCTAssertEqual(makeCertificate.terminationStatus, 0, "openssl req failed")

        // -WWW serves files from the working directory over HTTP/1.0.
        let serverProcess = Process()
        serverProcess.executableURL = URL(fileURLWithPath: openssl)
        serverProcess.currentDirectoryURL = directory
        serverProcess.arguments = ["s_server", "-accept", "127.0.0.1:0", "-cert", "cert.pem", "-key", "key.pem", "-WWW"]
        let output = Pipe()
        serverProcess.standardOutput = output
        serverProcess.standardError = FileHandle.nullDevice
        try serverProcess.run()
        server = serverProcess
        port = try Self.readAcceptedPort(output.fileHandleForReading)
    }

    override func tearDown() {
        server?.terminate()
        server?.waitUntilExit()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    struct ServerDidNotStart: Error { let output: String }

    /// s_server prints "ACCEPT 127.0.0.1:PORT" once it listens.
    private static func readAcceptedPort(_ handle: FileHandle) throws -> Int {
        var text = ""
        let deadline = Date(timeIntervalSinceNow: 10)
        while Date() < deadline {
            var descriptor = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            let data = handle.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT") }),
               let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                return port
            }
        }
        throw ServerDidNotStart(output: text)
    }

    func testSelfSignedCertificateIsRejectedByDefault() async throws {
        let fetcher = ImageFetcher(configuration: FetchConfiguration(retry: .none, allowPrivateNetworks: true))
        do {
            _ = try await fetcher.fetch("https://127.0.0.1:\(port)/cat.jpg")
            XCTFail("an untrusted certificate must not be accepted")
        } catch {
            XCTAssertEqual(error.class, .tls, error.description)
            XCTAssertFalse(error.isRetriable)
        }
    }

    func testConfiguredCAIsTrusted() async throws {
        let fetcher = ImageFetcher(configuration: FetchConfiguration(
            retry: .none, allowPrivateNetworks: true,
            caCertificatesPath: directory.appendingPathComponent("cert.pem").path))
        let image = try await fetcher.fetch("https://127.0.0.1:\(port)/cat.jpg")
        XCTAssertEqual(image.bytes, jpeg)
        XCTAssertEqual(image.format, .jpeg)
    }
}
