import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Matrix transposition flag for `gemm`.
public enum Transpose: Sendable { case none, transposed }

/// Row-major single-precision matrix multiply on OpenBLAS:
/// `C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C`.
/// `lda`, `ldb`, `ldc` are row strides in elements, so strided views (a head inside a packed
/// QKV buffer, say) need no copy.
@inline(__always)
public func gemm(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                 alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    cblas_sgemm(CblasRowMajor,
                transA == .none ? CblasNoTrans : CblasTrans,
                transB == .none ? CblasNoTrans : CblasTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The naive twin of `gemm`, accumulated in Double: the oracle that tests hold the BLAS
/// kernel (whichever OpenBLAS picked for this CPU) against.
public func naiveGemm(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                      alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                      b: UnsafePointer<Float>, ldb: Int,
                      beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var acc = 0.0
            for p in 0..<k {
                let av = transA == .none ? a[i * lda + p] : a[p * lda + i]
                let bv = transB == .none ? b[p * ldb + j] : b[j * ldb + p]
                acc += Double(av) * Double(bv)
            }
            let prior = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
            c[i * ldc + j] = Float(Double(alpha) * acc + prior)
        }
    }
}

/// What OpenBLAS runs on this machine, and the policy that picks a fast kernel.
///
/// Debian's OpenBLAS 0.3.21 (a DYNAMIC_ARCH build) misdetects some current CPUs as `Prescott`
/// and then runs generic SSE kernels about 5x slower. The kernel is chosen when the library
/// loads, from `OPENBLAS_CORETYPE`, so the executable re-executes itself with the variable set
/// (see `BLASKernel.fastKernelOverride`) when the user has not set it.
public enum BLASKernel {
    /// The kernel OpenBLAS selected in this process (e.g. "Cooperlake", "SkylakeX", "Prescott").
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    public static var config: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p)
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// Kernels in rising order of what they can exploit; a kernel later in the list is
    /// preferred when the CPU supports it.
    static let ranking: [String] = [
        "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2", "Penryn",
        "Dunnington", "Nehalem", "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat", "Bulldozer",
        "Piledriver", "Steamroller", "Excavator", "Sandybridge", "Haswell", "Zen",
        "SkylakeX", "Cooperlake", "SapphireRapids",
    ]

    /// The best kernel this Debian build offers for a CPU with these `/proc/cpuinfo` flags.
    public static func bestKernel(cpuFlags: Set<String>) -> String? {
        let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(cpuFlags.contains)
        if avx512 && cpuFlags.contains("avx512_bf16") { return "Cooperlake" }
        if avx512 { return "SkylakeX" }
        if cpuFlags.contains("avx2") && cpuFlags.contains("fma") { return "Haswell" }
        return nil
    }

    /// The kernel to force via `OPENBLAS_CORETYPE`, or nil when the detected one is already the
    /// best (or better than anything we know).
    public static func fastKernelOverride(detected: String, cpuFlags: Set<String>) -> String? {
        guard let best = bestKernel(cpuFlags: cpuFlags) else { return nil }
        let detectedRank = ranking.firstIndex { $0.lowercased() == detected.lowercased() } ?? -1
        let bestRank = ranking.firstIndex(of: best)!
        if detectedRank == -1 && !detected.isEmpty && detected != "unknown" {
            // A name this list does not know is newer than it: keep it.
            return nil
        }
        return bestRank > detectedRank ? best : nil
    }

    /// Flags of the first processor in `/proc/cpuinfo` (empty when unreadable).
    public static func cpuFlags(cpuinfo path: String = "/proc/cpuinfo") -> Set<String> {
        guard let file = fopen(path, "r") else { return [] }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            guard let line else { break }
            let text = String(cString: line)
            if text.hasPrefix("flags") || text.hasPrefix("Features") {
                guard let colon = text.firstIndex(of: ":") else { continue }
                return Set(text[text.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init))
            }
        }
        return []
    }
}
