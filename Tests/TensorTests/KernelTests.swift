import XCTest
@testable import Tensor

/// Each fast kernel against its naive twin, and each backward against finite differences.
final class KernelTests: XCTestCase {
    var rng = SeededGenerator(seed: 42)

    func randoms(_ n: Int, std: Float = 1) -> [Float] { (0..<n).map { _ in rng.normal(std: std) } }

    func testGemmMatchesNaiveTwinForEveryTransposeAndStride() {
        print("BLAS kernel under test: \(BLASKernel.coreName), threads \(BLASKernel.threads)")
        for (m, n, k) in [(1, 1, 1), (7, 5, 3), (50, 192, 64), (33, 257, 130), (40, 1536, 96)] {
            for ta in [Transpose.none, .transposed] {
                for tb in [Transpose.none, .transposed] {
                    let pad = 3
                    let lda = (ta == .none ? k : m) + pad, ldb = (tb == .none ? n : k) + pad, ldc = n + pad
                    let a = randoms((ta == .none ? m : k) * lda), b = randoms((tb == .none ? k : n) * ldb)
                    let c0 = randoms(m * ldc)
                    var fast = c0, slow = c0
                    for beta: Float in [0, 1] {
                        fast.withUnsafeMutableBufferPointer { gemm(ta, tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: $0.baseAddress!, ldc: ldc) }
                        slow.withUnsafeMutableBufferPointer { naiveGemm(ta, tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: $0.baseAddress!, ldc: ldc) }
                        var worst: Float = 0
                        for i in 0..<m { for j in 0..<n { worst = max(worst, abs(fast[i * ldc + j] - slow[i * ldc + j])) } }
                        XCTAssertLessThan(worst, 2e-5 * Float(k).squareRoot() * 4, "m\(m) n\(n) k\(k) \(ta) \(tb) beta \(beta)")
                        // The padding columns are untouched.
                        for i in 0..<m { for j in n..<ldc { XCTAssertEqual(fast[i * ldc + j], c0[i * ldc + j]) } }
                    }
                }
            }
        }
    }

    /// Checks d(sum(out * probe))/d(input) against central differences in Double-ish precision.
    func checkGradient(_ name: String, input: inout [Float], analytic: [Float], tolerance: Float = 2e-2,
                       loss: ([Float]) -> Double) {
        let h: Float = 1e-2
        var worst: Float = 0
        for i in stride(from: 0, to: input.count, by: max(1, input.count / 40)) {
            let saved = input[i]
            input[i] = saved + h; let up = loss(input)
            input[i] = saved - h; let down = loss(input)
            input[i] = saved
            let numeric = Float((up - down) / Double(2 * h))
            worst = max(worst, abs(numeric - analytic[i]) / max(1, abs(numeric)))
        }
        XCTAssertLessThan(worst, tolerance, name)
    }

    func testLinearBackward() {
        let n = 6, c = 5, oc = 4
        var x = randoms(n * c), w = randoms(oc * c), bias = randoms(oc)
        let probe = randoms(n * oc)
        func loss(_ x: [Float], _ w: [Float], _ bias: [Float]) -> Double {
            var out = [Float](repeating: 0, count: n * oc)
            linearForward(out: &out, inp: x, weight: w, bias: bias, n: n, c: c, oc: oc)
            return zip(out, probe).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: oc * c), db = [Float](repeating: 0, count: oc)
        linearBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: probe, inp: x, weight: w, n: n, c: c, oc: oc)
        checkGradient("linear dx", input: &x, analytic: dx) { loss($0, w, bias) }
        checkGradient("linear dw", input: &w, analytic: dw) { loss(x, $0, bias) }
        checkGradient("linear db", input: &bias, analytic: db) { loss(x, w, $0) }
    }

    func testProjectionBackward() {
        let n = 4, c = 6, oc = 3
        var x = randoms(n * c), w = randoms(c * oc)
        let probe = randoms(n * oc)
        func loss(_ x: [Float], _ w: [Float]) -> Double {
            var out = [Float](repeating: 0, count: n * oc)
            projectionForward(out: &out, inp: x, weight: w, n: n, c: c, oc: oc)
            return zip(out, probe).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: c * oc)
        projectionBackward(dinp: &dx, dweight: &dw, dout: probe, inp: x, weight: w, n: n, c: c, oc: oc)
        checkGradient("projection dx", input: &x, analytic: dx) { loss($0, w) }
        checkGradient("projection dw", input: &w, analytic: dw) { loss(x, $0) }
    }

    func testLayerNormForwardAndBackward() {
        let n = 5, c = 8
        var x = randoms(n * c, std: 2), w = randoms(c), b = randoms(c)
        let probe = randoms(n * c)
        func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n * c)
            layerNormForward(out: &out, mean: nil, rstd: nil, inp: x, weight: w, bias: b, n: n, c: c, eps: 1e-5)
            return out
        }
        // Forward against a direct Double computation.
        let out = forward(x, w, b)
        for i in 0..<n {
            let row = x[(i * c)..<((i + 1) * c)].map(Double.init)
            let mean = row.reduce(0, +) / Double(c)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
            for j in 0..<c {
                let expected = (row[j] - mean) / (variance + 1e-5).squareRoot() * Double(w[j]) + Double(b[j])
                XCTAssertEqual(Double(out[i * c + j]), expected, accuracy: 1e-5)
            }
        }
        func loss(_ x: [Float], _ w: [Float], _ b: [Float]) -> Double { zip(forward(x, w, b), probe).reduce(0) { $0 + Double($1.0 * $1.1) } }
        var mean = [Float](repeating: 0, count: n), rstd = [Float](repeating: 0, count: n), tmp = [Float](repeating: 0, count: n * c)
        layerNormForward(out: &tmp, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, n: n, c: c, eps: 1e-5)
        var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: c), db = [Float](repeating: 0, count: c)
        layerNormBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: probe, inp: x, weight: w, mean: mean, rstd: rstd, n: n, c: c)
        checkGradient("layernorm dx", input: &x, analytic: dx) { loss($0, w, b) }
        checkGradient("layernorm dw", input: &w, analytic: dw) { loss(x, $0, b) }
        checkGradient("layernorm db", input: &b, analytic: db) { loss(x, w, $0) }
    }

    func testActivations() {
        XCTAssertEqual(Double(applied(.quickGELU, 1.0)), 1.0 / (1 + Foundation.exp(-1.702)), accuracy: 1e-6)
        XCTAssertEqual(Double(applied(.gelu, 1.0)), 0.8413447460685429, accuracy: 1e-6)
        XCTAssertEqual(Double(applied(.gelu, -2.0)), -0.04550026389635842, accuracy: 1e-6)
        for act in [Activation.quickGELU, .gelu] {
            var x = randoms(30, std: 2)
            let probe = randoms(30)
            var dx = [Float](repeating: 0, count: 30)
            act.backward(dinp: &dx, inp: x, dout: probe, count: 30)
            checkGradient("\(act)", input: &x, analytic: dx, tolerance: 1e-2) { x in
                var out = [Float](repeating: 0, count: 30)
                act.forward(out: &out, inp: x, count: 30)
                return zip(out, probe).reduce(0) { $0 + Double($1.0 * $1.1) }
            }
        }
    }

    func applied(_ a: Activation, _ x: Float) -> Float {
        var out: [Float] = [0]
        a.forward(out: &out, inp: [x], count: 1)
        return out[0]
    }

    func naiveAttention(_ qkv: [Float], b: Int, t: Int, c: Int, nh: Int, causal: Bool) -> [Float] {
        let hs = c / nh
        var out = [Float](repeating: 0, count: b * t * c)
        for bi in 0..<b { for h in 0..<nh { for i in 0..<t {
            var scores = [Double](repeating: -.infinity, count: t)
            for j in 0..<t where !causal || j <= i {
                var s = 0.0
                for d in 0..<hs { s += Double(qkv[(bi * t + i) * 3 * c + h * hs + d]) * Double(qkv[(bi * t + j) * 3 * c + c + h * hs + d]) }
                scores[j] = s / Double(hs).squareRoot()
            }
            let m = scores.max()!
            let e = scores.map { $0 == -.infinity ? 0 : Foundation.exp($0 - m) }
            let z = e.reduce(0, +)
            for d in 0..<hs {
                var acc = 0.0
                for j in 0..<t { acc += e[j] / z * Double(qkv[(bi * t + j) * 3 * c + 2 * c + h * hs + d]) }
                out[(bi * t + i) * c + h * hs + d] = Float(acc)
            }
        } } }
        return out
    }

    func testAttentionForwardMatchesNaiveAndBackwardMatchesFiniteDifferences() {
        let b = 2, t = 5, c = 8, nh = 2
        for causal in [false, true] {
            var qkv = randoms(b * t * 3 * c)
            var out = [Float](repeating: 0, count: b * t * c)
            var att = [Float](repeating: 0, count: b * nh * t * t)
            attentionForward(out: &out, att: &att, qkv: qkv, b: b, t: t, c: c, nh: nh, causal: causal)
            XCTAssertLessThan(zip(out, naiveAttention(qkv, b: b, t: t, c: c, nh: nh, causal: causal)).map { abs($0 - $1) }.max()!, 1e-5)
            if causal { XCTAssertEqual(att[1], 0) } // row 0 sees only token 0
            var scratchOut = [Float](repeating: 0, count: b * t * c)
            attentionForward(out: &scratchOut, att: nil, qkv: qkv, b: b, t: t, c: c, nh: nh, causal: causal)
            XCTAssertEqual(scratchOut, out)
            let probe = randoms(b * t * c)
            var dqkv = [Float](repeating: 0, count: qkv.count)
            attentionBackward(dqkv: &dqkv, dout: probe, att: att, qkv: qkv, b: b, t: t, c: c, nh: nh)
            checkGradient("attention causal=\(causal)", input: &qkv, analytic: dqkv) { q in
                var o = [Float](repeating: 0, count: b * t * c)
                attentionForward(out: &o, att: nil, qkv: q, b: b, t: t, c: c, nh: nh, causal: causal)
                return zip(o, probe).reduce(0) { $0 + Double($1.0 * $1.1) }
            }
        }
    }

    func testEmbeddingForwardBackward() {
        let v = 10, t = 4, c = 3
        let table = randoms(v * c), pos = randoms(t * c)
        let ids: [Int32] = [3, 3, 9, 0]
        var out = [Float](repeating: 0, count: t * c)
        embeddingForward(out: &out, ids: ids, table: table, positional: pos, b: 1, t: t, c: c)
        XCTAssertEqual(out[c * 2 + 1], table[9 * c + 1] + pos[2 * c + 1])
        var dtable = [Float](repeating: 0, count: v * c), dpos = [Float](repeating: 0, count: t * c)
        let dout = [Float](repeating: 1, count: t * c)
        embeddingBackward(dtable: &dtable, dpositional: &dpos, dout: dout, ids: ids, b: 1, t: t, c: c)
        XCTAssertEqual(dtable[3 * c], 2)   // id 3 used twice
        XCTAssertEqual(dtable[5 * c], 0)   // unused id
        XCTAssertEqual(dpos, [Float](repeating: 1, count: t * c))
    }

    func testPatchesEqualADirectStridedConvolution() {
        let s = 8, p = 4, w = 5
        let image = randoms(3 * s * s), kernel = randoms(w * 3 * p * p)
        let g = s / p
        var patches = [Float](repeating: 0, count: g * g * 3 * p * p)
        im2colPatches(out: &patches, images: image, b: 1, channels: 3, size: s, patch: p)
        var conv = [Float](repeating: 0, count: g * g * w)
        gemm(.none, .transposed, m: g * g, n: w, k: 3 * p * p, a: patches, lda: 3 * p * p, b: kernel, ldb: 3 * p * p, c: &conv, ldc: w)
        for oc in 0..<w { for gy in 0..<g { for gx in 0..<g {
            var acc: Float = 0
            for ch in 0..<3 { for ky in 0..<p { for kx in 0..<p {
                acc += kernel[((oc * 3 + ch) * p + ky) * p + kx] * image[ch * s * s + (gy * p + ky) * s + gx * p + kx]
            } } }
            XCTAssertEqual(conv[(gy * g + gx) * w + oc], acc, accuracy: 1e-4)
        } } }
    }

    func testSoftmaxCausalRows() {
        var x: [Float] = [1, 2, 3, 1, 2, 3, 1, 2, 3]
        softmaxRowsInPlace(&x, rows: 3, cols: 3, causal: true)
        XCTAssertEqual(Array(x[0..<3]), [1, 0, 0])
        XCTAssertEqual(x[3] + x[4], 1, accuracy: 1e-6)
        XCTAssertEqual(x[5], 0)
        XCTAssertEqual(x[6..<9].reduce(0, +), 1, accuracy: 1e-6)
    }
}

final class VectorExpTests: XCTestCase {
    func testFastExpIsWithinTwoUlpOfExpf() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let want = expf(x)
            worst = max(worst, abs(fastExp(x) - want) / want.ulp)
            x += 0.00113
        }
        XCTAssertLessThanOrEqual(worst, 2.5)
        XCTAssertEqual(fastExp(-200), 0, accuracy: 1e-37)
        XCTAssertTrue(fastExp(0) == 1)
    }
}
