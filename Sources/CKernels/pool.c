// A persistent pool of threads for the inference kernels. The caller of a job is thread 0; the
// pool's workers are threads 1..<n. Workers spin briefly after a job (the forward pass issues
// GEMMs back to back, and waking a sleeping thread costs more than a small GEMM's share), then
// sleep on a condition variable so an idle daemon burns no CPU. One job runs at a time; a
// caller that finds the pool busy runs its job alone on its own thread.
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE  // pthread_setname_np
#endif
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define CK_MAX_WORKERS 63
#define CK_SPIN_ROUNDS 20000

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;   // one job at a time
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;

static int workers = 0;                 // started so far; changed only under job_lock
static atomic_uint generation = 0;      // bumped once per job
static atomic_int remaining = 0;        // workers yet to finish the current job
static ck_task job_task;
static void *job_ctx;
static int job_threads;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

struct worker_start { int tid; unsigned seen; };

static void *worker_main(void *arg) {
    struct worker_start start = *(struct worker_start *)arg;
    free(arg);
#if defined(__linux__)
    char name[16];
    snprintf(name, sizeof name, "clipd-kernel-%d", start.tid);
    pthread_setname_np(pthread_self(), name);
#endif
    unsigned seen = start.seen;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&generation, memory_order_acquire) == seen && spins < CK_SPIN_ROUNDS) {
            cpu_relax();
            spins++;
        }
        if (atomic_load_explicit(&generation, memory_order_acquire) == seen) {
            pthread_mutex_lock(&sleep_lock);
            while (atomic_load_explicit(&generation, memory_order_acquire) == seen) pthread_cond_wait(&wake_cv, &sleep_lock);
            pthread_mutex_unlock(&sleep_lock);
        }
        seen = atomic_load_explicit(&generation, memory_order_acquire);
        if (start.tid < job_threads) job_task(job_ctx, start.tid, job_threads);
        if (atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&sleep_lock);
            pthread_cond_broadcast(&done_cv);
            pthread_mutex_unlock(&sleep_lock);
        }
    }
    return NULL;
}

int ck_pool_workers(void) {
    pthread_mutex_lock(&job_lock);
    int n = workers;
    pthread_mutex_unlock(&job_lock);
    return n;
}

void ck_pool_run(ck_task task, void *ctx, int threads) {
    if (threads > CK_MAX_WORKERS + 1) threads = CK_MAX_WORKERS + 1;
    if (threads <= 1 || pthread_mutex_trylock(&job_lock) != 0) {
        task(ctx, 0, 1);
        return;
    }
    while (workers < threads - 1) {
        struct worker_start *s = malloc(sizeof *s);
        pthread_t thread;
        if (!s) break;
        s->tid = workers + 1;
        s->seen = atomic_load(&generation);
        if (pthread_create(&thread, NULL, worker_main, s) != 0) { free(s); break; }
        pthread_detach(thread);
        workers++;
    }
    if (threads > workers + 1) threads = workers + 1;
    if (threads <= 1) {
        pthread_mutex_unlock(&job_lock);
        task(ctx, 0, 1);
        return;
    }
    job_task = task;
    job_ctx = ctx;
    job_threads = threads;
    atomic_store_explicit(&remaining, workers, memory_order_relaxed);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_mutex_lock(&sleep_lock);
    pthread_cond_broadcast(&wake_cv);
    pthread_mutex_unlock(&sleep_lock);

    task(ctx, 0, threads);

    int spins = 0;
    while (atomic_load_explicit(&remaining, memory_order_acquire) > 0 && spins < CK_SPIN_ROUNDS) {
        cpu_relax();
        spins++;
    }
    if (atomic_load_explicit(&remaining, memory_order_acquire) > 0) {
        pthread_mutex_lock(&sleep_lock);
        while (atomic_load_explicit(&remaining, memory_order_acquire) > 0) pthread_cond_wait(&done_cv, &sleep_lock);
        pthread_mutex_unlock(&sleep_lock);
    }
    pthread_mutex_unlock(&job_lock);
}
