/*
 * eleos-kvs — a memcached-compatible key-value server running in an (emulated) SGX enclave
 * on Eleos. This file is the host side: options, the listening socket, the enclave and its
 * services, worker threads, signals and the statistics printed at exit.
 *
 * Modes:
 *   native   no enclave: host threads, libc system calls, values in host memory.
 *   sgx      each worker thread ECALLs into the enclave for its whole life, so every system
 *            call it makes is a trapped, counted exit; metadata and values live on the
 *            enclave heap and suffer emulated EPC paging.
 *   eleos    sgx plus exitless RPC for the network system calls (--rpc) and values in SUVM
 *            (--suvm); both default on and can be turned on or off separately, in sgx mode
 *            too (so "sgx --rpc on" is RPC only, "eleos --rpc off" SUVM only).
 *
 * Threads: main (host) creates the workers ("eleos-kvs/N"; the emulator refuses thread
 * creation inside an enclave), then waits for SIGINT/SIGTERM with sigwait: no asynchronous
 * handler exists, so no handler can interrupt enclave code. All threads block both signals.
 * To stop, main writes one byte to a pipe every worker's epoll watches, joins the workers,
 * prints the enclave's and the server's statistics, and tears everything down.
 *
 * Trust: host-side code here only handles sockets, threads and memory it owns; the enclave
 * state (store, connections) is created and destroyed by ECALLs (enclave_setup/teardown).
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

#include "eleos/enclave.h"
#include "eleos/rpc.h"
#include "eleos/suvm.h"
#include "kvs_backend.h"
#include "kvs_server.h"
#if defined(KVS_HAVE_ELEOS_SYS)
#include "eleos/sys.h"
#endif

/* memcached's defaults, except the address: loopback, not every interface. */
#define DEFAULT_PORT 11211
#define DEFAULT_ADDR "127.0.0.1"
#define DEFAULT_MEM_MIB 64u
#define DEFAULT_THREADS 4u
#define DEFAULT_MAXCONNS 1024u
#define LISTEN_BACKLOG 1024
/* Descriptors kept beyond -c for listeners, epoll instances and pipes (memcached reserves
 * 20). */
#define RESERVED_FDS 20u
/* The paper's EPC++ is 60 of 93 MiB; our item headers and hash table also live in the EPC,
 * so the default page cache leaves them a little more room. */
#define DEFAULT_SUVM_CACHE_MIB 56u
/* Without --suvm-cache the cache also leaves the EPC to the trusted metadata -m implies:
 * about one item header (~100-150 B with key and heap overhead) and hash bucket per 1 KiB
 * item, i.e. -m/16 (measured at -m 802, 1 KiB values: a 56 MiB cache made the EPC thrash on
 * headers, 79k EPC faults to load, against 12k with 32 MiB, and 21% less throughput), plus
 * 16 MiB for connection buffers and the rest of the heap. Never below 16 MiB. */
#define SUVM_CACHE_MIN_MIB 16u
#define SUVM_CACHE_EPC_RESERVE_MIB 16u
#define SUVM_CACHE_META_DIV 16u
/* The balloon (auto-sized cache only): the host samples the enclave's EPC fault count every
 * BALLOON_PERIOD_MS and, when more than BALLOON_FAULTS happened in one period, asks the
 * enclave (an ECALL; the enclave checks the size) to shrink the SUVM page cache by a quarter,
 * never below BALLOON_MIN_MIB. EPC faults in eleos mode mean the trusted metadata (item
 * headers, hash table, connections) no longer fits next to the cache; each costs ~16 us and
 * happens on a random metadata touch, while a smaller cache only loses the few hits a
 * uniform load gets from it (measured at 5x the EPC: 8 MiB instead of 24 MiB took EPC faults
 * from 0.4 per request to 0 and throughput up by about 40 %).
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
#define BALLOON_MIN_MIB 2u
#define BALLOON_QUIET_FAULTS 4u
#define BALLOON_GROW_WAIT 8u
#define BALLOON_GROW_WAIT_MAX 240u
/* SUVM address space beyond -m: every slab class may take a first page over the limit
 * (memcached's rule), plus a reserved first page of the SUVM address space. */
#define SUVM_BACKING_SLACK_PAGES (KVS_MAX_SLAB_CLASSES + 2u)
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
    enum kvs_mode mode;
    int rpc;            /* -1 = mode default */
    int suvm;
    size_t epc_mib;
    bool cost;
    size_t suvm_cache_mib;
    bool suvm_cache_set;
    unsigned rpc_workers;
    uint64_t rpc_spin_us;
};

struct app {
    struct options opt;
    struct kvs_server srv;
    struct kvs_alloc enclave_alloc;
    struct eleos_enclave *enc;
    struct eleos_suvm *suvm;
    struct eleos_suvm_evictor *evictor;
    struct eleos_rpc_pool *pool;
    struct eleos_rpc_client *rpc;
    bool rpc_on, suvm_on;
    size_t suvm_cache;        /* current page-cache size (main thread only)   */
    size_t suvm_cache_start;  /* its size at start: the balloon's upper bound */
    size_t balloon_target;    /* the size the host asks for (balloon ECALL)   */
    _Atomic uint64_t balloon_shrinks, balloon_grows;
    _Atomic uint32_t *lock_wake; /* untrusted page: the store lock's futex word */
    int stop_w;
    struct kvs_buf stats_out; /* filled by the final-stats ECALL */
};

static const char *mode_name(enum kvs_mode m) {
    return m == KVS_MODE_NATIVE ? "native" : m == KVS_MODE_SGX ? "sgx" : "eleos";
}

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
            "      --mode=M           native | sgx | eleos (default eleos)\n"
            "      --rpc=on|off|auto  exitless system calls (default auto in eleos mode: on\n"
            "                         when the CPUs outnumber -t + --rpc-workers - 1)\n"
            "      --suvm=on|off      values in SUVM (default: on in eleos mode)\n"
            "      --epc=MB           emulated EPC size (default 93)\n"
            "      --cost=on|off      SGX cost model (default on; ELEOS_COST_* tune it)\n"
            "      --suvm-cache=MB    SUVM page cache (default %u, less for a large -m;\n"
            "                         then shrunk at run time while the EPC faults)\n"
            "      --rpc-workers=N    host RPC worker threads (default 1)\n"
            "      --rpc-spin-us=N    idle spin of an RPC worker before it sleeps (default %u)\n"
            "  -h, --help\n",
            DEFAULT_PORT, DEFAULT_ADDR, DEFAULT_MEM_MIB, DEFAULT_THREADS, DEFAULT_MAXCONNS,
            DEFAULT_SUVM_CACHE_MIB, DEFAULT_RPC_SPIN_US);
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return false;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    if (*end || v > (1ull << 40) >> shift)
        return false;
    *out = (size_t)(v << shift);
    return true;
}

static bool parse_onoff(const char *s, int *out) {
    if (strcmp(s, "on") == 0)
        *out = 1;
    else if (strcmp(s, "off") == 0)
        *out = 0;
    else
        return false;
    return true;
}

static int parse_options(int argc, char **argv, struct options *o) {
    enum { O_MODE = 256, O_RPC, O_SUVM, O_EPC, O_COST, O_SUVM_CACHE, O_RPC_WORKERS,
           O_RPC_SPIN };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"listen", required_argument, NULL, 'l'},
        {"memory-limit", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'},
        {"conn-limit", required_argument, NULL, 'c'},
        {"max-item-size", required_argument, NULL, 'I'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"mode", required_argument, NULL, O_MODE},
        {"rpc", required_argument, NULL, O_RPC},
        {"suvm", required_argument, NULL, O_SUVM},
        {"epc", required_argument, NULL, O_EPC},
        {"cost", required_argument, NULL, O_COST},
        {"suvm-cache", required_argument, NULL, O_SUVM_CACHE},
        {"rpc-workers", required_argument, NULL, O_RPC_WORKERS},
        {"rpc-spin-us", required_argument, NULL, O_RPC_SPIN},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){DEFAULT_PORT, DEFAULT_ADDR, DEFAULT_MEM_MIB, DEFAULT_THREADS,
                          DEFAULT_MAXCONNS, KVS_ITEM_SIZE_MAX_DEFAULT, 0, KVS_MODE_ELEOS, -1,
                          -1, ELEOS_ENCLAVE_DEFAULT_EPC_SIZE >> 20, true,
                          DEFAULT_SUVM_CACHE_MIB, false, 1, DEFAULT_RPC_SPIN_US};
    int c;
    uint64_t v;
    int onoff;
    while ((c = getopt_long(argc, argv, "p:l:m:t:c:I:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!parse_u64(optarg, 65535, &v))
                goto bad;
            o->port = (unsigned)v;
            break;
        case 'l': o->addr = optarg; break;
        case 'm':
            if (!parse_u64(optarg, 1u << 20, &v) || v == 0)
                goto bad;
            o->mem_mib = (size_t)v;
            break;
        case 't':
            if (!parse_u64(optarg, 256, &v) || v == 0)
                goto bad;
            o->threads = (unsigned)v;
            break;
        case 'c':
            if (!parse_u64(optarg, 1u << 20, &v) || v == 0)
                goto bad;
            o->maxconns = (unsigned)v;
            break;
        case 'I':
            if (!parse_size(optarg, &o->item_size_max) || o->item_size_max < KVS_ITEM_SIZE_MIN ||
                o->item_size_max > (1u << 30))
                goto bad;
            break;
        case 'v': o->verbose++; break;
        case 'h': usage(stdout); exit(0);
        case O_MODE:
            if (strcmp(optarg, "native") == 0)
                o->mode = KVS_MODE_NATIVE;
            else if (strcmp(optarg, "sgx") == 0)
                o->mode = KVS_MODE_SGX;
            else if (strcmp(optarg, "eleos") == 0)
                o->mode = KVS_MODE_ELEOS;
            else
                goto bad;
            break;
        case O_RPC:
            if (strcmp(optarg, "auto") == 0)
                onoff = -1;
            else if (!parse_onoff(optarg, &onoff))
                goto bad;
            o->rpc = onoff;
            break;
        case O_SUVM:
            if (!parse_onoff(optarg, &onoff))
                goto bad;
            o->suvm = onoff;
            break;
        case O_EPC:
            if (!parse_u64(optarg, 1u << 20, &v) || v == 0)
                goto bad;
            o->epc_mib = (size_t)v;
            break;
        case O_COST:
            if (!parse_onoff(optarg, &onoff))
                goto bad;
            o->cost = onoff;
            break;
        case O_SUVM_CACHE:
            if (!parse_u64(optarg, 1u << 20, &v) || v == 0)
                goto bad;
            o->suvm_cache_mib = (size_t)v;
            o->suvm_cache_set = true;
            break;
        case O_RPC_WORKERS:
            if (!parse_u64(optarg, ELEOS_RPC_MAX_WORKERS, &v) || v == 0)
                goto bad;
            o->rpc_workers = (unsigned)v;
            break;
        case O_RPC_SPIN:
            if (!parse_u64(optarg, 10u * 1000 * 1000, &v) || v == 0)
                goto bad;
            o->rpc_spin_us = v;
            break;
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "eleos-kvs: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (!o->suvm_cache_set) {
        size_t reserve = SUVM_CACHE_EPC_RESERVE_MIB + o->mem_mib / SUVM_CACHE_META_DIV;
        size_t fit = o->epc_mib > reserve ? o->epc_mib - reserve : 0;
        if (fit < o->suvm_cache_mib)
            o->suvm_cache_mib = fit > SUVM_CACHE_MIN_MIB ? fit : SUVM_CACHE_MIN_MIB;
    }
    if (o->mode == KVS_MODE_NATIVE && (o->rpc == 1 || o->suvm == 1)) {
        fprintf(stderr, "eleos-kvs: --rpc and --suvm need an enclave (--mode sgx or eleos)\n");
        return -EINVAL;
    }
    return 0;
bad:
    fprintf(stderr, "eleos-kvs: bad value for option -%c: '%s'\n", c < 256 ? c : '-', optarg);
    usage(stderr);
    return -EINVAL;
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

static void raise_fd_limit(unsigned maxconns) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    rlim_t want = (rlim_t)maxconns + RESERVED_FDS + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
        fprintf(stderr, "eleos-kvs: warning: only %llu descriptors for -c %u\n",
                (unsigned long long)rl.rlim_cur, maxconns);
}

/* --- stats hooks (called from workers, in enclave mode in sgx/eleos) ----------------- */

static void hook_server_info(void *arg, struct kvs_server_info *si) {
    struct app *a = arg;
    struct kvs_server *srv = &a->srv;
    si->pid = srv->pid;
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
}

static void hook_stats_reset(void *arg) {
    struct app *a = arg;
    for (unsigned i = 0; i < a->srv.nworkers; i++)
        kvs_thread_stats_reset(&a->srv.workers[i].stats);
}

#define ESTAT(name, v)                                                                      \
    do {                                                                                    \
        int r_ = kvs_buf_printf(out, "STAT " name " %llu\r\n", (unsigned long long)(v));    \
        if (r_)                                                                             \
            return r_;                                                                      \
    } while (0)

static int hook_eleos_stats(void *arg, struct kvs_buf *out) {
    struct app *a = arg;
    int r = kvs_buf_printf(out, "STAT eleos_mode %s\r\nSTAT eleos_rpc %s\r\nSTAT eleos_suvm %s\r\n",
                           mode_name(a->opt.mode), a->rpc_on ? "on" : "off",
                           a->suvm_on ? "on" : "off");
    if (r)
        return r;
    if (a->enc) {
        /* A snapshot struct of ~4 KiB: keep it off the (small) stack of a deep call. */
        static _Thread_local struct eleos_enclave_stats es;
        eleos_enclave_stats(a->enc, &es);
        ESTAT("eleos_enclave_ecalls", es.ecalls);
        ESTAT("eleos_enclave_ocalls", es.ocalls);
        ESTAT("eleos_enclave_exits", es.syscall_exits);
        ESTAT("eleos_enclave_aex", es.aex);
        ESTAT("eleos_epc_faults", es.epc_faults);
        ESTAT("eleos_epc_evictions", es.epc_evictions);
        ESTAT("eleos_epc_resident_pages", es.epc_resident);
        ESTAT("eleos_epc_capacity_pages", es.epc_capacity);
        ESTAT("eleos_cycles_charged", es.cycles_charged);
    }
    if (a->rpc) {
        struct eleos_rpc_client_stats rs;
        eleos_rpc_client_stats(a->rpc, &rs);
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
    }
    if (a->pool) {
        struct eleos_rpc_pool_stats ps;
        eleos_rpc_pool_stats(a->pool, &ps);
        ESTAT("eleos_rpc_worker_sleeps", ps.sleeps);
        ESTAT("eleos_rpc_worker_wakes", ps.wakes);
    }
    if (a->suvm) {
        struct eleos_suvm_stats ss;
        eleos_suvm_stats(a->suvm, &ss);
        ESTAT("eleos_suvm_balloon_shrinks",
              atomic_load_explicit(&a->balloon_shrinks, memory_order_relaxed));
        ESTAT("eleos_suvm_balloon_grows",
              atomic_load_explicit(&a->balloon_grows, memory_order_relaxed));
        ESTAT("eleos_suvm_hits", ss.hits);
        ESTAT("eleos_suvm_minor_faults", ss.minor_faults);
        ESTAT("eleos_suvm_major_faults", ss.major_faults);
        ESTAT("eleos_suvm_evictions", ss.evictions);
        ESTAT("eleos_suvm_clean_drops", ss.clean_drops);
        ESTAT("eleos_suvm_dirty_writebacks", ss.dirty_writebacks);
        ESTAT("eleos_suvm_integrity_failures", ss.integrity_failures);
        ESTAT("eleos_suvm_cache_frames", ss.cache_frames);
    }
    return 0;
}

/* --- enclave-side setup, teardown, worker entry -------------------------------------- */

static long enclave_setup(void *arg) {
    struct app *a = arg;
    struct kvs_store_config sc;
    kvs_store_config_default(&sc);
    sc.mem_limit = a->opt.mem_mib << 20;
    sc.item_size_max = a->opt.item_size_max;
    sc.now = time(NULL);
    sc.meta = a->srv.alloc;
    if (a->enc) {
        /* Host-provided: it must really be outside the enclave, or a futex on it could hit
         * a paged-out EPC page (EFAULT) or let the host alias trusted memory. */
        if (!a->lock_wake || !eleos_enclave_outside(a->enc, (void *)a->lock_wake, 4096))
            return -EINVAL;
        sc.lock_wake = a->lock_wake;
    }
    if (a->suvm_on) {
        struct eleos_suvm_config cfg;
        eleos_suvm_config_default(&cfg);
        size_t page = sc.item_size_max > KVS_SLAB_PAGE_SIZE ? sc.item_size_max
                                                             : KVS_SLAB_PAGE_SIZE;
        cfg.cache_size = a->opt.suvm_cache_mib << 20;
        a->suvm_cache = a->suvm_cache_start = cfg.cache_size;
        cfg.backing_size = sc.mem_limit + SUVM_BACKING_SLACK_PAGES * page;
        int r = eleos_suvm_create(&cfg, &a->suvm);
        if (r)
            return r;
        sc.mem = &kvs_mem_suvm_ops;
        sc.mem_ctx = a->suvm;
    } else if (a->enc) {
        sc.mem = &kvs_mem_heap_ops;
        sc.mem_ctx = (void *)a->srv.alloc;
    }
#if defined(KVS_HAVE_ELEOS_SYS)
    if (a->rpc_on) {
        size_t size;
        void *shared = eleos_rpc_pool_shared(a->pool, &size);
        int r = eleos_rpc_client_create(a->enc, shared, size, &a->rpc);
        if (r)
            return r;
        eleos_sys_init(a->rpc);
    }
#endif
    return kvs_store_create(&sc, &a->srv.store);
}

static long enclave_teardown(void *arg) {
    struct app *a = arg;
    kvs_store_destroy(a->srv.store);
    a->srv.store = NULL;
#if defined(KVS_HAVE_ELEOS_SYS)
    if (a->rpc) {
        eleos_sys_init(NULL);
        eleos_rpc_client_destroy(a->rpc);
        a->rpc = NULL;
    }
#endif
    if (a->suvm) {
        eleos_suvm_destroy(a->suvm);
        a->suvm = NULL;
    }
    return 0;
}

/* Formats "stats" into a->stats_out through the protocol itself (same fields as a client
 * sees), inside the enclave in enclave modes. */
static long enclave_format_stats(void *arg) {
    struct app *a = arg;
    struct kvs_thread_stats scratch;
    memset(&scratch, 0, sizeof scratch);
    struct kvs_proto p;
    kvs_proto_init(&p, &a->srv.ctx, &scratch);
    char cmd[] = "stats\r\n";
    kvs_buf_init(&a->stats_out, a->srv.alloc);
    kvs_proto_feed(&p, cmd, sizeof cmd - 1, &a->stats_out);
    kvs_proto_fini(&p);
    return 0;
}

static long enclave_worker_main(void *arg) {
    return kvs_worker_loop(arg);
}

static void *worker_thread(void *arg) {
    struct kvs_worker *w = arg;
    struct app *a = (struct app *)((char *)w->srv - offsetof(struct app, srv));
    char name[16];
    snprintf(name, sizeof name, "eleos-kvs/%u", w->id);
    pthread_setname_np(pthread_self(), name);
    if (a->enc) {
        long ret = 0;
        int r = eleos_enclave_ecall(a->enc, enclave_worker_main, w, &ret);
        w->result = r ? r : (int)ret;
    } else {
        w->result = kvs_worker_loop(w);
    }
    if (w->result)
        fprintf(stderr, "eleos-kvs: worker %u stopped: %s\n", w->id, strerror(-w->result));
    return NULL;
}

/* --- main ------------------------------------------------------------------------------ */

static int ecall_or_call(struct app *a, eleos_enclave_fn fn) {
    if (!a->enc)
        return (int)fn(a);
    long ret = 0;
    int r = eleos_enclave_ecall(a->enc, fn, a, &ret);
    return r ? r : (int)ret;
}

/* Enclave side of the balloon: the requested size is host-chosen, so it is bounded here
 * (and eleos_suvm_resize refuses anything above the size the enclave created the cache
 * with). */
static long enclave_balloon(void *arg) {
    struct app *a = arg;
    size_t want = a->balloon_target;
    if (want < ((size_t)BALLOON_MIN_MIB << 20) || want > a->suvm_cache_start)
        return -EINVAL;
    int r = eleos_suvm_resize(a->suvm, want);
    if (r == 0)
        a->suvm_cache = want;
    return r;
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
    eleos_enclave_stats(a->enc, &st);
    b->last_faults = st.epc_faults;
    b->quiet = 0;
    b->wait = BALLOON_GROW_WAIT;
    b->probing = false;
}

static void balloon_resize(struct app *a, size_t want, uint64_t faults) {
    bool grow = want > a->suvm_cache;
    a->balloon_target = want;
    if (ecall_or_call(a, enclave_balloon) != 0)
        return;
    atomic_fetch_add_explicit(grow ? &a->balloon_grows : &a->balloon_shrinks, 1,
                              memory_order_relaxed);
    if (a->opt.verbose)
        fprintf(stderr, "eleos-kvs: %llu EPC faults in %d ms: SUVM cache now %zu KiB\n",
                (unsigned long long)faults, BALLOON_PERIOD_MS, a->suvm_cache >> 10);
}

/* One balloon step (host mode, main thread, every BALLOON_PERIOD_MS): shrink the SUVM cache
 * if the enclave took more than BALLOON_FAULTS EPC faults since the last step, grow it back
 * after a quiet wait (see BALLOON_* above). */
static void balloon_step(struct app *a, struct balloon *b) {
    struct eleos_enclave_stats st;
    eleos_enclave_stats(a->enc, &st);
    uint64_t faults = st.epc_faults - b->last_faults;
    b->last_faults = st.epc_faults;
    size_t min = (size_t)BALLOON_MIN_MIB << 20;
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

/*
 * --rpc auto: exitless calls pay off only if the RPC workers get CPU time of their own. A
 * worker polls; on a machine where the server threads already occupy every CPU, it takes
 * that time from them, and callers wait for a worker the scheduler has not run (measured on
 * a 2-vCPU VM, -t 2, 5x the EPC, uniform GETs: RPC on took throughput from 42k to 23k
 * requests/s, about 0.9 exit-path fallbacks per call even so). So auto turns RPC on when the
 * online CPUs number at least -t + --rpc-workers, leaving one worker's CPU shared at most.
 */
static bool rpc_has_cores(const struct options *o) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 && (unsigned long)cpus >= o->threads + o->rpc_workers;
}

static int start_enclave(struct app *a) {
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    cfg.epc_size = (uint64_t)a->opt.epc_mib << 20;
    cfg.name = "eleos-kvs";
    if (!a->opt.cost)
        eleos_cost_model_off(&cfg.cost);
    int r = eleos_enclave_create(&cfg, &a->enc);
    if (r) {
        fprintf(stderr, "eleos-kvs: cannot create the enclave: %s\n", strerror(-r));
        return r;
    }
    kvs_alloc_enclave(&a->enclave_alloc, a->enc);
    a->srv.alloc = &a->enclave_alloc;
#if defined(KVS_HAVE_ELEOS_SYS)
    if (a->rpc_on) {
        struct eleos_rpc_pool_config pc;
        eleos_rpc_pool_config_default(&pc);
        pc.workers = a->opt.rpc_workers;
        pc.spin_ns = a->opt.rpc_spin_us * 1000;
        /* one channel per kvs worker, plus the setup/teardown/stats ECALL threads */
        pc.channels = a->opt.threads + 4;
        r = eleos_rpc_pool_create(a->enc, &pc, &a->pool);
        if (!r)
            r = eleos_sys_host_register(a->pool);
        if (!r)
            r = eleos_rpc_pool_start(a->pool);
        if (r) {
            fprintf(stderr, "eleos-kvs: cannot start the RPC pool: %s\n", strerror(-r));
            return r;
        }
    }
#endif
    return 0;
}

static void print_banner(const struct app *a, const char *where) {
    const struct options *o = &a->opt;
    printf("eleos-kvs %s: a memcached-compatible key-value server (text protocol)\n",
           KVS_ELEOS_VERSION);
    if (a->enc) {
        struct eleos_enclave_config cfg;
        eleos_enclave_get_config(a->enc, &cfg);
        printf("  mode %s: workers run inside the enclave (EPC %zu MiB, cost model %s)\n",
               mode_name(o->mode), o->epc_mib,
               cfg.cost.syscall_cycles || cfg.cost.ecall_cycles ? "on" : "off");
        printf("    RPC  %s: network system calls %s%s\n", a->rpc_on ? "on " : "off",
               a->rpc_on ? "go to host workers without exits (eleos/sys.h)"
                         : "trap and exit the enclave",
               o->rpc < 0 && o->mode == KVS_MODE_ELEOS
                   ? (a->rpc_on ? " (auto: a CPU per RPC worker)"
                                : " (auto: no CPU left for an RPC worker; --rpc on forces it)")
                   : "");
        if (a->suvm_on)
            printf("    SUVM on : values in SUVM, page cache %zu MiB\n", o->suvm_cache_mib);
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

int main(int argc, char **argv) {
    static struct app app; /* large (holds the server); zeroed */
    struct app *a = &app;
    if (parse_options(argc, argv, &a->opt))
        return 2;
    a->stop_w = -1;
    a->srv.listen_fd = a->srv.stop_fd = -1;
    bool enclave = a->opt.mode != KVS_MODE_NATIVE;
    a->rpc_on = enclave && (a->opt.rpc >= 0 ? a->opt.rpc : a->opt.mode == KVS_MODE_ELEOS &&
                                                              rpc_has_cores(&a->opt));
    a->suvm_on = enclave && (a->opt.suvm >= 0 ? a->opt.suvm : a->opt.mode == KVS_MODE_ELEOS);
    if (a->rpc_on && !kvs_io_rpc_ops) {
        fprintf(stderr, "eleos-kvs: this build has no exitless system calls (eleos/sys.h); "
                        "use --rpc off\n");
        return 2;
    }

    /* Signals: blocked everywhere (workers inherit the mask), taken by sigwait below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    raise_fd_limit(a->opt.maxconns);
    char where[96];
    int rc = 1;
    a->srv.listen_fd = open_listener(&a->opt, where, sizeof where);
    if (a->srv.listen_fd < 0)
        return 1;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK)) {
        perror("eleos-kvs: pipe");
        goto out;
    }
    a->srv.stop_fd = pfd[0];
    a->stop_w = pfd[1];

    a->srv.alloc = &kvs_alloc_libc;
    a->srv.io = &kvs_io_host_ops;
    if (enclave) {
        if (start_enclave(a))
            goto out;
        a->srv.io = a->rpc_on ? kvs_io_rpc_ops : &kvs_io_exit_ops;
    }
    a->srv.maxconns = a->opt.maxconns;
    a->srv.pid = getpid();
    if (enclave) {
        a->lock_wake = eleos_untrusted_alloc(4096);
        if (!a->lock_wake) {
            fprintf(stderr, "eleos-kvs: out of memory\n");
            goto out_store;
        }
    }
    int r = ecall_or_call(a, enclave_setup);
    if (r) {
        fprintf(stderr, "eleos-kvs: cannot create the store: %s\n", strerror(-r));
        goto out_store;
    }
    if (a->suvm) {
        r = eleos_suvm_evictor_start(a->enc, a->suvm, &a->evictor);
        if (r)
            fprintf(stderr, "eleos-kvs: SUVM evictor not started (%s); faults evict inline\n",
                    strerror(-r));
    }
    struct kvs_ctx *ctx = &a->srv.ctx;
    ctx->store = a->srv.store;
    ctx->alloc = a->srv.alloc;
    atomic_init(&ctx->verbosity, a->opt.verbose);
    ctx->port = a->opt.port;
    ctx->maxconns = a->opt.maxconns;
    ctx->threads = a->opt.threads;
    ctx->interface = a->opt.addr;
    ctx->maxbytes = a->opt.mem_mib << 20;
    ctx->server_info = hook_server_info;
    ctx->eleos_stats = hook_eleos_stats;
    ctx->stats_reset = hook_stats_reset;
    ctx->hook_arg = a;

    a->srv.nworkers = a->opt.threads;
    a->srv.workers = calloc(a->opt.threads, sizeof *a->srv.workers);
    if (!a->srv.workers)
        goto out_store;
    /* Every worker's hand-over state exists before any worker runs: an acceptor may hand a
     * connection to a worker that has not started its loop yet (it then keeps it). */
    for (unsigned i = 0; i < a->opt.threads; i++) {
        struct kvs_worker *w = &a->srv.workers[i];
        w->srv = &a->srv;
        w->id = i;
        w->epfd = -1;
        pthread_mutex_init(&w->lock, NULL);
    }
    unsigned started = 0;
    for (unsigned i = 0; i < a->opt.threads; i++) {
        struct kvs_worker *w = &a->srv.workers[i];
        if (enclave && !a->rpc_on) {
            w->io_ctx.bounce_size = KVS_IO_BOUNCE_SIZE;
            w->io_ctx.bounce = eleos_untrusted_alloc(KVS_IO_BOUNCE_SIZE);
            if (!w->io_ctx.bounce)
                break;
        }
        if (pthread_create(&w->thread, NULL, worker_thread, w))
            break;
        started++;
    }
    if (started == a->opt.threads) {
        print_banner(a, where);
        int sig = 0;
        if (a->suvm && !a->opt.suvm_cache_set) {
            /* Auto-sized cache: run the balloon between signals. */
            struct timespec period = {0, BALLOON_PERIOD_MS * 1000000L};
            struct balloon b;
            balloon_init(a, &b);
            while ((sig = sigtimedwait(&sigs, NULL, &period)) < 0)
                balloon_step(a, &b);
        } else {
            sigwait(&sigs, &sig);
        }
        printf("\neleos-kvs: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        rc = 0;
    } else {
        fprintf(stderr, "eleos-kvs: cannot start worker threads\n");
    }
    /* Stop: the pipe becomes readable for every worker's epoll (level-triggered). */
    if (write(a->stop_w, "x", 1) != 1)
        perror("eleos-kvs: stop pipe");
    for (unsigned i = 0; i < started; i++) {
        pthread_join(a->srv.workers[i].thread, NULL);
        if (a->srv.workers[i].result)
            rc = 1;
    }

    if (rc == 0) {
        if (a->enc) {
            printf("\n== enclave statistics ==\n");
            fflush(stdout);
            eleos_enclave_stats_print(a->enc, STDOUT_FILENO);
        }
        if (ecall_or_call(a, enclave_format_stats) == 0) {
            printf("\n== eleos-kvs statistics (as \"stats\" reports them) ==\n");
            fwrite(a->stats_out.data, 1, a->stats_out.len, stdout);
            fflush(stdout);
            kvs_buf_fini(&a->stats_out);
        }
    }
    for (unsigned i = 0; i < a->srv.nworkers; i++) {
        if (a->srv.workers[i].io_ctx.bounce)
            eleos_untrusted_free(a->srv.workers[i].io_ctx.bounce, KVS_IO_BOUNCE_SIZE);
        pthread_mutex_destroy(&a->srv.workers[i].lock);
    }
    free(a->srv.workers);
out_store:
    if (a->evictor)
        eleos_suvm_evictor_stop(a->evictor);
    if (ecall_or_call(a, enclave_teardown))
        rc = 1;
out:
    if (a->pool)
        eleos_rpc_pool_destroy(a->pool);
    if (a->enc)
        eleos_enclave_destroy(a->enc);
    if (a->lock_wake)
        eleos_untrusted_free((void *)a->lock_wake, 4096);
    if (a->srv.listen_fd >= 0)
        close(a->srv.listen_fd);
    if (a->srv.stop_fd >= 0)
        close(a->srv.stop_fd);
    if (a->stop_w >= 0)
        close(a->stop_w);
    return rc;
}
