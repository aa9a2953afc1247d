/*
 * test_rpc_stress — several enclave threads and several workers at once: synchronous,
 * asynchronous and batched calls, blocking calls that must not starve the others, the exit
 * switch flipped mid-run, and the pool stopped and restarted while calls are in flight.
 * Every result is checked; run under TSan by the "concurrent" label.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "eleos/rpc.h"
#include "harness.h"
#include "rpc_testutil.h"

#define FN_MIX   (ELEOS_RPC_FN_USER + 0)
#define FN_BLOCK (ELEOS_RPC_FN_USER + 1)
#define THREADS  4

static struct eleos_enclave *enc;
static struct eleos_rpc_pool *pool;
static struct eleos_rpc_client *cl;
static _Atomic uint64_t host_calls;

static int64_t fn_mix(void *ctx, const uint64_t a[ELEOS_RPC_NARGS]) {
    (void)ctx;
    atomic_fetch_add_explicit(&host_calls, 1, memory_order_relaxed);
    return (int64_t)(a[0] * 3 + a[1]);
}

static int64_t fn_block(void *ctx, const uint64_t a[ELEOS_RPC_NARGS]) {
    (void)ctx;
    atomic_fetch_add_explicit(&host_calls, 1, memory_order_relaxed);
    struct timespec ts = {0, (long)a[0]};
    nanosleep(&ts, NULL);
    return 1;
}

struct worker_arg {
    unsigned id;
    long errors;
    long done;
};

static long e_thread(void *arg) {
    struct worker_arg *w = arg;
    uint64_t base = (uint64_t)w->id << 32;
    enum { ROUNDS = 1500, B = 40 };
    struct eleos_rpc_req rs[B];
    int64_t rets[B];
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t k = base + (uint64_t)round;
        int64_t ret;
        struct eleos_rpc_req r = {.fn = FN_MIX, .args = {k, 5}};
        if (round % 7 == 3)
            r.flags = ELEOS_RPC_F_EXIT;
        if (eleos_rpc_call(cl, &r, &ret) != 0 || ret != (int64_t)(k * 3 + 5))
            w->errors++;
        for (int i = 0; i < B; i++)
            rs[i] = (struct eleos_rpc_req){.fn = FN_MIX, .args = {k + (uint64_t)i, 1}};
        if (eleos_rpc_call_batch(cl, rs, B, rets) != 0)
            w->errors++;
        for (int i = 0; i < B; i++)
            if (rets[i] != (int64_t)((k + (uint64_t)i) * 3 + 1))
                w->errors++;
        uint64_t tk[4];
        int n = eleos_rpc_submit_batch(cl, rs, 4, tk);
        if (n != 4)
            w->errors++;
        for (int i = n - 1; i >= 0; i--)
            if (eleos_rpc_wait(cl, tk[i], &ret) != 0 || ret != (int64_t)((k + (uint64_t)i) * 3 + 1))
                w->errors++;
        /* Thread 0 also makes blocking calls; the others must keep going meanwhile. */
        if (w->id == 0 && round % 20 == 0) {
            struct eleos_rpc_req b = {.fn = FN_BLOCK, .flags = ELEOS_RPC_F_MAYBLOCK,
                                      .args = {2000000}};
            if (eleos_rpc_call(cl, &b, &ret) != 0 || ret != 1)
                w->errors++;
        }
        w->done++;
    }
    eleos_rpc_thread_detach(cl);
    return 0;
}

static void *thread_main(void *arg) {
    long rv;
    if (eleos_enclave_ecall(enc, e_thread, arg, &rv) != 0)
        ((struct worker_arg *)arg)->errors++;
    return NULL;
}

static void test_stress(void) {
    enc = rpc_test_enclave(0);
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = 3;
    pc.channels = 8;
    pc.ring_size = 16;
    pc.spin_ns = 50000;
    static const struct rpc_test_fn fns[] = {{FN_MIX, fn_mix}, {FN_BLOCK, fn_block}};
    pool = rpc_test_pool(enc, &pc, fns, 2, NULL);
    cl = rpc_test_client(enc, pool, NULL);
    struct worker_arg wa[THREADS];
    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        wa[i] = (struct worker_arg){.id = i};
        REQUIRE(pthread_create(&th[i], NULL, thread_main, &wa[i]) == 0);
    }
    /* Meanwhile: flip the global switch, stop and restart the pool. */
    struct timespec ms5 = {0, 5000000};
    for (int i = 0; i < 6; i++) {
        nanosleep(&ms5, NULL);
        eleos_rpc_set_exitless(cl, i % 2);
        nanosleep(&ms5, NULL);
        eleos_rpc_pool_stop(pool);
        nanosleep(&ms5, NULL);
        REQUIRE(eleos_rpc_pool_start(pool) == 0);
    }
    eleos_rpc_set_exitless(cl, true);
    long errors = 0, done = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += wa[i].errors;
        done += wa[i].done;
    }
    CHECK_EQ(errors, 0);
    CHECK_EQ(done, THREADS * 1500);
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(cl, &cs);
    struct eleos_rpc_pool_stats ps;
    eleos_rpc_pool_stats(pool, &ps);
    /* Every request ran exactly once on the host. */
    CHECK_EQ(atomic_load(&host_calls), ps.served + ps.exit_served);
    CHECK_EQ(cs.calls, ps.served + ps.exit_served);
    CHECK_EQ(cs.host_faults, 0);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(enc, &es);
    if (NO_SANITIZER_SYSCALLS)
        CHECK_EQ(es.syscall_exits, 0);
    fprintf(stderr, "  calls %llu exitless %llu exit %llu fallbacks %llu (no worker %llu, ring "
                    "full %llu, reclaimed %llu) sleeps %llu wakes %llu\n",
            (unsigned long long)cs.calls, (unsigned long long)cs.exitless,
            (unsigned long long)cs.exit_calls, (unsigned long long)cs.fallbacks,
            (unsigned long long)cs.no_worker, (unsigned long long)cs.ring_full,
            (unsigned long long)cs.reclaimed, (unsigned long long)ps.sleeps,
            (unsigned long long)ps.wakes);
    rpc_test_client_destroy(enc, cl, NULL);
    rpc_test_teardown(enc, pool);
}

TEST_MAIN(TEST_CASE(test_stress))
