/*
 * host_main.c — eleos-face, host side: the face-verification server of the Eleos paper
 * (its second application), in three modes.
 *
 *   native  histograms in host memory, libc system calls, no enclave;
 *   sgx     requests served inside the enclave, histograms on the enclave heap (paged by
 *           the emulated EPC beyond it), every system call an exit;
 *   eleos   served inside the enclave, histograms in SUVM (enclave_db.c), system calls on
 *           the batched I/O queue (--rpc auto, its default: enclave_queue.c), or through
 *           the exitless RPC one call at a time (--rpc sync).
 *
 * Why the queue: with one call at a time a request makes about twelve calls, each a round
 * trip to an RPC worker that competes for the cores with the enclave workers and falls back
 * to an exit when preempted; the queue posts a request's receives and its answer in batches,
 * one exit per batch on the uring executor, with no thread spinning (docs/face.md).
 *
 * Threads: the main thread listens and (except on the queue, where each worker accepts for
 * itself) accepts in host mode and adds each connection to the epoll instance the enclave
 * created at set-up; --workers threads (default 4, the original's) each enter the enclave
 * once and serve requests until SIGINT/SIGTERM. At set-up the enclave reads the key file
 * and the enrolment images itself (face_server.h).
 *
 *   eleos-face --db DIR --keys FILE [--identities N] [--threshold T] [--workers N]
 *              [--access auto|bulk|direct] [-l ADDR] [-p PORT] [shared platform flags]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <getopt.h>

#include "app_options.h"
#include "app_ossl.h"
#include "eleos/ioq.h"
#include "face_server.h"
#include "host_platform.h"

#define PROG "eleos-face"
/* The default threshold separates the synthetic set's genuine and impostor distances
 * (docs/face.md has the distributions). */
#define DEFAULT_THRESHOLD 95000.0
#define DEFAULT_SPIN_US 2000u
/* A client that stalls inside a request is cut off after this long. */
#define IO_TIMEOUT_S 5

static atomic_bool stopping;
static struct app_platform pf;

static void on_stop(int sig) {
    (void)sig;
    atomic_store_explicit(&stopping, true, memory_order_relaxed);
}

struct options {
    const char *addr, *db, *keys;
    uint64_t port, identities, workers;
    double threshold;
    enum face_access access;
    struct app_platform_opts plat;
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " --db DIR --keys FILE [options]\n"
            "      --db=DIR           enrolment images DIR/NNNNN_a.pgm, NNNNN_b.pgm (eleos-face-gen)\n"
            "      --keys=FILE        client keys, one \"<id> <64 hex digits>\" per line\n"
            "      --identities=N     enrol the first N identities (default: all found)\n"
            "      --threshold=T      accept a chi-square distance below T (default %.0f)\n"
            "      --workers=N        enclave worker threads (default 4)\n"
            "      --access=M         eleos mode's SUVM access: auto, bulk or direct\n"
            "  -l ADDR                address to listen on (default 127.0.0.1)\n"
            "  -p PORT                TCP port (default 7100)\n",
            DEFAULT_THRESHOLD);
    struct app_platform_opts d;
    app_platform_opts_default(&d, APP_MODE_NATIVE, 60, DEFAULT_SPIN_US);
    app_platform_usage(f, &d);
    fprintf(f, "  (with the I/O queue each worker accepts and serves its own connections)\n");
}

enum { O_DB = 0x2000, O_KEYS, O_IDS, O_THRESHOLD, O_WORKERS, O_ACCESS };

static bool own_opt(struct options *o, int c, const char *arg) {
    char *end;
    switch (c) {
    case 'l': o->addr = arg; return true;
    case 'p': return app_parse_u64(arg, 65535, &o->port) && o->port > 0;
    case O_DB: o->db = arg; return strlen(arg) < FACE_PATH_MAX;
    case O_KEYS: o->keys = arg; return strlen(arg) < FACE_PATH_MAX;
    case O_IDS: return app_parse_u64(arg, FACE_IDENTITIES_MAX, &o->identities);
    case O_WORKERS:
        return app_parse_u64(arg, FACE_WORKERS_MAX, &o->workers) && o->workers > 0;
    case O_THRESHOLD:
        o->threshold = strtod(arg, &end);
        return *arg && !*end && isfinite(o->threshold) && o->threshold > 0;
    case O_ACCESS:
        o->access = !strcmp(arg, "auto")     ? FACE_ACCESS_AUTO
                    : !strcmp(arg, "bulk")   ? FACE_ACCESS_BULK
                    : !strcmp(arg, "direct") ? FACE_ACCESS_DIRECT
                                             : (enum face_access)-1;
        return (int)o->access >= 0;
    }
    return false;
}

static void parse_options(struct options *o, int argc, char **argv) {
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"keys", required_argument, NULL, O_KEYS},
        {"identities", required_argument, NULL, O_IDS},
        {"threshold", required_argument, NULL, O_THRESHOLD},
        {"workers", required_argument, NULL, O_WORKERS},
        {"access", required_argument, NULL, O_ACCESS},
        {"help", no_argument, NULL, 'h'},
        APP_PLATFORM_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "l:p:h", longopts, NULL)) != -1) {
        int r = app_platform_opt(&o->plat, c, optarg, PROG);
        if (r < 0)
            exit(2);
        if (r > 0)
            continue;
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == '?' || !own_opt(o, c, optarg)) {
            if (c != '?')
                fprintf(stderr, PROG ": bad value for an option: '%s'\n", optarg);
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc || !o->db || !o->keys) {
        fprintf(stderr, PROG ": %s\n", optind < argc ? "unexpected argument"
                                                     : "--db and --keys are required");
        usage(stderr);
        exit(2);
    }
    if (app_platform_opts_check(&o->plat, PROG))
        exit(2);
}

/* The host's own guess of the database size, for the enclave's address range only: a
 * wrong one makes set-up fail with ENOMEM, nothing worse. */
static uint64_t guess_identities(const struct options *o) {
    if (o->identities)
        return o->identities;
    char path[FACE_PATH_MAX + 32];
    struct stat sb;
    uint64_t n = 0;
    while (n < FACE_IDENTITIES_MAX) {
        snprintf(path, sizeof path, "%s/%05u_a.pgm", o->db, (unsigned)n);
        if (stat(path, &sb))
            break;
        n++;
    }
    return n;
}

static int server_setup(const struct options *o, int lfd, struct face_setup *su) {
    uint64_t db_mib = (guess_identities(o) * 2 * FACE_HIST_BYTES >> 20) + 1;
    int r = app_platform_start(&pf, &o->plat, PROG, "face", (unsigned)o->workers,
                               (db_mib + 256) << 20);
    if (r)
        return r;
    memset(su, 0, sizeof *su);
    su->mode = (enum face_mode)o->plat.mode;
    su->rpc_on = pf.rpc_on;
    su->suvm_on = pf.suvm_on;
    su->access = o->access;
    snprintf(su->db_dir, sizeof su->db_dir, "%s", o->db);
    snprintf(su->key_file, sizeof su->key_file, "%s", o->keys);
    su->identities = (uint32_t)o->identities;
    su->workers = (uint32_t)o->workers;
    su->threshold = o->threshold;
    su->cache_bytes = o->plat.suvm_cache_set ? (uint64_t)o->plat.suvm_cache_mib << 20 : 0;
    su->rpc_area = app_platform_rpc_area(&pf, &su->rpc_area_size);
    su->queue_on = pf.io == APP_IO_QUEUE;
    su->io_exec = su->queue_on ? pf.io_exec : -1;
    su->listen_fd = su->queue_on ? lfd : -1;
    r = app_ecall(&pf, face_enclave_setup, su);
    su->out_error[sizeof su->out_error - 1] = '\0';
    if (r && su->out_error[0])
        fprintf(stderr, PROG ": %s\n", su->out_error);
    return r;
}

static void *worker_thread(void *arg) {
    int r = app_ecall(&pf, face_enclave_work, arg);
    if (r)
        fprintf(stderr, PROG ": worker %u: %s\n", (unsigned)(uintptr_t)arg, strerror(-r));
    return NULL;
}

/* Non-blocking, as eleos-kvs's: several queues accept on it, and the batch executor polls
 * before it accepts, so a connection another worker took first must give EAGAIN, not a
 * worker blocked in accept4 until the next client (or forever, at shutdown). */
static int listen_on(const char *addr, uint16_t port) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0)
        return -1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 256) != 0) {
        close(lfd);
        return -1;
    }
    return lfd;
}

/* Connections are the host's business until they are ready: it accepts them and hands
 * them to the enclave's epoll instance. */
static void accept_loop(int lfd, int epfd) {
    int one = 1;
    struct timeval tv = {IO_TIMEOUT_S, 0};
    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = (uint64_t)fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev))
            close(fd);
    }
}

static void print_stats(const struct face_stats *st) {
    typedef unsigned long long ull;
    printf(PROG ": requests %llu, accepted %llu, rejected %llu; refused: frame %llu, "
           "client %llu, auth %llu, replay %llu, identity %llu, truncated %llu, internal %llu; "
           "host faults %llu, connections closed %llu\n",
           (ull)st->requests, (ull)st->accepted, (ull)st->rejected,
           (ull)st->status[FACE_E_FRAME], (ull)st->status[FACE_E_CLIENT],
           (ull)st->status[FACE_E_AUTH], (ull)st->status[FACE_E_REPLAY],
           (ull)st->status[FACE_E_IDENTITY], (ull)st->status[FACE_E_TRUNCATED],
           (ull)st->status[FACE_E_INTERNAL], (ull)st->host_faults, (ull)st->conns_closed);
    double n = st->requests ? (double)st->requests : 1;
    if (pf.enc) {
        struct eleos_enclave_stats es;
        eleos_enclave_stats(pf.enc, &es);
        /* Exits: trapped system calls and OCALLs (the RPC's exit path, the queue's enters). */
        printf(PROG ": per request: epc faults %.2f, exits %.2f (syscalls %.2f, ocalls %.2f), "
               "aex %.2f\n",
               (double)es.epc_faults / n, (double)(es.syscall_exits + es.ocalls) / n,
               (double)es.syscall_exits / n, (double)es.ocalls / n, (double)es.aex / n);
    }
    if (st->suvm)
        printf(PROG ": per request: suvm major faults %.2f, sub-pages opened %.2f, hits %.2f, "
               "evictions %.2f; integrity failures %llu\n",
               (double)st->suvm_major_faults / n, (double)st->suvm_subpage_reads / n,
               (double)st->suvm_hits / n, (double)st->suvm_evictions / n,
               (ull)st->suvm_integrity_failures);
    if (st->rpc)
        printf(PROG ": rpc: calls %llu, exitless %llu, fallbacks %llu, ocalls %llu\n",
               (ull)st->rpc_calls, (ull)st->rpc_exitless, (ull)st->rpc_fallbacks,
               (ull)st->rpc_ocalls);
    if (st->ioq) {
        printf(PROG ": i/o queue: ops %.2f and exits %.2f per request, host faults %llu, "
               "body timeouts %llu; workers ending on",
               (double)st->ioq_ops / n, (double)st->ioq_exits / n, (ull)st->ioq_host_faults,
               (ull)st->ioq_timeouts);
        for (unsigned e = 0; e < ELEOS_IOQ_NEXEC; e++)
            if (st->ioq_final_exec[e])
                printf(" %s %llu", eleos_ioq_exec_name((enum eleos_ioq_exec)e),
                       (ull)st->ioq_final_exec[e]);
        printf("\n");
    }
    fflush(stdout);
    if (pf.enc)
        eleos_enclave_stats_print(pf.enc, STDOUT_FILENO);
}

/* Host mode, before the enclave exists: OpenSSL's cipher tables are fetched now, onto
 * libc's heap, not later by a worker onto the enclave's. */
static int crypto_warm(void) {
    void *g = face_gcm_new();
    uint8_t key[FACE_KEY_BYTES] = {0}, buf[16] = {0}, tag[FACE_TAG_BYTES];
    int r = g ? face_seal(g, key, 0, 0, NULL, 0, buf, buf, sizeof buf, tag) : -1;
    face_gcm_free(g);
    return r;
}

int main(int argc, char **argv) {
    app_ossl_mem_install(); /* before any OpenSSL call: where its allocations go */
    struct options o = {.addr = "127.0.0.1", .port = 7100, .workers = 4,
                        .threshold = DEFAULT_THRESHOLD, .access = FACE_ACCESS_AUTO};
    app_platform_opts_default(&o.plat, APP_MODE_NATIVE, 60, DEFAULT_SPIN_US);
    parse_options(&o, argc, argv);
    if (crypto_warm()) {
        fprintf(stderr, PROG ": AES-256-GCM is not available\n");
        return 1;
    }
    int lfd = listen_on(o.addr, (uint16_t)o.port);
    if (lfd < 0) {
        perror(PROG ": listen");
        return 1;
    }
    struct face_setup su;
    int r = server_setup(&o, lfd, &su);
    if (r) {
        fprintf(stderr, PROG ": %s mode set-up: %s\n", app_mode_name(o.plat.mode),
                strerror(-r));
        return 1;
    }
    su.out_db[FACE_NAME_MAX - 1] = su.out_io[FACE_NAME_MAX - 1] = '\0';
    if (pf.enc)
        eleos_enclave_stats_reset(pf.enc); /* per-request counts exclude enrolment */
    struct sigaction act = {0};
    act.sa_handler = on_stop; /* sa_mask empty: never blocks SIGSYS (docs/emulator.md) */
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
    pthread_t th[FACE_WORKERS_MAX];
    unsigned started = 0;
    for (; started < o.workers; started++)
        if (pthread_create(&th[started], NULL, worker_thread, (void *)(uintptr_t)started))
            break;
    printf(PROG ": mode %s, %u identities (%.1f MiB, %s), threshold %g, %u workers, io path "
           "%s (%s), listening on %s:%u\n",
           app_mode_name(o.plat.mode), su.out_identities, (double)su.out_db_bytes / 1048576.0,
           su.out_db, o.threshold, started, app_io_path_name(pf.io), su.out_io, o.addr,
           (unsigned)o.port);
    fflush(stdout);
    if (su.queue_on)
        while (!atomic_load_explicit(&stopping, memory_order_relaxed))
            poll(NULL, 0, 200); /* the workers accept on the queue themselves */
    else
        accept_loop(lfd, su.out_epfd);
    close(lfd);
    (void)app_ecall(&pf, face_enclave_stop, NULL);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    struct face_stats st;
    memset(&st, 0, sizeof st);
    if ((r = app_ecall(&pf, face_enclave_stats, &st)))
        fprintf(stderr, PROG ": statistics: %s\n", strerror(-r));
    print_stats(&st);
    return 0;
}
