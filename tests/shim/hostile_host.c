/*
 * hostile_host.so — an LD_PRELOAD shim that plays a hostile host against an unmodified
 * server binary. It sits where the host's answers come from: libc's epoll_wait (the exit
 * path, which the enclave calls and whose result it copies in) and libc's syscall() (the
 * RPC workers' executor). After the real call it rewrites the data word of returned epoll
 * events and appends events that were never registered.
 *
 * HOSTILE_EPOLL=1 turns forging on. The forged words cycle through a random value, the
 * address of a fake connection in host memory, and small integers; a real word with one
 * bit flipped in its generation or its index part. Forged counts go to stderr at exit.
 *
 * HOSTILE_SCRIBBLE=1 starts a host thread that keeps rewriting every futex word the process
 * has waited on or woken through syscall() (in sgx mode, the wake words of the enclave's
 * locks, which live in host memory): the enclave may be woken early or late, but mutual
 * exclusion must hold.
 *
 * HOSTILE_CPUCLOCK=1 makes clock_gettime lie about per-thread and per-process CPU time (the
 * clocks eleos-kvs reads to decide how many workers hold connections): negative seconds,
 * nanoseconds out of range, a clock that runs backwards, jumps of years, and failures.
 */
#include <pthread.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>

/* The worker event loop's batch; other epoll users (none today) are left alone. */
#define FORGE_BATCH 64

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);
typedef long (*syscall_fn)(long, ...);
typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static epoll_wait_fn real_epoll_wait;
static syscall_fn real_syscall;
static clock_gettime_fn real_clock_gettime;
static int clock_lying;
static _Atomic uint64_t clock_lies;
static int forging;
static _Atomic uint64_t forged, calls;
#define MAX_WORDS 64
static _Atomic(uint32_t *) words[MAX_WORDS];
static _Atomic unsigned nwords;
static _Atomic uint64_t scribbles;
static int scribbling;
/* A "connection" in host memory, as an old build's event loop would have trusted. */
static unsigned char fake_conn[4096];

/* Other libraries' constructors may call in before ours has run: resolve on first use. */
static void resolve(void) {
    if (!real_syscall)
        real_syscall = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
    if (!real_epoll_wait)
        real_epoll_wait = (epoll_wait_fn)dlsym(RTLD_NEXT, "epoll_wait");
    if (!real_clock_gettime)
        real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
}

static void remember_word(uint32_t *w) {
    unsigned n = atomic_load(&nwords);
    for (unsigned i = 0; i < n; i++)
        if (atomic_load(&words[i]) == w)
            return;
    if (n < MAX_WORDS && atomic_compare_exchange_strong(&nwords, &n, n + 1))
        atomic_store(&words[n], w);
}

static void *scribbler(void *arg) {
    (void)arg;
    uint64_t x = 88172645463325252ull;
    struct timespec pause = {0, 50000};
    for (;;) {
        unsigned n = atomic_load(&nwords);
        for (unsigned i = 0; i < n; i++) {
            _Atomic uint32_t *w = (_Atomic uint32_t *)atomic_load(&words[i]);
            if (!w)
                continue;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* Through the kernel: a word whose page the server unmapped at shutdown gives
             * EFAULT here instead of a crash of this (host) thread. */
            uint32_t v = (uint32_t)x;
            struct iovec local = {&v, sizeof v}, remote = {(void *)w, sizeof v};
            if (process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == sizeof v)
                atomic_fetch_add(&scribbles, 1);
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

__attribute__((constructor)) static void shim_init(void) {
    resolve();
    const char *e = getenv("HOSTILE_EPOLL");
    forging = e && e[0] == '1';
    memset(fake_conn, 0x41, sizeof fake_conn);
    e = getenv("HOSTILE_SCRIBBLE");
    scribbling = e && e[0] == '1';
    e = getenv("HOSTILE_CPUCLOCK");
    clock_lying = e && e[0] == '1';
    pthread_t t;
    if (scribbling && pthread_create(&t, NULL, scribbler, NULL) == 0)
        pthread_detach(t);
}

__attribute__((destructor)) static void shim_fini(void) {
    if (scribbling)
        fprintf(stderr, "hostile_host: scribbled %llu times over %u futex words\n",
                (unsigned long long)atomic_load(&scribbles), atomic_load(&nwords));
    if (clock_lying)
        fprintf(stderr, "hostile_host: lied %llu times about CPU time\n",
                (unsigned long long)atomic_load(&clock_lies));
    if (forging)
        fprintf(stderr, "hostile_host: forged %llu epoll words in %llu calls\n",
                (unsigned long long)atomic_load(&forged), (unsigned long long)atomic_load(&calls));
}

static uint64_t forge_word_any(uint64_t real, uint64_t k) {
    switch (k % 6) {
    case 0: return real ^ (1ull << (32 + k % 31));          /* another generation   */
    case 1: return real ^ (1ull << (k % 16));                 /* another slot         */
    case 2: return (uint64_t)(uintptr_t)fake_conn;            /* host-memory pointer  */
    case 3: return 0x4141414141414141ull ^ k;                 /* garbage              */
    case 4: return k % 4096;                                  /* small integers       */
    default: return real + ((k % 1000) << 32) + 3;
    }
}

/* Never the server's stop word: a host can stop a server anyway, and that is not what this
 * shim tests. */
static uint64_t forge_word(uint64_t real, uint64_t k) {
    uint64_t w = forge_word_any(real, k);
    return w >= UINT64_MAX - 1 ? 0x4242424242424242ull : w;
}

static void forge(struct epoll_event *evs, int n, int max) {
    uint64_t c = atomic_fetch_add(&calls, 1);
    if (n < 0 || max != FORGE_BATCH || (c % 3) != 0)
        return;
    uint64_t k = c * 2654435761u;
    uint64_t real = n > 0 ? evs[0].data.u64 : 0x0000000500000007ull;
    for (int i = 0; i < n; i += 2) { /* half of the real words */
        evs[i].data.u64 = forge_word(evs[i].data.u64, k + (uint64_t)i);
        atomic_fetch_add(&forged, 1);
    }
    if (n < max) { /* and an event nobody registered */
        evs[n].events = EPOLLIN | EPOLLOUT;
        evs[n].data.u64 = forge_word(real, k + 7);
        atomic_fetch_add(&forged, 1);
    }
}

long syscall(long nr, ...);

static int forged_count(int n, int max) {
    return n >= 0 && n < max && max == FORGE_BATCH ? n + 1 : n;
}

int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout) {
    resolve();
    int n = real_epoll_wait(epfd, evs, max, timeout);
    if (!forging || n < 0)
        return n;
    uint64_t before = atomic_load(&forged);
    forge(evs, n, max);
    return atomic_load(&forged) != before ? forged_count(n, max) : n;
}

long syscall(long nr, ...) {
    resolve();
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (scribbling && nr == SYS_futex && a[0])
        remember_word((uint32_t *)(uintptr_t)a[0]);
    long r = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (forging && r >= 0 && (nr == SYS_epoll_wait || nr == SYS_epoll_pwait)) {
        struct epoll_event *evs = (struct epoll_event *)(uintptr_t)a[1];
        uint64_t before = atomic_load(&forged);
        forge(evs, (int)r, (int)a[2]);
        if (atomic_load(&forged) != before)
            r = forged_count((int)r, (int)a[2]);
    }
    return r;
}

/* Every CPU-time reading is a lie, cycling through the kinds a host could tell. */
int clock_gettime(clockid_t id, struct timespec *ts) {
    resolve();
    int r = real_clock_gettime(id, ts);
    if (!clock_lying || r != 0 ||
        (id != CLOCK_THREAD_CPUTIME_ID && id != CLOCK_PROCESS_CPUTIME_ID))
        return r;
    uint64_t k = atomic_fetch_add(&clock_lies, 1);
    switch (k % 6) {
    case 0: ts->tv_sec = -1 - (time_t)(k % 1000); break;       /* negative seconds       */
    case 1: ts->tv_nsec = 1000000000 + (long)(k % 7); break;    /* nanoseconds overflow   */
    case 2: ts->tv_sec = 0, ts->tv_nsec = (long)(k % 1000); break; /* back to the start  */
    case 3: ts->tv_sec += (time_t)(k % 5 + 1) * 31536000; break; /* years of CPU at once   */
    case 4: ts->tv_sec = (time_t)INT64_MAX; break;                  /* the end of time   */
    default: errno = EINVAL; return -1;                               /* no answer at all */
    }
    return 0;
}
