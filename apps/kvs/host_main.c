/*
 * eleos-kvs — a memcached-compatible key-value server running in an (emulated) SGX enclave
 * on Eleos. This file is the host side: options, the listening socket, the enclave and its
 * services, worker threads, signals, the balloon's sampling and the statistics printed at
 * exit. The server itself (store, connections, event loop) is enclave_server.c and
 * enclave_net.c, reached only through the ECALLs of kvs_server.h.
 *
 * Modes:
 *   native   no enclave: host threads, libc system calls, values in host memory.
 *   sgx      each worker thread ECALLs into the enclave for its whole life, so every system
 *            call it makes is a trapped, counted exit; metadata and values live on the
 *            enclave heap and suffer emulated EPC paging.
 *   eleos    sgx plus exitless RPC for the network system calls (--rpc) and values in SUVM
 *            (--suvm); both can be turned on or off separately, in sgx mode too.
 *
 * Threads: main (host) creates the workers ("eleos-kvs/N"; the emulator refuses thread
 * creation inside an enclave), then waits for SIGINT/SIGTERM with sigwait: no asynchronous
 * handler exists, so no handler can interrupt enclave code. All threads block both signals.
 * To stop, main writes one byte to a pipe every worker's epoll watches, joins the workers,
 * prints the enclave's and the server's statistics, and tears everything down.
 *
 * Trust: nothing here is state the enclave relies on. The host hands the enclave integers
 * and one setup struct it copies in; it keeps only its own handles and the untrusted memory
 * it shares (the RPC area, the locks' wake words).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app_options.h"
#include "eleos/enclave.h"
#include "enclave_tls.h"
#include "host_platform.h"
#include "eleos/ioq.h"
#include "kvs_server.h"

/* memcached's defaults, except the address: loopback, not every interface. */
#define DEFAULT_PORT 11211
#define DEFAULT_ADDR "127.0.0.1"
#define DEFAULT_MEM_MIB 64u
#define DEFAULT_THREADS 4u
#define DEFAULT_MAXCONNS 1024u
#define LISTEN_BACKLOG 1024
/* The paper's EPC++ is 60 of 93 MiB; our item headers and hash table also live in the EPC,
 * so the default page cache leaves them a little more room. */
#define DEFAULT_SUVM_CACHE_MIB 56u
/* Without --suvm-cache the cache also leaves the EPC to the trusted metadata -m implies:
 * about one item header and hash bucket per 1 KiB item, i.e. -m/16, plus 16 MiB for
 * connection buffers and the rest of the heap; never below 16 MiB. A cache that crowds the
 * headers out makes the EPC thrash on them (docs/kvs.md has the measurements). */
#define SUVM_CACHE_MIN_MIB 16u
#define SUVM_CACHE_EPC_RESERVE_MIB 16u
#define SUVM_CACHE_META_DIV 16u
/* The balloon (auto-sized cache only): the host samples the enclave's EPC fault count every
 * BALLOON_PERIOD_MS and, when more than BALLOON_FAULTS happened in one period, asks the
 * enclave (an ECALL; the enclave checks the size) to shrink the SUVM page cache by a quarter,
 * never below KVS_BALLOON_MIN_BYTES. EPC faults in eleos mode mean the trusted metadata
 * (item headers, hash table, connections) no longer fits next to the cache; each happens on
 * a random metadata touch, while a smaller cache only loses the few hits a uniform load gets
 * from it (docs/kvs.md, "Balloon").
 * The balloon also gives the room back. After the wait (BALLOON_GROW_WAIT periods, 2 s) with
 * at most BALLOON_QUIET_FAULTS EPC faults per period (a stray metadata touch, a `stats`
 * poll), the cache grows by a quarter, never beyond its starting size: the metadata may have
 * shrunk (flush_all, deletes, expired items) or the load moved on. The grow is a probe: if
 * the faults come back before the next wait has passed it was too much (the next shrink
 * undoes it) and the wait doubles, up to BALLOON_GROW_WAIT_MAX (60 s), so a server at its
 * limit tries again rarely; a grow that holds resets the wait. Resident EPC
 * cannot tell this in advance: once the enclave outgrew the EPC it stays full of pages, most
 * of them possibly cold. */
#define BALLOON_PERIOD_MS 250
#define BALLOON_FAULTS 64u
#define BALLOON_QUIET_FAULTS 4u
#define BALLOON_GROW_WAIT 8u
#define BALLOON_GROW_WAIT_MAX 240u
/* How long an idle RPC worker spins before it sleeps. Between two requests of a loaded
 * server the workers' loops are busy inside the enclave (parsing, copying, SUVM faults) for
 * tens of microseconds, longer still on a machine with fewer cores than threads, where a
 * worker may wait a scheduler slice; a sleeping RPC worker turns the next call into an exit
 * (a fallback). 2 ms, as apps/pserver; --rpc-spin-us changes it. */
#define DEFAULT_RPC_SPIN_US 2000u

struct options {
    unsigned port;
    const char *addr;
    size_t mem_mib;
    unsigned threads;
    unsigned maxconns;
    size_t item_size_max;
    unsigned verbose;
    struct kvs_settings set;  /* memcached's settings the options above do not cover   */
    struct app_platform_opts plat;
};

/* Host-only state: handles, descriptors, threads. */
struct app {
    struct options opt;
    struct app_platform pf;
    size_t suvm_cache;        /* the cache size last granted by the enclave (balloon) */
    size_t suvm_cache_start;
    void *wake_page;          /* untrusted: the enclave locks' wake words              */
    size_t wake_page_size;
    int listen_fd, stop_r, stop_w;
    pthread_t *threads;
    long *results;
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: eleos-kvs [options]\n"
            "  -p, --port=N           TCP port (default %d; 0 = any free port)\n"
            "  -l, --listen=ADDR      address to listen on (default %s)\n"
            "  -m, --memory-limit=MB  item memory in MiB (default %u)\n"
            "  -t, --threads=N        worker threads (default %u)\n"
            "  -c, --conn-limit=N     max simultaneous connections (default %u)\n"
            "  -I, --max-item-size=S  item size limit, k/m suffix (default 1m, min 1k)\n"
            "  -v, --verbose          more output (-vv: every connection)\n"
            "  -h, --help\n",
            DEFAULT_PORT, DEFAULT_ADDR, DEFAULT_MEM_MIB, DEFAULT_THREADS, DEFAULT_MAXCONNS);
    struct app_platform_opts d;
    app_platform_opts_default(&d, APP_MODE_ELEOS, DEFAULT_SUVM_CACHE_MIB, DEFAULT_RPC_SPIN_US);
    app_platform_usage(f, &d);
    fprintf(f, "  (without --suvm-cache the cache is made smaller for a large -m, then shrunk\n"
               "   at run time while the enclave takes EPC faults)\n");
}

static bool copy_opt(char *dst, size_t size, const char *arg) {
    size_t n = strlen(arg);
    if (n == 0 || n >= size)
        return false;
    memcpy(dst, arg, n + 1);
    return true;
}

/* -S: memcached's pwdb build takes its password database from $MEMCACHED_SASL_PWDB. */
static bool sasl_opt(struct kvs_settings *s) {
    const char *db = getenv("MEMCACHED_SASL_PWDB");
    s->sasl = true;
    if (db && !copy_opt(s->sasl_pwdb, sizeof s->sasl_pwdb, db)) {
        fprintf(stderr, "eleos-kvs: MEMCACHED_SASL_PWDB is too long\n");
        return false;
    }
    return true;
}

static bool binding_opt(struct kvs_settings *s, const char *arg) {
    if (strcmp(arg, "auto") == 0)
        s->binding = KVS_BIND_AUTO;
    else if (strcmp(arg, "ascii") == 0)
        s->binding = KVS_BIND_ASCII;
    else if (strcmp(arg, "binary") == 0)
        s->binding = KVS_BIND_BINARY;
    else
        return false;
    return true;
}

/* An -o ssl_* value memcached requires: its "Missing <key> argument" when absent. */
static bool ssl_val(const char *key, const char *val) {
    if (!val)
        fprintf(stderr, "Missing %s argument\n", key);
    return val != NULL;
}

/* An -o ssl_* integer: memcached's safe_strtol and its messages. */
static bool ssl_int(const char *key, const char *val, long max, int *out) {
    if (!ssl_val(key, val))
        return false;
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || (*end && *end != ' ') || v < INT32_MIN || v > INT32_MAX) {
        fprintf(stderr, "could not parse argument to %s\n", key);
        return false;
    }
    if (v < 0 || v > max) {
        fprintf(stderr, "Invalid %s. Use help to see valid options.\n", key);
        return false;
    }
    *out = (int)v;
    return true;
}

/* -o ssl_* (memcached 1.6.18's TLS options). -1: not a TLS key. */
static int ssl_opt(struct kvs_settings *s, const char *key, const char *val) {
    static const char *const versions[] = {"tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
    int v;
    if (strcmp(key, "ssl_chain_cert") == 0)
        return ssl_val(key, val) && copy_opt(s->ssl_chain_cert, sizeof s->ssl_chain_cert, val);
    if (strcmp(key, "ssl_key") == 0)
        return ssl_val(key, val) && copy_opt(s->ssl_key, sizeof s->ssl_key, val);
    if (strcmp(key, "ssl_ca_cert") == 0)
        return ssl_val(key, val) && copy_opt(s->ssl_ca_cert, sizeof s->ssl_ca_cert, val);
    if (strcmp(key, "ssl_ciphers") == 0)
        return ssl_val(key, val) && copy_opt(s->ssl_ciphers, sizeof s->ssl_ciphers, val);
    if (strcmp(key, "ssl_verify_mode") == 0)
        return ssl_int(key, val, 3, &s->ssl_verify_mode);
    if (strcmp(key, "ssl_keyformat") == 0) /* any integer: the key fails to load if bad */
        return ssl_int(key, val, INT32_MAX, &s->ssl_keyformat);
    if (strcmp(key, "ssl_wbuf_size") == 0) { /* kilobytes */
        if (!ssl_int(key, val, (int)(UINT32_MAX >> 10), &v))
            return false;
        s->ssl_wbuf_size = (unsigned)v << 10;
        return true;
    }
    if (strcmp(key, "ssl_session_cache") == 0)
        return s->ssl_session_cache = true;
    if (strcmp(key, "ssl_kernel_tls") == 0)
        return s->ssl_kernel_tls = true;
    if (strcmp(key, "ssl_min_version") == 0) {
        if (!ssl_int(key, val, 3, &v))
            return false;
        snprintf(s->ssl_min_version, sizeof s->ssl_min_version, "%s", versions[v]);
        return true;
    }
    return -1;
}

/* One -o key=value (the TLS keys for now). */
static bool extended_opt(struct kvs_settings *s, const char *key, const char *val) {
    int r = ssl_opt(s, key, val);
    if (r >= 0)
        return r;
    fprintf(stderr, "eleos-kvs: unknown -o option '%s'\n", key);
    return false;
}

/* -o a=b,c,d=e */
static bool extended_opts(struct kvs_settings *s, const char *arg) {
    char buf[4096];
    if (!copy_opt(buf, sizeof buf, arg))
        return false;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq)
            *eq++ = '\0';
        if (!extended_opt(s, tok, eq))
            return false;
    }
    return true;
}

/* Applies one of eleos-kvs's own flags; false on a bad value. */
static bool kvs_opt(struct options *o, int c, const char *arg) {
    uint64_t v;
    switch (c) {
    case 'p':
        if (!app_parse_u64(arg, 65535, &v))
            return false;
        o->port = (unsigned)v;
        return true;
    case 'l': o->addr = arg; return strlen(arg) < KVS_IFACE_MAX;
    case 'm':
        if (!app_parse_u64(arg, 1u << 20, &v) || v == 0)
            return false;
        o->mem_mib = (size_t)v;
        return true;
    case 't':
        if (!app_parse_u64(arg, KVS_MAX_THREADS, &v) || v == 0)
            return false;
        o->threads = (unsigned)v;
        return true;
    case 'c':
        if (!app_parse_u64(arg, 1u << 20, &v) || v == 0)
            return false;
        o->maxconns = (unsigned)v;
        return true;
    case 'I':
        return app_parse_size(arg, &o->item_size_max) && o->item_size_max >= KVS_ITEM_SIZE_MIN &&
               o->item_size_max <= (1u << 30);
    case 'S': return sasl_opt(&o->set);
    case 'Y': return copy_opt(o->set.auth_file, sizeof o->set.auth_file, arg) &&
                     (o->set.auth_ascii = true);
    case 'Z': o->set.ssl_enabled = true; return true;
    case 'B': return binding_opt(&o->set, arg);
    case 'o': return extended_opts(&o->set, arg);
    default: return false;
    }
}

/* Without --suvm-cache, the cache leaves the EPC room for the metadata -m implies. */
static void size_suvm_cache(struct options *o) {
    struct app_platform_opts *p = &o->plat;
    if (p->suvm_cache_set)
        return;
    size_t reserve = SUVM_CACHE_EPC_RESERVE_MIB + o->mem_mib / SUVM_CACHE_META_DIV;
    size_t fit = p->epc_mib > reserve ? p->epc_mib - reserve : 0;
    if (fit < p->suvm_cache_mib)
        p->suvm_cache_mib = fit > SUVM_CACHE_MIN_MIB ? fit : SUVM_CACHE_MIN_MIB;
}

static int parse_options(int argc, char **argv, struct options *o) {
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"listen", required_argument, NULL, 'l'},
        {"memory-limit", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'},
        {"conn-limit", required_argument, NULL, 'c'},
        {"max-item-size", required_argument, NULL, 'I'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"enable-sasl", no_argument, NULL, 'S'},
        {"auth-file", required_argument, NULL, 'Y'},
        {"enable-ssl", no_argument, NULL, 'Z'},
        {"protocol", required_argument, NULL, 'B'},
        {"extended", required_argument, NULL, 'o'},
        APP_PLATFORM_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){DEFAULT_PORT, DEFAULT_ADDR, DEFAULT_MEM_MIB, DEFAULT_THREADS,
                          DEFAULT_MAXCONNS, KVS_ITEM_SIZE_MAX_DEFAULT, 0, {0}, {0}};
    kvs_settings_default(&o->set);
    app_platform_opts_default(&o->plat, APP_MODE_ELEOS, DEFAULT_SUVM_CACHE_MIB,
                              DEFAULT_RPC_SPIN_US);
    int c;
    while ((c = getopt_long(argc, argv, "p:l:m:t:c:I:vhSY:ZB:o:", longopts, NULL)) != -1) {
        int r = app_platform_opt(&o->plat, c, optarg, "eleos-kvs");
        if (r < 0)
            return -EINVAL;
        if (r > 0)
            continue;
        if (c == 'v') {
            o->verbose++;
        } else if (c == 'h') {
            usage(stdout);
            exit(0);
        } else if (c == '?' || !kvs_opt(o, c, optarg)) {
            if (c != '?')
                fprintf(stderr, "eleos-kvs: bad value for option -%c: '%s'\n", c, optarg);
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "eleos-kvs: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    size_suvm_cache(o);
    return app_platform_opts_check(&o->plat, "eleos-kvs") ? -EINVAL : 0;
}

/* --- listening socket (host) ---------------------------------------------------------- */

static int open_listener(const struct options *o, char *desc, size_t desc_size) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    char port[16];
    snprintf(port, sizeof port, "%u", o->port);
    int r = getaddrinfo(o->addr, port, &hints, &ai);
    if (r) {
        fprintf(stderr, "eleos-kvs: bad listen address '%s': %s\n", o->addr, gai_strerror(r));
        return -EINVAL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        /* accepted sockets inherit TCP_NODELAY on Linux: replies leave at once */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, LISTEN_BACKLOG)) {
        r = -errno;
        fprintf(stderr, "eleos-kvs: cannot listen on %s port %u: %s\n", o->addr, o->port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return r;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[64] = "?", serv[16] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(desc, desc_size, "%s%s%s:%s", ss.ss_family == AF_INET6 ? "[" : "", host,
             ss.ss_family == AF_INET6 ? "]" : "", serv);
    return fd;
}

/* memcached's rule: the descriptor limit must cover -c, or the server does not start; the
 * reserve beyond it is best effort (the event loop backs off on EMFILE). */
static int raise_fd_limit(unsigned maxconns) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) {
        perror("eleos-kvs: getrlimit");
        return -1;
    }
    rlim_t want = (rlim_t)maxconns + RESERVED_FDS + 64;
    if (rl.rlim_cur >= want)
        return 0;
    struct rlimit up = {want, rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                                  ? rl.rlim_max : want};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
        return 0;
    if (rl.rlim_max >= want || (rl.rlim_max >= maxconns && rl.rlim_max != rl.rlim_cur)) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= maxconns)
            return 0;
    }
    if (rl.rlim_cur >= maxconns)
        return 0;
    fprintf(stderr, "failed to set rlimit for open files. Try starting as root or requesting "
                    "smaller maxconns value.\n");
    return -1;
}

/* --- enclave calls ------------------------------------------------------------------------ */

struct worker_arg {
    struct app *app;
    unsigned id;
};

static void *worker_thread(void *arg) {
    struct worker_arg wa = *(struct worker_arg *)arg;
    char name[16];
    snprintf(name, sizeof name, "eleos-kvs/%u", wa.id);
    pthread_setname_np(pthread_self(), name);
    int r = app_ecall(&wa.app->pf, kvs_enclave_worker, (void *)(uintptr_t)wa.id);
    wa.app->results[wa.id] = r;
    if (r)
        fprintf(stderr, "eleos-kvs: worker %u stopped: %s\n", wa.id, strerror(-r));
    return NULL;
}

/* The host side's state between steps (main thread only). */
struct balloon {
    uint64_t last_faults; /* the enclave's EPC fault count at the last step       */
    unsigned quiet;       /* consecutive quiet periods (few or no EPC faults)    */
    unsigned wait;        /* quiet periods before the next grow                    */
    bool probing;         /* a grow happened and has not held for `wait` yet       */
};

static void balloon_init(struct app *a, struct balloon *b) {
    struct eleos_enclave_stats st;
    eleos_enclave_stats(a->pf.enc, &st);
    b->last_faults = st.epc_faults;
    b->quiet = 0;
    b->wait = BALLOON_GROW_WAIT;
    b->probing = false;
}

static void balloon_resize(struct app *a, size_t want, uint64_t faults) {
    if (app_ecall(&a->pf, kvs_enclave_balloon, (void *)(uintptr_t)want) != 0)
        return;
    a->suvm_cache = want;
    if (a->opt.verbose)
        fprintf(stderr, "eleos-kvs: %llu EPC faults in %d ms: SUVM cache now %zu KiB\n",
                (unsigned long long)faults, BALLOON_PERIOD_MS, a->suvm_cache >> 10);
}

/* One balloon step (host mode, main thread, every BALLOON_PERIOD_MS): shrink the SUVM cache
 * if the enclave took more than BALLOON_FAULTS EPC faults since the last step, grow it back
 * after a quiet wait (see BALLOON_* above). */
static void balloon_step(struct app *a, struct balloon *b) {
    struct eleos_enclave_stats st;
    eleos_enclave_stats(a->pf.enc, &st);
    uint64_t faults = st.epc_faults - b->last_faults;
    b->last_faults = st.epc_faults;
    size_t min = KVS_BALLOON_MIN_BYTES;
    if (faults > BALLOON_FAULTS) {
        b->quiet = 0;
        if (b->probing) { /* the last grow was too much */
            b->probing = false;
            b->wait = b->wait * 2 < BALLOON_GROW_WAIT_MAX ? b->wait * 2 : BALLOON_GROW_WAIT_MAX;
        }
        if (a->suvm_cache > min) {
            size_t want = a->suvm_cache - a->suvm_cache / 4;
            balloon_resize(a, want > min ? want : min, faults);
        }
        return;
    }
    if (faults > BALLOON_QUIET_FAULTS) {
        b->quiet = 0;
        return;
    }
    if (++b->quiet < b->wait)
        return;
    b->quiet = 0;
    if (b->probing) { /* the last grow held */
        b->probing = false;
        b->wait = BALLOON_GROW_WAIT;
    }
    if (a->suvm_cache >= a->suvm_cache_start)
        return;
    size_t old = a->suvm_cache, step = old / 4 > min ? old / 4 : min;
    balloon_resize(a, old + step < a->suvm_cache_start ? old + step : a->suvm_cache_start, 0);
    b->probing = a->suvm_cache > old;
}

/* The platform, and the untrusted page of wake words for the enclave's locks. */
static int start_platform(struct app *a) {
    int r = app_platform_start(&a->pf, &a->opt.plat, "eleos-kvs", "eleos-kvs", a->opt.threads,
                               0);
    if (r || !a->pf.enc)
        return r;
    a->wake_page_size = 4096 * ((KVS_WAKE_WORDS(a->opt.threads) * 4 + 4095) / 4096);
    a->wake_page = eleos_untrusted_alloc(a->wake_page_size);
    return a->wake_page ? 0 : -ENOMEM;
}

/* The setup values the enclave copies in (untrusted memory: a host struct). */
static int setup_server(struct app *a) {
    const struct options *o = &a->opt;
    struct kvs_setup s;
    memset(&s, 0, sizeof s);
    s.mode = o->plat.mode;
    s.rpc_on = a->pf.rpc_on;
    s.io_exec = a->pf.io == APP_IO_QUEUE ? a->pf.io_exec : -1;
    s.suvm_on = a->pf.suvm_on;
    s.threads = o->threads;
    s.maxconns = o->maxconns;
    s.verbose = o->verbose;
    s.port = o->port;
    s.mem_limit = o->mem_mib << 20;
    s.item_size_max = o->item_size_max;
    s.suvm_cache = o->plat.suvm_cache_mib << 20;
    s.listen_fd = a->listen_fd;
    s.stop_fd = a->stop_r;
    snprintf(s.interface, sizeof s.interface, "%s", o->addr);
    s.settings = o->set;
    s.settings.maxbytes = (uint64_t)o->mem_mib << 20;
    s.settings.maxconns = o->maxconns;
    s.settings.port = o->port;
    snprintf(s.settings.inter, sizeof s.settings.inter, "%s", o->addr);
    s.settings.verbose = o->verbose;
    s.settings.num_threads = o->threads;
    s.settings.item_size_max = o->item_size_max;
    s.rpc_area = app_platform_rpc_area(&a->pf, &s.rpc_area_size);
    s.wake_page = a->wake_page;
    s.wake_page_size = a->wake_page_size;
    int r = app_ecall(&a->pf, kvs_enclave_setup, &s);
    if (r) {
        if (r != -EPROTO) /* -EPROTO: the TLS set-up printed memcached's message */
            fprintf(stderr, "eleos-kvs: cannot create the store: %s\n", strerror(-r));
        return r;
    }
    a->suvm_cache = a->suvm_cache_start = s.suvm_cache;
    app_platform_start_evictor(&a->pf, s.out_suvm, "eleos-kvs");
    return 0;
}

static void print_banner(const struct app *a, const char *where) {
    const struct options *o = &a->opt;
    printf("eleos-kvs %s: a memcached-compatible key-value server (text protocol)\n",
           KVS_ELEOS_VERSION);
    const struct app_platform_opts *p = &o->plat;
    bool rpc_on = a->pf.rpc_on;
    if (a->pf.enc) {
        struct eleos_enclave_config cfg;
        eleos_enclave_get_config(a->pf.enc, &cfg);
        printf("  mode %s: workers run inside the enclave (EPC %zu MiB, cost model %s)\n",
               app_mode_name(p->mode), p->epc_mib,
               cfg.cost.syscall_cycles || cfg.cost.ecall_cycles ? "on" : "off");
        if (a->pf.io == APP_IO_QUEUE)
            printf("    I/O  queue: network system calls batched on completion rings "
                   "(eleos/ioq.h), executor %s\n",
                   eleos_ioq_exec_name((enum eleos_ioq_exec)a->pf.io_exec));
        else
            printf("    RPC  %s: network system calls %s\n", rpc_on ? "on " : "off",
                   rpc_on ? "go to host workers one at a time (eleos/sys.h)"
                          : "trap and exit the enclave");
        if (a->pf.suvm_on)
            printf("    SUVM on : values in SUVM, page cache %zu MiB\n", p->suvm_cache_mib);
        else
            printf("    SUVM off: values on the enclave heap (emulated EPC paging)\n");
    } else {
        printf("  mode native: no enclave, values in host memory\n");
    }
    printf("  -m %zu MiB, -I %zu bytes, -t %u threads, -c %u connections\n", o->mem_mib,
           o->item_size_max, o->threads, o->maxconns);
    printf("listening on %s\n", where);
    const char *colon = strrchr(where, ':');
    int hlen = colon ? (int)(colon - where) : (int)strlen(where);
    const char *port = colon ? colon + 1 : "11211";
    printf("connect with any memcached client, e.g.\n"
           "  memccp --servers=%.*s:%s FILE; memccat --servers=%.*s:%s FILE\n"
           "  memcstat --servers=%.*s:%s\n"
           "  /usr/bin/python3 -c 'from pymemcache.client.base import Client; "
           "c = Client((\"%.*s\", %s)); c.set(\"k\", \"hello\"); print(c.get(\"k\"))'\n"
           "Ctrl-C (SIGINT) or SIGTERM prints the statistics and exits.\n",
           hlen, where, port, hlen, where, port, hlen, where, port, hlen, where, port);
    fflush(stdout);
}

/* Waits for SIGINT/SIGTERM, running the balloon in between when the cache is auto-sized. */
static int wait_for_signal(struct app *a, const sigset_t *sigs) {
    int sig = 0;
    if (a->pf.suvm_on && !a->opt.plat.suvm_cache_set) {
        struct timespec period = {0, BALLOON_PERIOD_MS * 1000000L};
        struct balloon b;
        balloon_init(a, &b);
        while ((sig = sigtimedwait(sigs, NULL, &period)) < 0)
            balloon_step(a, &b);
    } else {
        sigwait(sigs, &sig);
    }
    return sig;
}

static void print_final_stats(struct app *a) {
    app_platform_print_stats(&a->pf);
    struct kvs_report rep = {malloc(1u << 20), 1u << 20, 0};
    if (rep.buf && app_ecall(&a->pf, kvs_enclave_stats, &rep) == 0 && rep.len <= rep.cap) {
        printf("\n== eleos-kvs statistics (as \"stats\" reports them) ==\n");
        fwrite(rep.buf, 1, rep.len, stdout);
    }
    fflush(stdout);
    free(rep.buf);
}

/* Starts the workers, serves until a signal, stops them. 0, or 1 on any failure. */
static int serve(struct app *a, const sigset_t *sigs, const char *where) {
    unsigned n = a->opt.threads, started = 0;
    struct worker_arg *args = calloc(n, sizeof *args);
    a->threads = calloc(n, sizeof *a->threads);
    a->results = calloc(n, sizeof *a->results);
    int rc = 1;
    for (unsigned i = 0; args && a->threads && a->results && i < n; i++) {
        args[i] = (struct worker_arg){a, i};
        if (pthread_create(&a->threads[i], NULL, worker_thread, &args[i]))
            break;
        started++;
    }
    if (started == n) {
        print_banner(a, where);
        int sig = wait_for_signal(a, sigs);
        printf("\neleos-kvs: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        rc = 0;
    } else {
        fprintf(stderr, "eleos-kvs: cannot start worker threads\n");
    }
    /* Stop: the pipe becomes readable for every worker's epoll (level-triggered). */
    if (write(a->stop_w, "x", 1) != 1)
        perror("eleos-kvs: stop pipe");
    for (unsigned i = 0; i < started; i++) {
        pthread_join(a->threads[i], NULL);
        if (a->results[i])
            rc = 1;
    }
    if (rc == 0)
        print_final_stats(a);
    free(args);
    free(a->threads);
    free(a->results);
    return rc;
}

static void teardown(struct app *a, bool server_up, int *rc) {
    if (a->pf.evictor) { /* before teardown: it runs inside the enclave */
        eleos_suvm_evictor_stop(a->pf.evictor);
        a->pf.evictor = NULL;
    }
    if (server_up && app_ecall(&a->pf, kvs_enclave_teardown, NULL))
        *rc = 1;
    app_platform_stop(&a->pf);
    if (a->wake_page)
        eleos_untrusted_free(a->wake_page, a->wake_page_size);
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    if (a->stop_r >= 0)
        close(a->stop_r);
    if (a->stop_w >= 0)
        close(a->stop_w);
}

int main(int argc, char **argv) {
    struct app app = {.listen_fd = -1, .stop_r = -1, .stop_w = -1};
    struct app *a = &app;
    kvs_tls_mem_install(); /* before any OpenSSL call: where its allocations go */
    if (parse_options(argc, argv, &a->opt))
        return 2;
    if (a->opt.set.ssl_enabled && kvs_tls_lib_init()) {
        fprintf(stderr, "eleos-kvs: cannot initialise OpenSSL\n");
        return 1;
    }

    /* Signals: blocked everywhere (workers inherit the mask), taken by sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (raise_fd_limit(a->opt.maxconns))
        return 71; /* EX_OSERR, as memcached */
    char where[96];
    int rc = 1;
    bool server_up = false;
    int pfd[2];
    a->listen_fd = open_listener(&a->opt, where, sizeof where);
    if (a->listen_fd < 0)
        return 1;
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK)) {
        perror("eleos-kvs: pipe");
        goto out;
    }
    a->stop_r = pfd[0];
    a->stop_w = pfd[1];
    if (start_platform(a))
        goto out;
    int sr = setup_server(a);
    if (sr) {
        if (sr == -EPROTO)
            rc = 64; /* EX_USAGE: memcached's exit for unusable TLS files and options */
        goto out;
    }
    server_up = true;
    rc = serve(a, &sigs, where);
out:
    teardown(a, server_up, &rc);
    return rc;
}
