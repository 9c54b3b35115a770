import Foundation

/// Where clipd's migrations (`Schemas/postgres/NNNN_name.sql`) are found; `PostgresMigrator`
/// applies them. The caller (the executable) supplies the environment and its own path.
public enum ClipdSchema {
    /// Finds the migrations directory: an explicit path, else `$CLIPD_MIGRATIONS_DIR`, else
    /// `Schemas/postgres` under the current directory or beside/above the executable
    /// (`.build/<config>/clipd` in a checkout, or `<prefix>/share/clipd/Schemas/postgres`).
    public static func locateMigrationsDirectory(explicit: String?, environment: [String: String],
                                                 currentDirectory: String, executablePath: String) -> URL? {
        let fileManager = FileManager.default
        func isDirectory(_ url: URL) -> Bool {
            var isDir: ObjCBool = false
            return fileManager.fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue
        }
        if let explicit { return URL(fileURLWithPath: explicit) }
        if let fromEnvironment = environment["CLIPD_MIGRATIONS_DIR"], !fromEnvironment.isEmpty {
            return URL(fileURLWithPath: fromEnvironment)
        }
        var candidates = [URL(fileURLWithPath: currentDirectory).appendingPathComponent("Schemas/postgres")]
        var directory = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(directory.appendingPathComponent("Schemas/postgres"))
            candidates.append(directory.appendingPathComponent("share/clipd/Schemas/postgres"))
            directory = directory.deletingLastPathComponent()
        }
        return candidates.first(where: isDirectory)
    }
}
