/*
 * host_main.c — eleos-pserver, host side: the parameter server that motivated Eleos, in
 * three modes.
 *
 *   native  table in host memory, libc system calls, no enclave;
 *   sgx     each connection is served inside the enclave (one ECALL per connection thread),
 *           the table is on the enclave heap (so it suffers emulated EPC paging) and every
 *           recv/send is a trapped system call: an exit;
 *   eleos   served inside the enclave, table in SUVM (see enclave_suvm.c); recv/send on
 *           the I/O path --rpc picks (app_options.h): by default each connection's own I/O
 *           queue (eleos/ioq.h, enclave_queue.c) with its executor chosen at run time, or
 *           a forced executor (uring, worker = on, sqpoll, batch), or the one-call-at-a-time
 *           exitless RPC (sync), or an exit per call (off).
 *
 * Threads: the main thread listens and accepts in host mode (connection set-up is not part of
 * the measured path) and starts one thread per connection, which enters the enclave for the
 * connection's whole life. The request loop, its buffers and the table are enclave-side
 * (enclave_server.c); this file only passes the enclave integers and set-up values it
 * copies and checks (pserver_server.h), and never names the enclave's state.
 * SIGINT/SIGTERM stop the accept loop; the statistics are printed on the way out.
 *
 *   eleos-pserver [--mode native|sgx|eleos] [-l ADDR] [-p PORT] [--table MiB] [--epc MiB]
 *                 [--rpc auto|on|uring|worker|sqpoll|batch|sync|off] [--suvm-cache MiB]
 *                 [--cost on|off] [--pollute KiB] [--rpc-workers N] [--rpc-spin-us N]
 *
 * --suvm-cache is SUVM's page cache in eleos mode (default 60 MiB, the paper's EPC++);
 * --rpc-workers the number of RPC workers (--rpc sync) or I/O queue workers (the worker
 * executor), --rpc-spin-us how long RPC workers spin idle before sleeping (default 2000);
 * --pollute the cost model's per-exit cache-pollution knob. The start-up line names the
 * I/O path (host, exit, sync or queue) and, for the queue, the executor asked for; the
 * final statistics the queue's exits, spins and the executors it ran on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <getopt.h>

#include "app_options.h"
#include "eleos/enclave.h"
#include "host_platform.h"
#include "pserver_server.h"

/* Bounds of the numeric options (the enclave checks the table's again). */
#define MAX_MIB (PS_TABLE_MAX_BYTES >> 20)
/* A busy server computes for up to milliseconds between its recv and send (a 64 KiB batch
 * of SUVM updates): workers that sleep sooner would make the next call take the exit path.
 * 2 ms covers a 4 KiB batch; --rpc-spin-us changes it. */
#define DEFAULT_SPIN_US 2000u
/* Connection threads the RPC auto decision counts (a client's batches are sequential). */
#define RPC_AUTO_THREADS 1u

static atomic_bool stopping;
static struct app_platform pf;          /* enclave and RPC pool (host handles)         */
static _Atomic uint64_t conns;

static void on_stop(int sig) {
    (void)sig;
    atomic_store_explicit(&stopping, true, memory_order_relaxed);
}

struct options {
    const char *addr;
    uint64_t port, table_mib;
    struct app_platform_opts plat;
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: eleos-pserver [options]\n"
            "  -l ADDR                address to listen on (default 127.0.0.1)\n"
            "  -p PORT                TCP port (default 7000)\n"
            "      --table=MB         the table of counters (default 512)\n");
    struct app_platform_opts d;
    app_platform_opts_default(&d, APP_MODE_NATIVE, 60, DEFAULT_SPIN_US);
    app_platform_usage(f, &d);
    fprintf(f, "  (--suvm-cache without a value set is SUVM's default, 60 MiB;\n"
               "   --cache, --workers, --spin-us: old names, still accepted)\n");
}

/* Old flag names of this program, accepted for one release. */
enum { O_TABLE = 0x2000, O_OLD_CACHE, O_OLD_WORKERS, O_OLD_SPIN };

static int old_name(struct options *o, int c, const char *arg) {
    static const struct { int code, to; const char *old, *now; } map[] = {
        {O_OLD_CACHE, APP_OPT_SUVM_CACHE, "--cache", "--suvm-cache"},
        {O_OLD_WORKERS, APP_OPT_RPC_WORKERS, "--workers", "--rpc-workers"},
        {O_OLD_SPIN, APP_OPT_RPC_SPIN, "--spin-us", "--rpc-spin-us"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].code != c)
            continue;
        fprintf(stderr, "eleos-pserver: note: %s is deprecated, use %s\n", map[i].old,
                map[i].now);
        return app_platform_opt(&o->plat, map[i].to, arg, "eleos-pserver");
    }
    return 0;
}

static bool own_opt(struct options *o, int c, const char *arg) {
    if (c == 'l') {
        o->addr = arg;
        return true;
    }
    if (c == 'p')
        return app_parse_u64(arg, 65535, &o->port) && o->port > 0;
    if (c == O_TABLE)
        return app_parse_u64(arg, MAX_MIB, &o->table_mib) && o->table_mib > 0;
    return false;
}

static void parse_options(struct options *o, int argc, char **argv) {
    static const struct option longopts[] = {
        {"table", required_argument, NULL, O_TABLE},
        {"cache", required_argument, NULL, O_OLD_CACHE},
        {"workers", required_argument, NULL, O_OLD_WORKERS},
        {"spin-us", required_argument, NULL, O_OLD_SPIN},
        {"help", no_argument, NULL, 'h'},
        APP_PLATFORM_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "l:p:h", longopts, NULL)) != -1) {
        int r = app_platform_opt(&o->plat, c, optarg, "eleos-pserver");
        if (r == 0)
            r = old_name(o, c, optarg);
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
                fprintf(stderr, "eleos-pserver: bad value for option %s: '%s'\n",
                        c == 'l' ? "-l" : c == 'p' ? "-p" : "--table", optarg);
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "eleos-pserver: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
    if (app_platform_opts_check(&o->plat, "eleos-pserver"))
        exit(2);
}

static int server_setup(const struct options *o, struct ps_setup *su) {
    int r = app_platform_start(&pf, &o->plat, "eleos-pserver", "pserver", RPC_AUTO_THREADS,
                               (o->table_mib + 256) << 20);
    if (r)
        return r;
    *su = (struct ps_setup){.mode = (enum ps_mode)o->plat.mode, .rpc_on = pf.rpc_on,
                            .suvm_on = pf.suvm_on, .table_bytes = o->table_mib << 20,
                            .cache_bytes = o->plat.suvm_cache_set ? o->plat.suvm_cache_mib << 20
                                                                  : 0,
                            .ioq_on = pf.io == APP_IO_QUEUE,
                            .ioq_exec = pf.io == APP_IO_QUEUE ? (uint32_t)pf.io_exec : 0};
    su->rpc_area = app_platform_rpc_area(&pf, &su->rpc_area_size);
    return app_ecall(&pf, ps_enclave_setup, su);
}

static void *conn_thread(void *arg) {
    int ret = app_ecall(&pf, ps_enclave_serve, arg);
    if (ret == -EPROTO)
        fprintf(stderr, "eleos-pserver: malformed request, connection closed\n");
    else if (ret < 0)
        fprintf(stderr, "eleos-pserver: connection closed: %s\n", strerror(-ret));
    return NULL;
}

static int listen_on(const char *addr, uint16_t port) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0)
        return -1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 128) != 0) {
        close(lfd);
        return -1;
    }
    return lfd;
}

static void accept_loop(int lfd) {
    int one = 1;
    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        atomic_fetch_add_explicit(&conns, 1, memory_order_relaxed);
        pthread_t th;
        /* The thread's argument is the descriptor itself: no host struct to trust. */
        if (pthread_create(&th, NULL, conn_thread, (void *)(uintptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(th);
    }
}

/* The queue path: the enclave's counters (summed over closed connections) and the host's
 * I/O service. */
static void print_ioq_stats(const struct ps_stats *st) {
    typedef unsigned long long ull;
    char by[160] = "", fin[160] = "";
    for (unsigned e = 1; e < ELEOS_IOQ_NEXEC; e++) {
        const char *n = eleos_ioq_exec_name((enum eleos_ioq_exec)e);
        size_t lb = strlen(by), lf = strlen(fin);
        snprintf(by + lb, sizeof by - lb, "%s%s %llu", lb ? ", " : "", n,
                 (ull)st->ioq_by_exec[e]);
        snprintf(fin + lf, sizeof fin - lf, "%s%s %llu", lf ? ", " : "", n,
                 (ull)st->ioq_final_exec[e]);
    }
    dprintf(STDOUT_FILENO,
            "ioq: executor %s; %llu connections (%llu failed to set up); ops %llu, "
            "completions %llu, exits %llu (enters %llu, wakes %llu), spins %llu, polled %llu, "
            "host faults %llu, bad results %llu, switches %llu (trials %llu, kept %llu)\n"
            "ioq: ops by executor: %s; executor in effect at close: %s\n",
            eleos_ioq_exec_name((enum eleos_ioq_exec)st->ioq_exec), (ull)st->ioq_conns,
            (ull)st->ioq_failures, (ull)st->ioq_ops, (ull)st->ioq_completions,
            (ull)st->ioq_exits, (ull)st->ioq_enters, (ull)st->ioq_wakes, (ull)st->ioq_spins,
            (ull)st->ioq_polled, (ull)st->ioq_host_faults, (ull)st->ioq_bad_results,
            (ull)st->ioq_switches, (ull)st->ioq_trials, (ull)st->ioq_trials_won, by, fin);
    struct eleos_ioq_service_stats ss;
    eleos_ioq_service_stats(&ss);
    dprintf(STDOUT_FILENO,
            "ioq service: %u workers, %llu submits, slept %llu times, woken %llu times; "
            "idle CPU %llu/%u permille\n",
            ss.workers, (ull)ss.submits, (ull)ss.sleeps, (ull)ss.wakes, (ull)ss.idle_permille,
            ss.ncpus * 1000);
}

static void print_stats(void) {
    struct ps_stats st;
    memset(&st, 0, sizeof st);
    int ret = app_ecall(&pf, ps_enclave_stats, &st);
    if (ret)
        fprintf(stderr, "eleos-pserver: statistics: %s\n", strerror(-ret));
    printf("eleos-pserver: %llu connections, %llu batches, %llu keys\n",
           (unsigned long long)atomic_load(&conns), (unsigned long long)st.batches,
           (unsigned long long)st.keys);
    fflush(stdout);
    if (!pf.enc)
        return;
    eleos_enclave_stats_print(pf.enc, STDOUT_FILENO);
    if (pf.pool && st.rpc) {
        struct eleos_rpc_pool_stats ps;
        eleos_rpc_pool_stats(pf.pool, &ps);
        dprintf(STDOUT_FILENO,
                "rpc: calls %llu, exitless %llu, fallbacks %llu (no worker %llu), ocalls %llu; "
                "workers slept %llu times\n",
                (unsigned long long)st.rpc_calls, (unsigned long long)st.rpc_exitless,
                (unsigned long long)st.rpc_fallbacks, (unsigned long long)st.rpc_no_worker,
                (unsigned long long)st.rpc_ocalls, (unsigned long long)ps.sleeps);
    }
    if (st.ioq)
        print_ioq_stats(&st);
    if (st.suvm)
        dprintf(STDOUT_FILENO,
                "suvm: hits %llu, major faults %llu, sub-pages read %llu / written %llu, "
                "integrity failures %llu, table errors %llu\n",
                (unsigned long long)st.suvm_hits, (unsigned long long)st.suvm_major_faults,
                (unsigned long long)st.suvm_subpage_reads,
                (unsigned long long)st.suvm_subpage_writes,
                (unsigned long long)st.suvm_integrity_failures,
                (unsigned long long)st.table_errors);
}

int main(int argc, char **argv) {
    struct options o = {.addr = "127.0.0.1", .port = 7000, .table_mib = 512};
    app_platform_opts_default(&o.plat, APP_MODE_NATIVE, 60, DEFAULT_SPIN_US);
    parse_options(&o, argc, argv);

    struct ps_setup su;
    int r = server_setup(&o, &su);
    if (r) {
        fprintf(stderr, "eleos-pserver: %s mode set-up: %s\n", app_mode_name(o.plat.mode),
                strerror(-r));
        return 1;
    }
    int lfd = listen_on(o.addr, (uint16_t)o.port);
    if (lfd < 0) {
        perror("eleos-pserver: listen");
        return 1;
    }
    struct sigaction act = {0};
    act.sa_handler = on_stop; /* sa_mask empty: never blocks SIGSYS (docs/emulator.md) */
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
    su.out_table[PS_NAME_MAX - 1] = su.out_io[PS_NAME_MAX - 1] = '\0';
    struct eleos_enclave_config ecfg;
    struct eleos_cost_calibration cal;
    if (pf.enc) {
        eleos_enclave_get_config(pf.enc, &ecfg);
        if ((ecfg.cost.syscall_cycles || ecfg.cost.ecall_cycles || ecfg.cost.raw) &&
            eleos_enclave_cost_calibration(pf.enc, &cal) == 0) {
            /* What this machine really charges per event (bench_pserver.py quotes it). */
            char line[640];
            eleos_cost_calibration_format(&cal, line, sizeof line);
            printf("eleos-pserver: %s\n", line);
        }
    }
    printf("eleos-pserver: mode %s, table %llu MiB (%s), io path %s (%s), listening on "
           "%s:%llu\n",
           app_mode_name(o.plat.mode), (unsigned long long)o.table_mib, su.out_table,
           app_io_path_name(pf.io), su.out_io, o.addr, (unsigned long long)o.port);
    fflush(stdout);

    accept_loop(lfd);
    close(lfd);
    print_stats();
    /* Connection threads may still be inside the enclave: exit without destroying it. */
    return 0;
}
