import Foundation

/// Paths of the repository, its test fixtures and the built `clipd` executable.
public enum Repository {
    /// The package root (the folder holding Package.swift).
    public static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// Tests/Fixtures: images, models and tokenizer references shared by the test targets.
    public static let fixtures = root.appendingPathComponent("Tests/Fixtures")
    /// Schemas/postgres: the migrations `clipd migrate` applies.
    public static let migrations = root.appendingPathComponent("Schemas/postgres")

    /// Where the `clipd` executable is looked for, first match wins: $CLIPD_BINARY; beside the
    /// test runner (`swift build --build-tests` puts the products there, whatever --scratch-path
    /// was) or one folder up; .build/debug/clipd.
    public static var clipdCandidates: [URL] {
        if let path = ProcessInfo.processInfo.environment["CLIPD_BINARY"], !path.isEmpty {
            return [URL(fileURLWithPath: path)]
        }
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        return [runner.appendingPathComponent("clipd"),
                runner.deletingLastPathComponent().appendingPathComponent("clipd"),
                root.appendingPathComponent(".build/debug/clipd")]
    }

    /// The built `clipd` executable (the first candidate when none exists; `requireClipd()` says why).
    public static var clipd: URL {
        let candidates = clipdCandidates
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    /// The built `clipd` executable, or an error naming every place searched.
    public static func requireClipd() throws -> URL {
        let candidates = clipdCandidates
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw MissingExecutable(searched: candidates.map(\.path))
        }
        return found
    }
}

/// No built `clipd` executable was found.
public struct MissingExecutable: Error, CustomStringConvertible {
    public let searched: [String]
    public var description: String {
        "no built clipd executable (run `swift build --build-tests` first or set CLIPD_BINARY); looked at \(searched)"
    }
}
