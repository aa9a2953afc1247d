/*
 * test_rpc_basic — exitless RPC from real (emulated) enclaves: synchronous, asynchronous
 * and batched calls, the exit-path switches, statistics, sleeping workers and the
 * exit-path wake, stop with calls in flight, id checks. No timings are asserted.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "eleos/rpc.h"
#include "exit_steps.h"
#include "harness.h"
#include "rpc/rpc_shared.h" /* test_client_again writes a stale request */
#include "rpc_testutil.h"

#define FN_ADD  (ELEOS_RPC_FN_USER + 0)
#define FN_SLOW (ELEOS_RPC_FN_USER + 1)
#define FN_HOG  (ELEOS_RPC_FN_USER + 2)

static struct eleos_enclave *enc;
static struct eleos_rpc_pool *pool;
static _Atomic uint64_t add_calls;

static int64_t fn_add(void *ctx, const uint64_t a[ELEOS_RPC_NARGS]) {
    (void)ctx;
    atomic_fetch_add_explicit(&add_calls, 1, memory_order_relaxed);
    return (int64_t)(a[0] + a[1] + a[6]);
}

static int64_t fn_slow(void *ctx, const uint64_t a[ELEOS_RPC_NARGS]) {
    (void)ctx;
    struct timespec ts = {0, (long)a[0]};
    nanosleep(&ts, NULL);
    return (int64_t)a[1];
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void setup(unsigned workers, uint64_t spin_ns) {
    enc = rpc_test_enclave(64u << 20);
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = workers;
    pc.spin_ns = spin_ns;
    pc.ring_size = 16;
    pc.channels = 8;
    static const struct rpc_test_fn fns[] = {{FN_ADD, fn_add}, {FN_SLOW, fn_slow}};
    pool = rpc_test_pool(enc, &pc, fns, 2, NULL);
}

static void teardown(void) {
    rpc_test_teardown(enc, pool);
    pool = NULL;
    enc = NULL;
}

/* --- enclave functions (run inside ECALLs) --------------------------------------------- */

struct ctx {
    struct eleos_rpc_client *cl;
    long n;
    long errors;
    uint64_t reclaim_ns; /* if set: the client's reclaim time */
};

static long e_sync(void *arg) {
    struct ctx *c = arg;
    if (c->reclaim_ns)
        eleos_rpc_set_reclaim_ns(c->cl, c->reclaim_ns);
    for (long i = 0; i < c->n; i++) {
        struct eleos_rpc_req r = {.fn = FN_ADD, .args = {(uint64_t)i, 1000, 0, 0, 0, 0, 7}};
        int64_t ret = -1;
        if (eleos_rpc_call(c->cl, &r, &ret) != 0 || ret != i + 1007)
            c->errors++;
    }
    return 0;
}

static long e_checks(void *arg) {
    struct ctx *c = arg;
    int64_t ret;
    struct eleos_rpc_req bad = {.fn = ELEOS_RPC_MAX_FNS};
    if (eleos_rpc_call(c->cl, &bad, &ret) != -EINVAL)
        c->errors++;
    struct eleos_rpc_req badflags = {.fn = FN_ADD, .flags = 0x80};
    if (eleos_rpc_call(c->cl, &badflags, &ret) != -EINVAL)
        c->errors++;
    struct eleos_rpc_req unknown = {.fn = ELEOS_RPC_FN_USER + 50};
    if (eleos_rpc_call(c->cl, &unknown, &ret) != 0 || ret != -EBADRQC)
        c->errors++;
    struct eleos_rpc_req null = {.fn = ELEOS_RPC_FN_NULL};
    if (eleos_rpc_call(c->cl, &null, &ret) != 0 || ret != 0)
        c->errors++;
    /* A ticket never issued, and one redeemed twice. */
    if (eleos_rpc_poll(c->cl, 12345, &ret) != -EINVAL)
        c->errors++;
    uint64_t tk;
    struct eleos_rpc_req r = {.fn = FN_ADD, .args = {1, 2}};
    if (eleos_rpc_submit(c->cl, &r, &tk) != 0 || eleos_rpc_wait(c->cl, tk, &ret) != 0 || ret != 3)
        c->errors++;
    if (eleos_rpc_wait(c->cl, tk, &ret) != -EINVAL)
        c->errors++;
    return 0;
}

static long e_exit_mode(void *arg) {
    struct ctx *c = arg;
    int64_t ret;
    struct eleos_rpc_req r = {.fn = FN_ADD, .flags = ELEOS_RPC_F_EXIT, .args = {5, 6}};
    if (eleos_rpc_call(c->cl, &r, &ret) != 0 || ret != 11)
        c->errors++;
    eleos_rpc_set_exitless(c->cl, false);
    r.flags = 0;
    for (int i = 0; i < 10; i++)
        if (eleos_rpc_call(c->cl, &r, &ret) != 0 || ret != 11)
            c->errors++;
    /* Async and batched requests on the exit path complete at submission. */
    uint64_t tk[4];
    struct eleos_rpc_req rs[4];
    for (int i = 0; i < 4; i++)
        rs[i] = (struct eleos_rpc_req){.fn = FN_ADD, .args = {(uint64_t)i, 1}};
    if (eleos_rpc_submit_batch(c->cl, rs, 4, tk) != 4)
        c->errors++;
    for (int i = 0; i < 4; i++)
        if (eleos_rpc_poll(c->cl, tk[i], &ret) != 0 || ret != i + 1)
            c->errors++;
    eleos_rpc_set_exitless(c->cl, true);
    return 0;
}

static long e_async(void *arg) {
    struct ctx *c = arg;
    enum { N = 12 };
    uint64_t tk[N];
    int64_t ret;
    for (int i = 0; i < N; i++) {
        struct eleos_rpc_req r = {.fn = FN_ADD, .args = {(uint64_t)i, 100}};
        if (eleos_rpc_submit(c->cl, &r, &tk[i]) != 0)
            c->errors++;
    }
    /* Redeem out of order: odd ones by polling until done, then even ones by waiting. */
    for (int i = 1; i < N; i += 2) {
        int rc;
        while ((rc = eleos_rpc_poll(c->cl, tk[i], &ret)) == -EAGAIN)
            ;
        if (rc != 0 || ret != i + 100)
            c->errors++;
    }
    for (int i = 0; i < N; i += 2)
        if (eleos_rpc_wait(c->cl, tk[i], &ret) != 0 || ret != i + 100)
            c->errors++;
    /* Fill the ring: submit must stop with -EAGAIN, sync calls still work (exit path). */
    uint64_t many[64];
    int k = 0;
    struct eleos_rpc_req r = {.fn = FN_ADD, .args = {1, 1}};
    while (k < 64 && eleos_rpc_submit(c->cl, &r, &many[k]) == 0)
        k++;
    if (k != 16)
        c->errors++;
    if (eleos_rpc_call(c->cl, &r, &ret) != 0 || ret != 2)
        c->errors++;
    for (int i = 0; i < k; i++)
        if (eleos_rpc_wait(c->cl, many[i], &ret) != 0 || ret != 2)
            c->errors++;
    return 0;
}

static long e_batch(void *arg) {
    struct ctx *c = arg;
    enum { N = 1000 };
    static struct eleos_rpc_req rs[N];
    static int64_t rets[N];
    for (int i = 0; i < N; i++)
        rs[i] = (struct eleos_rpc_req){.fn = FN_ADD, .args = {(uint64_t)i, 3}};
    for (int rep = 0; rep < (int)c->n; rep++) {
        memset(rets, 0xff, sizeof rets);
        if (eleos_rpc_call_batch(c->cl, rs, N, rets) != 0)
            c->errors++;
        for (int i = 0; i < N; i++)
            if (rets[i] != i + 3)
                c->errors++;
    }
    /* With an async request outstanding the batch still completes. */
    uint64_t tk;
    int64_t ret;
    if (eleos_rpc_submit(c->cl, &rs[5], &tk) != 0)
        c->errors++;
    if (eleos_rpc_call_batch(c->cl, rs, 100, rets) != 0 || rets[99] != 102)
        c->errors++;
    if (eleos_rpc_wait(c->cl, tk, &ret) != 0 || ret != 8)
        c->errors++;
    return 0;
}

static long e_one(void *arg) {
    struct ctx *c = arg;
    struct eleos_rpc_req r = {.fn = FN_ADD, .args = {2, 2}};
    int64_t ret;
    if (eleos_rpc_call(c->cl, &r, &ret) != 0 || ret != 4)
        c->errors++;
    return 0;
}

/* --- tests ------------------------------------------------------------------------------ */

static void test_sync_exitless(void) {
    setup(1, 0);
    struct ctx c = {.n = 20000};
    long rv;
    c.cl = rpc_test_client(enc, pool, NULL);
    eleos_enclave_stats_reset(enc);
    REQUIRE(eleos_enclave_ecall(enc, e_sync, &c, &rv) == 0);
    CHECK_EQ(c.errors, 0);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(enc, &es);
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(c.cl, &cs);
    CHECK_EQ(cs.calls, 20000);
    CHECK_EQ(cs.exitless + cs.fallbacks, 20000);
    /* No syscall from enclave code on any path; exits are OCALLs only, one per fallback. */
    if (NO_SANITIZER_SYSCALLS)
        CHECK_EQ(es.syscall_exits, 0);
    CHECK_EQ(es.ocalls, cs.ocalls);
    REQUIRE(eleos_enclave_ecall(enc, e_checks, &c, &rv) == 0);
    CHECK_EQ(c.errors, 0);
    eleos_rpc_client_stats(c.cl, &cs);
    CHECK_EQ(cs.bad_ids, 2);
    struct eleos_rpc_pool_stats ps;
    eleos_rpc_pool_stats(pool, &ps);
    CHECK_EQ(ps.bad_fn, 1);
    rpc_test_client_destroy(enc, c.cl, NULL);
    teardown();
}

static void test_exit_switch(void) {
    setup(1, 0);
    struct ctx c = {0};
    long rv;
    c.cl = rpc_test_client(enc, pool, NULL);
    eleos_enclave_stats_reset(enc);
    REQUIRE(eleos_enclave_ecall(enc, e_exit_mode, &c, &rv) == 0);
    CHECK_EQ(c.errors, 0);
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(c.cl, &cs);
    CHECK_EQ(cs.exit_calls, 15);
    CHECK_EQ(cs.fallbacks, 0);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(enc, &es);
    CHECK_EQ(es.ocalls, 12); /* 11 single calls + 1 OCALL for the batch of 4 */
    if (NO_SANITIZER_SYSCALLS)
        CHECK_EQ(es.syscall_exits, 0);
    rpc_test_client_destroy(enc, c.cl, NULL);
    teardown();
}

static void test_async_and_batch(void) {
    setup(1, 0);
    struct ctx c = {.n = 20};
    long rv;
    c.cl = rpc_test_client(enc, pool, NULL);
    REQUIRE(eleos_enclave_ecall(enc, e_async, &c, &rv) == 0);
    CHECK_EQ(c.errors, 0);
    REQUIRE(eleos_enclave_ecall(enc, e_batch, &c, &rv) == 0);
    CHECK_EQ(c.errors, 0);
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(c.cl, &cs);
    CHECK(cs.batches > 0);
    rpc_test_client_destroy(enc, c.cl, NULL);
    teardown();
}

/* Workers sleep after their budget; the next call takes the exit path once, wakes one,
 * and the call after it is exitless again. */
static void test_sleep_and_wake(void) {
    /* A 50 ms budget: long against scheduling noise, so the calls after the wake reliably
     * find the woken worker still spinning; 150 ms of quiet puts every worker to sleep. */
    setup(2, 50000000);
    struct ctx c = {0};
    long rv;
    c.cl = rpc_test_client(enc, pool, NULL);
    for (int round = 0; round < 3; round++) {
        sleep_ms(150);
        struct eleos_rpc_pool_stats ps;
        eleos_rpc_pool_stats(pool, &ps);
        CHECK_EQ(ps.awake, 0);
        struct eleos_rpc_client_stats before, after;
        eleos_rpc_client_stats(c.cl, &before);
        for (int i = 0; i < 5; i++)
            REQUIRE(eleos_enclave_ecall(enc, e_one, &c, &rv) == 0);
        eleos_rpc_client_stats(c.cl, &after);
        CHECK_EQ(after.no_worker - before.no_worker, 1);
        CHECK_EQ(after.calls - before.calls, 5);
        eleos_rpc_pool_stats(pool, &ps);
        CHECK(ps.exit_wakes >= (uint64_t)round + 1);
    }
    CHECK_EQ(c.errors, 0);
    rpc_test_client_destroy(enc, c.cl, NULL);
    teardown();
}

/* Stopping the pool while a call is in flight: the call completes; later calls go through
 * the exit path; a restart makes them exitless again. */
struct slow_ctx {
    struct eleos_rpc_client *cl;
    _Atomic int started;
    long errors;
};

static long e_slow_calls(void *arg) {
    struct slow_ctx *c = arg;
    atomic_store(&c->started, 1);
    for (int i = 0; i < 200; i++) {
        struct eleos_rpc_req r = {.fn = FN_SLOW, .args = {50000, (uint64_t)i}};
        int64_t ret;
        if (eleos_rpc_call(c->cl, &r, &ret) != 0 || ret != i)
            c->errors++;
        uint64_t tk;
        if (eleos_rpc_submit(c->cl, &r, &tk) != 0 || eleos_rpc_wait(c->cl, tk, &ret) != 0 ||
            ret != i)
            c->errors++;
    }
    return 0;
}

#include <pthread.h>
static void *ecall_thread(void *arg) {
    long rv;
    if (eleos_enclave_ecall(enc, e_slow_calls, arg, &rv) != 0)
        ((struct slow_ctx *)arg)->errors++;
    return NULL;
}

static void test_stop_in_flight(void) {
    setup(2, 0);
    struct ctx c0 = {0};
    c0.cl = rpc_test_client(enc, pool, NULL);
    struct slow_ctx sc = {.cl = c0.cl};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, ecall_thread, &sc) == 0);
    while (!atomic_load(&sc.started))
        ;
    for (int i = 0; i < 4; i++) {
        sleep_ms(3);
        eleos_rpc_pool_stop(pool);
        sleep_ms(3);
        REQUIRE(eleos_rpc_pool_start(pool) == 0);
    }
    eleos_rpc_pool_stop(pool);
    pthread_join(th, NULL);
    CHECK_EQ(sc.errors, 0);
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(c0.cl, &cs);
    CHECK_EQ(cs.calls, 400);
    CHECK(cs.fallbacks > 0);
    rpc_test_client_destroy(enc, c0.cl, NULL);
    teardown();
}

/* A client created on an area an earlier client used (and one whose channel holds a stale
 * published request) continues the channel's numbering: calls complete exitless with the
 * right results instead of waiting for a sequence number the workers have long passed. */
static void test_client_again(void) {
    setup(1, 0);
    /* A reclaim time of 1 s: the workers, not the exit path, must serve the calls even on
     * a loaded machine (without the fence every call would wait it out). */
    struct ctx c = {.n = 1000, .reclaim_ns = 1000000000};
    long rv;
    for (int round = 0; round < 3; round++) {
        c.cl = rpc_test_client(enc, pool, NULL);
        REQUIRE(eleos_enclave_ecall(enc, e_sync, &c, &rv) == 0);
        CHECK_EQ(c.errors, 0);
        struct eleos_rpc_client_stats cs;
        eleos_rpc_client_stats(c.cl, &cs);
        CHECK_EQ(cs.calls, 1000);
        CHECK(cs.exitless > 0);
        CHECK_EQ(cs.host_faults, 0);
        rpc_test_client_destroy(enc, c.cl, NULL);
    }
    /* A stale request left published in channel 0 at its head (as by a client that died
     * mid-call with the workers stopped): the next client must not take its result. */
    size_t size;
    char *area = eleos_rpc_pool_shared(pool, &size);
    const struct rpc_area_hdr *hdr = (const void *)area;
    struct rpc_chan *ch = rpc_chan_at(area, atomic_load(&hdr->chan_stride), 0);
    uint32_t ring = atomic_load(&hdr->ring_size);
    eleos_rpc_pool_stop(pool);
    uint64_t h = atomic_load(&ch->head);
    struct rpc_req *rq = &rpc_chan_req(ch)[h & (ring - 1)];
    atomic_store(&rq->fn, FN_ADD);
    atomic_store(&rq->flags, 0);
    atomic_store(&rq->args[0], 40);
    atomic_store(&rq->args[1], 2);
    atomic_store(&rq->args[6], 0);
    atomic_store(&rq->pub, (uint32_t)(h + 1));
    REQUIRE(eleos_rpc_pool_start(pool) == 0);
    c.cl = rpc_test_client(enc, pool, NULL);
    REQUIRE(eleos_enclave_ecall(enc, e_sync, &c, &rv) == 0);
    CHECK_EQ(c.errors, 0);
    rpc_test_client_destroy(enc, c.cl, NULL);
    teardown();
}

/* The only worker is awake but stuck in a long call that is not flagged MAYBLOCK (as a
 * preempted worker would be): another thread's calls are taken back after the reclaim time,
 * the thread backs off to the exit path, and all its calls complete while the long call is
 * still running (it lasts 1 s; the other thread's 200 calls need a few ms at most). */
struct hog_ctx {
    struct eleos_rpc_client *cl;
    _Atomic int started, done;
    long errors;
};

static _Atomic int hog_running, hog_on_worker;

/* Host function: 1 s of "work", noting whether a worker thread runs it. */
static int64_t fn_hog(void *ctx, const uint64_t a[ELEOS_RPC_NARGS]) {
    (void)ctx;
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    atomic_store(&hog_on_worker, strncmp(name, "eleos-rpc", 9) == 0);
    atomic_store(&hog_running, 1);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    return (int64_t)a[0];
}

static long e_hog(void *arg) {
    struct hog_ctx *c = arg;
    struct eleos_rpc_req r = {.fn = FN_HOG, .args = {7}};
    /* Patient while the worker picks the long call up (on a loaded machine that can take
     * longer than 20 us); the other thread restores the default once it runs. */
    eleos_rpc_set_reclaim_ns(c->cl, 1000000000);
    atomic_store(&c->started, 1);
    int64_t ret;
    if (eleos_rpc_call(c->cl, &r, &ret) != 0 || ret != 7)
        c->errors++;
    atomic_store(&c->done, 1);
    return 0;
}

static void *hog_thread(void *arg) {
    long rv;
    if (eleos_enclave_ecall(enc, e_hog, arg, &rv) != 0)
        ((struct hog_ctx *)arg)->errors++;
    return NULL;
}

static void test_worker_hogged(void) {
    setup(1, 2000000000); /* spins for 2 s: never asleep, always counted awake */
    struct hog_ctx hc = {0};
    hc.cl = rpc_test_client(enc, pool, NULL);
    pthread_t th;
    REQUIRE(eleos_rpc_pool_register(pool, FN_HOG, fn_hog, NULL) == 0);
    REQUIRE(pthread_create(&th, NULL, hog_thread, &hc) == 0);
    while (!atomic_load(&hog_running))
        sleep_ms(1);
    CHECK_EQ(atomic_load(&hog_on_worker), 1);
    struct eleos_rpc_pool_stats ps;
    eleos_rpc_pool_stats(pool, &ps);
    CHECK_EQ(ps.awake, 1);
    struct ctx c = {.cl = hc.cl, .n = 200, .reclaim_ns = 20000};
    long rv;
    REQUIRE(eleos_enclave_ecall(enc, e_sync, &c, &rv) == 0);
    CHECK_EQ(c.errors, 0);
    CHECK_EQ(atomic_load(&hc.done), 0); /* finished while the worker was still hogged */
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(c.cl, &cs);
    CHECK(cs.unclaimed >= 1);
    CHECK(cs.backoff >= 1);
    CHECK_EQ(cs.no_worker, 0);
    /* Each timeout is followed by a back-off, so far fewer than one timeout per call. */
    CHECK(cs.unclaimed < 200 / 4);
    pthread_join(th, NULL);
    CHECK_EQ(hc.errors, 0);
    rpc_test_client_destroy(enc, c.cl, NULL);
    teardown();
}

/* A geometry the enclave must refuse. */
static void test_bad_area(void) {
    setup(1, 0);
    size_t size;
    void *area = eleos_rpc_pool_shared(pool, &size);
    struct eleos_rpc_client *cl = NULL;
    CHECK_EQ(eleos_rpc_client_create(enc, area, size - 4096, &cl), -EINVAL);
    CHECK_EQ(eleos_rpc_client_create(enc, (char *)area + 64, size - 4096, &cl), -EINVAL);
    void *base;
    size_t esize;
    eleos_enclave_elrange(enc, &base, &esize);
    CHECK_EQ(eleos_rpc_client_create(enc, base, size, &cl), -EINVAL);
    CHECK_EQ(eleos_rpc_pool_register(pool, 3, fn_add, NULL), -EINVAL);
    CHECK_EQ(eleos_rpc_pool_register(pool, ELEOS_RPC_MAX_FNS, fn_add, NULL), -EINVAL);
    /* Inside enclave A, the area is checked against A, whatever enclave the caller names:
     * naming another enclave B (whose range the area may well lie outside) is refused. */
    struct eleos_enclave *other = rpc_test_enclave(0);
    struct rpc_test_client_arg a = {other, pool, NULL, NULL};
    long rv = 0;
    CHECK_EQ(eleos_enclave_ecall(enc, rpc_test_e_client_create, &a, &rv), 0);
    CHECK_EQ(rv, -EINVAL);
    CHECK(a.cl == NULL);
    eleos_enclave_destroy(other);
    teardown();
}

/* --- the exit counts rpc.h states, measured (enclave stats: OCALLs + trapped syscalls) ---- */

struct steps {
    struct exit_steps rec;
};

#define STEP(x, nm, doc, stmt) EXIT_STEP(&(x)->rec, nm, doc, stmt)

/* Everything on the exit path (exitless off), so that each count is deterministic. */
static long e_steps(void *arg) {
    struct steps *x = arg;
    struct eleos_rpc_client *cl = NULL;
    size_t size = 0;
    void *area = eleos_rpc_pool_shared(pool, &size);
    STEP(x, "client_create", 0, eleos_rpc_client_create(enc, area, size, &cl));
    if (!cl)
        return -1;
    STEP(x, "client_enclave", 0, eleos_rpc_client_enclave(cl) != enc);
    STEP(x, "set_exitless", 0, (eleos_rpc_set_exitless(cl, false), 0));
    STEP(x, "exitless", 0, eleos_rpc_exitless(cl));
    STEP(x, "set_reclaim_ns", 0, (eleos_rpc_set_reclaim_ns(cl, 0), 0));
    STEP(x, "bounce (attaches)", 0, eleos_rpc_bounce(cl, &size) == NULL);
    struct eleos_rpc_req r = {.fn = FN_ADD, .args = {2, 3}};
    int64_t ret = 0, rets[3];
    uint64_t tk[3];
    STEP(x, "call (exit path)", 1, eleos_rpc_call(cl, &r, &ret) || ret != 5);
    STEP(x, "submit (exit path)", 1, eleos_rpc_submit(cl, &r, &tk[0]));
    STEP(x, "poll", 0, eleos_rpc_poll(cl, tk[0], &ret) || ret != 5);
    STEP(x, "submit (exit path)", 1, eleos_rpc_submit(cl, &r, &tk[0]));
    STEP(x, "wait", 0, eleos_rpc_wait(cl, tk[0], &ret) || ret != 5);
    struct eleos_rpc_req rs[3] = {r, r, r};
    STEP(x, "submit_batch 3 (exit path)", 1, eleos_rpc_submit_batch(cl, rs, 3, tk) != 3);
    for (int i = 0; i < 3; i++)
        E_CHECK(eleos_rpc_wait(cl, tk[i], &ret) == 0 && ret == 5);
    STEP(x, "call_batch 3 (exit path)", 1, eleos_rpc_call_batch(cl, rs, 3, rets));
    struct eleos_rpc_client_stats cs;
    STEP(x, "client_stats", 0, (eleos_rpc_client_stats(cl, &cs), 0));
    STEP(x, "thread_detach", 0, (eleos_rpc_thread_detach(cl), 0));
    STEP(x, "client_destroy", 0, (eleos_rpc_client_destroy(cl), 0));
    return 0;
}

static void test_exit_counts(void) {
    setup(1, 0);
    static struct steps x;
    x.rec.enc = enc;
    long rv = -1;
    e_fails = e_fail_line = 0;
    REQUIRE(eleos_enclave_ecall(enc, e_steps, &x, &rv) == 0);
    CHECK_EQ(rv, 0);
    CHECK_EQ(e_fails, 0);
    exit_steps_check(&x.rec, "", NO_SANITIZER_SYSCALLS);
    teardown();
}

TEST_MAIN(TEST_CASE(test_sync_exitless), TEST_CASE(test_exit_switch),
          TEST_CASE(test_async_and_batch), TEST_CASE(test_sleep_and_wake),
          TEST_CASE(test_stop_in_flight), TEST_CASE(test_client_again),
          TEST_CASE(test_worker_hogged),
          TEST_CASE(test_bad_area), TEST_CASE(test_exit_counts))
