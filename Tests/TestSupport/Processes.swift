import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Paths of the repository and the built `clipd` executable, for tests that run it.
public enum Repository {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let fixtures = root.appendingPathComponent("Tests/Fixtures")

    public static var clipd: URL {
        let bundle = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle, bundle.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("clipd")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return root.appendingPathComponent(".build/debug/clipd")
    }
}

/// A `clipd` process running in the background, its output captured to files.
public final class BackgroundProcess: @unchecked Sendable {
    public let process = Process()
    public let stdoutURL: URL
    public let stderrURL: URL
    private let stdin = Pipe()

    public init(_ arguments: [String], environment: [String: String] = [:], name: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-proc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        stdoutURL = dir.appendingPathComponent("\(name).out")
        stderrURL = dir.appendingPathComponent("\(name).err")
        FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = Repository.clipd
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = nil
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = stdin
        try process.run()
    }

    public var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// Waits until stdout has a first line, or the deadline.
    public func firstLine(timeout: Double = 20) -> String? {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let line = stdout.split(separator: "\n").first, stdout.contains("\n") { return String(line) }
            if !process.isRunning { return nil }
            usleep(20_000)
        }
        return nil
    }

    public func write(_ line: String) {
        stdin.fileHandleForWriting.write((line + "\n").data(using: .utf8)!)
    }

    public func signal(_ sig: Int32) {
        if process.isRunning { kill(process.processIdentifier, sig) }
    }

    /// Waits for exit; nil if still running at the deadline.
    @discardableResult
    public func wait(timeout: Double) -> Int32? {
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    public func stop() {
        signal(SIGTERM)
        if wait(timeout: 10) == nil { signal(SIGKILL); wait(timeout: 5) }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// Runs `clipd` to completion.
public func runClipd(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 120) throws -> (status: Int32, stdout: String, stderr: String) {
    let p = try BackgroundProcess(arguments, environment: environment, name: "cmd")
    guard let status = p.wait(timeout: timeout) else {
        p.signal(SIGKILL)
        throw TCPRelayError("clipd \(arguments.first ?? "") did not finish within \(timeout) s; stderr: \(p.stderr.suffix(2000))")
    }
    return (status, p.stdout, p.stderr)
}

public struct TCPRelayError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
