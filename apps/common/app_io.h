/*
 * app_io.h — a server's network system calls as a table, so one server loop runs in every
 * mode (eleos-kvs's event loop, eleos-pserver's connection loop):
 *
 *   app_io_host_ops      native mode: plain libc calls on the caller's buffers (host_io.c).
 *   app_io_exit_ops      enclave mode, RPC off: libc calls, each one traps and is a counted
 *                        exit. Buffers are marshalled through the thread's untrusted bounce
 *                        buffer first, as the SGX SDK's edger8r does for [in]/[out] buffers:
 *                        the host never reads or writes enclave memory (it may be paged out).
 *   app_io_rpc_ops       enclave mode, RPC on: the exitless wrappers of eleos/sys.h, for
 *                        non-blocking sockets (MSG_DONTWAIT: the RPC worker is never held).
 *   app_io_rpc_blocking_ops  the same for blocking sockets (a thread per connection).
 *
 * Functions return a count or 0, or -errno. ctx is the calling thread's struct app_io_ctx;
 * its bounce buffer is allocated by the enclave (app_io_ctx_init), so its address is the
 * enclave's own.
 */
#ifndef ELEOS_APP_IO_H
#define ELEOS_APP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

struct app_io_ctx {
    void *bounce;        /* untrusted memory (exit mode), NULL otherwise      */
    size_t bounce_size;
};

struct app_io_ops {
    const char *name;
    int (*accept)(struct app_io_ctx *c, int lfd); /* nonblocking + cloexec fd */
    ssize_t (*recv)(struct app_io_ctx *c, int fd, void *buf, size_t size);
    ssize_t (*send)(struct app_io_ctx *c, int fd, const void *buf, size_t size);
    int (*close)(struct app_io_ctx *c, int fd);
    int (*epoll_create)(struct app_io_ctx *c);
    int (*epoll_ctl)(struct app_io_ctx *c, int epfd, int op, int fd, uint32_t events,
                     uint64_t data);
    int (*epoll_wait)(struct app_io_ctx *c, int epfd, struct epoll_event *evs, int max,
                      int timeout_ms);
};

extern const struct app_io_ops app_io_host_ops;
extern const struct app_io_ops app_io_exit_ops;
extern const struct app_io_ops app_io_rpc_ops;
extern const struct app_io_ops app_io_rpc_blocking_ops;

/* The ops for a mode: host in native mode, exitless with RPC on, else the exit path. */
const struct app_io_ops *app_io_for(bool enclave, bool rpc_on, bool blocking);

/* Gives ctx the bounce buffer the exit path needs (nothing for the other ops). 0 or
 * -ENOMEM. Call from the side that will use it (inside the enclave in enclave modes). */
int app_io_ctx_init(struct app_io_ctx *ctx, const struct app_io_ops *ops);
void app_io_ctx_fini(struct app_io_ctx *ctx);

/* Bounce buffer per thread for the exit path: one read or write of up to this size. */
#define APP_IO_BOUNCE_SIZE (64u << 10)

#endif
