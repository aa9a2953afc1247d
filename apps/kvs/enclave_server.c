/*
 * enclave_server.c — eleos-kvs inside the enclave: the ECALL entry points of kvs_server.h,
 * the trusted server state and the `stats` hooks.
 *
 * Where state lives: everything the server relies on (store, workers, their locks and
 * buffers, the connection table, the SUVM and RPC handles) is allocated on the enclave heap
 * by the setup ECALL, and the one pointer to it is a global of this file. Globals of
 * enclave_*.c files are the enclave image's data (an SGX enclave's .data, measured and in
 * the EPC); the emulator does not protect them, but host_*.c code never names them, and no
 * host value becomes a pointer here. The host passes integers, or one host struct that is
 * copied in once (struct kvs_setup) and validated before anything is built from it.
 *
 * In native mode the same functions run on the host without an enclave: "enclave heap" is
 * libc's, and the checks against the enclave's range are skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "eleos/enclave.h"
#include "eleos/ioq.h"
#include "eleos/rpc.h"
#include "eleos/suvm.h"
#include "eleos/sys.h"
#include "enclave_tls.h"
#include "kvs_backend.h"
#include "kvs_server.h"

/* SUVM address space beyond -m: every slab class may take a first page over the limit
 * (memcached's rule), plus a reserved first page of the SUVM address space. */
#define SUVM_BACKING_SLACK_PAGES (KVS_MAX_SLAB_CLASSES + 2u)
/* Largest `stats` report copied out to the host. */
#define REPORT_MAX (16u << 20)

struct kvs_enclave {
    struct kvs_server srv;
    struct kvs_alloc alloc;           /* the enclave heap (libc's in native mode)        */
    struct kvs_setup set;             /* the validated copy of the host's setup values   */
    struct eleos_enclave *enc;        /* NULL in native mode                              */
    struct eleos_suvm *suvm;
    struct eleos_rpc_client *rpc;
    _Atomic uint32_t *wake;           /* untrusted wake words (enclave modes)             */
    _Atomic unsigned active;          /* workers inside their loop                        */
    int64_t pid;
    struct kvs_auth *auth_ascii, *auth_sasl;  /* credentials (-Y, -S)                  */
    struct kvs_watch watch;           /* `watch` (unless -W)                              */
};

static struct kvs_enclave *kvs;

/* Untrusted memory the host names must really be outside the enclave (else the host could
 * make us use trusted memory as a bounce buffer or a futex word). */
static bool host_range(const struct kvs_enclave *k, const void *p, size_t size) {
    return !k->enc || (p && eleos_enclave_outside(k->enc, p, size));
}

static int setup_check(const struct kvs_enclave *k, struct kvs_setup *s) {
    if (kvs_settings_check(&s->settings))
        return -EINVAL;
    if (s->mode > APP_MODE_ELEOS || (s->mode == APP_MODE_NATIVE) != !k->enc ||
        ((s->rpc_on || s->suvm_on) && !k->enc))
        return -EINVAL;
    if (s->threads == 0 || s->threads > KVS_MAX_THREADS || s->maxconns == 0 ||
        s->maxconns > (1u << 20) || s->mem_limit == 0 || s->mem_limit > (1ull << 40) ||
        s->item_size_max < KVS_ITEM_SIZE_MIN || s->item_size_max > (1u << 30) ||
        s->stop_fd < 0 || s->port > 65535 || s->udp_fd < -1)
        return -EINVAL;
    if (s->nlisten == 0 || s->nlisten > KVS_MAX_LISTEN_FDS)
        return -EINVAL;
    for (unsigned i = 0; i < s->nlisten; i++) {
        unsigned conf = s->listen_conf[i];
        if (s->listen_fds[i] < 0 || (conf >= s->settings.nlisteners &&
                                     conf != KVS_LISTENER_DEFAULT && conf != KVS_LISTENER_UNIX))
            return -EINVAL;
    }
    if (s->suvm_on && s->suvm_cache != 0 &&
        (s->suvm_cache < KVS_SUVM_CACHE_MIN_BYTES || s->suvm_cache > (1ull << 40)))
        return -EINVAL;
    if (k->enc && (s->wake_page_size < KVS_WAKE_WORDS(s->threads) * sizeof(uint32_t) ||
                   (uintptr_t)s->wake_page % sizeof(uint32_t) ||
                   !host_range(k, s->wake_page, s->wake_page_size)))
        return -EINVAL;
    if (s->rpc_on && !host_range(k, s->rpc_area, s->rpc_area_size))
        return -EINVAL;
    if (s->io_exec < -1 || s->io_exec >= (int)ELEOS_IOQ_NEXEC || (s->io_exec >= 0 && !k->enc) ||
        (s->io_exec >= 0 && s->rpc_on) || s->io_mod < 0 || s->io_mod > (int)ELEOS_IOQ_MOD_ON ||
        !kvs_gather_mode_name(s->io_gather))
        return -EINVAL;
    return 0;
}

static _Atomic uint32_t *wake_word(struct kvs_enclave *k, size_t i) {
    return k->wake ? &k->wake[i] : NULL;
}

static int workers_create(struct kvs_enclave *k) {
    struct kvs_server *srv = &k->srv;
    srv->nworkers = k->set.threads;
    atomic_store_explicit(&srv->io_active, srv->nworkers, memory_order_relaxed);
    srv->workers = kvs_malloc(&k->alloc, srv->nworkers * sizeof *srv->workers);
    if (!srv->workers)
        return -ENOMEM;
    memset(srv->workers, 0, srv->nworkers * sizeof *srv->workers);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct kvs_worker *w = &srv->workers[i];
        w->id = i;
        w->epfd = -1;
        w->wake_fd = -1;
        atomic_init(&w->q_exec, -1);
        kvs_lock_init(&w->lock, wake_word(k, i));
        w->scratch = kvs_malloc(&k->alloc, KVS_READ_CHUNK);
        if (!w->scratch)
            return -ENOMEM;
        int r = app_io_ctx_init(&w->io_ctx, srv->io);
        if (r)
            return r;
    }
    return 0;
}

static void workers_destroy(struct kvs_enclave *k) {
    struct kvs_server *srv = &k->srv;
    if (!srv->workers)
        return;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct kvs_worker *w = &srv->workers[i];
        if (w->epfd >= 0) /* a worker whose loop never ran */
            srv->io->close(&w->io_ctx, w->epfd);
        if (w->wake_fd >= 0)
            srv->io->close(&w->io_ctx, w->wake_fd);
        kvs_free(&k->alloc, w->scratch);
        app_io_ctx_fini(&w->io_ctx);
    }
    kvs_free(&k->alloc, srv->workers);
    srv->workers = NULL;
}

static int suvm_create(struct kvs_enclave *k, struct kvs_store_config *sc) {
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    size_t page = sc->item_size_max > KVS_SLAB_PAGE_SIZE ? sc->item_size_max
                                                          : KVS_SLAB_PAGE_SIZE;
    cfg.cache_size = k->set.suvm_cache; /* 0: auto, coordinated with the platform's share */
    cfg.backing_size = sc->mem_limit + SUVM_BACKING_SLACK_PAGES * page;
    int r = eleos_suvm_create(&cfg, &k->suvm);
    if (r)
        return r;
    sc->mem = &kvs_mem_suvm_ops;
    sc->mem_ctx = k->suvm;
    return 0;
}

static int auth_setup(struct kvs_enclave *k);
static int tls_setup(struct kvs_enclave *k);
static void hook_server_info(void *arg, struct kvs_server_info *si);
static void hook_stats_reset(void *arg);
static int hook_eleos_stats(void *arg, struct kvs_buf *out);
static bool hook_conn_stat(void *arg, size_t *cursor, struct kvs_conn_stat *out);

/* watch lines' timestamps: the vDSO clock, no exit. */
static void watch_clock(int64_t *sec, int32_t *usec) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = ts.tv_sec;
    *usec = (int32_t)(ts.tv_nsec / 1000);
}

static void ctx_fill(struct kvs_enclave *k) {
    struct kvs_ctx *ctx = &k->srv.ctx;
    const struct kvs_settings *st = &k->set.settings;
    kvs_watch_init(&k->watch, &k->alloc, wake_word(k, k->set.threads + 3u),
                   st->watcher_logbuf_size ? st->watcher_logbuf_size : 256u << 10, watch_clock);
    ctx->watch = st->watch_enabled ? &k->watch : NULL;
    ctx->store = k->srv.store;
    ctx->alloc = k->srv.alloc;
    atomic_init(&ctx->verbosity, k->set.verbose);
    ctx->port = k->set.port;
    ctx->maxconns = k->set.maxconns;
    ctx->threads = k->set.threads;
    ctx->interface = k->set.interface;
    ctx->maxbytes = k->set.mem_limit;
    ctx->settings = &k->set.settings;
    ctx->server_info = hook_server_info;
    ctx->eleos_stats = hook_eleos_stats;
    ctx->stats_reset = hook_stats_reset;
    ctx->conn_stat = hook_conn_stat;
    ctx->hook_arg = k;
}

static int server_build(struct kvs_enclave *k) {
    struct kvs_server *srv = &k->srv;
    srv->alloc = &k->alloc;
    srv->nlisten = k->set.nlisten;
    memcpy(srv->listen_fds, k->set.listen_fds, sizeof srv->listen_fds);
    memcpy(srv->listen_conf, k->set.listen_conf, sizeof srv->listen_conf);
    srv->udp_fd = k->set.udp_fd;
    srv->stop_fd = k->set.stop_fd;
    srv->maxconns = k->set.maxconns;
    srv->io = app_io_for(k->enc != NULL, k->set.rpc_on, false);
    srv->io_exec = k->set.io_exec;
    srv->io_mod = k->set.io_mod;
    srv->io_gather = k->set.io_gather;
    struct kvs_store_config sc;
    kvs_store_config_default(&sc);
    sc.mem_limit = k->set.mem_limit;
    sc.item_size_max = k->set.item_size_max;
    sc.now = time(NULL);
    sc.meta = &k->alloc;
    sc.lock_wake = wake_word(k, k->set.threads + 1u);
    sc.evictions = k->set.settings.evict_to_free; /* -M */
    sc.no_cas = !k->set.settings.use_cas;         /* -C */
    int r = 0;
    if (k->set.suvm_on)
        r = suvm_create(k, &sc);
    else if (k->enc) {
        sc.mem = &kvs_mem_heap_ops;
        sc.mem_ctx = &k->alloc;
    }
    if (!r && k->set.rpc_on) {
        r = eleos_rpc_client_create(k->enc, k->set.rpc_area, k->set.rpc_area_size, &k->rpc);
        if (!r)
            eleos_sys_init(k->rpc);
    }
    if (!r)
        r = workers_create(k);
    for (unsigned i = 0; !r && i < srv->nworkers; i++)
        r = srv->io_exec >= 0 ? kvs_worker_prepare_q(srv, &srv->workers[i])
                              : kvs_worker_prepare(srv, &srv->workers[i]);
    if (!r)
        r = kvs_conn_table_init(srv, wake_word(k, k->set.threads));
    if (!r)
        r = kvs_store_create(&sc, &srv->store);
    if (!r && k->set.settings.track_sizes)
        (void)kvs_store_sizes_enable(srv->store); /* -o track_sizes; refused with -C */
    if (!r)
        ctx_fill(k);
    if (!r)
        r = auth_setup(k);
    if (!r && k->set.settings.ssl_enabled)
        r = tls_setup(k);
    return r;
}

/* Reads a credential file into enclave memory and parses it there: the host sees the file
 * pass through (it stores it), but holds no copy of the table the enclave checks against.
 * In enclave modes each call below is a counted exit, at start-up only. */
static int auth_load(struct kvs_enclave *k, const char *path, struct kvs_auth **out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "eleos-kvs: cannot open %s: %s\n", path, strerror(errno));
        return -errno;
    }
    char *buf = kvs_malloc(&k->alloc, KVS_AUTH_FILE_MAX + 1);
    size_t len = 0;
    ssize_t n = 1;
    while (buf && len <= KVS_AUTH_FILE_MAX && n > 0) {
        n = read(fd, buf + len, KVS_AUTH_FILE_MAX + 1 - len);
        if (n > 0)
            len += (size_t)n;
    }
    close(fd);
    int r = !buf ? -ENOMEM : n < 0 ? -EIO : len > KVS_AUTH_FILE_MAX ? -EFBIG : 0;
    unsigned bad = 0;
    if (!r)
        r = kvs_auth_parse(&k->alloc, buf, len, out, &bad);
    if (buf)
        memset(buf, 0, len); /* passwords: no stale copy on the heap */
    kvs_free(&k->alloc, buf);
    if (r == -EINVAL && bad)
        fprintf(stderr, "eleos-kvs: %s line %u: expected user:password\n", path, bad);
    else if (r)
        fprintf(stderr, "eleos-kvs: cannot load %s: %s\n", path, strerror(-r));
    return r;
}

static int auth_setup(struct kvs_enclave *k) {
    const struct kvs_settings *s = &k->set.settings;
    int r = 0;
    if (s->auth_ascii)
        r = auth_load(k, s->auth_file, &k->auth_ascii);
    if (!r && s->sasl && s->sasl_pwdb[0])
        r = auth_load(k, s->sasl_pwdb, &k->auth_sasl);
    k->srv.ctx.auth_ascii = k->auth_ascii;
    k->srv.ctx.auth_sasl = k->auth_sasl;
    return r;
}

/* -Z: the TLS context, built here from files the enclave reads (enclave_tls.c). */
static int hook_refresh_certs(void *arg, struct kvs_buf *msg) {
    struct kvs_enclave *k = arg;
    return kvs_tls_refresh(k->srv.tls, msg);
}

static int tls_setup(struct kvs_enclave *k) {
    int r = kvs_tls_create(&k->set.settings, &k->alloc, wake_word(k, k->set.threads + 2u),
                           &k->srv.tls);
    if (!r)
        k->srv.ctx.refresh_certs = hook_refresh_certs;
    return r;
}

static void server_free(struct kvs_enclave *k) {
    kvs_tls_destroy(k->srv.tls);
    if (k->srv.ctx.watch)
        kvs_watch_fini(&k->watch);
    kvs_auth_free(k->auth_ascii);
    kvs_auth_free(k->auth_sasl);
    if (k->srv.store)
        kvs_store_destroy(k->srv.store);
    kvs_conn_table_fini(&k->srv);
    workers_destroy(k);
    if (k->rpc) {
        eleos_sys_init(NULL);
        eleos_rpc_client_destroy(k->rpc);
    }
    if (k->suvm)
        eleos_suvm_destroy(k->suvm);
    struct kvs_alloc a = k->alloc;
    kvs_free(&a, k);
}

long kvs_enclave_setup(void *arg) {
    struct eleos_enclave *enc = eleos_enclave_current();
    if (kvs)
        return -EBUSY;
    struct kvs_setup set;
    if (eleos_copy_in(&set, arg, sizeof set)) /* the one read of the host's values */
        return -EINVAL;
    struct kvs_alloc a = kvs_alloc_libc;
    if (enc)
        kvs_alloc_enclave(&a, enc);
    struct kvs_enclave *k = kvs_malloc(&a, sizeof *k);
    if (!k)
        return -ENOMEM;
    memset(k, 0, sizeof *k);
    k->alloc = a;
    k->enc = enc;
    k->set = set;
    k->set.interface[KVS_IFACE_MAX - 1] = '\0';
    int r = setup_check(k, &k->set);
    if (!r) {
        k->wake = enc ? k->set.wake_page : NULL;
        k->pid = getpid();
        r = server_build(k);
    }
    if (r) {
        server_free(k);
        return r;
    }
    kvs = k;
    /* Opaque to the host: it only hands it back to the evictor ECALL, which checks it. */
    return eleos_copy_out(&((struct kvs_setup *)arg)->out_suvm, &k->suvm, sizeof k->suvm);
}

long kvs_enclave_worker(void *index) {
    struct kvs_enclave *k = kvs;
    uintptr_t i = (uintptr_t)index;
    if (!k || i >= k->srv.nworkers)
        return -EINVAL;
    struct kvs_worker *w = &k->srv.workers[i];
    if (atomic_exchange_explicit(&w->entered, true, memory_order_acq_rel))
        return -EBUSY; /* one loop per worker, ever */
    atomic_fetch_add_explicit(&k->active, 1, memory_order_acq_rel);
    w->result = k->srv.io_exec >= 0 ? kvs_worker_loop_q(&k->srv, w)
                                    : kvs_worker_loop(&k->srv, w);
    atomic_fetch_sub_explicit(&k->active, 1, memory_order_acq_rel);
    return w->result;
}

/* -U: the UDP thread (enclave_udp.c), counted as active like a worker. */
long kvs_enclave_udp(void *unused) {
    (void)unused;
    struct kvs_enclave *k = kvs;
    if (!k || k->srv.udp_fd < 0)
        return -EINVAL;
    static _Atomic bool entered;
    if (atomic_exchange_explicit(&entered, true, memory_order_acq_rel))
        return -EBUSY; /* one UDP loop, ever */
    atomic_fetch_add_explicit(&k->active, 1, memory_order_acq_rel);
    long r = kvs_udp_loop(&k->srv);
    atomic_fetch_sub_explicit(&k->active, 1, memory_order_acq_rel);
    return r;
}

long kvs_enclave_teardown(void *unused) {
    (void)unused;
    struct kvs_enclave *k = kvs;
    if (!k)
        return 0;
    if (atomic_load_explicit(&k->active, memory_order_acquire))
        return -EBUSY;
    kvs = NULL;
    server_free(k);
    return 0;
}

/* Formats `stats` through the protocol itself (the fields a client sees) and copies it out
 * to the host's buffer, which must lie outside the enclave. */
long kvs_enclave_stats(void *arg) {
    struct kvs_enclave *k = kvs;
    struct kvs_report rep;
    if (!k || eleos_copy_in(&rep, arg, sizeof rep) || rep.cap > REPORT_MAX)
        return -EINVAL;
    static struct kvs_thread_stats scratch;
    struct kvs_proto p;
    struct kvs_buf out;
    kvs_proto_init(&p, &k->srv.ctx, &scratch);
    p.wire = KVS_WIRE_TEXT; /* our own request: text whatever -B says */
    p.authenticated = true; /* the host's exit report, not a client: -Y does not apply */
    kvs_buf_init(&out, &k->alloc);
    char cmd[] = "stats\r\n";
    kvs_proto_feed(&p, cmd, sizeof cmd - 1, &out);
    kvs_proto_fini(&p);
    size_t n = out.len < rep.cap ? out.len : rep.cap;
    int r = eleos_copy_out(rep.buf, out.data, n);
    kvs_buf_fini(&out);
    if (!r)
        r = eleos_copy_out(&((struct kvs_report *)arg)->len, &n, sizeof n);
    return r;
}

/* --- stats hooks (workers, in enclave mode in sgx/eleos) ------------------------------ */

static void hook_server_info(void *arg, struct kvs_server_info *si) {
    struct kvs_enclave *k = arg;
    struct kvs_server *srv = &k->srv;
    si->pid = k->pid;
    si->idle_kicks = atomic_load_explicit(&srv->idle_kicks, memory_order_relaxed);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) { /* one exit in enclave modes */
        si->rusage_user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
        si->rusage_system = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    }
    si->max_connections = srv->maxconns;
    si->curr_connections = atomic_load_explicit(&srv->curr_conns, memory_order_relaxed);
    si->total_connections = atomic_load_explicit(&srv->total_conns, memory_order_relaxed);
    si->rejected_connections = atomic_load_explicit(&srv->rejected_conns, memory_order_relaxed);
    si->connection_structures = atomic_load_explicit(&srv->conn_structs, memory_order_relaxed);
    si->reserved_fds = RESERVED_FDS;
    si->threads = srv->nworkers;
    for (unsigned i = 0; i < srv->nworkers; i++)
        kvs_thread_stats_sum(&srv->workers[i].stats, &si->totals);
    si->have_totals = true;
    if (srv->tls)
        kvs_tls_info(srv->tls, si);
}

static void hook_stats_reset(void *arg) {
    struct kvs_enclave *k = arg;
    for (unsigned i = 0; i < k->srv.nworkers; i++)
        kvs_thread_stats_reset(&k->srv.workers[i].stats);
    /* memcached's stats_reset clears its global counters too */
    atomic_store_explicit(&k->srv.total_conns, 0, memory_order_relaxed);
    atomic_store_explicit(&k->srv.rejected_conns, 0, memory_order_relaxed);
}

/* memcached's get_conn_text: "tcp:1.2.3.4:5", "tcp6:[::1]:5". The address comes from the
 * host (getpeername/getsockname): its length and family are checked before use. */
static bool conn_text(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t cap) {
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const void *)ss;
        if (!inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip))
            return false;
        snprintf(buf, cap, "tcp:%s:%u", ip, ntohs(a->sin_port));
        return true;
    }
    if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const void *)ss;
        if (!inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip))
            return false;
        snprintf(buf, cap, "tcp6:[%s]:%u", ip, ntohs(a->sin6_port));
        return true;
    }
    return false;
}

static bool sock_text(int fd, bool peer, char *buf, size_t cap) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len = sizeof ss;
    int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)  /* an exit in enclave modes */
                 : getsockname(fd, (struct sockaddr *)&ss, &len);
    return r == 0 && len <= (socklen_t)sizeof ss && conn_text(&ss, len, buf, cap);
}

/* `stats conns`: the listeners, then every live connection (by slot). Another worker's
 * connection may close meanwhile; its descriptor then names nothing or a newer socket,
 * which at worst prints a wrong address (memcached reads its table unlocked too). */
static bool hook_conn_stat(void *arg, size_t *cursor, struct kvs_conn_stat *out) {
    struct kvs_server *srv = &((struct kvs_enclave *)arg)->srv;
    struct kvs_conn_table *t = &srv->conns;
    memset(out, 0, sizeof *out);
    while (*cursor < srv->nlisten) {
        out->id = srv->listen_fds[(*cursor)++];
        out->listening = true;
        if (sock_text(out->id, false, out->addr, sizeof out->addr))
            return true;
    }
    for (; *cursor - srv->nlisten < t->size; (*cursor)++) {
        size_t slot = *cursor - srv->nlisten;
        if (!atomic_load_explicit(&t->meta[slot], memory_order_acquire))
            continue;
        out->id = atomic_load_explicit(&t->fds[slot], memory_order_relaxed);
        out->info = &t->info[slot];
        if (out->id >= 0 && sock_text(out->id, true, out->addr, sizeof out->addr) &&
            sock_text(out->id, false, out->listen_addr, sizeof out->listen_addr)) {
            (*cursor)++;
            return true;
        }
    }
    return false;
}

#define ESTAT(name, v)                                                                      \
    do {                                                                                    \
        int r_ = kvs_buf_printf(out, "STAT " name " %llu\r\n", (unsigned long long)(v));    \
        if (r_)                                                                             \
            return r_;                                                                      \
    } while (0)

static int stats_enclave(struct kvs_enclave *k, struct kvs_buf *out) {
    /* A snapshot struct of ~4 KiB: keep it off the (small) stack of a deep call. */
    static _Thread_local struct eleos_enclave_stats es;
    eleos_enclave_stats(k->enc, &es);
    ESTAT("eleos_enclave_ecalls", es.ecalls);
    ESTAT("eleos_enclave_ocalls", es.ocalls);
    ESTAT("eleos_enclave_exits", es.syscall_exits);
    ESTAT("eleos_enclave_exits_total", es.syscall_exits + es.ocalls); /* every exit */
    ESTAT("eleos_enclave_aex", es.aex);
    ESTAT("eleos_epc_faults", es.epc_faults);
    ESTAT("eleos_epc_evictions", es.epc_evictions);
    ESTAT("eleos_epc_resident_pages", es.epc_resident);
    ESTAT("eleos_epc_capacity_pages", es.epc_capacity);
    ESTAT("eleos_cycles_charged", es.cycles_charged);
    return 0;
}

static int stats_rpc(struct kvs_enclave *k, struct kvs_buf *out) {
    struct eleos_rpc_client_stats rs;
    eleos_rpc_client_stats(k->rpc, &rs);
    ESTAT("eleos_rpc_calls", rs.calls);
    ESTAT("eleos_rpc_exitless", rs.exitless);
    ESTAT("eleos_rpc_exit_calls", rs.exit_calls);
    ESTAT("eleos_rpc_fallbacks", rs.fallbacks);
    ESTAT("eleos_rpc_fallbacks_no_worker", rs.no_worker);
    ESTAT("eleos_rpc_fallbacks_ring_full", rs.ring_full);
    ESTAT("eleos_rpc_fallbacks_unclaimed", rs.unclaimed);
    ESTAT("eleos_rpc_fallbacks_backoff", rs.backoff);
    ESTAT("eleos_rpc_wait_cycles", rs.wait_cycles);
    ESTAT("eleos_rpc_ocalls", rs.ocalls);
    ESTAT("eleos_rpc_host_faults", rs.host_faults);
    return 0;
}

static int stats_suvm(struct kvs_enclave *k, struct kvs_buf *out) {
    struct eleos_suvm_stats ss;
    eleos_suvm_stats(k->suvm, &ss);
    /* Sizing: the cache follows the enclave's EPC share when auto-sized (coordinated). */
    ESTAT("eleos_suvm_coordinated", ss.coordinated ? 1 : 0);
    ESTAT("eleos_suvm_cache_target", ss.coord_target);
    ESTAT("eleos_suvm_epc_share", ss.coord_share);
    ESTAT("eleos_suvm_resize_shrinks", ss.resize_shrinks);
    ESTAT("eleos_suvm_resize_grows", ss.resize_grows);
    ESTAT("eleos_suvm_resize_busy", ss.resize_busy);
    ESTAT("eleos_suvm_hits", ss.hits);
    ESTAT("eleos_suvm_minor_faults", ss.minor_faults);
    ESTAT("eleos_suvm_major_faults", ss.major_faults);
    ESTAT("eleos_suvm_evictions", ss.evictions);
    ESTAT("eleos_suvm_clean_drops", ss.clean_drops);
    ESTAT("eleos_suvm_dirty_writebacks", ss.dirty_writebacks);
    /* Who evicted: a request's thread (on the request path) or the background evictor,
     * whose naps are the only exits SUVM makes. */
    ESTAT("eleos_suvm_sync_evictions", ss.sync_evictions);
    ESTAT("eleos_suvm_evictor_batches", ss.evictor_batches);
    ESTAT("eleos_suvm_evictor_naps", ss.evictor_naps);
    ESTAT("eleos_suvm_integrity_failures", ss.integrity_failures);
    ESTAT("eleos_suvm_cache_frames", ss.cache_frames);
    return 0;
}

/* Appends worker i's item to a comma-separated list in buf (what does not fit is left
 * out: the buffers are sized for KVS_MAX_THREADS items). */
static void list_add(char *buf, size_t size, size_t *used, unsigned i, const char *item) {
    int n = snprintf(buf + *used, size - *used, "%s%s", i ? "," : "", item);
    if (n > 0 && (size_t)n < size - *used)
        *used += (size_t)n;
}

/* The I/O queues' counters, summed over workers, and the executor each has now. */
static int stats_ioq(struct kvs_enclave *k, struct kvs_buf *out) {
    uint64_t ex = 0, ops = 0, comp = 0, spins = 0, faults = 0, sw = 0, trials = 0, mod = 0;
    uint64_t mod_to = 0;
    char execs[KVS_MAX_THREADS * 8] = "", cpu[KVS_MAX_THREADS * 6] = "", num[16];
    char conns[KVS_MAX_THREADS * 11] = "";
    size_t used = 0, cused = 0, nused = 0;
    for (unsigned i = 0; i < k->srv.nworkers; i++) {
        struct kvs_worker *w = &k->srv.workers[i];
        ex += atomic_load_explicit(&w->q_exits, memory_order_relaxed);
        ops += atomic_load_explicit(&w->q_ops, memory_order_relaxed);
        comp += atomic_load_explicit(&w->q_completions, memory_order_relaxed);
        spins += atomic_load_explicit(&w->q_spins, memory_order_relaxed);
        faults += atomic_load_explicit(&w->q_faults, memory_order_relaxed);
        sw += atomic_load_explicit(&w->q_switches, memory_order_relaxed);
        trials += atomic_load_explicit(&w->q_trials, memory_order_relaxed);
        mod += atomic_load_explicit(&w->q_moderated, memory_order_relaxed);
        mod_to += atomic_load_explicit(&w->q_mod_timeouts, memory_order_relaxed);
        int e = atomic_load_explicit(&w->q_exec, memory_order_relaxed);
        list_add(execs, sizeof execs, &used, i,
                 e < 0 ? "-" : eleos_ioq_exec_name((enum eleos_ioq_exec)e));
        snprintf(num, sizeof num, "%u",
                 (unsigned)atomic_load_explicit(&w->cpu_permille, memory_order_relaxed));
        list_add(cpu, sizeof cpu, &cused, i, num);
        snprintf(num, sizeof num, "%u",
                 (unsigned)atomic_load_explicit(&w->nconns, memory_order_relaxed));
        list_add(conns, sizeof conns, &nused, i, num);
    }
    int r = kvs_buf_printf(out, "STAT eleos_io_executor %s\r\nSTAT eleos_io_requested %s\r\n",
                           execs, eleos_ioq_exec_name((enum eleos_ioq_exec)k->set.io_exec));
    if (r)
        return r;
    ESTAT("eleos_io_ops", ops);
    ESTAT("eleos_io_completions", comp);
    ESTAT("eleos_io_exits", ex);
    ESTAT("eleos_io_spins", spins);
    ESTAT("eleos_io_host_faults", faults);
    ESTAT("eleos_io_switches", sw);
    ESTAT("eleos_io_trials", trials);
    ESTAT("eleos_io_moderated_waits", mod);
    ESTAT("eleos_io_moderation_timeouts", mod_to);
    ESTAT("eleos_io_active_workers",
          atomic_load_explicit(&k->srv.io_active, memory_order_relaxed));
    ESTAT("eleos_io_conn_moves", atomic_load_explicit(&k->srv.conn_moves, memory_order_relaxed));
    r = kvs_buf_printf(out, "STAT eleos_io_cpu_permille %s\r\nSTAT eleos_io_worker_conns %s\r\n",
                       cpu, conns);
    if (r)
        return r;
    return 0;
}

static int hook_eleos_stats(void *arg, struct kvs_buf *out) {
    struct kvs_enclave *k = arg;
    int r = kvs_buf_printf(out, "STAT eleos_mode %s\r\nSTAT eleos_rpc %s\r\nSTAT eleos_suvm %s\r\n",
                           app_mode_name(k->set.mode),
                           k->set.io_exec >= 0 ? "queue" : k->set.rpc_on ? "sync" : "off",
                           k->set.suvm_on ? "on" : "off");
    if (r)
        return r;
    if (k->set.io_exec >= 0 && (r = stats_ioq(k, out)))
        return r;
    ESTAT("eleos_host_faults", atomic_load_explicit(&k->srv.host_faults, memory_order_relaxed));
    ESTAT("eleos_conn_buf_bytes", kvs_buf_held_bytes());
    ESTAT("eleos_accept_backoffs",
          atomic_load_explicit(&k->srv.accept_backoffs, memory_order_relaxed));
    ESTAT("eleos_wait_errors", atomic_load_explicit(&k->srv.wait_errors, memory_order_relaxed));
    if (k->enc && (r = stats_enclave(k, out)))
        return r;
    if (k->rpc && (r = stats_rpc(k, out)))
        return r;
    if (k->suvm && (r = stats_suvm(k, out)))
        return r;
    return 0;
}
