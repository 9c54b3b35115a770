import XCTest
@testable import Tensor

/// The packed inference kernels (every family this CPU runs: AVX-512, AVX2+FMA, portable)
/// against their naive twins, on sizes that are not multiples of any tile.
final class InferenceKernelTests: XCTestCase {
    var rng = SeededGenerator(seed: 7)

    func randoms(_ n: Int, std: Float = 1) -> [Float] { (0..<n).map { _ in rng.normal(std: std) } }

    /// Every packed family this machine can run; the test names which ones ran.
    var families: [InferenceKernel] {
        let runnable = InferenceKernel.allCases.filter { $0 != .blas && $0.isSupported }
        print("inference kernels under test: \(runnable.map(\.rawValue)) (best: \(InferenceKernel.best.rawValue))")
        return runnable
    }

    override func tearDown() { try? InferenceKernel.force(nil) }

    func testBestIsSupportedAndPortableAlwaysRuns() {
        XCTAssertTrue(InferenceKernel.best.isSupported)
        XCTAssertTrue(InferenceKernel.portable.isSupported)
        XCTAssertNotEqual(InferenceKernel.best, .blas)
    }

    func testForcingAKernelChangesTheActiveOneAndNilRestoresBest() throws {
        try InferenceKernel.force(.portable)
        XCTAssertEqual(InferenceKernel.active, .portable)
        try InferenceKernel.force(nil)
        XCTAssertEqual(InferenceKernel.active, InferenceKernel.best)
        for kernel in InferenceKernel.allCases where !kernel.isSupported {
            XCTAssertThrowsError(try InferenceKernel.force(kernel))
        }
    }

    /// Reference: Double-accumulated naive GEMM, then bias, then the activation's own forward.
    func reference(_ a: [Float], _ w: [Float], transposed: Bool, bias: [Float]?, m: Int, n: Int, k: Int,
                   activation: FusedActivation, residual: [Float]?) -> [Float] {
        var c = residual ?? [Float](repeating: 0, count: m * n)
        c.withUnsafeMutableBufferPointer { cp in
            naiveGemm(.none, transposed ? .transposed : .none, m: m, n: n, k: k, a: a, lda: k, b: w,
                      ldb: transposed ? k : n, beta: residual == nil ? 0 : 1, c: cp.baseAddress!, ldc: n)
        }
        if let bias { for i in 0..<m { for j in 0..<n { c[i * n + j] += bias[j] } } }
        if case .activation(let f) = activation {
            let pre = c
            c.withUnsafeMutableBufferPointer { f.forward(out: $0.baseAddress!, inp: pre, count: m * n) }
        }
        return c
    }

    func testPackedGemmMatchesNaiveTwinOnOddSizesForEveryKernel() {
        // Work items are (row block, panel group) pairs: with 2 and 3 threads the taller shapes are
        // cut into row blocks as well as panel groups; the last shape has over 768 rows, so two
        // row blocks even on one thread. On AVX-512, M = 5, 13, 37,
        // 50, 97 and 170 take the 10-row tiles, the others the 12-row ones; most leave a partial row
        // tile, zero padded when A is packed.
        let shapes = [(1, 1, 1), (1, 33, 17), (5, 7, 3), (13, 31, 257), (37, 65, 300), (50, 200, 130), (97, 70, 513), (11, 512, 768),
                      (203, 45, 70), (301, 37, 29), (389, 66, 260), (170, 50, 40), (1000, 70, 300)]
        for kernel in families {
            for (m, n, k) in shapes {
                let a = randoms(m * k), wt = randoms(n * k), wn = randoms(k * n), bias = randoms(n), residual = randoms(m * n)
                let packedT = wt.withUnsafeBufferPointer { PackedMatrix(transposedWeight: $0.baseAddress!, n: n, k: k, kernel: kernel) }
                let packedN = wn.withUnsafeBufferPointer { PackedMatrix(matrix: $0.baseAddress!, n: n, k: k, kernel: kernel) }
                let cases: [(String, PackedMatrix, [Float], Bool, [Float]?, FusedActivation, Bool)] = [
                    ("W^T", packedT, wt, true, nil, .none, false),
                    ("W^T+bias", packedT, wt, true, bias, .none, false),
                    ("W^T+bias+quickGELU", packedT, wt, true, bias, .activation(.quickGELU), false),
                    ("W^T+bias+GELU", packedT, wt, true, bias, .activation(.gelu), false),
                    ("residual+=W^T+bias", packedT, wt, true, bias, .none, true),
                    ("B", packedN, wn, false, nil, .none, false),
                ]
                for (label, packed, w, transposed, b, act, accumulate) in cases {
                    let want = reference(a, w, transposed: transposed, bias: b, m: m, n: n, k: k, activation: act,
                                         residual: accumulate ? residual : nil)
                    for threads in [1, 2, 3] {
                        var got = accumulate ? residual : [Float](repeating: .nan, count: m * n)
                        got.withUnsafeMutableBufferPointer { out in
                            a.withUnsafeBufferPointer { inp in
                                b.map { bb in bb.withUnsafeBufferPointer {
                                    packedLinearForward(out: out.baseAddress!, inp: inp.baseAddress!, weight: packed, bias: $0.baseAddress!,
                                                        m: m, activation: act, accumulate: accumulate, threads: threads)
                                } } ?? packedLinearForward(out: out.baseAddress!, inp: inp.baseAddress!, weight: packed, bias: nil,
                                                           m: m, activation: act, accumulate: accumulate, threads: threads)
                            }
                        }
                        var worst: Float = 0
                        for i in 0..<(m * n) { worst = max(worst, abs(got[i] - want[i])) }
                        XCTAssertLessThan(worst, 2e-5 * Float(k).squareRoot() * 4,
                                          "\(kernel.rawValue) \(label) m\(m) n\(n) k\(k) threads \(threads)")
                    }
                }
            }
        }
    }

    func testPackedAttentionMatchesNaiveTwinForEveryKernel() {
        for kernel in families {
            // Head sizes 4, 8, 16, 40 (a partial column panel) and 96 (several panels); T across tile edges.
            let cases = [(1, 1, 8, 2, false), (3, 7, 24, 3, true), (2, 50, 64, 4, false), (2, 77, 64, 4, true), (1, 197, 32, 2, false),
                         (2, 13, 80, 2, true), (1, 33, 96, 1, false), (2, 25, 96, 1, true)]
            for (b, t, c, nh, causal) in cases {
                let qkv = randoms(b * t * 3 * c)
                var want = [Float](repeating: 0, count: b * t * c), got = [Float](repeating: .nan, count: b * t * c)
                want.withUnsafeMutableBufferPointer {
                    attentionForward(out: $0.baseAddress!, att: nil, qkv: qkv, b: b, t: t, c: c, nh: nh, causal: causal)
                }
                for threads in [1, 2] {
                    got.withUnsafeMutableBufferPointer {
                        packedAttentionForward(out: $0.baseAddress!, qkv: qkv, b: b, t: t, c: c, nh: nh, causal: causal,
                                               kernel: kernel, threads: threads)
                    }
                    var worst: Float = 0
                    for i in 0..<(b * t * c) { worst = max(worst, abs(got[i] - want[i])) }
                    XCTAssertLessThan(worst, 1e-5, "\(kernel.rawValue) b\(b) t\(t) c\(c) nh\(nh) causal \(causal) threads \(threads)")
                }
            }
        }
    }

    func testPackedLayerNormMatchesNaiveTwinForEveryKernel() {
        for kernel in families {
            for (n, c) in [(1, 1), (3, 7), (50, 768), (77, 512), (197, 65)] {
                let x = randoms(n * c, std: 3), w = randoms(c), b = randoms(c)
                var want = [Float](repeating: 0, count: n * c), got = [Float](repeating: .nan, count: n * c)
                want.withUnsafeMutableBufferPointer {
                    layerNormForward(out: $0.baseAddress!, mean: nil, rstd: nil, inp: x, weight: w, bias: b, n: n, c: c, eps: 1e-5)
                }
                for threads in [1, 2] {
                    got.withUnsafeMutableBufferPointer {
                        packedLayerNormForward(out: $0.baseAddress!, inp: x, weight: w, bias: b, n: n, c: c, eps: 1e-5,
                                               kernel: kernel, threads: threads)
                    }
                    var worst: Float = 0
                    for i in 0..<(n * c) { worst = max(worst, abs(got[i] - want[i])) }
                    XCTAssertLessThan(worst, 2e-5, "\(kernel.rawValue) n\(n) c\(c) threads \(threads)")
                }
            }
        }
    }

    func testTileShapesAreTheDocumentedOnes() {
        XCTAssertEqual(InferenceKernel.portable.tile.rows, 4)
        XCTAssertEqual(InferenceKernel.portable.tile.columns, 16)
        if InferenceKernel.avx2.isSupported { XCTAssertEqual(InferenceKernel.avx2.tile.rows, 6); XCTAssertEqual(InferenceKernel.avx2.tile.columns, 16) }
        if InferenceKernel.avx512.isSupported { XCTAssertEqual(InferenceKernel.avx512.tile.rows, 12); XCTAssertEqual(InferenceKernel.avx512.tile.columns, 32) }
    }
}
