/*
 * kvs_proto.h — memcached's protocols as a pure function (the text and meta protocols here
 * and in kvs_meta.c, the binary protocol in kvs_bin.c, chosen by a connection's first byte):
 *   (connection state, input bytes) -> (bytes consumed, output bytes, store operations).
 *
 * No sockets, no clock, no system calls: the event loop feeds what it read, sends what comes
 * out, and closes when asked; unit tests and the fuzzer call the same function directly.
 * Replies follow memcached 1.6.18 byte for byte for the commands eleos-kvs implements
 * (docs/kvs.md lists them) and the meta protocol (mg ms md ma mn me, kvs_meta.c).
 */
#ifndef ELEOS_KVS_PROTO_H
#define ELEOS_KVS_PROTO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvs_auth.h"
#include "kvs_bin.h"
#include "kvs_common.h"
#include "kvs_settings.h"
#include "kvs_store.h"
#include "kvs_watch.h"

/* The version we answer with: clients feature-detect on it, and we implement its text
 * protocol. Our own version is in "stats" as eleos_version. */
#define KVS_MEMCACHED_VERSION "1.6.18"
#define KVS_ELEOS_VERSION "0.1"

/* memcached: a command line without '\n' after this many bytes must be a large multiget,
 * else the connection is closed. */
#define KVS_LINE_SOFT_MAX 2048u
/* A get/gets line longer than KVS_LINE_SOFT_MAX without its '\n' yet is served as it arrives
 * (KVS_PS_GETSTREAM): its complete keys are answered and consumed and only an unfinished key
 * stays unconsumed, so no line needs more than one read plus a key buffered; any other line
 * is dropped at KVS_LINE_SOFT_MAX. The server loops still refuse to buffer more than this
 * (RBUF_MAX), a bound the parser never comes near. */
#define KVS_LINE_HARD_MAX (1u << 20)
/* A single get's response is built in memory (values are copied out of the store under its
 * lock, so SUVM can page them); beyond this it is refused with memcached's
 * "SERVER_ERROR out of memory writing get response". */
#define KVS_GET_RESPONSE_MAX (64u << 20)

/* Per worker-thread counters; only the owner thread writes them, stats readers sum them. */
#define KVS_THREAD_STATS(X)                                                                 \
    X(get_cmds) X(get_hits) X(get_misses) X(touch_cmds) X(touch_hits) X(touch_misses)      \
    X(set_cmds) X(delete_hits) X(delete_misses) X(incr_hits) X(incr_misses) X(decr_hits)    \
    X(decr_misses) X(cas_hits) X(cas_misses) X(cas_badval) X(flush_cmds)                    \
    X(store_too_large) X(store_no_memory) X(bytes_read) X(bytes_written)                    \
    X(meta_cmds) X(protocol_errors) X(auth_cmds) X(auth_errors) X(conn_yields)

struct kvs_thread_stats {
#define KVS_X(f) _Atomic uint64_t f;
    KVS_THREAD_STATS(KVS_X)
#undef KVS_X
};
struct kvs_thread_totals {
#define KVS_X(f) uint64_t f;
    KVS_THREAD_STATS(KVS_X)
#undef KVS_X
};

static inline void kvs_stat_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
void kvs_thread_stats_sum(const struct kvs_thread_stats *t, struct kvs_thread_totals *sum);
void kvs_thread_stats_reset(struct kvs_thread_stats *t);

/* Server-wide facts for "stats", filled by the server (zeros in tests). */
struct kvs_server_info {
    int64_t pid;
    double rusage_user, rusage_system;
    uint64_t max_connections, curr_connections, total_connections, rejected_connections;
    uint64_t connection_structures, reserved_fds;
    unsigned threads;
    struct kvs_thread_totals totals;  /* summed over every worker                      */
    bool have_totals;                 /* else the calling connection's thread is used  */
    /* TLS (-Z), filled by the TLS layer: memcached's general ssl_* fields */
    uint64_t ssl_handshake_errors, ssl_new_sessions;
    int64_t ssl_cert_refreshed;       /* Unix time the certificates were (re)loaded    */
    uint64_t idle_kicks;              /* connections closed by -o idle_timeout          */
};

/* `stats conns`: what the server shares about one connection. A table the server owns
 * (never freed while it runs) holds one per slot, so a worker can list the others' without
 * touching their (freeable) connection state. */
enum kvs_conn_state {
    KVS_CS_NEW,      /* nothing read yet                  (memcached: conn_new_cmd) */
    KVS_CS_READ,     /* waiting for a command             (conn_read)               */
    KVS_CS_NREAD, KVS_CS_SWALLOW, KVS_CS_MWRITE, KVS_CS_CLOSING,
};
struct kvs_conn_info {
    _Atomic uint32_t last_cmd;        /* rel_time of the last command                  */
    _Atomic uint32_t state;           /* enum kvs_conn_state                           */
};
struct kvs_conn_stat {
    int id;                           /* memcached prints the descriptor               */
    bool listening;                   /* the listener: addr is its own, no listen_addr */
    char addr[96], listen_addr[96];   /* "tcp:1.2.3.4:5" as memcached formats them     */
    const struct kvs_conn_info *info; /* NULL for the listener                          */
};

/* Shared by every connection. Hooks may be NULL. */
struct kvs_ctx {
    struct kvs_store *store;
    const struct kvs_alloc *alloc;    /* trusted heap for connection buffers            */
    _Atomic unsigned verbosity;
    /* settings shown by "stats settings" */
    unsigned port, maxconns, threads;
    const char *interface;
    size_t maxbytes;
    /* memcached's settings (kvs_settings.h); NULL = its defaults (unit tests) */
    const struct kvs_settings *settings;
    /* credentials (kvs_auth.h), loaded by the enclave at set-up; NULL = none */
    const struct kvs_auth *auth_ascii;    /* -Y                                         */
    const struct kvs_auth *auth_sasl;     /* -S: the SASL password database             */
    struct kvs_watch *watch;              /* `watch` (kvs_watch.h); NULL = not offered  */
    /* hooks */
    void (*server_info)(void *arg, struct kvs_server_info *out);
    int (*eleos_stats)(void *arg, struct kvs_buf *out); /* appends "STAT eleos_* ..." lines */
    void (*stats_reset)(void *arg);
    /* `stats conns`: the entry at *cursor or after it (listener first; 0 starts), with
     * *cursor advanced past it; false when there is none */
    bool (*conn_stat)(void *arg, size_t *cursor, struct kvs_conn_stat *out);
    /* refresh_certs (TLS): 0, or -1 with memcached's error line appended to msg */
    int (*refresh_certs)(void *arg, struct kvs_buf *msg);
    void *hook_arg;
    /* `stats detail on|off` at run time: 0 = as settings->detail_enabled (-D), 1 on, 2 off */
    _Atomic int detail;
};

/* KVS_PS_MGET: a multiget suspended at out_limit; its line is still the first unconsumed
 * input, and the next feed (with the line at its start) continues it. */
enum kvs_proto_state { KVS_PS_CMD, KVS_PS_DATA, KVS_PS_SWALLOW, KVS_PS_MGET,
                       KVS_PS_GETSTREAM, /* a long get line served key by key as it arrives */
                       KVS_PS_AUTH };    /* -Y: the auth "set"'s payload being received  */

/* `shutdown` (-A): memcached closes the connection and raises SIGINT, or SIGUSR1 for
 * `shutdown graceful`; the server loop does that when it sees p->shutdown. */
enum { KVS_SHUTDOWN_NONE, KVS_SHUTDOWN_NOW, KVS_SHUTDOWN_GRACEFUL };

/* One connection's protocol state. Caller storage; one thread at a time. */
struct kvs_proto {
    struct kvs_ctx *ctx;
    struct kvs_thread_stats *stats;
    enum kvs_proto_state state;
    bool noreply;
    bool close;                       /* close once the output so far has been sent     */
    bool abort;                       /* close at once, dropping unsent output (memcached's
                                         conn_closing: HTTP requests, overlong lines)   */
    enum kvs_store_cmd cmd;
    uint64_t cas;
    struct kvs_item *item;            /* value being received (KVS_PS_DATA)             */
    size_t vlen, have;                /* value bytes expected / received                */
    char crlf[2];                     /* the two bytes after the value                  */
    uint8_t ncrlf;
    uint64_t swallow;                 /* bytes left to discard (KVS_PS_SWALLOW)          */
    size_t batch_start;               /* out->len when this feed began (one read batch)  */
    size_t out_limit;                 /* stop taking commands once out holds this many
                                         bytes (0 = no limit); the rest stays unconsumed */
    unsigned reqs_per_event;          /* -R: commands per feed before it yields (0 = no
                                         limit); the loop sets it                        */
    bool yielded;                     /* the last feed stopped at reqs_per_event with
                                         input left: feed it again later                 */
    uint8_t shutdown;                 /* `shutdown` accepted (-A): KVS_SHUTDOWN_*        */
    int cfd;                          /* the connection's descriptor (watch lines)      */
    bool watching;                    /* `watch` answered OK: the loop registers it      */
    uint8_t watch_flags;              /* its KVS_LOG_* set                               */
    int watch_slot;                   /* its kvs_watch slot (the loop's), -1 none        */
    /* the multiget in progress (KVS_PS_MGET): offsets into its line, its flags */
    size_t mget_next, mget_end, mget_len;
    uint32_t mget_exptime;
    bool mget_cas, mget_touch;
    /* the protocol (fixed by the first byte, kvs_bin.h) and the binary protocol's state */
    enum kvs_wire wire;
    struct kvs_bin bin;
    /* an ms whose value is being received (kvs_meta.c): the flags its reply returns, in
     * request order ('O', 'k', 'c'), the opaque, q, and I */
    struct {
        bool active, quiet, stale;
        char ret[4];
        uint8_t nopaque;
        char opaque[32];
    } mset;
    /* KVS_PS_GETSTREAM: where its replies began in out this feed (SIZE_MAX: an earlier
     * feed), and an error that discards the rest of the line */
    size_t stream_start;
    bool stream_failed, stream_any;
    /* -Y (kvs_text_auth.c): authenticated yet; the auth payload's size (KVS_PS_AUTH); where
     * the last unauthenticated reply of this feed began (memcached overwrites it) */
    bool authenticated;
    size_t auth_len;
    size_t auth_reply_at;
    /* the server's record of this connection for `stats conns` (NULL in tests) */
    struct kvs_conn_info *info;
};

/* ctx's settings, or memcached's defaults when it has none. */
const struct kvs_settings *kvs_ctx_settings(const struct kvs_ctx *ctx);

void kvs_proto_init(struct kvs_proto *p, struct kvs_ctx *ctx, struct kvs_thread_stats *st);
/* Releases a half-received item (a client that disconnects mid-command). */
void kvs_proto_fini(struct kvs_proto *p);

/*
 * Feeds input. Consumes complete commands and value bytes, appends replies to out, and
 * returns how many bytes of in it consumed; an incomplete command line is left unconsumed
 * (feed it again with more bytes appended), and so is a multiget suspended at out_limit
 * (feed it again, starting with that line, once out has drained below the limit). in is
 * modified (lines are tokenized in place, as memcached does). Sets p->close when the connection must be closed after sending what
 * is in out (quit), and also p->abort when unsent output must be dropped (a line too long
 * to be a command, an HTTP request, out of memory building a reply).
 */
size_t kvs_proto_feed(struct kvs_proto *p, char *in, size_t len, struct kvs_buf *out);

#endif
