/*
 * enclave_queue.c — eleos-face's request loop on the I/O queue (eleos/ioq.h), enclave side:
 * eleos mode's default path (--rpc auto, or a forced executor).
 *
 * Why: the one-call-at-a-time loop (enclave_server.c) makes about twelve calls per request
 * (epoll_wait, a receive per 64 KiB bounce buffer and a socket-type query each, the answer,
 * the re-arm). Through exitless RPC each is a round trip to an RPC worker thread that spins
 * for work on the same two cores as the enclave workers and the clients; when it is
 * preempted the calls fall back to exits anyway. Here each worker owns a queue: it accepts
 * connections itself, keeps one header receive posted per idle connection, receives a
 * request's body with one operation straight into its frame buffer (the queue copies it in
 * after checking the count), and queues the answer with the next receive: one exit per
 * batch on the uring executor and no spinning thread.
 *
 * Each worker serves one request at a time, as the blocking loop does: its frame buffer
 * holds one request. A connection belongs to the worker that accepted it. Headers land in
 * the connection's own 24 bytes of enclave memory; a body is received only once its header
 * checked out (a bad frame is refused without waiting for bytes that will never come) and
 * must arrive within BODY_NS, else the request is cut off (`truncated`) as the blocking
 * path's receive timeout does. At most one receive and one send are in flight per
 * connection; it is closed only when neither is.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "eleos/ioq.h"
#include "face_server.h"

/* Connections one worker serves at most; one more is closed at once. */
#define CONNS_MAX 256u
/* Operations outstanding: an accept, a receive and a send per connection, cancels. */
#define QUEUE_ENTRIES 1024u
/* How long a wait lasts before the worker looks at the stop flag. */
#define WAIT_NS 100000000ull
/* A request's body must arrive within this long once its header has. */
#define BODY_NS 5000000000ull
/* Teardown: how long the body's cancelled receive may take to come back. */
#define DRAIN_NS 1000000000ull

enum kind { K_ACCEPT, K_HDR, K_BODY, K_SEND, K_NOTE };

struct qconn {
    int fd;                      /* -1: a free slot                                      */
    bool hdr_busy, send_busy, closing;
    bool serving, cancelled;     /* a worker is serving it; its receive was cancelled   */
    size_t hdr_got;
    uint8_t hdr[sizeof(struct face_req)];
};

struct qworker {
    struct face_worker *w;
    struct eleos_ioq *q;
    struct face_queue_totals *tot;
    int lfd;
    bool accept_busy, accept_dead;
    struct qconn conns[CONNS_MAX];
    unsigned ready[CONNS_MAX];   /* slots whose header is complete, in arrival order     */
    unsigned ready_head, ready_n;
    size_t body_got;             /* the body in flight (one at a time)                   */
    bool body_busy;
    int body_res;                /* its last completion                                  */
};

static uint64_t ud_of(unsigned slot, enum kind k) {
    return (uint64_t)slot << 8 | (uint64_t)k;
}

static void add(_Atomic uint64_t *c, uint64_t v) {
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the vDSO's: no system call, no exit */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --- connections ------------------------------------------------------------------------ */

static void post_accept(struct qworker *x) {
    if (x->accept_busy || x->accept_dead)
        return;
    x->accept_busy = eleos_ioq_accept(x->q, x->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC,
                                      ud_of(0, K_ACCEPT)) == 0;
}

static void post_header(struct qworker *x, unsigned slot) {
    struct qconn *c = &x->conns[slot];
    int r = eleos_ioq_recv(x->q, c->fd, c->hdr + c->hdr_got, sizeof c->hdr - c->hdr_got,
                           MSG_WAITALL, ud_of(slot, K_HDR));
    c->hdr_busy = r == 0;
    if (r)
        c->closing = true;
}

/* Ends a connection once nothing of it is in flight: a receive still posted is cancelled
 * first (its completion brings us back here). */
static void settle(struct qworker *x, unsigned slot) {
    struct qconn *c = &x->conns[slot];
    if (!c->closing || c->fd < 0 || c->send_busy || c->serving)
        return;
    if (c->hdr_busy) {
        if (!c->cancelled)
            c->cancelled = eleos_ioq_cancel_fd(x->q, c->fd, ud_of(slot, K_NOTE)) == 0;
        return;
    }
    if (eleos_ioq_close(x->q, c->fd, ud_of(slot, K_NOTE)))
        return; /* queue full: the next completion of this slot retries */
    add(&x->tot->closed, 1);
    *c = (struct qconn){.fd = -1};
}

static void on_accept(struct qworker *x, int32_t res) {
    x->accept_busy = false;
    if (res == -EBADF || res == -EINVAL || res == -ENOTSOCK)
        x->accept_dead = true; /* the listening socket is gone: nothing more will come */
    if (res < 0)
        return;
    unsigned slot = 0;
    while (slot < CONNS_MAX && x->conns[slot].fd >= 0)
        slot++;
    if (slot == CONNS_MAX) {
        if (eleos_ioq_close(x->q, res, ud_of(0, K_NOTE)))
            face_worker_close(x->w, res); /* the queue is full: the one-call path */
        return;
    }
    x->conns[slot] = (struct qconn){.fd = res};
    post_header(x, slot);
    settle(x, slot);
}

static void on_header(struct qworker *x, unsigned slot, int32_t res) {
    struct qconn *c = &x->conns[slot];
    c->hdr_busy = false;
    if (res > 0)
        c->hdr_got += (size_t)res; /* the queue checked res against what was asked */
    if (c->closing || (res <= 0 && res != -EINTR && res != -EAGAIN)) {
        /* EOF between requests ends the connection; inside a header it is a cut request. */
        if (res == 0 && c->hdr_got && !c->closing)
            x->ready[(x->ready_head + x->ready_n++) % CONNS_MAX] = slot;
        else
            c->closing = true;
    } else if (c->hdr_got == sizeof c->hdr) {
        x->ready[(x->ready_head + x->ready_n++) % CONNS_MAX] = slot;
    } else {
        post_header(x, slot);
    }
    settle(x, slot);
}

static void on_send(struct qworker *x, unsigned slot, int32_t res, size_t want) {
    struct qconn *c = &x->conns[slot];
    c->send_busy = false;
    /* A short answer cannot be completed in order behind the next request: end it. */
    if (res < 0 || (size_t)res != want)
        c->closing = true;
    settle(x, slot);
}

/* One validated completion. */
static void dispatch(struct qworker *x, const struct eleos_ioq_cqe *e) {
    unsigned slot = (unsigned)(e->user_data >> 8 & 0xffff);
    enum kind k = (enum kind)(e->user_data & 0xff);
    if (k == K_ACCEPT) {
        on_accept(x, e->res);
    } else if (k == K_BODY) {
        x->body_busy = false;
        x->body_res = e->res;
    } else if (slot < CONNS_MAX && x->conns[slot].fd >= 0) {
        if (k == K_HDR && x->conns[slot].hdr_busy)
            on_header(x, slot, e->res);
        else if (k == K_SEND && x->conns[slot].send_busy)
            on_send(x, slot, e->res, (size_t)(uint32_t)(e->user_data >> 40));
        else if (k == K_NOTE)
            settle(x, slot);
    }
}

/* Waits up to timeout_ns for completions and handles them: 0 or the queue's error. */
static int pump(struct qworker *x, uint64_t timeout_ns) {
    struct eleos_ioq_cqe cqe[16];
    int n = eleos_ioq_wait(x->q, cqe, 16, 1, timeout_ns);
    for (int i = 0; i < n; i++)
        dispatch(x, &cqe[i]);
    return n < 0 ? n : 0;
}

/* --- one request -------------------------------------------------------------------------- */

/* Receives the body behind a checked header into the worker's frame: FACE_OK or
 * FACE_E_TRUNCATED (the client stopped, failed, or took longer than BODY_NS). */
static enum face_status receive_body(struct qworker *x, unsigned slot, int *err) {
    struct qconn *c = &x->conns[slot];
    uint8_t *body = x->w->frame + sizeof c->hdr;
    size_t len = FACE_REQ_BYTES - sizeof c->hdr;
    uint64_t deadline = mono_ns() + BODY_NS;
    x->body_got = 0;
    while (x->body_got < len && !*err) {
        if (eleos_ioq_recv(x->q, c->fd, body + x->body_got, len - x->body_got, MSG_WAITALL,
                           ud_of(slot, K_BODY)))
            return FACE_E_TRUNCATED;
        x->body_busy = true;
        while (x->body_busy && !*err && mono_ns() < deadline)
            *err = pump(x, WAIT_NS);
        if (x->body_busy) {
            /* Too slow (or the queue failed): take the receive back before the buffer is
             * used for anything else, since its completion would write into it. */
            add(&x->tot->timeouts, 1);
            int r = eleos_ioq_cancel_fd(x->q, c->fd, ud_of(slot, K_NOTE));
            for (unsigned i = 0; x->body_busy && i < 8; i++)
                if (pump(x, DRAIN_NS / 8) < 0)
                    break;
            if (x->body_busy)
                *err = r ? r : -EIO; /* the frame may still be written: this worker stops */
            return FACE_E_TRUNCATED;
        }
        if (x->body_res <= 0 && x->body_res != -EINTR && x->body_res != -EAGAIN)
            return FACE_E_TRUNCATED;
        if (x->body_res > 0)
            x->body_got += (size_t)x->body_res;
    }
    return *err ? FACE_E_TRUNCATED : FACE_OK;
}

/* Serves the request whose header is complete on slot: answer queued, the next header
 * receive posted (or the connection ending). */
static void serve(struct qworker *x, unsigned slot, int *err) {
    struct qconn *c = &x->conns[slot];
    struct face_req h = {0};
    enum face_status st = FACE_E_TRUNCATED;
    c->serving = true;
    if (c->hdr_got == sizeof c->hdr) {
        memcpy(x->w->frame, c->hdr, sizeof c->hdr);
        st = face_frame_header(x->w, &h);
        if (st == FACE_OK)
            st = receive_body(x, slot, err);
    }
    uint8_t ans[FACE_ANS_MAX];
    bool keep;
    size_t n = face_reply(x->w, &h, st, ans, &keep);
    c->hdr_got = 0;
    /* The queue copies the answer out now; its length rides in the tag for the check. */
    if (n && eleos_ioq_send(x->q, c->fd, ans, n, MSG_NOSIGNAL,
                            ud_of(slot, K_SEND) | (uint64_t)n << 40) == 0)
        c->send_busy = true;
    else
        keep = false;
    if (keep)
        post_header(x, slot);
    else
        c->closing = true;
    c->serving = false;
    settle(x, slot);
}

/* --- the worker's life -------------------------------------------------------------------- */

static void totals_add(struct qworker *x) {
    struct eleos_ioq_stats s;
    eleos_ioq_stats(x->q, &s);
    add(&x->tot->ops, s.ops);
    add(&x->tot->exits, s.exits);
    add(&x->tot->host_faults, s.host_faults + s.bad_results);
    unsigned e = (unsigned)eleos_ioq_executor(x->q);
    if (e < 8)
        add(&x->tot->final_exec[e], 1);
}

static long serve_loop(struct qworker *x, const _Atomic bool *stop) {
    int err = 0;
    while (!err && !atomic_load_explicit(stop, memory_order_relaxed)) {
        post_accept(x);
        if (x->ready_n) {
            unsigned slot = x->ready[x->ready_head];
            x->ready_head = (x->ready_head + 1) % CONNS_MAX;
            x->ready_n--;
            serve(x, slot, &err);
        } else {
            err = pump(x, WAIT_NS);
        }
    }
    return err;
}

long face_queue_serve(struct face_worker *w, int lfd, int exec, const _Atomic bool *stop,
                      struct face_queue_totals *tot) {
    struct eleos_enclave *enc = eleos_enclave_current();
    struct qworker *x = enc ? eleos_enclave_calloc(enc, 1, sizeof *x) : calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    *x = (struct qworker){.w = w, .tot = tot, .lfd = lfd};
    for (unsigned i = 0; i < CONNS_MAX; i++)
        x->conns[i].fd = -1;
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.entries = QUEUE_ENTRIES;
    cfg.exec = (enum eleos_ioq_exec)exec;
    long err = eleos_ioq_create(enc, &cfg, &x->q);
    if (!err) {
        err = serve_loop(x, stop);
        totals_add(x);
        eleos_ioq_destroy(x->q); /* cancels and waits for what is in flight */
        for (unsigned i = 0; i < CONNS_MAX; i++)
            if (x->conns[i].fd >= 0) {
                face_worker_close(w, x->conns[i].fd); /* the queue is gone */
                add(&tot->closed, 1);
            }
    }
    if (enc)
        eleos_enclave_free(enc, x);
    else
        free(x);
    return err;
}
