import Foundation
#if canImport(Glibc)
import Glibc
#endif

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
///
/// On Linux it writes `/proc/thread-self/comm` (what `pthread_setname_np` does, which Glibc's
/// Swift module does not export): Foundation's `Thread.current.name` setter names the thread
/// only once the creating thread has recorded the new thread's id, a race a thread that names
/// itself first thing often loses.
public func setCurrentThreadName(_ name: String) {
    var fitting = ""
    for character in name {
        guard fitting.utf8.count + character.utf8.count <= 15 else { break }
        fitting.append(character)
    }
    #if os(Linux)
    let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    if descriptor >= 0 {
        defer { close(descriptor) }
        let bytes = Array(fitting.utf8)
        if bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == bytes.count { return }
    }
    #endif
    Thread.current.name = fitting
}
