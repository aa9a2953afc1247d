/*
 * host_ioq.c — I/O queues, host side: the lanes behind enclave queues (io_uring instances
 * set up with liburing, or the batch executor's rings), the OCALL entry point, and the
 * service: worker threads that submit for WORKER lanes, and a monitor that measures the
 * machine's idle CPU for the enclave's executor choice.
 *
 * A worker spins while it finds work and gives its core away between polls (sched_yield:
 * a host thread's system call costs no exit), so on a machine with no free core it takes
 * only what no one else wants; after spin_ns without work it sleeps, and the enclave's next
 * submission wakes it with one exit. Completions of what a worker submitted are posted by
 * the kernel in the worker's context, straight into the ring the enclave reads.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "host_ioq.h"

#define MAX_LANES 1024u
#define MAX_WORKERS 8u
#define MONITOR_NS 100000000ull
#define SQPOLL_IDLE_MS 2u

static struct ioq_svc_ctl svc_ctl = {.worker_state = IOQ_WORKER_NONE};

static struct {
    pthread_mutex_t lock;
    struct ioq_host_lane lanes[MAX_LANES];
    _Atomic unsigned fault;
    uint32_t fault_seed;
    /* service */
    bool running;
    _Atomic bool stop;
    pthread_t workers[MAX_WORKERS];
    _Atomic int worker_tid[MAX_WORKERS];
    unsigned nworkers;
    pthread_t monitor;
    uint64_t spin_ns;
    _Atomic uint64_t spin_total_ns;
    _Atomic uint64_t submits, sleeps, wakes;
} H = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long futex(_Atomic uint32_t *w, int op, uint32_t v, const struct timespec *ts) {
    return syscall(SYS_futex, w, op, v, ts, NULL, 0);
}

/* --- lanes ------------------------------------------------------------------------------ */

static struct ioq_host_lane *lane_get(uint64_t handle) {
    uint32_t i = (uint32_t)handle;
    if (i >= MAX_LANES)
        return NULL;
    struct ioq_host_lane *hl = &H.lanes[i];
    return hl->in_use && hl->gen == (uint32_t)(handle >> 32) ? hl : NULL;
}

static int ring_init(struct ioq_host_lane *hl, uint32_t exec, uint32_t entries) {
    /* Tests stand in for a kernel or a sandbox without io_uring this way. */
    if (getenv("ELEOS_IOQ_NO_URING"))
        return -ENOSYS;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = entries * 2;
    if (exec == ELEOS_IOQ_EXEC_URING)
        p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (exec == ELEOS_IOQ_EXEC_SQPOLL) {
        p.flags |= IORING_SETUP_SQPOLL;
        p.sq_thread_idle = SQPOLL_IDLE_MS;
        /* One kernel poller for every SQPOLL ring of the process: a thread per ring would
         * spin as many cores as the app has queues. */
        for (uint32_t i = 0; i < MAX_LANES; i++)
            if (H.lanes[i].in_use && H.lanes[i].exec == ELEOS_IOQ_EXEC_SQPOLL) {
                struct io_uring_params q = p;
                q.flags |= IORING_SETUP_ATTACH_WQ;
                q.wq_fd = (uint32_t)H.lanes[i].ring.ring_fd;
                if (io_uring_queue_init_params(entries, &hl->ring, &q) == 0)
                    return 0;
                break; /* a kernel that cannot share: a poller of its own */
            }
    }
    return io_uring_queue_init_params(entries, &hl->ring, &p);
}

static void desc_fill(struct ioq_lane_desc *d, struct ioq_host_lane *hl, uint32_t idx) {
    memset(d, 0, sizeof *d);
    d->exec = hl->exec;
    d->ctl = (uint64_t)(uintptr_t)&svc_ctl;
    d->handle = (uint64_t)hl->gen << 32 | idx;
    if (hl->exec == ELEOS_IOQ_EXEC_BATCH) {
        struct ioq_batch *b = &hl->batch;
        d->sq_entries = b->sq_entries;
        d->cq_entries = b->cq_entries;
        d->sq_khead = (uintptr_t)&b->hdr->sq_khead;
        d->sq_ktail = (uintptr_t)&b->hdr->sq_ktail;
        d->sq_kflags = (uintptr_t)&b->hdr->sq_kflags;
        d->cq_khead = (uintptr_t)&b->hdr->cq_khead;
        d->cq_ktail = (uintptr_t)&b->hdr->cq_ktail;
        d->sq_array = (uintptr_t)b->array;
        d->sqes = (uintptr_t)b->sqes;
        d->cqes = (uintptr_t)b->cqes;
        return;
    }
    struct io_uring *r = &hl->ring;
    d->sq_entries = r->sq.ring_entries;
    d->cq_entries = r->cq.ring_entries;
    d->sq_khead = (uintptr_t)r->sq.khead;
    d->sq_ktail = (uintptr_t)r->sq.ktail;
    d->sq_kflags = (uintptr_t)r->sq.kflags;
    d->sq_array = (uintptr_t)r->sq.array;
    d->sqes = (uintptr_t)r->sq.sqes;
    d->cq_khead = (uintptr_t)r->cq.khead;
    d->cq_ktail = (uintptr_t)r->cq.ktail;
    d->cqes = (uintptr_t)r->cq.cqes;
}

static long lane_setup(struct ioq_call *c) {
    uint32_t exec = c->exec, entries = c->entries;
    if (exec == ELEOS_IOQ_EXEC_AUTO || exec >= ELEOS_IOQ_NEXEC || !entries ||
        entries > ELEOS_IOQ_MAX_ENTRIES)
        return -EINVAL;
    pthread_mutex_lock(&H.lock);
    uint32_t i = 0;
    while (i < MAX_LANES && H.lanes[i].in_use)
        i++;
    if (i == MAX_LANES) {
        pthread_mutex_unlock(&H.lock);
        return -EMFILE;
    }
    struct ioq_host_lane *hl = &H.lanes[i];
    uint32_t gen = hl->gen + 1;
    memset(hl, 0, sizeof *hl);
    hl->gen = gen;
    hl->exec = exec;
    hl->fault_rng = H.fault_seed * 2654435761ull + i + 1;
    int r = exec == ELEOS_IOQ_EXEC_BATCH ? ioq_batch_init(&hl->batch, entries)
                                          : ring_init(hl, exec, entries);
    if (r == 0) {
        hl->in_use = true;
        hl->on_worker = exec == ELEOS_IOQ_EXEC_WORKER;
        desc_fill(&c->desc, hl, i);
    }
    pthread_mutex_unlock(&H.lock);
    return r;
}

static long lane_release(struct ioq_call *c) {
    pthread_mutex_lock(&H.lock);
    struct ioq_host_lane *hl = lane_get(c->handle);
    if (hl) {
        hl->in_use = false; /* workers skip it from now on: they poll under the lock */
        if (hl->exec == ELEOS_IOQ_EXEC_BATCH)
            ioq_batch_fini(&hl->batch);
        else
            io_uring_queue_exit(&hl->ring);
    }
    pthread_mutex_unlock(&H.lock);
    return hl ? 0 : -EINVAL;
}

static long ring_enter(struct ioq_host_lane *hl, const struct ioq_call *c) {
    struct io_uring *r = &hl->ring;
    unsigned flags = 0, to_submit = 0, min = c->min_complete;
    if (hl->exec != ELEOS_IOQ_EXEC_SQPOLL)
        to_submit = *r->sq.ktail - *r->sq.khead;
    if (c->flags & IOQ_ENTER_SQ_WAKEUP)
        flags |= IORING_ENTER_SQ_WAKEUP;
    if ((c->flags & IOQ_ENTER_GETEVENTS) || hl->exec == ELEOS_IOQ_EXEC_URING)
        flags |= IORING_ENTER_GETEVENTS;
    if (!(flags & IORING_ENTER_GETEVENTS))
        min = 0;
    struct __kernel_timespec ts;
    struct io_uring_getevents_arg arg = {0};
    if (min && c->timeout_ns != UINT64_MAX) {
        ts.tv_sec = (long long)(c->timeout_ns / 1000000000ull);
        ts.tv_nsec = (long long)(c->timeout_ns % 1000000000ull);
        arg.ts = (uint64_t)(uintptr_t)&ts;
        flags |= IORING_ENTER_EXT_ARG;
    }
    int ret = io_uring_enter2((unsigned)r->ring_fd, to_submit, min, flags,
                              (flags & IORING_ENTER_EXT_ARG) ? (sigset_t *)&arg : NULL,
                              (flags & IORING_ENTER_EXT_ARG) ? sizeof arg : _NSIG / 8);
    return ret < 0 && ret != -ETIME && ret != -EINTR ? ret : 0;
}

static long lane_enter(struct ioq_call *c) {
    struct ioq_host_lane *hl = lane_get(c->handle);
    if (!hl)
        return -EINVAL;
    unsigned fault = atomic_load_explicit(&H.fault, memory_order_relaxed);
    long r;
    ioq_fault_undo(hl);
    if (hl->exec == ELEOS_IOQ_EXEC_BATCH) {
        ioq_batch_enter(&hl->batch, c->min_complete,
                        (c->flags & IOQ_ENTER_GETEVENTS) ? c->timeout_ns : 0, fault,
                        &hl->fault_rng);
        r = 0;
    } else {
        r = ring_enter(hl, c);
    }
    /* Only where no one else writes the CQ meanwhile: the enclave's own rings. */
    if (fault && (hl->exec == ELEOS_IOQ_EXEC_BATCH || hl->exec == ELEOS_IOQ_EXEC_URING))
        ioq_fault_apply(hl, fault);
    return r;
}

static long service_wake(void) {
    uint32_t expect = IOQ_WORKER_SLEEPING;
    if (atomic_compare_exchange_strong(&svc_ctl.worker_state, &expect, IOQ_WORKER_AWAKE)) {
        atomic_fetch_add_explicit(&H.wakes, 1, memory_order_relaxed);
        futex(&svc_ctl.worker_state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
    }
    return 0;
}

long ioq_host_call(void *arg) {
    struct ioq_call *c = arg;
    switch (c->op) {
    case IOQ_CALL_SETUP:
        return lane_setup(c);
    case IOQ_CALL_ENTER:
        return lane_enter(c);
    case IOQ_CALL_WAKE:
        return service_wake();
    case IOQ_CALL_RELEASE:
        return lane_release(c);
    default:
        return -EINVAL;
    }
}

/* --- the service --------------------------------------------------------------------------- */

/* Submits what every WORKER lane holds; the number of lanes that had something. */
static unsigned worker_pass(unsigned self) {
    unsigned busy = 0;
    pthread_mutex_lock(&H.lock);
    for (uint32_t i = self; i < MAX_LANES; i += H.nworkers) {
        struct ioq_host_lane *hl = &H.lanes[i];
        if (!hl->in_use || !hl->on_worker)
            continue;
        struct io_uring *r = &hl->ring;
        unsigned pending = atomic_load_explicit((_Atomic unsigned *)r->sq.ktail,
                                                memory_order_acquire) - *r->sq.khead;
        if (!pending || pending > r->sq.ring_entries)
            continue;
        io_uring_enter((unsigned)r->ring_fd, pending, 0, 0, NULL);
        atomic_fetch_add_explicit(&H.submits, 1, memory_order_relaxed);
        busy++;
    }
    pthread_mutex_unlock(&H.lock);
    return busy;
}

static void worker_sleep(unsigned self) {
    atomic_store(&svc_ctl.worker_state, IOQ_WORKER_SLEEPING);
    atomic_thread_fence(memory_order_seq_cst);
    if (worker_pass(self)) { /* raced with a submission that saw us awake */
        atomic_store(&svc_ctl.worker_state, IOQ_WORKER_AWAKE);
        return;
    }
    atomic_fetch_add_explicit(&H.sleeps, 1, memory_order_relaxed);
    struct timespec ts = {0, 50 * 1000 * 1000};
    while (!atomic_load(&H.stop) &&
           atomic_load(&svc_ctl.worker_state) == IOQ_WORKER_SLEEPING)
        futex(&svc_ctl.worker_state, FUTEX_WAIT_PRIVATE, IOQ_WORKER_SLEEPING, &ts);
    atomic_store(&svc_ctl.worker_state, IOQ_WORKER_AWAKE);
}

static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *arg) {
    unsigned self = (unsigned)(uintptr_t)arg;
    atomic_store(&H.worker_tid[self], (int)syscall(SYS_gettid));
    uint64_t last = now_ns();
    while (!atomic_load(&H.stop)) {
        if (worker_pass(self)) {
            last = now_ns();
            continue;
        }
        if (now_ns() - last >= H.spin_ns) {
            worker_sleep(self);
            last = now_ns();
            continue;
        }
        /* The core goes to whoever else wants it; what the spin costs is CPU time, not the
         * wall time others ran meanwhile. */
        uint64_t c0 = thread_cpu_ns();
        sched_yield();
        atomic_fetch_add_explicit(&H.spin_total_ns, thread_cpu_ns() - c0, memory_order_relaxed);
    }
    return NULL;
}

/* Idle CPU from /proc/stat (idle + iowait over all), in thousandths of a core. */
static bool read_cpu(uint64_t *idle, uint64_t *total) {
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return false;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 5)
        return false;
    *idle = v[3] + v[4];
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    return true;
}

/* Time the worker has waited on a run queue (ns), from schedstat; 0 if unknown. */
static uint64_t worker_wait_ns(unsigned i) {
    int tid = atomic_load(&H.worker_tid[i]);
    if (tid <= 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    unsigned long long run = 0, wait = 0;
    int n = fscanf(f, "%llu %llu", &run, &wait);
    fclose(f);
    return n == 2 ? wait : 0;
}

/* The largest share of the last period any awake worker spent waiting for a CPU. */
static uint32_t workers_wait_permille(uint64_t *prev, uint64_t period_ns) {
    uint32_t worst = 0;
    for (unsigned i = 0; i < H.nworkers; i++) {
        uint64_t w = worker_wait_ns(i), d = w > prev[i] ? w - prev[i] : 0;
        prev[i] = w;
        uint64_t pm = period_ns ? d * 1000 / period_ns : 0;
        if (pm > worst)
            worst = (uint32_t)(pm > 1000 ? 1000 : pm);
    }
    return worst;
}

static void *monitor_main(void *arg) {
    (void)arg;
    uint64_t idle0 = 0, total0 = 0, spin0 = 0, t0 = now_ns(), waits[MAX_WORKERS] = {0};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    atomic_store(&svc_ctl.ncpus, (uint32_t)(ncpu > 0 ? ncpu : 1));
    read_cpu(&idle0, &total0);
    while (!atomic_load(&H.stop)) {
        struct timespec ts = {0, (long)MONITOR_NS};
        nanosleep(&ts, NULL);
        uint64_t idle, total, t = now_ns();
        uint64_t spin = atomic_load(&H.spin_total_ns);
        if (!read_cpu(&idle, &total) || total <= total0)
            continue;
        uint64_t cpus = atomic_load(&svc_ctl.ncpus);
        atomic_store(&svc_ctl.idle_permille,
                     (uint32_t)((idle - idle0) * 1000 * cpus / (total - total0)));
        atomic_store(&svc_ctl.spin_permille,
                     (uint32_t)(t > t0 ? (spin - spin0) * 1000 / (t - t0) : 0));
        atomic_store(&svc_ctl.wait_permille, workers_wait_permille(waits, t - t0));
        idle0 = idle;
        total0 = total;
        spin0 = spin;
        t0 = t;
    }
    return NULL;
}

void eleos_ioq_service_config_default(struct eleos_ioq_service_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->workers = 1;
    cfg->spin_ns = ELEOS_IOQ_DEFAULT_WORKER_SPIN_NS;
}

int eleos_ioq_service_start(const struct eleos_ioq_service_config *cfg) {
    struct eleos_ioq_service_config def;
    eleos_ioq_service_config_default(&def);
    if (!cfg)
        cfg = &def;
    if (H.running)
        return -EALREADY;
    H.nworkers = cfg->workers ? (cfg->workers < MAX_WORKERS ? cfg->workers : MAX_WORKERS) : 1;
    H.spin_ns = cfg->spin_ns ? cfg->spin_ns : def.spin_ns;
    H.fault_seed = cfg->fault_seed;
    /* Tests drive a whole server against a lying host this way (test_kvs_hostile). */
    const char *env = getenv("ELEOS_IOQ_FAULT");
    atomic_store(&H.fault, env ? (unsigned)strtoul(env, NULL, 0) : cfg->fault);
    atomic_store(&H.stop, false);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    atomic_store(&svc_ctl.ncpus, (uint32_t)(ncpu > 0 ? ncpu : 1));
    atomic_store(&svc_ctl.worker_state, IOQ_WORKER_AWAKE);
    int r = pthread_create(&H.monitor, NULL, monitor_main, NULL);
    unsigned started = 0;
    for (; !r && started < H.nworkers; started++)
        r = pthread_create(&H.workers[started], NULL, worker_main, (void *)(uintptr_t)started);
    if (r) {
        atomic_store(&H.stop, true);
        for (unsigned i = 0; i + 1 < started; i++)
            pthread_join(H.workers[i], NULL);
        atomic_store(&svc_ctl.worker_state, IOQ_WORKER_NONE);
        return -r;
    }
    H.running = true;
    return 0;
}

void eleos_ioq_service_stop(void) {
    if (!H.running)
        return;
    atomic_store(&H.stop, true);
    futex(&svc_ctl.worker_state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
    for (unsigned i = 0; i < H.nworkers; i++)
        pthread_join(H.workers[i], NULL);
    pthread_join(H.monitor, NULL);
    atomic_store(&svc_ctl.worker_state, IOQ_WORKER_NONE);
    H.running = false;
}

void eleos_ioq_service_set_fault(unsigned fault) {
    atomic_store(&H.fault, fault);
}

void eleos_ioq_service_stats(struct eleos_ioq_service_stats *out) {
    out->submits = atomic_load(&H.submits);
    out->sleeps = atomic_load(&H.sleeps);
    out->wakes = atomic_load(&H.wakes);
    out->idle_permille = atomic_load(&svc_ctl.idle_permille);
    out->ncpus = atomic_load(&svc_ctl.ncpus);
    out->workers = H.running ? H.nworkers : 0;
}
