// The GEMM driver, the fused write-back and the attention kernel, written once and compiled
// once per kernel family (gemm.c includes this file with CK_SUFFIX, CK_MR, CK_NR and
// CK_MICROKERNEL and CK_PREFETCH_IN_KERNEL defined, under that family's target attribute).
// Internal to CKernels.
//
// Blocking: the packed B is ceil(N/NR) panels of K x NR. A call is cut into work items, each a
// row block of A (blocks of nearly equal size, at most CK_MB rows and CK_APACK floats of packed
// A) against a group of panels, shaped as ck_gemm_packed says; threads take items from an atomic
// counter, row block first.
// A thread packs a row block of A, every K slice, into MR-row micro-panels (k-major, zero
// padded) when its item moves to a new block. Within an item, for each KC-deep slice of K and
// each panel, the panel's KC x NR slice of B stays in L1 while every row tile of the block
// passes over it, so B is read from memory once per row block, and the next slice of B is
// prefetched into L2 meanwhile. On the last slice the micro-kernel adds the bias and applies
// QuickGELU in registers as it stores a full tile; edge tiles, GELU (erf) and nothing else go
// through the scalar-loop epilogue.

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

/// One thread's share of a call: items until the counter runs out (see the blocking note above);
/// the group's columns of C stay in L2 from one K slice to the next.
static void CK_NAME(gemm_task_)(void *ctx, int tid, int threads) {
    struct ck_gemm_job *job = ctx;
    (void)tid; (void)threads;
    const int m = job->m, n = job->n, k = job->k, mb = job->mb;
    const int panels = (n + CK_NR - 1) / CK_NR, items = job->mblocks * job->groups;
    float *apack = ck_thread_apack((size_t)mb * k);
    int packed = -1;
    float tile[CK_MR * CK_NR] __attribute__((aligned(64)));
    const int act = job->act == CK_ACT_QUICKGELU ? CK_ACT_QUICKGELU : CK_ACT_NONE;   // GELU: the epilogue
    for (int item; (item = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed)) < items;) {
        const int block = item / job->groups, g = item % job->groups;
        const int m0 = block * mb, mc = m - m0 < mb ? m - m0 : mb;
        if (block != packed) {
            for (int k0 = 0; k0 < k; k0 += CK_KC)
                CK_NAME(pack_a_)(apack + (size_t)mb * k0, job->a + (size_t)m0 * job->lda + k0, job->lda, mc,
                                 k - k0 < CK_KC ? k - k0 : CK_KC);
            packed = block;
        }
        const int p0 = g * job->group, p1 = p0 + job->group < panels ? p0 + job->group : panels;
        for (int k0 = 0; k0 < k; k0 += CK_KC) {
            const int kc = k - k0 < CK_KC ? k - k0 : CK_KC;
            const int first = k0 == 0, last = k0 + kc >= k;
            const int load = job->accumulate || !first;
            const float *as = apack + (size_t)mb * k0;
            for (int p = p0; p < p1; p++) {
                const int j0 = p * CK_NR;
                const int cols = n - j0 < CK_NR ? n - j0 : CK_NR;
                const float *bp = job->packed_b + (size_t)p * k * CK_NR + (size_t)k0 * CK_NR;
                const float *bias = last && job->bias ? job->bias + j0 : NULL;
                // The next B slice (the next panel's, or the group's first at the next K slice) is
                // fetched into L2 a share per tile (spread over the tile's k steps where the family
                // says CK_PREFETCH_IN_KERNEL), so that no tile waits on memory for B: slices of
                // different panels are not adjacent, so the hardware prefetcher cannot.
                const int next_k0 = p + 1 < p1 ? k0 : k0 + CK_KC;
                const float *bnext = next_k0 < k ? job->packed_b + (size_t)(p + 1 < p1 ? p + 1 : p0) * k * CK_NR + (size_t)next_k0 * CK_NR : NULL;
                const int bnext_lines = bnext ? (k - next_k0 < CK_KC ? k - next_k0 : CK_KC) * CK_NR / 16 : 0;
                const int tiles = (mc + CK_MR - 1) / CK_MR;
                const int per_tile = (bnext_lines + tiles - 1) / tiles;
                for (int i0 = 0, line = 0; i0 < mc; i0 += CK_MR) {
                    const int rows = mc - i0 < CK_MR ? mc - i0 : CK_MR;
                    float *ct = job->c + (size_t)(m0 + i0) * job->ldc + j0;
                    const float *ap = as + (size_t)i0 * kc;
#if CK_PREFETCH_IN_KERNEL
                    // This tile's share of the next B slice, one line per k step of the micro-kernel.
                    const float *pf = bnext ? bnext + (size_t)line * 16 : NULL;
                    const int pf_lines = per_tile < bnext_lines - line ? per_tile : bnext_lines - line;
                    line += pf_lines;
#else
                    // This tile's share of the next B slice, before the tile.
                    const float *pf = NULL;
                    const int pf_lines = 0;
                    for (int l = 0; l < per_tile && line < bnext_lines; l++, line++)
                        __builtin_prefetch(bnext + (size_t)line * 16, 0, 2);
#endif
                    // The next tile's C rows are fetched while this one computes.
                    const float *next = i0 + CK_MR < mc ? ct + (size_t)CK_MR * job->ldc
                                      : (p + 1 < p1 ? job->c + (size_t)m0 * job->ldc + j0 + CK_NR : NULL);
                    const int next_rows = i0 + CK_MR < mc ? (mc - i0 - CK_MR < CK_MR ? mc - i0 - CK_MR : CK_MR)
                                                          : (mc < CK_MR ? mc : CK_MR);
                    if (next)
                        for (int r = 0; r < next_rows; r++) {
                            __builtin_prefetch(next + (size_t)r * job->ldc, 1, 3);
                            __builtin_prefetch(next + (size_t)r * job->ldc + CK_NR - 1, 1, 3);
                        }
                    if (rows == CK_MR && cols == CK_NR) {
                        // Bias and QuickGELU applied in registers as the finished tile is stored.
                        CK_MICROKERNEL(kc, ap, bp, ct, job->ldc, load, bias, last ? act : CK_ACT_NONE, pf, pf_lines);
                        if (last && job->act == CK_ACT_GELU) CK_NAME(epilogue_)(ct, job->ldc, rows, cols, NULL, job->act);
                    } else {
                        for (int r = 0; r < CK_MR; r++)
                            for (int j = 0; j < CK_NR; j++)
                                tile[r * CK_NR + j] = (load && r < rows && j < cols) ? ct[(size_t)r * job->ldc + j] : 0.0f;
                        CK_MICROKERNEL(kc, ap, bp, tile, CK_NR, 1, NULL, CK_ACT_NONE, pf, pf_lines);
                        for (int r = 0; r < rows; r++)
                            for (int j = 0; j < cols; j++) ct[(size_t)r * job->ldc + j] = tile[r * CK_NR + j];
                        if (last) CK_NAME(epilogue_)(ct, job->ldc, rows, cols, bias, job->act);
                    }
                }
            }
        }
    }
}

#ifndef CK_GEMM_ONLY
// Attention per (image, head) on the family's micro-kernel, in three small GEMMs' worth of work
// kept in cache: S^T = K (Q/sqrt(HS))^T as [keys, queries] tiles (K packed as the A operand, the
// scaled queries as B panels); the softmax runs down each query's column, vectorised across
// queries (the order of the max and the sum over keys is the naive kernel's); then
// O = P V with P^T's rows giving the A operand contiguously and V packed as B panels, written
// straight into the head's columns of `out`. With the causal mask, tiles wholly above the
// diagonal are skipped and the masked probabilities are exact zeros.
static void CK_NAME(attention_task_)(void *ctx, int tid, int threads) {
    struct ck_attention_job *job = ctx;
    const int t = job->t, c = job->c, nh = job->nh, hs = c / nh, causal = job->causal;
    const int tasks = job->b * nh;
    (void)tid; (void)threads;
    if (hs <= 0) return;
    const float scale = 1.0f / sqrtf((float)hs);
    const int tr = (t + CK_MR - 1) / CK_MR * CK_MR;        // key rows of S^T, query rows of O
    const int tq = (tr + CK_NR - 1) / CK_NR * CK_NR;       // query columns of S^T (>= tr)
    const int hp = (hs + CK_NR - 1) / CK_NR * CK_NR;       // value columns, whole panels
    const size_t floats = (size_t)tr * hs + (size_t)tq * hs + (size_t)tr * tq + 2 * (size_t)tq
                          + (size_t)CK_MR * t + (size_t)hp * t + (size_t)CK_MR * CK_NR;
    float *buf = aligned_alloc(64, sizeof(float) * ((floats + 15) / 16 * 16));
    if (!buf) abort();
    float *kp = buf, *qp = kp + (size_t)tr * hs, *st = qp + (size_t)tq * hs, *mx = st + (size_t)tr * tq;
    float *sm = mx + tq, *pa = sm + tq, *vp = pa + (size_t)CK_MR * t, *tile = vp + (size_t)hp * t;
    // Tasks are taken one at a time, so a thread the OS holds back costs the others one head.
    for (int task; (task = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed)) < tasks;) {
        const int bi = task / nh, h = task % nh;
        const float *base = job->qkv + (size_t)bi * t * 3 * c + (size_t)h * hs;
        // K as A: tile r0 holds keys r0..<r0+MR, k-major (d), zero padded.
        for (int r0 = 0; r0 < tr; r0 += CK_MR)
            for (int r = 0; r < CK_MR; r++) {
                float *dst = kp + (size_t)r0 * hs + r;
                if (r0 + r < t) {
                    const float *kr = base + (size_t)(r0 + r) * 3 * c + c;
                    for (int d = 0; d < hs; d++) dst[(size_t)d * CK_MR] = kr[d];
                } else {
                    for (int d = 0; d < hs; d++) dst[(size_t)d * CK_MR] = 0.0f;
                }
            }
        // Q * scale as B: panel j0 holds queries j0..<j0+NR, NR per d, zero padded.
        for (int j0 = 0; j0 < tq; j0 += CK_NR)
            for (int j = 0; j < CK_NR; j++) {
                float *dst = qp + (size_t)j0 * hs + j;
                if (j0 + j < t) {
                    const float *qr = base + (size_t)(j0 + j) * 3 * c;
                    for (int d = 0; d < hs; d++) dst[(size_t)d * CK_NR] = qr[d] * scale;
                } else {
                    for (int d = 0; d < hs; d++) dst[(size_t)d * CK_NR] = 0.0f;
                }
            }
        // S^T [tr, tq]: key tile x query panel; causal: keys above every query of the panel skipped.
        for (int j0 = 0; j0 < t; j0 += CK_NR)
            for (int r0 = 0; r0 < t; r0 += CK_MR) {
                if (causal && r0 > j0 + CK_NR - 1) break;
                CK_MICROKERNEL(hs, kp + (size_t)r0 * hs, qp + (size_t)j0 * hs, st + (size_t)r0 * tq + j0, tq, 0, NULL, CK_ACT_NONE, NULL, 0);
            }
        // Softmax over keys for every query column; masked entries become exact zeros.
        for (int i = 0; i < t; i++) { mx[i] = -INFINITY; sm[i] = 0.0f; }
        for (int k = 0; k < t; k++) {
            float *row = st + (size_t)k * tq;
            for (int i = causal ? k : 0; i < t; i++) mx[i] = row[i] > mx[i] ? row[i] : mx[i];
        }
        for (int k = 0; k < t; k++) {
            float *row = st + (size_t)k * tq;
            const int lo = causal ? k : 0;
            for (int i = 0; i < lo; i++) row[i] = 0.0f;
            for (int i = lo; i < t; i++) { const float e = ck_fast_exp(row[i] - mx[i]); row[i] = e; sm[i] += e; }
        }
        for (int i = 0; i < t; i++) sm[i] = 1.0f / sm[i];
        for (int k = 0; k < t; k++) {
            float *row = st + (size_t)k * tq;
            for (int i = causal ? k : 0; i < t; i++) row[i] *= sm[i];
        }
        // V as B: panel q holds value columns q..<q+NR for every key, zero padded.
        for (int q = 0; q < hp; q += CK_NR) {
            float *dst = vp + (size_t)q * t;
            const int cols = hs - q < CK_NR ? hs - q : CK_NR;
            for (int k = 0; k < t; k++) {
                const float *vr = base + (size_t)k * 3 * c + 2 * c + q;
                for (int j = 0; j < cols; j++) dst[(size_t)k * CK_NR + j] = vr[j];
                for (int j = cols; j < CK_NR; j++) dst[(size_t)k * CK_NR + j] = 0.0f;
            }
        }
        // O = P V, query tile by query tile; P^T's row k gives the tile's A operand at step k.
        for (int i0 = 0; i0 < t; i0 += CK_MR) {
            const int rows = t - i0 < CK_MR ? t - i0 : CK_MR;
            const int kc = causal ? (i0 + CK_MR < t ? i0 + CK_MR : t) : t;
            for (int k = 0; k < kc; k++) memcpy(pa + (size_t)k * CK_MR, st + (size_t)k * tq + i0, sizeof(float) * CK_MR);
            float *dst = job->out + ((size_t)bi * t + i0) * c + (size_t)h * hs;
            for (int q = 0; q < hp; q += CK_NR) {
                const int cols = hs - q < CK_NR ? hs - q : CK_NR;
                if (rows == CK_MR && cols == CK_NR) {
                    CK_MICROKERNEL(kc, pa, vp + (size_t)q * t, dst + q, c, 0, NULL, CK_ACT_NONE, NULL, 0);
                } else {
                    CK_MICROKERNEL(kc, pa, vp + (size_t)q * t, tile, CK_NR, 0, NULL, CK_ACT_NONE, NULL, 0);
                    for (int r = 0; r < rows; r++)
                        for (int j = 0; j < cols; j++) dst[(size_t)r * c + q + j] = tile[r * CK_NR + j];
                }
            }
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

#endif  // CK_GEMM_ONLY

#undef CK_NAME
