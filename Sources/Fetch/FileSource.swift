import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads `file://` URLs, but only below the configured root directories. Blocking: runs on
/// the fetcher's worker threads.
struct FileSource: Sendable {
    /// Roots with symlinks and `..` resolved; roots that do not exist are left out.
    let roots: [String]
    let maxBytes: Int

    init(roots: [String], maxBytes: Int) {
        self.roots = roots.compactMap(Self.resolve)
        self.maxBytes = maxBytes
    }

    static func resolve(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    func isUnderRoot(_ path: String) -> Bool {
        roots.contains { root in root == "/" || path == root || path.hasPrefix(root + "/") }
    }

    /// Reads the file a `file:` URL names. `url` is the URL string as given.
    func load(_ url: String) -> Result<[UInt8], FetchError> {
        guard let components = URLComponents(string: url) else {
            return .failure(FetchError(.badURL, "malformed file URL \(url)"))
        }
        if let host = components.host, !host.isEmpty, host.lowercased() != "localhost" {
            return .failure(FetchError(.badURL, "file URL with remote host '\(host)' is not supported: \(url)"))
        }
        guard let path = components.percentEncodedPath.removingPercentEncoding,
              path.hasPrefix("/"), !path.contains("\0") else {
            return .failure(FetchError(.badURL, "file URL without an absolute path: \(url)"))
        }
        guard !roots.isEmpty else {
            return .failure(FetchError(.fileNotAllowed, "file URLs are disabled (no allowed roots configured): \(url)"))
        }
        guard let resolved = Self.resolve(path) else {
            let missing = errno == ENOENT || errno == ENOTDIR
            // Only say "missing" for paths that would have been allowed, so probing outside
            // the roots learns nothing about what exists there.
            let lexical = URL(fileURLWithPath: path).standardizedFileURL.path
            if missing && isUnderRoot(lexical) {
                return .failure(FetchError(.notFound, "no such file \(path)"))
            }
            if isUnderRoot(lexical) {
                return .failure(FetchError(.io, "cannot resolve \(path): \(String(cString: strerror(errno)))"))
            }
            return .failure(FetchError(.fileNotAllowed, "\(path) is outside the allowed roots"))
        }
        guard isUnderRoot(resolved) else {
            let shown = resolved == path ? path : "\(path) (resolved to \(resolved))"
            return .failure(FetchError(.fileNotAllowed, "\(shown) is outside the allowed roots"))
        }
        return readFile(at: resolved)
    }

    private func readFile(at path: String) -> Result<[UInt8], FetchError> {
        // O_NOFOLLOW: the path was just resolved, a symlink here means it was swapped since.
        // O_NONBLOCK: a FIFO must not hang the worker; it is rejected below as not regular.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            return .failure(FetchError(errno == ENOENT ? .notFound : .io, "cannot open \(path): \(reason)"))
        }
        defer { close(descriptor) }
        #if os(Linux)
        // What was actually opened, immune to the path changing between realpath and open.
        if let opened = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)"),
           !isUnderRoot(opened) {
            return .failure(FetchError(.fileNotAllowed, "\(path) was replaced by \(opened), outside the allowed roots"))
        }
        #endif
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            return .failure(FetchError(.io, "cannot stat \(path): \(String(cString: strerror(errno)))"))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            return .failure(FetchError(.fileNotAllowed, "\(path) is not a regular file"))
        }
        guard Int(info.st_size) <= maxBytes else {
            return .failure(FetchError(.tooLarge, "\(path) has \(info.st_size) bytes, more than the limit of \(maxBytes)"))
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var filled = 0
        while true {
            if filled == bytes.count {
                // The file grew after fstat; keep reading but never past the cap.
                guard bytes.count <= maxBytes else {
                    return .failure(FetchError(.tooLarge, "\(path) grew past the limit of \(maxBytes) bytes"))
                }
                bytes.append(contentsOf: repeatElement(0, count: min(bytes.count, maxBytes + 1 - bytes.count)))
            }
            let count = bytes.withUnsafeMutableBytes { buffer in
                read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(FetchError(.io, "cannot read \(path): \(String(cString: strerror(errno)))"))
            }
            if count == 0 { break }
            filled += count
        }
        bytes.removeSubrange(filled...)
        return .success(bytes)
    }
}
