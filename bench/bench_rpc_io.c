/*
 * bench_rpc_io — read and write from enclave code: exitless system calls against the exit
 * path, per medium and buffer size (issue 3, item 6).
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
 * Usage: bench_rpc_io [--quick] [--csv FILE]
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
#include <unistd.h>

#include "bench_util.h"

#include "common/tsc.h"
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

static void run_model(bool model_on, const struct fds *fds) {
    struct eleos_enclave_config ec;
    eleos_enclave_config_default(&ec);
    if (model_on)
        eleos_cost_model_default(&ec.cost);
    else
        eleos_cost_model_off(&ec.cost);
    ec.elrange_size = 256u << 20;
    struct run r = {.fds = fds};
    int rc = eleos_enclave_create(&ec, &r.enc);
    if (rc) {
        fprintf(stderr, "eleos_enclave_create: %s\n", strerror(-rc));
        exit(rc == -ENOSYS ? 77 : 1);
    }
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
    printf("\n== cost model %s: ecall %llu, ocall %llu, syscall %llu extra cycles, pollute %u "
           "KiB; 1 worker (cpu 1), caller cpu 0, spin budget %llu ns, bounce %zu KiB\n",
           model_on ? "ON" : "OFF", (unsigned long long)got.cost.ecall_cycles,
           (unsigned long long)got.cost.ocall_cycles, (unsigned long long)got.cost.syscall_cycles,
           got.cost.pollute_kib, (unsigned long long)pc.spin_ns, pc.bounce_size >> 10);
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
                    fprintf(csv, "%s,%s,%zu,%s,%.1f,%.1f,%.1f,%.3f,%d,%ld\n",
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

int main(int argc, char **argv) {
    const char *csv_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            reps = 5;
            base_iters = 400;
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--csv FILE]\n", argv[0]);
            return 2;
        }
    }
    if (csv_path) {
        csv = fopen(csv_path, "w");
        if (!csv)
            die(csv_path);
        fprintf(csv, "model,medium,size,path,write_ns,read_ns,op_ns,speedup_vs_trapped,reps,"
                     "iters\n");
    }
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    printf("bench_rpc_io: %d reps (median), %ld iterations at 64 B (fewer for larger sizes), "
           "TSC %.3f GHz, %ld CPUs, load average %.2f\n",
           reps, base_iters, tsc_ghz(), sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    printf("one op = write N bytes, then read them back; ns per call; speedup = trapped "
           "syscall time / path time (write + read)\n");
    struct fds fds;
    open_fds(&fds);
    run_model(false, &fds);
    run_model(true, &fds);
    close_fds(&fds);
    if (csv && fclose(csv))
        die(csv_path);
    return 0;
}
