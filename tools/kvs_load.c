/*
 * eleos-kvs-load — a memcached load generator that reads a whole preloaded
 * data set uniformly at random (the Eleos paper's memcached experiment), unlike memcaslap,
 * whose GETs only ask for keys its own run has SET.
 *
 * The data set is N keys, key i = "key:" + i zero-padded to --key-size bytes, its value
 * --value-size bytes that depend only on i (and flags = i mod 2^32), so a GET reply can be
 * checked byte for byte (--verify) even with SETs in the mix: a SET rewrites the same bytes.
 *
 * Phases:
 *   --preload   SETs every key 0..N-1 once: connection j of C stores keys j, j+C, j+2C ...,
 *               pipelined (--preload-depth requests outstanding per connection). Without an
 *               explicit --secs the program exits after it.
 *   measuring   --secs seconds of requests, each a GET with probability --get-ratio and a
 *               SET otherwise, the key uniform over [0, N) (a splitmix64/xorshift PRNG per
 *               thread), --pipeline requests outstanding per connection (1 = memcaslap's
 *               closed loop). At the deadline no new requests are sent; the outstanding ones
 *               are drained and counted, and the phase ends at the last reply.
 *
 * -T threads each drive their share of the -c connections with a level-triggered epoll
 * loop over non-blocking sockets; partial reads and writes are carried over. Latency is
 * measured per request from the moment it is queued for sending to its complete reply,
 * into a log-linear histogram (32 sub-buckets per power of two, <= 3% error).
 *
 * Wire format (--protocol, tools/kvs_load_proto.c): memcached's text protocol (get/set),
 * its binary protocol (GET/SET, never the quiet opcodes: one reply per request, the opaque
 * field checked) or its meta protocol (mg <key> v f / ms <key> <len> F<flags>). --verify
 * checks the replies alike in all three. --tls (tools/kvs_load_tls.c, OpenSSL) wraps every
 * connection in TLS: the handshake runs when the connection is made, before the phases;
 * afterwards SSL_read/SSL_write run non-blocking in the same epoll loop, waiting for the
 * socket direction OpenSSL asks for (WANT_READ / WANT_WRITE).
 *
 * Output: a one-line summary per phase (default), --csv (a header, then a row per phase) or
 * --json (an object per phase, one a line), on stdout; diagnostics on stderr.
 * Exit status: 0 = clean; 1 = protocol errors, verify failures, lost connections or a stall;
 * 2 = bad options or a connection that could not be established.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kvs_load_proto.h"
#include "kvs_load_tls.h"

#define KEY_PREFIX "key:"
#define KEY_PREFIX_LEN 4u
#define KEY_MAX 250u           /* memcached's key limit                                   */
#define EPOLL_EVENTS 256
#define MAX_ERROR_REPORTS 10   /* per thread: details of the first errors go to stderr    */
#define HIST_SUB_BITS 5u
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (2u * HIST_SUB + (64u - HIST_SUB_BITS - 1u) * HIST_SUB)

enum op { OP_GET, OP_SET };
enum phase { PHASE_PRELOAD, PHASE_MEASURE };
enum out_format { OUT_TEXT, OUT_CSV, OUT_JSON };

struct config {
    const char *host;
    const char *port;
    unsigned threads;
    unsigned conns;
    uint64_t keys;
    unsigned key_size;
    unsigned value_size;
    double get_ratio;
    double secs;
    bool secs_set;
    bool preload;
    unsigned pipeline;
    unsigned preload_depth;
    uint64_t seed;
    bool verify;
    double timeout;
    enum out_format out;
    enum kl_proto proto;
    bool tls;
    const char *tls_ca;  /* NULL: the system's CA paths */
    bool tls_insecure;
};

struct counters {
    uint64_t gets, sets, hits, misses;
    uint64_t errors;          /* error replies, malformed replies, requests lost          */
    uint64_t verify_failures; /* a hit whose flags, length or bytes are not the key's     */
    uint64_t conn_failures;   /* connections closed or broken during the phase            */
    uint64_t stalls;          /* threads that gave up waiting for replies (--timeout)     */
};

struct req {
    uint64_t key;
    uint64_t t0;
    enum op op;
};

struct conn {
    int fd;
    unsigned id; /* 0 .. conns-1 over all threads */
    bool dead;
    bool want_out;
    struct kl_tls *tls;    /* --tls: the session over fd                               */
    bool read_wants_write; /* TLS: SSL_read waits for the socket to take bytes         */
    bool write_wants_read; /* TLS: SSL_write waits for bytes from the server           */
    char *rbuf;
    size_t rpos, rlen, rcap;
    char *wbuf;
    size_t wpos, wlen, wcap;
    struct req *q; /* ring of outstanding requests, oldest at qhead */
    unsigned qcap, qhead, qcount;
    uint64_t next_preload;
};

struct thread {
    pthread_t th;
    unsigned id;
    struct conn *conns;
    unsigned nconns;
    int ep;
    uint64_t rng;
    enum phase phase;
    struct counters c;
    uint64_t *hist;
    char *expect; /* scratch: the expected value */
    unsigned reports;
    uint64_t last_progress;
};

static struct config cfg = {
    .host = "127.0.0.1", .port = "11211", .threads = 2, .conns = 16, .keys = 100000,
    .key_size = 64, .value_size = 1024, .get_ratio = 0.9, .secs = 5.0, .pipeline = 1,
    .preload_depth = 32, .seed = 1, .timeout = 30.0, .out = OUT_TEXT, .proto = KL_TEXT,
};
static struct kl_tls_ctx *g_tls;
static uint64_t g_start, g_deadline;
static unsigned g_key_width; /* digits after the prefix */

/* ---------------------------------------------------------------------------------------- */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* xorshift64*: the per-thread request stream (never 0 once seeded by splitmix64). */
static uint64_t xorshift64s(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("eleos-kvs-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        die(2, "out of memory (%zu bytes)", n);
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n);
    if (!p)
        die(2, "out of memory (%zu bytes)", n);
    return p;
}

/* --- keys and values ---------------------------------------------------------------------- */

/* Writes key idx (cfg.key_size bytes, no terminator) to dst. */
static void make_key(char *dst, uint64_t idx) {
    memcpy(dst, KEY_PREFIX, KEY_PREFIX_LEN);
    char *d = dst + cfg.key_size;
    for (unsigned i = 0; i < g_key_width; i++) {
        *--d = (char)('0' + idx % 10);
        idx /= 10;
    }
}

/* The value of key idx: printable bytes ('0'..'o', never CR or LF) from a PRNG seeded by the
 * index; the same every time, so a SET rewrites what the preload stored. */
static void make_value(char *dst, uint64_t idx) {
    uint64_t s = idx * 0xd1342543de82ef95ull + 0x6a09e667f3bcc909ull;
    size_t n = cfg.value_size, i = 0;
    while (i < n) {
        uint64_t r = splitmix64(&s);
        for (unsigned b = 0; b < 8 && i < n; b++, i++, r >>= 8)
            dst[i] = (char)('0' + (r & 63));
    }
}

static uint32_t key_flags(uint64_t idx) { return (uint32_t)idx; }

/* --- latency histogram -------------------------------------------------------------------- */

static unsigned hist_bucket(uint64_t v) {
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return 2 * HIST_SUB + (msb - HIST_SUB_BITS - 1) * HIST_SUB + sub;
}

/* The middle of bucket b's range, in the histogram's unit (ns). */
static double hist_value(unsigned b) {
    if (b < 2 * HIST_SUB)
        return b;
    unsigned msb = (b - 2 * HIST_SUB) / HIST_SUB + HIST_SUB_BITS + 1;
    unsigned sub = (b - 2 * HIST_SUB) % HIST_SUB;
    double lo = (double)((uint64_t)(HIST_SUB + sub) << (msb - HIST_SUB_BITS));
    double width = (double)(1ull << (msb - HIST_SUB_BITS));
    return lo + width / 2;
}

static double hist_quantile(const uint64_t *h, uint64_t total, double q) {
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total);
    if (want >= total)
        want = total - 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h[b];
        if (seen > want)
            return hist_value(b);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* --- connections -------------------------------------------------------------------------- */

static void report(struct thread *t, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(struct thread *t, struct conn *c, const char *fmt, ...) {
    if (t->reports >= MAX_ERROR_REPORTS)
        return;
    if (++t->reports == MAX_ERROR_REPORTS) {
        fprintf(stderr, "eleos-kvs-load: thread %u: further errors are only counted\n", t->id);
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "eleos-kvs-load: connection %u: %s\n", c->id, msg);
}

/* Counts and reports a reply that is not what request key idx (a SET or GET) allows. */
static void unexpected_reply(struct thread *t, struct conn *c, const char *op, uint64_t idx,
                             const char *what) {
    char key[KEY_MAX + 1];
    t->c.errors++;
    make_key(key, idx);
    key[cfg.key_size] = 0;
    report(t, c, "%s %s: %s", op, key, what);
}

static void set_events(struct thread *t, struct conn *c, bool out) {
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = out;
}

/* A broken connection: its outstanding requests are lost (counted as errors). */
static void conn_fail(struct thread *t, struct conn *c, const char *why) {
    if (c->dead)
        return;
    report(t, c, "%s; %u request(s) outstanding lost", why, c->qcount);
    t->c.errors += c->qcount;
    t->c.conn_failures++;
    c->qcount = 0;
    c->dead = true;
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    kl_tls_free(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
}

static void wreserve(struct conn *c, size_t extra) {
    if (c->wpos > 0 && c->wpos == c->wlen)
        c->wpos = c->wlen = 0;
    if (c->wlen + extra <= c->wcap)
        return;
    if (c->wpos > 0) {
        memmove(c->wbuf, c->wbuf + c->wpos, c->wlen - c->wpos);
        c->wlen -= c->wpos;
        c->wpos = 0;
    }
    while (c->wlen + extra > c->wcap)
        c->wcap *= 2;
    c->wbuf = xrealloc(c->wbuf, c->wcap);
}

static void push_req(struct conn *c, enum op op, uint64_t key, uint64_t t0) {
    c->q[(c->qhead + c->qcount) % c->qcap] = (struct req){key, t0, op};
    c->qcount++;
}

/* The binary protocol's opaque for key idx: echoed in the reply, so a reply to another
 * request is caught even though binary GET replies carry no key. */
static uint32_t key_opaque(uint64_t idx) { return (uint32_t)(idx ^ (idx >> 32)); }

static void queue_get(struct conn *c, uint64_t key, uint64_t t0) {
    char k[KEY_MAX];
    make_key(k, key);
    wreserve(c, cfg.key_size + KL_REQ_OVERHEAD);
    c->wlen += kl_encode_get(cfg.proto, c->wbuf + c->wlen, k, cfg.key_size, key_opaque(key));
    push_req(c, OP_GET, key, t0);
}

static void queue_set(struct conn *c, uint64_t key, uint64_t t0) {
    char k[KEY_MAX];
    make_key(k, key);
    wreserve(c, cfg.key_size + cfg.value_size + KL_REQ_OVERHEAD);
    c->wlen += kl_encode_set_head(cfg.proto, c->wbuf + c->wlen, k, cfg.key_size,
                                  key_flags(key), cfg.value_size, key_opaque(key));
    make_value(c->wbuf + c->wlen, key);
    c->wlen += cfg.value_size;
    c->wlen += kl_encode_set_tail(cfg.proto, c->wbuf + c->wlen);
    push_req(c, OP_SET, key, t0);
}

/* Queues new requests up to the phase's depth. */
static void refill(struct thread *t, struct conn *c, uint64_t now) {
    if (c->dead)
        return;
    if (t->phase == PHASE_PRELOAD) {
        while (c->qcount < cfg.preload_depth && c->next_preload < cfg.keys) {
            queue_set(c, c->next_preload, now);
            c->next_preload += cfg.conns;
        }
        return;
    }
    if (now >= g_deadline)
        return;
    while (c->qcount < cfg.pipeline) {
        uint64_t r = xorshift64s(&t->rng);
        uint64_t key = r % cfg.keys;
        double u = (double)(xorshift64s(&t->rng) >> 11) * 0x1.0p-53;
        if (u < cfg.get_ratio)
            queue_get(c, key, now);
        else
            queue_set(c, key, now);
    }
}

/* --- socket or TLS I/O ---------------------------------------------------------------------- */

enum io_res { IO_MOVED, IO_WAIT, IO_FAILED };

/* One send (or SSL_write) of the pending bytes. IO_WAIT: the socket (or OpenSSL) waits;
 * IO_FAILED: conn_fail has run. */
static enum io_res conn_send(struct thread *t, struct conn *c, size_t *done) {
    char why[320];
    const char *p = c->wbuf + c->wpos;
    size_t n = c->wlen - c->wpos;
    if (c->tls) {
        enum kl_io r = kl_tls_write(c->tls, p, n, done, why, sizeof why);
        c->write_wants_read = r == KL_IO_WANT_READ;
        if (r == KL_IO_OK)
            return IO_MOVED;
        if (r == KL_IO_WANT_READ || r == KL_IO_WANT_WRITE) {
            /* WANT_READ: EPOLLIN is always on; EPOLLOUT would only spin */
            set_events(t, c, r == KL_IO_WANT_WRITE || c->read_wants_write);
            return IO_WAIT;
        }
        conn_fail(t, c, r == KL_IO_CLOSED ? "connection closed by the server" : why);
        return IO_FAILED;
    }
    for (;;) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            *done = (size_t)k;
            return IO_MOVED;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(t, c, true);
            return IO_WAIT;
        }
        snprintf(why, sizeof why, "send failed: %s", strerror(errno));
        conn_fail(t, c, why);
        return IO_FAILED;
    }
}

/* One recv (or SSL_read) into buf. */
static enum io_res conn_recv(struct thread *t, struct conn *c, char *buf, size_t cap,
                             size_t *done) {
    char why[320];
    if (c->tls) {
        enum kl_io r = kl_tls_read(c->tls, buf, cap, done, why, sizeof why);
        c->read_wants_write = r == KL_IO_WANT_WRITE;
        if (r == KL_IO_OK)
            return IO_MOVED;
        if (r == KL_IO_WANT_WRITE)
            set_events(t, c, true); /* EPOLLOUT resumes the read (thread_main) */
        if (r == KL_IO_WANT_READ || r == KL_IO_WANT_WRITE)
            return IO_WAIT;
        conn_fail(t, c, r == KL_IO_CLOSED ? "connection closed by the server" : why);
        return IO_FAILED;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n > 0) {
            *done = (size_t)n;
            return IO_MOVED;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return IO_WAIT;
        if (n == 0)
            snprintf(why, sizeof why, "connection closed by the server");
        else
            snprintf(why, sizeof why, "recv failed: %s", strerror(errno));
        conn_fail(t, c, why);
        return IO_FAILED;
    }
}

static void flush(struct thread *t, struct conn *c) {
    while (!c->dead && c->wpos < c->wlen) {
        size_t n = 0;
        enum io_res r = conn_send(t, c, &n);
        if (r != IO_MOVED)
            return;
        c->wpos += n;
    }
    if (!c->dead) {
        c->wpos = c->wlen = 0;
        set_events(t, c, c->read_wants_write);
    }
}

static void complete(struct thread *t, struct conn *c, uint64_t now) {
    struct req *r = &c->q[c->qhead];
    if (r->op == OP_GET)
        t->c.gets++;
    else
        t->c.sets++;
    uint64_t lat = now > r->t0 ? now - r->t0 : 0;
    t->hist[hist_bucket(lat)]++;
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qcount--;
    t->last_progress = now;
}

/* A GET hit: the reply must be for the request's key (the key it names, or the binary
 * opaque) and, with --verify, carry the key's flags, length and bytes. */
static void check_hit(struct thread *t, struct conn *c, const struct req *r,
                      const struct kl_parsed *p) {
    char key[KEY_MAX + 1], got[160];
    make_key(key, r->key);
    key[cfg.key_size] = 0;
    if ((p->key && (p->klen != cfg.key_size || memcmp(p->key, key, p->klen) != 0)) ||
        (p->has_opaque && p->opaque != key_opaque(r->key))) {
        t->c.errors++;
        if (p->key)
            report(t, c, "GET %s: reply for another key \"%s\"", key,
                   kl_excerpt(p->key, p->klen, got, sizeof got));
        else
            report(t, c, "GET %s: reply with another request's opaque 0x%08" PRIx32, key, p->opaque);
        return;
    }
    t->c.hits++;
    if (!cfg.verify)
        return;
    bool good = p->flags == key_flags(r->key) && p->bytes == cfg.value_size;
    if (good) {
        make_value(t->expect, r->key);
        good = memcmp(t->expect, p->data, cfg.value_size) == 0;
    }
    if (!good) {
        t->c.verify_failures++;
        report(t, c, "GET %s: verify failed (flags %" PRIu64 ", %" PRIu64 " bytes; want flags %"
               PRIu32 ", %u bytes%s)", key, p->flags, p->bytes, key_flags(r->key),
               cfg.value_size, p->bytes == cfg.value_size ? ", content differs" : "");
    }
}

/* Parses complete replies at the head of the read buffer; returns false if the connection
 * broke. *need is set to the bytes a partially received reply needs in all (0 = unknown). */
static bool parse_replies(struct thread *t, struct conn *c, uint64_t now, size_t *need) {
    *need = 0;
    struct kl_parsed p;
    while (c->qcount > 0) {
        struct req *r = &c->q[c->qhead];
        bool get = r->op == OP_GET;
        const char *op = get ? "GET" : "SET";
        enum kl_reply k = kl_parse_reply(cfg.proto, get, c->rbuf + c->rpos, c->rlen - c->rpos, &p);
        switch (k) {
        case KL_NEED:
            *need = p.len;
            return true;
        case KL_FATAL:
            conn_fail(t, c, p.what);
            return false;
        case KL_UNEXPECTED:
            unexpected_reply(t, c, op, r->key, p.what);
            break;
        case KL_STORED:
        case KL_MISS:
            if (k != (get ? KL_MISS : KL_STORED)) /* cannot happen: the decoder knows the op */
                unexpected_reply(t, c, op, r->key, "reply of the wrong kind");
            else if (p.has_opaque && p.opaque != key_opaque(r->key))
                unexpected_reply(t, c, op, r->key, "reply with another request's opaque");
            else if (get)
                t->c.misses++;
            break;
        case KL_HIT:
            check_hit(t, c, r, &p);
            break;
        }
        c->rpos += p.len;
        complete(t, c, now);
    }
    return true;
}

/* Room for at least 4 KiB more at the read buffer's end (and for need bytes in all). */
static void rreserve(struct conn *c, size_t need) {
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    if ((c->rcap - c->rlen < 4096 || need > c->rcap - c->rpos) && c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    size_t cap = c->rcap;
    while (cap - c->rlen < 4096 || cap < need + 4096)
        cap *= 2;
    if (cap != c->rcap) {
        c->rcap = cap;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
}

/* Reads and handles replies until the socket has no more. Plain TCP stops after a short
 * read; TLS reads until OpenSSL says WANT_READ, since it may hold decrypted bytes that no
 * epoll event would announce. */
static void on_readable(struct thread *t, struct conn *c, uint64_t now) {
    size_t need = 0;
    for (;;) {
        rreserve(c, need);
        size_t n = 0;
        enum io_res r = conn_recv(t, c, c->rbuf + c->rlen, c->rcap - c->rlen, &n);
        if (r == IO_FAILED)
            return;
        if (r == IO_WAIT) {
            if (c->write_wants_read) /* the bytes SSL_write waited for may have come */
                flush(t, c);
            return;
        }
        bool full = n == c->rcap - c->rlen;
        c->rlen += n;
        now = now_ns(); /* a later pass of this loop completes requests sent by an earlier */
        if (!parse_replies(t, c, now, &need))
            return;
        refill(t, c, now);
        flush(t, c);
        if ((!full && !c->tls) || c->dead)
            return;
    }
}

/* Whether the connection has nothing more to do in this phase. */
static bool conn_done(const struct conn *c, enum phase ph, uint64_t now) {
    if (c->dead)
        return true;
    if (c->qcount > 0)
        return false;
    return ph == PHASE_PRELOAD ? c->next_preload >= cfg.keys : now >= g_deadline;
}

static void *thread_main(void *arg) {
    struct thread *t = arg;
    struct epoll_event evs[EPOLL_EVENTS];
    uint64_t now = now_ns();
    t->last_progress = now;
    for (unsigned i = 0; i < t->nconns; i++) {
        refill(t, &t->conns[i], now);
        flush(t, &t->conns[i]);
    }
    uint64_t timeout_ns = (uint64_t)(cfg.timeout * 1e9);
    for (;;) {
        now = now_ns();
        bool all_done = true;
        unsigned outstanding = 0;
        for (unsigned i = 0; i < t->nconns; i++) {
            struct conn *c = &t->conns[i];
            if (!conn_done(c, t->phase, now))
                all_done = false;
            if (!c->dead)
                outstanding += c->qcount;
        }
        if (all_done)
            break;
        if (outstanding > 0 && now - t->last_progress > timeout_ns) {
            fprintf(stderr,
                    "eleos-kvs-load: thread %u: no reply for %.0f s with %u request(s) "
                    "outstanding: giving up (the server stalled?)\n",
                    t->id, cfg.timeout, outstanding);
            t->c.stalls++;
            for (unsigned i = 0; i < t->nconns; i++)
                conn_fail(t, &t->conns[i], "stalled");
            break;
        }
        int wait_ms = 100;
        if (t->phase == PHASE_MEASURE && now < g_deadline) {
            uint64_t left_ms = (g_deadline - now) / 1000000u + 1;
            if (left_ms < (uint64_t)wait_ms)
                wait_ms = (int)left_ms;
        }
        int n = epoll_wait(t->ep, evs, EPOLL_EVENTS, wait_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die(1, "epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->dead)
                continue;
            now = now_ns();
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(t, c, now);
            if (!c->dead && (evs[i].events & EPOLLOUT) && c->read_wants_write)
                on_readable(t, c, now);
            if (!c->dead && (evs[i].events & EPOLLOUT))
                flush(t, c);
        }
    }
    return NULL;
}

/* --- setup -------------------------------------------------------------------------------- */

static int connect_one(const struct addrinfo *ai0, char *err, size_t errcap) {
    int last = 0;
    for (const struct addrinfo *ai = ai0; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        struct timeval tv = {10, 0}; /* bounds a blocking connect */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
                last = errno;
                close(fd);
                continue;
            }
            return fd;
        }
        last = errno;
        close(fd);
    }
    snprintf(err, errcap, "%s", last == EINPROGRESS || last == EAGAIN ? "connect timed out"
                                                                      : strerror(last));
    return -1;
}

static void raise_fd_limit(unsigned need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need)
        die(2, "-c %u needs %u descriptors, the limit is %llu", cfg.conns, need,
            (unsigned long long)rl.rlim_cur);
}

/* --- output ------------------------------------------------------------------------------- */

struct result {
    const char *phase;
    double duration;
    struct counters c;
    uint64_t *hist;
};

static const char *csv_header =
    "phase,threads,conns,pipeline,keys,key_size,value_size,get_ratio,data_mib,duration_s,ops,"
    "ops_per_s,gets,gets_per_s,sets,sets_per_s,hits,misses,hit_ratio,errors,verify_failures,"
    "conn_failures,p50_us,p90_us,p99_us,p999_us,max_us,protocol,tls";

static void print_result(const struct result *r, bool first) {
    const struct counters *c = &r->c;
    uint64_t ops = c->gets + c->sets;
    double d = r->duration > 0 ? r->duration : 1e-9;
    char hit_ratio[16] = ""; /* empty (CSV), null (JSON), n/a (text) without GETs */
    if (c->gets)
        snprintf(hit_ratio, sizeof hit_ratio, "%.4f", (double)c->hits / (double)c->gets);
    double p50 = hist_quantile(r->hist, ops, 0.50) / 1000, p90 = hist_quantile(r->hist, ops, 0.90) / 1000;
    double p99 = hist_quantile(r->hist, ops, 0.99) / 1000, p999 = hist_quantile(r->hist, ops, 0.999) / 1000;
    double maxv = 0;
    for (unsigned b = HIST_BUCKETS; b-- > 0;)
        if (r->hist[b]) {
            maxv = hist_value(b) / 1000;
            break;
        }
    double data_mib = (double)cfg.keys * cfg.value_size / 1048576.0;
    unsigned pipe = strcmp(r->phase, "preload") == 0 ? cfg.preload_depth : cfg.pipeline;
    double ratio = strcmp(r->phase, "preload") == 0 ? 0.0 : cfg.get_ratio;
    switch (cfg.out) {
    case OUT_CSV:
        if (first)
            puts(csv_header);
        printf("%s,%u,%u,%u,%" PRIu64 ",%u,%u,%.3f,%.1f,%.3f,%" PRIu64 ",%.0f,%" PRIu64 ",%.0f,%"
               PRIu64 ",%.0f,%" PRIu64 ",%" PRIu64 ",%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64
               ",%.1f,%.1f,%.1f,%.1f,%.1f,%s,%d\n",
               r->phase, cfg.threads, cfg.conns, pipe, cfg.keys, cfg.key_size, cfg.value_size,
               ratio, data_mib, r->duration, ops, (double)ops / d, c->gets,
               (double)c->gets / d, c->sets, (double)c->sets / d, c->hits, c->misses, hit_ratio,
               c->errors, c->verify_failures, c->conn_failures, p50, p90, p99, p999, maxv,
               kl_proto_name(cfg.proto), cfg.tls);
        break;
    case OUT_JSON:
        if (!hit_ratio[0])
            strcpy(hit_ratio, "null");
        printf("{\"phase\":\"%s\",\"threads\":%u,\"conns\":%u,\"pipeline\":%u,\"keys\":%" PRIu64
               ",\"key_size\":%u,\"value_size\":%u,\"get_ratio\":%.3f,\"data_mib\":%.1f,"
               "\"duration_s\":%.3f,\"ops\":%" PRIu64 ",\"ops_per_s\":%.0f,\"gets\":%" PRIu64
               ",\"gets_per_s\":%.0f,\"sets\":%" PRIu64 ",\"sets_per_s\":%.0f,\"hits\":%" PRIu64
               ",\"misses\":%" PRIu64 ",\"hit_ratio\":%s,\"errors\":%" PRIu64
               ",\"verify_failures\":%" PRIu64 ",\"conn_failures\":%" PRIu64
               ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
               "\"max_us\":%.1f,\"protocol\":\"%s\",\"tls\":%s}\n",
               r->phase, cfg.threads, cfg.conns, pipe, cfg.keys, cfg.key_size, cfg.value_size,
               ratio, data_mib, r->duration, ops, (double)ops / d, c->gets,
               (double)c->gets / d, c->sets, (double)c->sets / d, c->hits, c->misses, hit_ratio,
               c->errors, c->verify_failures, c->conn_failures, p50, p90, p99, p999, maxv,
               kl_proto_name(cfg.proto), cfg.tls ? "true" : "false");
        break;
    case OUT_TEXT:
        printf("%s: %.0f ops/s (%.0f gets/s, %.0f sets/s), %" PRIu64 " ops in %.2f s; "
               "hit ratio %s (%" PRIu64 " misses); errors %" PRIu64 ", verify failures %"
               PRIu64 "%s, lost connections %" PRIu64 "; latency p50 %.1f us, p99 %.1f us, "
               "max %.1f us [%s protocol%s, %u threads, %u conns, depth %u, %" PRIu64
               " keys x %u B = %.1f MiB]\n",
               r->phase, (double)ops / d, (double)c->gets / d, (double)c->sets / d, ops,
               r->duration, hit_ratio[0] ? hit_ratio : "n/a", c->misses, c->errors, c->verify_failures,
               cfg.verify ? "" : " (not verifying)", c->conn_failures, p50, p99, maxv,
               kl_proto_name(cfg.proto), cfg.tls ? " over TLS" : "", cfg.threads, cfg.conns, pipe, cfg.keys, cfg.value_size, data_mib);
        break;
    }
    fflush(stdout);
}

/* --- options ------------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f,
            "usage: eleos-kvs-load [options]\n"
            "  -s, --server=HOST      server address (default 127.0.0.1)\n"
            "  -p, --port=N           server port (default 11211)\n"
            "  -T, --threads=N        client threads, each an epoll loop (default 2)\n"
            "  -c, --connections=N    connections in all, spread over the threads (default 16)\n"
            "      --keys=N           keys in the data set (default 100000)\n"
            "      --key-size=N       key bytes, \"key:\" + zero-padded index (default 64)\n"
            "      --value-size=N     value bytes (default 1024)\n"
            "      --get-ratio=F      share of GETs in the measuring phase (default 0.9)\n"
            "      --secs=F           measuring phase length (default 5; with --preload, no\n"
            "                         measuring phase unless --secs is given)\n"
            "      --preload          first SET every key 0..N-1 once, pipelined\n"
            "      --preload-depth=N  SETs outstanding per connection while preloading (32)\n"
            "      --pipeline=N       requests outstanding per connection (default 1)\n"
            "      --seed=N           PRNG seed (default 1)\n"
            "      --verify           check every GET hit's flags, length and bytes\n"
            "      --timeout=F        give up after F s without a reply (default 30)\n"
            "      --protocol=P       text (get/set), binary (GET/SET) or meta (mg/ms);\n"
            "                         default text\n"
            "      --tls              TLS on every connection (handshake at connect)\n"
            "      --tls-ca=FILE      CA certificate(s) the server's must chain to (default:\n"
            "                         the system's); the certificate must name --server\n"
            "      --tls-insecure     accept any server certificate\n"
            "      --csv | --json     machine-readable output (one row/object per phase)\n"
            "  -h, --help\n"
            "exit status: 0 ok; 1 errors, verify failures, lost connections or a stall;\n"
            "2 bad options or no connection\n");
}

static uint64_t opt_u64(const char *name, const char *s, uint64_t min, uint64_t max) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        die(2, "--%s: expected an integer in [%" PRIu64 ", %" PRIu64 "], got \"%s\"", name, min,
            max, s);
    return v;
}

static double opt_double(const char *name, const char *s, double min, double max) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        die(2, "--%s: expected a number in [%g, %g], got \"%s\"", name, min, max, s);
    return v;
}

static void parse_options(int argc, char **argv) {
    enum { O_KEYS = 256, O_KSIZE, O_VSIZE, O_RATIO, O_SECS, O_PRELOAD, O_PDEPTH, O_PIPE,
           O_SEED, O_VERIFY, O_TIMEOUT, O_CSV, O_JSON, O_PROTO, O_TLS, O_TLS_CA, O_TLS_INSECURE };
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},
        {"port", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 'T'},
        {"connections", required_argument, NULL, 'c'},
        {"keys", required_argument, NULL, O_KEYS},
        {"key-size", required_argument, NULL, O_KSIZE},
        {"value-size", required_argument, NULL, O_VSIZE},
        {"get-ratio", required_argument, NULL, O_RATIO},
        {"secs", required_argument, NULL, O_SECS},
        {"preload", no_argument, NULL, O_PRELOAD},
        {"preload-depth", required_argument, NULL, O_PDEPTH},
        {"pipeline", required_argument, NULL, O_PIPE},
        {"seed", required_argument, NULL, O_SEED},
        {"verify", no_argument, NULL, O_VERIFY},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"csv", no_argument, NULL, O_CSV},
        {"json", no_argument, NULL, O_JSON},
        {"protocol", required_argument, NULL, O_PROTO},
        {"tls", no_argument, NULL, O_TLS},
        {"tls-ca", required_argument, NULL, O_TLS_CA},
        {"tls-insecure", no_argument, NULL, O_TLS_INSECURE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "s:p:T:c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': cfg.host = optarg; break;
        case 'p': opt_u64("port", optarg, 1, 65535); cfg.port = optarg; break;
        case 'T': cfg.threads = (unsigned)opt_u64("threads", optarg, 1, 1024); break;
        case 'c': cfg.conns = (unsigned)opt_u64("connections", optarg, 1, 1000000); break;
        case O_KEYS: cfg.keys = opt_u64("keys", optarg, 1, UINT64_MAX / 2); break;
        case O_KSIZE: cfg.key_size = (unsigned)opt_u64("key-size", optarg, KEY_PREFIX_LEN + 1, KEY_MAX); break;
        case O_VSIZE: cfg.value_size = (unsigned)opt_u64("value-size", optarg, 0, 1u << 30); break;
        case O_RATIO: cfg.get_ratio = opt_double("get-ratio", optarg, 0, 1); break;
        case O_SECS: cfg.secs = opt_double("secs", optarg, 0.001, 1e6); cfg.secs_set = true; break;
        case O_PRELOAD: cfg.preload = true; break;
        case O_PDEPTH: cfg.preload_depth = (unsigned)opt_u64("preload-depth", optarg, 1, 65536); break;
        case O_PIPE: cfg.pipeline = (unsigned)opt_u64("pipeline", optarg, 1, 65536); break;
        case O_SEED: cfg.seed = opt_u64("seed", optarg, 0, UINT64_MAX); break;
        case O_VERIFY: cfg.verify = true; break;
        case O_TIMEOUT: cfg.timeout = opt_double("timeout", optarg, 0.1, 1e6); break;
        case O_CSV: cfg.out = OUT_CSV; break;
        case O_JSON: cfg.out = OUT_JSON; break;
        case O_PROTO:
            if (!kl_proto_parse_name(optarg, &cfg.proto))
                die(2, "--protocol: expected text, binary or meta, got \"%s\"", optarg);
            break;
        case O_TLS: cfg.tls = true; break;
        case O_TLS_CA: cfg.tls_ca = optarg; break;
        case O_TLS_INSECURE: cfg.tls_insecure = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        die(2, "unexpected argument \"%s\" (see --help)", argv[optind]);
    g_key_width = cfg.key_size - KEY_PREFIX_LEN;
    unsigned digits = 1;
    for (uint64_t n = cfg.keys - 1; n >= 10; n /= 10)
        digits++;
    if (digits > g_key_width)
        die(2, "--key-size %u is too small for %" PRIu64 " keys (needs %u)", cfg.key_size,
            cfg.keys, KEY_PREFIX_LEN + digits);
    if (cfg.threads > cfg.conns)
        cfg.threads = cfg.conns;
    if ((cfg.tls_ca || cfg.tls_insecure) && !cfg.tls)
        die(2, "--tls-ca and --tls-insecure need --tls");
    if (cfg.tls_ca && cfg.tls_insecure)
        die(2, "--tls-ca and --tls-insecure exclude each other");
}

/* --- main --------------------------------------------------------------------------------- */

static bool run_phase(struct thread *ts, enum phase ph, struct result *res) {
    g_start = now_ns();
    g_deadline = g_start + (uint64_t)(cfg.secs * 1e9);
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct thread *t = &ts[i];
        t->phase = ph;
        memset(&t->c, 0, sizeof t->c);
        memset(t->hist, 0, HIST_BUCKETS * sizeof *t->hist);
        for (unsigned j = 0; j < t->nconns; j++)
            t->conns[j].next_preload = t->conns[j].id;
        int e = pthread_create(&t->th, NULL, thread_main, t);
        if (e)
            die(2, "pthread_create: %s", strerror(e));
    }
    for (unsigned i = 0; i < cfg.threads; i++)
        pthread_join(ts[i].th, NULL);
    uint64_t end = now_ns();
    memset(res, 0, sizeof *res);
    res->phase = ph == PHASE_PRELOAD ? "preload" : "measure";
    res->duration = (double)(end - g_start) / 1e9;
    res->hist = xmalloc(HIST_BUCKETS * sizeof *res->hist);
    memset(res->hist, 0, HIST_BUCKETS * sizeof *res->hist);
    for (unsigned i = 0; i < cfg.threads; i++) {
        const struct counters *c = &ts[i].c;
        res->c.gets += c->gets;
        res->c.sets += c->sets;
        res->c.hits += c->hits;
        res->c.misses += c->misses;
        res->c.errors += c->errors;
        res->c.verify_failures += c->verify_failures;
        res->c.conn_failures += c->conn_failures;
        res->c.stalls += c->stalls;
        for (unsigned b = 0; b < HIST_BUCKETS; b++)
            res->hist[b] += ts[i].hist[b];
    }
    const struct counters *c = &res->c;
    if (c->errors || c->verify_failures || c->conn_failures || c->stalls) {
        fprintf(stderr,
                "eleos-kvs-load: %s: %" PRIu64 " error(s), %" PRIu64 " verify failure(s), %"
                PRIu64 " lost connection(s)%s\n",
                res->phase, c->errors, c->verify_failures, c->conn_failures,
                c->stalls ? ", server stalled" : "");
        return false;
    }
    return true;
}

/* Connects c (and handshakes with --tls); any failure ends the program (exit 2). */
static void open_conn(struct thread *t, struct conn *c, const struct addrinfo *ai, unsigned qcap) {
    char err[384];
    c->fd = connect_one(ai, err, sizeof err);
    if (c->fd < 0)
        die(2, "cannot connect to %s:%s (connection %u of %u): %s", cfg.host, cfg.port,
            c->id + 1, cfg.conns, err);
    if (cfg.tls) {
        c->tls = kl_tls_connect(g_tls, c->fd, cfg.host, 10000, err, sizeof err);
        if (!c->tls)
            die(2, "%s:%s (connection %u of %u): %s", cfg.host, cfg.port, c->id + 1,
                cfg.conns, err);
        if (c->id == 0) {
            char d[128];
            fprintf(stderr, "eleos-kvs-load: TLS: %s\n", kl_tls_describe(c->tls, d, sizeof d));
        }
    }
    c->rcap = 16384 + 2 * (size_t)cfg.value_size;
    c->rbuf = xmalloc(c->rcap);
    c->wcap = 16384 + 2 * (size_t)cfg.value_size;
    c->wbuf = xmalloc(c->wcap);
    c->qcap = qcap;
    c->q = xmalloc(qcap * sizeof *c->q);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        die(2, "epoll_ctl: %s", strerror(errno));
}

int main(int argc, char **argv) {
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(cfg.conns + 64);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    int e = getaddrinfo(cfg.host, cfg.port, &hints, &ai);
    if (e)
        die(2, "cannot resolve %s:%s: %s", cfg.host, cfg.port, gai_strerror(e));

    if (cfg.tls) {
        char err[384];
        g_tls = kl_tls_ctx_new(cfg.tls_ca, cfg.tls_insecure, err, sizeof err);
        if (!g_tls)
            die(2, "TLS: %s", err);
    }
    struct thread *ts = xmalloc(cfg.threads * sizeof *ts);
    memset(ts, 0, cfg.threads * sizeof *ts);
    unsigned qcap = cfg.pipeline > cfg.preload_depth ? cfg.pipeline : cfg.preload_depth;
    unsigned next_id = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct thread *t = &ts[i];
        t->id = i;
        t->nconns = cfg.conns / cfg.threads + (i < cfg.conns % cfg.threads);
        t->conns = xmalloc(t->nconns * sizeof *t->conns);
        t->hist = xmalloc(HIST_BUCKETS * sizeof *t->hist);
        t->expect = xmalloc(cfg.value_size);
        uint64_t s = cfg.seed + i * 0x9e3779b97f4a7c15ull;
        t->rng = splitmix64(&s) | 1;
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (t->ep < 0)
            die(2, "epoll_create1: %s", strerror(errno));
        for (unsigned j = 0; j < t->nconns; j++) {
            struct conn *c = &t->conns[j];
            memset(c, 0, sizeof *c);
            c->id = next_id++;
            open_conn(t, c, ai, qcap);
        }
    }
    freeaddrinfo(ai);

    bool ok = true, first = true;
    struct result res;
    if (cfg.preload) {
        ok = run_phase(ts, PHASE_PRELOAD, &res);
        print_result(&res, first);
        first = false;
        free(res.hist);
    }
    if (ok && (!cfg.preload || cfg.secs_set)) {
        ok = run_phase(ts, PHASE_MEASURE, &res);
        print_result(&res, first);
        free(res.hist);
    }
    for (unsigned i = 0; i < cfg.threads; i++) {
        for (unsigned j = 0; j < ts[i].nconns; j++) {
            struct conn *c = &ts[i].conns[j];
            if (!c->dead) {
                kl_tls_free(c->tls);
                close(c->fd);
            }
            free(c->rbuf);
            free(c->wbuf);
            free(c->q);
        }
        close(ts[i].ep);
        free(ts[i].conns);
        free(ts[i].hist);
        free(ts[i].expect);
    }
    free(ts);
    kl_tls_ctx_free(g_tls);
    return ok ? 0 : 1;
}
