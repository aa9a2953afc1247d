/*
 * test_sys_basic — every exitless system-call wrapper against real descriptors (pipe, file,
 * TCP and UDP loopback, epoll, eventfd), from enclave mode, on the exitless path and on the
 * exit path. Enclave code must cause no syscall exit at all on the exitless path.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "eleos/sys.h"
#include "harness.h"
#include "rpc_testutil.h"

static struct eleos_enclave *enc;
static struct eleos_rpc_pool *pool;
static struct eleos_rpc_client *cl;


static char path[64];

/* Runs symlink(2) in host mode (the wrappers have no symlink; the test plays the host). */
struct sl {
    const char *target, *link;
};
static long host_symlink(void *arg) {
    struct sl *x = arg;
    return symlink(x->target, x->link) == 0 ? 0 : -errno;
}
static int symlink_for_test(const char *target, const char *link) {
    struct sl x = {target, link};
    return (int)eleos_enclave_ocall(host_symlink, &x);
}

static void files(void) {
    enum { BIG = 200000 };
    static char out[BIG], in[BIG];
    for (int i = 0; i < BIG; i++)
        out[i] = (char)(i * 7 + 3);
    int fd = eleos_sys_openat(AT_FDCWD, path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    E_CHECK(fd >= 0);
    /* Larger than the bounce buffer: chunked. */
    E_CHECK(eleos_sys_write(fd, out, BIG) == BIG);
    E_CHECK(eleos_sys_fsync(fd) == 0);
    struct stat st;
    E_CHECK(eleos_sys_fstat(fd, &st) == 0 && st.st_size == BIG && S_ISREG(st.st_mode));
    E_CHECK(eleos_sys_pread(fd, in, BIG, 0) == BIG && memcmp(in, out, BIG) == 0);
    E_CHECK(eleos_sys_lseek(fd, 100, SEEK_SET) == 100);
    ssize_t n = eleos_sys_read(fd, in, BIG); /* one bounce buffer's worth at most */
    E_CHECK(n > 0 && n < BIG && memcmp(in, out + 100, (size_t)n) == 0);
    E_CHECK(eleos_sys_pwrite(fd, "hello", 5, 10) == 5);
    char a[3], b[4];
    struct iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
    E_CHECK(eleos_sys_lseek(fd, 8, SEEK_SET) == 8);
    E_CHECK(eleos_sys_readv(fd, iov, 2) == 7);
    E_CHECK(memcmp(a, out + 8, 2) == 0 && a[2] == 'h' && memcmp(b, "ello", 4) == 0);
    struct iovec wv[2] = {{"ab", 2}, {"cde", 3}};
    E_CHECK(eleos_sys_lseek(fd, 0, SEEK_SET) == 0);
    E_CHECK(eleos_sys_writev(fd, wv, 2) == 5);
    E_CHECK(eleos_sys_pread(fd, in, 5, 0) == 5 && memcmp(in, "abcde", 5) == 0);
    E_CHECK(eleos_sys_ftruncate(fd, 3) == 0);
    E_CHECK(eleos_sys_fstat(fd, &st) == 0 && st.st_size == 3);
    E_CHECK(eleos_sys_lseek(fd, 0, SEEK_END) == 3);
    E_CHECK(eleos_sys_close(fd) == 0);
    E_CHECK(eleos_sys_close(fd) == -EBADF);
    E_CHECK(eleos_sys_unlink(path) == 0);
    E_CHECK(eleos_sys_openat(AT_FDCWD, path, O_RDONLY, 0) == -ENOENT);
}

static void pipes_and_events(void) {
    int p[2];
    E_CHECK(eleos_sys_pipe2(p, O_CLOEXEC) == 0);
    int ep = eleos_sys_epoll_create1(EPOLL_CLOEXEC);
    E_CHECK(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 77};
    E_CHECK(eleos_sys_epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    struct epoll_event got[4];
    E_CHECK(eleos_sys_epoll_wait(ep, got, 4, 0) == 0);
    E_CHECK(eleos_sys_write(p[1], "xyz", 3) == 3);
    E_CHECK(eleos_sys_epoll_wait(ep, got, 4, 1000) == 1 && got[0].data.u64 == 77);
    char c[8];
    E_CHECK(eleos_sys_read(p[0], c, sizeof c) == 3 && memcmp(c, "xyz", 3) == 0);
    int efd = eleos_sys_eventfd(5, EFD_NONBLOCK);
    E_CHECK(efd >= 0);
    uint64_t v = 0;
    E_CHECK(eleos_sys_read(efd, &v, sizeof v) == 8 && v == 5);
    E_CHECK(eleos_sys_read(efd, &v, sizeof v) == -EAGAIN);
    E_CHECK(eleos_sys_epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL) == 0);
    E_CHECK(eleos_sys_epoll_wait(ep, got, 0, 0) == -EINVAL);
    E_CHECK(eleos_sys_close(efd) == 0 && eleos_sys_close(ep) == 0);
    E_CHECK(eleos_sys_close(p[0]) == 0 && eleos_sys_close(p[1]) == 0);
    struct timespec ts = {0, 1000000}, rem;
    E_CHECK(eleos_sys_nanosleep(&ts, &rem) == 0);
    struct timespec bad = {0, 1000000000L};
    E_CHECK(eleos_sys_nanosleep(&bad, NULL) == -EINVAL);
    struct timespec now;
    E_CHECK(eleos_sys_clock_gettime(CLOCK_MONOTONIC, &now) == 0 && now.tv_nsec < 1000000000L);
    E_CHECK(eleos_sys_clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now) == 0);
    E_CHECK(eleos_sys_getppid() > 0 && eleos_sys_getpid() > 0);
}

static void sockets(void) {
    int ls = eleos_sys_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    E_CHECK(ls >= 0);
    int one = 1;
    E_CHECK(eleos_sys_setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    E_CHECK(eleos_sys_bind(ls, (struct sockaddr *)&sa, sizeof sa) == 0);
    E_CHECK(eleos_sys_listen(ls, 8) == 0);
    socklen_t len = sizeof sa;
    E_CHECK(eleos_sys_getsockname(ls, (struct sockaddr *)&sa, &len) == 0 && len == sizeof sa &&
            sa.sin_port != 0);
    int val = 0;
    socklen_t vlen = sizeof val;
    E_CHECK(eleos_sys_getsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &val, &vlen) == 0 && val == 1 &&
            vlen == sizeof val);
    int c = eleos_sys_socket(AF_INET, SOCK_STREAM, 0);
    E_CHECK(eleos_sys_connect(c, (struct sockaddr *)&sa, sizeof sa) == 0);
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int s = eleos_sys_accept4(ls, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    E_CHECK(s >= 0 && plen == sizeof peer && peer.sin_family == AF_INET);
    plen = sizeof peer;
    E_CHECK(eleos_sys_getpeername(c, (struct sockaddr *)&peer, &plen) == 0 &&
            peer.sin_port == sa.sin_port);
    E_CHECK(eleos_sys_send(c, "ping", 4, 0) == 4);
    char buf[16];
    E_CHECK(eleos_sys_recv(s, buf, sizeof buf, 0) == 4 && memcmp(buf, "ping", 4) == 0);
    char h1[2] = "ab", h2[3] = "cde";
    struct iovec iov[2] = {{h1, 2}, {h2, 3}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    E_CHECK(eleos_sys_sendmsg(s, &m, 0) == 5);
    char r1[1], r2[8];
    struct iovec riov[2] = {{r1, 1}, {r2, 8}};
    struct msghdr rm = {.msg_iov = riov, .msg_iovlen = 2};
    E_CHECK(eleos_sys_recvmsg(c, &rm, 0) == 5 && r1[0] == 'a' && memcmp(r2, "bcde", 4) == 0);
    E_CHECK(eleos_sys_shutdown(c, SHUT_WR) == 0);
    E_CHECK(eleos_sys_recv(s, buf, sizeof buf, 0) == 0);
    E_CHECK(eleos_sys_close(s) == 0 && eleos_sys_close(c) == 0 && eleos_sys_close(ls) == 0);
    /* UDP with addresses. */
    int u1 = eleos_sys_socket(AF_INET, SOCK_DGRAM, 0), u2 = eleos_sys_socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    E_CHECK(eleos_sys_bind(u1, (struct sockaddr *)&ua, sizeof ua) == 0);
    len = sizeof ua;
    E_CHECK(eleos_sys_getsockname(u1, (struct sockaddr *)&ua, &len) == 0);
    E_CHECK(eleos_sys_sendto(u2, "dgram", 5, 0, (struct sockaddr *)&ua, sizeof ua) == 5);
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    E_CHECK(eleos_sys_recvfrom(u1, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen) == 5 &&
            flen == sizeof from && from.sin_family == AF_INET && memcmp(buf, "dgram", 5) == 0);
    E_CHECK(eleos_sys_close(u1) == 0 && eleos_sys_close(u2) == 0);
}

/* fcntl, dup/dup2/dup3, poll. */
static void descriptors(void) {
    int p[2];
    E_CHECK(eleos_sys_pipe2(p, 0) == 0);
    E_CHECK(eleos_sys_fcntl(p[0], F_GETFD, 0) == 0);
    E_CHECK(eleos_sys_fcntl(p[0], F_SETFD, FD_CLOEXEC) == 0);
    E_CHECK(eleos_sys_fcntl(p[0], F_GETFD, 0) == FD_CLOEXEC);
    int fl = eleos_sys_fcntl(p[0], F_GETFL, 0);
    E_CHECK(fl >= 0 && (fl & O_ACCMODE) == O_RDONLY && !(fl & O_NONBLOCK));
    E_CHECK(eleos_sys_fcntl(p[0], F_SETFL, fl | O_NONBLOCK) == 0);
    E_CHECK(eleos_sys_fcntl(p[0], F_GETFL, 0) & O_NONBLOCK);
    E_CHECK(eleos_sys_fcntl(p[0], F_SETLK, 0) == -EINVAL); /* not offered */
    E_CHECK(eleos_sys_fcntl(p[0], F_DUPFD, -1) == -EINVAL);
    int d = eleos_sys_fcntl(p[1], F_DUPFD_CLOEXEC, 100);
    E_CHECK(d >= 100 && eleos_sys_fcntl(d, F_GETFD, 0) == FD_CLOEXEC);
    int d2 = eleos_sys_dup(p[1]);
    E_CHECK(d2 >= 0 && d2 != p[1]);
    E_CHECK(eleos_sys_dup3(p[1], d2, O_CLOEXEC) == d2);
    E_CHECK(eleos_sys_fcntl(d2, F_GETFD, 0) == FD_CLOEXEC);
    E_CHECK(eleos_sys_dup3(p[1], p[1], 0) == -EINVAL);
    E_CHECK(eleos_sys_dup2(p[1], p[1]) == p[1]);
    E_CHECK(eleos_sys_dup2(d2, d2) == d2);
    E_CHECK(eleos_sys_dup(-1) == -EBADF);
    /* poll: nothing to read yet, the write end writable, a negative fd skipped. */
    struct pollfd pf[3] = {{p[0], POLLIN, 77}, {d, POLLOUT, 77}, {-1, POLLIN, 77}};
    E_CHECK(eleos_sys_poll(pf, 3, 0) == 1);
    E_CHECK(pf[0].revents == 0 && pf[1].revents == POLLOUT && pf[2].revents == 0);
    E_CHECK(eleos_sys_write(d2, "x", 1) == 1);
    E_CHECK(eleos_sys_poll(pf, 1, 1000) == 1 && pf[0].revents == POLLIN);
    char c;
    E_CHECK(eleos_sys_read(p[0], &c, 1) == 1 && c == 'x');
    E_CHECK(eleos_sys_close(d) == 0 && eleos_sys_close(d2) == 0 && eleos_sys_close(p[1]) == 0);
    /* Every writer gone: the read end reports hang-up; a closed fd reports POLLNVAL. */
    struct pollfd hup[2] = {{p[0], POLLIN, 0}, {d, POLLIN, 0}};
    E_CHECK(eleos_sys_poll(hup, 2, 0) == 2);
    E_CHECK((hup[0].revents & POLLHUP) && hup[1].revents == POLLNVAL);
    E_CHECK(eleos_sys_close(p[0]) == 0);
    E_CHECK(eleos_sys_poll(NULL, 1, 0) == -EFAULT);
    E_CHECK(eleos_sys_poll(NULL, 0, 0) == 0);
}

/* fstatat/stat/lstat, mkdirat, renameat, getrandom. */
static void paths_and_random(void) {
    char dir[80], a[96], b[96], link[96];
    snprintf(dir, sizeof dir, "%s.d", path);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(link, sizeof link, "%s/l", dir);
    E_CHECK(eleos_sys_mkdirat(AT_FDCWD, dir, 0700) == 0);
    E_CHECK(eleos_sys_mkdirat(AT_FDCWD, dir, 0700) == -EEXIST);
    struct stat st;
    E_CHECK(eleos_sys_stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    int fd = eleos_sys_openat(AT_FDCWD, a, O_WRONLY | O_CREAT, 0600);
    E_CHECK(fd >= 0 && eleos_sys_write(fd, "12345", 5) == 5 && eleos_sys_close(fd) == 0);
    E_CHECK(eleos_sys_renameat(AT_FDCWD, a, AT_FDCWD, b) == 0);
    E_CHECK(eleos_sys_stat(a, &st) == -ENOENT);
    E_CHECK(eleos_sys_stat(b, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 5);
    int dfd = eleos_sys_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
    E_CHECK(dfd >= 0);
    E_CHECK(eleos_sys_fstatat(dfd, "b", &st, 0) == 0 && st.st_size == 5);
    E_CHECK(eleos_sys_fstatat(dfd, "", &st, AT_EMPTY_PATH) == 0 && S_ISDIR(st.st_mode));
    E_CHECK(eleos_sys_fstatat(dfd, "b", &st, 0x8000000) == -EINVAL);
    E_CHECK(eleos_sys_renameat(dfd, "b", dfd, "a") == 0);
    E_CHECK(eleos_sys_fstatat(dfd, "a", &st, 0) == 0);
    /* A symbolic link: stat follows it, lstat does not (made by the test's host side). */
    E_CHECK(symlink_for_test(a, link) == 0);
    E_CHECK(eleos_sys_stat(link, &st) == 0 && S_ISREG(st.st_mode));
    E_CHECK(eleos_sys_lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    E_CHECK(eleos_sys_stat(NULL, &st) == -EFAULT);
    E_CHECK(eleos_sys_unlink(link) == 0 && eleos_sys_unlink(a) == 0 && eleos_sys_close(dfd) == 0);
    E_CHECK(eleos_sys_renameat(AT_FDCWD, a, AT_FDCWD, b) == -ENOENT);
    unsigned char r1[64], r2[64];
    memset(r1, 0, sizeof r1);
    memset(r2, 0, sizeof r2);
    E_CHECK(eleos_sys_getrandom(r1, sizeof r1, 0) == 64);
    E_CHECK(eleos_sys_getrandom(r2, sizeof r2, GRND_NONBLOCK) == 64);
    E_CHECK(memcmp(r1, r2, sizeof r1) != 0);
    E_CHECK(eleos_sys_getrandom(r1, 0, 0) == 0);
    E_CHECK(eleos_sys_getrandom(r1, 8, 0x100) == -EINVAL);
    static unsigned char big[100000];
    ssize_t n = eleos_sys_getrandom(big, sizeof big, 0); /* one bounce buffer's worth */
    E_CHECK(n > 0 && n < (ssize_t)sizeof big);
}

static long e_all(void *arg) {
    (void)arg;
    eleos_sys_init(cl);
    files();
    pipes_and_events();
    sockets();
    descriptors();
    paths_and_random();
    return 0;
}

static void run(bool exitless) {
    enc = rpc_test_enclave(0);
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = 2;
    pc.channels = 4;
    pool = rpc_test_pool(enc, &pc, NULL, 0, eleos_sys_host_register);
    snprintf(path, sizeof path, "/tmp/eleos-sys-test-%d", (int)getpid());
    cl = rpc_test_client(enc, pool, NULL);
    long rv;
    eleos_sys_set_exitless(exitless);
    eleos_enclave_stats_reset(enc);
    e_fails = e_fail_line = 0;
    REQUIRE(eleos_enclave_ecall(enc, e_all, NULL, &rv) == 0);
    if (e_fails)
        fprintf(stderr, "first enclave-side failure at line %d (%d failures)\n", e_fail_line,
                e_fails);
    CHECK_EQ(e_fails, 0);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(enc, &es);
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(cl, &cs);
    if (NO_SANITIZER_SYSCALLS) /* enclave code itself never made a system call */
        CHECK_EQ(es.syscall_exits, 0);
    if (exitless)
        CHECK_EQ(cs.exitless + cs.fallbacks, cs.calls);
    else
        CHECK_EQ(cs.exit_calls, cs.calls);
    struct eleos_sys_stats ss;
    eleos_sys_stats(&ss);
    CHECK_EQ(ss.iago_len + ss.iago_errno + ss.iago_events + ss.iago_struct, 0);
    eleos_sys_set_exitless(true);
    char dir[80];
    snprintf(dir, sizeof dir, "%s.d", path);
    rmdir(dir);
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
