/*
 * bench_rpc_null — the cost of a call, exitless vs the exit path, against the physical floor.
 *
 * Measured in one run, for the cost model off and on (two enclaves):
 *   floor      cross-core cache-line round trip (request line + response line), host threads
 *              pinned to the caller's and the worker's CPUs; measured in every repetition,
 *              interleaved with the calls, so that it sees the same machine state
 *   exit       null call on the exit path (an OCALL through the RPC exit slot)
 *   sync       null call, exitless, synchronous
 *   batched    null calls, exitless, eleos_rpc_call_batch of 256 (throughput)
 *   getppid    native (host), RPC exit path, trapped syscall (a plain getppid in enclave
 *              code: the real SIGSYS exit), exitless (through eleos/sys.h). With the model
 *              off the RPC exit path is only a store (the emulator's OCALL), so the
 *              meaningful exit to compare against is the trapped syscall.
 *   idle       CPU used by the pool from 1 ms after the last call, and how many of the first
 *              calls after an idle period took the exit path
 * Every figure is the median over repeated runs; ratios are ratios of medians.
 * Usage: bench_rpc_null [--quick] [--csv FILE] (one row per model and metric)
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

#include "bench_util.h"

#include "common/tsc.h"
#include "eleos/sys.h"

#define MAX_REPS 64

static int reps = 11;
static long iters = 200000;
static FILE *csv;

/* --- physical floor ---------------------------------------------------------------------- */

static struct {
    alignas(64) _Atomic uint64_t req;
    alignas(64) _Atomic uint64_t resp;
    alignas(64) _Atomic int ready;
} pp;

static void *pong(void *arg) {
    long n = *(long *)arg;
    bench_pin_cpu(1);
    atomic_store_explicit(&pp.ready, 1, memory_order_release);
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
    atomic_store(&pp.ready, 0);
    pthread_t th;
    pthread_create(&th, NULL, pong, &n);
    bench_pin_cpu(0);
    /* The clock starts once the responder runs on its CPU (not its creation and wake-up). */
    while (!atomic_load_explicit(&pp.ready, memory_order_acquire))
        _mm_pause();
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

enum { BATCH = 256 }; /* calls per eleos_rpc_call_batch */
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

/* n operations of kind k; returns how many failed. */
static long run_kind(struct eleos_rpc_client *cl, enum kind k, long n) {
    struct eleos_rpc_req nul = {.fn = ELEOS_RPC_FN_NULL};
    int64_t r;
    long bad = 0;
    static struct eleos_rpc_req rs[BATCH];
    static int64_t rets[BATCH];
    switch (k) {
    case K_EXIT:
        nul.flags = ELEOS_RPC_F_EXIT;
        /* fallthrough */
    case K_SYNC:
    case K_FEW:
        for (long i = 0; i < n; i++)
            bad += eleos_rpc_call(cl, &nul, &r) != 0;
        break;
    case K_BATCH:
        for (int i = 0; i < BATCH; i++)
            rs[i] = nul;
        for (long i = 0; i < n; i += BATCH)
            bad += eleos_rpc_call_batch(cl, rs, BATCH, rets) != 0;
        break;
    case K_PPID_TRAP:
        /* A plain system call in enclave code: trapped and run as an exit by the emulator
         * (what an unmodified SDK program pays). */
        for (long i = 0; i < n; i++)
            bad += syscall(SYS_getppid) <= 0;
        break;
    case K_PPID_EXIT:
    case K_PPID_EXITLESS:
        eleos_sys_thread_mode(k == K_PPID_EXIT ? ELEOS_SYS_MODE_EXIT : ELEOS_SYS_MODE_EXITLESS);
        for (long i = 0; i < n; i++)
            bad += eleos_sys_getppid() <= 0;
        eleos_sys_thread_mode(ELEOS_SYS_MODE_DEFAULT);
        break;
    }
    return bad;
}

static long e_run(void *arg) {
    struct bctx *b = arg;
    long bad = 0;
    /* Warm-up, untimed, same operation: a worker asleep since the previous row is woken by
     * the exit path of the first call (measured separately, in the idle row). */
    if (b->kind != K_FEW)
        bad += run_kind(b->cl, b->kind, b->kind == K_BATCH ? BATCH : 4);
    uint64_t t0 = tsc_now();
    bad += run_kind(b->cl, b->kind, b->n);
    uint64_t t1 = tsc_now();
    long n = b->kind == K_BATCH ? (b->n + BATCH - 1) / BATCH * BATCH : b->n;
    b->ns = tsc_to_ns(t1 - t0) / (double)n;
    return bad;
}

/* One timed ECALL of kind k; ns per call. */
static double measure_once(struct bctx *b, enum kind k, long n) {
    b->kind = k;
    b->n = n;
    long bad;
    if (eleos_enclave_ecall(enc, e_run, b, &bad) != 0 || bad) {
        fprintf(stderr, "benchmark call failed\n");
        exit(1);
    }
    return b->ns;
}

static double native_getppid_ns(void) {
    double v[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        long n = iters;
        uint64_t t0 = tsc_now();
        for (long i = 0; i < n; i++)
            syscall(SYS_getppid);
        v[r] = tsc_to_ns(tsc_now() - t0) / (double)n;
    }
    return bench_median(v, reps);
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

static void row(const char *model, const char *metric, double v) {
    if (csv)
        fprintf(csv, "%s,%s,%.3f,%d,%ld\n", model, metric, v, reps, iters);
}

/* The enclave, a pool of one worker (CPU 1) and the client, with the cost model on or off;
 * prints the model in force. The caller runs on CPU 0. */
static void setup_model(bool model_on, struct bctx *b) {
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
    if (eleos_rpc_pool_create(enc, &pc, &b->pool) || eleos_sys_host_register(b->pool) ||
        eleos_rpc_pool_start(b->pool)) {
        fprintf(stderr, "pool setup failed\n");
        exit(1);
    }
    long rv;
    if (eleos_enclave_ecall(enc, e_create, b, &rv) || rv) {
        fprintf(stderr, "client setup failed\n");
        exit(1);
    }
    struct eleos_enclave_config got;
    eleos_enclave_get_config(enc, &got);
    printf("\n== cost model %s: ecall %llu, ocall %llu, syscall %llu target cycles, pollute %u "
           "KiB; workers 1 (cpu 1), caller cpu 0, spin budget %llu ns, ring %u\n",
           model_on ? "ON" : "OFF", (unsigned long long)got.cost.ecall_cycles,
           (unsigned long long)got.cost.ocall_cycles, (unsigned long long)got.cost.syscall_cycles,
           got.cost.pollute_kib, (unsigned long long)pc.spin_ns, pc.ring_size);
    bench_print_cost_calibration(enc);
    bench_pin_cpu(0);
}

/* Every call row; returns the exit-path iteration count (the trapped row's, for the
 * closing line). */
static long measure_calls(struct bctx *b, const char *model, double native_ppid) {
    long exit_n = iters / 10 > 1000 ? iters / 10 : 1000;
    /* Every repetition measures every row, the floor first: drift and other tenants of the
     * machine hit all rows alike. */
    enum { R_FLOOR, R_EXIT, R_SYNC, R_BATCH, R_PPID_EXIT, R_PPID, R_PPID_TRAP, R_COUNT };
    double v[R_COUNT][MAX_REPS];
    for (int r = 0; r < reps; r++) {
        v[R_EXIT][r] = measure_once(b, K_EXIT, exit_n);
        v[R_SYNC][r] = measure_once(b, K_SYNC, iters);
        v[R_BATCH][r] = measure_once(b, K_BATCH, iters * 4);
        v[R_PPID_EXIT][r] = measure_once(b, K_PPID_EXIT, exit_n);
        v[R_PPID][r] = measure_once(b, K_PPID_EXITLESS, iters);
        v[R_PPID_TRAP][r] = measure_once(b, K_PPID_TRAP, exit_n);
        /* Let the worker fall asleep first: the floor's responder runs on its CPU. */
        sleep_s(2e-3);
        v[R_FLOOR][r] = floor_ns();
    }
    double floor = bench_median(v[R_FLOOR], reps);
    double t_exit = bench_median(v[R_EXIT], reps);
    double t_sync = bench_median(v[R_SYNC], reps);
    double t_batch = bench_median(v[R_BATCH], reps);
    double t_ppid_exit = bench_median(v[R_PPID_EXIT], reps);
    double t_ppid = bench_median(v[R_PPID], reps);
    double t_ppid_trap = bench_median(v[R_PPID_TRAP], reps);
    printf("  %-36s %10.1f ns\n", "floor (cache-line round trip)", floor);
    printf("  %-36s %10.1f ns\n", "null call, exit path (OCALL)", t_exit);
    printf("  %-36s %10.1f ns   %.2fx floor; exit path / this = %.1fx\n",
           "null call, exitless sync", t_sync, t_sync / floor, t_exit / t_sync);
    printf("  %-36s %10.1f ns   %.2f M calls/s\n", "null call, exitless batched (256)", t_batch,
           1e3 / t_batch);
    printf("  %-36s %10.1f ns\n", "getppid, native (host mode)", native_ppid);
    printf("  %-36s %10.1f ns\n", "getppid, RPC exit path (OCALL)", t_ppid_exit);
    printf("  %-36s %10.1f ns\n", "getppid, trapped syscall (SIGSYS)", t_ppid_trap);
    printf("  %-36s %10.1f ns   %.2fx floor; trapped / this = %.2fx, RPC exit / this = %.2fx\n",
           "getppid, exitless", t_ppid, t_ppid / floor, t_ppid_trap / t_ppid, t_ppid_exit / t_ppid);
    row(model, "floor_ns", floor);
    row(model, "null_exit_ns", t_exit);
    row(model, "null_sync_ns", t_sync);
    row(model, "null_batch_ns", t_batch);
    row(model, "null_batch_mcalls_per_s", 1e3 / t_batch);
    row(model, "getppid_native_ns", native_ppid);
    row(model, "getppid_rpc_exit_ns", t_ppid_exit);
    row(model, "getppid_trapped_ns", t_ppid_trap);
    row(model, "getppid_exitless_ns", t_ppid);
    row(model, "sync_over_floor", t_sync / floor);
    row(model, "null_exit_over_sync", t_exit / t_sync);
    row(model, "getppid_trapped_over_exitless", t_ppid_trap / t_ppid);
    row(model, "getppid_rpc_exit_over_exitless", t_ppid_exit / t_ppid);
    return exit_n;
}

/* Idle: after the last call, give the workers 1 ms, then measure the process's CPU use
 * (only the pool's workers can be running: this thread sleeps); and how many of the next
 * calls find no worker awake. */
static void measure_idle(struct bctx *b, const char *model) {
    b->kind = K_SYNC;
    double idle[MAX_REPS];
    long first_exit_max = 0, rv;
    for (int r = 0; r < reps; r++) {
        if (eleos_enclave_ecall(enc, e_run, b, &rv))
            exit(1);
        sleep_s(0.001);
        double c0 = cpu_s(), m0 = mono_s();
        sleep_s(0.1);
        idle[r] = (cpu_s() - c0) / (mono_s() - m0) * 100.0;
        struct eleos_rpc_client_stats s0, s1;
        eleos_rpc_client_stats(b->cl, &s0);
        b->kind = K_FEW;
        b->n = 10;
        if (eleos_enclave_ecall(enc, e_run, b, &rv))
            exit(1);
        eleos_rpc_client_stats(b->cl, &s1);
        long fb = (long)(s1.no_worker - s0.no_worker);
        if (fb > first_exit_max)
            first_exit_max = fb;
        b->kind = K_SYNC;
        b->n = 1000;
    }
    double idle_pct = bench_median(idle, reps);
    printf("  %-36s %10.3f %% of a core (median)\n", "idle pool CPU from 1 ms after", idle_pct);
    printf("  %-36s %10ld (max over %d idle periods, of 10 calls)\n", "first calls on exit path",
           first_exit_max, reps);
    row(model, "idle_cpu_pct", idle_pct);
    row(model, "first_calls_exit_max", (double)first_exit_max);
}

static void run_model(bool model_on, double native_ppid) {
    struct bctx b = {0};
    setup_model(model_on, &b);
    const char *model = model_on ? "on" : "off";
    long exit_n = measure_calls(&b, model, native_ppid);
    measure_idle(&b, model);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(enc, &es);
    printf("  enclave syscall exits during the run: %llu (all from the trapped-syscall row: "
           "(%ld + 4 warm-up) x %d)\n", (unsigned long long)es.syscall_exits, exit_n, reps);
    long rv;
    if (eleos_enclave_ecall(enc, e_destroy, &b, &rv))
        exit(1);
    eleos_rpc_pool_destroy(b.pool);
    eleos_enclave_destroy(enc);
}

int main(int argc, char **argv) {
    const char *csv_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            reps = 5;
            iters = 20000;
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--csv FILE]\n", argv[0]);
            return 2;
        }
    }
    if (csv_path) {
        csv = fopen(csv_path, "w");
        if (!csv) {
            fprintf(stderr, "%s: %s\n", csv_path, strerror(errno));
            return 1;
        }
        fprintf(csv, "model,metric,value,reps,iters\n");
    }
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    printf("bench_rpc_null: %d reps (median), %ld iterations, TSC %.3f GHz, %ld CPUs, load "
           "average %.2f\n",
           reps, iters, tsc_ghz(), sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    double native = native_getppid_ns();
    run_model(false, native);
    run_model(true, native);
    if (csv && fclose(csv)) {
        fprintf(stderr, "%s: %s\n", csv_path, strerror(errno));
        return 1;
    }
    return 0;
}
