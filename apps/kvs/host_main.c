/*
 * eleos-kvs — a memcached-compatible key-value server running in an (emulated) SGX enclave
 * on Eleos. This file is the host side: options, the listening socket, the enclave and its
 * services, worker threads, signals and the statistics printed at exit. The server itself (store, connections, event loop) is enclave_server.c and
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
#include "app_ossl.h"
#include "eleos/enclave.h"
#include "enclave_tls.h"
#include "host_platform.h"
#include "eleos/ioq.h"
#include "host_options.h"
#include "kvs_server.h"

/* The paper's EPC++ is 60 of 93 MiB; our item headers and hash table also live in the EPC,
 * so the default page cache leaves them a little more room. */
/* KVS_DEFAULT_SUVM_CACHE_MIB (host_options.h): the cache --suvm-cache sets. Without the
 * option the cache is auto-sized: SUVM coordinates it with the platform EPC (the enclave's
 * share minus the rest of its footprint, which includes the item headers and hash table
 * -m implies), at run time and with no help from the host (docs/suvm.md, "Sharing the
 * EPC"; docs/kvs.md, "Cache sizing"). */
/* How long an idle RPC worker spins before it sleeps. Between two requests of a loaded
 * server the workers' loops are busy inside the enclave (parsing, copying, SUVM faults) for
 * tens of microseconds, longer still on a machine with fewer cores than threads, where a
 * worker may wait a scheduler slice; a sleeping RPC worker turns the next call into an exit
 * (a fallback). 2 ms, as apps/pserver; --rpc-spin-us changes it. */
/* KVS_DEFAULT_RPC_SPIN_US (host_options.h) */

/* Host-only state: handles, descriptors, threads. */
struct app {
    struct options opt;
    struct app_platform pf;
    void *wake_page;          /* untrusted: the enclave locks' wake words              */
    size_t wake_page_size;
    struct kvs_listen_set ls;  /* listening sockets (and the UDP socket)          */
    int stop_r, stop_w;
    pthread_t *threads;
    long *results;
    pthread_t udp_thread;
    bool udp_started;
    int argc;
    char **argv;
};

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
    s.io_mod = a->pf.io_mod;
    s.io_gather = o->gather;
    s.suvm_on = a->pf.suvm_on;
    s.threads = o->threads;
    s.maxconns = o->maxconns;
    s.verbose = o->verbose;
    s.port = o->port;
    s.mem_limit = o->mem_mib << 20;
    s.item_size_max = o->item_size_max;
    /* 0: auto, SUVM coordinates it with the platform (the enclave checks the value). */
    s.suvm_cache = o->plat.suvm_cache_set ? o->plat.suvm_cache_mib << 20 : 0;
    s.stop_fd = a->stop_r;
    s.nlisten = a->ls.n;
    memcpy(s.listen_fds, a->ls.fd, sizeof s.listen_fds);
    memcpy(s.listen_conf, a->ls.conf, sizeof s.listen_conf);
    s.udp_fd = a->ls.udp_fd;
    snprintf(s.interface, sizeof s.interface, "%s", o->addr);
    s.settings = o->set; /* host_options.c filled it, -m/-c/-t/-I/-v included */
    s.rpc_area = app_platform_rpc_area(&a->pf, &s.rpc_area_size);
    s.wake_page = a->wake_page;
    s.wake_page_size = a->wake_page_size;
    int r = app_ecall(&a->pf, kvs_enclave_setup, &s);
    if (r) {
        if (r != -EPROTO) /* -EPROTO: the TLS set-up printed memcached's message */
            fprintf(stderr, "eleos-kvs: cannot create the store: %s\n", strerror(-r));
        return r;
    }
    app_platform_start_evictor(&a->pf, s.out_suvm, "eleos-kvs");
    return 0;
}

static void print_banner(const struct app *a) {
    const char *where = a->ls.desc[0];
    const struct options *o = &a->opt;
    const struct kvs_settings *st = &a->opt.set;
    printf("eleos-kvs %s: a memcached-compatible key-value server (text, meta and binary "
           "protocols%s%s)\n",
           KVS_ELEOS_VERSION, st->ssl_enabled ? ", TLS in the enclave" : "",
           st->sasl ? ", SASL" : st->auth_ascii ? ", ASCII auth" : "");
    const struct app_platform_opts *p = &o->plat;
    bool rpc_on = a->pf.rpc_on;
    if (a->pf.enc) {
        struct eleos_enclave_config cfg;
        eleos_enclave_get_config(a->pf.enc, &cfg);
        printf("  mode %s: workers run inside the enclave (EPC %zu MiB, cost model %s)\n",
               app_mode_name(p->mode), p->epc_mib,
               cfg.cost.syscall_cycles || cfg.cost.ecall_cycles ? "on" : "off");
        struct eleos_cost_calibration cal;
        if ((cfg.cost.syscall_cycles || cfg.cost.ecall_cycles || cfg.cost.raw) &&
            eleos_enclave_cost_calibration(a->pf.enc, &cal) == 0) {
            /* What this machine really charges per event (bench_kvs.sh quotes this line). */
            char line[640];
            eleos_cost_calibration_format(&cal, line, sizeof line);
            printf("    %s\n", line);
        }
        if (a->pf.io == APP_IO_QUEUE)
            printf("    I/O  queue: network system calls batched on completion rings "
                   "(eleos/ioq.h), executor %s\n",
                   eleos_ioq_exec_name((enum eleos_ioq_exec)a->pf.io_exec));
        else
            printf("    RPC  %s: network system calls %s\n", rpc_on ? "on " : "off",
                   rpc_on ? "go to host workers one at a time (eleos/sys.h)"
                          : "trap and exit the enclave");
        if (a->pf.suvm_on && p->suvm_cache_set)
            printf("    SUVM on : values in SUVM, page cache %zu MiB (fixed)\n", p->suvm_cache_mib);
        else if (a->pf.suvm_on)
            printf("    SUVM on : values in SUVM, page cache auto (coordinated with the platform "
                   "EPC)\n");
        else
            printf("    SUVM off: values on the enclave heap (emulated EPC paging)\n");
    } else {
        printf("  mode native: no enclave, values in host memory\n");
    }
    printf("  -m %zu MiB, -I %zu bytes, -t %u threads, -c %u connections\n", o->mem_mib,
           o->item_size_max, o->threads, o->maxconns);
    for (unsigned i = 0; i < a->ls.n; i++) /* tests read the port of the first */
        printf("listening on %s\n", a->ls.desc[i]);
    if (a->ls.udp_fd >= 0)
        printf("UDP on %s (memcached's frame header; not on the exitless path)\n",
               a->ls.udp_desc);
    const char *colon = strrchr(where, ':');
    int hlen = colon ? (int)(colon - where) : (int)strlen(where);
    const char *port = colon ? colon + 1 : "11211";
    printf("connect with any memcached client, e.g.\n"
           "  memccp --servers=%.*s:%s FILE; memccat --servers=%.*s:%s FILE\n"
           "  memcstat --servers=%.*s:%s\n"
           "  /usr/bin/python3 -c 'from pymemcache.client.base import Client; "
           "c = Client((\"%.*s\", %s)); c.set(\"k\", \"hello\"); print(c.get(\"k\"))'\n"
           "Ctrl-C (SIGINT), SIGTERM or SIGUSR1 prints the statistics and exits.\n",
           hlen, where, port, hlen, where, port, hlen, where, port, hlen, where, port);
    fflush(stdout);
}

/* Waits for SIGINT/SIGTERM. Nothing runs in between: the SUVM cache sizes itself. */
static int wait_for_signal(struct app *a, const sigset_t *sigs) {
    (void)a;
    int sig = 0;
    sigwait(sigs, &sig);
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

static void *udp_thread(void *arg) {
    struct app *a = arg;
    pthread_setname_np(pthread_self(), "eleos-kvs/udp");
    long r = app_ecall(&a->pf, kvs_enclave_udp, NULL);
    if (r)
        fprintf(stderr, "eleos-kvs: UDP stopped: %s\n", strerror((int)-r));
    return (void *)(intptr_t)r;
}

static const char *signal_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1 (graceful)" : "SIGTERM";
}

/* Starts the workers, serves until a signal, stops them. 0, or 1 on any failure. */
static int serve(struct app *a, const sigset_t *sigs) {
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
    if (started == n && a->ls.udp_fd >= 0)
        a->udp_started = pthread_create(&a->udp_thread, NULL, udp_thread, a) == 0;
    if (started == n && (a->ls.udp_fd < 0 || a->udp_started)) {
        print_banner(a);
        int sig = wait_for_signal(a, sigs);
        printf("\neleos-kvs: %s, shutting down\n", signal_name(sig));
        if (sig == SIGUSR1)
            fprintf(stderr, "Gracefully stopping\n"); /* memcached's line */
        else if (a->opt.verbose)
            fprintf(stderr, "Exiting normally\n");
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
    void *ur = NULL;
    if (a->udp_started && (pthread_join(a->udp_thread, &ur), ur != NULL))
        rc = 1;
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
    kvs_listeners_close(&a->ls);
    if (a->stop_r >= 0)
        close(a->stop_r);
    if (a->stop_w >= 0)
        close(a->stop_w);
}

/* memcached's start-up order: options, descriptor limit, identity, daemon, sockets, pid
 * file; then the enclave and its threads (after any fork). */
static int start(struct app *a, sigset_t *sigs) {
    int r = kvs_options_parse(a->argc, a->argv, &a->opt);
    if (r)
        return r;
    if (a->opt.set.ssl_enabled && kvs_tls_lib_init()) {
        fprintf(stderr, "eleos-kvs: cannot initialise OpenSSL\n");
        return 1;
    }
    /* Signals: blocked everywhere (workers inherit the mask), taken by sigwait. SIGUSR1 is
     * `shutdown graceful`, as in memcached. */
    sigemptyset(sigs);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (raise_fd_limit(a->opt.maxconns))
        return KVS_EX_OSERR; /* as memcached */
    if ((r = kvs_process_setup(&a->opt)) != 0)
        return r;
    if ((r = kvs_listeners_open(&a->opt, &a->ls)) != 0)
        return r;
    if (a->opt.pidfile)
        kvs_pidfile_save(a->opt.pidfile);
    return 0;
}

int main(int argc, char **argv) {
    struct app app = {.stop_r = -1, .stop_w = -1, .argc = argc, .argv = argv};
    struct app *a = &app;
    app_ossl_mem_install(); /* before any OpenSSL call: where its allocations go */
    a->ls.udp_fd = -1;
    sigset_t sigs;
    int rc = start(a, &sigs);
    if (rc) {
        kvs_listeners_close(&a->ls);
        return rc;
    }
    bool server_up = false;
    int pfd[2];
    rc = 1;
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
    rc = serve(a, &sigs);
out:
    teardown(a, server_up, &rc);
    if (a->opt.daemonize && a->opt.pidfile)
        kvs_pidfile_remove(a->opt.pidfile); /* memcached removes it only as a daemon */
    return rc;
}
