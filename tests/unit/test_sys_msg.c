/*
 * test_sys_msg — message boundaries through the exitless wrappers, with an honest host. On
 * SOCK_DGRAM and SOCK_SEQPACKET a message larger than the bounce buffer must travel as one
 * message or fail with the kernel's EMSGSIZE, never be split or silently cut; a receive
 * must return the whole message when the caller's buffer holds it and report truncation as
 * the kernel does when it does not. The enclave side uses the wrappers, the host side plain
 * system calls on the other end of a socketpair, on the exitless and on the exit path.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eleos/sys.h"
#include "harness.h"
#include "rpc_testutil.h"

/* Larger than the default bounce buffer's data area (64 KiB), smaller than the default
 * AF_UNIX send buffer, so the kernel itself takes it as one message. */
#define MSG_LEN 100000
/* Larger than the default AF_UNIX send buffer: the kernel refuses it (EMSGSIZE). */
#define HUGE_LEN (1u << 20)

static struct eleos_enclave *enc;
static struct eleos_rpc_pool *pool;
static struct eleos_rpc_client *cl;

static unsigned char pat(size_t i, unsigned seed) {
    return (unsigned char)(i * 131 + seed * 7 + (i >> 9));
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i, seed);
}

static bool same(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(i, seed))
            return false;
    return true;
}

/* One enclave-side operation and what it returned. */
enum op { OP_SEND, OP_WRITE, OP_SENDMSG, OP_RECV, OP_READ, OP_RECVMSG, OP_RECV_TRUNC,
          OP_SEND_HUGE, OP_RECV_AGAIN };

struct step {
    enum op op;
    int fd;
    size_t len;      /* the enclave buffer's size                                  */
    unsigned seed;
    long ret;        /* out: the wrapper's result                                  */
    int msg_flags;   /* out: recvmsg's msg_flags                                   */
    bool content_ok; /* out: received bytes match the pattern                      */
};

static long e_send(struct step *s, unsigned char *buf) {
    fill(buf, s->len, s->seed);
    switch (s->op) {
    case OP_SEND:
        return eleos_sys_send(s->fd, buf, s->len, 0);
    case OP_WRITE:
        return eleos_sys_write(s->fd, buf, s->len);
    default: {
        /* Two pieces: the message is their concatenation. */
        struct iovec iov[2] = {{buf, 40000}, {buf + 40000, s->len - 40000}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        return eleos_sys_sendmsg(s->fd, &m, 0);
    }
    }
}

static long e_step(void *arg) {
    struct step *s = arg;
    unsigned char *buf = eleos_enclave_malloc(enc, s->len);
    if (!buf)
        return -ENOMEM;
    long r;
    switch (s->op) {
    case OP_SEND:
    case OP_WRITE:
    case OP_SENDMSG:
    case OP_SEND_HUGE:
        /* MSG_DONTWAIT: pieces of a split message would fill the send buffer and block. */
        r = s->op == OP_SEND_HUGE ? eleos_sys_send(s->fd, buf, s->len, MSG_DONTWAIT)
                                  : e_send(s, buf);
        break;
    case OP_RECV:
        r = eleos_sys_recv(s->fd, buf, s->len, 0);
        break;
    case OP_READ:
        r = eleos_sys_read(s->fd, buf, s->len);
        break;
    case OP_RECV_TRUNC:
        r = eleos_sys_recv(s->fd, buf, s->len, MSG_TRUNC);
        break;
    case OP_RECV_AGAIN:
        r = eleos_sys_recv(s->fd, buf, s->len, MSG_DONTWAIT);
        break;
    default: {
        size_t half = s->len / 2;
        struct iovec iov[2] = {{buf, half}, {buf + half, s->len - half}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        r = eleos_sys_recvmsg(s->fd, &m, 0);
        s->msg_flags = m.msg_flags;
        break;
    }
    }
    if (r > 0 && s->op != OP_SEND && s->op != OP_WRITE && s->op != OP_SENDMSG)
        s->content_ok = same(buf, (size_t)r < s->len ? (size_t)r : s->len, s->seed);
    eleos_enclave_free(enc, buf);
    s->ret = r;
    return 0;
}

static struct step run_step(enum op op, int fd, size_t len, unsigned seed) {
    struct step s = {.op = op, .fd = fd, .len = len, .seed = seed};
    long rv;
    REQUIRE(eleos_enclave_ecall(enc, e_step, &s, &rv) == 0 && rv == 0);
    return s;
}

static unsigned char hbuf[HUGE_LEN];

/* The host end receives exactly one message of MSG_LEN bytes with the pattern, then
 * nothing more. */
static void expect_one_message(int fd, unsigned seed) {
    ssize_t n = recv(fd, hbuf, sizeof hbuf, MSG_DONTWAIT);
    CHECK_EQ(n, MSG_LEN);
    CHECK(n > 0 && same(hbuf, (size_t)n, seed));
    CHECK_EQ(recv(fd, hbuf, sizeof hbuf, MSG_DONTWAIT), -1);
}

static void host_send(int fd, unsigned seed) {
    fill(hbuf, MSG_LEN, seed);
    REQUIRE(send(fd, hbuf, MSG_LEN, 0) == MSG_LEN);
}

static void one_type(int type) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) == 0);
    int e = sv[0], h = sv[1];
    /* Enclave sends, host receives: one message each way of sending. */
    static const enum op sends[] = {OP_SEND, OP_WRITE, OP_SENDMSG};
    for (unsigned i = 0; i < 3; i++) {
        struct step s = run_step(sends[i], e, MSG_LEN, i + 1);
        CHECK_EQ(s.ret, MSG_LEN);
        expect_one_message(h, i + 1);
    }
    /* Too large for the kernel: EMSGSIZE, and nothing (no part of it) arrives. */
    CHECK_EQ(run_step(OP_SEND_HUGE, e, HUGE_LEN, 0).ret, -EMSGSIZE);
    int pieces = 0;
    while (recv(h, hbuf, sizeof hbuf, MSG_DONTWAIT) >= 0)
        pieces++;
    CHECK_EQ(pieces, 0);
    /* Host sends, enclave receives the whole message into a buffer that holds it. */
    static const enum op recvs[] = {OP_RECV, OP_READ, OP_RECVMSG};
    for (unsigned i = 0; i < 3; i++) {
        host_send(h, 10 + i);
        struct step s = run_step(recvs[i], e, MSG_LEN, 10 + i);
        CHECK_EQ(s.ret, MSG_LEN);
        CHECK(s.content_ok);
        if (recvs[i] == OP_RECVMSG)
            CHECK_EQ(s.msg_flags & MSG_TRUNC, 0);
    }
    /* A buffer smaller than the message: the kernel's truncation, reported. */
    host_send(h, 20);
    struct step s = run_step(OP_RECVMSG, e, 70000, 20);
    CHECK_EQ(s.ret, 70000);
    CHECK(s.content_ok);
    CHECK(s.msg_flags & MSG_TRUNC);
    CHECK_EQ(run_step(OP_RECV_AGAIN, e, 16, 0).ret, -EAGAIN); /* the rest was discarded */
    /* MSG_TRUNC asks for the message's real length. */
    host_send(h, 21);
    s = run_step(OP_RECV_TRUNC, e, 10, 21);
    CHECK_EQ(s.ret, MSG_LEN);
    CHECK(s.content_ok);
    close(sv[0]);
    close(sv[1]);
}

static void run(bool exitless) {
    enc = rpc_test_enclave(0);
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = 1;
    pc.channels = 2;
    pool = rpc_test_pool(enc, &pc, NULL, 0, eleos_sys_host_register);
    cl = rpc_test_client(enc, pool, eleos_sys_init);
    eleos_sys_set_exitless(exitless);
    eleos_sys_stats_reset();
    eleos_enclave_stats_reset(enc);
    one_type(SOCK_DGRAM);
    one_type(SOCK_SEQPACKET);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(enc, &es);
    if (NO_SANITIZER_SYSCALLS) /* large messages need no exit either */
        CHECK_EQ(es.syscall_exits, 0);
    struct eleos_sys_stats ss;
    eleos_sys_stats(&ss);
    CHECK_EQ(ss.iago_len + ss.iago_errno + ss.iago_events + ss.iago_struct, 0);
    eleos_sys_set_exitless(true);
    rpc_test_client_destroy(enc, cl, eleos_sys_init);
    rpc_test_teardown(enc, pool);
}

static void test_exitless(void) {
    run(true);
}

static void test_exit_path(void) {
    run(false);
}

TEST_MAIN(TEST_CASE(test_exitless), TEST_CASE(test_exit_path))
