import ArgumentParser
import Fetch
import Foundation

/// `clipd fetch URL`: one fetch with the daemon's limits and SSRF guard, for checking what a
/// record's image_url yields (format, size, redirects, error class) without running the daemon.
struct FetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Fetch an image URL (http, https, or file under --file-root) and print a JSON summary.")

    @Argument(help: "The image URL.")
    var url: String

    @Option(help: "Write the fetched bytes to this file.")
    var output: String?

    @Option(name: .customLong("file-root"), help: "A directory that file:// URLs may read (repeatable).")
    var fileRoots: [String] = []

    @Flag(help: "Allow loopback, private and link-local addresses (development only).")
    var allowPrivateNetworks = false

    @Option(name: .customLong("ca-file"), help: "PEM bundle of CA certificates to trust for https instead of the system's.")
    var caFile: String?

    @Option(help: "Seconds allowed per attempt.")
    var timeout: Double = 20

    @Option(help: "Largest body accepted, in bytes.")
    var maxBytes: Int = 20 << 20

    @Option(help: "Attempts in all (1 = no retries).")
    var attempts: Int = 3

    func validate() throws {
        try FlagRange.checkPositive(timeout, "--timeout", atMost: 3600)
        try FlagRange.check(maxBytes, "--max-bytes", 1...(1 << 30))
        try FlagRange.check(attempts, "--attempts", 1...100)
    }

    private struct Summary: Encodable {
        let url: String
        let finalURL: String
        let format: String
        let bytes: Int
        let attempts: Int
        enum CodingKeys: String, CodingKey {
            case url, finalURL = "final_url", format, bytes, attempts
        }
    }

    func run() async throws {
        var retry = RetryPolicy()
        retry.maxAttempts = attempts
        let fetcher = ImageFetcher(configuration: FetchConfiguration(
            totalTimeout: .milliseconds(Int64(timeout * 1000)), maxBytes: maxBytes, retry: retry,
            allowedFileRoots: fileRoots, allowPrivateNetworks: allowPrivateNetworks, caCertificatesPath: caFile))
        let image = try await fetcher.fetch(url)
        if let output {
            try Data(image.bytes).write(to: URL(fileURLWithPath: output), options: .atomic)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let summary = Summary(url: url, finalURL: image.finalURL, format: image.format.rawValue,
                              bytes: image.bytes.count, attempts: image.attempts)
        print(String(decoding: try encoder.encode(summary), as: UTF8.self))
    }
}
