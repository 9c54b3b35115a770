// Two builds of clipd's CKernels GEMM side by side in one process (gemm_ab.sh compiles each with
// its exported names prefixed A_ / B_), call by call on the same shapes, so that load from
// elsewhere on a shared machine hits both alike. Each round runs every one of `copies` packed
// weight copies (enough of them that B streams from memory, as the model's 12 layers do)
// through both builds, alternating which goes first; prints best and median GFLOP/s of each and
// the median over rounds of B's speed-up (A's time / B's time).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

size_t A_ck_packed_size(int, int, int);
void A_ck_pack_b_transposed(int, float *, const float *, int, int, int);
void A_ck_gemm_packed(int, int, int, int, int, const float *, int, const float *, const float *, int, int, float *, int);
size_t B_ck_packed_size(int, int, int);
void B_ck_pack_b_transposed(int, float *, const float *, int, int, int);
void B_ck_gemm_packed(int, int, int, int, int, const float *, int, const float *, const float *, int, int, float *, int);
int B_ck_best_kernel(void);

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int by_value(const void *x, const void *y) { double a = *(const double *)x, b = *(const double *)y; return a < b ? -1 : a > b; }
static float *floats(size_t count) {
    float *p = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

int main(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: gemm_ab KERNEL THREADS M N K COPIES ROUNDS [ACT]\n"); return 2; }
    const int kernel = atoi(argv[1]) < 0 ? B_ck_best_kernel() : atoi(argv[1]), threads = atoi(argv[2]);
    const int m = atoi(argv[3]), n = atoi(argv[4]), k = atoi(argv[5]), copies = atoi(argv[6]), rounds = atoi(argv[7]);
    const int act = argc > 8 ? atoi(argv[8]) : 0;
    if (m < 1 || n < 1 || k < 1 || copies < 1 || rounds < 1 || threads < 1) { fprintf(stderr, "sizes must be positive\n"); return 2; }
    float *a = floats((size_t)m * k), *c = floats((size_t)m * n), *bias = floats(n), *w = floats((size_t)n * k);
    srand(1);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < (size_t)n * k; i++) w[i] = rand() / (float)RAND_MAX - 0.5f;
    for (int i = 0; i < n; i++) bias[i] = 0.1f;
    float **pa = malloc(sizeof(float *) * copies), **pb = malloc(sizeof(float *) * copies);
    for (int l = 0; l < copies; l++) {
        pa[l] = floats(A_ck_packed_size(kernel, n, k)); A_ck_pack_b_transposed(kernel, pa[l], w, n, k, k);
        pb[l] = floats(B_ck_packed_size(kernel, n, k)); B_ck_pack_b_transposed(kernel, pb[l], w, n, k, k);
    }
    double *ta = malloc(sizeof(double) * rounds), *tb = malloc(sizeof(double) * rounds), *speedup = malloc(sizeof(double) * rounds);
    for (int r = 0; r < rounds; r++) {
        double sa = 0, sb = 0;
        for (int l = 0; l < copies; l++) {
            for (int side = 0; side < 2; side++) {
                const int run_a = ((r + l) & 1) == side;
                const double t0 = now();
                if (run_a) A_ck_gemm_packed(kernel, threads, m, n, k, a, k, pa[l], bias, act, 0, c, n);
                else B_ck_gemm_packed(kernel, threads, m, n, k, a, k, pb[l], bias, act, 0, c, n);
                *(run_a ? &sa : &sb) += now() - t0;
            }
        }
        ta[r] = sa / copies; tb[r] = sb / copies; speedup[r] = sa / sb;
    }
    qsort(ta, rounds, sizeof(double), by_value); qsort(tb, rounds, sizeof(double), by_value); qsort(speedup, rounds, sizeof(double), by_value);
    const double gflop = 2.0 * m * n * k / 1e9;
    printf("%5d %5d %5d | %6.1f %6.1f | %6.1f %6.1f | %.3f [%.3f..%.3f]\n", m, n, k, gflop / ta[0], gflop / ta[rounds / 2],
           gflop / tb[0], gflop / tb[rounds / 2], speedup[rounds / 2], speedup[0], speedup[rounds - 1]);
    return 0;
}
