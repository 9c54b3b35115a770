import CKernels

// clipd's own inference GEMM (Sources/CKernels): the right-hand side is a weight packed once
// into the micro-kernel's panel layout (`PackedMatrix`), each call splits the output's column
// panels over a persistent pool of threads, and bias, activation and residual add happen on
// each tile as it is written. OpenBLAS (`gemm`) stays for training, backward and everything
// else; `naiveGemm` is the oracle both are tested against.

/// The micro-kernel family the inference path runs.
public enum InferenceKernel: String, Sendable, CaseIterable {
    /// Plain C (4x16 tile): any CPU.
    case portable
    /// AVX2 + FMA (6x16 tile).
    case avx2
    /// AVX-512F (12x32 tile).
    case avx512
    /// No packed kernels: every inference GEMM goes to OpenBLAS, attention to `attentionForward`.
    case blas

    var code: Int32 {
        switch self {
        case .portable, .blas: return Int32(CK_KERNEL_PORTABLE)
        case .avx2: return Int32(CK_KERNEL_AVX2)
        case .avx512: return Int32(CK_KERNEL_AVX512)
        }
    }

    /// Whether this CPU can run it (cpuid).
    public var isSupported: Bool { self == .blas || ck_kernel_supported(code) != 0 }

    /// The fastest family this CPU supports.
    public static var best: InferenceKernel {
        switch Int(ck_best_kernel()) {
        case Int(CK_KERNEL_AVX512): return .avx512
        case Int(CK_KERNEL_AVX2): return .avx2
        default: return .portable
        }
    }

    nonisolated(unsafe) private static var forced: InferenceKernel?

    /// Forces a family (tests and `clipd bench --kernel` use this to run every path on one
    /// machine); nil returns to `best`. A family the CPU does not support is refused.
    /// Set it before models are used, not while they run.
    public static func force(_ kernel: InferenceKernel?) throws(InferenceKernelError) {
        if let kernel, !kernel.isSupported { throw InferenceKernelError(kernel: kernel) }
        forced = kernel
    }

    /// The family inference uses now: the forced one, else `best`.
    public static var active: InferenceKernel { forced ?? best }

    /// Threads each inference GEMM and attention call uses: the BLAS thread count, so
    /// `blas_threads` (and OPENBLAS_NUM_THREADS) govern both engines alike.
    public static var threads: Int { BLASKernel.threads }

    /// Worker threads the kernels' pool has started (the calling thread is one more).
    public static var poolWorkers: Int { Int(ck_pool_workers()) }

    /// Register tile (rows, columns) of the family's micro-kernel.
    public var tile: (rows: Int, columns: Int) { (Int(ck_kernel_mr(code)), Int(ck_kernel_nr(code))) }
}

public struct InferenceKernelError: Error, CustomStringConvertible {
    public let kernel: InferenceKernel
    public var description: String { "this CPU cannot run the \(kernel.rawValue) inference kernel" }
}

/// The activation fused into a packed GEMM's write-back.
public enum FusedActivation: Sendable {
    case none
    case activation(Activation)

    var code: Int32 {
        switch self {
        case .none: return Int32(CK_ACT_NONE)
        case .activation(.quickGELU): return Int32(CK_ACT_QUICKGELU)
        case .activation(.gelu): return Int32(CK_ACT_GELU)
        }
    }
}

/// A constant right-hand side B [K, N] packed once for one kernel family.
public final class PackedMatrix: @unchecked Sendable {
    public let kernel: InferenceKernel
    /// Output columns N and depth K.
    public let n: Int, k: Int
    let storage: UnsafeMutablePointer<Float>

    /// B = W^T for a weight W stored [N, K] (torch.nn.Linear's layout): `x @ W^T`.
    public init(transposedWeight w: UnsafePointer<Float>, n: Int, k: Int, kernel: InferenceKernel) {
        precondition(kernel != .blas, "nothing to pack for OpenBLAS")
        self.kernel = kernel; self.n = n; self.k = k
        storage = .allocate(capacity: max(1, Int(ck_packed_size(kernel.code, Int32(n), Int32(k)))))
        ck_pack_b_transposed(kernel.code, storage, w, Int32(n), Int32(k), Int32(k))
    }

    /// B stored [K, N] (CLIP's `visual.proj`, `text_projection`): `x @ B`.
    public init(matrix b: UnsafePointer<Float>, n: Int, k: Int, kernel: InferenceKernel) {
        precondition(kernel != .blas, "nothing to pack for OpenBLAS")
        self.kernel = kernel; self.n = n; self.k = k
        storage = .allocate(capacity: max(1, Int(ck_packed_size(kernel.code, Int32(n), Int32(k)))))
        ck_pack_b(kernel.code, storage, b, Int32(n), Int32(k), Int32(n))
    }

    deinit { storage.deallocate() }
}

/// `out[M,N] = act(inp[M,K] @ B + bias)`, or with `accumulate` `out += inp @ B + bias` (the
/// residual add; no activation then). Naive twin: `linearForward` / `projectionForward`
/// followed by `Activation.forward` (or `naiveGemm` with beta 1 plus the bias).
public func packedLinearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: PackedMatrix,
                                bias: UnsafePointer<Float>?, m: Int, activation: FusedActivation = .none,
                                accumulate: Bool = false, threads: Int = InferenceKernel.threads) {
    if case .activation = activation { precondition(!accumulate, "activation and residual add are not fused together") }
    ck_gemm_packed(weight.kernel.code, Int32(threads), Int32(m), Int32(weight.n), Int32(weight.k),
                   inp, Int32(weight.k), weight.storage, bias, activation.code, accumulate ? 1 : 0, out, Int32(weight.n))
}

/// `attentionForward` (no probabilities kept) with every (image, head) one task for the pool,
/// computed in cache: one head's keys and values are copied out once, each query row's scores
/// live in one row buffer. Naive twin: `attentionForward(out:att:nil…)`.
public func packedAttentionForward(out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, b: Int, t: Int,
                                   c: Int, nh: Int, causal: Bool, kernel: InferenceKernel = .active,
                                   threads: Int = InferenceKernel.threads) {
    ck_attention(kernel.code, Int32(threads), out, qkv, Int32(b), Int32(t), Int32(c), Int32(nh), causal ? 1 : 0)
}

/// `layerNormForward` without the mean/rstd caches (inference), rows split over the pool and
/// the reductions vectorised in the family's instruction set. Naive twin: `layerNormForward`.
public func packedLayerNormForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                   bias: UnsafePointer<Float>, n: Int, c: Int, eps: Float,
                                   kernel: InferenceKernel = .active, threads: Int = InferenceKernel.threads) {
    ck_layernorm(kernel.code, Int32(threads), out, inp, weight, bias, Int32(n), Int32(c), eps)
}
