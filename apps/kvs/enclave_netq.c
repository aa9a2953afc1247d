/*
 * enclave_netq.c — the worker loop on completions (eleos/ioq.h): the batched I/O path.
 *
 * Every connection keeps one receive posted on its worker's queue; a pass takes whatever
 * completed, parses, queues the replies as sends and the next receives, and one wait hands
 * all of it over and collects the next completions. On the URING and BATCH executors that
 * wait is the pass's only exit; on WORKER and SQPOLL a busy pass makes none.
 *
 * Connections: every worker keeps an accept posted on the shared listener; the worker whose
 * accept completes hands the connection round-robin to a worker (memcached's dispatch), by
 * putting it in that worker's inbox (enclave memory, under its lock) and ringing its eventfd
 * through its own queue, so no one exits to hand over. The owner posts the receive.
 *
 * Buffers: receives are posted without a buffer; the queue hands the validated bytes over
 * at completion and they are parsed where they landed, so an idle connection holds no
 * enclave memory (rbuf keeps only a partial command). Replies are built in its wbuf and
 * queued as one send at a time, which the queue copies out at once; a short send queues
 * the rest. A connection reads nothing
 * while KVS_WBUF_HIGH bytes are unsent, as on the epoll path.
 *
 * Trust boundary: user_data comes back from the queue's own (enclave) table, not from the
 * host, but a completion may still name a connection that has closed since: it is looked
 * up in the connection table by generation and slot like an epoll tag. A connection is
 * freed only when none of its operations is in flight.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eleos/ioq.h"
#include "enclave_tls.h"
#include "kvs_server.h"

/* user_data: a connection's generation << 32 | slot << 2 | kind; the loop's own below. */
enum { K_RECV = 0, K_SEND = 1, K_OTHER = 2 };
#define UD_STOP UINT64_MAX
#define UD_WAKE (UINT64_MAX - 2)
#define UD_NOTE (UINT64_MAX - 3) /* completions nobody waits for (eventfd writes) */
#define UD_LISTEN (UINT64_MAX - 4) /* listener i: UD_LISTEN - i */
/* Also bounds a moderated wait (a round of every connection's receive and send) and how
 * many receives' data is held at once (64 x 8 KiB at most). */
#define REAP_MAX 64u
#define HELD_MAX 64u
/* Passes between publications of the queue's counters. */
#define STATS_EVERY 64u

struct qloop {
    struct kvs_server *srv;
    struct kvs_worker *w;
    struct eleos_ioq *q;
    uint64_t wake_buf;        /* the eventfd read's target                        */
    bool running;
    uint32_t listen_posted;   /* bit i: an accept is posted on listener i          */
    bool listen_paused;
    int64_t listen_resume_ms;
    int64_t idle_check_ms;    /* next idle_timeout scan                          */
    int64_t watch_ms;         /* next move of watchers' log lines                */
    unsigned passes;
    struct kvs_conn *yields;  /* connections that yielded (-R): served after the pass */
    /* -o no_maxconns_fast: accepts that completed at -c (an accept was already posted),
     * held until a connection closes, as the backlog holds them on the epoll path */
    uint32_t held[HELD_MAX];  /* listener << 24 | descriptor                          */
    unsigned nheld;
    /* consolidation (kvs_gather.h) */
    int64_t period_ns;        /* start of the busy measurement's period              */
    int64_t cpu_ns;           /* the thread's CPU time then (-1: unknown)            */
    int64_t move_check_ms;    /* next look for connections to hand over              */
    unsigned moving_out;      /* connections whose move has started                  */
    uint64_t emptied_seen;    /* worker 0: srv->conns_emptied when it last looked     */
    bool mod_forced;          /* moderation forced on while connections are gathered */
};

static uint64_t ud_of(const struct kvs_conn *c, unsigned kind) {
    return (c->tag & ~(uint64_t)UINT32_MAX) | (uint64_t)c->slot << 2 | kind;
}

/* A queueing failure on the connection's own operations closes it (the queue is sized for
 * every connection's receive and send, so this means memory ran out). conn_begin_close may
 * free c: callers touch c no more after it. */
static void conn_begin_close(struct qloop *l, struct kvs_conn *c);
/* A moving connection's step: handed over once nothing of it is in flight or pending. */
static void move_step(struct qloop *l, struct kvs_conn *c);

/* A posted receive waits for data. A draining one (after a receive filled its buffer)
 * takes what else is there without waiting, so a request is parsed whole, as one big read
 * would have seen it, before any reply goes out. */
static void post_recv(struct qloop *l, struct kvs_conn *c, bool drain) {
    size_t size = drain ? KVS_RECV_DRAIN : KVS_RECV_POST;
    /* No buffer: the queue hands the bytes over at completion, so an idle connection
     * holds no enclave memory, only its receive's small bounce. */
    if (eleos_ioq_recv(l->q, c->fd, NULL, size, drain ? MSG_DONTWAIT : 0, ud_of(c, K_RECV))) {
        conn_begin_close(l, c);
        return;
    }
    c->recv_posted = true;
    c->draining = drain;
}

/* false: the send could not be queued (the caller closes the connection). */
static bool post_send(struct qloop *l, struct kvs_conn *c) {
    size_t n = c->wbuf.len - c->wpos;
    if (n > ELEOS_IOQ_MAX_XFER)
        n = ELEOS_IOQ_MAX_XFER;
    if (eleos_ioq_send(l->q, c->fd, c->wbuf.data + c->wpos, n, 0, ud_of(c, K_SEND)))
        return false;
    c->send_posted = true;
    return true;
}

/* Takes c off the yield list (it is closing). */
static void yield_unlink(struct qloop *l, struct kvs_conn *c) {
    for (struct kvs_conn **pp = &l->yields; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            c->next = NULL;
            c->more = false;
            return;
        }
}

static void conn_free(struct qloop *l, struct kvs_conn *c) {
    yield_unlink(l, c);
    if (c->moving)
        l->moving_out--;
    atomic_fetch_sub_explicit(&l->w->nconns, 1, memory_order_relaxed);
    if (eleos_ioq_close(l->q, c->fd, UD_NOTE))
        l->srv->io->close(&l->w->io_ctx, c->fd); /* the queue is full: one exit then */
    kvs_conn_release(l->srv, c);
    if (l->listen_paused) /* a descriptor is free again */
        l->listen_resume_ms = 0;
}

/* Cancels what the connection has in flight; it is freed when the last completion is in. */
static void conn_begin_close(struct qloop *l, struct kvs_conn *c) {
    if (!c->closing && (c->recv_posted || c->send_posted) &&
        eleos_ioq_cancel_fd(l->q, c->fd, UD_NOTE) == 0) {
        c->closing = true;
        return;
    }
    c->closing = true;
    if (!c->recv_posted && !c->send_posted)
        conn_free(l, c);
}

/* Parses in[0..len) into wbuf; what is left is (or stays) in rbuf. false: close now. */
static bool conn_feed(struct kvs_conn *c, char *in, size_t len) {
    c->proto.out_limit = c->wpos + KVS_WBUF_HIGH;
    size_t used = kvs_conn_feed(c, in, len, &c->wbuf);
    if (c->proto.abort)
        return false;
    c->more = used < len && !c->proto.close &&
              (c->proto.state == KVS_PS_MGET || c->wbuf.len >= c->proto.out_limit ||
               c->proto.yielded);
    if (in == c->rbuf.data)
        kvs_buf_consume(&c->rbuf, used);
    else if (used < len && kvs_buf_append(&c->rbuf, in + used, len - used))
        return false;
    kvs_buf_shrink(&c->rbuf, 0); /* an idle connection keeps no input buffer */
    return true;
}

/* Parses what rbuf holds, as long as the output allows. false: close now. */
static bool conn_parse_q(struct kvs_conn *c) {
    if (c->proto.yielded)
        return true; /* it waits for the end of the pass (serve_yields) */
    while (c->rbuf.len && !c->proto.close && c->wbuf.len - c->wpos < KVS_WBUF_HIGH) {
        size_t before = c->rbuf.len;
        if (!conn_feed(c, c->rbuf.data, c->rbuf.len))
            return false;
        if (c->rbuf.len == before || !c->more || c->proto.yielded)
            break;
    }
    return true;
}

/* A connection that yielded (-R) is served again after this pass's other completions. */
static void yield_queue(struct qloop *l, struct kvs_conn *c) {
    if (!c->proto.yielded || c->closing)
        return;
    for (struct kvs_conn *y = l->yields; y; y = y->next)
        if (y == c)
            return;
    c->next = l->yields;
    l->yields = c;
}

/* After any completion: parse, send, read again, or close, as the state calls for. */
static void conn_step(struct qloop *l, struct kvs_conn *c) {
    bool ok = conn_parse_q(c);
    kvs_shutdown_check(&c->proto);
    if (!ok) {
        conn_begin_close(l, c);
        return;
    }
    yield_queue(l, c);
    if ((!c->send_posted && c->wbuf.len > c->wpos && !post_send(l, c)) || c->closing) {
        if (!c->closing)
            conn_begin_close(l, c);
        return;
    }
    size_t pending = c->wbuf.len - c->wpos;
    if (c->proto.close) {
        if (!pending)
            conn_begin_close(l, c);
        return;
    }
    if (c->moving) {
        move_step(l, c);
        return;
    }
    if (!c->recv_posted && pending < KVS_WBUF_HIGH && !c->more && c->rbuf.len < RBUF_MAX)
        post_recv(l, c, false);
}

static void on_recv(struct qloop *l, struct kvs_conn *c, int32_t res, char *data) {
    c->recv_posted = false;
    if (c->closing) {
        conn_begin_close(l, c);
        return;
    }
    if (c->moving && res == -ECANCELED) {
        move_step(l, c); /* the receive it was waiting in is withdrawn: hand it over */
        return;
    }
    bool drained = c->draining;
    c->draining = false;
    if (drained && (res == -EAGAIN || res == -EWOULDBLOCK)) {
        conn_step(l, c); /* nothing more was there: serve what came */
        return;
    }
    if (res <= 0) { /* EOF or an error: a half-received value is dropped */
        conn_begin_close(l, c);
        return;
    }
    kvs_stat_add(&l->w->stats.bytes_read, (uint64_t)res);
    c->active_s = kvs_now_ms() / 1000;
    bool full = (size_t)res == (drained ? KVS_RECV_DRAIN : KVS_RECV_POST);
    if (c->tls) { /* ciphertext: the plaintext lands in rbuf, handshake records in wbuf */
        if (!kvs_tls_input(c, data, (size_t)res, &c->wbuf))
            conn_begin_close(l, c);
        else if (full && c->rbuf.len < RBUF_MAX && !c->proto.close)
            post_recv(l, c, true);
        else
            conn_step(l, c);
        return;
    }
    if (!full && !c->rbuf.len && !c->closing && !c->proto.close &&
        c->wbuf.len - c->wpos < KVS_WBUF_HIGH) {
        /* the common case: one whole request, parsed where it landed */
        bool ok = conn_feed(c, data, (size_t)res);
        kvs_shutdown_check(&c->proto);
        if (!ok) {
            conn_begin_close(l, c);
            return;
        }
    } else if (kvs_buf_append(&c->rbuf, data, (size_t)res)) {
        conn_begin_close(l, c);
        return;
    } else if (full && c->rbuf.len < RBUF_MAX) {
        post_recv(l, c, true); /* more may be there: parse it all at once, as a big read */
        return;
    }
    conn_step(l, c);
}

static void on_send(struct qloop *l, struct kvs_conn *c, int32_t res) {
    c->send_posted = false;
    if (c->closing || res < 0) {
        conn_begin_close(l, c);
        return;
    }
    c->wpos += (size_t)res;
    kvs_stat_add(&l->w->stats.bytes_written, (uint64_t)res);
    kvs_buf_sent(&c->wbuf, &c->wpos); /* an idle connection keeps no reply buffer */
    conn_step(l, c);
}

/* --- connections arriving ---------------------------------------------------------------- */

/* Keeps an accept posted on every listener. */
static void post_accept(struct qloop *l) {
    if (!l->listen_paused && kvs_accept_held(l->srv)) {
        l->listen_paused = true; /* -o no_maxconns_fast: look again shortly */
        l->listen_resume_ms = kvs_now_ms() + KVS_ACCEPT_BACKOFF_MS;
    }
    if (l->listen_paused)
        return;
    for (unsigned i = 0; i < l->srv->nlisten; i++)
        if (!(l->listen_posted & (1u << i)) &&
            eleos_ioq_accept(l->q, l->srv->listen_fds[i], NULL, NULL,
                             SOCK_NONBLOCK | SOCK_CLOEXEC, UD_LISTEN - i) == 0)
            l->listen_posted |= 1u << i;
}

/* Gives c to worker t: its own if t is us, else through t's inbox and eventfd. moved: c
 * is a live connection of ours (its slot changes owner, nothing else). */
static bool conn_hand(struct qloop *l, struct kvs_conn *c, struct kvs_worker *t, bool moved) {
    bool placed = false, ring = false;
    kvs_lock_acquire(&t->lock);
    if (t->running) {
        c->proto.stats = &t->stats;
        if (moved)
            kvs_slot_move(l->srv, c, t->id);
        else
            kvs_slot_publish(l->srv, c, t->id);
        atomic_fetch_add_explicit(&t->nconns, 1, memory_order_relaxed);
        if (t != l->w) {
            ring = !t->inbox;
            c->next = t->inbox;
            t->inbox = c;
        }
        placed = true;
    }
    kvs_lock_release(&t->lock);
    if (placed && t == l->w)
        post_recv(l, c, false);
    static const uint64_t one = 1;
    if (ring && eleos_ioq_write(l->q, t->wake_fd, &one, sizeof one, -1, UD_NOTE))
        (void)write(t->wake_fd, &one, sizeof one); /* queue full: one exit */
    return placed;
}

/* Round robin over the workers that hold connections (kvs_gather.h), then the others. */
static bool conn_place_q(struct qloop *l, struct kvs_conn *c) {
    struct kvs_server *srv = l->srv;
    unsigned n = srv->nworkers;
    unsigned a = atomic_load_explicit(&srv->io_active, memory_order_relaxed);
    if (!a || a > n)
        a = n;
    unsigned start = atomic_fetch_add_explicit(&srv->next_worker, 1, memory_order_relaxed);
    for (unsigned k = 0; k < n; k++)
        if (conn_hand(l, c, &srv->workers[k < a ? (start + k) % a : k], false))
            return true;
    return false;
}

static void conn_new_q(struct qloop *l, int fd, uint8_t listener) {
    struct kvs_server *srv = l->srv;
    if (fd < (1 << 24) && l->nheld < HELD_MAX && kvs_accept_held(srv)) {
        l->held[l->nheld++] = (uint32_t)fd | (uint32_t)listener << 24;
        l->listen_paused = true;
        l->listen_resume_ms = kvs_now_ms() + KVS_ACCEPT_BACKOFF_MS;
        return;
    }
    uint64_t curr = atomic_fetch_add_explicit(&srv->curr_conns, 1, memory_order_relaxed);
    struct kvs_conn *c = NULL;
    if (curr < srv->maxconns && (c = kvs_malloc(srv->alloc, sizeof *c)) != NULL)
        memset(c, 0, sizeof *c);
    if (!c || !kvs_slot_take(srv, c)) {
        if (curr >= srv->maxconns) {
            atomic_fetch_add_explicit(&srv->rejected_conns, 1, memory_order_relaxed);
            if (eleos_ioq_send(l->q, fd, kvs_too_many_conns, strlen(kvs_too_many_conns),
                               MSG_DONTWAIT, UD_NOTE))
                atomic_fetch_add_explicit(&srv->wait_errors, 1, memory_order_relaxed);
        }
        kvs_free(srv->alloc, c);
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        if (eleos_ioq_close(l->q, fd, UD_NOTE))
            srv->io->close(&l->w->io_ctx, fd);
        return;
    }
    c->fd = fd;
    c->listener = listener;
    c->active_s = kvs_now_ms() / 1000;
    kvs_proto_init(&c->proto, &srv->ctx, &l->w->stats);
    c->proto.reqs_per_event = kvs_ctx_settings(&srv->ctx)->reqs_per_event;
    c->proto.cfd = fd;
    kvs_buf_init(&c->rbuf, srv->alloc);
    kvs_buf_init(&c->wbuf, srv->alloc);
    if (!kvs_tls_conn_open(srv, c, kvs_conn_listener(c)) || !conn_place_q(l, c)) {
        atomic_fetch_add_explicit(&l->w->nconns, 1, memory_order_relaxed); /* conn_free's */
        c->closing = true;
        conn_free(l, c);
        return;
    }
    atomic_fetch_add_explicit(&srv->total_conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->conn_structs, 1, memory_order_relaxed);
}

static void on_accept(struct qloop *l, unsigned li, int32_t res) {
    l->listen_posted &= ~(1u << li);
    if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        l->listen_paused = true;
        l->listen_resume_ms = kvs_now_ms() + KVS_ACCEPT_BACKOFF_MS;
        kvs_accept_backoff_log(l->srv, res);
        return;
    }
    if (res >= 0)
        conn_new_q(l, res, l->srv->listen_conf[li]);
    else if (res != -EAGAIN && res != -EINTR && res != -ECONNABORTED && res != -ECANCELED)
        fprintf(stderr, "eleos-kvs: accept: %s\n", strerror(-res));
    post_accept(l);
}

/* The eventfd rang: post receives for the connections other workers handed us. */
static void on_wake(struct qloop *l) {
    kvs_lock_acquire(&l->w->lock);
    struct kvs_conn *c = l->w->inbox;
    l->w->inbox = NULL;
    kvs_lock_release(&l->w->lock);
    while (c) {
        struct kvs_conn *next = c->next;
        c->next = NULL;
        post_recv(l, c, false);
        c = next;
    }
    if (eleos_ioq_read(l->q, l->w->wake_fd, &l->wake_buf, sizeof l->wake_buf, -1, UD_WAKE))
        l->running = false; /* cannot listen for hand-overs any more: stop cleanly */
}

/* --- gathering connections on fewer workers (kvs_gather.h) ------------------------------- */

/* A connection moves only when its receive is all it has in flight and nothing of it waits
 * to be parsed or sent. TLS and watching connections stay with their worker. */
static bool conn_movable(const struct kvs_conn *c) {
    return c->recv_posted && !c->draining && !c->send_posted && !c->closing && !c->moving &&
           c->wpos == c->wbuf.len && !c->more && !c->proto.yielded && !c->proto.close &&
           !c->tls && c->proto.watch_slot < 0 && c->rbuf.len < RBUF_MAX;
}

/* The worker (not us) among those that hold connections that holds the fewest. */
static struct kvs_worker *move_target(struct qloop *l) {
    struct kvs_server *srv = l->srv;
    unsigned a = atomic_load_explicit(&srv->io_active, memory_order_relaxed);
    struct kvs_worker *best = NULL;
    uint32_t fewest = UINT32_MAX;
    for (unsigned i = 0; i < a && i < srv->nworkers; i++) {
        struct kvs_worker *t = &srv->workers[i];
        uint32_t n = atomic_load_explicit(&t->nconns, memory_order_relaxed);
        if (t != l->w && n < fewest) {
            best = t;
            fewest = n;
        }
    }
    return best;
}

static void move_step(struct qloop *l, struct kvs_conn *c) {
    if (c->recv_posted || c->send_posted || c->wbuf.len > c->wpos || c->more ||
        c->proto.yielded)
        return; /* the completion still to come steps it again */
    c->moving = false;
    l->moving_out--;
    struct kvs_worker *t = c->rbuf.len < RBUF_MAX ? move_target(l) : NULL;
    /* a move counts as activity: the new owner's idle scan must not find it stale */
    c->active_s = kvs_now_ms() / 1000;
    if (t && conn_hand(l, c, t, true)) {
        atomic_fetch_sub_explicit(&l->w->nconns, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&l->srv->conn_moves, 1, memory_order_relaxed);
        return; /* t posts its receive; c is t's from here on */
    }
    post_recv(l, c, false); /* nobody takes it: it stays */
}

/* Starts moving up to n of this worker's connections: their receives are cancelled, and
 * each is handed over when its receive ends (move_step). */
static void move_start(struct qloop *l, unsigned n) {
    struct kvs_conn_table *t = &l->srv->conns;
    for (uint32_t i = 0; i < t->size && n; i++) {
        struct kvs_conn *c = kvs_conn_owned(l->srv, l->w->id, i);
        if (!c || !conn_movable(c) || eleos_ioq_cancel_fd(l->q, c->fd, UD_NOTE))
            continue;
        c->moving = true;
        l->moving_out++;
        n--;
    }
}

/* Worker 0 decides how many workers hold connections, from each one's CPU time. */
static void gather_decide(struct qloop *l, int64_t now_ms) {
    struct kvs_server *srv = l->srv;
    uint32_t busy[KVS_MAX_THREADS];
    unsigned a = atomic_load_explicit(&srv->io_active, memory_order_relaxed);
    for (unsigned i = 0; i < a; i++) {
        struct kvs_worker *w = &srv->workers[i];
        int64_t at = atomic_load_explicit(&w->cpu_ms, memory_order_relaxed);
        /* a worker blocked in a long wait has not measured: it is not busy */
        busy[i] = now_ms - at > 3 * KVS_GATHER_PERIOD_MS
                      ? 0
                      : atomic_load_explicit(&w->cpu_permille, memory_order_relaxed);
    }
    unsigned next = kvs_gather_decide(&srv->gather, (enum kvs_gather_mode)srv->io_gather,
                                      eleos_ioq_host_idle(l->q), a, srv->nworkers, busy);
    atomic_store_explicit(&srv->io_active, next, memory_order_relaxed);
}

/* Worker 0: the last connection closed since it last looked, so a load ended
 * (kvs_gather_emptied). Looked at every few milliseconds, not once a period: the next
 * load's first connections may already be arriving. */
static void gather_emptied(struct qloop *l, int64_t now_ms) {
    struct kvs_server *srv = l->srv;
    uint64_t e = atomic_load_explicit(&srv->conns_emptied, memory_order_relaxed);
    if (e == l->emptied_seen)
        return;
    l->emptied_seen = e;
    unsigned a = atomic_load_explicit(&srv->io_active, memory_order_relaxed);
    unsigned next = kvs_gather_emptied(&srv->gather, (enum kvs_gather_mode)srv->io_gather, a,
                                       srv->nworkers, now_ms);
    atomic_store_explicit(&srv->io_active, next, memory_order_relaxed);
}

/* While connections are gathered, the workers moderate their waits (if moderation is
 * AUTO) even when the host reports idle CPU: gathering leaves that CPU idle on purpose
 * (kvs_gather.h), and a gathered worker that stopped moderating would exit more per
 * request than the spread workers did. */
static void gather_moderation(struct qloop *l, unsigned active) {
    struct kvs_server *srv = l->srv;
    bool force = active < srv->nworkers && srv->io_mod == ELEOS_IOQ_MOD_AUTO &&
                 srv->io_gather != KVS_GATHER_OFF;
    enum eleos_ioq_moderation m = force ? ELEOS_IOQ_MOD_ON : (enum eleos_ioq_moderation)srv->io_mod;
    if (force != l->mod_forced && eleos_ioq_set_moderation(l->q, m) == 0)
        l->mod_forced = force;
}

/* The worker thread's CPU time: a system call (one exit, once a period) into the worker's
 * untrusted bounce. The host may lie; that only changes how many workers hold
 * connections. -1 if it fails or is not a time (counted as a host fault). */
static int64_t thread_cpu_ns(struct qloop *l) {
    struct app_io_ctx *io = &l->w->io_ctx;
    if (!io->bounce || io->bounce_size < sizeof(struct timespec))
        return -1;
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, io->bounce) == 0) {
        memcpy(&ts, io->bounce, sizeof ts); /* read once */
        if (ts.tv_sec >= 0 && ts.tv_sec <= INT32_MAX && ts.tv_nsec >= 0 &&
            ts.tv_nsec < 1000000000)
            return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    atomic_fetch_add_explicit(&l->srv->host_faults, 1, memory_order_relaxed);
    return -1;
}

/* After each pass: once a period, the CPU time (and worker 0's decision); every few
 * milliseconds, whether this worker holds more than its share (none, beyond the workers
 * that hold connections), and the surplus's moves started. */
static void gather_step(struct qloop *l, int64_t now) {
    struct kvs_server *srv = l->srv;
    int64_t span = now - l->period_ns, now_ms = now / 1000000;
    if (span >= KVS_GATHER_PERIOD_MS * 1000000ll) {
        int64_t cpu = thread_cpu_ns(l), used = cpu - l->cpu_ns;
        if (cpu >= 0 && l->cpu_ns >= 0 && used >= 0) {
            atomic_store_explicit(&l->w->cpu_permille,
                                  (uint32_t)(used >= span ? 1000 : used * 1000 / span),
                                  memory_order_relaxed);
            atomic_store_explicit(&l->w->cpu_ms, now_ms, memory_order_relaxed);
        }
        l->period_ns = now;
        l->cpu_ns = cpu;
        if (l->w->id == 0)
            gather_decide(l, now_ms);
    }
    if (now_ms < l->move_check_ms || srv->nworkers < 2)
        return;
    l->move_check_ms = now_ms + 10;
    if (l->w->id == 0)
        gather_emptied(l, now_ms);
    unsigned a = atomic_load_explicit(&srv->io_active, memory_order_relaxed);
    gather_moderation(l, a);
    uint64_t total = 0;
    for (unsigned i = 0; i < srv->nworkers; i++)
        total += atomic_load_explicit(&srv->workers[i].nconns, memory_order_relaxed);
    /* one over the even share: two workers must not pass a connection back and forth */
    uint64_t share = l->w->id >= a ? 0 : (total + a - 1) / a + 1;
    uint64_t own = atomic_load_explicit(&l->w->nconns, memory_order_relaxed);
    if (own > share + l->moving_out)
        move_start(l, (unsigned)(own - share - l->moving_out));
}

/* --- the loop -------------------------------------------------------------------------------- */

static void dispatch_q(struct qloop *l, const struct eleos_ioq_cqe *c) {
    uint64_t ud = c->user_data;
    if (ud == UD_STOP) {
        l->running = false;
    } else if (ud <= UD_LISTEN && ud > UD_LISTEN - l->srv->nlisten) {
        on_accept(l, (unsigned)(UD_LISTEN - ud), c->res);
    } else if (ud == UD_WAKE) {
        on_wake(l);
    } else if (ud != UD_NOTE && (ud & 3) != K_OTHER) {
        uint64_t tag = (ud & ~(uint64_t)UINT32_MAX) | ((uint32_t)ud >> 2);
        struct kvs_conn *conn = kvs_conn_lookup(l->srv, l->w->id, tag);
        if (!conn) /* the queue's own table named it: a bug, not the host */
            atomic_fetch_add_explicit(&l->srv->host_faults, 1, memory_order_relaxed);
        else if ((ud & 3) == K_RECV)
            on_recv(l, conn, c->res, c->data);
        else
            on_send(l, conn, c->res);
    }
}

static void publish_stats(struct qloop *l) {
    struct eleos_ioq_stats st;
    eleos_ioq_stats(l->q, &st);
    struct kvs_worker *w = l->w;
    atomic_store_explicit(&w->q_exits, st.exits, memory_order_relaxed);
    atomic_store_explicit(&w->q_ops, st.ops, memory_order_relaxed);
    atomic_store_explicit(&w->q_completions, st.completions, memory_order_relaxed);
    atomic_store_explicit(&w->q_spins, st.spins, memory_order_relaxed);
    atomic_store_explicit(&w->q_faults, st.host_faults + st.bad_results, memory_order_relaxed);
    atomic_store_explicit(&w->q_switches, st.switches, memory_order_relaxed);
    atomic_store_explicit(&w->q_trials, st.trials, memory_order_relaxed);
    atomic_store_explicit(&w->q_moderated, st.moderated, memory_order_relaxed);
    atomic_store_explicit(&w->q_mod_timeouts, st.mod_timeouts, memory_order_relaxed);
    atomic_store_explicit(&w->q_exec, (int)eleos_ioq_executor(l->q), memory_order_relaxed);
}

/* Moves the log lines of this worker's watchers to their connections and sends them. */
static void watch_flush_q(struct qloop *l) {
    struct kvs_conn_table *t = &l->srv->conns;
    for (uint32_t i = 0; i < t->size; i++) {
        struct kvs_conn *c = kvs_conn_owned(l->srv, l->w->id, i);
        if (!c)
            continue;
        if (c->closing || c->proto.watch_slot < 0 || c->wbuf.len - c->wpos >= KVS_WBUF_HIGH ||
            !kvs_watch_pending(l->srv->ctx.watch, c->proto.watch_slot))
            continue;
        if (kvs_watch_take(l->srv->ctx.watch, c->proto.watch_slot, &c->wbuf) ||
            (!c->send_posted && !post_send(l, c)))
            conn_begin_close(l, c);
    }
}

/* Takes the held accepts again (each may be held again if the server is still at -c). */
static void held_retry(struct qloop *l) {
    unsigned n = l->nheld;
    uint32_t fds[HELD_MAX];
    memcpy(fds, l->held, n * sizeof fds[0]);
    l->nheld = 0;
    for (unsigned i = 0; i < n; i++)
        conn_new_q(l, (int)(fds[i] & 0xffffff), (uint8_t)(fds[i] >> 24));
}

/* memcached's idle_timeout for this worker's connections (see enclave_net.c). */
static void idle_scan_q(struct qloop *l, int64_t now) {
    l->idle_check_ms = now + KVS_IDLE_CHECK_MS;
    struct kvs_conn_table *t = &l->srv->conns;
    for (uint32_t i = 0; i < t->size; i++) {
        struct kvs_conn *c = kvs_conn_owned(l->srv, l->w->id, i);
        if (!c)
            continue;
        if (!c->closing && kvs_conn_idle(l->srv, c, now / 1000)) {
            atomic_fetch_add_explicit(&l->srv->idle_kicks, 1, memory_order_relaxed);
            conn_begin_close(l, c);
        }
    }
}

/* How long the next wait may last: not at all (connections yielded), until the listener
 * may resume or the next idle scan, or forever. */
static uint64_t wait_ns(struct qloop *l) {
    if (l->yields)
        return 0;
    int64_t now = kvs_now_ms(), left = INT64_MAX;
    int wt = -1;
    if (kvs_watch_due(l->srv, &l->watch_ms, now, &wt))
        watch_flush_q(l);
    if (wt >= 0)
        left = wt;
    if (kvs_ctx_settings(&l->srv->ctx)->idle_timeout) {
        if (now >= l->idle_check_ms)
            idle_scan_q(l, now);
        if (l->idle_check_ms - now < left)
            left = l->idle_check_ms - now;
    }
    if (l->listen_paused) {
        int64_t resume = l->listen_resume_ms - now;
        if (resume <= 0) {
            l->listen_paused = false;
            held_retry(l);
            post_accept(l);
            if (l->listen_paused) /* held again: look again after the back-off */
                resume = l->listen_resume_ms - now;
        }
        if (resume > 0 && resume < left)
            left = resume;
    }
    return left == INT64_MAX ? UINT64_MAX : (uint64_t)left * 1000000u;
}

/* Serves the connections that yielded, once each (they may yield again). */
static void serve_yields(struct qloop *l) {
    struct kvs_conn *c = l->yields;
    l->yields = NULL;
    while (c) {
        struct kvs_conn *next = c->next;
        c->next = NULL;
        c->proto.yielded = false;
        if (!c->closing)
            conn_step(l, c);
        c = next;
    }
}

/* Room for a receive and a send of every connection the worker may own (they are dealt
 * round robin), plus the accept, the eventfd read, the stop poll and closes in flight. */
static unsigned queue_entries(const struct kvs_server *srv) {
    uint64_t want = 2ull * (srv->maxconns / srv->nworkers + 1) + 64;
    unsigned n = 256;
    while (n < want && n < ELEOS_IOQ_MAX_ENTRIES)
        n *= 2;
    return n;
}

static int loop_open(struct qloop *l) {
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.entries = queue_entries(l->srv);
    cfg.exec = (enum eleos_ioq_exec)l->srv->io_exec;
    cfg.moderation = (enum eleos_ioq_moderation)l->srv->io_mod;
    struct eleos_enclave *enc = eleos_enclave_current();
    int r = eleos_ioq_create(enc, &cfg, &l->q);
    if (r)
        return r;
    kvs_lock_acquire(&l->w->lock);
    l->w->running = true;
    kvs_lock_release(&l->w->lock);
    l->running = true;
    l->period_ns = kvs_now_ns();
    l->cpu_ns = thread_cpu_ns(l);
    if (eleos_ioq_poll(l->q, l->srv->stop_fd, POLLIN, UD_STOP) ||
        eleos_ioq_read(l->q, l->w->wake_fd, &l->wake_buf, sizeof l->wake_buf, -1, UD_WAKE))
        return -ENOMEM;
    post_accept(l);
    publish_stats(l); /* `stats` names the executor from the start */
    return 0;
}

/* Ends the loop: no more hand-overs, the queue torn down (which ends every operation in
 * flight), then every connection this worker owns or was handed is closed and freed. */
static void loop_close(struct qloop *l) {
    kvs_lock_acquire(&l->w->lock);
    l->w->closed = true;
    l->w->running = false;
    l->w->inbox = NULL; /* its connections are in the table, owned by us: closed below */
    kvs_lock_release(&l->w->lock);
    for (unsigned i = 0; i < l->nheld; i++)
        l->srv->io->close(&l->w->io_ctx, (int)(l->held[i] & 0xffffff));
    l->nheld = 0;
    if (l->q) {
        publish_stats(l);
        eleos_ioq_destroy(l->q);
    }
    l->q = NULL;
    struct kvs_conn_table *t = &l->srv->conns;
    for (uint32_t i = 0; i < t->size; i++) {
        struct kvs_conn *c = kvs_conn_owned(l->srv, l->w->id, i);
        if (!c)
            continue;
        l->srv->io->close(&l->w->io_ctx, c->fd);
        kvs_conn_release(l->srv, c);
    }
}

int kvs_worker_loop_q(struct kvs_server *srv, struct kvs_worker *w) {
    struct qloop l = {.srv = srv, .w = w};
    int r = loop_open(&l);
    struct eleos_ioq_cqe cqes[REAP_MAX];
    while (!r && l.running) {
        /* One completion is enough; while the machine is busy the queue's moderation holds
         * out (bounded) for a round of them, so one exit serves every connection that
         * answered (docs/rpc.md, "Moderation"). */
        int n = eleos_ioq_wait(l.q, cqes, REAP_MAX, 1, wait_ns(&l));
        if (n < 0) {
            atomic_fetch_add_explicit(&srv->wait_errors, 1, memory_order_relaxed);
            continue;
        }
        kvs_store_clock_set(srv->store, kvs_now_unix());
        for (int i = 0; i < n; i++)
            dispatch_q(&l, &cqes[i]);
        serve_yields(&l);
        gather_step(&l, kvs_now_ns());
        if (++l.passes % STATS_EVERY == 0)
            publish_stats(&l);
    }
    loop_close(&l);
    return r;
}

/* Set-up, before any worker runs: the eventfd other workers ring to hand connections over
 * (made here so a worker never needs a descriptor to start). */
int kvs_worker_prepare_q(struct kvs_server *srv, struct kvs_worker *w) {
    (void)srv;
    int fd = eventfd(0, EFD_CLOEXEC); /* blocking: io_uring waits on it */
    if (fd < 0)
        return -errno;
    w->wake_fd = fd;
    w->epfd = -1;
    return 0;
}
