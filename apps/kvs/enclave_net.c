/*
 * enclave_net.c — the worker event loop (one per -t thread).
 *
 * Threads and data flow: every worker has its own epoll instance holding the shared
 * listening socket (EPOLLEXCLUSIVE, so one connection wakes one worker), the stop pipe and
 * its connections. The worker that accepts a connection hands it to the next worker in
 * round-robin order (memcached's dispatch): it publishes the connection in the connection
 * table with that worker as owner and adds it to that worker's epoll set. From then on the
 * connection belongs to that worker alone, so its state needs no lock. Level-triggered: on
 * readiness the loop reads once, feeds kvs_proto and sends the replies at once; only if the
 * socket is full does it wait for EPOLLOUT.
 *
 * Memory a client can make us hold: a connection takes no commands and reads nothing while
 * KVS_WBUF_HIGH bytes of its replies are unsent (a multiget is suspended between keys at
 * that point), so its output is bounded by that plus one value and its input by one read
 * plus one partial command line. Reads land in the worker's scratch buffer and replies are
 * built in the worker's output buffer; a connection keeps buffers of its own only for what
 * is left over (a partial line, unsent replies), so an idle connection holds none.
 *
 * Trust boundary: in sgx/eleos modes this loop runs inside the enclave for the worker's
 * whole life. All its memory is trusted (srv->alloc); every system call goes through
 * srv->io, which either traps (exit) or is exitless (RPC) and validates results there. The
 * data word of each epoll event comes back from the host: it is a tag looked up in the
 * connection table, never a pointer, and a tag that names no live connection of this worker
 * is counted as a host fault and dropped. The clock is clock_gettime (vDSO, no exit).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "enclave_tls.h"
#include "kvs_server.h"

/* Message memcached sends to a connection over -c before closing it. */
const char kvs_too_many_conns[] = "ERROR Too many open connections\r\n";

/* epoll tags of the descriptors that are not connections; a connection's tag is
 * generation << 32 | slot, and generations never reach 0xffffffff. Listener i has
 * TAG_LISTEN - i. */
#define TAG_STOP (UINT64_MAX - 1)
#define TAG_LISTEN (UINT64_MAX - 2)
/* Rounds of parse-and-send per event for a connection whose commands wait on its output. */
#define SERVE_ROUNDS 4


struct loop {
    struct kvs_server *srv;
    struct kvs_worker *w;
    const struct app_io_ops *io;
    struct app_io_ctx *ioc;
    int epfd;
    struct kvs_buf out;       /* replies being built for one connection          */
    bool listen_paused;       /* accept backed off (no descriptors)              */
    int64_t listen_resume_ms;
    int64_t idle_check_ms;    /* next idle_timeout scan                          */
    int64_t watch_ms;         /* next move of watchers' log lines                */
};

int64_t kvs_now_unix(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no exit */
    return ts.tv_sec;
}

int64_t kvs_now_ms(void) {
    return kvs_now_ns() / 1000000;
}

int64_t kvs_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no exit */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- connection table ------------------------------------------------------------------- */

int kvs_conn_table_init(struct kvs_server *srv, _Atomic uint32_t *wake) {
    struct kvs_conn_table *t = &srv->conns;
    const struct kvs_alloc *a = srv->alloc;
    uint32_t n = srv->maxconns;
    kvs_lock_init(&t->lock, wake);
    t->size = n;
    t->meta = kvs_malloc(a, n * sizeof *t->meta);
    t->conn = kvs_malloc(a, n * sizeof *t->conn);
    t->gen = kvs_malloc(a, n * sizeof *t->gen);
    t->free_slots = kvs_malloc(a, n * sizeof *t->free_slots);
    t->fds = kvs_malloc(a, n * sizeof *t->fds);
    t->info = kvs_malloc(a, n * sizeof *t->info);
    if (!t->meta || !t->conn || !t->gen || !t->free_slots || !t->fds || !t->info) {
        kvs_conn_table_fini(srv);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        atomic_init(&t->meta[i], 0);
        atomic_init(&t->conn[i], NULL);
        t->gen[i] = 1;
        t->free_slots[i] = n - 1 - i;
        atomic_init(&t->fds[i], -1);
        atomic_init(&t->info[i].last_cmd, 0);
        atomic_init(&t->info[i].state, KVS_CS_NEW);
    }
    t->nfree = n;
    return 0;
}

void kvs_conn_table_fini(struct kvs_server *srv) {
    struct kvs_conn_table *t = &srv->conns;
    kvs_free(srv->alloc, (void *)t->meta);
    kvs_free(srv->alloc, (void *)t->conn);
    kvs_free(srv->alloc, t->gen);
    kvs_free(srv->alloc, t->free_slots);
    kvs_free(srv->alloc, (void *)t->fds);
    kvs_free(srv->alloc, t->info);
    memset(t, 0, sizeof *t);
}

/* Takes a free slot and gives c its tag; false if none is free. */
bool kvs_slot_take(struct kvs_server *srv, struct kvs_conn *c) {
    struct kvs_conn_table *t = &srv->conns;
    bool ok = false;
    kvs_lock_acquire(&t->lock);
    if (t->nfree) {
        c->slot = t->free_slots[--t->nfree];
        uint32_t g = t->gen[c->slot];
        t->gen[c->slot] = g + 1 == UINT32_MAX ? 1 : g + 1;
        c->tag = (uint64_t)g << 32 | c->slot;
        ok = true;
    }
    kvs_lock_release(&t->lock);
    return ok;
}

/* Makes c findable by its tag, owned by worker owner. Release: a worker that finds the
 * slot's meta (acquire) sees the connection fully initialised. */
void kvs_slot_publish(struct kvs_server *srv, struct kvs_conn *c, unsigned owner) {
    struct kvs_conn_table *t = &srv->conns;
    atomic_store_explicit(&t->fds[c->slot], c->fd, memory_order_relaxed);
    atomic_store_explicit(&t->info[c->slot].last_cmd, kvs_store_current_time(srv->store),
                          memory_order_relaxed);
    atomic_store_explicit(&t->info[c->slot].state, KVS_CS_NEW, memory_order_relaxed);
    c->proto.info = &t->info[c->slot];
    atomic_store_explicit(&t->conn[c->slot], c, memory_order_relaxed);
    atomic_store_explicit(&t->meta[c->slot], (c->tag & ~(uint64_t)UINT32_MAX) | (owner + 1u),
                          memory_order_release);
}

void kvs_slot_move(struct kvs_server *srv, struct kvs_conn *c, unsigned owner) {
    atomic_store_explicit(&srv->conns.meta[c->slot], (c->tag & ~(uint64_t)UINT32_MAX) | (owner + 1u),
                          memory_order_release);
}

void kvs_slot_give_back(struct kvs_server *srv, uint32_t slot) {
    struct kvs_conn_table *t = &srv->conns;
    atomic_store_explicit(&t->meta[slot], 0, memory_order_relaxed);
    atomic_store_explicit(&t->conn[slot], NULL, memory_order_relaxed);
    kvs_lock_acquire(&t->lock);
    t->free_slots[t->nfree++] = slot;
    kvs_lock_release(&t->lock);
}

/* The connection a host-returned tag names, if it is live and worker's own. */
struct kvs_conn *kvs_conn_lookup(struct kvs_server *srv, unsigned worker, uint64_t tag) {
    struct kvs_conn_table *t = &srv->conns;
    uint32_t slot = (uint32_t)tag;
    if (slot >= t->size)
        return NULL;
    uint64_t want = (tag & ~(uint64_t)UINT32_MAX) | (worker + 1u);
    if (atomic_load_explicit(&t->meta[slot], memory_order_acquire) != want)
        return NULL;
    return atomic_load_explicit(&t->conn[slot], memory_order_relaxed);
}

struct kvs_conn *kvs_conn_owned(struct kvs_server *srv, unsigned worker, uint32_t slot) {
    struct kvs_conn_table *t = &srv->conns;
    uint64_t meta = atomic_load_explicit(&t->meta[slot], memory_order_acquire);
    if ((uint32_t)meta != worker + 1u)
        return NULL;
    return atomic_load_explicit(&t->conn[slot], memory_order_relaxed);
}

static struct kvs_conn *conn_lookup(struct loop *l, uint64_t tag) {
    return kvs_conn_lookup(l->srv, l->w->id, tag);
}

/* --- accept -------------------------------------------------------------------------------- */

/* Watches every listener again (EEXIST: one that was never removed). */
static void listener_resume(struct loop *l) {
    if (!l->listen_paused)
        return;
    bool ok = true;
    for (unsigned i = 0; i < l->srv->nlisten; i++) {
        int r = l->io->epoll_ctl(l->ioc, l->epfd, EPOLL_CTL_ADD, l->srv->listen_fds[i],
                                 EPOLLIN | EPOLLEXCLUSIVE, TAG_LISTEN - i);
        ok = ok && (r == 0 || r == -EEXIST);
    }
    if (ok)
        l->listen_paused = false;
    else
        l->listen_resume_ms = kvs_now_ms() + KVS_ACCEPT_BACKOFF_MS;
}

/* One message a second for the whole server, however many workers back off. */
void kvs_accept_backoff_log(struct kvs_server *srv, int err) {
    int64_t now = kvs_now_ms();
    uint64_t n = atomic_fetch_add_explicit(&srv->accept_backoffs, 1, memory_order_relaxed);
    int64_t last = atomic_load_explicit(&srv->accept_log_ms, memory_order_relaxed);
    if (now - last < 1000 ||
        !atomic_compare_exchange_strong_explicit(&srv->accept_log_ms, &last, now,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    fprintf(stderr, "eleos-kvs: accept: %s (listener paused %d ms; %llu pauses so far)\n",
            strerror(-err), KVS_ACCEPT_BACKOFF_MS, (unsigned long long)n + 1);
}

/* Out of descriptors: the level-triggered listener would fire again at once, so stop
 * watching it for a while (memcached's accept_new_conns(false)). */
static void listener_pause(struct loop *l, int err) {
    for (unsigned i = 0; !l->listen_paused && i < l->srv->nlisten; i++)
        (void)l->io->epoll_ctl(l->ioc, l->epfd, EPOLL_CTL_DEL, l->srv->listen_fds[i], 0, 0);
    l->listen_paused = true;
    l->listen_resume_ms = kvs_now_ms() + KVS_ACCEPT_BACKOFF_MS;
    if (err) /* 0: held at -c (no_maxconns_fast), not a shortage */
        kvs_accept_backoff_log(l->srv, err);
}

/* Frees a connection whose descriptor is closed or being closed: its state, its slot, its
 * place in the count. Both loops end their connections here. */
void kvs_conn_release(struct kvs_server *srv, struct kvs_conn *c) {
    kvs_tls_conn_close(c);
    kvs_proto_fini(&c->proto);
    kvs_buf_fini(&c->rbuf);
    kvs_buf_fini(&c->wbuf);
    kvs_slot_give_back(srv, c->slot);
    kvs_free(srv->alloc, c);
    if (atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed) == 1)
        atomic_fetch_add_explicit(&srv->conns_emptied, 1, memory_order_relaxed);
}

/* Closes a connection of l's worker (only the owner closes its connections). */
static void conn_close(struct loop *l, struct kvs_conn *c) {
    int fd = c->fd;
    l->io->close(l->ioc, fd); /* also removes it from the epoll set */
    kvs_conn_release(l->srv, c);
    listener_resume(l); /* a descriptor is free again */
    if (atomic_load_explicit(&l->srv->ctx.verbosity, memory_order_relaxed) > 1)
        fprintf(stderr, "<%d connection closed.\n", fd);
}

/* Hands c to the next running worker (this one is running, so one always is): published
 * in the table before the owner's epoll set can report it. */
static bool conn_place(struct loop *l, struct kvs_conn *c) {
    struct kvs_server *srv = l->srv;
    unsigned n = srv->nworkers;
    unsigned start = atomic_fetch_add_explicit(&srv->next_worker, 1, memory_order_relaxed);
    for (unsigned k = 0; k < n; k++) {
        struct kvs_worker *t = &srv->workers[(start + k) % n];
        kvs_lock_acquire(&t->lock);
        bool placed = false, failed = false;
        if (t->running) {
            c->proto.stats = &t->stats;
            kvs_slot_publish(srv, c, t->id);
            placed = l->io->epoll_ctl(l->ioc, t->epfd, EPOLL_CTL_ADD, c->fd, c->events,
                                      c->tag) == 0;
            failed = !placed;
        }
        kvs_lock_release(&t->lock);
        if (placed)
            return true;
        if (failed)
            return false;
    }
    return false;
}

static void conn_new(struct loop *l, int fd, uint8_t listener) {
    struct kvs_server *srv = l->srv;
    uint64_t curr = atomic_fetch_add_explicit(&srv->curr_conns, 1, memory_order_relaxed);
    if (curr >= srv->maxconns) {
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&srv->rejected_conns, 1, memory_order_relaxed);
        (void)l->io->send(l->ioc, fd, kvs_too_many_conns, sizeof kvs_too_many_conns - 1);
        l->io->close(l->ioc, fd);
        return;
    }
    struct kvs_conn *c = kvs_malloc(srv->alloc, sizeof *c);
    if (c)
        memset(c, 0, sizeof *c);
    if (!c || !kvs_slot_take(srv, c)) {
        kvs_free(srv->alloc, c);
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        l->io->close(l->ioc, fd);
        return;
    }
    c->fd = fd;
    c->events = EPOLLIN;
    c->listener = listener;
    c->active_s = kvs_now_ms() / 1000;
    kvs_proto_init(&c->proto, &srv->ctx, &l->w->stats);
    c->proto.reqs_per_event = kvs_ctx_settings(&srv->ctx)->reqs_per_event;
    c->proto.cfd = fd;
    kvs_buf_init(&c->rbuf, srv->alloc);
    kvs_buf_init(&c->wbuf, srv->alloc);
    if (!kvs_tls_conn_open(srv, c, kvs_conn_listener(c)) || !conn_place(l, c)) {
        kvs_tls_conn_close(c);
        kvs_slot_give_back(srv, c->slot);
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

/* -o no_maxconns_fast: at -c, memcached stops accepting (new clients wait in the listen
 * backlog) instead of answering "ERROR Too many open connections". */
bool kvs_accept_held(struct kvs_server *srv) {
    return !kvs_ctx_settings(&srv->ctx)->maxconns_fast &&
           atomic_load_explicit(&srv->curr_conns, memory_order_relaxed) >= srv->maxconns;
}

static void do_accept(struct loop *l, unsigned li) {
    if (kvs_accept_held(l->srv)) {
        listener_pause(l, 0);
        return;
    }
    for (int i = 0; i < KVS_ACCEPT_BATCH; i++) {
        int fd = l->io->accept(l->ioc, l->srv->listen_fds[li]);
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            listener_pause(l, fd);
            return;
        }
        if (fd < 0) {
            if (fd != -EAGAIN && fd != -EWOULDBLOCK && fd != -EINTR && fd != -ECONNABORTED)
                fprintf(stderr, "eleos-kvs: accept: %s\n", strerror(-fd));
            return;
        }
        conn_new(l, fd, l->srv->listen_conf[li]);
    }
}

/* --- one connection ------------------------------------------------------------------------ */

/* Sends buf from *pos on. Returns false if the connection died. */
static bool send_buf(struct loop *l, struct kvs_conn *c, struct kvs_buf *buf, size_t *pos) {
    while (*pos < buf->len) {
        ssize_t n = l->io->send(l->ioc, c->fd, buf->data + *pos, buf->len - *pos);
        if (n == -EAGAIN || n == -EWOULDBLOCK)
            break;
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return false;
        *pos += (size_t)n;
        kvs_stat_add(&l->w->stats.bytes_written, (uint64_t)n);
    }
    return true;
}

/* Sends the connection's unsent replies; frees its buffer once they are all gone. */
static bool conn_flush(struct loop *l, struct kvs_conn *c) {
    if (!send_buf(l, c, &c->wbuf, &c->wpos))
        return false;
    kvs_buf_sent(&c->wbuf, &c->wpos);
    return true;
}

/* Sends the replies built in the worker's buffer; what the socket does not take now moves
 * to the connection. */
static bool out_flush(struct loop *l, struct kvs_conn *c) {
    size_t pos = 0;
    bool ok = send_buf(l, c, &l->out, &pos);
    if (ok && pos < l->out.len)
        ok = kvs_buf_append(&c->wbuf, l->out.data + pos, l->out.len - pos) == 0;
    l->out.len = 0;
    kvs_buf_shrink(&l->out, 4 * KVS_READ_CHUNK);
    return ok;
}

/* Reads once. in and len: the input to parse (the scratch buffer, or the connection's
 * leftover with the new bytes appended). false: close the connection. */
static bool conn_read(struct loop *l, struct kvs_conn *c, char **in, size_t *len) {
    char *dst = l->w->scratch;
    size_t room = KVS_READ_CHUNK;
    if (c->tls && c->rbuf.len >= RBUF_MAX)
        return false;
    if (c->rbuf.len && !c->tls) { /* TLS: ciphertext lands in scratch, plaintext in rbuf */
        if (c->rbuf.len >= RBUF_MAX || kvs_buf_reserve(&c->rbuf, KVS_READ_CHUNK))
            return false;
        dst = c->rbuf.data + c->rbuf.len;
        room = KVS_READ_CHUNK;
    }
    ssize_t n = l->io->recv(l->ioc, c->fd, dst, room);
    if (n == 0 || (n < 0 && n != -EAGAIN && n != -EWOULDBLOCK && n != -EINTR))
        return false; /* EOF or error: a half-received value is dropped */
    if (n < 0)
        n = 0;
    else
        c->active_s = kvs_now_ms() / 1000;
    kvs_stat_add(&l->w->stats.bytes_read, (uint64_t)n);
    if (c->tls && !kvs_tls_input(c, dst, (size_t)n, &c->wbuf))
        return false;
    if (c->rbuf.len || c->tls) {
        if (!c->tls)
            c->rbuf.len += (size_t)n;
        *in = c->rbuf.data;
        *len = c->rbuf.len;
    } else {
        *in = dst;
        *len = (size_t)n;
    }
    return true;
}

/* Parses in[0..len) into replies and keeps what the parser left. false: close now. */
static bool conn_parse(struct loop *l, struct kvs_conn *c, char *in, size_t len) {
    struct kvs_buf *out = c->wbuf.len ? &c->wbuf : &l->out;
    c->proto.out_limit = (out == &c->wbuf ? c->wpos : 0) + KVS_WBUF_HIGH;
    size_t used = kvs_conn_feed(c, in, len, out);
    c->more = used < len && !c->proto.close &&
              (c->proto.state == KVS_PS_MGET || out->len >= c->proto.out_limit ||
               c->proto.yielded);
    kvs_shutdown_check(&c->proto);
    bool ok = !c->proto.abort;
    if (in == c->rbuf.data)
        kvs_buf_consume(&c->rbuf, used);
    else if (ok && used < len)
        ok = kvs_buf_append(&c->rbuf, in + used, len - used) == 0;
    kvs_buf_shrink(&c->rbuf, 0);
    if (out != &l->out)
        return ok;
    if (ok)
        return out_flush(l, c);
    l->out.len = 0; /* these replies are this connection's: never another's */
    return false;
}

/* Registers the interest the connection's state calls for (only when it changes). Commands
 * waiting for the output to drain ask for EPOLLOUT too: the socket is writable, so the
 * loop comes back to them without new input. */
static bool conn_update_events(struct loop *l, struct kvs_conn *c) {
    size_t pending = c->wbuf.len - c->wpos;
    uint32_t want = pending || c->more ? EPOLLOUT : 0;
    if (pending < KVS_WBUF_HIGH && !c->proto.close && !c->more && c->rbuf.len < RBUF_MAX)
        want |= EPOLLIN;
    if (want == c->events)
        return true;
    c->events = want;
    return l->io->epoll_ctl(l->ioc, l->epfd, EPOLL_CTL_MOD, c->fd, want, c->tag) == 0;
}

static void conn_event(struct loop *l, struct kvs_conn *c, uint32_t ev) {
    char *in = c->rbuf.data;
    size_t len = c->rbuf.len;
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c->events & EPOLLIN) &&
        !conn_read(l, c, &in, &len))
        goto close;
    for (int round = 0; round < SERVE_ROUNDS; round++) {
        if (len && !c->proto.close && c->wbuf.len - c->wpos < KVS_WBUF_HIGH &&
            !conn_parse(l, c, in, len))
            goto close;
        if (!conn_flush(l, c))
            goto close;
        if (!c->more || c->wbuf.len || c->proto.yielded)
            break; /* a yield (-R) waits for the next round of events */
        in = c->rbuf.data;
        len = c->rbuf.len;
    }
    if (c->proto.close && c->wpos == c->wbuf.len)
        goto close;
    if (conn_update_events(l, c))
        return;
close:
    conn_close(l, c);
}

/* --- the loop -------------------------------------------------------------------------------- */

/* Creates the worker's epoll instance with the listener and the stop pipe in it. Done at
 * set-up for every worker, so a worker never needs a descriptor to start (a server out of
 * descriptors would otherwise lose workers that start late). */
int kvs_worker_prepare(struct kvs_server *srv, struct kvs_worker *w) {
    int epfd = srv->io->epoll_create(&w->io_ctx);
    if (epfd < 0)
        return epfd;
    int r = 0;
    for (unsigned i = 0; !r && i < srv->nlisten; i++)
        r = srv->io->epoll_ctl(&w->io_ctx, epfd, EPOLL_CTL_ADD, srv->listen_fds[i],
                               EPOLLIN | EPOLLEXCLUSIVE, TAG_LISTEN - i);
    if (!r)
        r = srv->io->epoll_ctl(&w->io_ctx, epfd, EPOLL_CTL_ADD, srv->stop_fd, EPOLLIN, TAG_STOP);
    if (r) {
        srv->io->close(&w->io_ctx, epfd);
        return r;
    }
    w->epfd = epfd;
    return 0;
}

/* From now on acceptors may hand this worker connections. */
static void loop_start(struct loop *l) {
    l->epfd = l->w->epfd;
    kvs_lock_acquire(&l->w->lock);
    l->w->running = true;
    kvs_lock_release(&l->w->lock);
}

/* Closes every connection this worker owns (after no more can be handed to it). */
static void loop_finish(struct loop *l) {
    kvs_lock_acquire(&l->w->lock);
    l->w->closed = true;
    l->w->running = false;
    l->w->epfd = -1;
    kvs_lock_release(&l->w->lock);
    struct kvs_conn_table *t = &l->srv->conns;
    for (uint32_t i = 0; i < t->size; i++) {
        struct kvs_conn *c = kvs_conn_owned(l->srv, l->w->id, i);
        if (c)
            conn_close(l, c);
    }
    if (l->epfd >= 0)
        l->io->close(l->ioc, l->epfd);
    kvs_buf_fini(&l->out);
}

/* memcached's idle_timeout: every KVS_IDLE_CHECK_MS, closes this worker's connections that
 * have waited for a command longer than the timeout. Returns the epoll timeout to use. */
static int idle_scan(struct loop *l, int timeout) {
    int64_t now = kvs_now_ms();
    if (now >= l->idle_check_ms) {
        l->idle_check_ms = now + KVS_IDLE_CHECK_MS;
        struct kvs_conn_table *t = &l->srv->conns;
        for (uint32_t i = 0; i < t->size; i++) {
            struct kvs_conn *c = kvs_conn_owned(l->srv, l->w->id, i);
            if (!c)
                continue;
            if (kvs_conn_idle(l->srv, c, now / 1000)) {
                atomic_fetch_add_explicit(&l->srv->idle_kicks, 1, memory_order_relaxed);
                conn_close(l, c);
            }
        }
    }
    int left = (int)(l->idle_check_ms - now);
    return timeout < 0 || left < timeout ? left : timeout;
}

bool kvs_conn_idle(const struct kvs_server *srv, const struct kvs_conn *c, int64_t now_s) {
    unsigned limit = kvs_ctx_settings(&srv->ctx)->idle_timeout;
    /* as memcached: only a connection waiting for a command (none half-read, no reply
     * unsent) is idle */
    return limit && !c->proto.watching && c->proto.state == KVS_PS_CMD && c->wbuf.len == c->wpos && !c->rbuf.len &&
           !c->send_posted && now_s - c->active_s > (int64_t)limit;
}

void kvs_shutdown_check(struct kvs_proto *p) {
    if (p->shutdown == KVS_SHUTDOWN_NONE)
        return;
    /* One exit in enclave modes; the host's main thread takes the signal (sigwait). */
    kill(getpid(), p->shutdown == KVS_SHUTDOWN_GRACEFUL ? SIGUSR1 : SIGINT);
    p->shutdown = KVS_SHUTDOWN_NONE;
}

bool kvs_watch_due(struct kvs_server *srv, int64_t *next_ms, int64_t now, int *timeout) {
    struct kvs_watch *wt = srv->ctx.watch;
    if (!wt || atomic_load_explicit(&wt->count, memory_order_relaxed) == 0)
        return false;
    bool due = now >= *next_ms;
    if (due)
        *next_ms = now + KVS_WATCH_FLUSH_MS;
    int left = (int)(*next_ms - now);
    if (*timeout < 0 || left < *timeout)
        *timeout = left;
    return due;
}

/* Moves the log lines of this worker's watchers to their connections and sends them. */
static void watch_flush(struct loop *l) {
    struct kvs_conn_table *t = &l->srv->conns;
    for (uint32_t i = 0; i < t->size; i++) {
        struct kvs_conn *c = kvs_conn_owned(l->srv, l->w->id, i);
        if (!c)
            continue;
        if (c->proto.watch_slot < 0 || c->wbuf.len - c->wpos >= KVS_WBUF_HIGH ||
            !kvs_watch_pending(l->srv->ctx.watch, c->proto.watch_slot))
            continue;
        if (kvs_watch_take(l->srv->ctx.watch, c->proto.watch_slot, &c->wbuf) ||
            !conn_flush(l, c) || !conn_update_events(l, c))
            conn_close(l, c);
    }
}

/* Dispatches one batch of events; false when the stop pipe fired. */
static bool dispatch(struct loop *l, const struct epoll_event *evs, int n) {
    bool running = true;
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;
        if (tag == TAG_STOP) {
            running = false;
        } else if (tag <= TAG_LISTEN && tag > TAG_LISTEN - l->srv->nlisten) {
            if (!l->listen_paused)
                do_accept(l, (unsigned)(TAG_LISTEN - tag));
        } else {
            struct kvs_conn *c = conn_lookup(l, tag);
            if (c)
                conn_event(l, c, evs[i].events);
            else
                atomic_fetch_add_explicit(&l->srv->host_faults, 1, memory_order_relaxed);
        }
    }
    return running;
}

int kvs_worker_loop(struct kvs_server *srv, struct kvs_worker *w) {
    struct loop l = {.srv = srv, .w = w, .io = srv->io, .ioc = &w->io_ctx, .epfd = -1};
    kvs_buf_init(&l.out, srv->alloc);
    if (w->epfd < 0)
        return -EBADF;
    loop_start(&l);
    int r = 0;
    struct epoll_event evs[KVS_EPOLL_BATCH];
    bool running = true;
    bool idle_on = kvs_ctx_settings(&srv->ctx)->idle_timeout > 0;
    while (running) {
        int timeout = -1;
        if (l.listen_paused) {
            int64_t left = l.listen_resume_ms - kvs_now_ms();
            if (left <= 0)
                listener_resume(&l);
            timeout = left <= 0 ? KVS_ACCEPT_BACKOFF_MS : (int)left;
        }
        if (idle_on)
            timeout = idle_scan(&l, timeout);
        if (kvs_watch_due(srv, &l.watch_ms, kvs_now_ms(), &timeout))
            watch_flush(&l);
        int n = l.io->epoll_wait(l.ioc, l.epfd, evs, KVS_EPOLL_BATCH, timeout);
        if (n == -EBADF || n == -EINVAL) {
            r = n; /* the epoll instance itself is gone */
            break;
        }
        if (n < 0) {
            /* EINTR, a lie the I/O layer refused (EIO), a passing shortage: go round. */
            if (n != -EINTR)
                atomic_fetch_add_explicit(&srv->wait_errors, 1, memory_order_relaxed);
            continue;
        }
        kvs_store_clock_set(srv->store, kvs_now_unix());
        running = dispatch(&l, evs, n);
    }
    loop_finish(&l);
    return r;
}
