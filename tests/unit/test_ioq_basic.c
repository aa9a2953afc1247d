/*
 * test_ioq_basic — every operation of eleos/ioq.h on real descriptors (socket pair, TCP
 * loopback, pipe, file), from enclave mode, on each executor (forced), and the adaptive
 * choice. Checks results, data, user_data, that each completion comes once, and what each
 * executor costs in exits; that a WORKER queue reports its poller starved once more
 * threads spin than there are CPUs (and never on the other executors), and that SQPOLL
 * queues share one kernel poller.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eleos/ioq.h"
#include "exit_steps.h"
#include "harness.h"
#include "rpc_testutil.h"

static struct eleos_enclave *enc;

struct env {
    enum eleos_ioq_exec exec;
    enum eleos_ioq_exec expect; /* the executor the queue must start on */
    int sp[2];       /* socket pair                     */
    int pp[2];       /* pipe                            */
    int file;        /* temporary file                  */
    int lfd, cfd;    /* listener, a connecting client   */
    uint64_t exits;  /* OCALLs the queue reported       */
    uint64_t ops;
    uint64_t depth_exits; /* of those, for 64 operations in flight at once */
};

/* Waits for exactly one completion and returns it. */
static struct eleos_ioq_cqe one(struct eleos_ioq *q) {
    struct eleos_ioq_cqe c = {.res = -99999};
    int n = eleos_ioq_wait(q, &c, 1, 1, 2000000000ull);
    E_CHECK(n == 1);
    return c;
}

static void sockets(struct eleos_ioq *q, struct env *e) {
    char in[64] = {0}, big[100000];
    E_CHECK(eleos_ioq_recv(q, e->sp[1], in, sizeof in, 0, 11) == 0);
    E_CHECK(eleos_ioq_send(q, e->sp[0], "hello", 5, 0, 12) == 0);
    struct eleos_ioq_cqe c[4];
    int got = 0, seen = 0;
    while (got < 2) {
        int n = eleos_ioq_wait(q, c, 4, 1, 2000000000ull);
        E_CHECK(n > 0);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            E_CHECK(c[i].res == 5 && (c[i].user_data == 11 || c[i].user_data == 12));
            seen |= 1 << (c[i].user_data - 11);
        }
        got += n;
    }
    E_CHECK(got == 2 && seen == 3 && memcmp(in, "hello", 5) == 0);
    /* A receive without a buffer: the bytes come with the completion. */
    E_CHECK(eleos_ioq_recv(q, e->sp[1], NULL, 64, 0, 13) == 0);
    E_CHECK(eleos_ioq_send(q, e->sp[0], "world", 5, 0, 14) == 0);
    for (got = 0; got < 2;) {
        int n = eleos_ioq_wait(q, c, 4, 1, 2000000000ull);
        E_CHECK(n > 0);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++)
            E_CHECK(c[i].user_data == 14 ? c[i].res == 5 && !c[i].data
                                         : c[i].user_data == 13 && c[i].res == 5 && c[i].data &&
                                               eleos_enclave_within(enc, c[i].data, 5) &&
                                               !memcmp(c[i].data, "world", 5));
        got += n;
    }
    /* A receive in flight when the executor changes moves to the new one and completes
     * there (the old lane cancels it; the queue issues it again). */
    enum eleos_ioq_exec was = eleos_ioq_executor(q);
    enum eleos_ioq_exec other = was == ELEOS_IOQ_EXEC_BATCH ? ELEOS_IOQ_EXEC_URING
                                                            : ELEOS_IOQ_EXEC_BATCH;
    E_CHECK(eleos_ioq_recv(q, e->sp[1], in, sizeof in, 0, 15) == 0);
    E_CHECK(eleos_ioq_submit(q) == 1);
    int sr = eleos_ioq_set_executor(q, other);
    if (getenv("ELEOS_IOQ_NO_URING")) /* nowhere to move to: the receive stays */
        E_CHECK(sr == -ENOSYS && eleos_ioq_executor(q) == was);
    else
        E_CHECK(sr == 0 && eleos_ioq_executor(q) == other);
    E_CHECK(eleos_ioq_send(q, e->sp[0], "moved", 5, 0, 16) == 0);
    for (got = 0, seen = 0; got < 2;) {
        int n = eleos_ioq_wait(q, c, 4, 1, 2000000000ull);
        E_CHECK(n > 0);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            E_CHECK(c[i].res == 5 && (c[i].user_data == 15 || c[i].user_data == 16));
            seen |= 1 << (c[i].user_data - 15);
        }
        got += n;
    }
    E_CHECK(seen == 3 && !memcmp(in, "moved", 5));
    E_CHECK(eleos_ioq_set_executor(q, e->exec) == 0);
    /* Vectored and message forms; a transfer above the cap is shortened. */
    struct iovec ov[2] = {{"ab", 2}, {"cde", 3}};
    struct msghdr om = {.msg_iov = ov, .msg_iovlen = 2};
    E_CHECK(eleos_ioq_sendmsg(q, e->sp[0], &om, 0, 21) == 0);
    E_CHECK(one(q).res == 5);
    char a[2], b[8];
    struct iovec iv[2] = {{a, 2}, {b, 8}};
    struct msghdr im = {.msg_iov = iv, .msg_iovlen = 2};
    E_CHECK(eleos_ioq_recvmsg(q, e->sp[1], &im, 0, 22) == 0);
    struct eleos_ioq_cqe r = one(q);
    E_CHECK(r.user_data == 22 && r.res == 5 && !memcmp(a, "ab", 2) && !memcmp(b, "cde", 3));
    memset(big, 'x', sizeof big);
    E_CHECK(eleos_ioq_send(q, e->sp[0], big, sizeof big, MSG_DONTWAIT, 31) == 0);
    r = one(q);
    E_CHECK(r.res > 0 && r.res <= (int32_t)sizeof big);
    /* A control buffer is refused, an iovec array too long too. */
    char ctl[16];
    struct msghdr bad = {.msg_iov = iv, .msg_iovlen = 1, .msg_control = ctl,
                         .msg_controllen = sizeof ctl};
    E_CHECK(eleos_ioq_recvmsg(q, e->sp[1], &bad, 0, 0) == -EINVAL);
}

static void files(struct eleos_ioq *q, struct env *e) {
    char buf[32] = {0};
    E_CHECK(eleos_ioq_write(q, e->file, "0123456789", 10, 0, 1) == 0);
    E_CHECK(one(q).res == 10);
    E_CHECK(eleos_ioq_fsync(q, e->file, true, 2) == 0);
    E_CHECK(one(q).res == 0);
    E_CHECK(eleos_ioq_read(q, e->file, buf, 4, 3, 3) == 0);
    struct eleos_ioq_cqe r = one(q);
    E_CHECK(r.user_data == 3 && r.res == 4 && !memcmp(buf, "3456", 4));
    char x[3], y[3];
    struct iovec v[2] = {{x, 3}, {y, 3}};
    E_CHECK(eleos_ioq_readv(q, e->file, v, 2, 1, 4) == 0);
    E_CHECK(one(q).res == 6 && !memcmp(x, "123", 3) && !memcmp(y, "456", 3));
    struct iovec w[2] = {{"AB", 2}, {"C", 1}};
    E_CHECK(eleos_ioq_writev(q, e->file, w, 2, 0, 5) == 0);
    E_CHECK(one(q).res == 3);
    E_CHECK(eleos_ioq_read(q, e->file, buf, sizeof buf, 0, 6) == 0);
    E_CHECK(one(q).res == 10 && !memcmp(buf, "ABC3456789", 10));
    /* pipe: a read that waits, a poll, then a cancel of a read that never completes */
    E_CHECK(eleos_ioq_read(q, e->pp[0], buf, sizeof buf, -1, 7) == 0);
    E_CHECK(eleos_ioq_submit(q) >= 0);
    E_CHECK(eleos_ioq_write(q, e->pp[1], "pq", 2, -1, 8) == 0);
    struct eleos_ioq_cqe c[2];
    int n = eleos_ioq_wait(q, c, 2, 2, 2000000000ull);
    E_CHECK(n == 2 && c[0].res == 2 && c[1].res == 2 && !memcmp(buf, "pq", 2));
    E_CHECK(eleos_ioq_poll(q, e->pp[1], POLLOUT, 9) == 0);
    r = one(q);
    E_CHECK(r.user_data == 9 && (r.res & POLLOUT));
    E_CHECK(eleos_ioq_read(q, e->pp[0], buf, sizeof buf, -1, 10) == 0);
    E_CHECK(eleos_ioq_submit(q) >= 0);
    E_CHECK(eleos_ioq_cancel_fd(q, e->pp[0], 12) == 0);
    n = eleos_ioq_wait(q, c, 2, 2, 2000000000ull);
    E_CHECK(n == 2);
    for (int i = 0; i < n; i++)
        E_CHECK((c[i].user_data == 10 && c[i].res == -ECANCELED) ||
                (c[i].user_data == 12 && c[i].res == 1));
}

static void accepts(struct eleos_ioq *q, struct env *e) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    E_CHECK(eleos_ioq_accept(q, e->lfd, (struct sockaddr *)&peer, &plen,
                             SOCK_NONBLOCK | SOCK_CLOEXEC, 40) == 0);
    struct eleos_ioq_cqe r = one(q);
    E_CHECK(r.user_data == 40 && r.res >= 0 && plen == sizeof peer &&
            peer.sin_family == AF_INET);
    if (r.res >= 0) {
        E_CHECK(eleos_ioq_close(q, r.res, 41) == 0);
        E_CHECK(one(q).res == 0);
    }
    E_CHECK(eleos_ioq_close(q, 1 << 20, 42) == 0);
    E_CHECK(one(q).res == -EBADF);
    E_CHECK(eleos_ioq_nop(q, 43) == 0);
    E_CHECK(one(q).user_data == 43);
    E_CHECK(eleos_ioq_recv(q, -1, NULL, 0, 0, 0) == -EINVAL);
}

/* Many operations in flight at once: a full queue says -EAGAIN, and everything comes back. */
static void depth(struct eleos_ioq *q) {
    unsigned n = 0;
    while (eleos_ioq_nop(q, 1000 + n) == 0)
        n++;
    E_CHECK(n == 64);
    E_CHECK(eleos_ioq_outstanding(q) == 64);
    static struct eleos_ioq_cqe c[64];
    uint64_t seen = 0;
    unsigned got = 0;
    while (got < n) {
        int k = eleos_ioq_wait(q, c, 64, n - got, 2000000000ull);
        E_CHECK(k > 0);
        if (k <= 0)
            return;
        for (int i = 0; i < k; i++) {
            uint64_t bit = 1ull << (c[i].user_data - 1000);
            E_CHECK(c[i].user_data >= 1000 && c[i].user_data < 1064 && !(seen & bit));
            seen |= bit;
        }
        got += (unsigned)k;
    }
    E_CHECK(got == 64 && eleos_ioq_outstanding(q) == 0);
}

static long e_run(void *arg) {
    struct env *e = arg;
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.entries = 64;
    cfg.exec = e->exec;
    struct eleos_ioq *q = NULL;
    int r = eleos_ioq_create(enc, &cfg, &q);
    if (r)
        return r;
    E_CHECK(eleos_ioq_executor(q) == e->expect);
    sockets(q, e);
    files(q, e);
    accepts(q, e);
    struct eleos_ioq_stats before;
    eleos_ioq_stats(q, &before);
    depth(q);
    struct eleos_ioq_stats st;
    eleos_ioq_stats(q, &st);
    E_CHECK(st.host_faults == 0 && st.bad_results == 0);
    e->exits = st.exits;
    e->ops = st.ops;
    e->depth_exits = st.exits - before.exits;
    eleos_ioq_destroy(q);
    return 0;
}

static void run_exec_expect(enum eleos_ioq_exec exec, enum eleos_ioq_exec expect) {
    struct env e = {.exec = exec, .expect = expect};
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, e.sp) == 0);
    REQUIRE(pipe(e.pp) == 0);
    char path[] = "/tmp/test_ioq_XXXXXX";
    e.file = mkstemp(path);
    REQUIRE(e.file >= 0);
    unlink(path);
    e.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    REQUIRE(bind(e.lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(e.lfd, 8) == 0);
    REQUIRE(getsockname(e.lfd, (struct sockaddr *)&a, &al) == 0);
    e.cfd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(connect(e.cfd, (struct sockaddr *)&a, sizeof a) == 0);
    e_fails = e_fail_line = 0;
    long rv = -1;
    REQUIRE(eleos_enclave_ecall(enc, e_run, &e, &rv) == 0);
    fprintf(stderr, "%s: rv %ld, %llu ops, %llu exits\n", eleos_ioq_exec_name(exec), rv,
            (unsigned long long)e.ops, (unsigned long long)e.exits);
    if (rv == -ENOSYS && exec == ELEOS_IOQ_EXEC_SQPOLL)
        fprintf(stderr, "sqpoll not available here\n");
    else
        CHECK_EQ(rv, 0);
    if (e_fails)
        fprintf(stderr, "%s: first enclave failure at line %d\n", eleos_ioq_exec_name(exec),
                e_fail_line);
    CHECK_EQ(e_fails, 0);
    /* Batching: 64 operations in flight cost far fewer exits than 64, on every executor
     * (the one-at-a-time parts of the run may cost one exit each where a poller lacks a
     * CPU, so only the batch is held to it). */
    CHECK(rv != 0 || e.depth_exits < 16);
    int fds[] = {e.sp[0], e.sp[1], e.pp[0], e.pp[1], e.file, e.lfd, e.cfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

static void run_exec(enum eleos_ioq_exec exec) {
    run_exec_expect(exec, exec ? exec : ELEOS_IOQ_EXEC_URING);
}

static void test_uring(void) { run_exec(ELEOS_IOQ_EXEC_URING); }
static void test_batch(void) { run_exec(ELEOS_IOQ_EXEC_BATCH); }
static void test_sqpoll(void) { run_exec(ELEOS_IOQ_EXEC_SQPOLL); }
static void test_auto(void) { run_exec(ELEOS_IOQ_EXEC_AUTO); }

/* Without io_uring (an old kernel, a sandbox that filters it), AUTO runs everything on
 * the batch executor, and asking for io_uring says -ENOSYS. */
static void test_no_uring(void) {
    setenv("ELEOS_IOQ_NO_URING", "1", 1);
    run_exec_expect(ELEOS_IOQ_EXEC_AUTO, ELEOS_IOQ_EXEC_BATCH);
    struct env e = {.exec = ELEOS_IOQ_EXEC_URING, .expect = ELEOS_IOQ_EXEC_URING};
    long rv = 0;
    REQUIRE(eleos_enclave_ecall(enc, e_run, &e, &rv) == 0);
    CHECK_EQ(rv, -ENOSYS);
    unsetenv("ELEOS_IOQ_NO_URING");
}

static void test_worker(void) {
    struct eleos_ioq_service_config sc;
    eleos_ioq_service_config_default(&sc);
    REQUIRE(eleos_ioq_service_start(&sc) == 0);
    CHECK_EQ(eleos_ioq_service_start(&sc), -EALREADY);
    run_exec(ELEOS_IOQ_EXEC_WORKER);
    struct eleos_ioq_service_stats st;
    eleos_ioq_service_stats(&st);
    /* Who submitted (the worker, or the enclave's own wait when the worker was slow to
     * wake) depends on scheduling; that the service ran is what is certain. */
    CHECK(st.workers == 1);
    eleos_ioq_service_stop();
    eleos_ioq_service_stop();
}

/* --- a starved poller ------------------------------------------------------------------- */

static _Atomic bool spin_stop;

static void *spinner(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
        ;
    return NULL;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Keeps the worker busy with nops (so it stays awake, and its waits for a CPU count) until
 * the queue reports it starved or 5 s pass: 1 if it did, 0 if not, -1 on a queue error. */
static long e_starved(void *arg) {
    (void)arg;
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.exec = ELEOS_IOQ_EXEC_WORKER;
    struct eleos_ioq *q = NULL;
    if (eleos_ioq_create(enc, &cfg, &q))
        return -1;
    long seen = 0;
    uint64_t end = mono_ms() + 5000;
    struct eleos_ioq_cqe c[1];
    while (!seen && mono_ms() < end) {
        if (eleos_ioq_nop(q, 1) || eleos_ioq_wait(q, c, 1, 1, 100000000ull) != 1) {
            seen = -1;
            break;
        }
        seen = eleos_ioq_poller_starved(q);
    }
    eleos_ioq_destroy(q);
    return seen;
}

/* More spinning threads than CPUs: the host's monitor sees the worker wait for a CPU, and
 * the queue says so (eleos-pserver's pollers stop spinning on it). */
static void test_worker_starved(void) {
    struct eleos_ioq_service_config sc;
    eleos_ioq_service_config_default(&sc);
    REQUIRE(eleos_ioq_service_start(&sc) == 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN), n = (cpus > 0 ? cpus : 1) + 2;
    pthread_t th[64];
    if (n > 64)
        n = 64;
    atomic_store(&spin_stop, false);
    for (long i = 0; i < n; i++)
        REQUIRE(pthread_create(&th[i], NULL, spinner, NULL) == 0);
    long rv = -2;
    REQUIRE(eleos_enclave_ecall(enc, e_starved, NULL, &rv) == 0);
    atomic_store(&spin_stop, true);
    for (long i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(rv, 1);
    eleos_ioq_service_stop();
}

/* --- SQPOLL queues share one kernel poller ---------------------------------------------- */

static struct eleos_ioq *sq_q[3];

static long e_sq_open(void *arg) {
    (void)arg;
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.exec = ELEOS_IOQ_EXEC_SQPOLL;
    for (int i = 0; i < 3; i++) {
        int r = eleos_ioq_create(enc, &cfg, &sq_q[i]);
        if (r)
            return r;
        struct eleos_ioq_cqe c[1];
        if (eleos_ioq_nop(sq_q[i], 1) || eleos_ioq_wait(sq_q[i], c, 1, 1, 2000000000ull) != 1)
            return -EIO;
    }
    return 0;
}

static long e_sq_close(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++)
        if (sq_q[i])
            eleos_ioq_destroy(sq_q[i]);
    return 0;
}

/* Threads of this process whose name starts with prefix. */
static int threads_named(const char *prefix) {
    DIR *d = opendir("/proc/self/task");
    REQUIRE(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], name[32];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "re");
        if (!f)
            continue;
        if (fgets(name, sizeof name, f) && !strncmp(name, prefix, strlen(prefix)))
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Three SQPOLL queues, one kernel polling thread: a thread per ring would spin as many
 * cores as the program has queues. */
static void test_sqpoll_shared(void) {
    /* an earlier case's poller may still be on its way out */
    for (int i = 0; i < 200 && threads_named("iou-sqp"); i++)
        usleep(10000);
    long rv = -1;
    REQUIRE(eleos_enclave_ecall(enc, e_sq_open, NULL, &rv) == 0);
    if (rv == -ENOSYS) {
        fprintf(stderr, "sqpoll not available here\n");
    } else {
        CHECK_EQ(rv, 0);
        CHECK_EQ(threads_named("iou-sqp"), 1);
    }
    REQUIRE(eleos_enclave_ecall(enc, e_sq_close, NULL, &rv) == 0);
}

/* --- the exit counts ioq.h states, measured (enclave stats: OCALLs + trapped syscalls) ---- */

struct steps {
    struct exit_steps rec;
    enum eleos_ioq_exec exec;
    int sp[2];
};

#define STEP(x, nm, doc, stmt) EXIT_STEP(&(x)->rec, nm, doc, stmt)

static long e_steps(void *arg) {
    struct steps *x = arg;
    struct eleos_ioq_config cfg;
    STEP(x, "config_default", 0, (eleos_ioq_config_default(&cfg), 0));
    cfg.entries = 64;
    cfg.exec = x->exec;
    struct eleos_ioq *q = NULL;
    STEP(x, "create", 3, eleos_ioq_create(enc, &cfg, &q));
    if (!q)
        return -1;
    struct eleos_ioq_cqe c[4];
    STEP(x, "nop", 0, eleos_ioq_nop(q, 1));
    STEP(x, "send (first buffer)", 1, eleos_ioq_send(q, x->sp[0], "ab", 2, 0, 2));
    STEP(x, "send", 0, eleos_ioq_send(q, x->sp[0], "cd", 2, 0, 3));
    STEP(x, "submit", 1, eleos_ioq_submit(q) != 3);
    STEP(x, "submit (nothing queued)", 0, eleos_ioq_submit(q));
    STEP(x, "wait (done at submit)", 0, eleos_ioq_wait(q, c, 4, 3, 2000000000ull) != 3);
    STEP(x, "reap (nothing ready)", 0, eleos_ioq_reap(q, c, 4));
    STEP(x, "nop", 0, eleos_ioq_nop(q, 4));
    STEP(x, "wait (queued)", 1, eleos_ioq_wait(q, c, 4, 1, 2000000000ull) != 1);
    enum eleos_ioq_exec ex;
    struct eleos_ioq_stats st;
    STEP(x, "outstanding", 0, eleos_ioq_outstanding(q) != 0);
    STEP(x, "executor", 0, eleos_ioq_executor(q) != x->exec);
    STEP(x, "poller_starved (never here)", 0, eleos_ioq_poller_starved(q));
    STEP(x, "host_idle", 0, (eleos_ioq_host_idle(q), 0));
    STEP(x, "exec_name", 0, eleos_ioq_exec_name(x->exec) == NULL);
    STEP(x, "exec_parse", 0, eleos_ioq_exec_parse("batch", &ex));
    STEP(x, "stats", 0, (eleos_ioq_stats(q, &st), 0));
    STEP(x, "destroy", 4, (eleos_ioq_destroy(q), 0)); /* 1 executor, 1 bounce block */
    q = NULL;
    if (eleos_ioq_create(enc, &cfg, &q))
        return -1;
    enum eleos_ioq_exec other = x->exec == ELEOS_IOQ_EXEC_BATCH ? ELEOS_IOQ_EXEC_URING
                                                                : ELEOS_IOQ_EXEC_BATCH;
    STEP(x, "set_executor (new)", 1, eleos_ioq_set_executor(q, other));
    STEP(x, "set_executor (back)", 0, eleos_ioq_set_executor(q, x->exec));
    STEP(x, "destroy (2 executors)", 4, (eleos_ioq_destroy(q), 0)); /* no bounce block */
    return 0;
}

/* URING and BATCH only: what WORKER and SQPOLL cost depends on whether their thread is
 * awake, which depends on scheduling. */
static void exit_counts(enum eleos_ioq_exec exec) {
    static struct steps x;
    memset(&x, 0, sizeof x);
    x.rec.enc = enc;
    x.exec = exec;
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, x.sp) == 0);
    long rv = -1;
    REQUIRE(eleos_enclave_ecall(enc, e_steps, &x, &rv) == 0);
    CHECK_EQ(rv, 0);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%s ", eleos_ioq_exec_name(exec));
    exit_steps_check(&x.rec, prefix, NO_SANITIZER_SYSCALLS);
    close(x.sp[0]);
    close(x.sp[1]);
}

static void test_exit_counts_uring(void) { exit_counts(ELEOS_IOQ_EXEC_URING); }
static void test_exit_counts_batch(void) { exit_counts(ELEOS_IOQ_EXEC_BATCH); }

static void setup(void) {
    enc = rpc_test_enclave(0);
}

int main(void) {
    setup();
    const struct harness_case cases[] = {TEST_CASE(test_uring), TEST_CASE(test_batch),
                                         TEST_CASE(test_worker), TEST_CASE(test_worker_starved),
                                         TEST_CASE(test_sqpoll), TEST_CASE(test_sqpoll_shared),
                                         TEST_CASE(test_auto), TEST_CASE(test_no_uring),
                                         TEST_CASE(test_exit_counts_uring),
                                         TEST_CASE(test_exit_counts_batch)};
    int r = harness_run("test_ioq_basic", cases, sizeof cases / sizeof cases[0]);
    eleos_enclave_destroy(enc);
    return r;
}
