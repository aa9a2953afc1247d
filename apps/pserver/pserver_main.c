/*
 * eleos-pserver: the parameter server that motivated Eleos, in three modes.
 *
 *   native  table in host memory, libc system calls, no enclave;
 *   sgx     each connection is served inside the enclave (one ECALL per connection thread),
 *           the table is on the enclave heap (so it suffers emulated EPC paging) and every
 *           recv/send is a trapped system call: an exit;
 *   eleos   served inside the enclave, recv/send through exitless RPC, table in SUVM
 *           (built only when the RPC and SUVM libraries are; see pserver_eleos.c).
 *
 * Threads: the main thread listens and accepts in host mode (connection set-up is not part of
 * the measured path) and starts one thread per connection, which enters the enclave for the
 * connection's whole life. The request loop, its buffer and the table are enclave-side.
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eleos/enclave.h"
#include "pserver.h"
#include "pserver_modes.h"

static atomic_bool stopping;

static void on_stop(int sig) {
    (void)sig;
    atomic_store_explicit(&stopping, true, memory_order_relaxed);
}

/* --- native table and libc I/O (also the sgx mode's, run inside the enclave) ------------- */

struct flat_table {
    uint64_t *v;
    uint64_t entries;
};

static int flat_inc(void *t, const uint64_t *keys, uint32_t n) {
    struct flat_table *ft = t;
    /* Connections are served by concurrent threads: increments must not be lost. */
    for (uint32_t i = 0; i < n; i++)
        __atomic_fetch_add(&ft->v[keys[i] % ft->entries], 1, __ATOMIC_RELAXED);
    return 0;
}

static int flat_get(void *t, const uint64_t *keys, uint32_t n, uint64_t *out) {
    struct flat_table *ft = t;
    for (uint32_t i = 0; i < n; i++)
        out[i] = __atomic_load_n(&ft->v[keys[i] % ft->entries], __ATOMIC_RELAXED);
    return 0;
}

static const struct ps_table_ops flat_ops = {"flat", flat_inc, flat_get};

static ssize_t libc_recv(int fd, void *buf, size_t len) {
    ssize_t r = recv(fd, buf, len, 0);
    return r < 0 ? -errno : r;
}

static ssize_t libc_send(int fd, const void *buf, size_t len) {
    ssize_t r = send(fd, buf, len, MSG_NOSIGNAL);
    return r < 0 ? -errno : r;
}

static int libc_close(int fd) {
    return close(fd) < 0 ? -errno : 0;
}

static const struct ps_io_ops libc_io = {"libc", libc_recv, libc_send, libc_close};

/* --- the request loop (enclave-side in sgx and eleos modes) ------------------------------- */

struct server {
    const struct ps_table_ops *table_ops;
    void *table;
    const struct ps_io_ops *io;
    struct eleos_enclave *enc; /* NULL in native mode */
    _Atomic uint64_t keys, batches, conns;
};

struct conn {
    struct server *srv;
    int fd;
};

static int recv_all(const struct ps_io_ops *io, int fd, void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t r = io->recv(fd, (char *)buf + got, len - got);
        if (r == -EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -ECONNRESET : (int)r;
        got += (size_t)r;
    }
    return 0;
}

static int send_all(const struct ps_io_ops *io, int fd, const void *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t r = io->send(fd, (const char *)buf + done, len - done);
        if (r == -EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -EPIPE : (int)r;
        done += (size_t)r;
    }
    return 0;
}

static long serve_conn(void *arg) {
    struct conn *c = arg;
    struct server *s = c->srv;
    size_t bufsize = (size_t)PS_MAX_KEYS * 8;
    /* Enclave-side buffers in enclave modes: requests are copied into the enclave. */
    uint64_t *keys = s->enc ? eleos_enclave_malloc(s->enc, bufsize) : malloc(bufsize);
    uint64_t *vals = s->enc ? eleos_enclave_malloc(s->enc, bufsize) : malloc(bufsize);
    long err = 0;
    if (!keys || !vals) {
        err = -ENOMEM;
        goto out;
    }
    for (;;) {
        struct ps_header h;
        int r = recv_all(s->io, c->fd, &h, sizeof h);
        if (r)
            break; /* client gone */
        /* Read once, validate, then use: the count sizes the next receive. */
        uint32_t op = h.op, n = h.count;
        if (n == 0 || n > PS_MAX_KEYS || (op != PS_OP_INC && op != PS_OP_GET)) {
            err = -EPROTO;
            break;
        }
        if (recv_all(s->io, c->fd, keys, (size_t)n * 8))
            break;
        if (op == PS_OP_INC) {
            r = s->table_ops->inc(s->table, keys, n);
            uint64_t ack = r ? 0 : n;
            if (send_all(s->io, c->fd, &ack, sizeof ack))
                break;
            atomic_fetch_add_explicit(&s->keys, n, memory_order_relaxed);
        } else {
            r = s->table_ops->get(s->table, keys, n, vals);
            if (r) {
                err = r;
                break;
            }
            if (send_all(s->io, c->fd, vals, (size_t)n * 8))
                break;
        }
        atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
    }
out:
    s->io->close(c->fd);
    if (s->enc) {
        eleos_enclave_free(s->enc, keys);
        eleos_enclave_free(s->enc, vals);
    } else {
        free(keys);
        free(vals);
    }
    return err;
}

static void *conn_thread(void *arg) {
    struct conn *c = arg;
    long ret = 0;
    if (c->srv->enc) {
        int r = pserver_mode_thread_enter(c->srv->enc, serve_conn, c, &ret);
        if (r)
            fprintf(stderr, "eleos-pserver: ECALL failed: %s\n", strerror(-r));
    } else {
        ret = serve_conn(c);
    }
    if (ret == -EPROTO)
        fprintf(stderr, "eleos-pserver: malformed request, connection closed\n");
    free(c);
    return NULL;
}

/* --- main -------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: eleos-pserver [--mode native|sgx|eleos] [-l ADDR] [-p PORT] [--table MiB]\n"
            "                     [--epc MiB] [--cache MiB] [--cost on|off] [--pollute KiB]\n"
            "                     [--workers N] [--spin-us N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *mode = "native", *addr = "127.0.0.1";
    int port = 7000;
    uint64_t table_mib = 512, epc_mib = 93, pollute = 0, cache_mib = 0;
    unsigned workers = 1;
    /* A busy server computes for up to milliseconds between its recv and send (a 64 KiB batch
     * of SUVM updates): workers that sleep after the RPC library's 100 µs default would make
     * the next call take the exit path. 2 ms covers a 4 KiB batch; --spin-us changes it. */
    uint64_t spin_us = 2000;
    bool cost = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--mode"))
            mode = v;
        else if (!strcmp(a, "-l"))
            addr = v;
        else if (!strcmp(a, "-p"))
            port = atoi(v);
        else if (!strcmp(a, "--table"))
            table_mib = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--cache"))
            cache_mib = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--epc"))
            epc_mib = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--cost"))
            cost = strcmp(v, "off") != 0;
        else if (!strcmp(a, "--pollute"))
            pollute = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--spin-us"))
            spin_us = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--workers"))
            workers = (unsigned)atoi(v);
        else
            usage();
    }
    if (table_mib == 0 || port <= 0 || port > 65535)
        usage();

    struct server srv = {.io = &libc_io, .table_ops = &flat_ops};
    struct flat_table ft = {NULL, table_mib * (1ull << 20) / 8};
    bool native = !strcmp(mode, "native");
    if (!native && strcmp(mode, "sgx") && strcmp(mode, "eleos"))
        usage();
    if (native) {
        ft.v = mmap(NULL, ft.entries * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
        if (ft.v == MAP_FAILED) {
            perror("eleos-pserver: table");
            return 1;
        }
        srv.table = &ft;
    } else {
        struct eleos_enclave_config cfg;
        eleos_enclave_config_default(&cfg);
        cfg.name = "pserver";
        cfg.epc_size = epc_mib << 20;
        cfg.elrange_size = (table_mib + 256) << 20;
        if (!cost)
            eleos_cost_model_off(&cfg.cost);
        cfg.cost.pollute_kib = (uint32_t)pollute;
        int r = eleos_enclave_create(&cfg, &srv.enc);
        if (r) {
            fprintf(stderr, "eleos-pserver: enclave: %s\n", strerror(-r));
            return 1;
        }
        if (!strcmp(mode, "sgx")) {
            ft.v = eleos_enclave_calloc(srv.enc, ft.entries, 8);
            if (!ft.v) {
                fprintf(stderr, "eleos-pserver: table does not fit the enclave heap\n");
                return 1;
            }
            srv.table = &ft;
        } else {
            r = pserver_eleos_setup(srv.enc, table_mib, cache_mib, workers, spin_us * 1000, &srv.table_ops, &srv.table,
                                    &srv.io);
            if (r) {
                fprintf(stderr, "eleos-pserver: eleos mode: %s\n", strerror(-r));
                return 1;
            }
        }
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 128) != 0) {
        perror("eleos-pserver: listen");
        return 1;
    }
    struct sigaction act = {0};
    act.sa_handler = on_stop; /* sa_mask empty: never blocks SIGSYS (docs/emulator.md) */
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
    printf("eleos-pserver: mode %s, table %llu MiB (%s), io %s, listening on %s:%d\n", mode,
           (unsigned long long)table_mib, srv.table_ops->name, srv.io->name, addr, port);
    fflush(stdout);

    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        pthread_t th;
        if (!c) {
            close(fd);
            continue;
        }
        *c = (struct conn){&srv, fd};
        atomic_fetch_add_explicit(&srv.conns, 1, memory_order_relaxed);
        if (pthread_create(&th, NULL, conn_thread, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(th);
    }
    close(lfd);
    printf("eleos-pserver: %llu connections, %llu batches, %llu keys\n",
           (unsigned long long)srv.conns, (unsigned long long)srv.batches,
           (unsigned long long)srv.keys);
    fflush(stdout);
    if (srv.enc) {
        eleos_enclave_stats_print(srv.enc, STDOUT_FILENO);
        pserver_mode_print_stats(STDOUT_FILENO);
    }
    /* Connection threads may still be inside the enclave: exit without destroying it. */
    return 0;
}
