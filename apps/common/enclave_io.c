/*
 * enclave_io.c — a server's system calls from inside the enclave: the exit path and the
 * exitless (RPC) path of app_io.h.
 *
 * Trust: everything the host returns is untrusted. The exit path checks each result before
 * use: a byte count never exceeds what was asked, epoll never reports more events than
 * asked, an errno is in range; the bounce buffer is read once, by copying.
 */
#include "app_io.h"

#include "eleos/enclave.h"
#include "eleos/sys.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int neg_errno(void) {
    return errno > 0 && errno <= ELEOS_SYS_ERRNO_MAX ? -errno : -EIO;
}

/* --- exit path: libc calls from enclave mode, buffers marshalled ------------------------ */

static ssize_t exit_recv(struct app_io_ctx *c, int fd, void *buf, size_t size) {
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

static ssize_t exit_send(struct app_io_ctx *c, int fd, const void *buf, size_t size) {
    if (size > c->bounce_size)
        size = c->bounce_size;
    memcpy(c->bounce, buf, size);
    ssize_t n = send(fd, c->bounce, size, MSG_NOSIGNAL);
    if (n < 0)
        return neg_errno();
    return (size_t)n > size ? -EIO : n;
}

static int exit_epoll_wait(struct app_io_ctx *c, int epfd, struct epoll_event *evs, int max,
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

/* accept, close and the epoll set-up carry no buffers the host writes back into the
 * enclave, so the exit path issues them as they are (each is one trapped exit). */
static int exit_accept(struct app_io_ctx *c, int lfd) {
    (void)c;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd < 0 ? neg_errno() : fd;
}
static int exit_close(struct app_io_ctx *c, int fd) {
    (void)c;
    return close(fd) < 0 ? neg_errno() : 0;
}
static int exit_epoll_create(struct app_io_ctx *c) {
    (void)c;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? neg_errno() : fd;
}
static int exit_epoll_ctl(struct app_io_ctx *c, int epfd, int op, int fd, uint32_t events,
                          uint64_t data) {
    (void)c;
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? neg_errno() : 0;
}

const struct app_io_ops app_io_exit_ops = {
    "exit", exit_accept, exit_recv, exit_send, exit_close,
    exit_epoll_create, exit_epoll_ctl, exit_epoll_wait,
};

int app_io_ctx_init(struct app_io_ctx *ctx, const struct app_io_ops *ops) {
    ctx->bounce = NULL;
    ctx->bounce_size = 0;
    if (ops != &app_io_exit_ops)
        return 0;
    /* Allocated here, inside the enclave: its address is ours, not one the host chose. */
    ctx->bounce = eleos_untrusted_alloc(APP_IO_BOUNCE_SIZE);
    if (!ctx->bounce)
        return -ENOMEM;
    ctx->bounce_size = APP_IO_BOUNCE_SIZE;
    return 0;
}

void app_io_ctx_fini(struct app_io_ctx *ctx) {
    if (ctx->bounce)
        eleos_untrusted_free(ctx->bounce, ctx->bounce_size);
    ctx->bounce = NULL;
    ctx->bounce_size = 0;
}

/* --- exitless: eleos/sys.h ------------------------------------------------------------- */
/*
 * The wrappers marshal through their own untrusted bounce buffers and validate results
 * (Iago checks), so buffers go in as they are.
 *
 * epoll_wait: a worker waiting for an idle network would tie up an RPC worker for as long
 * as it waits. So the loop first polls (timeout 0, exitless) a few times, and only if
 * nothing is ready blocks on the exit path: an exit costs little next to idleness, and a
 * busy server never gets there.
 *
 * recv/send pass MSG_DONTWAIT (the sockets are non-blocking anyway): it tells the wrappers
 * these calls cannot block, so the RPC worker running one stays counted awake and the other
 * server threads keep going exitless instead of falling back to exits.
 */

/* Zero-timeout polls before a blocking wait: a few RPC round trips (~1 us each) cover the
 * gap between requests of a loaded server. */
#define KVS_RPC_POLL_TRIES 8

static int rpc_accept(struct app_io_ctx *c, int lfd) {
    (void)c;
    return eleos_sys_accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
static ssize_t rpc_recv(struct app_io_ctx *c, int fd, void *buf, size_t size) {
    (void)c;
    return eleos_sys_recv(fd, buf, size, MSG_DONTWAIT);
}
static ssize_t rpc_send(struct app_io_ctx *c, int fd, const void *buf, size_t size) {
    (void)c;
    return eleos_sys_send(fd, buf, size, MSG_NOSIGNAL | MSG_DONTWAIT);
}
static int rpc_close(struct app_io_ctx *c, int fd) {
    (void)c;
    return eleos_sys_close(fd);
}
static int rpc_epoll_create(struct app_io_ctx *c) {
    (void)c;
    return eleos_sys_epoll_create1(EPOLL_CLOEXEC);
}
static int rpc_epoll_ctl(struct app_io_ctx *c, int epfd, int op, int fd, uint32_t events,
                         uint64_t data) {
    (void)c;
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return eleos_sys_epoll_ctl(epfd, op, fd, &ev);
}
static int rpc_epoll_wait(struct app_io_ctx *c, int epfd, struct epoll_event *evs, int max,
                          int timeout_ms) {
    (void)c;
    for (int i = 0; i < KVS_RPC_POLL_TRIES; i++) {
        int n = eleos_sys_epoll_wait(epfd, evs, max, 0);
        if (n != 0 || timeout_ms == 0)
            return n;
    }
    enum eleos_sys_mode prev = eleos_sys_thread_mode(ELEOS_SYS_MODE_EXIT);
    int n = eleos_sys_epoll_wait(epfd, evs, max, timeout_ms);
    eleos_sys_thread_mode(prev);
    return n;
}

const struct app_io_ops app_io_rpc_ops = {
    "rpc", rpc_accept, rpc_recv, rpc_send, rpc_close,
    rpc_epoll_create, rpc_epoll_ctl, rpc_epoll_wait,
};

/* Blocking sockets (a thread per connection): no MSG_DONTWAIT, so a call may hold an RPC
 * worker while it waits, as the app asked. */
static ssize_t rpcb_recv(struct app_io_ctx *c, int fd, void *buf, size_t size) {
    (void)c;
    return eleos_sys_recv(fd, buf, size, 0);
}
static ssize_t rpcb_send(struct app_io_ctx *c, int fd, const void *buf, size_t size) {
    (void)c;
    return eleos_sys_send(fd, buf, size, MSG_NOSIGNAL);
}

const struct app_io_ops app_io_rpc_blocking_ops = {
    "exitless rpc", rpc_accept, rpcb_recv, rpcb_send, rpc_close,
    rpc_epoll_create, rpc_epoll_ctl, rpc_epoll_wait,
};
