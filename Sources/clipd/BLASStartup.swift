import Foundation
import Tensor
#if canImport(Glibc)
import Glibc
#endif

/// How the running BLAS kernel was chosen, for the start-up log line and `clipd bench`.
struct BLASSelection: Sendable {
    enum Source: String, Sendable { case detected, autoSelected = "auto-selected", user }
    let kernel: String
    let source: Source
    /// What OpenBLAS detected by itself before clipd overrode it.
    let detected: String?

    var summary: String {
        switch source {
        case .detected: return "BLAS kernel \(kernel) (detected by OpenBLAS), \(BLASKernel.threads) threads"
        case .autoSelected: return "BLAS kernel \(kernel) (auto-selected by clipd; OpenBLAS detected \(detected ?? "?")), \(BLASKernel.threads) threads"
        case .user: return "BLAS kernel \(kernel) (OPENBLAS_CORETYPE set by the user), \(BLASKernel.threads) threads"
        }
    }

    nonisolated(unsafe) static var current = BLASSelection(kernel: BLASKernel.coreName, source: .detected, detected: nil)

    /// OpenBLAS picks its kernel when the library loads, from OPENBLAS_CORETYPE. When the user
    /// has not set it and OpenBLAS chose a slower kernel than this CPU supports (Debian's
    /// 0.3.21 falls back to Prescott on some AVX-512 CPUs), re-execute this program with the
    /// variable set. Must run first thing in main, before any thread starts.
    static func selectFastKernel() {
        let env = ProcessInfo.processInfo.environment
        if env["CLIPD_BLAS_REEXEC"] != nil {
            current = BLASSelection(kernel: BLASKernel.coreName, source: .autoSelected, detected: env["CLIPD_BLAS_DETECTED"])
            unsetenv("CLIPD_BLAS_REEXEC")
            unsetenv("CLIPD_BLAS_DETECTED")
            return
        }
        if let user = env["OPENBLAS_CORETYPE"], !user.isEmpty {
            current = BLASSelection(kernel: BLASKernel.coreName, source: .user, detected: nil)
            return
        }
        // CLIPD_BLAS_ASSUME_DETECTED lets tests exercise the re-exec path on a CPU that
        // OpenBLAS detects correctly.
        let detected = env["CLIPD_BLAS_ASSUME_DETECTED"] ?? BLASKernel.coreName
        unsetenv("CLIPD_BLAS_ASSUME_DETECTED")
        guard let better = BLASKernel.fastKernelOverride(detected: detected, cpuFlags: BLASKernel.cpuFlags()) else {
            current = BLASSelection(kernel: detected, source: .detected, detected: nil)
            return
        }
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv("CLIPD_BLAS_REEXEC", "1", 1)
        setenv("CLIPD_BLAS_DETECTED", detected, 1)
        let args = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", args)
        // Only reached when exec failed: carry on with the slow kernel rather than not at all.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv("CLIPD_BLAS_REEXEC")
        unsetenv("CLIPD_BLAS_DETECTED")
        current = BLASSelection(kernel: detected, source: .detected, detected: nil)
        FileHandle.standardError.write("warning: could not re-execute with OPENBLAS_CORETYPE=\(better) (errno \(errno)); running the slower \(detected) kernel\n".data(using: .utf8)!)
    }
}
