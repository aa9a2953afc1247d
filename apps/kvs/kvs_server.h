/*
 * kvs_server.h — the interface between eleos-kvs's two halves.
 *
 *   host_main.c        host side: options, the listening socket, the enclave and its
 *                      services, worker threads, signals, the final
 *                      statistics. Holds no state the enclave relies on.
 *   enclave_server.c   enclave side: the ECALL entry points below, the trusted server state
 *                      (store, workers, connection table), the `stats` hooks.
 *   enclave_net.c      enclave side: the worker event loop on readiness (epoll), for native
 *                      mode and for system calls that are exits or one-at-a-time RPCs;
 *                      the connection table.
 *   enclave_netq.c     enclave side: the worker loop on completions (eleos/ioq.h), for the
 *                      batched I/O path (--rpc auto and the executors).
 *
 * The host hands the enclave plain values only. Every ECALL argument is either an integer
 * or a host struct the enclave copies once and validates (struct kvs_setup); the enclave
 * never keeps a pointer the host chose, except untrusted buffers it checked to lie outside
 * the enclave. In native mode the same code runs on the host without an enclave.
 */
#ifndef ELEOS_KVS_SERVER_H
#define ELEOS_KVS_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app_options.h"
#include "kvs_common.h"
#include "app_io.h"
#include "kvs_gather.h"
#include "kvs_proto.h"
#include "kvs_store.h"

/* Per connection: the receive size, and the unsent output above which a connection stops
 * taking commands (and stops reading) until its client has drained replies. */
#define KVS_READ_CHUNK (16u << 10)
#define KVS_WBUF_HIGH (1u << 20)
/* The largest unconsumed input: a partial command line plus one read. */
#define RBUF_MAX (KVS_LINE_HARD_MAX + KVS_READ_CHUNK)
/* Receive posted per connection on the completion path (its buffer is held while posted). */
#define KVS_RECV_POST (2u << 10)
/* and the receive that drains what else is there once one filled its buffer */
#define KVS_RECV_DRAIN (8u << 10)
/* Events per epoll_wait: amortises the call (an exit in sgx mode) over a busy loop. */
#define KVS_EPOLL_BATCH 64
/* Accepts per listen-socket wakeup, so one worker does not hog a connection burst. */
#define KVS_ACCEPT_BATCH 16
/* After accept fails for lack of descriptors (EMFILE/ENFILE) a worker stops watching the
 * listener for this long, or until one of its connections closes. */
#define KVS_ACCEPT_BACKOFF_MS 100
/* Descriptors kept beyond -c for listeners, epoll instances and pipes (memcached reserves
 * 20; `stats` shows it). */
#define RESERVED_FDS 20u
/* The smallest fixed SUVM cache the enclave accepts (0 = auto: SUVM sizes it). */
#define KVS_SUVM_CACHE_MIN_BYTES (2u << 20)
/* Listening descriptors (every address of every -l entry, or the unix socket). A listener's
 * settings.listeners[] index, or one of these: */
#define KVS_MAX_LISTEN_FDS 16u
#define KVS_LISTENER_DEFAULT 0xfeu   /* no -l: the default address                      */
#define KVS_LISTENER_UNIX 0xffu      /* -s                                              */
/* Largest -t and the interface name the enclave copies in. */
#define KVS_MAX_THREADS 256u
#define KVS_IFACE_MAX 64u

/* Setup values, host -> enclave (copied once by kvs_enclave_setup, then validated). */
struct kvs_setup {
    enum app_mode mode;
    bool rpc_on, suvm_on;
    int io_exec;             /* the I/O queue's executor, or -1: not the queue path */
    int io_mod;              /* the I/O queue's moderation (enum eleos_ioq_moderation) */
    int io_gather;           /* the queue path's consolidation (enum kvs_gather_mode)  */
    unsigned threads, maxconns, verbose, port;
    size_t mem_limit, item_size_max;
    size_t suvm_cache, suvm_backing;
    int stop_fd;
    unsigned nlisten;                            /* listening descriptors, 1 or more   */
    int listen_fds[KVS_MAX_LISTEN_FDS];
    uint8_t listen_conf[KVS_MAX_LISTEN_FDS];     /* each one's listener (see above)     */
    int udp_fd;                                  /* -U: the UDP socket, or -1           */
    char interface[KVS_IFACE_MAX];
    /* memcached's settings (copied with the rest, checked by kvs_settings_check) */
    struct kvs_settings settings;
    /* untrusted memory the enclave may use (checked to lie outside it): */
    void *rpc_area;          /* the RPC pool's shared area (rpc_on)               */
    size_t rpc_area_size;
    void *wake_page;         /* futex wake words for the enclave's locks          */
    size_t wake_page_size;
    /* written back by the enclave; opaque to the host: */
    void *out_suvm;          /* the SUVM instance, for eleos_suvm_evictor_start   */
};

/* A host buffer the enclave writes a text report into (copied in, then checked). */
struct kvs_report {
    char *buf;
    size_t cap;
    size_t len;              /* written by the enclave */
};

/* Wake words the enclave needs: one per worker lock, the connection table's, the store's,
 * the TLS context's, the watchers'. */
#define KVS_WAKE_WORDS(threads) ((size_t)(threads) + 4u)

/* ECALL bodies (eleos_enclave_fn). Native mode calls them directly. */
long kvs_enclave_setup(void *setup);          /* struct kvs_setup *: 0 or -errno        */
long kvs_enclave_worker(void *index);         /* (uintptr_t) worker index; runs the loop */
long kvs_enclave_teardown(void *unused);
long kvs_enclave_stats(void *report);         /* struct kvs_report *: `stats` output     */
long kvs_enclave_udp(void *unused);           /* -U: serves the UDP socket until stopped  */

/* --- enclave side internals (enclave_server.c <-> enclave_net.c) ----------------------- */

struct kvs_conn {
    int fd;
    uint32_t slot;
    uint64_t tag;
    uint32_t events;          /* interest currently registered (epoll loop)      */
    bool more;                /* commands wait in rbuf for the output to drain  */
    /* completion loop: what is in flight, and a close under way */
    bool recv_posted, send_posted, closing;
    bool draining;            /* the posted receive only drains what is there       */
    bool moving;              /* its receive is cancelled: it goes to another worker  */
    uint8_t listener;         /* the listener it came from: kvs_conn_listener()     */
    int64_t active_s;         /* monotonic second of its last input (idle_timeout)  */
    struct kvs_conn *next;    /* in a worker's inbox                             */
    struct kvs_proto proto;
    struct kvs_buf rbuf;      /* unconsumed input                                */
    struct kvs_buf wbuf;      /* unsent replies (ciphertext on a TLS connection)  */
    size_t wpos;              /* bytes of wbuf already sent                      */
    struct kvs_tls_conn *tls; /* the TLS session (enclave_tls.h), NULL: plain text */
};

struct eleos_ioq;
struct kvs_tls;
struct kvs_tls_conn;

struct kvs_worker {
    unsigned id;
    struct kvs_thread_stats stats;
    struct app_io_ctx io_ctx;
    char *scratch;                    /* KVS_READ_CHUNK receive buffer (trusted)          */
    _Atomic bool entered;             /* a host thread runs this worker's loop            */
    int result;                       /* 0 or -errno when the loop ended                  */
    int epfd;                         /* made at set-up; -1 after the loop ended          */
    /* lock protects running and closed: an acceptor checks them to hand a connection over. */
    struct kvs_lock lock;
    bool running;                     /* the loop takes connections                       */
    bool closed;                      /* the loop has ended: take no more connections     */
    /* completion loop: connections other workers accepted for this one (under lock) and
     * the eventfd they ring (through their own queues) to say so */
    struct kvs_conn *inbox;
    int wake_fd;
    /* the queue's counters, published by the worker for `stats` */
    _Atomic uint64_t q_exits, q_ops, q_completions, q_spins, q_faults, q_switches, q_trials;
    _Atomic uint64_t q_moderated, q_mod_timeouts;
    _Atomic int q_exec;
    /* consolidation (kvs_gather.h): connections held, and the thread's CPU time over
     * the last period (permille of a core) with the millisecond it was measured */
    _Atomic uint32_t nconns, cpu_permille;
    _Atomic int64_t cpu_ms;
};

/* Connections by slot. epoll carries (generation << 32 | slot) for a connection, never a
 * pointer: the value comes back from the host, so it is looked up here and checked to be
 * live and owned by the worker that got it. meta[slot] = generation << 32 | (owner + 1),
 * 0 when free; only the owner frees a slot, so a lookup by the owner is stable. */
struct kvs_conn_table {
    struct kvs_lock lock;             /* the free list                                   */
    uint32_t size;
    _Atomic uint64_t *meta;
    struct kvs_conn *_Atomic *conn;
    uint32_t *gen;                    /* next generation per slot (under lock)            */
    uint32_t *free_slots;
    uint32_t nfree;
    /* `stats conns`: per slot, the descriptor and what the protocol publishes (never freed
     * while the server runs, so any worker may read another's) */
    _Atomic int *fds;
    struct kvs_conn_info *info;
};

struct kvs_server {
    struct kvs_ctx ctx;               /* shared protocol context (hooks point back here) */
    struct kvs_store *store;
    const struct kvs_alloc *alloc;    /* trusted heap: the enclave heap in enclave modes */
    const struct app_io_ops *io;
    unsigned nlisten;
    int listen_fds[KVS_MAX_LISTEN_FDS];
    uint8_t listen_conf[KVS_MAX_LISTEN_FDS];
    int udp_fd;                       /* -U, or -1                                       */
    int stop_fd;                      /* read end of the stop pipe: readable = stop      */
    unsigned nworkers;
    struct kvs_worker *workers;
    unsigned maxconns;
    struct kvs_conn_table conns;
    _Atomic unsigned next_worker;     /* round-robin cursor for new connections          */
    _Atomic uint64_t curr_conns, total_conns, rejected_conns, conn_structs;
    _Atomic uint64_t host_faults;     /* host results refused (forged epoll tags, ...)   */
    _Atomic uint64_t accept_backoffs; /* listener paused for lack of descriptors         */
    _Atomic int64_t accept_log_ms;    /* when the last accept error was logged           */
    _Atomic uint64_t wait_errors;     /* epoll_wait failures the loop survived           */
    _Atomic uint64_t idle_kicks;      /* connections closed by idle_timeout              */
    int io_exec;                      /* >= 0: workers run the completion loop on a queue */
    int io_mod;                       /* the queues' moderation                          */
    int io_gather;                    /* consolidation (enum kvs_gather_mode)            */
    _Atomic unsigned io_active;       /* workers that hold connections (kvs_gather.h)    */
    _Atomic uint64_t conn_moves;      /* connections handed to another worker            */
    _Atomic uint64_t conns_emptied;   /* times the last connection closed                */
    struct kvs_gather gather;         /* worker 0's decision state                       */
    struct kvs_tls *tls;              /* -Z: the TLS context (enclave_tls.h), else NULL   */
};

/* The worker's event loop: returns when the stop pipe becomes readable. Runs in enclave
 * mode in sgx/eleos modes (its memory comes from srv->alloc; its system calls go through
 * srv->io). Closes every connection it owns before returning. */
int kvs_worker_loop(struct kvs_server *srv, struct kvs_worker *w);
/* Creates w's epoll instance (set-up, before any worker runs). 0 or -errno. */
int kvs_worker_prepare(struct kvs_server *srv, struct kvs_worker *w);

/* The completion loop (enclave_netq.c) and its set-up. */
int kvs_worker_loop_q(struct kvs_server *srv, struct kvs_worker *w);
int kvs_worker_prepare_q(struct kvs_server *srv, struct kvs_worker *w);

/* The listener a connection was accepted on: an index into settings.listeners[] (its
 * address, port and "notls:" flag), or KVS_LISTENER_DEFAULT / KVS_LISTENER_UNIX. */
static inline unsigned kvs_conn_listener(const struct kvs_conn *c) {
    return c->listener;
}

/* idle_timeout (memcached's connection timeout thread, done by each loop for its own
 * connections): how often a loop looks, and whether c has been idle too long. */
#define KVS_IDLE_CHECK_MS 1000
bool kvs_conn_idle(const struct kvs_server *srv, const struct kvs_conn *c, int64_t now_s);
/* `watch`: how often a worker moves its watchers' log lines to their connections, and
 * whether it should look now (a watcher exists and the period has passed). */
#define KVS_WATCH_FLUSH_MS 50
bool kvs_watch_due(struct kvs_server *srv, int64_t *next_ms, int64_t now, int *timeout);

/* After a feed: the server acts on a `shutdown` the connection asked for (-A). */
void kvs_shutdown_check(struct kvs_proto *p);
/* -U: the UDP thread's loop (enclave_udp.c); returns when the stop pipe is readable. */
int kvs_udp_loop(struct kvs_server *srv);

/* Shared by both loops (enclave_net.c). */
extern const char kvs_too_many_conns[];
int64_t kvs_now_unix(void);
int64_t kvs_now_ms(void);
int64_t kvs_now_ns(void);
bool kvs_slot_take(struct kvs_server *srv, struct kvs_conn *c);
void kvs_slot_publish(struct kvs_server *srv, struct kvs_conn *c, unsigned owner);
void kvs_slot_give_back(struct kvs_server *srv, uint32_t slot);
/* Makes owner the owner of c's slot (a connection moved between workers); nothing else. */
void kvs_slot_move(struct kvs_server *srv, struct kvs_conn *c, unsigned owner);
struct kvs_conn *kvs_conn_lookup(struct kvs_server *srv, unsigned worker, uint64_t tag);
/* The connection in slot (< srv->conns.size) if worker owns it, else NULL: a worker walks
 * its own connections this way (only the owner frees a slot, so the answer is stable). */
struct kvs_conn *kvs_conn_owned(struct kvs_server *srv, unsigned worker, uint32_t slot);
void kvs_conn_release(struct kvs_server *srv, struct kvs_conn *c);
void kvs_accept_backoff_log(struct kvs_server *srv, int err);
bool kvs_accept_held(struct kvs_server *srv);

/* The connection table: 0 or -ENOMEM; fini frees the table (connections are gone by then). */
int kvs_conn_table_init(struct kvs_server *srv, _Atomic uint32_t *wake);
void kvs_conn_table_fini(struct kvs_server *srv);

#endif
