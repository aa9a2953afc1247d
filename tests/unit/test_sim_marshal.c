/*
 * The exit path's marshalling: system calls made in enclave mode whose pointer arguments
 * (socket addresses, address lengths, msghdr, iovecs) lie on evicted enclave pages must
 * behave as the kernel does natively, not fail with EFAULT; and a message larger than the
 * marshalling buffer goes whole, as natively.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sim_testutil.h"

#define PAGE 4096
#define BIG 300000

static struct eleos_enclave *e;

/* A buffer of n bytes on its own enclave pages, filled with c and evicted. */
static void *evicted(size_t n, int c) {
    size_t pages = (n + PAGE - 1) / PAGE;
    uint8_t *p = eleos_enclave_aligned_alloc(e, PAGE, pages * PAGE);
    REQUIRE(p);
    memset(p, c, pages * PAGE);
    for (size_t i = 0; i < pages; i++)
        REQUIRE(eleos_enclave_evict_page(e, p + i * PAGE) == 0);
    return p;
}

static long ecall(eleos_enclave_fn fn, void *arg) {
    long ret = -1;
    REQUIRE(eleos_enclave_ecall(e, fn, arg, &ret) == 0);
    return ret;
}

struct io {
    int fd;
    void *buf;
    size_t len;
    struct sockaddr_in *addr;
    socklen_t *alen;
    struct msghdr *msg;
};

static long do_recvfrom(void *arg) {
    struct io *io = arg;
    return recvfrom(io->fd, io->buf, io->len, 0, (struct sockaddr *)io->addr, io->alen);
}

static long do_accept(void *arg) {
    struct io *io = arg;
    return accept4(io->fd, (struct sockaddr *)io->addr, io->alen, SOCK_CLOEXEC);
}

static long do_send(void *arg) {
    struct io *io = arg;
    long r = send(io->fd, io->buf, io->len, 0);
    return r < 0 ? -errno : r;
}

static long do_recvmsg(void *arg) {
    struct io *io = arg;
    return recvmsg(io->fd, io->msg, 0);
}

static int udp_bound(struct sockaddr_in *sa) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof *sa;
    REQUIRE(bind(fd, (struct sockaddr *)sa, l) == 0 && getsockname(fd, (struct sockaddr *)sa, &l) == 0);
    return fd;
}

static void test_recvfrom_address_evicted(void) {
    struct sockaddr_in ra, sa;
    int r = udp_bound(&ra), s = udp_bound(&sa);
    REQUIRE(sendto(s, "hello", 5, 0, (struct sockaddr *)&ra, sizeof ra) == 5);
    struct io io = {r, evicted(64, 0), 64, evicted(sizeof sa, 0), evicted(sizeof(socklen_t), 0), NULL};
    *io.alen = sizeof sa;
    REQUIRE(eleos_enclave_evict_page(e, io.alen) == 0);
    CHECK_EQ(ecall(do_recvfrom, &io), 5);
    CHECK(memcmp(io.buf, "hello", 5) == 0);
    CHECK_EQ(*io.alen, sizeof sa);
    CHECK_EQ(io.addr->sin_port, sa.sin_port);
    close(r);
    close(s);
}

static void test_accept_address_evicted(void) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof la;
    REQUIRE(bind(l, (struct sockaddr *)&la, len) == 0 && listen(l, 4) == 0 &&
            getsockname(l, (struct sockaddr *)&la, &len) == 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(connect(c, (struct sockaddr *)&la, sizeof la) == 0);
    struct io io = {l, NULL, 0, evicted(sizeof la, 0), evicted(sizeof(socklen_t), 0), NULL};
    *io.alen = sizeof la;
    REQUIRE(eleos_enclave_evict_page(e, io.alen) == 0);
    long fd = ecall(do_accept, &io);
    CHECK(fd >= 0);
    CHECK_EQ(*io.alen, sizeof la);
    CHECK_EQ(io.addr->sin_family, AF_INET);
    if (fd >= 0)
        close((int)fd);
    close(c);
    close(l);
}

/* A 300,000-byte message: whatever the kernel does natively, the exit path does too. */
static void big_message(int type) {
    int sv[2], big = 1 << 21;
    REQUIRE(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) == 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    static char native[BIG], got[BIG + 1];
    memset(native, 'n', BIG);
    long want = send(sv[0], native, BIG, 0);
    want = want < 0 ? -errno : want;
    if (want > 0)
        REQUIRE(recv(sv[1], got, sizeof got, 0) == want);
    struct io io = {sv[0], evicted(BIG, 'x'), BIG, NULL, NULL, NULL};
    CHECK_EQ(ecall(do_send, &io), want);
    if (want > 0) {
        CHECK_EQ(recv(sv[1], got, sizeof got, 0), BIG); /* one message, whole */
        CHECK(got[0] == 'x' && got[BIG - 1] == 'x');
    }
    close(sv[0]);
    close(sv[1]);
}

static void test_big_datagram_whole(void) {
    big_message(SOCK_DGRAM);
    big_message(SOCK_SEQPACKET);
}

static void test_recvmsg_evicted(void) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
    REQUIRE(send(sv[1], "abcdefgh", 8, 0) == 8);
    struct msghdr *m = eleos_enclave_aligned_alloc(e, PAGE, PAGE);
    struct iovec *v = eleos_enclave_aligned_alloc(e, PAGE, PAGE);
    char *a = evicted(3, 0), *b = evicted(16, 0);
    REQUIRE(m && v);
    v[0] = (struct iovec){a, 3};
    v[1] = (struct iovec){b, 16};
    *m = (struct msghdr){.msg_iov = v, .msg_iovlen = 2};
    REQUIRE(eleos_enclave_evict_page(e, m) == 0 && eleos_enclave_evict_page(e, v) == 0);
    struct io io = {sv[0], NULL, 0, NULL, NULL, m};
    CHECK_EQ(ecall(do_recvmsg, &io), 8);
    CHECK(memcmp(a, "abc", 3) == 0 && memcmp(b, "defgh", 5) == 0);
    CHECK_EQ(m->msg_flags, 0);
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 4 * MiB);
    e = sim_test_create(&cfg);
    static const struct harness_case cases[] = {
        TEST_CASE(test_recvfrom_address_evicted), TEST_CASE(test_accept_address_evicted),
        TEST_CASE(test_big_datagram_whole), TEST_CASE(test_recvmsg_evicted)};
    int r = harness_run(__FILE__, cases, sizeof cases / sizeof cases[0]);
    eleos_enclave_destroy(e);
    return r;
}
