/*
 * test_sys_iago — a malicious host. The pool's fault injector returns oversized lengths,
 * errno values out of range, too many epoll events, insane structures, random results,
 * rewrites bounce buffers, slot results and ring heads after completion; a scribbler thread
 * rewrites every bounce buffer continuously. The enclave side must return clean errors
 * (-EIO for what fails validation), copy nothing out of bounds (buffers here are exact-size
 * heap blocks, so ASan sees any overflow) and keep working once the host behaves again.
 *
 * Not labelled "concurrent": the scribbler races enclave copies of untrusted memory on
 * purpose, which TSan would rightly report as a data race.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "eleos/sys.h"
#include "harness.h"
#include "rpc_testutil.h"

static struct eleos_enclave *enc;
static struct eleos_rpc_pool *pool;
static struct eleos_rpc_client *cl;
static char path[64];

struct result {
    int unclean;     /* results outside the documented contract */
    int eio;         /* -EIO results                              */
    int ok;          /* successes                                 */
    int line;        /* first unclean result                      */
    bool no_sleep;   /* in: skip nanosleep. A host rewriting the bounce buffer can turn
                        the request's timespec into a sleep of any length: denial of
                        service, which is not defended (and would hang the test). */
};

/* A result is clean if it is a success within bounds or an errno in range. */
#define CLEAN(res, r, max)                                                                  \
    do {                                                                                    \
        long r_ = (long)(r);                                                                \
        if (r_ == -EIO)                                                                     \
            (res)->eio++;                                                                   \
        else if (r_ >= 0 && r_ <= (long)(max))                                              \
            (res)->ok++;                                                                    \
        else if (r_ < 0 && r_ >= -ELEOS_SYS_ERRNO_MAX)                                      \
            ;                                                                               \
        else {                                                                              \
            (res)->unclean++;                                                               \
            if (!(res)->line)                                                               \
                (res)->line = __LINE__;                                                     \
        }                                                                                   \
    } while (0)

/* One round of calls on non-blocking descriptors (a lying host still runs the real call
 * first, so nothing here may block). Buffers are exact-size heap blocks. */
static long e_suite(void *arg) {
    struct result *res = arg;
    enum { N = 100 };
    char *buf = eleos_enclave_malloc(enc, N);
    struct epoll_event *evs = eleos_enclave_malloc(enc, 2 * sizeof *evs);
    int p[2] = {-1, -1};
    long r = eleos_sys_pipe2(p, O_NONBLOCK | O_CLOEXEC);
    CLEAN(res, r, 0);
    if (r == 0) {
        static const char msg[N] = "payload";
        CLEAN(res, eleos_sys_write(p[1], msg, N), N);
        CLEAN(res, eleos_sys_read(p[0], buf, N), N);
        CLEAN(res, eleos_sys_write(p[1], msg, 10), 10);
        struct iovec iov[2] = {{buf, 4}, {buf + 4, 6}};
        CLEAN(res, eleos_sys_readv(p[0], iov, 2), 10);
        int ep = eleos_sys_epoll_create1(0);
        CLEAN(res, ep, ELEOS_SYS_FD_MAX);
        if (ep >= 0) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = 1};
            CLEAN(res, eleos_sys_epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev), 0);
            CLEAN(res, eleos_sys_epoll_wait(ep, evs, 2, 0), 2);
            CLEAN(res, eleos_sys_close(ep), 0);
        }
        long fl = eleos_sys_fcntl(p[0], F_GETFL, 0);
        CLEAN(res, fl, INT32_MAX);
        CLEAN(res, eleos_sys_fcntl(p[0], F_GETFD, 0), FD_CLOEXEC);
        long d = eleos_sys_dup(p[1]);
        CLEAN(res, d, ELEOS_SYS_FD_MAX);
        if (d == p[1])
            res->unclean++;
        if (d >= 0 && d < 100000)
            CLEAN(res, eleos_sys_close((int)d), 0);
        struct pollfd *pf = eleos_enclave_malloc(enc, 2 * sizeof *pf);
        pf[0] = (struct pollfd){p[0], POLLIN, 0};
        pf[1] = (struct pollfd){p[1], POLLOUT, 0};
        long n = eleos_sys_poll(pf, 2, 0);
        CLEAN(res, n, 2);
        if ((pf[0].revents & ~(POLLIN | POLLERR | POLLHUP | POLLNVAL)) ||
            (pf[1].revents & ~(POLLOUT | POLLERR | POLLHUP | POLLNVAL)))
            res->unclean++;
        eleos_enclave_free(enc, pf);
        CLEAN(res, eleos_sys_close(p[0]), 0);
        CLEAN(res, eleos_sys_close(p[1]), 0);
    }
    CLEAN(res, eleos_sys_getrandom(buf, N, GRND_NONBLOCK), N);
    struct stat *sst = eleos_enclave_malloc(enc, sizeof *sst);
    CLEAN(res, eleos_sys_stat("/", sst), 0);
    eleos_enclave_free(enc, sst);
    int fd = eleos_sys_openat(AT_FDCWD, path, O_RDWR | O_CREAT, 0600);
    CLEAN(res, fd, ELEOS_SYS_FD_MAX);
    if (fd >= 0 && fd < 100000) {
        CLEAN(res, eleos_sys_pwrite(fd, "0123456789", 10, 0), 10);
        CLEAN(res, eleos_sys_pread(fd, buf, N, 0), N);
        struct stat *st = eleos_enclave_malloc(enc, sizeof *st);
        long s = eleos_sys_fstat(fd, st);
        CLEAN(res, s, 0);
        if (s == 0 && st->st_size < 0)
            res->unclean++;
        eleos_enclave_free(enc, st);
        CLEAN(res, eleos_sys_lseek(fd, 3, SEEK_SET), 3);
        /* Any position is clean here: a scribbled fstat can confirm any end (the host's
         * file), as long as the wrapper returned one it confirmed or an errno. */
        CLEAN(res, eleos_sys_lseek(fd, 0, SEEK_END), INT64_MAX);
        CLEAN(res, eleos_sys_close(fd), 0);
    }
    int u = eleos_sys_socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    CLEAN(res, u, ELEOS_SYS_FD_MAX);
    if (u >= 0 && u < 100000) {
        struct sockaddr_in *sa = eleos_enclave_malloc(enc, sizeof *sa);
        memset(sa, 0, sizeof *sa);
        sa->sin_family = AF_INET;
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CLEAN(res, eleos_sys_bind(u, (struct sockaddr *)sa, sizeof *sa), 0);
        socklen_t len = sizeof *sa;
        long g = eleos_sys_getsockname(u, (struct sockaddr *)sa, &len);
        CLEAN(res, g, 0);
        if (g == 0 && len > sizeof(struct sockaddr_storage))
            res->unclean++;
        CLEAN(res, eleos_sys_sendto(u, "dgram", 5, 0, (struct sockaddr *)sa, sizeof *sa), 5);
        socklen_t flen = sizeof *sa;
        CLEAN(res, eleos_sys_recvfrom(u, buf, N, 0, (struct sockaddr *)sa, &flen), N);
        int *val = eleos_enclave_malloc(enc, sizeof *val);
        socklen_t vlen = sizeof *val;
        CLEAN(res, eleos_sys_getsockopt(u, SOL_SOCKET, SO_TYPE, val, &vlen), 0);
        if (vlen > sizeof *val)
            res->unclean++;
        eleos_enclave_free(enc, val);
        char *ctrl = eleos_enclave_malloc(enc, 64);
        struct iovec iov = {buf, N};
        struct msghdr m = {.msg_name = sa, .msg_namelen = sizeof *sa, .msg_iov = &iov,
                           .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = 64};
        CLEAN(res, eleos_sys_sendto(u, "again", 5, 0, (struct sockaddr *)sa, sizeof *sa), 5);
        CLEAN(res, eleos_sys_recvmsg(u, &m, 0), N);
        if (m.msg_controllen > 64)
            res->unclean++;
        eleos_enclave_free(enc, ctrl);
        eleos_enclave_free(enc, sa);
        CLEAN(res, eleos_sys_close(u), 0);
    }
    struct timespec ts = {0, 1000}, rem;
    if (!res->no_sleep) {
        long n = eleos_sys_nanosleep(&ts, &rem);
        CLEAN(res, n, 0);
        if (n == -EINTR && (rem.tv_nsec >= 1000000000L || rem.tv_nsec < 0))
            res->unclean++;
    }
    CLEAN(res, eleos_sys_clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
    CLEAN(res, eleos_sys_getppid(), 1L << 30);
    /* Plain RPC through the generic path too. */
    struct eleos_rpc_req null = {.fn = ELEOS_RPC_FN_NULL};
    int64_t ret;
    for (int i = 0; i < 50; i++)
        if (eleos_rpc_call(cl, &null, &ret) != 0)
            res->unclean++;
    uint64_t tk[8];
    struct eleos_rpc_req rs[8];
    for (int i = 0; i < 8; i++)
        rs[i] = null;
    int k = eleos_rpc_submit_batch(cl, rs, 8, tk);
    for (int i = 0; i < k; i++)
        if (eleos_rpc_wait(cl, tk[i], &ret) != 0)
            res->unclean++;
    eleos_enclave_free(enc, evs);
    eleos_enclave_free(enc, buf);
    return 0;
}

static struct result run_suite(bool no_sleep) {
    struct result res = {.no_sleep = no_sleep};
    long rv;
    REQUIRE(eleos_enclave_ecall(enc, e_suite, &res, &rv) == 0);
    if (res.unclean)
        fprintf(stderr, "unclean result (first at line %d)\n", res.line);
    return res;
}

/* The honest suite: everything succeeds. */
static void check_recovered(void) {
    eleos_rpc_pool_set_fault(pool, 0);
    struct result res = run_suite(false);
    CHECK_EQ(res.unclean, 0);
    CHECK_EQ(res.eio, 0);
}

static void setup(void) {
    enc = rpc_test_enclave(0);
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = 1;
    pc.channels = 4;
    pc.ring_size = 8;
    pc.fault_seed = 42;
    pool = rpc_test_pool(enc, &pc, NULL, 0, eleos_sys_host_register);
    snprintf(path, sizeof path, "/tmp/eleos-iago-%d", (int)getpid());
    cl = rpc_test_client(enc, pool, eleos_sys_init);
}

static void teardown(void) {
    rpc_test_client_destroy(enc, cl, eleos_sys_init);
    rpc_test_teardown(enc, pool);
    unlink(path);
}

static void one_mode(unsigned fault, uint64_t *counter_delta_out) {
    struct eleos_sys_stats before, after;
    eleos_sys_stats(&before);
    eleos_rpc_pool_set_fault(pool, fault);
    for (int i = 0; i < 4; i++) {
        struct result res = run_suite(false);
        CHECK_EQ(res.unclean, 0);
    }
    eleos_sys_stats(&after);
    *counter_delta_out = (after.iago_len - before.iago_len) +
                         (after.iago_errno - before.iago_errno) +
                         (after.iago_events - before.iago_events) +
                         (after.iago_struct - before.iago_struct);
    check_recovered();
}

static void test_each_fault(void) {
    setup();
    check_recovered();
    static const struct {
        unsigned fault;
        const char *name;
    } modes[] = {
        {ELEOS_RPC_FAULT_LEN, "len"},         {ELEOS_RPC_FAULT_ERRNO, "errno"},
        {ELEOS_RPC_FAULT_EPOLL, "epoll"},     {ELEOS_RPC_FAULT_STRUCT, "struct"},
        {ELEOS_RPC_FAULT_BOUNCE, "bounce"},   {ELEOS_RPC_FAULT_RET, "ret"},
        {ELEOS_RPC_FAULT_SCRIBBLE, "scribble"},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        uint64_t delta;
        one_mode(modes[i].fault, &delta);
        fprintf(stderr, "  fault %-8s: %llu results rejected\n", modes[i].name,
                (unsigned long long)delta);
        if (modes[i].fault & (ELEOS_RPC_FAULT_LEN | ELEOS_RPC_FAULT_ERRNO | ELEOS_RPC_FAULT_EPOLL |
                              ELEOS_RPC_FAULT_STRUCT | ELEOS_RPC_FAULT_RET))
            CHECK(delta > 0);
    }
    /* Everything at once. */
    uint64_t delta;
    one_mode(0x7f, &delta);
    CHECK(delta > 0);
    struct eleos_sys_stats ss;
    eleos_sys_stats(&ss);
    CHECK(ss.iago_len > 0 && ss.iago_errno > 0 && ss.iago_events > 0 && ss.iago_struct > 0);
    teardown();
}

/* A host thread rewriting every bounce buffer and the channel heads all the time. */
static _Atomic int scribbling;
static void *scribbler(void *arg) {
    (void)arg;
    uint64_t x = 88172645463325252ull;
    size_t size;
    void *area = eleos_rpc_pool_shared(pool, &size);
    (void)area;
    while (atomic_load_explicit(&scribbling, memory_order_relaxed)) {
        for (unsigned c = 0; c < 4; c++) {
            size_t bsize;
            unsigned char *b = eleos_rpc_pool_bounce(pool, c, &bsize);
            for (int i = 0; i < 64; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b[x % bsize] = (unsigned char)x;
            }
        }
    }
    return NULL;
}

static void test_scribbler(void) {
    setup();
    atomic_store(&scribbling, 1);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, scribbler, NULL) == 0);
    eleos_rpc_pool_set_fault(pool, ELEOS_RPC_FAULT_SCRIBBLE);
    for (int i = 0; i < 20; i++) {
        struct result res = run_suite(true);
        CHECK_EQ(res.unclean, 0);
    }
    atomic_store(&scribbling, 0);
    pthread_join(th, NULL);
    check_recovered();
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(cl, &cs);
    fprintf(stderr, "  host faults seen by the RPC client: %llu\n",
            (unsigned long long)cs.host_faults);
    teardown();
}

TEST_MAIN(TEST_CASE(test_each_fault), TEST_CASE(test_scribbler))
