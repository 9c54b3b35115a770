// Internal: the kernels' thread pool (pool.c).
#ifndef CLIPD_CKERNELS_POOL_H
#define CLIPD_CKERNELS_POOL_H

/// One share of a job: thread `tid` of `threads` (0 is the caller).
typedef void (*ck_task)(void *ctx, int tid, int threads);

/// Runs task(ctx, tid, threads) for every tid < threads, the caller taking tid 0, and returns
/// when all shares are done. Runs the whole job on the caller when the pool is busy.
void ck_pool_run(ck_task task, void *ctx, int threads);

#endif
