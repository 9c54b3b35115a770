import Foundation
import Storage
import Testing

@Suite("Locating the migrations")
struct ClipdSchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("the migrations directory is found from a flag, the environment, the working directory or beside the executable")
    func locate() throws {
        #expect(ClipdSchema.locateMigrationsDirectory(explicit: "/x/y", environment: [:], currentDirectory: "/", executablePath: "")?.path == "/x/y")
        #expect(ClipdSchema.locateMigrationsDirectory(explicit: nil, environment: ["CLIPD_MIGRATIONS_DIR": "/env/dir"],
                                                      currentDirectory: "/", executablePath: "")?.path == "/env/dir")
        let beside = ClipdSchema.locateMigrationsDirectory(
            explicit: nil, environment: [:], currentDirectory: "/nonexistent", executablePath: Self.root.appendingPathComponent(".build/release/clipd").path)
        #expect(beside?.standardizedFileURL.path == Self.root.appendingPathComponent("Schemas/postgres").standardizedFileURL.path)
        let here = ClipdSchema.locateMigrationsDirectory(explicit: nil, environment: [:], currentDirectory: Self.root.path, executablePath: "/nonexistent/clipd")
        #expect(here?.standardizedFileURL.path == Self.root.appendingPathComponent("Schemas/postgres").standardizedFileURL.path)
        #expect(ClipdSchema.locateMigrationsDirectory(explicit: nil, environment: [:], currentDirectory: "/nonexistent", executablePath: "/nonexistent/clipd") == nil)
    }
}
