/*
 * The platform EPC: one capacity shared by every enclave of the machine, the part of the
 * Linux SGX driver that accounts EPC pages and reclaims them, and the sgx_epc misc cgroup's
 * per-enclave limit. The pages themselves stay in each enclave's own memfd (sim_epc.c): only
 * accounting and reclaim decisions are platform-wide.
 *
 * Table: /dev/shm/eleos-epc-<name> (sim_platform.h), mapped MAP_SHARED. Attaching: open, then
 * flock. An exclusive flock obtained without waiting means nobody is attached: the table is
 * (re)initialised, which also forgets the slots of processes that all died. Otherwise a
 * shared flock (it waits while a creator initialises under the exclusive one), then the
 * header is validated. After every flock the inode is compared with the path's, since the
 * last process to leave unlinks the file. Each process holds a shared flock while it has an
 * enclave on the platform; the kernel drops it when the process dies.
 *
 * No lock in shared memory: every shared update is one atomic (a dead process cannot hold
 * anything). Slots are claimed by CAS on their owner word; a dead owner's slot is reaped by
 * one survivor (CAS owner -> REAPING), which gives its pages back. Liveness is pid + start
 * time, so a reused pid is not mistaken for the owner. Counting order leaks rather than
 * overbooks: a reservation adds to `used` before the slot's `current`, a release subtracts
 * from `current` first, so a process killed between its two atomics leaves at most one page
 * per thread counted in `used` until the platform's last process leaves.
 *
 * Fault path (sim_epc_fault, under the enclave's spin lock, in the SIGSEGV handler): over its
 * max, the enclave evicts its own oldest pages (the cgroup reclaims rather than kills);
 * otherwise one atomic reserves a page. When the platform is full, sim_plat_make_room
 * reclaims like the driver: batches of PLAT_BATCH pages up to PLAT_HIGH free pages, from the
 * enclave furthest over its fair share. Its own pages it evicts directly; another enclave of
 * this process, directly if its lock is free; an enclave of another process through a
 * request: the victim slot's `want` plus a futex kick that wakes that process's reclaimer
 * thread (ksgxd), while the faulting thread sleeps (bounded) on the `freed` futex word. A
 * thread never waits for another enclave's lock while holding its own, and every waiting
 * thread services the requests made of its own enclave, so two processes asking each other
 * always progress; after PLAT_SELF_FALLBACK_NS the faulter evicts one of its own pages, and
 * only an enclave with no page at all, facing peers that give nothing back (stopped
 * processes), is granted a page over capacity after PLAT_OVERCOMMIT_NS (counted).
 *
 * Everything here that can run in the handler makes system calls only through the
 * trampoline (eleos_sim_raw_syscall) and never allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim_internal.h"
#include "sim/sim_platform.h"

#define PLAT_LOW 32u                     /* free pages below which reclaimers are kicked */
#define PLAT_HIGH 64u                    /* free pages direct and background reclaim aim for */
#define PLAT_BATCH 16u                   /* pages asked of one victim at a time          */
#define PLAT_WAIT_NS 1000000ull          /* one sleep of a faulting thread               */
#define PLAT_REAP_NS 10000000ull         /* liveness checks at most this often           */
#define PLAT_SELF_FALLBACK_NS 5000000ull
#define PLAT_OVERCOMMIT_NS 2000000000ull
#define PLAT_IDLE_NS 100000000ull        /* reclaimer's sleep when nothing is asked      */
#define RECLAIMER_STACK (256u << 10)     /* it only evicts: no deep calls, no buffers     */

struct sim_platform {
    struct sim_platform *next;           /* the process's list, under plat_mu            */
    char name[PLAT_NAME_MAX];
    bool is_private;
    int fd;
    struct plat_shared *sh;
    uint64_t capacity;                   /* validated copy: never re-read from sh        */
    int refs;                            /* enclaves of this process, under plat_mu      */
    /* This process's enclaves by slot, for reclaim of in-process victims. Readers count
     * themselves in `users` around a use; unpublishing waits for users to drain. */
    struct eleos_enclave *_Atomic local[PLAT_SLOTS];
    _Atomic int users;
    _Atomic uint64_t last_reap;
    bool has_reclaimer;
    atomic_bool stop;
    _Atomic uint32_t stopped;            /* futex: the reclaimer no longer touches this  */
};

static pthread_mutex_t plat_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sim_platform *plats; /* under plat_mu */
static uint32_t self_pid;          /* under plat_mu; set on every attach */
static uint64_t self_start;

/* --- small helpers (handler-safe) ------------------------------------------------------------ */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no exit, no trap */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void futex_wake_all(_Atomic uint32_t *w) {
    eleos_sim_raw_syscall(SYS_futex, (long)w, FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
}

static void futex_wait_ns(_Atomic uint32_t *w, uint32_t seen, uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    eleos_sim_raw_syscall(SYS_futex, (long)w, FUTEX_WAIT, seen, (long)&ts, 0, 0);
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Field 22 of /proc/<pid>/stat (start time in clock ticks), 0 if unreadable. */
static uint64_t proc_start_time(uint32_t pid) {
    char path[32] = "/proc/", digits[12], buf[512];
    int nd = 0, at = 6;
    do /* by hand: this runs in the fault handler, where snprintf is not safe */
        digits[nd++] = (char)('0' + pid % 10);
    while ((pid /= 10) != 0);
    while (nd)
        path[at++] = digits[--nd];
    memcpy(path + at, "/stat", 6);
    long fd = eleos_sim_raw_syscall(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0,
                                    0, 0);
    if (fd < 0)
        return 0;
    long len = eleos_sim_raw_syscall(SYS_read, fd, (long)buf, sizeof buf - 1, 0, 0, 0);
    eleos_sim_raw_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
    if (len <= 0)
        return 0;
    buf[len] = 0;
    char *p = strrchr(buf, ')'); /* the command name may contain spaces and parentheses */
    if (!p)
        return 0;
    /* After ")": field 3 (state) is the first; field 22 is 19 fields on. */
    for (int field = 2; field < 22 && *p; p++)
        if (*p == ' ')
            field++;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

/* Whether the process that owns a slot (pid, start time) still runs. */
static bool owner_alive(uint32_t pid, uint64_t start) {
    if (pid == 0 || pid > PLAT_PID_MAX)
        return false;
    if (eleos_sim_raw_syscall(SYS_kill, pid, 0, 0, 0, 0, 0) == -ESRCH)
        return false;
    uint64_t now = proc_start_time(pid);
    return now == 0 || start == 0 || now == start; /* unreadable /proc: assume alive */
}

/* --- accounting ------------------------------------------------------------------------------ */

static struct plat_slot *slot_of(const struct eleos_enclave *enc) {
    return &enc->epc.plat->sh->slots[enc->epc.slot];
}

/* Subtracts n from a shared counter without wrapping below zero (it may be corrupt). */
static void sub_floor(_Atomic uint64_t *c, uint64_t n) {
    uint64_t v = atomic_load_explicit(c, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(c, &v, v > n ? v - n : 0, memory_order_release,
                                                  memory_order_relaxed))
        ;
}

size_t sim_plat_max(const struct eleos_enclave *enc) {
    uint64_t m = atomic_load_explicit(&slot_of(enc)->max, memory_order_relaxed);
    return (size_t)clamp_u64(m, PLAT_MIN_PAGES, enc->epc.fifo_cap);
}

size_t sim_plat_capacity(const struct eleos_enclave *enc) {
    return (size_t)enc->epc.plat->capacity;
}

/* The fast path: one atomic reservation of a page. */
bool sim_plat_reserve(struct eleos_enclave *enc) {
    struct sim_platform *p = enc->epc.plat;
    /* A compare-and-swap, not add-then-undo: an overshoot undone a moment later is still
     * seen by every other reader (a sampler, or a reserver refused for nothing). */
    uint64_t used = atomic_load_explicit(&p->sh->used, memory_order_acquire);
    do {
        if (used >= p->capacity)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&p->sh->used, &used, used + 1,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire));
    used++;
    if (p->capacity - used == PLAT_LOW - 1 && p->has_reclaimer) {
        /* Crossing the low watermark: wake the reclaimers (ksgxd) once. */
        atomic_fetch_add_explicit(&p->sh->kick, 1, memory_order_release);
        futex_wake_all(&p->sh->kick);
    }
    return true;
}

/* A reserved page became resident in enc. */
void sim_plat_commit(struct eleos_enclave *enc, bool swapped_in) {
    struct plat_slot *s = slot_of(enc);
    atomic_fetch_add_explicit(&s->current, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(swapped_in ? &s->faults : &s->commits, 1, memory_order_relaxed);
}

/* Gives back a reservation that never became resident (the load failed). */
void sim_plat_unreserve(struct eleos_enclave *enc) {
    struct sim_platform *p = enc->epc.plat;
    sub_floor(&p->sh->used, 1);
}

/* n resident pages of enc left the EPC (evicted or trimmed). */
void sim_plat_release(struct eleos_enclave *enc, size_t n, bool evicted) {
    struct sim_platform *p = enc->epc.plat;
    struct plat_slot *s = slot_of(enc);
    if (n == 0)
        return;
    sub_floor(&s->current, n);
    if (evicted)
        atomic_fetch_add_explicit(&s->evictions, n, memory_order_relaxed);
    sub_floor(&p->sh->used, n);
    atomic_fetch_add_explicit(&p->sh->freed, 1, memory_order_release);
    if (atomic_load_explicit(&p->sh->waiters, memory_order_acquire))
        futex_wake_all(&p->sh->freed);
}

/* --- liveness: survivors give a dead process's pages back ------------------------------------ */

static void bump_generation(struct sim_platform *p) {
    atomic_fetch_add_explicit(&p->sh->generation, 1, memory_order_release);
}

/* Reaps slot i if its owner is dead. Returns the pages given back. */
static uint64_t reap_slot(struct sim_platform *p, uint32_t i) {
    struct plat_slot *s = &p->sh->slots[i];
    uint32_t pid = atomic_load_explicit(&s->owner, memory_order_acquire);
    if (pid == 0 || pid == PLAT_OWNER_REAPING || pid == self_pid)
        return 0;
    if (owner_alive(pid, atomic_load_explicit(&s->start, memory_order_relaxed)))
        return 0;
    if (!atomic_compare_exchange_strong_explicit(&s->owner, &pid, PLAT_OWNER_REAPING,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return 0; /* another survivor reaps it */
    uint64_t n = atomic_exchange_explicit(&s->current, 0, memory_order_relaxed);
    n = n > p->capacity ? p->capacity : n;
    sub_floor(&p->sh->used, n);
    atomic_store_explicit(&s->want, 0, memory_order_relaxed);
    atomic_store_explicit(&s->owner, 0, memory_order_release);
    bump_generation(p);
    return n;
}

/* Reaps every dead owner's slot (at most every PLAT_REAP_NS unless forced). Also repairs a
 * `used` that a corrupted table left impossible (above twice the capacity). */
static uint64_t reap_dead(struct sim_platform *p, bool force) {
    uint64_t now = now_ns(), last = atomic_load_explicit(&p->last_reap, memory_order_relaxed);
    if (!force && now - last < PLAT_REAP_NS)
        return 0;
    atomic_store_explicit(&p->last_reap, now, memory_order_relaxed);
    uint64_t got = 0, sum = 0;
    for (uint32_t i = 0; i < PLAT_SLOTS; i++) {
        got += reap_slot(p, i);
        if (atomic_load_explicit(&p->sh->slots[i].owner, memory_order_relaxed))
            sum += clamp_u64(atomic_load_explicit(&p->sh->slots[i].current,
                                                  memory_order_relaxed), 0, p->capacity);
    }
    if (atomic_load_explicit(&p->sh->used, memory_order_relaxed) > 2 * p->capacity)
        atomic_store_explicit(&p->sh->used, sum, memory_order_relaxed);
    if (got) {
        atomic_fetch_add_explicit(&p->sh->freed, 1, memory_order_release);
        futex_wake_all(&p->sh->freed);
    }
    return got;
}

/* --- shares and victims ---------------------------------------------------------------------- */

/* Max-min fair shares of the capacity among live slots, each bounded by its max: slots whose
 * max is below the equal split keep their max, the rest split what remains. share[i] = 0
 * for free slots. Returns the number of live slots. */
static uint32_t fair_shares(const struct sim_platform *p, uint64_t *share) {
    uint64_t maxv[PLAT_SLOTS];
    uint32_t live = 0;
    for (uint32_t i = 0; i < PLAT_SLOTS; i++) {
        const struct plat_slot *s = &p->sh->slots[i];
        uint32_t o = atomic_load_explicit(&s->owner, memory_order_relaxed);
        share[i] = 0;
        maxv[i] = 0;
        if (o == 0 || o == PLAT_OWNER_REAPING)
            continue;
        maxv[i] = clamp_u64(atomic_load_explicit(&s->max, memory_order_relaxed), PLAT_MIN_PAGES,
                            p->capacity);
        live++;
    }
    uint64_t left = p->capacity;
    uint32_t open = live;
    bool changed = true;
    while (open && changed) { /* at most `live` rounds: each fixes one slot or stops */
        changed = false;
        uint64_t split = left / open;
        for (uint32_t i = 0; i < PLAT_SLOTS; i++) {
            if (maxv[i] && !share[i] && maxv[i] <= split) {
                share[i] = maxv[i];
                left -= maxv[i];
                open--;
                changed = true;
            }
        }
        if (!changed)
            for (uint32_t i = 0; i < PLAT_SLOTS; i++)
                if (maxv[i] && !share[i])
                    share[i] = split;
    }
    return live;
}

/* The slot furthest over its fair share (largest current on a tie), or -1. */
static int pick_victim(const struct sim_platform *p) {
    uint64_t share[PLAT_SLOTS];
    fair_shares(p, share);
    int best = -1;
    int64_t best_over = INT64_MIN;
    uint64_t best_cur = 0;
    for (uint32_t i = 0; i < PLAT_SLOTS; i++) {
        const struct plat_slot *s = &p->sh->slots[i];
        if (!share[i])
            continue;
        uint64_t cur = clamp_u64(atomic_load_explicit(&s->current, memory_order_relaxed), 0,
                                 p->capacity);
        if (cur == 0)
            continue;
        int64_t over = (int64_t)cur - (int64_t)share[i];
        if (over > best_over || (over == best_over && cur > best_cur)) {
            best = (int)i;
            best_over = over;
            best_cur = cur;
        }
    }
    return best;
}

uint64_t sim_plat_share(const struct eleos_enclave *enc) {
    uint64_t share[PLAT_SLOTS];
    fair_shares(enc->epc.plat, share);
    uint64_t s = share[enc->epc.slot];
    return s ? s : PLAT_MIN_PAGES; /* our own slot read as free: the table is corrupt */
}

/* --- reclaim --------------------------------------------------------------------------------- */

/* Evicts the pages other enclaves asked of enc. Caller holds enc's lock. Evicted count or -1. */
static long service_want_locked(struct eleos_enclave *enc) {
    struct plat_slot *s = slot_of(enc);
    if (!atomic_load_explicit(&s->want, memory_order_relaxed))
        return 0;
    uint64_t n = atomic_exchange_explicit(&s->want, 0, memory_order_acq_rel);
    n = clamp_u64(n, 0, PLAT_HIGH); /* host-writable: never more than one high watermark */
    return sim_epc_evict_batch_locked(enc, (size_t)n);
}

long sim_plat_service_locked(struct eleos_enclave *enc) {
    return service_want_locked(enc);
}

/* Reclaims up to n pages from slot v of the platform on behalf of enc (whose lock is held).
 * Returns pages evicted directly, 0 if only a request was posted, -1 on a fatal error. */
static long reclaim_from(struct eleos_enclave *enc, int v, size_t n) {
    struct sim_platform *p = enc->epc.plat;
    if (v == (int)enc->epc.slot)
        return sim_epc_evict_batch_locked(enc, n);
    long got = 0;
    atomic_fetch_add_explicit(&p->users, 1, memory_order_seq_cst);
    struct eleos_enclave *victim = atomic_load_explicit(&p->local[v], memory_order_seq_cst);
    bool direct = victim && eleos_spin_trylock(&victim->epc.lock);
    if (direct) {
        got = sim_epc_evict_batch_locked(victim, n);
        eleos_spin_unlock(&victim->epc.lock);
    }
    atomic_fetch_sub_explicit(&p->users, 1, memory_order_release);
    if (direct && got != 0)
        return got;
    struct plat_slot *s = &p->sh->slots[v];
    if (atomic_load_explicit(&s->want, memory_order_relaxed) < n)
        atomic_store_explicit(&s->want, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->sh->kick, 1, memory_order_release);
    futex_wake_all(&p->sh->kick);
    return 0;
}

static void wait_freed(struct sim_platform *p) {
    uint32_t seen = atomic_load_explicit(&p->sh->freed, memory_order_acquire);
    atomic_fetch_add_explicit(&p->sh->waiters, 1, memory_order_acq_rel);
    if (atomic_load_explicit(&p->sh->used, memory_order_acquire) >= p->capacity)
        futex_wait_ns(&p->sh->freed, seen, PLAT_WAIT_NS);
    atomic_fetch_sub_explicit(&p->sh->waiters, 1, memory_order_acq_rel);
}

/* The platform is full and enc (lock held) needs a page: reclaim, then reserve. */
enum sim_fault sim_plat_make_room(struct eleos_enclave *enc) {
    struct sim_platform *p = enc->epc.plat;
    uint64_t t0 = now_ns();
    for (;;) {
        if (sim_plat_reserve(enc))
            return SIM_FAULT_OK;
        long r = service_want_locked(enc);
        if (r < 0)
            return SIM_FAULT_FATAL;
        if (r > 0)
            continue;
        if (reap_dead(p, false))
            continue;
        uint64_t used = atomic_load_explicit(&p->sh->used, memory_order_relaxed);
        uint64_t free_pages = used < p->capacity ? p->capacity - used : 0;
        size_t want = free_pages < PLAT_HIGH ? PLAT_HIGH - free_pages : 1;
        int v = pick_victim(p);
        r = v < 0 ? 0 : reclaim_from(enc, v, want < PLAT_BATCH ? want : PLAT_BATCH);
        if (r < 0)
            return SIM_FAULT_FATAL;
        if (r > 0)
            continue;
        uint64_t waited = now_ns() - t0;
        if (waited > PLAT_SELF_FALLBACK_NS && enc->epc.fifo_count > 0) {
            /* A dead process's pages come before our own: check liveness now, whatever
             * the rate limit says (this runs at most once per fallback wait). */
            if (reap_dead(p, true))
                continue;
            if (sim_epc_evict_batch_locked(enc, 1) < 0)
                return SIM_FAULT_FATAL;
            continue;
        }
        if (waited > PLAT_OVERCOMMIT_NS) {
            atomic_fetch_add_explicit(&p->sh->used, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&p->sh->overcommits, 1, memory_order_relaxed);
            return SIM_FAULT_OK;
        }
        wait_freed(p);
    }
}

/* --- the reclaimer thread (ksgxd) ------------------------------------------------------------ */

/* One pass over this process's enclaves on p: requests from other enclaves, limits lowered
 * from outside, and, below the high watermark, pages over the fair share. Returns whether
 * something could not be done now (an enclave's lock was busy). */
static bool reclaim_pass(struct sim_platform *p) {
    uint64_t share[PLAT_SLOTS];
    uint64_t used = atomic_load_explicit(&p->sh->used, memory_order_relaxed);
    bool background = used + PLAT_HIGH > p->capacity;
    if (background)
        fair_shares(p, share);
    bool pending = false;
    for (uint32_t i = 0; i < PLAT_SLOTS; i++) {
        if (!atomic_load_explicit(&p->local[i], memory_order_relaxed))
            continue;
        atomic_fetch_add_explicit(&p->users, 1, memory_order_seq_cst);
        struct eleos_enclave *enc = atomic_load_explicit(&p->local[i], memory_order_seq_cst);
        if (enc) {
            struct plat_slot *s = &p->sh->slots[i];
            size_t cur = (size_t)atomic_load_explicit(&s->current, memory_order_relaxed);
            size_t max = sim_plat_max(enc), over = 0;
            if (background && share[i] && cur > share[i])
                over = cur - share[i] < PLAT_BATCH ? cur - share[i] : PLAT_BATCH;
            if (cur > max && cur - max > over)
                over = cur - max;
            if (atomic_load_explicit(&s->want, memory_order_relaxed) || over) {
                if (eleos_spin_trylock(&enc->epc.lock)) {
                    service_want_locked(enc);
                    sim_epc_evict_batch_locked(enc, over);
                    eleos_spin_unlock(&enc->epc.lock);
                } else {
                    pending = true;
                }
            }
        }
        atomic_fetch_sub_explicit(&p->users, 1, memory_order_release);
    }
    return pending;
}

static void *reclaimer_main(void *arg) {
    struct sim_platform *p = arg;
    while (!atomic_load_explicit(&p->stop, memory_order_acquire)) {
        uint32_t seen = atomic_load_explicit(&p->sh->kick, memory_order_acquire);
        reap_dead(p, false);
        bool pending = reclaim_pass(p);
        futex_wait_ns(&p->sh->kick, seen, pending ? PLAT_WAIT_NS : PLAT_IDLE_NS);
    }
    atomic_store_explicit(&p->stopped, 1, memory_order_release);
    eleos_sim_raw_syscall(SYS_futex, (long)&p->stopped, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
    return NULL;
}

static int start_reclaimer(struct sim_platform *p) {
    /* No signal is ever delivered to it: an application handler running there could touch
     * enclave memory while the thread holds an enclave's lock. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -ENOMEM;
    pthread_attr_setstacksize(&attr, RECLAIMER_STACK);
    /* Detached, stopped by a handshake: a forked child's sanitizer (TSan) would otherwise
     * keep counting the parent's joinable thread and refuse the child's own. */
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    int r = pthread_create(&th, &attr, reclaimer_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r)
        return -r;
    p->has_reclaimer = true;
    return 0;
}

static void stop_reclaimer(struct sim_platform *p) {
    if (!p->has_reclaimer)
        return;
    atomic_store_explicit(&p->stop, true, memory_order_release);
    atomic_fetch_add_explicit(&p->sh->kick, 1, memory_order_release);
    futex_wake_all(&p->sh->kick);
    while (!atomic_load_explicit(&p->stopped, memory_order_acquire))
        syscall(SYS_futex, &p->stopped, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    p->has_reclaimer = false;
}

/* --- the shared table ------------------------------------------------------------------------ */

static bool valid_name(const char *n) {
    size_t len = strlen(n);
    if (len == 0 || len >= PLAT_NAME_MAX || n[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static const char *resolve_name(const char *name) {
    if (!name)
        name = getenv("ELEOS_EPC_PLATFORM");
    return name && *name ? name : "default";
}

static int table_path(const char *name, char *path, size_t size) {
    if (!valid_name(name))
        return -EINVAL;
    snprintf(path, size, "/dev/shm/eleos-epc-%s", name);
    return 0;
}

/* Header checks: what every attach and the tools rely on. */
static bool header_ok(const struct plat_shared *sh) {
    return sh->magic == PLAT_MAGIC && sh->version == PLAT_VERSION && sh->nslots == PLAT_SLOTS &&
           sh->slot_size == sizeof(struct plat_slot) && sh->capacity >= PLAT_MIN_PAGES &&
           sh->capacity <= PLAT_MAX_PAGES;
}

static bool same_file(int fd, const char *path) {
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

static struct plat_shared *map_table(int fd, int prot) {
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size != sizeof(struct plat_shared))
        return NULL;
    void *m = mmap(NULL, sizeof(struct plat_shared), prot, MAP_SHARED, fd, 0);
    return m == MAP_FAILED ? NULL : m;
}

/* Nobody is attached (we hold the exclusive flock): a fresh table of `capacity` pages. */
static struct plat_shared *init_table(int fd, uint64_t capacity) {
    if (ftruncate(fd, sizeof(struct plat_shared)) != 0)
        return NULL;
    struct plat_shared *sh = map_table(fd, PROT_READ | PROT_WRITE);
    if (!sh)
        return NULL;
    memset(sh, 0, sizeof *sh);
    sh->version = PLAT_VERSION;
    sh->nslots = PLAT_SLOTS;
    sh->slot_size = sizeof(struct plat_slot);
    sh->capacity = capacity;
    atomic_store_explicit(&sh->next_id, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    sh->magic = PLAT_MAGIC;
    return sh;
}

/* Opens (creating or joining) the table at path; on success *fd holds a shared flock. */
static int open_table(const char *path, uint64_t capacity, int *fdp, struct plat_shared **out) {
    for (int tries = 0; tries < 100; tries++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return -errno;
        struct plat_shared *sh = NULL;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (same_file(fd, path))
                sh = init_table(fd, capacity);
            if (sh && flock(fd, LOCK_SH) != 0) /* downgrade: others may join now */
                sh = NULL;
        } else if (errno == EWOULDBLOCK && flock(fd, LOCK_SH) == 0 && same_file(fd, path)) {
            sh = map_table(fd, PROT_READ | PROT_WRITE);
            if (!sh) {
                close(fd);
                return -EBADMSG;
            }
        }
        if (sh && same_file(fd, path)) {
            *fdp = fd;
            *out = sh;
            return 0;
        }
        if (sh)
            munmap(sh, sizeof *sh);
        close(fd); /* unlinked under us by the last process leaving, or raced: again */
    }
    return -EAGAIN;
}

/* Leaves the table; the last process attached removes it. */
static void close_table(struct sim_platform *p) {
    char path[96];
    if (!p->is_private && table_path(p->name, path, sizeof path) == 0 &&
        flock(p->fd, LOCK_EX | LOCK_NB) == 0 && same_file(p->fd, path))
        unlink(path);
    munmap(p->sh, sizeof *p->sh);
    if (p->fd >= 0)
        close(p->fd);
    free(p);
}

/* --- attach and detach (host mode) ----------------------------------------------------------- */

/* Capacity request: the config's, else $ELEOS_EPC_CAPACITY; *explicit says whether there was
 * one. Pages, or 0 for a malformed or out-of-range request. */
static uint64_t capacity_request(const struct eleos_enclave_config *cfg, bool *explicit) {
    uint64_t bytes = cfg->epc_platform_capacity;
    const char *e = getenv("ELEOS_EPC_CAPACITY");
    *explicit = bytes != 0 || (e && *e);
    if (!bytes && e && *e) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(e, &end, 10);
        int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20
                  : *end == 'G' || *end == 'g' ? 30 : 0;
        if (errno || end == e || (shift && end[1]) || (!shift && *end) || v > (1ull << 40))
            return 0;
        bytes = (uint64_t)v << shift;
    }
    if (!bytes)
        bytes = ELEOS_ENCLAVE_DEFAULT_EPC_SIZE;
    uint64_t pages = bytes / ELEOS_PAGE_SIZE;
    return pages >= PLAT_MIN_PAGES && pages <= PLAT_MAX_PAGES ? pages : 0;
}

static struct sim_platform *new_platform(const char *name, bool is_private, int fd,
                                         struct plat_shared *sh) {
    struct sim_platform *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->is_private = is_private;
    p->fd = fd;
    p->sh = sh;
    p->capacity = sh->capacity;
    return p;
}

/* A platform of one enclave, in anonymous memory: the emulator's old per-enclave EPC. */
static struct sim_platform *private_platform(uint64_t pages) {
    struct plat_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return NULL;
    sh->magic = PLAT_MAGIC;
    sh->version = PLAT_VERSION;
    sh->nslots = PLAT_SLOTS;
    sh->slot_size = sizeof(struct plat_slot);
    sh->capacity = pages;
    atomic_store_explicit(&sh->next_id, 1, memory_order_relaxed);
    struct sim_platform *p = new_platform("private", true, -1, sh);
    if (!p)
        munmap(sh, sizeof *sh);
    return p;
}

/* This process's attachment to a named platform (under plat_mu). */
static int find_or_open(const char *name, uint64_t cap, struct sim_platform **out) {
    for (struct sim_platform *p = plats; p; p = p->next)
        if (strcmp(p->name, name) == 0) {
            *out = p;
            return 0;
        }
    char path[96];
    int r = table_path(name, path, sizeof path), fd = -1;
    struct plat_shared *sh = NULL;
    if (r == 0)
        r = open_table(path, cap, &fd, &sh);
    if (r)
        return r;
    struct sim_platform *p = header_ok(sh) ? new_platform(name, false, fd, sh) : NULL;
    if (!p) {
        r = header_ok(sh) ? -ENOMEM : -EBADMSG;
        munmap(sh, sizeof *sh);
        close(fd);
        return r;
    }
    p->next = plats;
    plats = p;
    *out = p;
    return 0;
}

static void unlink_platform(struct sim_platform *p) {
    for (struct sim_platform **pp = &plats; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

/* Claims a free slot for enc on p. Slot index or -ENOSPC. */
static int claim_slot(struct sim_platform *p, const char *name, uint64_t max_pages) {
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < PLAT_SLOTS; i++) {
            struct plat_slot *s = &p->sh->slots[i];
            uint32_t free_owner = 0;
            if (!atomic_compare_exchange_strong_explicit(&s->owner, &free_owner, self_pid,
                                                         memory_order_acq_rel,
                                                         memory_order_relaxed))
                continue;
            atomic_store_explicit(&s->start, self_start, memory_order_relaxed);
            atomic_store_explicit(&s->id, atomic_fetch_add(&p->sh->next_id, 1),
                                  memory_order_relaxed);
            atomic_store_explicit(&s->current, 0, memory_order_relaxed);
            atomic_store_explicit(&s->max, max_pages, memory_order_relaxed);
            atomic_store_explicit(&s->want, 0, memory_order_relaxed);
            atomic_store_explicit(&s->commits, 0, memory_order_relaxed);
            atomic_store_explicit(&s->faults, 0, memory_order_relaxed);
            atomic_store_explicit(&s->evictions, 0, memory_order_relaxed);
            snprintf(s->name, sizeof s->name, "%s", name);
            return (int)i;
        }
        reap_dead(p, true); /* full: dead owners' slots may come free */
    }
    return -ENOSPC;
}

/* A forked child: the list, the reclaimer threads and the flocks are the parent's. The child's
 * inherited enclaves never touch their platform again (sim_epc_fini skips them). */
static void forget_parent(void) {
    for (struct sim_platform *p = plats, *n; p; p = n) {
        n = p->next;
        if (p->fd >= 0)
            close(p->fd); /* the parent's descriptor keeps its flock */
    }
    plats = NULL;
}

static int attach_locked(struct eleos_enclave *enc, const struct eleos_enclave_config *cfg) {
    uint32_t pid = (uint32_t)getpid();
    if (pid != self_pid) {
        if (self_pid)
            forget_parent();
        self_pid = pid;
        self_start = proc_start_time(pid);
    }
    const char *name = resolve_name(cfg->epc_platform);
    bool explicit;
    uint64_t cap = capacity_request(cfg, &explicit), epc = cfg->epc_size / ELEOS_PAGE_SIZE;
    struct sim_platform *p;
    int r = 0;
    if (strcmp(name, "private") == 0) {
        p = private_platform(epc);
        if (!p)
            return -ENOMEM;
    } else {
        if (!cap)
            return -EINVAL;
        r = find_or_open(name, cap, &p);
        if (r)
            return r;
        if (!header_ok(p->sh) || p->sh->capacity != p->capacity)
            r = -EBADMSG; /* rewritten since we attached: refuse new enclaves */
        else if (explicit && cap != p->capacity)
            r = -EEXIST;
    }
    int slot = r ? r : claim_slot(p, enc->name, epc < p->capacity ? epc : p->capacity);
    if (slot < 0) {
        if (p->refs == 0) {
            unlink_platform(p);
            close_table(p);
        }
        return slot;
    }
    p->refs++;
    enc->epc.plat = p;
    enc->epc.slot = (uint32_t)slot;
    bump_generation(p);
    if (!p->is_private && !p->has_reclaimer)
        start_reclaimer(p); /* without one, requests wait for this process's own faults */
    return 0;
}

int sim_plat_attach(struct eleos_enclave *enc, const struct eleos_enclave_config *cfg) {
    pthread_mutex_lock(&plat_mu);
    int r = attach_locked(enc, cfg);
    pthread_mutex_unlock(&plat_mu);
    return r;
}

/* Makes enc a victim other threads of this process may evict directly. */
void sim_plat_publish(struct eleos_enclave *enc) {
    atomic_store_explicit(&enc->epc.plat->local[enc->epc.slot], enc, memory_order_seq_cst);
}

/* Withdraws enc and waits until no other thread uses it as a victim. */
void sim_plat_unpublish(struct eleos_enclave *enc) {
    struct sim_platform *p = enc->epc.plat;
    if (!p || atomic_load_explicit(&p->local[enc->epc.slot], memory_order_relaxed) != enc)
        return;
    atomic_store_explicit(&p->local[enc->epc.slot], NULL, memory_order_seq_cst);
    while (atomic_load_explicit(&p->users, memory_order_seq_cst) != 0)
        sched_yield();
}

/* enc leaves the platform; its frames are already released (sim_epc_reset). */
void sim_plat_detach(struct eleos_enclave *enc) {
    struct sim_platform *p = enc->epc.plat;
    if (!p)
        return;
    sim_plat_unpublish(enc);
    pthread_mutex_lock(&plat_mu);
    struct plat_slot *s = slot_of(enc);
    uint64_t n = atomic_exchange_explicit(&s->current, 0, memory_order_relaxed);
    sub_floor(&p->sh->used, n > p->capacity ? p->capacity : n);
    atomic_store_explicit(&s->want, 0, memory_order_relaxed);
    uint32_t me = self_pid;
    atomic_compare_exchange_strong_explicit(&s->owner, &me, 0, memory_order_acq_rel,
                                            memory_order_relaxed);
    bump_generation(p);
    atomic_fetch_add_explicit(&p->sh->freed, 1, memory_order_release);
    futex_wake_all(&p->sh->freed);
    if (--p->refs == 0) {
        stop_reclaimer(p);
        if (!p->is_private)
            unlink_platform(p);
        close_table(p);
    }
    enc->epc.plat = NULL;
    pthread_mutex_unlock(&plat_mu);
}

void sim_plat_lock(void) {
    pthread_mutex_lock(&plat_mu);
}

void sim_plat_unlock(void) {
    pthread_mutex_unlock(&plat_mu);
}

/* fork, in the child (plat_mu held by the prepare handler, released after). */
void sim_plat_fork_child(void) {
    forget_parent();
    self_pid = 0;
}

/* --- the public API -------------------------------------------------------------------------- */

int eleos_enclave_epc_status(const struct eleos_enclave *enc, struct eleos_epc_status *out) {
    memset(out, 0, sizeof *out);
    if (enc->inherited || !enc->epc.plat)
        return -EBADMSG;
    const struct sim_platform *p = enc->epc.plat;
    uint64_t share[PLAT_SLOTS];
    out->capacity = p->capacity;
    out->enclaves = fair_shares(p, share);
    out->used = clamp_u64(atomic_load_explicit(&p->sh->used, memory_order_relaxed), 0,
                          2 * p->capacity);
    out->current = atomic_load_explicit(&enc->stats.epc_resident, memory_order_relaxed);
    out->swapped = atomic_load_explicit(&enc->stats.epc_swapped, memory_order_relaxed);
    out->max = sim_plat_max(enc);
    out->share = sim_plat_share(enc);
    out->generation = atomic_load_explicit(&p->sh->generation, memory_order_acquire);
    out->id = atomic_load_explicit(&slot_of(enc)->id, memory_order_relaxed);
    return 0;
}

uint64_t eleos_enclave_epc_share(const struct eleos_enclave *enc) {
    if (enc->inherited || !enc->epc.plat)
        return 0;
    uint64_t s = sim_plat_share(enc), max = sim_plat_max(enc);
    return s < max ? s : max;
}

uint64_t eleos_enclave_epc_generation(const struct eleos_enclave *enc) {
    if (enc->inherited || !enc->epc.plat)
        return 0;
    return atomic_load_explicit(&enc->epc.plat->sh->generation, memory_order_acquire);
}

static uint64_t max_pages_for(uint64_t bytes, uint64_t capacity) {
    uint64_t pages = bytes / ELEOS_PAGE_SIZE;
    return bytes == 0 || pages > capacity ? capacity : pages;
}

static void limit_changed(struct sim_platform *p) {
    bump_generation(p);
    atomic_fetch_add_explicit(&p->sh->kick, 1, memory_order_release);
    futex_wake_all(&p->sh->kick);
}

int eleos_enclave_epc_set_max(struct eleos_enclave *enc, uint64_t bytes) {
    if (enc->inherited || !enc->epc.plat)
        return -EBADMSG;
    if (bytes && bytes / ELEOS_PAGE_SIZE < PLAT_MIN_PAGES)
        return -EINVAL;
    struct sim_platform *p = enc->epc.plat;
    atomic_store_explicit(&slot_of(enc)->max, max_pages_for(bytes, p->capacity),
                          memory_order_relaxed);
    limit_changed(p);
    return 0;
}

/* --- platforms seen from outside (tools) ----------------------------------------------------- */

static int open_for_tool(const char *name, int prot, int *fdp, struct plat_shared **out) {
    char path[96];
    int r = table_path(resolve_name(name), path, sizeof path);
    if (r)
        return r;
    int fd = open(path, (prot & PROT_WRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : -errno;
    struct plat_shared *sh = map_table(fd, prot);
    if (!sh || !header_ok(sh)) {
        if (sh)
            munmap(sh, sizeof *sh);
        close(fd);
        return -EBADMSG;
    }
    *fdp = fd;
    *out = sh;
    return 0;
}

static void entry_of(const struct plat_slot *s, uint32_t owner, uint64_t cap,
                     struct eleos_epc_platform_entry *e) {
    memset(e, 0, sizeof *e);
    e->pid = owner;
    e->alive = owner_alive(owner, atomic_load_explicit(&s->start, memory_order_relaxed));
    e->id = atomic_load_explicit(&s->id, memory_order_relaxed);
    e->current = atomic_load_explicit(&s->current, memory_order_relaxed);
    e->max = clamp_u64(atomic_load_explicit(&s->max, memory_order_relaxed), PLAT_MIN_PAGES, cap);
    e->commits = atomic_load_explicit(&s->commits, memory_order_relaxed);
    e->faults = atomic_load_explicit(&s->faults, memory_order_relaxed);
    e->evictions = atomic_load_explicit(&s->evictions, memory_order_relaxed);
    memcpy(e->name, s->name, sizeof e->name);
    e->name[sizeof e->name - 1] = 0; /* host-written: terminate */
}

int eleos_epc_platform_read(const char *name, struct eleos_epc_platform_info *info,
                            struct eleos_epc_platform_entry *entries, size_t n, size_t *found) {
    int fd;
    struct plat_shared *sh;
    int r = open_for_tool(name, PROT_READ, &fd, &sh);
    if (r)
        return r;
    size_t k = 0;
    for (uint32_t i = 0; i < PLAT_SLOTS; i++) {
        const struct plat_slot *s = &sh->slots[i];
        uint32_t owner = atomic_load_explicit(&s->owner, memory_order_acquire);
        if (owner == 0 || owner == PLAT_OWNER_REAPING)
            continue;
        if (k < n && entries)
            entry_of(s, owner, sh->capacity, &entries[k]);
        k++;
    }
    if (info) {
        info->capacity = sh->capacity;
        info->used = atomic_load_explicit(&sh->used, memory_order_relaxed);
        info->generation = atomic_load_explicit(&sh->generation, memory_order_relaxed);
        info->overcommits = atomic_load_explicit(&sh->overcommits, memory_order_relaxed);
        info->enclaves = (uint32_t)k;
    }
    if (found)
        *found = k;
    munmap(sh, sizeof *sh);
    close(fd);
    return 0;
}

int eleos_epc_platform_set_max(const char *name, uint64_t id, uint64_t bytes) {
    if (bytes && bytes / ELEOS_PAGE_SIZE < PLAT_MIN_PAGES)
        return -EINVAL;
    int fd;
    struct plat_shared *sh;
    int r = open_for_tool(name, PROT_READ | PROT_WRITE, &fd, &sh);
    if (r)
        return r;
    r = -ENOENT;
    for (uint32_t i = 0; i < PLAT_SLOTS; i++) {
        struct plat_slot *s = &sh->slots[i];
        uint32_t owner = atomic_load_explicit(&s->owner, memory_order_acquire);
        if (owner == 0 || owner == PLAT_OWNER_REAPING ||
            atomic_load_explicit(&s->id, memory_order_relaxed) != id)
            continue;
        atomic_store_explicit(&s->max, max_pages_for(bytes, sh->capacity), memory_order_relaxed);
        struct sim_platform tmp = {.sh = sh, .capacity = sh->capacity};
        limit_changed(&tmp);
        r = 0;
        break;
    }
    munmap(sh, sizeof *sh);
    close(fd);
    return r;
}
