import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real browser for page tests: Debian's `chromium --headless` driven over the DevTools
/// protocol on a pipe (`--remote-debugging-pipe`: requests on fd 3, replies and events on fd 4,
/// each a JSON object ended by a NUL byte), attached to one page target.
public final class HeadlessChromium: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// The browser executable, or nil when none is installed.
    public static var executable: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private let pid: pid_t
    private let toBrowser: Int32
    private let fromBrowser: Int32
    private var buffer: [UInt8] = []
    private var nextID = 1
    private var session: String?
    private let profile: URL
    public let logPath: String

    public init(executable: String, windowSize: (Int, Int) = (1280, 900)) throws {
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("clipd-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        logPath = profile.appendingPathComponent("chromium.log").path
        var requests: [Int32] = [0, 0], replies: [Int32] = [0, 0]
        guard pipe(&requests) == 0, pipe(&replies) == 0 else { throw Failure("pipe failed: \(errno)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, requests[0], 3)
        posix_spawn_file_actions_adddup2(&actions, replies[1], 4)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let arguments = [executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-dev-shm-usage", "--disable-extensions", "--user-data-dir=\(profile.path)",
                         "--window-size=\(windowSize.0),\(windowSize.1)", "about:blank"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, nil, &argv, environ)
        Glibc.close(requests[0])
        Glibc.close(replies[1])
        guard status == 0 else {
            Glibc.close(requests[1])
            Glibc.close(replies[0])
            throw Failure("cannot start \(executable): \(String(cString: strerror(status)))")
        }
        pid = child
        toBrowser = requests[1]
        fromBrowser = replies[0]
    }

    deinit {
        close()
    }

    private var closed = false

    /// Ends the browser and removes its profile.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = try? send("Browser.close", timeout: 5, inSession: false)
        Glibc.close(toBrowser)
        Glibc.close(fromBrowser)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        try? FileManager.default.removeItem(at: profile)
    }

    /// Sends one command and returns its `result` (events in between are skipped).
    @discardableResult
    public func send(_ method: String, _ params: [String: Any] = [:], timeout: Double = 30, inSession: Bool = true) throws -> [String: Any] {
        let id = nextID
        nextID += 1
        var message: [String: Any] = ["id": id, "method": method, "params": params]
        if inSession, let session { message["sessionId"] = session }
        var data = try JSONSerialization.data(withJSONObject: message)
        data.append(0)
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(toBrowser, raw.baseAddress! + offset, raw.count - offset)
                guard n > 0 else { throw Failure("writing to the browser failed (errno \(errno)); log: \(logPath)") }
                offset += n
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let reply = try readMessage(deadline: deadline, what: method)
            guard (reply["id"] as? Int) == id else { continue }
            if let error = reply["error"] as? [String: Any] { throw Failure("\(method): \(error)") }
            return reply["result"] as? [String: Any] ?? [:]
        }
    }

    private func readMessage(deadline: Date, what: String) throws -> [String: Any] {
        while true {
            if let end = buffer.firstIndex(of: 0) {
                let message = Array(buffer[..<end])
                buffer.removeSubrange(...end)
                guard let object = try JSONSerialization.jsonObject(with: Data(message)) as? [String: Any] else { continue }
                return object
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw Failure("no reply to \(what) in time; log: \(logPath)") }
            var descriptor = pollfd(fd: fromBrowser, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(remaining, 1) * 1000))
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(fromBrowser, &chunk, chunk.count)
            guard n > 0 else { throw Failure("the browser closed its pipe; log: \(logPath)") }
            buffer += chunk[..<n]
        }
    }

    /// Attaches to the first page target; later commands go to it.
    public func attachToPage() throws {
        let targets = try send("Target.getTargets", inSession: false)["targetInfos"] as? [[String: Any]] ?? []
        let targetID: String
        if let page = targets.first(where: { $0["type"] as? String == "page" }), let id = page["targetId"] as? String {
            targetID = id
        } else {
            guard let id = try send("Target.createTarget", ["url": "about:blank"], inSession: false)["targetId"] as? String else {
                throw Failure("no page target")
            }
            targetID = id
        }
        guard let id = try send("Target.attachToTarget", ["targetId": targetID, "flatten": true], inSession: false)["sessionId"] as? String else {
            throw Failure("cannot attach to the page")
        }
        session = id
    }

    /// The value of a JavaScript expression (awaited when it is a promise).
    public func evaluate(_ expression: String) throws -> Any? {
        let result = try send("Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true])
        if let exception = result["exceptionDetails"] { throw Failure("\(expression): \(exception)") }
        return (result["result"] as? [String: Any])?["value"]
    }

    /// Polls `expression` until it is true.
    public func waitFor(_ expression: String, timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try evaluate(expression) as? Bool) == true { return }
            usleep(100_000)
        }
        throw Failure("timed out waiting for \(expression)")
    }

    /// Types `text` into the focused element, as a keyboard would, then presses Enter.
    public func type(_ text: String, pressEnter: Bool = true) throws {
        try send("Input.insertText", ["text": text])
        if pressEnter {
            for type in ["keyDown", "keyUp"] {
                var params: [String: Any] = ["type": type, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13]
                if type == "keyDown" { params["text"] = "\r" }
                try send("Input.dispatchKeyEvent", params)
            }
        }
    }

    /// A PNG of the page as it is drawn now.
    public func screenshot() throws -> Data {
        guard let base64 = try send("Page.captureScreenshot", ["format": "png"])["data"] as? String, let data = Data(base64Encoded: base64) else {
            throw Failure("no screenshot data")
        }
        return data
    }
}
