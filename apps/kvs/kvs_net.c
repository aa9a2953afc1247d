/*
 * kvs_net.c — the worker event loop (one per -t thread).
 *
 * Threads and data flow: every worker has its own epoll instance holding the shared
 * listening socket (EPOLLEXCLUSIVE, so one connection wakes one worker), the stop pipe and
 * its connections. The worker that accepts a connection hands it to the next worker in
 * round-robin order (memcached's dispatch; otherwise the first worker to wake takes a whole
 * burst of connections and the others idle): it links the connection into that worker's
 * list under the worker's lock and adds it to that worker's epoll set. From then on the
 * connection belongs to that worker alone, so its state needs no lock. Level-triggered: on readiness the loop reads once into the connection's
 * buffer, feeds kvs_proto, and writes the replies at once; only if the socket is full does
 * it wait for EPOLLOUT. A connection whose replies pile up (KVS_WBUF_HIGH) stops reading
 * until they drain.
 *
 * Trust boundary: in sgx/eleos modes this loop runs inside the enclave for the worker's
 * whole life (kvs_main.c ECALLs into it). All its memory is trusted (srv->alloc); every
 * system call goes through srv->io, which either traps (exit) or is exitless (RPC), and
 * whose results are validated there. The clock comes from clock_gettime, a vDSO call that
 * does not exit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kvs_server.h"

/* Message memcached sends to a connection over -c before closing it. */
static const char too_many_conns[] = "ERROR Too many open connections\r\n";

/* epoll data tags for the two non-connection descriptors (connections carry pointers,
 * which are never this small). */
#define TAG_LISTEN 1u
#define TAG_STOP 2u

struct kvs_conn {
    int fd;
    uint32_t events;          /* interest currently registered   */
    struct kvs_proto proto;
    struct kvs_buf rbuf;
    struct kvs_buf wbuf;
    size_t wpos;              /* bytes of wbuf already sent      */
    struct kvs_conn *prev, *next; /* owner's list, under owner->lock */
};

struct loop {
    struct kvs_worker *w;
    struct kvs_server *srv;
    const struct kvs_io_ops *io;
    struct kvs_io_ctx *ioc;
    int epfd;
};

static int64_t now_unix(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no exit */
    return ts.tv_sec;
}

static void conn_unlink_locked(struct kvs_worker *w, struct kvs_conn *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

/* Closes a connection of l's worker (only the owner closes its connections). */
static void conn_close(struct loop *l, struct kvs_conn *c) {
    int fd = c->fd;
    l->io->close(l->ioc, fd); /* also removes it from the epoll set */
    kvs_proto_fini(&c->proto);
    kvs_buf_fini(&c->rbuf);
    kvs_buf_fini(&c->wbuf);
    pthread_mutex_lock(&l->w->lock);
    conn_unlink_locked(l->w, c);
    pthread_mutex_unlock(&l->w->lock);
    kvs_free(l->srv->alloc, c);
    atomic_fetch_sub_explicit(&l->srv->curr_conns, 1, memory_order_relaxed);
    if (atomic_load_explicit(&l->srv->ctx.verbosity, memory_order_relaxed) > 1)
        fprintf(stderr, "<%d connection closed.\n", fd);
}

static void conn_new(struct loop *l, int fd) {
    struct kvs_server *srv = l->srv;
    uint64_t curr = atomic_fetch_add_explicit(&srv->curr_conns, 1, memory_order_relaxed);
    if (curr >= srv->maxconns) {
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&srv->rejected_conns, 1, memory_order_relaxed);
        (void)l->io->send(l->ioc, fd, too_many_conns, sizeof too_many_conns - 1);
        l->io->close(l->ioc, fd);
        return;
    }
    struct kvs_conn *c = kvs_malloc(srv->alloc, sizeof *c);
    if (!c) {
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        l->io->close(l->ioc, fd);
        return;
    }
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->events = EPOLLIN;
    kvs_proto_init(&c->proto, &srv->ctx, &l->w->stats);
    c->proto.out_limit = KVS_WBUF_HIGH;
    kvs_buf_init(&c->rbuf, srv->alloc);
    kvs_buf_init(&c->wbuf, srv->alloc);
    /* Hand it to the next running worker (this one is running, so one always is). The
     * connection is in the owner's list before its epoll set can report it. */
    unsigned n = srv->nworkers;
    unsigned start = atomic_fetch_add_explicit(&srv->next_worker, 1, memory_order_relaxed);
    bool placed = false, failed = false;
    for (unsigned k = 0; k < n && !placed && !failed; k++) {
        struct kvs_worker *t = &srv->workers[(start + k) % n];
        pthread_mutex_lock(&t->lock);
        if (!t->closed && t->epfd >= 0) {
            c->proto.stats = &t->stats;
            c->prev = NULL;
            c->next = t->conns;
            if (t->conns)
                t->conns->prev = c;
            t->conns = c;
            if (l->io->epoll_ctl(l->ioc, t->epfd, EPOLL_CTL_ADD, fd, c->events,
                                 (uint64_t)(uintptr_t)c)) {
                conn_unlink_locked(t, c);
                failed = true;
            } else {
                placed = true;
            }
        }
        pthread_mutex_unlock(&t->lock);
    }
    if (!placed) {
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        l->io->close(l->ioc, fd);
        kvs_free(srv->alloc, c);
        return;
    }
    atomic_fetch_add_explicit(&srv->total_conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->conn_structs, 1, memory_order_relaxed);
    if (atomic_load_explicit(&srv->ctx.verbosity, memory_order_relaxed) > 1)
        fprintf(stderr, "<%d new client connection\n", fd);
}

static void do_accept(struct loop *l) {
    for (int i = 0; i < KVS_ACCEPT_BATCH; i++) {
        int fd = l->io->accept(l->ioc, l->srv->listen_fd);
        if (fd < 0) {
            if (fd != -EAGAIN && fd != -EWOULDBLOCK && fd != -EINTR && fd != -ECONNABORTED)
                fprintf(stderr, "eleos-kvs: accept: %s\n", strerror(-fd));
            return;
        }
        conn_new(l, fd);
    }
}

/* Sends what is pending. Returns false if the connection died. */
static bool conn_flush(struct loop *l, struct kvs_conn *c) {
    while (c->wpos < c->wbuf.len) {
        ssize_t n = l->io->send(l->ioc, c->fd, c->wbuf.data + c->wpos, c->wbuf.len - c->wpos);
        if (n == -EAGAIN || n == -EWOULDBLOCK)
            break;
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return false;
        c->wpos += (size_t)n;
        kvs_stat_add(&l->w->stats.bytes_written, (uint64_t)n);
    }
    if (c->wpos == c->wbuf.len) {
        c->wbuf.len = c->wpos = 0;
        kvs_buf_shrink(&c->wbuf, KVS_READ_CHUNK * 4);
    }
    return true;
}

/* Registers the interest the connection's state calls for (only when it changes). */
static bool conn_update_events(struct loop *l, struct kvs_conn *c) {
    size_t pending = c->wbuf.len - c->wpos;
    uint32_t want = 0;
    if (pending)
        want |= EPOLLOUT;
    if (pending < KVS_WBUF_HIGH && !c->proto.close)
        want |= EPOLLIN;
    if (want == c->events)
        return true;
    c->events = want;
    return l->io->epoll_ctl(l->ioc, l->epfd, EPOLL_CTL_MOD, c->fd, want,
                            (uint64_t)(uintptr_t)c) == 0;
}

static void conn_event(struct loop *l, struct kvs_conn *c, uint32_t ev) {
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (kvs_buf_reserve(&c->rbuf, KVS_READ_CHUNK)) {
            conn_close(l, c);
            return;
        }
        ssize_t n = l->io->recv(l->ioc, c->fd, c->rbuf.data + c->rbuf.len,
                                c->rbuf.cap - c->rbuf.len);
        if (n == 0 || (n < 0 && n != -EAGAIN && n != -EWOULDBLOCK && n != -EINTR)) {
            conn_close(l, c); /* EOF or error: a half-received value is dropped */
            return;
        }
        if (n > 0) {
            c->rbuf.len += (size_t)n;
            kvs_stat_add(&l->w->stats.bytes_read, (uint64_t)n);
        }
    }
    /* Commands left unprocessed by a full output buffer are picked up on EPOLLOUT too. */
    if (c->rbuf.len && c->wbuf.len - c->wpos < KVS_WBUF_HIGH && !c->proto.close) {
        size_t used = kvs_proto_feed(&c->proto, c->rbuf.data, c->rbuf.len, &c->wbuf);
        kvs_buf_consume(&c->rbuf, used);
        kvs_buf_shrink(&c->rbuf, KVS_READ_CHUNK * 4);
        if (c->proto.abort) {
            conn_close(l, c);
            return;
        }
    }
    if (!conn_flush(l, c)) {
        conn_close(l, c);
        return;
    }
    if (c->proto.close && c->wpos == c->wbuf.len) {
        conn_close(l, c);
        return;
    }
    if (!conn_update_events(l, c))
        conn_close(l, c);
}

int kvs_worker_loop(struct kvs_worker *w) {
    struct loop l = {w, w->srv, w->srv->io, &w->io_ctx, -1};
    int r = l.io->epoll_create(l.ioc);
    if (r < 0)
        return r;
    l.epfd = r;
    pthread_mutex_lock(&w->lock);
    w->epfd = l.epfd;
    pthread_mutex_unlock(&w->lock);
    r = l.io->epoll_ctl(l.ioc, l.epfd, EPOLL_CTL_ADD, l.srv->listen_fd, EPOLLIN | EPOLLEXCLUSIVE,
                        TAG_LISTEN);
    if (!r)
        r = l.io->epoll_ctl(l.ioc, l.epfd, EPOLL_CTL_ADD, l.srv->stop_fd, EPOLLIN, TAG_STOP);
    struct epoll_event evs[KVS_EPOLL_BATCH];
    bool running = r == 0;
    while (running) {
        int n = l.io->epoll_wait(l.ioc, l.epfd, evs, KVS_EPOLL_BATCH, -1);
        if (n == -EINTR)
            continue;
        if (n < 0) {
            r = n;
            break;
        }
        /* Pairs with the unlock of a worker that handed us a connection: its writes to the
         * connection happen before we touch it (the kernel orders them too, invisibly to
         * race detectors). Uncontended: a few atomic instructions per batch. */
        pthread_mutex_lock(&w->lock);
        pthread_mutex_unlock(&w->lock);
        kvs_store_clock_set(l.srv->store, now_unix());
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_STOP)
                running = false;
            else if (tag == TAG_LISTEN)
                do_accept(&l);
            else
                conn_event(&l, (struct kvs_conn *)(uintptr_t)tag, evs[i].events);
        }
    }
    /* No connection can be handed to us after this; then close what we own. */
    pthread_mutex_lock(&w->lock);
    w->closed = true;
    w->epfd = -1;
    pthread_mutex_unlock(&w->lock);
    while (w->conns)
        conn_close(&l, w->conns);
    l.io->close(l.ioc, l.epfd);
    return r;
}
