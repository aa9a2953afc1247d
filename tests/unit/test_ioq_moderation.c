/*
 * test_ioq_moderation — completion moderation (eleos/ioq.h, enum eleos_ioq_moderation) on
 * URING and BATCH, from enclave mode, on socket pairs a host thread writes to:
 *   - a moderated wait holds out for the round the queue learned, in one exit, where an
 *     unmoderated one returns with what is there;
 *   - the bound ends a round that does not all come back, counts it, and the estimate
 *     falls to what came;
 *   - the caller's min and a zero timeout are never overridden; AUTO without the host's
 *     monitor does not moderate; bad modes are refused.
 * A host thread makes a round's early writes before the enclave waits and its late ones
 * 20 ms after: the checks hold however slow the machine is, since a moderated wait's bound
 * here is 2 s (and 1 ms where the test wants the bound to run out, the late writes 300 ms
 * away).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eleos/ioq.h"
#include "harness.h"
#include "rpc_testutil.h"

#define NPAIRS 8

static struct eleos_enclave *enc;

/* Host memory shared with the writer thread: the enclave asks for a round by bumping seq
 * and spins (no exit) until the writer has made the early writes. */
struct env {
    enum eleos_ioq_exec exec;
    int sp[NPAIRS][2];
    _Atomic unsigned seq, early, stop;
    /* pairs [0, now) written at once, the rest delay_ms later; atomics because the writer
     * may still be finishing a round (ordered only through the sockets) as the next is set */
    _Atomic unsigned now;
    _Atomic long delay_ms;
};

static void *writer_main(void *arg) {
    struct env *e = arg;
    unsigned done = 0;
    while (!atomic_load(&e->stop)) {
        if (atomic_load(&e->seq) == done) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
            continue;
        }
        done = atomic_load(&e->seq);
        unsigned now = atomic_load(&e->now);
        long delay_ms = atomic_load(&e->delay_ms);
        for (unsigned i = 0; i < now; i++)
            if (write(e->sp[i][0], "r", 1) != 1)
                abort();
        atomic_store(&e->early, done);
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        for (unsigned i = now; i < NPAIRS; i++)
            if (write(e->sp[i][0], "r", 1) != 1)
                abort();
    }
    return NULL;
}

/* Asks the writer for a round and returns once its early writes are made. */
static void round_start(struct env *e, unsigned now, long delay_ms) {
    atomic_store(&e->now, now);
    atomic_store(&e->delay_ms, delay_ms);
    unsigned seq = atomic_load(&e->seq) + 1;
    atomic_store(&e->seq, seq);
    while (atomic_load(&e->early) != seq)
        ;
}

/* Enclave side: one receive posted per pair. */
static void post_all(struct eleos_ioq *q, struct env *e, char (*buf)[4]) {
    for (unsigned i = 0; i < NPAIRS; i++)
        E_CHECK(eleos_ioq_recv(q, e->sp[i][1], buf[i], sizeof buf[i], 0, i) == 0);
}

/* Reaps until every pair's receive is in; returns how many waits that took. */
static unsigned drain(struct eleos_ioq *q, unsigned have) {
    struct eleos_ioq_cqe c[NPAIRS];
    unsigned waits = 0;
    while (have < NPAIRS && waits < 100) {
        int n = eleos_ioq_wait(q, c, NPAIRS, 1, 5000000000ull);
        E_CHECK(n > 0);
        have += n > 0 ? (unsigned)n : 0;
        waits++;
    }
    E_CHECK(have == NPAIRS);
    return waits;
}

struct run {
    struct env *e;
    struct eleos_ioq *q;
    char buf[NPAIRS][4];
};

/* One round: `now` pairs answer at once, the rest delay_ms later; the first wait's count. */
static int first_wait(struct run *r, unsigned now, long delay_ms, unsigned min,
                      uint64_t *exits) {
    post_all(r->q, r->e, r->buf);
    round_start(r->e, now, delay_ms);
    struct eleos_ioq_stats a, b;
    struct eleos_ioq_cqe c[NPAIRS];
    eleos_ioq_stats(r->q, &a);
    int n = eleos_ioq_wait(r->q, c, NPAIRS, min, 5000000000ull);
    eleos_ioq_stats(r->q, &b);
    *exits = b.exits - a.exits;
    drain(r->q, n > 0 ? (unsigned)n : 0);
    return n;
}

/* A queue of 64 on the run's executor with the given moderation and bound. */
static int queue_open(struct run *r, enum eleos_ioq_moderation mode, uint32_t ns) {
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.entries = 64;
    cfg.exec = r->e->exec;
    cfg.moderation = mode;
    cfg.moderation_ns = ns;
    return eleos_ioq_create(enc, &cfg, &r->q);
}

static long e_moderate(void *arg) {
    struct run r = {.e = arg};
    int rc = queue_open(&r, ELEOS_IOQ_MOD_ON, 2000000000u);
    if (rc)
        return rc;
    uint64_t ex;
    E_CHECK(eleos_ioq_moderating(r.q));
    /* Learning: a whole round ready at once comes in one wait. */
    E_CHECK(first_wait(&r, NPAIRS, 0, 1, &ex) == NPAIRS);
    /* Moderated: 2 now, 6 later, one wait and one exit for all 8. */
    E_CHECK(first_wait(&r, 2, 20, 1, &ex) == NPAIRS);
    E_CHECK(ex == 1);
    struct eleos_ioq_stats st;
    eleos_ioq_stats(r.q, &st);
    E_CHECK(st.moderated >= 1 && st.mod_timeouts == 0);
    /* Off: the same round's first wait returns with what is there. */
    E_CHECK(eleos_ioq_set_moderation(r.q, ELEOS_IOQ_MOD_OFF) == 0 && !eleos_ioq_moderating(r.q));
    E_CHECK(first_wait(&r, 2, 20, 1, &ex) == 2);
    /* On again: the caller's min is a floor, never lowered (6 of 8 asked, 8 given). */
    E_CHECK(eleos_ioq_set_moderation(r.q, ELEOS_IOQ_MOD_ON) == 0);
    E_CHECK(first_wait(&r, 2, 20, 6, &ex) == NPAIRS);
    /* A poll (timeout 0) is not moderated. */
    eleos_ioq_stats(r.q, &st);
    post_all(r.q, r.e, r.buf);
    round_start(r.e, 1, 20);
    struct eleos_ioq_cqe c[NPAIRS];
    int n = 0;
    while (n == 0)
        n = eleos_ioq_wait(r.q, c, NPAIRS, 1, 0);
    struct eleos_ioq_stats st2;
    eleos_ioq_stats(r.q, &st2);
    E_CHECK(n == 1 && st2.moderated == st.moderated);
    drain(r.q, 1);
    E_CHECK(eleos_ioq_set_moderation(r.q, (enum eleos_ioq_moderation)7) == -EINVAL);
    eleos_ioq_destroy(r.q);
    return 0;
}

/* The bound: a round that does not all come back within it. */
static long e_bound(void *arg) {
    struct run r = {.e = arg};
    int rc = queue_open(&r, ELEOS_IOQ_MOD_ON, 1000000u);
    if (rc)
        return rc;
    uint64_t ex;
    E_CHECK(first_wait(&r, NPAIRS, 0, 1, &ex) == NPAIRS);
    E_CHECK(first_wait(&r, 3, 300, 1, &ex) == 3);
    struct eleos_ioq_stats st;
    eleos_ioq_stats(r.q, &st);
    E_CHECK(st.mod_timeouts >= 1);
    eleos_ioq_destroy(r.q);
    /* AUTO without the host's monitor (no I/O service here) knows nothing: no moderation. */
    rc = queue_open(&r, ELEOS_IOQ_MOD_AUTO, 1000000u);
    if (rc)
        return rc;
    E_CHECK(first_wait(&r, NPAIRS, 0, 1, &ex) == NPAIRS);
    E_CHECK(first_wait(&r, 2, 20, 1, &ex) == 2);
    E_CHECK(!eleos_ioq_moderating(r.q));
    eleos_ioq_destroy(r.q);
    E_CHECK(queue_open(&r, (enum eleos_ioq_moderation)9, 0) == -EINVAL);
    return 0;
}

static void run(enum eleos_ioq_exec exec, eleos_enclave_fn fn, const char *what) {
    struct env e = {.exec = exec};
    for (unsigned i = 0; i < NPAIRS; i++)
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, e.sp[i]) == 0);
    pthread_t w;
    REQUIRE(pthread_create(&w, NULL, writer_main, &e) == 0);
    e_fails = e_fail_line = 0;
    long rv = -1;
    REQUIRE(eleos_enclave_ecall(enc, fn, &e, &rv) == 0);
    atomic_store(&e.stop, 1);
    pthread_join(w, NULL);
    CHECK_EQ(rv, 0);
    if (e_fails)
        fprintf(stderr, "%s %s: first enclave failure at line %d\n",
                eleos_ioq_exec_name(exec), what, e_fail_line);
    CHECK_EQ(e_fails, 0);
    for (unsigned i = 0; i < NPAIRS; i++) {
        close(e.sp[i][0]);
        close(e.sp[i][1]);
    }
}

static void test_uring(void) {
    run(ELEOS_IOQ_EXEC_URING, e_moderate, "moderate");
    run(ELEOS_IOQ_EXEC_URING, e_bound, "bound");
}

static void test_batch(void) {
    run(ELEOS_IOQ_EXEC_BATCH, e_moderate, "moderate");
    run(ELEOS_IOQ_EXEC_BATCH, e_bound, "bound");
}

int main(void) {
    enc = rpc_test_enclave(0);
    const struct harness_case cases[] = {TEST_CASE(test_uring), TEST_CASE(test_batch)};
    int r = harness_run("test_ioq_moderation", cases, sizeof cases / sizeof cases[0]);
    eleos_enclave_destroy(enc);
    return r;
}
