import Executors
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What a finished `clipd` command left: its exit status and everything it wrote.
public struct ClipdResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// stdout's non-empty lines.
    public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// The environment a `clipd` child runs with: this process's, without OPENBLAS_CORETYPE, plus `overrides`.
func clipdEnvironment(_ overrides: [String: String]) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    environment["OPENBLAS_CORETYPE"] = nil
    for (key, value) in overrides { environment[key] = value }
    return environment
}

/// Writes `data` to a child's stdin and closes it, on a thread of its own with SIGPIPE blocked: a
/// child that exits without reading its input makes the write fail quietly, never kills the tests.
/// `done` is signalled when the write finished (or failed).
func feed(_ handle: FileHandle, _ data: Data, done: DispatchGroup? = nil) {
    done?.enter()
    let thread = Thread {
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &blocked, nil)
        if !data.isEmpty { try? handle.write(contentsOf: data) }
        try? handle.close()
        done?.leave()
    }
    thread.start()
}

/// Runs the built `clipd` to completion and captures its exit status, stdout and stderr.
/// `stdin` is written to its standard input (closed either way); `environment` is added to this
/// process's. A command still running after `timeout` seconds is killed and reported as an error.
@discardableResult
public func runClipd(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil,
                     timeout: Double = 600) throws -> ClipdResult {
    let process = Process()
    process.executableURL = try Repository.requireClipd()
    process.arguments = arguments
    process.environment = clipdEnvironment(environment)
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    let exited = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in exited.signal() }
    try process.run()
    // Drain both pipes concurrently so a chatty child cannot block on a full pipe.
    let io = DispatchGroup()
    let outData = Locked(Data()), errData = Locked(Data())
    for (pipe, sink) in [(out, outData), (err, errData)] {
        io.enter()
        Thread {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            sink.withLock { $0 = data }
            io.leave()
        }.start()
    }
    feed(input.fileHandleForWriting, Data((stdin ?? "").utf8), done: io)
    if exited.wait(timeout: .now() + timeout) == .timedOut {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        io.wait()
        throw TestSetupError("clipd \(arguments.first ?? "") did not finish within \(timeout) s; stderr: \(String(decoding: errData.value, as: UTF8.self).suffix(2000))")
    }
    process.waitUntilExit()
    io.wait()
    return ClipdResult(status: process.terminationStatus, stdout: String(decoding: outData.value, as: UTF8.self),
                       stderr: String(decoding: errData.value, as: UTF8.self))
}

/// A JSON object parsed from one line of output; empty when the line is not one.
public func jsonObject(_ line: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
}

/// Asserts a command failed with a one-line error message containing `words`.
public func assertCleanFailure(_ r: ClipdResult, mentioning words: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertNotEqual(r.status, 0, "expected failure; stdout: \(r.stdout)", file: file, line: line)
    let errorLines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
    XCTAssertEqual(errorLines.count, 1, "stderr: \(r.stderr)", file: file, line: line)
    for w in words { XCTAssertTrue(r.stderr.contains(w), "stderr lacks \(w): \(r.stderr)", file: file, line: line) }
    XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr, file: file, line: line)
}

/// A `clipd` process running in the background (a daemon, the dev broker, a command the test
/// waits for asynchronously), its output captured to files that can be read at any time.
public final class BackgroundProcess: @unchecked Sendable {
    public let process = Process()
    public let stdoutURL: URL
    public let stderrURL: URL
    private let stdin = Pipe()

    /// Starts `clipd arguments`. With `stdin` data, that is its whole input (stdin is closed after
    /// it); without, stdin stays open for `write(_:)` and `command(_:)`. `name` names the output files.
    public init(_ arguments: [String], environment: [String: String] = [:], name: String? = nil, stdin input: Data? = nil) throws {
        let name = name ?? arguments.first ?? "clipd"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-proc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        stdoutURL = dir.appendingPathComponent("\(name).out")
        stderrURL = dir.appendingPathComponent("\(name).err")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = try Repository.requireClipd()
        process.arguments = arguments
        process.environment = clipdEnvironment(environment)
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = stdin
        try process.run()
        if let input { feed(stdin.fileHandleForWriting, input) }
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

    /// Writes one line to stdin.
    public func write(_ line: String) {
        stdin.fileHandleForWriting.write((line + "\n").data(using: .utf8)!)
    }

    /// Writes one command line to stdin and waits for its one-line reply on stdout.
    public func command(_ line: String, timeout: Duration = .seconds(60)) async throws -> String {
        let before = stdout.split(separator: "\n").count
        write(line)
        try await waitUntil("a reply to \(line)", timeout: timeout) { self.stdout.split(separator: "\n").count > before }
        return String(stdout.split(separator: "\n")[before])
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

    /// Waits for exit without blocking a thread; throws `TimedOut` at the deadline.
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await waitUntil("clipd \(process.arguments?.first ?? "") to exit", timeout: timeout) { !self.process.isRunning }
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL if still running after 10 s.
    public func stop() {
        signal(SIGTERM)
        if wait(timeout: 10) == nil { signal(SIGKILL); wait(timeout: 5) }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}
