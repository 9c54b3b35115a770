import Foundation
import Logging

/// A condition did not hold by its deadline.
public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public init(what: String) { self.what = what }
    public var description: String { "timed out waiting for \(what)" }
}

/// Polls `condition` every `interval` until it holds; throws `TimedOut` (naming `what`) once
/// `timeout` has passed without it holding.
public func waitUntil(_ what: String, timeout: Duration = .seconds(60), interval: Duration = .milliseconds(20),
                      _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        if ContinuousClock.now >= deadline { throw TimedOut(what: what) }
        try await Task.sleep(for: interval)
    }
}

/// Polls `condition` every `interval` until it holds or `timeout` passes, then checks it once
/// more; returns whether it held (for tests that assert with their own message).
public func eventually(timeout: Duration, interval: Duration = .milliseconds(20),
                       _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}

/// A logger for test code, quiet by default: only `level` and above. When `levelVariable` names
/// an environment variable holding a level (trace, debug, info, notice, warning, error, critical),
/// that level wins, so a failing run can be repeated with more output.
public func makeTestLogger(_ label: String, level: Logger.Level = .warning, levelVariable: String? = nil) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = levelVariable.flatMap { ProcessInfo.processInfo.environment[$0] }.flatMap(Logger.Level.init(rawValue:)) ?? level
    return logger
}

/// Waits for `operation` at most `seconds`, failing with `what` when it takes longer.
public func withTimeout<T: Sendable>(_ seconds: Double, _ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TestSetupError("timed out after \(seconds)s waiting for \(what)")
        }
        let value = try await group.next()!
        group.cancelAll()
        return value
    }
}
