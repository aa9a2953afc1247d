/*
 * bench_rpc_null — the cost of a call, exitless vs the exit path, against the physical floor.
 *
 * Measured in one run, for the cost model off and on (two enclaves):
 *   floor      cross-core cache-line round trip (request line + response line), host threads
 *   exit       null call on the exit path (an OCALL through the RPC exit slot)
 *   sync       null call, exitless, synchronous
 *   batched    null calls, exitless, eleos_rpc_call_batch of 256 (throughput)
 *   getppid    native (host), exit path, exitless (through eleos/sys.h)
 *   idle       CPU used by the pool from 1 ms after the last call, and how many of the first
 *              calls after an idle period took the exit path
 * Every figure is the median over repeated runs. Usage: bench_rpc_null [--quick]
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "common/tsc.h"
#include "eleos/sys.h"

static int reps = 11;
static long iters = 200000;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

/* --- physical floor ---------------------------------------------------------------------- */

static struct {
    alignas(64) _Atomic uint64_t req;
    alignas(64) _Atomic uint64_t resp;
} pp;

static void *pong(void *arg) {
    long n = *(long *)arg;
    pin(1);
    for (long i = 1; i <= n; i++) {
        while (atomic_load_explicit(&pp.req, memory_order_acquire) != (uint64_t)i)
            _mm_pause();
        atomic_store_explicit(&pp.resp, (uint64_t)i, memory_order_release);
    }
    return NULL;
}

static double floor_ns(void) {
    long n = iters;
    atomic_store(&pp.req, 0);
    atomic_store(&pp.resp, 0);
    pthread_t th;
    pthread_create(&th, NULL, pong, &n);
    pin(0);
    uint64_t t0 = tsc_now();
    for (long i = 1; i <= n; i++) {
        atomic_store_explicit(&pp.req, (uint64_t)i, memory_order_release);
        while (atomic_load_explicit(&pp.resp, memory_order_acquire) != (uint64_t)i)
            _mm_pause();
    }
    uint64_t t1 = tsc_now();
    pthread_join(th, NULL);
    return tsc_to_ns(t1 - t0) / (double)n;
}

/* --- enclave side ------------------------------------------------------------------------ */

enum kind { K_EXIT, K_SYNC, K_BATCH, K_PPID_EXIT, K_PPID_EXITLESS, K_PPID_TRAP, K_FEW };

struct bctx {
    struct eleos_rpc_pool *pool;
    struct eleos_rpc_client *cl;
    enum kind kind;
    long n;
    double ns;      /* per call */
};

static struct eleos_enclave *enc;

static long e_create(void *arg) {
    struct bctx *b = arg;
    size_t size;
    void *area = eleos_rpc_pool_shared(b->pool, &size);
    int rc = eleos_rpc_client_create(enc, area, size, &b->cl);
    if (rc == 0)
        eleos_sys_init(b->cl);
    return rc;
}

static long e_destroy(void *arg) {
    struct bctx *b = arg;
    eleos_sys_init(NULL);
    eleos_rpc_client_destroy(b->cl);
    return 0;
}

static long e_run(void *arg) {
    struct bctx *b = arg;
    struct eleos_rpc_req nul = {.fn = ELEOS_RPC_FN_NULL};
    int64_t r;
    long bad = 0;
    enum { BATCH = 256 };
    static struct eleos_rpc_req rs[BATCH];
    static int64_t rets[BATCH];
    uint64_t t0 = tsc_now();
    switch (b->kind) {
    case K_EXIT:
        nul.flags = ELEOS_RPC_F_EXIT;
        /* fallthrough */
    case K_SYNC:
    case K_FEW:
        for (long i = 0; i < b->n; i++)
            bad += eleos_rpc_call(b->cl, &nul, &r) != 0;
        break;
    case K_BATCH:
        for (int i = 0; i < BATCH; i++)
            rs[i] = nul;
        for (long i = 0; i < b->n; i += BATCH)
            bad += eleos_rpc_call_batch(b->cl, rs, BATCH, rets) != 0;
        break;
    case K_PPID_TRAP:
        /* A plain system call in enclave code: trapped and run as an exit by the emulator
         * (what an unmodified SDK program pays). */
        for (long i = 0; i < b->n; i++)
            bad += syscall(SYS_getppid) <= 0;
        break;
    case K_PPID_EXIT:
    case K_PPID_EXITLESS:
        eleos_sys_thread_mode(b->kind == K_PPID_EXIT ? ELEOS_SYS_MODE_EXIT
                                                     : ELEOS_SYS_MODE_EXITLESS);
        for (long i = 0; i < b->n; i++)
            bad += eleos_sys_getppid() <= 0;
        eleos_sys_thread_mode(ELEOS_SYS_MODE_DEFAULT);
        break;
    }
    uint64_t t1 = tsc_now();
    long n = b->kind == K_BATCH ? (b->n + BATCH - 1) / BATCH * BATCH : b->n;
    b->ns = tsc_to_ns(t1 - t0) / (double)n;
    return bad;
}

static double measure(struct bctx *b, enum kind k, long n) {
    double v[64];
    for (int i = 0; i < reps; i++) {
        b->kind = k;
        b->n = n;
        long bad;
        if (eleos_enclave_ecall(enc, e_run, b, &bad) != 0 || bad) {
            fprintf(stderr, "benchmark call failed\n");
            exit(1);
        }
        v[i] = b->ns;
    }
    return median(v, reps);
}

static double native_getppid_ns(void) {
    double v[64];
    for (int r = 0; r < reps; r++) {
        long n = iters;
        uint64_t t0 = tsc_now();
        for (long i = 0; i < n; i++)
            syscall(SYS_getppid);
        v[r] = tsc_to_ns(tsc_now() - t0) / (double)n;
    }
    return median(v, reps);
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void run_model(bool model_on, double floor) {
    struct eleos_enclave_config ec;
    eleos_enclave_config_default(&ec);
    if (model_on)
        eleos_cost_model_default(&ec.cost);
    else
        eleos_cost_model_off(&ec.cost);
    ec.elrange_size = 256u << 20;
    int rc = eleos_enclave_create(&ec, &enc);
    if (rc) {
        fprintf(stderr, "eleos_enclave_create: %s\n", strerror(-rc));
        exit(rc == -ENOSYS ? 77 : 1);
    }
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    static const int cpus[] = {1};
    pc.workers = 1;
    pc.cpus = cpus;
    pc.ncpus = 1;
    struct bctx b = {0};
    if (eleos_rpc_pool_create(enc, &pc, &b.pool) || eleos_sys_host_register(b.pool) ||
        eleos_rpc_pool_start(b.pool)) {
        fprintf(stderr, "pool setup failed\n");
        exit(1);
    }
    long rv;
    if (eleos_enclave_ecall(enc, e_create, &b, &rv) || rv) {
        fprintf(stderr, "client setup failed\n");
        exit(1);
    }
    struct eleos_enclave_config got;
    eleos_enclave_get_config(enc, &got);
    printf("\n== cost model %s: ecall %llu, ocall %llu extra cycles; workers 1 (cpu 1), caller "
           "cpu 0, spin budget %llu ns, ring %u\n",
           model_on ? "ON" : "OFF", (unsigned long long)got.cost.ecall_cycles,
           (unsigned long long)got.cost.ocall_cycles, (unsigned long long)pc.spin_ns,
           pc.ring_size);
    pin(0);
    long exit_n = iters / 10 > 1000 ? iters / 10 : 1000;
    double t_exit = measure(&b, K_EXIT, exit_n);
    double t_sync = measure(&b, K_SYNC, iters);
    double t_batch = measure(&b, K_BATCH, iters * 4);
    double t_ppid_exit = measure(&b, K_PPID_EXIT, exit_n);
    double t_ppid = measure(&b, K_PPID_EXITLESS, iters);
    double t_ppid_trap = measure(&b, K_PPID_TRAP, exit_n);
    printf("  %-34s %10.1f ns\n", "floor (cache-line round trip)", floor);
    printf("  %-34s %10.1f ns\n", "null call, exit path", t_exit);
    printf("  %-34s %10.1f ns   %.2fx floor, %.1fx faster than exit\n", "null call, exitless sync",
           t_sync, t_sync / floor, t_exit / t_sync);
    printf("  %-34s %10.1f ns   %.2f M calls/s\n", "null call, exitless batched (256)", t_batch,
           1e3 / t_batch);
    printf("  %-34s %10.1f ns\n", "getppid, exit path (RPC OCALL)", t_ppid_exit);
    printf("  %-34s %10.1f ns\n", "getppid, trapped syscall exit", t_ppid_trap);
    printf("  %-34s %10.1f ns   %.1fx faster than RPC exit, %.1fx than trapped\n",
           "getppid, exitless", t_ppid, t_ppid_exit / t_ppid, t_ppid_trap / t_ppid);

    /* Idle: after the last call, give the workers 1 ms, then measure the process's CPU use
     * (only the pool's workers can be running: this thread sleeps). */
    b.kind = K_SYNC;
    double idle[64];
    long first_exit_max = 0;
    for (int r = 0; r < reps; r++) {
        if (eleos_enclave_ecall(enc, e_run, &b, &rv))
            exit(1);
        sleep_s(0.001);
        double c0 = cpu_s(), m0 = mono_s();
        sleep_s(0.1);
        idle[r] = (cpu_s() - c0) / (mono_s() - m0) * 100.0;
        struct eleos_rpc_client_stats s0, s1;
        eleos_rpc_client_stats(b.cl, &s0);
        b.kind = K_FEW;
        b.n = 10;
        if (eleos_enclave_ecall(enc, e_run, &b, &rv))
            exit(1);
        eleos_rpc_client_stats(b.cl, &s1);
        long fb = (long)(s1.no_worker - s0.no_worker);
        if (fb > first_exit_max)
            first_exit_max = fb;
        b.kind = K_SYNC;
        b.n = 1000;
    }
    printf("  %-34s %10.3f %% of a core (median)\n", "idle pool CPU from 1 ms after", median(idle, reps));
    printf("  %-34s %10ld (max over %d idle periods, of 10 calls)\n", "first calls on exit path",
           first_exit_max, reps);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(enc, &es);
    printf("  enclave syscall exits during the run: %llu (all from the trapped-syscall row: %ld "
           "x %d)\n", (unsigned long long)es.syscall_exits, exit_n, reps);
    if (eleos_enclave_ecall(enc, e_destroy, &b, &rv))
        exit(1);
    eleos_rpc_pool_destroy(b.pool);
    eleos_enclave_destroy(enc);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            reps = 5;
            iters = 20000;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    printf("bench_rpc_null: %d reps (median), %ld iterations, TSC %.3f GHz, %ld CPUs\n", reps,
           iters, tsc_ghz(), sysconf(_SC_NPROCESSORS_ONLN));
    double fl[64];
    for (int r = 0; r < reps; r++)
        fl[r] = floor_ns();
    double floor = median(fl, reps);
    printf("native getppid: %.1f ns\n", native_getppid_ns());
    run_model(false, floor);
    run_model(true, floor);
    return 0;
}
