/*
 * kvs_io.c — the event loop's system calls: host (native), exit path and exitless (RPC).
 *
 * Trust: in enclave modes everything the host returns is untrusted. The exit path checks
 * each result before use: a byte count never exceeds what was asked, epoll never reports
 * more events than asked, an errno is in range; the bounce buffer is read once, by copying.
 */
#include "kvs_io.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Largest errno the kernel returns (MAX_ERRNO): a "result" beyond it is a host lie. */
#define KVS_MAX_ERRNO 4095

static int neg_errno(void) {
    return errno > 0 && errno <= KVS_MAX_ERRNO ? -errno : -EIO;
}

/* --- host: plain libc ------------------------------------------------------------------ */

static int host_accept(struct kvs_io_ctx *c, int lfd) {
    (void)c;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd < 0 ? neg_errno() : fd;
}
static ssize_t host_recv(struct kvs_io_ctx *c, int fd, void *buf, size_t size) {
    (void)c;
    ssize_t n = recv(fd, buf, size, 0);
    return n < 0 ? neg_errno() : n;
}
static ssize_t host_send(struct kvs_io_ctx *c, int fd, const void *buf, size_t size) {
    (void)c;
    ssize_t n = send(fd, buf, size, MSG_NOSIGNAL);
    return n < 0 ? neg_errno() : n;
}
static int host_close(struct kvs_io_ctx *c, int fd) {
    (void)c;
    return close(fd) < 0 ? neg_errno() : 0;
}
static int host_epoll_create(struct kvs_io_ctx *c) {
    (void)c;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? neg_errno() : fd;
}
static int host_epoll_ctl(struct kvs_io_ctx *c, int epfd, int op, int fd, uint32_t events,
                          uint64_t data) {
    (void)c;
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? neg_errno() : 0;
}
static int host_epoll_wait(struct kvs_io_ctx *c, int epfd, struct epoll_event *evs, int max,
                           int timeout_ms) {
    (void)c;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    return n < 0 ? neg_errno() : n;
}

const struct kvs_io_ops kvs_io_host_ops = {
    "host", host_accept, host_recv, host_send, host_close,
    host_epoll_create, host_epoll_ctl, host_epoll_wait,
};

/* --- exit path: libc calls from enclave mode, buffers marshalled ------------------------ */

static ssize_t exit_recv(struct kvs_io_ctx *c, int fd, void *buf, size_t size) {
    if (size > c->bounce_size)
        size = c->bounce_size;
    ssize_t n = recv(fd, c->bounce, size, 0);
    if (n < 0)
        return neg_errno();
    if ((size_t)n > size)
        return -EIO; /* Iago: more than asked */
    memcpy(buf, c->bounce, (size_t)n);
    return n;
}

static ssize_t exit_send(struct kvs_io_ctx *c, int fd, const void *buf, size_t size) {
    if (size > c->bounce_size)
        size = c->bounce_size;
    memcpy(c->bounce, buf, size);
    ssize_t n = send(fd, c->bounce, size, MSG_NOSIGNAL);
    if (n < 0)
        return neg_errno();
    return (size_t)n > size ? -EIO : n;
}

static int exit_epoll_wait(struct kvs_io_ctx *c, int epfd, struct epoll_event *evs, int max,
                           int timeout_ms) {
    size_t cap = c->bounce_size / sizeof *evs;
    if ((size_t)max > cap)
        max = (int)cap;
    struct epoll_event *hev = c->bounce;
    int n = epoll_wait(epfd, hev, max, timeout_ms);
    if (n < 0)
        return neg_errno();
    if (n > max)
        return -EIO;
    memcpy(evs, hev, (size_t)n * sizeof *evs);
    return n;
}

/* accept, close and epoll_ctl carry no buffers the host writes back into the enclave, so
 * the exit path issues them as they are (each is one trapped exit). */
const struct kvs_io_ops kvs_io_exit_ops = {
    "exit", host_accept, exit_recv, exit_send, host_close,
    host_epoll_create, host_epoll_ctl, exit_epoll_wait,
};

/* --- exitless: eleos/sys.h ---------------------------------------------------------------- */

#if defined(KVS_HAVE_ELEOS_SYS)
#include "kvs_io_rpc.inc"
#else
/* This build has no exitless system-call wrappers: --rpc on is refused at start-up. */
const struct kvs_io_ops *const kvs_io_rpc_ops = NULL;
#endif
