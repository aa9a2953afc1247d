/*
 * kvs_server.h — the server's shared state and the worker event loop (kvs_net.c), used by
 * kvs_main.c (host side: options, enclave, threads, signals).
 */
#ifndef ELEOS_KVS_SERVER_H
#define ELEOS_KVS_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvs_common.h"
#include "kvs_io.h"
#include "kvs_proto.h"
#include "kvs_store.h"

enum kvs_mode { KVS_MODE_NATIVE, KVS_MODE_SGX, KVS_MODE_ELEOS };

struct kvs_worker;
struct kvs_conn;

struct kvs_server {
    struct kvs_ctx ctx;               /* shared protocol context (hooks point back here)   */
    struct kvs_store *store;
    const struct kvs_alloc *alloc;    /* trusted heap: enclave heap in enclave modes       */
    const struct kvs_io_ops *io;
    int listen_fd;
    int stop_fd;                      /* read end of the stop pipe: readable = stop        */
    unsigned nworkers;
    struct kvs_worker *workers;
    unsigned maxconns;
    int64_t pid;
    _Atomic unsigned next_worker;     /* round-robin cursor for new connections            */
    _Atomic uint64_t curr_conns, total_conns, rejected_conns, conn_structs;
};

struct kvs_worker {
    struct kvs_server *srv;
    unsigned id;
    pthread_t thread;
    struct kvs_thread_stats stats;
    struct kvs_io_ctx io_ctx;
    int result;                       /* 0 or -errno when the loop ended                    */
    /* Connections are handed out round-robin (memcached's dispatch): the worker that
     * accepts one links it here and adds it to this worker's epoll set. lock protects the
     * three fields below; it is taken by the owner only to link/unlink and by an acceptor
     * to hand a connection over, so it is almost never contended. */
    pthread_mutex_t lock;
    int epfd;                         /* -1 until the loop has started, and after it ended */
    bool closed;                      /* the loop has ended: take no more connections       */
    struct kvs_conn *conns;
};

/* The worker's event loop: returns when the stop pipe becomes readable. Runs in enclave
 * mode in sgx/eleos modes (all of its memory comes from srv->alloc; its system calls go
 * through srv->io). Frees every connection it owns before returning. */
int kvs_worker_loop(struct kvs_worker *w);

/* Per connection: initial read size, and the output level above which the connection stops
 * reading until its client has drained replies (a pipelining client cannot make us buffer
 * without bound). */
#define KVS_READ_CHUNK (16u << 10)
#define KVS_WBUF_HIGH (4u << 20)
/* Events per epoll_wait: amortises the call (an exit in sgx mode) over a busy loop. */
#define KVS_EPOLL_BATCH 64
/* Accepts per listen-socket wakeup, so one worker does not hog a connection burst. */
#define KVS_ACCEPT_BATCH 16

#endif
