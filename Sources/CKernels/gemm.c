// Packing, micro-kernels and dispatch of clipd's inference GEMM (see include/ckernels.h).
// Each kernel family is compiled with its own target attribute, so the library builds for any
// x86-64 (or other) CPU and chooses at run time from cpuid.
#include "ckernels.h"
#include "pool.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

#define CK_KC 256            // depth of one K slice: a 256 x 32 slice of B is 32 KiB (L1)
#define CK_APACK (1 << 20)   // floats of A one thread packs at once (4 MiB): a row block, all of K
#define CK_MB 768            // rows of a row block at most: its 256-deep slice of A is 768 KiB (L2)
#define CK_CGROUP (512 * 1024)   // bytes of C one work item updates per K slice (kept in L2)

struct ck_gemm_job {
    int m, n, k, lda, ldc, act, accumulate;
    // Work items are (row block of mb rows, group of `group` column panels) pairs, taken from
    // `next` one at a time, so a thread the OS holds back costs the others one item, not half
    // the call.
    int mb, mblocks, group, groups;
    atomic_int next;
    const float *a, *packed_b, *bias;
    float *c;
};

struct ck_attention_job {
    float *out;
    const float *qkv;
    int b, t, c, nh, causal;
    atomic_int next;   // the next (image, head) task to take
};

// Each thread's packed A (one row block of A, every K slice), grown as calls need and freed
// when the thread ends.
struct ck_apack { size_t floats; float *data; };
static pthread_key_t apack_key;
static pthread_once_t apack_once = PTHREAD_ONCE_INIT;
static void apack_free(void *p) { struct ck_apack *b = p; free(b->data); free(b); }
static void apack_key_create(void) { pthread_key_create(&apack_key, apack_free); }

static float *ck_thread_apack(size_t floats) {
    pthread_once(&apack_once, apack_key_create);
    struct ck_apack *buffer = pthread_getspecific(apack_key);
    if (!buffer) {
        buffer = calloc(1, sizeof *buffer);
        if (!buffer) abort();
        pthread_setspecific(apack_key, buffer);
    }
    if (buffer->floats < floats) {
        free(buffer->data);
        buffer->data = aligned_alloc(64, sizeof(float) * ((floats + 15) / 16 * 16));
        if (!buffer->data) abort();
        buffer->floats = floats;
    }
    return buffer->data;
}

struct ck_layernorm_job {
    float *out;
    const float *inp, *weight, *bias;
    int n, c;
    float eps;
};

/// e^x as Tensor's `fastExp` computes it (Cephes' polynomial after range reduction, 1.5*2^23
/// rounding), branch-free so that loops over it vectorise.
static inline float ck_fast_exp(float input) {
    float x = input < -87.3f ? -87.3f : (input > 88.3f ? 88.3f : input);
    const float magic = 12582912.0f;
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    int32_t tb, mb;
    memcpy(&tb, &t, 4);
    memcpy(&mb, &magic, 4);
    uint32_t bits = (uint32_t)((tb - mb) + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

// MARK: portable micro-kernel (4 x 16), plain C

#define PORTABLE_MR 4
#define PORTABLE_NR 16

static void microkernel_portable(int kc, const float *restrict a, const float *restrict b,
                                 float *restrict c, int ldc, int load, const float *restrict bias, int act,
                                 const float *prefetch, int prefetch_lines) {
    (void)prefetch; (void)prefetch_lines;   // the driver prefetches for this family
    float acc[PORTABLE_MR][PORTABLE_NR];
    for (int i = 0; i < PORTABLE_MR; i++)
        for (int j = 0; j < PORTABLE_NR; j++) acc[i][j] = load ? c[(size_t)i * ldc + j] : 0.0f;
    for (int p = 0; p < kc; p++) {
        const float *bp = b + (size_t)p * PORTABLE_NR;
        for (int i = 0; i < PORTABLE_MR; i++) {
            const float av = a[p * PORTABLE_MR + i];
            for (int j = 0; j < PORTABLE_NR; j++) acc[i][j] += av * bp[j];
        }
    }
    for (int i = 0; i < PORTABLE_MR; i++)
        for (int j = 0; j < PORTABLE_NR; j++) {
            float v = acc[i][j] + (bias ? bias[j] : 0.0f);
            if (act == CK_ACT_QUICKGELU) v = v / (1.0f + ck_fast_exp(-1.702f * v));
            c[(size_t)i * ldc + j] = v;
        }
}

#define CK_SUFFIX portable
#define CK_MR PORTABLE_MR
#define CK_NR PORTABLE_NR
#define CK_MICROKERNEL microkernel_portable
#define CK_PREFETCH_IN_KERNEL 0
#include "driver_template.h"
#undef CK_SUFFIX
#undef CK_MR
#undef CK_NR
#undef CK_MICROKERNEL
#undef CK_PREFETCH_IN_KERNEL

#ifdef CK_X86

// MARK: AVX2 + FMA micro-kernel (6 x 16: 12 ymm accumulators, 2 for B, 1 broadcast)

#define AVX2_MR 6
#define AVX2_NR 16

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

/// ck_fast_exp on 8 lanes, operation for operation.
static inline __m256 exp_avx2(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    const __m256 r2 = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic)),
                                                            _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

/// bias and activation on one register of the finished tile (GELU is left to the epilogue).
static inline __m256 finish_avx2(__m256 v, const float *bias, int act) {
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
    if (act == CK_ACT_QUICKGELU)
        v = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_avx2(_mm256_mul_ps(_mm256_set1_ps(-1.702f), v))));
    return v;
}

static void microkernel_avx2(int kc, const float *restrict a, const float *restrict b,
                             float *restrict c, int ldc, int load, const float *restrict bias, int act,
                             const float *prefetch, int prefetch_lines) {
    (void)prefetch; (void)prefetch_lines;   // the driver prefetches for this family (one line per k step here ran up to 7% slower)
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (load) {
        c00 = _mm256_loadu_ps(c + 0 * (size_t)ldc); c01 = _mm256_loadu_ps(c + 0 * (size_t)ldc + 8);
        c10 = _mm256_loadu_ps(c + 1 * (size_t)ldc); c11 = _mm256_loadu_ps(c + 1 * (size_t)ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * (size_t)ldc); c21 = _mm256_loadu_ps(c + 2 * (size_t)ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * (size_t)ldc); c31 = _mm256_loadu_ps(c + 3 * (size_t)ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * (size_t)ldc); c41 = _mm256_loadu_ps(c + 4 * (size_t)ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * (size_t)ldc); c51 = _mm256_loadu_ps(c + 5 * (size_t)ldc + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    for (int p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 av;
        av = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
        a += AVX2_MR;
        b += AVX2_NR;
    }
    if (bias || act == CK_ACT_QUICKGELU) {
        const float *b8 = bias ? bias + 8 : NULL;
        c00 = finish_avx2(c00, bias, act); c01 = finish_avx2(c01, b8, act);
        c10 = finish_avx2(c10, bias, act); c11 = finish_avx2(c11, b8, act);
        c20 = finish_avx2(c20, bias, act); c21 = finish_avx2(c21, b8, act);
        c30 = finish_avx2(c30, bias, act); c31 = finish_avx2(c31, b8, act);
        c40 = finish_avx2(c40, bias, act); c41 = finish_avx2(c41, b8, act);
        c50 = finish_avx2(c50, bias, act); c51 = finish_avx2(c51, b8, act);
    }
    _mm256_storeu_ps(c + 0 * (size_t)ldc, c00); _mm256_storeu_ps(c + 0 * (size_t)ldc + 8, c01);
    _mm256_storeu_ps(c + 1 * (size_t)ldc, c10); _mm256_storeu_ps(c + 1 * (size_t)ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * (size_t)ldc, c20); _mm256_storeu_ps(c + 2 * (size_t)ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * (size_t)ldc, c30); _mm256_storeu_ps(c + 3 * (size_t)ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * (size_t)ldc, c40); _mm256_storeu_ps(c + 4 * (size_t)ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * (size_t)ldc, c50); _mm256_storeu_ps(c + 5 * (size_t)ldc + 8, c51);
}

#define CK_SUFFIX avx2
#define CK_MR AVX2_MR
#define CK_NR AVX2_NR
#define CK_MICROKERNEL microkernel_avx2
#define CK_PREFETCH_IN_KERNEL 0
#include "driver_template.h"
#undef CK_SUFFIX
#undef CK_MR
#undef CK_NR
#undef CK_MICROKERNEL
#undef CK_PREFETCH_IN_KERNEL

#pragma clang attribute pop

// MARK: AVX-512F micro-kernel (12 x 32: 24 zmm accumulators, 2 for B, 1 broadcast)

#define AVX512_MR 12
#define AVX512_NR 32

#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)

#define AVX512_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/// ck_fast_exp on 16 lanes, operation for operation.
static inline __m512 exp_avx512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), magic);
    const __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    const __m512 r2 = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic)),
                                                            _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

/// bias and activation on one register of the finished tile (GELU is left to the epilogue).
static inline __m512 finish_avx512(__m512 v, const float *bias, int act) {
    if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias));
    if (act == CK_ACT_QUICKGELU)
        v = _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_avx512(_mm512_mul_ps(_mm512_set1_ps(-1.702f), v))));
    return v;
}

// One body for the 12-row kernel and the 10-row one (the driver picks 10 rows where it pads M
// less, e.g. the 50 tokens of one image); both 32 columns, so they share the packed B.
#define AVX512_MICROKERNEL(name, ROWS, MR)                                                              \
static void name(int kc, const float *restrict a, const float *restrict b,                              \
                 float *restrict c, int ldc, int load, const float *restrict bias, int act,             \
                 const float *prefetch, int prefetch_lines) {                                           \
    ROWS(DECLARE)                                                                                       \
    if (load) { ROWS(LOAD) } else { ROWS(ZERO) }                                                        \
    for (int p = 0; p < kc; p++) {                                                                      \
        if (prefetch_lines > 0) { __builtin_prefetch(prefetch, 0, 2); prefetch += 16; prefetch_lines--; } \
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);                             \
        ROWS(STEP)                                                                                      \
        a += MR;                                                                                        \
        b += AVX512_NR;                                                                                 \
    }                                                                                                   \
    if (bias || act == CK_ACT_QUICKGELU) {                                                              \
        const float *b16 = bias ? bias + 16 : NULL;                                                     \
        ROWS(FINISH)                                                                                    \
    }                                                                                                   \
    ROWS(STORE)                                                                                         \
}
#define DECLARE(i) __m512 c##i##0, c##i##1;
#define LOAD(i) c##i##0 = _mm512_loadu_ps(c + (size_t)(i) * ldc); c##i##1 = _mm512_loadu_ps(c + (size_t)(i) * ldc + 16);
#define ZERO(i) c##i##0 = _mm512_setzero_ps(); c##i##1 = _mm512_setzero_ps();
#define STEP(i) { const __m512 av = _mm512_set1_ps(a[i]); c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1); }
#define FINISH(i) c##i##0 = finish_avx512(c##i##0, bias, act); c##i##1 = finish_avx512(c##i##1, b16, act);
#define STORE(i) _mm512_storeu_ps(c + (size_t)(i) * ldc, c##i##0); _mm512_storeu_ps(c + (size_t)(i) * ldc + 16, c##i##1);
#define AVX512_ROWS10(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9)
AVX512_MICROKERNEL(microkernel_avx512, AVX512_ROWS, AVX512_MR)
AVX512_MICROKERNEL(microkernel_avx512_10, AVX512_ROWS10, 10)
#undef DECLARE
#undef LOAD
#undef ZERO
#undef STEP
#undef FINISH
#undef STORE

#define CK_SUFFIX avx512
#define CK_MR AVX512_MR
#define CK_NR AVX512_NR
#define CK_MICROKERNEL microkernel_avx512
#define CK_PREFETCH_IN_KERNEL 1
#include "driver_template.h"
#undef CK_SUFFIX
#undef CK_MR
#undef CK_NR
#undef CK_MICROKERNEL
#undef CK_PREFETCH_IN_KERNEL

#define CK_GEMM_ONLY
#define CK_SUFFIX avx512_10
#define CK_MR 10
#define CK_NR AVX512_NR
#define CK_MICROKERNEL microkernel_avx512_10
#define CK_PREFETCH_IN_KERNEL 1
#include "driver_template.h"
#undef CK_SUFFIX
#undef CK_MR
#undef CK_NR
#undef CK_MICROKERNEL
#undef CK_PREFETCH_IN_KERNEL
#undef CK_GEMM_ONLY

#pragma clang attribute pop

#endif  // CK_X86

// MARK: dispatch

int ck_kernel_supported(int kernel) {
    switch (kernel) {
    case CK_KERNEL_PORTABLE: return 1;
#ifdef CK_X86
    case CK_KERNEL_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CK_KERNEL_AVX512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default: return 0;
    }
}

int ck_best_kernel(void) {
    if (ck_kernel_supported(CK_KERNEL_AVX512)) return CK_KERNEL_AVX512;
    if (ck_kernel_supported(CK_KERNEL_AVX2)) return CK_KERNEL_AVX2;
    return CK_KERNEL_PORTABLE;
}

/// A kernel this CPU cannot run falls back to the portable one rather than faulting.
static int usable(int kernel) { return ck_kernel_supported(kernel) ? kernel : CK_KERNEL_PORTABLE; }

int ck_kernel_mr(int kernel) {
    switch (usable(kernel)) {
#ifdef CK_X86
    case CK_KERNEL_AVX2: return AVX2_MR;
    case CK_KERNEL_AVX512: return AVX512_MR;
#endif
    default: return PORTABLE_MR;
    }
}

int ck_kernel_nr(int kernel) {
    switch (usable(kernel)) {
#ifdef CK_X86
    case CK_KERNEL_AVX2: return AVX2_NR;
    case CK_KERNEL_AVX512: return AVX512_NR;
#endif
    default: return PORTABLE_NR;
    }
}

size_t ck_packed_size(int kernel, int n, int k) {
    const int nr = ck_kernel_nr(kernel);
    return (size_t)((n + nr - 1) / nr) * nr * (size_t)k;
}

// Panel p holds columns p*NR ..< p*NR+NR of B for every k, NR floats per k, zero padded.
static void pack(int kernel, float *dst, const float *src, int n, int k, size_t col_stride, size_t k_stride) {
    const int nr = ck_kernel_nr(kernel);
    for (int j0 = 0; j0 < n; j0 += nr) {
        for (int p = 0; p < k; p++)
            for (int j = 0; j < nr; j++)
                *dst++ = j0 + j < n ? src[(size_t)(j0 + j) * col_stride + (size_t)p * k_stride] : 0.0f;
    }
}

void ck_pack_b_transposed(int kernel, float *dst, const float *w, int n, int k, int ldw) {
    pack(kernel, dst, w, n, k, (size_t)ldw, 1);
}

void ck_pack_b(int kernel, float *dst, const float *b, int n, int k, int ldb) {
    pack(kernel, dst, b, n, k, 1, (size_t)ldb);
}

void ck_gemm_packed(int kernel, int threads, int m, int n, int k,
                    const float *a, int lda, const float *packed_b,
                    const float *bias, int act, int accumulate, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float v = (accumulate ? c[(size_t)i * ldc + j] : 0.0f) + (bias ? bias[j] : 0.0f);
                if (act == CK_ACT_QUICKGELU) v = v / (1.0f + ck_fast_exp(-1.702f * v));
                else if (act == CK_ACT_GELU) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
                c[(size_t)i * ldc + j] = v;
            }
        return;
    }
    struct ck_gemm_job job = { .m = m, .n = n, .k = k, .lda = lda, .ldc = ldc, .act = act, .accumulate = accumulate,
                               .a = a, .packed_b = packed_b, .bias = bias, .c = c };
    atomic_init(&job.next, 0);
    ck_task task = gemm_task_portable;
    int mr = ck_kernel_mr(kernel);
#ifdef CK_X86
    switch (usable(kernel)) {
    case CK_KERNEL_AVX2: task = gemm_task_avx2; break;
    case CK_KERNEL_AVX512:
        task = gemm_task_avx512;
        // 10-row tiles where 12-row ones would pad M by 4% more (50 rows: 50 instead of 60).
        if ((double)((m + 11) / 12 * 12) > 1.04 * ((m + 9) / 10 * 10)) { task = gemm_task_avx512_10; mr = 10; }
        break;
    default: break;
    }
#endif
    const int nr = ck_kernel_nr(kernel), panels = (n + nr - 1) / nr, tiles = (m + mr - 1) / mr;
    // A share below ~1 MFLOP costs more to hand over than to compute.
    if ((double)m * n * k < 1e6) threads = 1;
    // The items' shape: with several threads at least three items each (so that a thread the OS
    // holds back costs the others little), cut into row blocks and panel groups so that items
    // are as near square as they can be: an item reads its rows of A once per panel slice of B
    // and B once per row block, so memory traffic per flop goes as 1/rows + 1/columns. Row
    // blocks are at most CK_MB rows (a K slice of the block stays in L2) and CK_APACK floats of
    // packed A; a group's columns of C for one block at most CK_CGROUP bytes (they stay in L2
    // across K slices).
    const int want = threads > 1 ? 3 * threads : 1;
    int cap = (k > CK_APACK / mr ? mr : CK_APACK / k / mr * mr);
    if (cap > CK_MB / mr * mr) cap = CK_MB / mr * mr;
    double best = 0;
    for (int blocks = (tiles * mr + cap - 1) / cap; blocks <= tiles && blocks <= want; blocks++) {
        const int mb = (tiles + blocks - 1) / blocks * mr;
        const int per_block = (want + blocks - 1) / blocks;   // groups each row block needs
        int group = CK_CGROUP / (mb * nr * (int)sizeof(float));
        if (group > panels / per_block) group = panels / per_block;
        if (group < 1) group = 1;
        const double cost = 1.0 / mb + 1.0 / (group * nr);
        if (best == 0 || cost < best) {
            best = cost;
            job.mb = mb;
            job.mblocks = (m + mb - 1) / mb;
            job.group = group;
        }
    }
    if (best == 0) {   // more rows than `cap` per wanted item: blocks of `cap` rows, groups by L2
        job.mb = cap;
        job.mblocks = (m + job.mb - 1) / job.mb;
        job.group = CK_CGROUP / (job.mb * nr * (int)sizeof(float));
        if (job.group < 1) job.group = 1;
    }
    job.groups = (panels + job.group - 1) / job.group;
    if (threads > job.mblocks * job.groups) threads = job.mblocks * job.groups;
    ck_pool_run(task, &job, threads);
}

void ck_attention(int kernel, int threads, float *out, const float *qkv, int b, int t, int c, int nh, int causal) {
    if (b <= 0 || t <= 0) return;
    struct ck_attention_job job = { .out = out, .qkv = qkv, .b = b, .t = t, .c = c, .nh = nh, .causal = causal };
    atomic_init(&job.next, 0);
    ck_task task = attention_task_portable;
#ifdef CK_X86
    switch (usable(kernel)) {
    case CK_KERNEL_AVX2: task = attention_task_avx2; break;
    case CK_KERNEL_AVX512: task = attention_task_avx512; break;
    default: break;
    }
#endif
    if (threads > b * nh) threads = b * nh;
    ck_pool_run(task, &job, threads);
}

void ck_layernorm(int kernel, int threads, float *out, const float *inp, const float *weight, const float *bias,
                  int n, int c, float eps) {
    if (n <= 0) return;
    struct ck_layernorm_job job = { out, inp, weight, bias, n, c, eps };
    ck_task task = layernorm_task_portable;
#ifdef CK_X86
    switch (usable(kernel)) {
    case CK_KERNEL_AVX2: task = layernorm_task_avx2; break;
    case CK_KERNEL_AVX512: task = layernorm_task_avx512; break;
    default: break;
    }
#endif
    if ((long)n * c < 32768) threads = 1;
    if (threads > n) threads = n;
    ck_pool_run(task, &job, threads);
}
