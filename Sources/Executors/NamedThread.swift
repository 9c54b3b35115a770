import Foundation

/// Starts a detached thread named `name` that runs `body`.
///
/// The name is set by the thread itself: on Linux, Foundation does not apply a `Thread.name`
/// set before `start()`, nor a name longer than 15 bytes (the kernel's limit), and a new thread
/// inherits its creator's name instead (a pool thread started from a libdispatch worker would
/// show as `com.apple.root.default-qos`), so threads could not be told apart in
/// `/proc/<pid>/task/*/comm`, `top -H` or a debugger.
public func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        setCurrentThreadName(name)
        body()
    }
    thread.start()
}

/// Names the calling thread: the longest prefix of `name` that fits in 15 bytes.
public func setCurrentThreadName(_ name: String) {
    var fitting = ""
    for character in name {
        guard fitting.utf8.count + character.utf8.count <= 15 else { break }
        fitting.append(character)
    }
    Thread.current.name = fitting
}
