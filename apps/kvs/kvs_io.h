/*
 * kvs_io.h — the event loop's system calls, as a table, so one loop runs in every mode:
 *
 *   kvs_io_host_ops     native mode: plain libc calls on the caller's buffers.
 *   kvs_io_exit_ops     enclave mode, RPC off: libc calls, each one traps and is a counted
 *                       exit. Buffers are marshalled through the worker's untrusted bounce
 *                       buffer first, as the SGX SDK's edger8r does for [in]/[out] buffers:
 *                       the host never reads or writes enclave memory (it may be paged out).
 *   kvs_io_rpc_ops      enclave mode, RPC on: the exitless wrappers of eleos/sys.h.
 *
 * Functions return a count or 0, or -errno. ctx is the worker's struct kvs_io_ctx.
 */
#ifndef ELEOS_KVS_IO_H
#define ELEOS_KVS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

struct kvs_io_ctx {
    void *bounce;        /* untrusted memory (exit mode), NULL otherwise      */
    size_t bounce_size;
};

struct kvs_io_ops {
    const char *name;
    int (*accept)(struct kvs_io_ctx *c, int lfd); /* nonblocking + cloexec fd */
    ssize_t (*recv)(struct kvs_io_ctx *c, int fd, void *buf, size_t size);
    ssize_t (*send)(struct kvs_io_ctx *c, int fd, const void *buf, size_t size);
    int (*close)(struct kvs_io_ctx *c, int fd);
    int (*epoll_create)(struct kvs_io_ctx *c);
    int (*epoll_ctl)(struct kvs_io_ctx *c, int epfd, int op, int fd, uint32_t events,
                     uint64_t data);
    int (*epoll_wait)(struct kvs_io_ctx *c, int epfd, struct epoll_event *evs, int max,
                      int timeout_ms);
};

extern const struct kvs_io_ops kvs_io_host_ops;
extern const struct kvs_io_ops kvs_io_exit_ops;
extern const struct kvs_io_ops kvs_io_rpc_ops;

/* Bounce buffer per worker for the exit path: one read or write of up to this size. */
#define KVS_IO_BOUNCE_SIZE (64u << 10)

#endif
