/*
 * enclave_queue.c — eleos-pserver's connection loop on the I/O queue (eleos/ioq.h), enclave
 * side: the APP_IO_QUEUE path (--rpc auto in eleos mode, or a forced executor).
 *
 * The blocking loop of enclave_server.c makes a system call per recv and per send, each an
 * exit (sgx mode) or an RPC round trip (--rpc sync). Here the serving thread creates a queue
 * of its own and keeps one receive posted into a trusted receive buffer. A pass parses every
 * complete request the bytes hold, appends their replies to a trusted send buffer, queues
 * them as one send together with the next receive, and waits once: one exit per pass on the
 * uring and batch executors; on the polled ones (worker, sqpoll) none while the poller is
 * awake and the client answers within POLL_NS.
 *
 * At most one receive and one send are in flight: two of a kind on one stream socket could
 * complete out of order and interleave the bytes. Both buffers are enclave memory; the
 * queue copies data out when a send is queued and in when a receive is reaped, after
 * checking its result, so nothing here reads memory the host can write.
 *
 * The protocol and its limits are the blocking loop's (pserver.h): a bad header ends the
 * connection with -EPROTO, a GET the table fails with the table's error, an INC it fails is
 * acknowledged with 0; in each case the replies to the requests before it are sent first,
 * as the blocking loop would have. A batch is counted once its reply is handed to the
 * kernel in full, as the blocking loop counts it after send_all.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "pserver_server.h"

#define MAX_REQUEST (sizeof(struct ps_header) + (size_t)PS_MAX_KEYS * 8)
/* Room for two of the largest requests: a partial one at the end of the buffer moves to
 * the front only when what follows it could not hold a whole request. */
#define RX_CAP (2 * MAX_REQUEST)
/* Two of the largest replies: a pass can append one while the previous one is in flight. */
#define TX_CAP (2 * (size_t)PS_MAX_KEYS * 8)
/* Operations a connection has outstanding at most: a receive, a send, a cancel, with room. */
#define QUEUE_ENTRIES 16u
/* Waiting for a send and a receive together is one exit on the uring and batch executors.
 * The send can come back short on the batch executor (a full socket buffer) while the
 * client still waits for the rest of the reply before it sends the next request: after
 * this long the wait returns with the send alone, and the rest goes out. */
#define BOTH_WAIT_NS 1000000ull
/* On the polled executors (worker, sqpoll) a wait spins on the ring only briefly (30 us)
 * before it exits to sleep, less than a client's round trip takes here when the machine is
 * busy: every request would then cost an exit and a wake-up. So the loop first polls the
 * ring (no exit) this long, as an exitless RPC caller spins for its reply, and only then
 * waits; a connection idle longer sleeps. With other connections served too, it does not
 * poll while the host reports the worker starved (eleos_ioq_poller_starved): each poller
 * holds a core, and with more of them than cores the worker that posts their completions
 * and the clients wait out whole time slices. A connection alone polls regardless: the
 * worker then waits for a CPU part of the time, yet the poll still pays. On SQPOLL the
 * kernel thread's waits are not measured: there only a connection alone polls. */
#define POLL_NS 2000000ull
/* Teardown: how long cancelled operations may take to come back before the queue goes. */
#define DRAIN_NS 1000000000ull

enum { UD_RECV = 1, UD_SEND, UD_CANCEL };

struct qconn {
    struct eleos_ioq *q;
    int fd;
    char *rx;                  /* [rx_head, rx_len): received, not yet served          */
    size_t rx_head, rx_len;
    bool rx_busy, eof;
    char *tx;                  /* [0, tx_len): replies not yet sent                     */
    size_t tx_len, tx_busy;    /* tx_busy: bytes of the send in flight (from tx[0])     */
    uint64_t keys_new, batches_new; /* replies appended since the last send was queued */
    uint64_t keys_fly, batches_fly; /* replies the send in flight carries               */
    long stop;                 /* serve nothing more: -EPROTO or the table's error      */
    uint64_t polled;           /* waits met by polling the ring                         */
    bool gone;                 /* the connection failed: close without flushing         */
};

/* --- serving ------------------------------------------------------------------------------ */

/* Serves the complete requests the receive buffer holds while their replies fit the send
 * buffer: 0, or -EPROTO / the table's error (serve nothing more). */
static long serve_buffered(const struct ps_queue_env *env, struct qconn *c) {
    while (c->rx_len - c->rx_head >= sizeof(struct ps_header)) {
        struct ps_header h;
        memcpy(&h, c->rx + c->rx_head, sizeof h); /* read once, then validate */
        uint32_t op = h.op, n = h.count;
        if (n == 0 || n > PS_MAX_KEYS || (op != PS_OP_INC && op != PS_OP_GET))
            return -EPROTO;
        size_t need = sizeof h + (size_t)n * 8, reply = op == PS_OP_INC ? 8 : (size_t)n * 8;
        if (c->rx_len - c->rx_head < need || TX_CAP - c->tx_len < reply)
            return 0; /* the rest of it has not come yet, or the send buffer is full */
        /* Requests and replies are multiples of 8 bytes: both offsets stay aligned. */
        const uint64_t *keys = (const uint64_t *)(void *)(c->rx + c->rx_head + sizeof h);
        uint64_t *out = (uint64_t *)(void *)(c->tx + c->tx_len);
        if (op == PS_OP_INC) {
            int r = env->table_ops->inc(env->table, keys, n);
            *out = r ? 0 : n;
            c->keys_new += n;
        } else {
            int r = env->table_ops->get(env->table, keys, n, out);
            if (r)
                return r;
        }
        c->rx_head += need;
        c->tx_len += reply;
        c->batches_new++;
    }
    return 0;
}

/* Queues the send of every reply not yet in flight and, unless the connection is ending,
 * the next receive. 0 or the queue's error. */
static int post(struct qconn *c) {
    if (!c->tx_busy && c->tx_len) {
        /* MSG_WAITALL: the kernel executors finish the send themselves, so a completion is
         * the whole reply (or an error); the batch executor may still come back short. */
        int r = eleos_ioq_send(c->q, c->fd, c->tx, c->tx_len, MSG_NOSIGNAL | MSG_WAITALL,
                               UD_SEND);
        if (r)
            return r;
        c->tx_busy = c->tx_len;
        c->keys_fly += c->keys_new;
        c->batches_fly += c->batches_new;
        c->keys_new = c->batches_new = 0;
    }
    if (c->rx_busy || c->eof || c->stop)
        return 0;
    if (c->rx_head == c->rx_len) {
        c->rx_head = c->rx_len = 0;
    } else if (c->rx_head > RX_CAP - MAX_REQUEST) {
        memmove(c->rx, c->rx + c->rx_head, c->rx_len - c->rx_head);
        c->rx_len -= c->rx_head;
        c->rx_head = 0;
    }
    if (c->rx_len == RX_CAP)
        return 0; /* full of requests waiting for room in the send buffer */
    int r = eleos_ioq_recv(c->q, c->fd, c->rx + c->rx_len, RX_CAP - c->rx_len, 0, UD_RECV);
    c->rx_busy = r == 0;
    return r;
}

/* A send came back: drop what went out; the batches of a send count once all of it went. */
static void sent(const struct ps_queue_env *env, struct qconn *c, int32_t res) {
    size_t len = c->tx_busy;
    c->tx_busy = 0;
    if (res == -EINTR || res == -EAGAIN)
        return; /* nothing went: the next pass sends it again */
    if (res <= 0) {
        c->gone = true; /* the client is gone (or the host lied: -EIO) */
        return;
    }
    memmove(c->tx, c->tx + res, c->tx_len - (size_t)res);
    c->tx_len -= (size_t)res;
    if ((size_t)res < len)
        return; /* short: the rest goes with the next send, and is counted with it */
    atomic_fetch_add_explicit(env->keys, c->keys_fly, memory_order_relaxed);
    atomic_fetch_add_explicit(env->batches, c->batches_fly, memory_order_relaxed);
    c->keys_fly = c->batches_fly = 0;
}

static void received(struct qconn *c, int32_t res) {
    c->rx_busy = false;
    if (res > 0)
        c->rx_len += (size_t)res; /* the queue checked res against what was asked */
    else if (res == 0)
        c->eof = true;
    else if (res != -EINTR && res != -EAGAIN)
        c->gone = true;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the vDSO's: no system call, no exit */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reaps without exiting (a zero timeout) until something completes or POLL_NS pass. */
static int poll_ring(const struct ps_queue_env *env, struct qconn *c,
                     struct eleos_ioq_cqe *cqe, unsigned max) {
    uint64_t start = 0;
    for (unsigned i = 0;; i++) {
        int n = eleos_ioq_wait(c->q, cqe, max, 1, 0);
        if (n)
            return n;
        if (i % 64 == 0) { /* the host's word and the clock now and then */
            if (atomic_load_explicit(&env->tot->serving, memory_order_relaxed) > 1 &&
                (eleos_ioq_poller_starved(c->q) ||
                 eleos_ioq_executor(c->q) == ELEOS_IOQ_EXEC_SQPOLL))
                return 0;
            uint64_t now = mono_ns();
            if (!start)
                start = now;
            else if (now - start >= POLL_NS)
                return 0;
        }
        for (int k = 0; k < 8; k++)
            __builtin_ia32_pause();
    }
}

/* The uring and batch executors exit once per wait: wait for the send and the receive
 * together. The polled ones (worker, sqpoll) need no exit for a completion, but their
 * waits stop spinning at the first one: poll, then wait for one at a time. */
static int wait_pass(const struct ps_queue_env *env, struct qconn *c) {
    struct eleos_ioq_cqe cqe[4];
    enum eleos_ioq_exec e = eleos_ioq_executor(c->q);
    unsigned out = eleos_ioq_outstanding(c->q);
    bool polled = e == ELEOS_IOQ_EXEC_WORKER || e == ELEOS_IOQ_EXEC_SQPOLL;
    unsigned min = polled || out < 2 ? 1 : out;
    int n = polled ? poll_ring(env, c, cqe, 4) : 0;
    if (n > 0)
        c->polled++;
    else if (n == 0)
        n = eleos_ioq_wait(c->q, cqe, 4, min, min > 1 ? BOTH_WAIT_NS : UINT64_MAX);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        if (cqe[i].user_data == UD_RECV && c->rx_busy)
            received(c, cqe[i].res);
        else if (cqe[i].user_data == UD_SEND && c->tx_busy)
            sent(env, c, cqe[i].res);
    }
    return 0;
}

/* 0 when the client left, -EPROTO or the table's error once the replies before it went
 * out (or the client left meanwhile), or the queue's error. */
static long serve_loop(const struct ps_queue_env *env, struct qconn *c) {
    for (;;) {
        if (!c->stop)
            c->stop = serve_buffered(env, c);
        /* With the send buffer empty, serve_buffered left no complete request behind. */
        if (c->gone || ((c->stop || c->eof) && !c->tx_len))
            return c->stop;
        int r = post(c);
        if (!r && !eleos_ioq_outstanding(c->q))
            r = -EIO; /* nothing in flight and nothing to do: cannot happen */
        if (!r)
            r = wait_pass(env, c);
        if (r)
            return r;
    }
}

/* --- the queue's life ------------------------------------------------------------------- */

static int queue_create(struct eleos_enclave *enc, enum eleos_ioq_exec exec,
                        struct eleos_ioq **q) {
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.entries = QUEUE_ENTRIES;
    cfg.exec = exec;
    return eleos_ioq_create(enc, &cfg, q);
}

int ps_queue_probe(struct eleos_enclave *enc, enum eleos_ioq_exec exec) {
    struct eleos_ioq *q;
    int r = queue_create(enc, exec, &q);
    if (!r)
        eleos_ioq_destroy(q);
    return r;
}

/* Takes back what is still in flight on fd (a receive, an unfinished send), so that no
 * operation outlives the queue's bounce buffers or the descriptor. */
static void drain(struct qconn *c) {
    if (!eleos_ioq_outstanding(c->q) || eleos_ioq_cancel_fd(c->q, c->fd, UD_CANCEL))
        return;
    struct eleos_ioq_cqe cqe[4];
    for (int tries = 0; eleos_ioq_outstanding(c->q) && tries < 8; tries++)
        if (eleos_ioq_wait(c->q, cqe, 4, eleos_ioq_outstanding(c->q), DRAIN_NS / 8) < 0)
            break;
}

static void totals_add(struct ps_ioq_totals *t, const struct qconn *c) {
    const struct eleos_ioq *q = c->q;
    struct eleos_ioq_stats s;
    eleos_ioq_stats(q, &s);
    atomic_fetch_add_explicit(&t->conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->polled, c->polled, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->ops, s.ops, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->completions, s.completions, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->exits, s.exits, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->enters, s.enters, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->wakes, s.wakes, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->spins, s.spins, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->host_faults, s.host_faults, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->bad_results, s.bad_results, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->switches, s.switches, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->trials, s.trials, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->trials_won, s.trials_won, memory_order_relaxed);
    for (unsigned e = 0; e < ELEOS_IOQ_NEXEC; e++)
        atomic_fetch_add_explicit(&t->by_exec[e], s.by_exec[e], memory_order_relaxed);
    unsigned cur = (unsigned)eleos_ioq_executor(q);
    if (cur < ELEOS_IOQ_NEXEC)
        atomic_fetch_add_explicit(&t->final_exec[cur], 1, memory_order_relaxed);
}

long ps_queue_serve(const struct ps_queue_env *env, int fd) {
    struct qconn c = {.fd = fd};
    /* Trusted buffers: requests are parsed and replies built in enclave memory. */
    c.rx = eleos_enclave_malloc(env->enc, RX_CAP);
    c.tx = eleos_enclave_malloc(env->enc, TX_CAP);
    long err = c.rx && c.tx ? queue_create(env->enc, env->exec, &c.q) : -ENOMEM;
    if (!err) {
        atomic_fetch_add_explicit(&env->tot->serving, 1, memory_order_relaxed);
        err = serve_loop(env, &c);
        atomic_fetch_sub_explicit(&env->tot->serving, 1, memory_order_relaxed);
        drain(&c);
        totals_add(env->tot, &c);
        eleos_ioq_destroy(c.q);
    } else {
        atomic_fetch_add_explicit(&env->tot->failures, 1, memory_order_relaxed);
    }
    eleos_enclave_free(env->enc, c.rx);
    eleos_enclave_free(env->enc, c.tx);
    return err;
}

void ps_queue_stats(struct ps_ioq_totals *t, struct ps_stats *st) {
    st->ioq = true;
    st->ioq_conns = atomic_load_explicit(&t->conns, memory_order_relaxed);
    st->ioq_failures = atomic_load_explicit(&t->failures, memory_order_relaxed);
    st->ioq_ops = atomic_load_explicit(&t->ops, memory_order_relaxed);
    st->ioq_completions = atomic_load_explicit(&t->completions, memory_order_relaxed);
    st->ioq_exits = atomic_load_explicit(&t->exits, memory_order_relaxed);
    st->ioq_enters = atomic_load_explicit(&t->enters, memory_order_relaxed);
    st->ioq_wakes = atomic_load_explicit(&t->wakes, memory_order_relaxed);
    st->ioq_spins = atomic_load_explicit(&t->spins, memory_order_relaxed);
    st->ioq_polled = atomic_load_explicit(&t->polled, memory_order_relaxed);
    st->ioq_host_faults = atomic_load_explicit(&t->host_faults, memory_order_relaxed);
    st->ioq_bad_results = atomic_load_explicit(&t->bad_results, memory_order_relaxed);
    st->ioq_switches = atomic_load_explicit(&t->switches, memory_order_relaxed);
    st->ioq_trials = atomic_load_explicit(&t->trials, memory_order_relaxed);
    st->ioq_trials_won = atomic_load_explicit(&t->trials_won, memory_order_relaxed);
    for (unsigned e = 0; e < ELEOS_IOQ_NEXEC; e++) {
        st->ioq_by_exec[e] = atomic_load_explicit(&t->by_exec[e], memory_order_relaxed);
        st->ioq_final_exec[e] = atomic_load_explicit(&t->final_exec[e], memory_order_relaxed);
    }
}
