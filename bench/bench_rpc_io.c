/*
 * bench_rpc_io — read and write from enclave code: exitless system calls against the exit
 * path, per medium and buffer size (docs/rpc.md, "Targets").
 *
 * One operation = write N bytes to a descriptor, then read the N bytes back, timed separately,
 * from enclave mode (inside one ECALL per measurement), with the buffers in the enclave heap.
 * Media: a pipe, a regular file in /tmp (pwrite + pread at offset 0) and a TCP loopback
 * connection (write on one end, read on the other). N = 64 B … 64 KiB. Three paths, run side
 * by side in every repetition:
 *   exitless  eleos_sys_write/read/pwrite/pread, run by a worker through shared memory;
 *   exit      the same wrappers forced onto the exit path (eleos_sys_thread_mode EXIT):
 *             one OCALL per call, the buffer marshalled through the thread's bounce buffer;
 *   trapped   plain libc calls in enclave code: each traps (SIGSYS) and the emulator runs it
 *             as an exit, marshalling the buffer through its own untrusted bounce buffer
 *             (what an unmodified program pays; docs/emulator.md).
 * The cost model is off in one enclave and on (the calibrated defaults) in another. Every
 * figure is the median over repetitions; ratios are the trapped syscall's time over the
 * path's time (how many times faster than the real exit).
 *
 * A second section measures batched system calls (eleos/ioq.h) on TCP loopback: passes of D
 * sends and D receives (D = 1, 8, 64 connections) on each I/O queue executor, beside the
 * trapped and the native (host mode) calls; ns and exits per send+recv pair (see "batched
 * system calls" below).
 *
 * CSV: one header for both sections; the first column (rpc, ioq) says which columns a row
 * fills. op_ns is the time of one write+read (rpc) or send+recv pair (ioq).
 *
 * Usage: bench_rpc_io [--quick] [--csv FILE] [--only rpc|ioq]
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#include "common/tsc.h"
#include "eleos/ioq.h"
#include "eleos/sys.h"

enum medium { M_PIPE, M_FILE, M_TCP, M_COUNT };
enum path { P_EXITLESS, P_EXIT, P_TRAP, P_COUNT };

static const char *const medium_name[M_COUNT] = {"pipe", "file", "tcp"};
static const char *const path_name[P_COUNT] = {"exitless", "exit", "trapped"};
static const size_t sizes[] = {64, 256, 1024, 4096, 16384, 65536};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define MAX_SIZE 65536u
#define MAX_REPS 64

static int reps = 11;
static long base_iters = 4000; /* per measurement at 64 B; fewer for larger buffers */
static FILE *csv;

static void die(const char *what) {
    fprintf(stderr, "bench_rpc_io: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* --- descriptors (host side, set up before the ECALLs) ----------------------------------- */

struct fds {
    int wfd[M_COUNT], rfd[M_COUNT];
    int listen_fd;
    char path[64];
};

static void open_fds(struct fds *f) {
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        die("pipe2");
    /* Room for the largest write, so a write never waits for its own read. */
    if (fcntl(p[1], F_SETPIPE_SZ, 1 << 20) < 0)
        die("F_SETPIPE_SZ");
    f->rfd[M_PIPE] = p[0];
    f->wfd[M_PIPE] = p[1];

    snprintf(f->path, sizeof f->path, "/tmp/eleos-bench-io-%d", (int)getpid());
    int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die("open");
    f->rfd[M_FILE] = f->wfd[M_FILE] = fd;

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&sa, &len))
        die("listen");
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa))
        die("connect");
    int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0)
        die("accept4");
    int one = 1, buf = 1 << 20;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    f->wfd[M_TCP] = c;
    f->rfd[M_TCP] = s;
    f->listen_fd = ls;
}

static void close_fds(struct fds *f) {
    close(f->wfd[M_PIPE]);
    close(f->rfd[M_PIPE]);
    close(f->wfd[M_FILE]);
    unlink(f->path);
    close(f->wfd[M_TCP]);
    close(f->rfd[M_TCP]);
    close(f->listen_fd);
}

/* --- enclave side ------------------------------------------------------------------------ */

struct run {
    struct eleos_enclave *enc;
    struct eleos_rpc_pool *pool;
    struct eleos_rpc_client *cl;
    const struct fds *fds;
    char *out, *in; /* enclave heap, MAX_SIZE bytes each */
    enum medium medium;
    enum path path;
    size_t size;
    long n;
    double write_ns, read_ns; /* per call */
    long bad;
};

static long e_create(void *arg) {
    struct run *r = arg;
    size_t size;
    void *area = eleos_rpc_pool_shared(r->pool, &size);
    int rc = eleos_rpc_client_create(r->enc, area, size, &r->cl);
    if (rc)
        return rc;
    eleos_sys_init(r->cl);
    r->out = eleos_enclave_malloc(r->enc, MAX_SIZE);
    r->in = eleos_enclave_malloc(r->enc, MAX_SIZE);
    if (!r->out || !r->in)
        return -ENOMEM;
    for (size_t i = 0; i < MAX_SIZE; i++)
        r->out[i] = (char)(i * 13 + 1);
    return 0;
}

static long e_destroy(void *arg) {
    struct run *r = arg;
    eleos_enclave_free(r->enc, r->out);
    eleos_enclave_free(r->enc, r->in);
    eleos_sys_init(NULL);
    eleos_rpc_client_destroy(r->cl);
    return 0;
}

/* One call of the path. The file is written and read at offset done. */
static ssize_t one_write(const struct run *r, int fd, const char *p, size_t n, size_t done) {
    bool file = r->medium == M_FILE;
    if (r->path == P_TRAP) {
        ssize_t k = file ? pwrite(fd, p, n, (off_t)done) : write(fd, p, n);
        return k < 0 ? -errno : k;
    }
    return file ? eleos_sys_pwrite(fd, p, n, (off_t)done) : eleos_sys_write(fd, p, n);
}

static ssize_t one_read(const struct run *r, int fd, char *p, size_t n, size_t done) {
    bool file = r->medium == M_FILE;
    if (r->path == P_TRAP) {
        ssize_t k = file ? pread(fd, p, n, (off_t)done) : read(fd, p, n);
        return k < 0 ? -errno : k;
    }
    return file ? eleos_sys_pread(fd, p, n, (off_t)done) : eleos_sys_read(fd, p, n);
}

/* Transfers all of size bytes (short transfers are legal on sockets). */
static bool write_all(const struct run *r) {
    int fd = r->fds->wfd[r->medium];
    for (size_t done = 0; done < r->size;) {
        ssize_t k = one_write(r, fd, r->out + done, r->size - done, done);
        if (k <= 0)
            return false;
        done += (size_t)k;
    }
    return true;
}

static bool read_all(const struct run *r) {
    int fd = r->fds->rfd[r->medium];
    for (size_t done = 0; done < r->size;) {
        ssize_t k = one_read(r, fd, r->in + done, r->size - done, done);
        if (k <= 0)
            return false;
        done += (size_t)k;
    }
    return true;
}

static long e_measure(void *arg) {
    struct run *r = arg;
    enum eleos_sys_mode old =
        eleos_sys_thread_mode(r->path == P_EXIT ? ELEOS_SYS_MODE_EXIT : ELEOS_SYS_MODE_EXITLESS);
    r->bad = 0;
    /* Warm-up, untimed: after the trapped or exit path the workers may be asleep, and the
     * first exitless call after that takes the exit path once to wake one. */
    for (int i = 0; i < 8; i++)
        r->bad += !write_all(r) || !read_all(r);
    uint64_t tw = 0, tr = 0;
    for (long i = 0; i < r->n; i++) {
        uint64_t t0 = tsc_now();
        bool ok = write_all(r);
        uint64_t t1 = tsc_now();
        ok = read_all(r) && ok;
        uint64_t t2 = tsc_now();
        tw += t1 - t0;
        tr += t2 - t1;
        r->bad += !ok;
    }
    r->bad += memcmp(r->in, r->out, r->size) != 0;
    eleos_sys_thread_mode(old);
    r->write_ns = tsc_to_ns(tw) / (double)r->n;
    r->read_ns = tsc_to_ns(tr) / (double)r->n;
    return 0;
}

/* --- driver ------------------------------------------------------------------------------ */

/* The measuring enclave: the cost model on (defaults) or off, a 256 MiB ELRANGE. Exits the
 * program if it cannot be made (status enosys_exit when there is no Syscall User Dispatch). */
static struct eleos_enclave *bench_enclave(bool model_on, int enosys_exit) {
    struct eleos_enclave_config ec;
    eleos_enclave_config_default(&ec);
    if (model_on)
        eleos_cost_model_default(&ec.cost);
    else
        eleos_cost_model_off(&ec.cost);
    ec.elrange_size = 256u << 20;
    struct eleos_enclave *enc = NULL;
    int rc = eleos_enclave_create(&ec, &enc);
    if (rc) {
        fprintf(stderr, "eleos_enclave_create: %s\n", strerror(-rc));
        exit(rc == -ENOSYS ? enosys_exit : 1);
    }
    return enc;
}

static void run_model(bool model_on, const struct fds *fds) {
    struct run r = {.fds = fds, .enc = bench_enclave(model_on, 77)};
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    static const int cpus[] = {1};
    pc.workers = 1;
    pc.cpus = cpus;
    pc.ncpus = 1;
    long rv;
    if (eleos_rpc_pool_create(r.enc, &pc, &r.pool) || eleos_sys_host_register(r.pool) ||
        eleos_rpc_pool_start(r.pool) || eleos_enclave_ecall(r.enc, e_create, &r, &rv) || rv) {
        fprintf(stderr, "pool or client setup failed\n");
        exit(1);
    }
    struct eleos_enclave_config got;
    eleos_enclave_get_config(r.enc, &got);
    printf("\n== cost model %s: ecall %llu, ocall %llu, syscall %llu target cycles, pollute %u "
           "KiB; 1 worker (cpu 1), caller cpu 0, spin budget %llu ns, bounce %zu KiB\n",
           model_on ? "ON" : "OFF", (unsigned long long)got.cost.ecall_cycles,
           (unsigned long long)got.cost.ocall_cycles, (unsigned long long)got.cost.syscall_cycles,
           got.cost.pollute_kib, (unsigned long long)pc.spin_ns, pc.bounce_size >> 10);
    bench_print_cost_calibration(r.enc);
    printf("  %-5s %6s | %9s %9s %9s | %9s %9s %9s | %7s %7s\n", "", "", "write ns", "", "",
           "read ns", "", "", "speedup", "vs trap");
    printf("  %-5s %6s | %9s %9s %9s | %9s %9s %9s | %7s %7s\n", "medium", "size", "exitless",
           "exit", "trapped", "exitless", "exit", "trapped", "exitless", "exit");
    bench_pin_cpu(0);
    for (int m = 0; m < M_COUNT; m++) {
        for (size_t s = 0; s < NSIZES; s++) {
            double w[P_COUNT][MAX_REPS], rd[P_COUNT][MAX_REPS];
            r.medium = (enum medium)m;
            r.size = sizes[s];
            r.n = base_iters / (long)(1 + sizes[s] / 1024);
            if (r.n < 20)
                r.n = 20;
            /* The three paths side by side in every repetition, so drift hits all alike. */
            for (int k = 0; k < reps; k++)
                for (int p = 0; p < P_COUNT; p++) {
                    r.path = (enum path)p;
                    if (eleos_enclave_ecall(r.enc, e_measure, &r, &rv) || r.bad) {
                        fprintf(stderr, "%s %zu B %s: %ld failed transfers\n", medium_name[m],
                                sizes[s], path_name[p], r.bad);
                        exit(1);
                    }
                    w[p][k] = r.write_ns;
                    rd[p][k] = r.read_ns;
                }
            double mw[P_COUNT], mr[P_COUNT];
            for (int p = 0; p < P_COUNT; p++) {
                mw[p] = bench_median(w[p], reps);
                mr[p] = bench_median(rd[p], reps);
            }
            double trap = mw[P_TRAP] + mr[P_TRAP];
            printf("  %-5s %6zu | %9.0f %9.0f %9.0f | %9.0f %9.0f %9.0f | %6.2fx %6.2fx\n",
                   medium_name[m], sizes[s], mw[P_EXITLESS], mw[P_EXIT], mw[P_TRAP], mr[P_EXITLESS],
                   mr[P_EXIT], mr[P_TRAP], trap / (mw[P_EXITLESS] + mr[P_EXITLESS]),
                   trap / (mw[P_EXIT] + mr[P_EXIT]));
            if (csv)
                for (int p = 0; p < P_COUNT; p++)
                    fprintf(csv, "rpc,%s,%s,%zu,%s,%.1f,%.1f,%.1f,%.3f,%d,%ld,,,,,\n",
                            model_on ? "on" : "off", medium_name[m], sizes[s], path_name[p], mw[p],
                            mr[p], mw[p] + mr[p], trap / (mw[p] + mr[p]), reps, r.n);
        }
    }
    struct eleos_rpc_client_stats cs;
    eleos_rpc_client_stats(r.cl, &cs);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(r.enc, &es);
    printf("  calls %llu: exitless %llu, exit path asked %llu, fallbacks %llu; enclave syscall "
           "exits %llu (the trapped path's)\n",
           (unsigned long long)cs.calls, (unsigned long long)cs.exitless,
           (unsigned long long)cs.exit_calls, (unsigned long long)cs.fallbacks,
           (unsigned long long)es.syscall_exits);
    if (eleos_enclave_ecall(r.enc, e_destroy, &r, &rv))
        exit(1);
    eleos_rpc_pool_destroy(r.pool);
    eleos_enclave_destroy(r.enc);
}

/* --- batched system calls (eleos/ioq.h) against trapped and native calls ----------------- */

/*
 * One pass = D connections (the depth), one send of N bytes on the client end of each and
 * one recv of those bytes on the server end: the shape of a server's pass over its
 * connections. Each receive has a connection of its own, so no two receives of a pass share
 * (or coalesce) bytes of one stream. The sends go first (queued first, or called first) so
 * that every receive finds its bytes, on every path alike: what is compared is the cost of
 * the calls, not of waiting for data. Paths:
 *   trapped       send/recv from enclave code, each a trapped syscall (an exit);
 *   native        the same calls in host mode, no enclave (the floor of plain syscalls);
 *   native-uring  an eleos_ioq queue in host mode on the URING executor (io_uring's floor);
 *   uring, worker, sqpoll, batch
 *                 an eleos_ioq queue in the enclave forced onto that executor: queue the
 *                 pass, then wait for all 2D completions.
 * The figure is ns per send+recv pair, and exits (OCALLs + trapped syscalls) per pair.
 */
enum qpath { Q_TRAP, Q_NATIVE, Q_HOST_URING, Q_URING, Q_WORKER, Q_SQPOLL, Q_BATCH, Q_COUNT };

static const char *const qpath_name[Q_COUNT] = {"trapped", "native", "native-uring", "uring",
                                                "worker",  "sqpoll", "batch"};
static const enum eleos_ioq_exec qpath_exec[Q_COUNT] = {
    ELEOS_IOQ_EXEC_AUTO,   ELEOS_IOQ_EXEC_AUTO,   ELEOS_IOQ_EXEC_URING, ELEOS_IOQ_EXEC_URING,
    ELEOS_IOQ_EXEC_WORKER, ELEOS_IOQ_EXEC_SQPOLL, ELEOS_IOQ_EXEC_BATCH};
static const unsigned qdepths[] = {1, 8, 64};
static const size_t qsizes[] = {64, 1024};
#define NQDEPTHS (sizeof qdepths / sizeof qdepths[0])
#define NQSIZES (sizeof qsizes / sizeof qsizes[0])
#define QMAX_DEPTH 64u
#define QMAX_SIZE 1024u
#define QENTRIES 256u          /* a full pass (2 x 64) plus short-transfer retries */
#define QWAIT_NS 2000000000ull /* a pass that takes longer than this is broken */
#define QSETTLE_NS 3000000L    /* above the pollers' idle spin (src/ioq/host_ioq.c) */
#define UD_SEND (1ull << 32)
#define UD_RECV (2ull << 32)

static long qpairs = 4096; /* send+recv pairs per measurement */

struct qconns {
    int c[QMAX_DEPTH], s[QMAX_DEPTH]; /* client and server ends of each connection */
};

struct qrun {
    struct eleos_enclave *enc;
    const struct qconns *cn;
    struct eleos_ioq *q[Q_COUNT];
    int qerr[Q_COUNT]; /* 0, or why the path is unavailable (-errno)      */
    char *eout, *ein;  /* enclave heap: QMAX_SIZE, QMAX_DEPTH * QMAX_SIZE */
    char *hout, *hin;  /* host memory, the same, for the host-mode paths  */
    enum qpath path;
    size_t size;
    unsigned depth;
    long passes;
    double pair_ns, exits;    /* per send+recv pair                                 */
    enum eleos_ioq_exec exec; /* the queue's executor at the end of the measurement */
    long bad, shorts;
    long shorts_total; /* short transfers completed by a second operation */
};

struct qres {
    double ns, exits;
    enum eleos_ioq_exec exec;
    int err;
};

static struct qres qtab[NQSIZES][NQDEPTHS][Q_COUNT];

static void qconns_open(struct qconns *cn) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, QMAX_DEPTH) ||
        getsockname(ls, (struct sockaddr *)&sa, &len))
        die("listen");
    int one = 1;
    for (unsigned i = 0; i < QMAX_DEPTH; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa))
            die("connect");
        int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0)
            die("accept4");
        /* Small sends leave at once, as a server's replies would. */
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        cn->c[i] = c;
        cn->s[i] = s;
    }
    close(ls);
}

static void qconns_close(const struct qconns *cn) {
    for (unsigned i = 0; i < QMAX_DEPTH; i++) {
        close(cn->c[i]);
        close(cn->s[i]);
    }
}

/* A pass of plain calls: trapped in enclave mode, native in host mode. */
static bool pass_syscalls(const struct qrun *r, const char *out, char *in) {
    size_t n = r->size;
    for (unsigned i = 0; i < r->depth; i++)
        for (size_t done = 0; done < n;) {
            ssize_t k = send(r->cn->c[i], out + done, n - done, MSG_NOSIGNAL);
            if (k <= 0)
                return false;
            done += (size_t)k;
        }
    for (unsigned i = 0; i < r->depth; i++)
        for (size_t done = 0; done < n;) {
            ssize_t k = recv(r->cn->s[i], in + i * n + done, n - done, 0);
            if (k <= 0)
                return false;
            done += (size_t)k;
        }
    return true;
}

/* Accounts one completion of a pass; a short transfer queues the rest (legal on a stream
 * socket, and it keeps each receive on its own bytes). False on an error. */
static bool pass_settle(struct qrun *r, struct eleos_ioq *q, const struct eleos_ioq_cqe *c,
                        const char *out, char *in, uint32_t *sent, uint32_t *got, unsigned *left) {
    unsigned i = (unsigned)(c->user_data & 0xffff);
    bool is_send = (c->user_data & ~0xffffull) == UD_SEND;
    if (c->res <= 0 || i >= r->depth)
        return false;
    uint32_t *done = is_send ? &sent[i] : &got[i];
    *done += (uint32_t)c->res;
    if (*done > r->size)
        return false;
    if (*done == r->size) {
        (*left)--;
        return true;
    }
    r->shorts++;
    size_t rest = r->size - *done;
    int rc = is_send
                 ? eleos_ioq_send(q, r->cn->c[i], out + *done, rest, 0, c->user_data)
                 : eleos_ioq_recv(q, r->cn->s[i], in + i * r->size + *done, rest, 0, c->user_data);
    return rc == 0;
}

/* A pass on an I/O queue: the sends, then the receives, then one wait for all of them. */
static bool pass_ioq(struct qrun *r, struct eleos_ioq *q, const char *out, char *in) {
    uint32_t sent[QMAX_DEPTH] = {0}, got[QMAX_DEPTH] = {0};
    size_t n = r->size;
    for (unsigned i = 0; i < r->depth; i++)
        if (eleos_ioq_send(q, r->cn->c[i], out, n, 0, UD_SEND | i))
            return false;
    for (unsigned i = 0; i < r->depth; i++)
        if (eleos_ioq_recv(q, r->cn->s[i], in + i * n, n, 0, UD_RECV | i))
            return false;
    struct eleos_ioq_cqe cq[2 * QMAX_DEPTH];
    for (unsigned left = 2 * r->depth; left;) {
        int k = eleos_ioq_wait(q, cq, 2 * QMAX_DEPTH, left, QWAIT_NS);
        if (k <= 0)
            return false;
        for (int j = 0; j < k; j++)
            if (!pass_settle(r, q, &cq[j], out, in, sent, got, &left))
                return false;
    }
    return true;
}

static bool qpath_host(enum qpath p) {
    return p == Q_NATIVE || p == Q_HOST_URING;
}

/* Pass number i; its first byte is i's, so a receive of an older pass's bytes shows. */
static bool run_pass(struct qrun *r, long i) {
    bool host = qpath_host(r->path);
    char *out = host ? r->hout : r->eout, *in = host ? r->hin : r->ein;
    out[0] = (char)(i + 1);
    if (r->path == Q_TRAP || r->path == Q_NATIVE)
        return pass_syscalls(r, out, in);
    return pass_ioq(r, r->q[r->path], out, in);
}

static bool pass_verify(const struct qrun *r) {
    bool host = qpath_host(r->path);
    const char *out = host ? r->hout : r->eout, *in = host ? r->hin : r->ein;
    for (unsigned i = 0; i < r->depth; i++)
        if (memcmp(in + i * r->size, out, r->size))
            return false;
    return true;
}

/* Exits the enclave has made so far (explicit OCALLs and trapped syscalls); 0 outside. */
static uint64_t exits_now(const struct qrun *r) {
    if (!r->enc || !eleos_enclave_in_enclave_mode())
        return 0;
    struct eleos_enclave_stats es;
    eleos_enclave_stats(r->enc, &es);
    return es.ocalls + es.syscall_exits;
}

/* One measurement of r->path: an ECALL for the enclave paths, a plain call for the host's. */
static long e_qmeasure(void *arg) {
    struct qrun *r = arg;
    /* Warm-up, untimed: fills the queue's bounce cache and wakes a sleeping poller. */
    long warm = r->depth >= 32 ? 2 : 64 / (long)r->depth;
    r->bad = r->shorts = 0;
    for (long i = 0; i < warm && !r->bad; i++)
        r->bad += !run_pass(r, i);
    uint64_t x0 = exits_now(r);
    uint64_t t0 = tsc_now();
    for (long i = 0; i < r->passes && !r->bad; i++)
        r->bad += !run_pass(r, i);
    uint64_t t1 = tsc_now();
    double pairs = (double)r->passes * r->depth;
    r->exits = (double)(exits_now(r) - x0) / pairs;
    r->pair_ns = tsc_to_ns(t1 - t0) / pairs;
    r->bad += !r->bad && !pass_verify(r);
    r->exec = r->q[r->path] ? eleos_ioq_executor(r->q[r->path]) : ELEOS_IOQ_EXEC_AUTO;
    return 0;
}

static void qfill(char *out) {
    for (size_t i = 0; i < QMAX_SIZE; i++)
        out[i] = (char)(i * 13 + 1);
}

/* Enclave buffers and one queue per executor, created by the thread that will use them. */
static long e_qsetup(void *arg) {
    struct qrun *r = arg;
    r->eout = eleos_enclave_malloc(r->enc, QMAX_SIZE);
    r->ein = eleos_enclave_malloc(r->enc, QMAX_DEPTH * QMAX_SIZE);
    if (!r->eout || !r->ein)
        return -ENOMEM;
    qfill(r->eout);
    for (int p = Q_URING; p < Q_COUNT; p++) {
        if (r->qerr[p])
            continue;
        struct eleos_ioq_config cfg;
        eleos_ioq_config_default(&cfg);
        cfg.entries = QENTRIES;
        cfg.exec = qpath_exec[p];
        r->qerr[p] = eleos_ioq_create(r->enc, &cfg, &r->q[p]);
    }
    return 0;
}

static long e_qteardown(void *arg) {
    struct qrun *r = arg;
    for (int p = Q_URING; p < Q_COUNT; p++)
        eleos_ioq_destroy(r->q[p]);
    eleos_enclave_free(r->enc, r->eout);
    eleos_enclave_free(r->enc, r->ein);
    return 0;
}

/* Passes per measurement: qpairs pairs, but at least 8 passes at the deepest. */
static long qpasses(unsigned depth) {
    return qpairs / (long)depth < 8 ? 8 : qpairs / (long)depth;
}

/* Measures every available path at one size and depth, side by side in every repetition. */
static void qpoint(struct qrun *r, size_t si, size_t di) {
    static double ns[Q_COUNT][MAX_REPS], ex[Q_COUNT][MAX_REPS];
    r->size = qsizes[si];
    r->depth = qdepths[di];
    r->passes = qpasses(r->depth);
    for (int k = 0; k < reps; k++)
        for (int p = 0; p < Q_COUNT; p++) {
            if (r->qerr[p])
                continue;
            r->path = (enum qpath)p;
            long rv = 0;
            if (qpath_host(r->path))
                rv = e_qmeasure(r);
            else if (eleos_enclave_ecall(r->enc, e_qmeasure, r, &rv))
                rv = -EIO;
            if (rv || r->bad) {
                fprintf(stderr, "ioq %s, %zu B, depth %u: pass failed\n", qpath_name[p], r->size,
                        r->depth);
                exit(1);
            }
            /* The poller keeps spinning after its last operation (the kernel's SQPOLL thread
             * 2 ms, the worker 0.2 ms): let it go idle, or it competes with the next path. */
            if (p == Q_WORKER || p == Q_SQPOLL)
                nanosleep(&(struct timespec){0, QSETTLE_NS}, NULL);
            ns[p][k] = r->pair_ns;
            r->shorts_total += r->shorts;
            ex[p][k] = r->exits;
            if (k == 0 || r->exec != qpath_exec[p]) /* any move is shown */
                qtab[si][di][p].exec = r->exec;
        }
    for (int p = 0; p < Q_COUNT; p++) {
        struct qres *q = &qtab[si][di][p];
        q->err = r->qerr[p];
        if (!q->err) {
            q->ns = bench_median(ns[p], reps);
            q->exits = bench_median(ex[p], reps);
        }
    }
}

/* The fastest enclave executor of a point, or -1 if none ran. */
static int qbest(const struct qres *row) {
    int best = -1;
    for (int p = Q_URING; p < Q_COUNT; p++)
        if (!row[p].err && (best < 0 || row[p].ns < row[best].ns))
            best = p;
    return best;
}

/* A cell of the table: n/a for an unavailable path, a * where the queue ran on another
 * executor than the one it was forced onto. */
static void qprint_cell(const struct qres *c, int p, double v, int prec) {
    if (c->err) {
        printf(" %8s", "n/a");
        return;
    }
    bool moved = p >= Q_HOST_URING && c->exec != qpath_exec[p];
    printf(" %*.*f%s", moved ? 7 : 8, prec, v, moved ? "*" : "");
}

static const char *qerrname(int err) {
    switch (-err) {
    case ENOSYS:
        return "ENOSYS";
    case EPERM:
        return "EPERM";
    case EINVAL:
        return "EINVAL";
    case ENOMEM:
        return "ENOMEM";
    case EIO:
        return "EIO";
    case EALREADY:
        return "EALREADY";
    default:
        return "error";
    }
}

/* ns per pair with the best executor's speedups, then exits per pair. */
static void qprint_tables(void) {
    printf("  %-5s %5s |", "size", "depth");
    for (int p = 0; p < Q_COUNT; p++)
        printf(" %8.8s%s", qpath_name[p], p == Q_HOST_URING ? " |" : "");
    printf(" | %-7s %8s %8s\n", "best", "vs trap", "vs nat");
    for (size_t s = 0; s < NQSIZES; s++)
        for (size_t d = 0; d < NQDEPTHS; d++) {
            const struct qres *row = qtab[s][d];
            printf("  %-5zu %5u |", qsizes[s], qdepths[d]);
            for (int p = 0; p < Q_COUNT; p++) {
                qprint_cell(&row[p], p, row[p].ns, 0);
                printf("%s", p == Q_HOST_URING ? " |" : "");
            }
            int b = qbest(row);
            if (b < 0)
                printf(" | %-7s\n", "none");
            else
                printf(" | %-7s %7.2fx %7.2fx\n", qpath_name[b], row[Q_TRAP].ns / row[b].ns,
                       row[Q_NATIVE].ns / row[b].ns);
        }
    printf("  exits per pair (OCALLs + trapped syscalls):\n");
    for (size_t s = 0; s < NQSIZES; s++)
        for (size_t d = 0; d < NQDEPTHS; d++) {
            const struct qres *row = qtab[s][d];
            printf("  %-5zu %5u |", qsizes[s], qdepths[d]);
            for (int p = 0; p < Q_COUNT; p++) {
                qprint_cell(&row[p], p, row[p].exits, 3);
                printf("%s", p == Q_HOST_URING ? " |" : "");
            }
            printf("\n");
        }
}

static void qprint_csv(bool model_on) {
    for (size_t s = 0; s < NQSIZES; s++)
        for (size_t d = 0; d < NQDEPTHS; d++)
            for (int p = 0; p < Q_COUNT; p++) {
                const struct qres *row = qtab[s][d], *c = &row[p];
                long pairs = qpasses(qdepths[d]) * (long)qdepths[d];
                const char *exec = p >= Q_HOST_URING ? eleos_ioq_exec_name(c->exec) : "";
                fprintf(csv, "ioq,%s,tcp,%zu,%s,,,", model_on ? "on" : "off", qsizes[s],
                        qpath_name[p]);
                if (c->err)
                    fprintf(csv, ",,%d,%ld,%u,,,,unavailable (%s)\n", reps, pairs, qdepths[d],
                            qerrname(c->err));
                else
                    fprintf(csv, "%.1f,%.3f,%d,%ld,%u,%s,%.3f,%.3f,ok\n", c->ns,
                            row[Q_TRAP].ns / c->ns, reps, pairs, qdepths[d], exec, c->exits,
                            row[Q_NATIVE].ns / c->ns);
            }
}

/* Per-queue counters, to tell where the exits of each executor went. */
static void qprint_stats(const struct qrun *r) {
    for (int p = Q_HOST_URING; p < Q_COUNT; p++) {
        if (!r->q[p])
            continue;
        struct eleos_ioq_stats st;
        eleos_ioq_stats(r->q[p], &st);
        printf("  %-12s ops %llu, exits %llu (enters %llu, wakes %llu), spins %llu, host "
               "faults %llu, bad results %llu\n",
               qpath_name[p], (unsigned long long)st.ops, (unsigned long long)st.exits,
               (unsigned long long)st.enters, (unsigned long long)st.wakes,
               (unsigned long long)st.spins, (unsigned long long)st.host_faults,
               (unsigned long long)st.bad_results);
    }
    struct eleos_ioq_service_stats ss;
    eleos_ioq_service_stats(&ss);
    printf("  service: %u worker(s), submits %llu, sleeps %llu, wakes %llu, idle %.2f of %u "
           "CPUs; short transfers finished by another operation: %ld\n",
           ss.workers, (unsigned long long)ss.submits, (unsigned long long)ss.sleeps,
           (unsigned long long)ss.wakes, (double)ss.idle_permille / 1000, ss.ncpus,
           r->shorts_total);
}

/* Queues of every executor (the worker's only with the service running); what is missing
 * is marked with its error rather than failing the run. */
static void qsetup(struct qrun *r, int service_err) {
    r->qerr[Q_WORKER] = service_err;
    long rv = 0;
    if (eleos_enclave_ecall(r->enc, e_qsetup, r, &rv) || rv) {
        fprintf(stderr, "ioq setup failed: %ld\n", rv);
        exit(1);
    }
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.entries = QENTRIES;
    cfg.exec = ELEOS_IOQ_EXEC_URING;
    r->qerr[Q_HOST_URING] = eleos_ioq_create(NULL, &cfg, &r->q[Q_HOST_URING]);
    r->hout = malloc(QMAX_SIZE);
    r->hin = malloc(QMAX_DEPTH * QMAX_SIZE);
    if (!r->hout || !r->hin)
        die("malloc");
    qfill(r->hout);
    printf("  executors (asked -> in effect):");
    for (int p = Q_HOST_URING; p < Q_COUNT; p++) {
        if (r->qerr[p])
            printf(" %s -> unavailable (%s)%s", qpath_name[p], qerrname(r->qerr[p]),
                   p + 1 < Q_COUNT ? "," : "\n");
        else
            printf(" %s -> %s%s", qpath_name[p], eleos_ioq_exec_name(eleos_ioq_executor(r->q[p])),
                   p + 1 < Q_COUNT ? "," : "\n");
    }
}

static void run_ioq(bool model_on, const struct qconns *cn, int service_err) {
    struct qrun r = {.cn = cn, .enc = bench_enclave(model_on, 1)};
    printf("\n== batched system calls (eleos/ioq.h), cost model %s: tcp loopback, depth D = D "
           "connections, one send + one recv of N bytes on each per pass; ns per send+recv pair "
           "(median); best = fastest enclave executor, vs = trapped (native) time / best's\n",
           model_on ? "ON" : "OFF");
    /* The kernel's SQPOLL thread inherits the affinity of the thread that sets the ring up:
     * set up from CPU 1, measured from CPU 0, as the RPC section places worker and caller. */
    bench_pin_cpu(1);
    qsetup(&r, service_err);
    bench_pin_cpu(0);
    for (size_t s = 0; s < NQSIZES; s++)
        for (size_t d = 0; d < NQDEPTHS; d++)
            qpoint(&r, s, d);
    qprint_tables();
    qprint_stats(&r);
    if (csv)
        qprint_csv(model_on);
    long rv;
    eleos_ioq_destroy(r.q[Q_HOST_URING]);
    if (eleos_enclave_ecall(r.enc, e_qteardown, &r, &rv))
        exit(1);
    free(r.hout);
    free(r.hin);
    eleos_enclave_destroy(r.enc);
}

/* The section. The service's worker thread inherits the affinity of the thread that starts
 * it: started from CPU 1, it polls there while the enclave thread runs on CPU 0. */
static void run_ioq_section(void) {
    struct qconns cn;
    qconns_open(&cn);
    bench_pin_cpu(1);
    struct eleos_ioq_service_config sc;
    eleos_ioq_service_config_default(&sc);
    int service_err = eleos_ioq_service_start(&sc);
    run_ioq(false, &cn, service_err);
    run_ioq(true, &cn, service_err);
    if (!service_err)
        eleos_ioq_service_stop();
    qconns_close(&cn);
    bench_unpin_cpu();
}

int main(int argc, char **argv) {
    const char *csv_path = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            reps = 5;
            base_iters = 400;
            qpairs = 512;
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv_path = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc &&
                   (!strcmp(argv[i + 1], "rpc") || !strcmp(argv[i + 1], "ioq"))) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--csv FILE] [--only rpc|ioq]\n", argv[0]);
            return 2;
        }
    }
    if (csv_path) {
        csv = fopen(csv_path, "w");
        if (!csv)
            die(csv_path);
        /* One header for both sections; each row fills the columns of its section. */
        fprintf(csv, "section,model,medium,size,path,write_ns,read_ns,op_ns,speedup_vs_trapped,"
                     "reps,iters,depth,exec,exits_per_op,vs_native,status\n");
    }
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    printf("bench_rpc_io: %d reps (median), %ld iterations at 64 B (fewer for larger sizes), "
           "%ld send+recv pairs per ioq measurement, TSC %.3f GHz, %ld CPUs, load average "
           "%.2f\n",
           reps, base_iters, qpairs, tsc_ghz(), sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    if (!only || !strcmp(only, "rpc")) {
        printf("one op = write N bytes, then read them back; ns per call; speedup = trapped "
               "syscall time / path time (write + read)\n");
        struct fds fds;
        open_fds(&fds);
        run_model(false, &fds);
        run_model(true, &fds);
        close_fds(&fds);
    }
    if (!only || !strcmp(only, "ioq"))
        run_ioq_section();
    if (csv && fclose(csv))
        die(csv_path);
    return 0;
}
