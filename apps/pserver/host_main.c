/*
 * host_main.c — eleos-pserver, host side: the parameter server that motivated Eleos, in
 * three modes.
 *
 *   native  table in host memory, libc system calls, no enclave;
 *   sgx     each connection is served inside the enclave (one ECALL per connection thread),
 *           the table is on the enclave heap (so it suffers emulated EPC paging) and every
 *           recv/send is a trapped system call: an exit;
 *   eleos   served inside the enclave, recv/send through exitless RPC, table in SUVM
 *           (see enclave_suvm.c).
 *
 * Threads: the main thread listens and accepts in host mode (connection set-up is not part of
 * the measured path) and starts one thread per connection, which enters the enclave for the
 * connection's whole life. The request loop, its buffers and the table are enclave-side
 * (enclave_server.c); this file only passes the enclave integers and set-up values it
 * copies and checks (pserver_server.h), and never names the enclave's state.
 * SIGINT/SIGTERM stop the accept loop; the statistics are printed on the way out.
 *
 *   eleos-pserver [--mode native|sgx|eleos] [-l ADDR] [-p PORT] [--table MiB] [--epc MiB]
 *                 [--cache MiB] [--cost on|off] [--pollute KiB] [--workers N] [--spin-us N]
 *
 * --cache is SUVM's page cache in eleos mode (default 60 MiB, the paper's EPC++); --workers
 * the number of RPC workers and --spin-us how long they spin idle before sleeping (default
 * 2000); --pollute the cost model's per-exit cache-pollution knob.
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

#include "eleos/enclave.h"
#include "eleos/rpc.h"
#include "eleos/sys.h"
#include "pserver_server.h"

/* Bounds of the numeric options (the enclave checks the table's again). */
#define MAX_MIB (PS_TABLE_MAX_BYTES >> 20)
#define MAX_WORKERS 256u
#define MAX_SPIN_US 10000000u

static atomic_bool stopping;
static struct eleos_enclave *enc;       /* NULL in native mode                        */
static struct eleos_rpc_pool *pool;     /* eleos mode                                 */
static _Atomic uint64_t conns;

static void on_stop(int sig) {
    (void)sig;
    atomic_store_explicit(&stopping, true, memory_order_relaxed);
}

struct options {
    enum ps_mode mode;
    const char *mode_name, *addr;
    uint64_t port, table_mib, epc_mib, pollute, cache_mib, workers, spin_us;
    bool cost;
};

static void usage(void) {
    fprintf(stderr,
            "usage: eleos-pserver [--mode native|sgx|eleos] [-l ADDR] [-p PORT] [--table MiB]\n"
            "                     [--epc MiB] [--cache MiB] [--cost on|off] [--pollute KiB]\n"
            "                     [--workers N] [--spin-us N]\n");
    exit(2);
}

/* A decimal integer in [min, max], or a clear error and exit 2 (atoi took "abc" as 0 and
 * "-1" as a huge unsigned). */
static uint64_t parse_num(const char *opt, const char *v, uint64_t min, uint64_t max) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v < '0' || *v > '9' || *end || errno || x < min || x > max) {
        fprintf(stderr, "eleos-pserver: %s: bad value '%s' (an integer from %" PRIu64
                        " to %" PRIu64 ")\n", opt, v, min, max);
        exit(2);
    }
    return x;
}

static void parse_enum(struct options *o, const char *a, const char *v) {
    if (!strcmp(a, "--mode")) {
        o->mode_name = v;
        if (!strcmp(v, "native"))
            o->mode = PS_MODE_NATIVE;
        else if (!strcmp(v, "sgx"))
            o->mode = PS_MODE_SGX;
        else if (!strcmp(v, "eleos"))
            o->mode = PS_MODE_ELEOS;
        else
            goto bad;
    } else if (!strcmp(a, "--cost")) {
        if (strcmp(v, "on") && strcmp(v, "off"))
            goto bad;
        o->cost = !strcmp(v, "on");
    } else {
        usage();
    }
    return;
bad:
    fprintf(stderr, "eleos-pserver: %s: bad value '%s'\n", a, v);
    exit(2);
}

static void parse_options(struct options *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "-l"))
            o->addr = v;
        else if (!strcmp(a, "-p"))
            o->port = parse_num(a, v, 1, 65535);
        else if (!strcmp(a, "--table"))
            o->table_mib = parse_num(a, v, 1, MAX_MIB);
        else if (!strcmp(a, "--cache"))
            o->cache_mib = parse_num(a, v, 0, MAX_MIB);
        else if (!strcmp(a, "--epc"))
            o->epc_mib = parse_num(a, v, 1, MAX_MIB);
        else if (!strcmp(a, "--pollute"))
            o->pollute = parse_num(a, v, 0, UINT32_MAX);
        else if (!strcmp(a, "--spin-us"))
            o->spin_us = parse_num(a, v, 0, MAX_SPIN_US);
        else if (!strcmp(a, "--workers"))
            o->workers = parse_num(a, v, 1, MAX_WORKERS);
        else
            parse_enum(o, a, v);
    }
}

/* eleos mode's host half: the RPC worker pool with the system-call executor. */
static int rpc_pool_start(const struct options *o, struct ps_setup *su) {
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = (unsigned)o->workers;
    pc.spin_ns = o->spin_us * 1000;
    int r = eleos_rpc_pool_create(enc, &pc, &pool);
    if (r)
        return r;
    if ((r = eleos_sys_host_register(pool)) != 0 || (r = eleos_rpc_pool_start(pool)) != 0)
        return r;
    su->rpc_area = eleos_rpc_pool_shared(pool, &su->rpc_area_size);
    return 0;
}

/* Creates the enclave (sgx, eleos) and has the enclave set itself up. */
static int server_setup(const struct options *o, struct ps_setup *su) {
    *su = (struct ps_setup){.mode = o->mode, .table_bytes = o->table_mib << 20,
                            .cache_bytes = o->cache_mib << 20};
    if (o->mode == PS_MODE_NATIVE)
        return (int)ps_enclave_setup(su);
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    cfg.name = "pserver";
    cfg.epc_size = o->epc_mib << 20;
    cfg.elrange_size = (o->table_mib + 256) << 20;
    if (!o->cost)
        eleos_cost_model_off(&cfg.cost);
    cfg.cost.pollute_kib = (uint32_t)o->pollute;
    int r = eleos_enclave_create(&cfg, &enc);
    if (r)
        return r;
    if (o->mode == PS_MODE_ELEOS && (r = rpc_pool_start(o, su)) != 0)
        return r;
    long ret = 0;
    r = eleos_enclave_ecall(enc, ps_enclave_setup, su, &ret);
    return r ? r : (int)ret;
}

static void *conn_thread(void *arg) {
    long ret = 0;
    if (enc) {
        int r = eleos_enclave_ecall(enc, ps_enclave_serve, arg, &ret);
        if (r)
            fprintf(stderr, "eleos-pserver: ECALL failed: %s\n", strerror(-r));
    } else {
        ret = ps_enclave_serve(arg);
    }
    if (ret == -EPROTO)
        fprintf(stderr, "eleos-pserver: malformed request, connection closed\n");
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

static void print_stats(void) {
    int r;
    struct ps_stats st;
    memset(&st, 0, sizeof st);
    long ret = 0;
    if (!enc)
        ret = ps_enclave_stats(&st);
    else if ((r = eleos_enclave_ecall(enc, ps_enclave_stats, &st, &ret)) != 0)
        ret = r;
    if (ret)
        fprintf(stderr, "eleos-pserver: statistics: %s\n", strerror((int)-ret));
    printf("eleos-pserver: %llu connections, %llu batches, %llu keys\n",
           (unsigned long long)atomic_load(&conns), (unsigned long long)st.batches,
           (unsigned long long)st.keys);
    fflush(stdout);
    if (!enc)
        return;
    eleos_enclave_stats_print(enc, STDOUT_FILENO);
    if (pool && st.rpc) {
        struct eleos_rpc_pool_stats ps;
        eleos_rpc_pool_stats(pool, &ps);
        dprintf(STDOUT_FILENO,
                "rpc: calls %llu, exitless %llu, fallbacks %llu (no worker %llu), ocalls %llu; "
                "workers slept %llu times\n",
                (unsigned long long)st.rpc_calls, (unsigned long long)st.rpc_exitless,
                (unsigned long long)st.rpc_fallbacks, (unsigned long long)st.rpc_no_worker,
                (unsigned long long)st.rpc_ocalls, (unsigned long long)ps.sleeps);
    }
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
    /* A busy server computes for up to milliseconds between its recv and send (a 64 KiB batch
     * of SUVM updates): workers that sleep after the RPC library's 100 µs default would make
     * the next call take the exit path. 2 ms covers a 4 KiB batch; --spin-us changes it. */
    struct options o = {.mode = PS_MODE_NATIVE, .mode_name = "native", .addr = "127.0.0.1",
                        .port = 7000, .table_mib = 512, .epc_mib = 93, .workers = 1,
                        .spin_us = 2000, .cost = true};
    parse_options(&o, argc, argv);

    struct ps_setup su;
    int r = server_setup(&o, &su);
    if (r) {
        fprintf(stderr, "eleos-pserver: %s mode set-up: %s\n", o.mode_name, strerror(-r));
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
    printf("eleos-pserver: mode %s, table %llu MiB (%s), io %s, listening on %s:%llu\n",
           o.mode_name, (unsigned long long)o.table_mib, su.out_table, su.out_io, o.addr,
           (unsigned long long)o.port);
    fflush(stdout);

    accept_loop(lfd);
    close(lfd);
    print_stats();
    /* Connection threads may still be inside the enclave: exit without destroying it. */
    return 0;
}
