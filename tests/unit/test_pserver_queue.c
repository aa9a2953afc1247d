/*
 * eleos-pserver's I/O queue path (enclave_queue.c), driven through its ECALLs in sgx mode
 * on one executor, named by the first argument (uring, worker or batch; default batch).
 *
 * The set-up's executor reaches the enclave as a checked integer; a connection's requests
 * are served in order however the bytes arrive (several per segment, or split), the
 * replies to the requests before a malformed one go out before the connection closes, a
 * reply larger than the socket's buffer goes out whole however short the sends come back
 * (the batch executor's do), a client that leaves without reading ends only its
 * connection, and the queue's counters reach the statistics. A hostile host that reorders
 * completions or lies about the ring's tail changes nothing; one that reports impossible
 * results ends the connection, counted, without a crash.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eleos/ioq.h"
#include "harness.h"
#include "pserver_server.h"
#include "unit/sim_testutil.h"

static struct eleos_enclave *enc;
static enum eleos_ioq_exec exec = ELEOS_IOQ_EXEC_BATCH;
static unsigned conns;

static long ecall(eleos_enclave_fn fn, void *arg) {
    long ret = 0;
    REQUIRE(eleos_enclave_ecall(enc, fn, arg, &ret) == 0);
    return ret;
}

static long serve(int fd) {
    conns++;
    return ecall(ps_enclave_serve, (void *)(uintptr_t)fd);
}

static void set_up(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 16 * MiB);
    enc = sim_test_create(&cfg);
    if (exec == ELEOS_IOQ_EXEC_WORKER)
        REQUIRE(eleos_ioq_service_start(NULL) == 0);
    struct ps_setup su = {.mode = PS_MODE_SGX, .table_bytes = 1 * MiB, .ioq_on = true,
                          .ioq_exec = ELEOS_IOQ_NEXEC};
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL); /* no such executor */
    su.ioq_exec = (uint32_t)exec;
    int r = (int)ecall(ps_enclave_setup, &su);
    if (r == -ENOSYS)
        SKIP("io_uring is not available here");
    REQUIRE(r == 0);
    char want[PS_NAME_MAX];
    snprintf(want, sizeof want, "ioq %s", eleos_ioq_exec_name(exec));
    CHECK(strcmp(su.out_io, want) == 0);
}

struct req {
    struct ps_header h;
    uint64_t k;
};

/* Requests written before the ECALL, the client's half-close, then the replies. */
static void pipelined_and_half_closed(void) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct req r[4] = {{{PS_OP_INC, 1}, 5}, {{PS_OP_INC, 1}, 5}, {{PS_OP_GET, 1}, 5},
                       {{PS_OP_INC, 1}, 6}};
    REQUIRE(send(sv[0], r, sizeof r, 0) == (ssize_t)sizeof r);
    /* And half of one more: dropped at the end of the stream, as the blocking loop does. */
    REQUIRE(send(sv[0], &r[0], 12, 0) == 12);
    REQUIRE(shutdown(sv[0], SHUT_WR) == 0);
    CHECK_EQ(serve(sv[1]), 0);
    uint64_t rep[5] = {0};
    CHECK_EQ(recv(sv[0], rep, sizeof rep, MSG_WAITALL), 32);
    CHECK(rep[0] == 1 && rep[1] == 1 && rep[2] == 2 && rep[3] == 1);
    close(sv[0]);
}

static void malformed_after_good(void) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct req r[3] = {{{PS_OP_INC, 1}, 7}, {{PS_OP_GET, 1}, 7}, {{9, 1}, 7}};
    REQUIRE(send(sv[0], r, sizeof r, 0) == (ssize_t)sizeof r);
    CHECK_EQ(serve(sv[1]), -EPROTO);
    uint64_t rep[3] = {0};
    CHECK_EQ(recv(sv[0], rep, sizeof rep, MSG_WAITALL), 16); /* then EOF */
    CHECK(rep[0] == 1 && rep[1] == 1);
    close(sv[0]);
}

/* A client that sends large GETs and reads their replies slowly, through small socket
 * buffers: the server's sends come back short or wait. */
struct slow_client {
    int fd;
    int ok;
};

static void *slow_main(void *arg) {
    struct slow_client *c = arg;
    static uint64_t msg[1 + PS_MAX_KEYS], vals[PS_MAX_KEYS];
    struct ps_header h = {PS_OP_GET, PS_MAX_KEYS};
    memcpy(msg, &h, sizeof h);
    for (uint32_t i = 0; i < PS_MAX_KEYS; i++)
        msg[1 + i] = i % 2 ? 5 : 7; /* keys 5 and 7 hold 2 and 1 by now */
    c->ok = 1;
    for (int round = 0; round < 3; round++) {
        if (send(c->fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg)
            c->ok = 0;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        if (recv(c->fd, vals, sizeof vals, MSG_WAITALL) != (ssize_t)sizeof vals)
            c->ok = 0;
        for (uint32_t i = 0; i < PS_MAX_KEYS; i++)
            if (vals[i] != (i % 2 ? 2u : 1u))
                c->ok = 0;
    }
    shutdown(c->fd, SHUT_WR);
    return NULL;
}

static void large_replies_through_small_buffers(void) {
    int sv[2], small = 4096;
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct slow_client c = {sv[0], 0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, slow_main, &c) == 0);
    CHECK_EQ(serve(sv[1]), 0);
    pthread_join(th, NULL);
    CHECK(c.ok);
    close(sv[0]);
}

/* The client sends and leaves without reading: its connection ends, nothing else. */
static void client_leaves(void) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct req r = {{PS_OP_INC, 1}, 9};
    REQUIRE(send(sv[0], &r, sizeof r, 0) == (ssize_t)sizeof r);
    close(sv[0]);
    CHECK_EQ(serve(sv[1]), 0);
}

static void counters(struct ps_stats *st) {
    memset(st, 0, sizeof *st);
    CHECK_EQ(ecall(ps_enclave_stats, st), 0);
}

static void stats_report_the_queue(void) {
    struct ps_stats st;
    counters(&st);
    CHECK(st.ioq && !st.rpc);
    CHECK_EQ(st.ioq_exec, exec);
    CHECK_EQ(st.ioq_conns, conns);
    CHECK_EQ(st.ioq_failures, 0);
    CHECK_EQ(st.ioq_final_exec[exec], conns);
    CHECK_EQ(st.ioq_by_exec[exec], st.ioq_ops);
    CHECK(st.ioq_ops >= 2 * conns && st.ioq_completions == st.ioq_ops);
    CHECK(st.ioq_exits > 0 && st.ioq_exits >= st.ioq_enters);
    CHECK_EQ(st.ioq_host_faults, 0);
    CHECK_EQ(st.ioq_bad_results, 0);
    /* 4 + 2 + 3 batches answered; the INC of the client that left may or may not have
     * been sent before it was gone. */
    CHECK(st.batches == 9 || st.batches == 10);
}

/* Reordered completions and a CQ tail moved wildly (host faults, ignored): the same
 * answers. Impossible results: the connection ends, counted. */
static void hostile_host(void) {
    if (exec == ELEOS_IOQ_EXEC_WORKER)
        return; /* the injector misbehaves on the enclave's own rings only */
    eleos_ioq_service_set_fault(ELEOS_IOQ_FAULT_REORDER | ELEOS_IOQ_FAULT_INDEX);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct req r[3] = {{{PS_OP_INC, 1}, 11}, {{PS_OP_INC, 1}, 11}, {{PS_OP_GET, 1}, 11}};
    for (int i = 0; i < 3; i++)
        REQUIRE(send(sv[0], &r[i], sizeof r[i], 0) == (ssize_t)sizeof r[i]);
    REQUIRE(shutdown(sv[0], SHUT_WR) == 0);
    CHECK_EQ(serve(sv[1]), 0);
    uint64_t rep[3] = {0};
    CHECK_EQ(recv(sv[0], rep, sizeof rep, MSG_WAITALL), 24);
    CHECK(rep[0] == 1 && rep[1] == 1 && rep[2] == 2);
    close(sv[0]);

    eleos_ioq_service_set_fault(ELEOS_IOQ_FAULT_RESULT);
    struct ps_stats before, after;
    counters(&before);
    for (int i = 0; i < 4; i++) { /* a third of the results are lies: some get through */
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        REQUIRE(send(sv[0], r, sizeof r, 0) == (ssize_t)sizeof r);
        REQUIRE(shutdown(sv[0], SHUT_WR) == 0);
        CHECK_EQ(serve(sv[1]), 0);
        close(sv[0]);
    }
    eleos_ioq_service_set_fault(0);
    counters(&after);
    CHECK(after.ioq_bad_results > before.ioq_bad_results);
    CHECK_EQ(after.ioq_conns, conns);
}

int main(int argc, char **argv) {
    if (argc > 1 && eleos_ioq_exec_parse(argv[1], &exec) != 0) {
        fprintf(stderr, "usage: %s [uring|worker|batch]\n", argv[0]);
        return 2;
    }
    static const struct harness_case cases[] = {
        TEST_CASE(set_up),
        TEST_CASE(pipelined_and_half_closed),
        TEST_CASE(malformed_after_good),
        TEST_CASE(large_replies_through_small_buffers),
        TEST_CASE(client_leaves),
        TEST_CASE(stats_report_the_queue),
        TEST_CASE(hostile_host),
    };
    return harness_run(__FILE__, cases, sizeof cases / sizeof cases[0]);
}
