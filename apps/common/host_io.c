/*
 * host_io.c — a server's system calls in native mode (app_io.h): plain libc on the
 * caller's buffers. Also app_io_for, which picks the table for a mode.
 */
#include "app_io.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static int neg_errno(void) {
    return errno > 0 ? -errno : -EIO;
}

/* --- host: plain libc ------------------------------------------------------------------ */

static int host_accept(struct app_io_ctx *c, int lfd) {
    (void)c;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd < 0 ? neg_errno() : fd;
}
static ssize_t host_recv(struct app_io_ctx *c, int fd, void *buf, size_t size) {
    (void)c;
    ssize_t n = recv(fd, buf, size, 0);
    return n < 0 ? neg_errno() : n;
}
static ssize_t host_send(struct app_io_ctx *c, int fd, const void *buf, size_t size) {
    (void)c;
    ssize_t n = send(fd, buf, size, MSG_NOSIGNAL);
    return n < 0 ? neg_errno() : n;
}
static int host_close(struct app_io_ctx *c, int fd) {
    (void)c;
    return close(fd) < 0 ? neg_errno() : 0;
}
static int host_epoll_create(struct app_io_ctx *c) {
    (void)c;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? neg_errno() : fd;
}
static int host_epoll_ctl(struct app_io_ctx *c, int epfd, int op, int fd, uint32_t events,
                          uint64_t data) {
    (void)c;
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? neg_errno() : 0;
}
static int host_epoll_wait(struct app_io_ctx *c, int epfd, struct epoll_event *evs, int max,
                           int timeout_ms) {
    (void)c;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    return n < 0 ? neg_errno() : n;
}

const struct app_io_ops app_io_host_ops = {
    "host", host_accept, host_recv, host_send, host_close,
    host_epoll_create, host_epoll_ctl, host_epoll_wait,
};

const struct app_io_ops *app_io_for(bool enclave, bool rpc_on, bool blocking) {
    if (!enclave)
        return &app_io_host_ops;
    if (rpc_on)
        return blocking ? &app_io_rpc_blocking_ops : &app_io_rpc_ops;
    return &app_io_exit_ops;
}
