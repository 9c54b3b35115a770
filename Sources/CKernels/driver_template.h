// The GEMM driver, the fused write-back and the attention kernel, written once and compiled
// once per kernel family (gemm.c includes this file with CK_SUFFIX, CK_MR, CK_NR and
// CK_MICROKERNEL defined, under that family's target attribute). Internal to CKernels.
//
// Blocking: the packed B is ceil(N/NR) panels of K x NR. Each thread owns a contiguous range of
// panels (columns of the output). For each KC-deep slice of K and each MC-row block of A, the
// thread packs the A block into MR-row micro-panels (k-major, zero padded) and sweeps its panels;
// one panel's KC x NR slice stays in L1 while the MC/MR micro-tiles of the block pass over it.
// The bias, the activation and (with accumulate) the residual add happen on each finished tile
// while it is in cache.

#define CK_CAT2(a, b) a##b
#define CK_CAT(a, b) CK_CAT2(a, b)
#define CK_NAME(name) CK_CAT(name, CK_SUFFIX)

static void CK_NAME(pack_a_)(float *restrict dst, const float *restrict a, int lda, int rows, int kc) {
    for (int i0 = 0; i0 < rows; i0 += CK_MR) {
        int r = rows - i0 < CK_MR ? rows - i0 : CK_MR;
        const float *src = a + (size_t)i0 * lda;
        if (r == CK_MR) {
            for (int p = 0; p < kc; p++)
                for (int i = 0; i < CK_MR; i++) dst[p * CK_MR + i] = src[(size_t)i * lda + p];
        } else {
            for (int p = 0; p < kc; p++)
                for (int i = 0; i < CK_MR; i++) dst[p * CK_MR + i] = i < r ? src[(size_t)i * lda + p] : 0.0f;
        }
        dst += (size_t)CK_MR * kc;
    }
}

static void CK_NAME(epilogue_)(float *restrict c, int ldc, int rows, int cols, const float *restrict bias, int act) {
    for (int r = 0; r < rows; r++) {
        float *row = c + (size_t)r * ldc;
        if (bias)
            for (int j = 0; j < cols; j++) row[j] += bias[j];
        if (act == CK_ACT_QUICKGELU) {
            for (int j = 0; j < cols; j++) { float x = row[j]; row[j] = x / (1.0f + ck_fast_exp(-1.702f * x)); }
        } else if (act == CK_ACT_GELU) {
            for (int j = 0; j < cols; j++) { float x = row[j]; row[j] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
        }
    }
}

static void CK_NAME(gemm_task_)(void *ctx, int tid, int threads) {
    const struct ck_gemm_job *job = ctx;
    const int n = job->n, m = job->m, k = job->k;
    const int panels = (n + CK_NR - 1) / CK_NR;
    const int p0 = (int)((long)panels * tid / threads), p1 = (int)((long)panels * (tid + 1) / threads);
    if (p0 >= p1) return;
    float *apack = ck_thread_apack();
    float tile[CK_MR * CK_NR] __attribute__((aligned(64)));
    for (int k0 = 0; k0 < k; k0 += CK_KC) {
        const int kc = k - k0 < CK_KC ? k - k0 : CK_KC;
        const int first = k0 == 0, last = k0 + kc >= k;
        const int load = job->accumulate || !first;
        for (int m0 = 0; m0 < m; m0 += CK_MC) {
            const int mc = m - m0 < CK_MC ? m - m0 : CK_MC;
            CK_NAME(pack_a_)(apack, job->a + (size_t)m0 * job->lda + k0, job->lda, mc, kc);
            for (int p = p0; p < p1; p++) {
                const int j0 = p * CK_NR;
                const int cols = n - j0 < CK_NR ? n - j0 : CK_NR;
                const float *bp = job->packed_b + (size_t)p * k * CK_NR + (size_t)k0 * CK_NR;
                for (int i0 = 0; i0 < mc; i0 += CK_MR) {
                    const int rows = mc - i0 < CK_MR ? mc - i0 : CK_MR;
                    float *ct = job->c + (size_t)(m0 + i0) * job->ldc + j0;
                    const float *ap = apack + (size_t)i0 * kc;
                    if (rows == CK_MR && cols == CK_NR) {
                        CK_MICROKERNEL(kc, ap, bp, ct, job->ldc, load);
                    } else {
                        for (int r = 0; r < CK_MR; r++)
                            for (int j = 0; j < CK_NR; j++)
                                tile[r * CK_NR + j] = (load && r < rows && j < cols) ? ct[(size_t)r * job->ldc + j] : 0.0f;
                        CK_MICROKERNEL(kc, ap, bp, tile, CK_NR, 1);
                        for (int r = 0; r < rows; r++)
                            for (int j = 0; j < cols; j++) ct[(size_t)r * job->ldc + j] = tile[r * CK_NR + j];
                    }
                    if (last) CK_NAME(epilogue_)(ct, job->ldc, rows, cols, job->bias ? job->bias + j0 : NULL, job->act);
                }
            }
        }
    }
}

static void CK_NAME(attention_task_)(void *ctx, int tid, int threads) {
    const struct ck_attention_job *job = ctx;
    const int t = job->t, c = job->c, nh = job->nh, hs = c / nh;
    const int tasks = job->b * nh;
    const int q0 = (int)((long)tasks * tid / threads), q1 = (int)((long)tasks * (tid + 1) / threads);
    if (q0 >= q1) return;
    const float scale = 1.0f / sqrtf((float)hs);
    // One head's keys transposed [HS, T], its values [T, HS], one row of scores [T], one output row.
    float *buf = aligned_alloc(64, sizeof(float) * (size_t)(((2 * t * hs + t + hs) + 15) / 16 * 16));
    if (!buf) abort();
    float *kt = buf, *vh = kt + (size_t)t * hs, *s = vh + (size_t)t * hs, *o = s + t;
    for (int task = q0; task < q1; task++) {
        const int bi = task / nh, h = task % nh;
        const float *base = job->qkv + (size_t)bi * t * 3 * c;
        for (int j = 0; j < t; j++) {
            const float *kr = base + (size_t)j * 3 * c + c + h * hs;
            const float *vr = base + (size_t)j * 3 * c + 2 * c + h * hs;
            for (int d = 0; d < hs; d++) { kt[(size_t)d * t + j] = kr[d]; vh[(size_t)j * hs + d] = vr[d]; }
        }
        for (int i = 0; i < t; i++) {
            const float *q = base + (size_t)i * 3 * c + h * hs;
            const int valid = job->causal ? i + 1 : t;
            for (int j = 0; j < valid; j++) s[j] = 0.0f;
            for (int d = 0; d < hs; d++) {
                const float qd = q[d];
                const float *kd = kt + (size_t)d * t;
                for (int j = 0; j < valid; j++) s[j] += qd * kd[j];
            }
            float maxv = -INFINITY;
            for (int j = 0; j < valid; j++) { s[j] *= scale; maxv = s[j] > maxv ? s[j] : maxv; }
            float sum = 0.0f;
            {
#pragma clang fp reassociate(on)
                for (int j = 0; j < valid; j++) { float e = ck_fast_exp(s[j] - maxv); s[j] = e; sum += e; }
            }
            const float inv = 1.0f / sum;
            for (int d = 0; d < hs; d++) o[d] = 0.0f;
            for (int j = 0; j < valid; j++) {
                const float pj = s[j] * inv;
                const float *vj = vh + (size_t)j * hs;
                for (int d = 0; d < hs; d++) o[d] += pj * vj[d];
            }
            float *dst = job->out + ((size_t)bi * t + i) * c + h * hs;
            for (int d = 0; d < hs; d++) dst[d] = o[d];
        }
    }
    free(buf);
}

static void CK_NAME(layernorm_task_)(void *ctx, int tid, int threads) {
    const struct ck_layernorm_job *job = ctx;
    const int n = job->n, c = job->c;
    const int r0 = (int)((long)n * tid / threads), r1 = (int)((long)n * (tid + 1) / threads);
    for (int i = r0; i < r1; i++) {
        const float *x = job->inp + (size_t)i * c;
        float *y = job->out + (size_t)i * c;
        float sum = 0.0f, sq = 0.0f;
        {
#pragma clang fp reassociate(on)
            for (int j = 0; j < c; j++) sum += x[j];
        }
        const float mean = sum / (float)c;
        {
#pragma clang fp reassociate(on)
            for (int j = 0; j < c; j++) { const float d = x[j] - mean; sq += d * d; }
        }
        const float rstd = 1.0f / sqrtf(sq / (float)c + job->eps);
        for (int j = 0; j < c; j++) y[j] = (x[j] - mean) * rstd * job->weight[j] + job->bias[j];
    }
}

#undef CK_NAME
