// clipd's inference kernels: a GEMM against weights packed once into the micro-kernel's panel
// layout, with bias / activation / residual fused into the write-back, per-(image, head)
// attention computed in cache, and a persistent pool of threads that split every call.
// Imported only by the Swift module Tensor.
#ifndef CLIPD_CKERNELS_H
#define CLIPD_CKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Micro-kernel families. Each needs the CPU features in its name.
enum {
    CK_KERNEL_PORTABLE = 0,  // plain C, any CPU
    CK_KERNEL_AVX2 = 1,      // AVX2 + FMA, 6x16 tile
    CK_KERNEL_AVX512 = 2,    // AVX-512F, 12x32 tile
};

/// Activations fused into the GEMM's write-back.
enum {
    CK_ACT_NONE = 0,
    CK_ACT_QUICKGELU = 1,    // x * sigmoid(1.702 x) with the same exp as Tensor's fastExp
    CK_ACT_GELU = 2,         // 0.5 x (1 + erf(x / sqrt 2))
};

/// The fastest kernel this CPU runs (cpuid).
int ck_best_kernel(void);
/// Whether this CPU can run `kernel`.
int ck_kernel_supported(int kernel);
/// Rows (MR) and columns (NR) of the kernel's register tile.
int ck_kernel_mr(int kernel);
int ck_kernel_nr(int kernel);

/// Floats a packed [K x N] right-hand side occupies for `kernel`: ceil(N/NR) panels of K x NR.
size_t ck_packed_size(int kernel, int n, int k);
/// Packs B = W^T where W is stored [N, K] (row stride ldw), as torch.nn.Linear stores weights.
void ck_pack_b_transposed(int kernel, float *dst, const float *w, int n, int k, int ldw);
/// Packs B stored [K, N] (row stride ldb), as CLIP's projections are stored.
void ck_pack_b(int kernel, float *dst, const float *b, int n, int k, int ldb);

/// C[M,N] (row stride ldc) = act(A[M,K] (row stride lda) * B + bias) with B packed by
/// ck_pack_b*/ for the same kernel; with accumulate != 0, C += A * B + bias instead (the
/// residual add; act must then be CK_ACT_NONE). bias may be NULL. Uses up to `threads` threads
/// of the pool, which take (row block, panel group) work items of the output one at a time.
void ck_gemm_packed(int kernel, int threads, int m, int n, int k,
                    const float *a, int lda, const float *packed_b,
                    const float *bias, int act, int accumulate, float *c, int ldc);

/// out[B,T,C] = heads of softmax(q k^T / sqrt(HS) (+ causal mask)) v over qkv [B,T,3C]
/// (packed q|k|v per token); every (image, head) is one task for the pool, its two products
/// run on the family's GEMM micro-kernel.
void ck_attention(int kernel, int threads, float *out, const float *qkv,
                  int b, int t, int c, int nh, int causal);

/// LayerNorm over rows of C: out = (x - mean) / sqrt(var + eps) * weight + bias, rows split
/// over the pool, reductions vectorised.
void ck_layernorm(int kernel, int threads, float *out, const float *inp, const float *weight, const float *bias,
                  int n, int c, float eps);

/// Threads the pool has started (the caller counts as one more).
int ck_pool_workers(void);

#ifdef __cplusplus
}
#endif
#endif
