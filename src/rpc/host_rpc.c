/*
 * host_rpc.c — the untrusted half of exitless RPC: the shared area, the function table,
 * the worker threads and the exit path's host side.
 *
 * Threads. `workers` threads named eleos-rpc/<i>. Each loops over the channels in use
 * (0 .. chan_hwm), round robin from where it last found work, claims one request at a time
 * by CAS on the channel's head, runs it and publishes the response. A request is claimed
 * one at a time so that a long call never holds back the rest of a batch: another worker
 * (or the caller, by taking it back) can run those.
 *
 * Awake accounting (hdr->awake, read by the enclave on every call): a worker counts as awake
 * while it spins or runs a short request. It leaves the count (a) while it runs a request
 * flagged ELEOS_RPC_F_MAYBLOCK and (b) when it sleeps. A waker that wakes a sleeper adds it
 * back *before* waking it, so the call right after an exit-path wake already sees a worker
 * and goes exitless ("the first call after idle takes the exit path at most once").
 *
 * Sleep protocol, per worker state word (RUNNING → SLEEPING → WOKEN → RUNNING):
 *   worker: state = SLEEPING; awake--; check stop and rescan for work (cancelling the sleep
 *           if any: CAS SLEEPING → RUNNING and awake++); futex-wait while SLEEPING.
 *   waker:  CAS SLEEPING → WOKEN; awake++; futex-wake.
 * A request published while its worker was falling asleep is never lost: the enclave keeps
 * reading `awake` while it waits and takes its request back when it drops to zero.
 *
 * Trust: the host trusts its own memory; but since every field of the area is writable by
 * any host thread (and the fault injector writes garbage on purpose), the worker masks every
 * index and checks every id so that garbage cannot make it crash.
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
#include <unistd.h>
#include <x86intrin.h>

#include "common/tsc.h"
#include "rpc/rpc_shared.h"

enum { W_RUNNING = 0, W_SLEEPING = 1, W_WOKEN = 2 };

struct rpc_fn_entry {
    eleos_rpc_fn fn;
    void *ctx;
    struct rpc_fn_entry *next_old; /* superseded entries, freed at destroy */
};

struct rpc_worker {
    alignas(RPC_LINE) _Atomic uint32_t state; /* futex word; W_* */
    struct eleos_rpc_pool *pool;
    unsigned index;
    uint32_t next_chan;     /* worker-private round-robin cursor */
    pthread_t thread;
    /* Statistics: written by the worker only, read by eleos_rpc_pool_stats. */
    _Atomic uint64_t served, blocking, sleeps, wakes, spin_cycles, busy_cycles;
};

struct eleos_rpc_pool {
    struct eleos_enclave *enc;
    struct eleos_rpc_pool_config cfg;
    int *cpus;
    void *area;
    size_t area_size;
    struct rpc_area_hdr *hdr;
    uint32_t channels, ring;
    uint64_t bounce, stride;
    uint64_t spin_cycles;                      /* the spin budget in TSC cycles */
    /* The function table: each entry is immutable once published, so a racing reader sees
     * a consistent (fn, ctx) pair. Release store in register pairs with acquire in run. */
    _Atomic(struct rpc_fn_entry *) table[ELEOS_RPC_MAX_FNS];
    struct rpc_fn_entry *old_entries;          /* protected by reg_lock */
    pthread_mutex_t reg_lock;
    _Atomic unsigned fault;
    _Atomic uint64_t rng;
    _Atomic bool stopping;
    bool running;                              /* caller serialises start/stop */
    unsigned nworkers;                         /* threads started; written by start/stop */
    _Atomic unsigned nrunning;                 /* for statistics                          */
    struct rpc_worker *workers;
    _Atomic uint64_t exit_served, exit_wakes, bad_fn;
};

/* Statistics counters: no ordering with anything else. */
static void stat_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
/* Owner-only counters: load + store, so readers never see a torn value and no locked op. */
static void own_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val) {
    return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

/* --- function table --------------------------------------------------------------------- */

static int64_t fn_null(void *ctx, const uint64_t args[ELEOS_RPC_NARGS]) {
    (void)ctx;
    (void)args;
    return 0;
}

static int do_register(struct eleos_rpc_pool *pool, uint32_t id, eleos_rpc_fn fn, void *ctx) {
    struct rpc_fn_entry *e = NULL;
    if (fn) {
        e = calloc(1, sizeof *e);
        if (!e)
            return -ENOMEM;
        e->fn = fn;
        e->ctx = ctx;
    }
    pthread_mutex_lock(&pool->reg_lock);
    /* Pairs with the acquire load in run_req: the entry's fields are visible. */
    struct rpc_fn_entry *old = atomic_exchange_explicit(&pool->table[id], e, memory_order_acq_rel);
    if (old) {
        /* A worker may still hold old; keep it until destroy. */
        old->next_old = pool->old_entries;
        pool->old_entries = old;
    }
    pthread_mutex_unlock(&pool->reg_lock);
    return 0;
}

int eleos_rpc_pool_register(struct eleos_rpc_pool *pool, uint32_t id, eleos_rpc_fn fn,
                            void *ctx) {
    if (!pool || id < ELEOS_RPC_FN_USER || id >= ELEOS_RPC_MAX_FNS)
        return -EINVAL;
    return do_register(pool, id, fn, ctx);
}

int eleos_rpc_pool_register_reserved(struct eleos_rpc_pool *pool, uint32_t id, eleos_rpc_fn fn,
                                     void *ctx) {
    if (!pool || id >= ELEOS_RPC_FN_USER)
        return -EINVAL;
    return do_register(pool, id, fn, ctx);
}

/* --- fault injection -------------------------------------------------------------------- */

void eleos_rpc_pool_set_fault(struct eleos_rpc_pool *pool, unsigned fault) {
    atomic_store_explicit(&pool->fault, fault, memory_order_relaxed);
}

unsigned eleos_rpc_pool_fault(const struct eleos_rpc_pool *pool) {
    return atomic_load_explicit(&pool->fault, memory_order_relaxed);
}

uint64_t eleos_rpc_pool_fault_random(struct eleos_rpc_pool *pool) {
    /* splitmix64 over an atomic counter: MT-safe, no lock. */
    uint64_t z = atomic_fetch_add_explicit(&pool->rng, 0x9e3779b97f4a7c15ull,
                                           memory_order_relaxed);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ELEOS_RPC_FAULT_SCRIBBLE: after slot s completed, write garbage wherever the host may. */
static void scribble(struct eleos_rpc_pool *pool, struct rpc_chan *ch, uint64_t seq) {
    uint32_t slot = (uint32_t)(seq & (pool->ring - 1));
    struct rpc_req *rq = &rpc_chan_req(ch)[slot];
    struct rpc_resp *rs = &rpc_chan_resp(ch, pool->ring)[slot];
    atomic_store_explicit(&rs->ret, (int64_t)eleos_rpc_pool_fault_random(pool),
                          memory_order_relaxed);
    atomic_store_explicit(&rq->fn, (uint32_t)eleos_rpc_pool_fault_random(pool),
                          memory_order_relaxed);
    atomic_store_explicit(&rq->args[0], eleos_rpc_pool_fault_random(pool), memory_order_relaxed);
    atomic_store_explicit(&ch->exit_ctl.op, (uint32_t)eleos_rpc_pool_fault_random(pool),
                          memory_order_relaxed);
    /* A transient lie about the head: the enclave must reject it if it looks. Restoring it
     * with a CAS keeps the host's own protocol alive if nobody moved it meanwhile. */
    uint64_t h = atomic_load_explicit(&ch->head, memory_order_relaxed);
    uint64_t bad = h + (eleos_rpc_pool_fault_random(pool) | (1ull << 40));
    if (atomic_compare_exchange_strong_explicit(&ch->head, &h, bad, memory_order_relaxed,
                                                memory_order_relaxed)) {
        for (int i = 0; i < 64; i++)
            _mm_pause();
        atomic_compare_exchange_strong_explicit(&ch->head, &bad, h, memory_order_relaxed,
                                                memory_order_relaxed);
    }
}

/* --- running requests ------------------------------------------------------------------- */

/* Snapshots a request line and runs it. */
static int64_t run_req(struct eleos_rpc_pool *pool, const struct rpc_req *rq) {
    uint64_t args[ELEOS_RPC_NARGS];
    uint32_t fn = atomic_load_explicit(&rq->fn, memory_order_relaxed);
    for (unsigned i = 0; i < ELEOS_RPC_NARGS; i++)
        args[i] = atomic_load_explicit(&rq->args[i], memory_order_relaxed);
    int64_t r;
    struct rpc_fn_entry *e = NULL;
    if (fn < ELEOS_RPC_MAX_FNS)
        e = atomic_load_explicit(&pool->table[fn], memory_order_acquire); /* pairs with register */
    if (!e) {
        /* Not -ENOSYS: a registered system-call executor returns that when the kernel lacks
         * a call, and a missing registration must be told apart from it (eleos/sys.h). */
        if (atomic_fetch_add_explicit(&pool->bad_fn, 1, memory_order_relaxed) == 0)
            fprintf(stderr, "eleos: RPC function %u is not registered in this pool%s\n", fn,
                    fn == ELEOS_RPC_FN_SYSCALL ? " (call eleos_sys_host_register)" : "");
        r = -EBADRQC;
    } else {
        r = e->fn(e->ctx, args);
    }
    if (eleos_rpc_pool_fault(pool) & ELEOS_RPC_FAULT_RET)
        r = (int64_t)eleos_rpc_pool_fault_random(pool);
    return r;
}

/* Publishes the result of seq on ch. */
static void complete(struct eleos_rpc_pool *pool, struct rpc_chan *ch, uint64_t seq, int64_t r) {
    struct rpc_resp *rs = &rpc_chan_resp(ch, pool->ring)[seq & (pool->ring - 1)];
    atomic_store_explicit(&rs->ret, r, memory_order_relaxed);
    /* Pairs with the enclave's acquire load of done: ret is visible once done matches. */
    atomic_store_explicit(&rs->done, seq + 1, memory_order_release);
    if (eleos_rpc_pool_fault(pool) & ELEOS_RPC_FAULT_SCRIBBLE)
        scribble(pool, ch, seq);
}

/* Wakes one sleeping worker, if any. Returns true if it woke one. Host mode. */
static bool wake_one(struct eleos_rpc_pool *pool) {
    /* All cfg.workers entries: one never started stays W_RUNNING and is skipped. */
    for (unsigned i = 0; i < pool->cfg.workers; i++) {
        struct rpc_worker *w = &pool->workers[i];
        uint32_t s = W_SLEEPING;
        if (atomic_load_explicit(&w->state, memory_order_relaxed) == W_SLEEPING &&
            atomic_compare_exchange_strong_explicit(&w->state, &s, W_WOKEN,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed)) {
            /* Counted awake before it runs: pairs with the enclave's load of awake. */
            atomic_fetch_add_explicit(&pool->hdr->awake, 1, memory_order_seq_cst);
            futex(&w->state, FUTEX_WAKE_PRIVATE, 1);
            return true;
        }
    }
    return false;
}

/* The exit path's host side: runs in host mode on the calling enclave thread (an OCALL). */
long rpc_host_exit(void *arg) {
    struct rpc_chan *ch = arg;
    struct eleos_rpc_pool *pool = ch->host_pool;
    uint32_t op = atomic_load_explicit(&ch->exit_ctl.op, memory_order_relaxed);
    uint32_t flags = atomic_load_explicit(&ch->exit_ctl.flags, memory_order_relaxed);
    if ((flags & RPC_EXIT_WAKE) &&
        !atomic_load_explicit(&pool->stopping, memory_order_relaxed) && wake_one(pool))
        stat_add(&pool->exit_wakes, 1);
    if (op == RPC_EXIT_ONE) {
        stat_add(&pool->exit_served, 1);
        int64_t r = run_req(pool, &ch->exit_req);
        if (eleos_rpc_pool_fault(pool) & ELEOS_RPC_FAULT_SCRIBBLE)
            atomic_store_explicit(&ch->exit_req.fn, 0xdeadu, memory_order_relaxed);
        return (long)r;
    }
    if (op == RPC_EXIT_RANGE) {
        uint64_t first = atomic_load_explicit(&ch->exit_ctl.first, memory_order_relaxed);
        uint64_t last = atomic_load_explicit(&ch->exit_ctl.last, memory_order_relaxed);
        if (last - first > pool->ring)
            return -EINVAL;
        struct rpc_req *req = rpc_chan_req(ch);
        for (uint64_t s = first; s != last; s++) {
            int64_t r = run_req(pool, &req[s & (pool->ring - 1)]);
            complete(pool, ch, s, r);
        }
        stat_add(&pool->exit_served, last - first);
        return 0;
    }
    return -EINVAL;
}

/* --- workers ---------------------------------------------------------------------------- */

static struct rpc_chan *chan(struct eleos_rpc_pool *pool, uint32_t c) {
    return rpc_chan_at(pool->area, pool->stride, c);
}

static uint32_t chans_in_use(struct eleos_rpc_pool *pool) {
    /* Pairs with the enclave's release store when it attaches a channel. */
    uint32_t hwm = atomic_load_explicit(&pool->hdr->chan_hwm, memory_order_acquire);
    return hwm < pool->channels ? hwm : pool->channels;
}

/* True if channel ch's next request (number *h) is published and not yet claimed. */
static bool pending(struct eleos_rpc_pool *pool, struct rpc_chan *ch, uint64_t *h) {
    *h = atomic_load_explicit(&ch->head, memory_order_relaxed);
    struct rpc_req *rq = &rpc_chan_req(ch)[*h & (pool->ring - 1)];
    /* Acquire pairs with the enclave's release store of pub: the request's fields, in the
     * same line, are visible. A stale head only makes the claim below fail. */
    return atomic_load_explicit(&rq->pub, memory_order_acquire) == (uint32_t)(*h + 1);
}

/* Finds, claims and runs one request. Returns true if it ran one. *last is the worker's
 * latest TSC reading; the request's busy time is counted from it to the end of the request
 * (over-counting by at most one idle pass), so no clock is read between finding the request
 * and publishing its result: rdtsc there costs the caller about 15 ns per call here. */
static bool serve_one(struct eleos_rpc_pool *pool, struct rpc_worker *w, uint64_t *last) {
    uint32_t n = chans_in_use(pool);
    if (w->next_chan >= n)
        w->next_chan = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t c = w->next_chan + k < n ? w->next_chan + k : w->next_chan + k - n;
        struct rpc_chan *ch = chan(pool, c);
        uint64_t h;
        if (!pending(pool, ch, &h))
            continue;
        /* Claim: SUBMITTED → ACCEPTED. Pairs with other workers' claims and with the
         * enclave's take-back CAS: exactly one of them moves head past h. */
        if (!atomic_compare_exchange_strong_explicit(&ch->head, &h, h + 1, memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue;
        w->next_chan = c + 1 < n ? c + 1 : 0;
        struct rpc_req *rq = &rpc_chan_req(ch)[h & (pool->ring - 1)];
        int64_t r;
        if (atomic_load_explicit(&rq->flags, memory_order_relaxed) & ELEOS_RPC_F_MAYBLOCK) {
            /* Leave the awake set so new calls fall back instead of queueing behind us. */
            atomic_fetch_sub_explicit(&pool->hdr->awake, 1, memory_order_seq_cst);
            own_add(&w->blocking, 1);
            r = run_req(pool, rq);
            atomic_fetch_add_explicit(&pool->hdr->awake, 1, memory_order_seq_cst);
        } else {
            r = run_req(pool, rq);
        }
        complete(pool, ch, h, r);
        own_add(&w->served, 1);
        uint64_t now = tsc_now();
        own_add(&w->busy_cycles, now - *last);
        *last = now;
        return true;
    }
    return false;
}

static bool any_pending(struct eleos_rpc_pool *pool) {
    uint32_t n = chans_in_use(pool);
    for (uint32_t c = 0; c < n; c++) {
        uint64_t h;
        if (pending(pool, chan(pool, c), &h))
            return true;
    }
    return false;
}

/* Returns when woken (or when the sleep was cancelled). */
static void worker_sleep(struct eleos_rpc_pool *pool, struct rpc_worker *w) {
    /* seq_cst: the state store and the stopping load below form a Dekker pair with
     * eleos_rpc_pool_stop (stopping store, then state load in wake_one). */
    atomic_store_explicit(&w->state, W_SLEEPING, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&pool->hdr->awake, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&pool->stopping, memory_order_seq_cst) || any_pending(pool)) {
        uint32_t s = W_SLEEPING;
        if (atomic_compare_exchange_strong_explicit(&w->state, &s, W_RUNNING,
                                                    memory_order_seq_cst, memory_order_relaxed))
            atomic_fetch_add_explicit(&pool->hdr->awake, 1, memory_order_seq_cst);
        else /* a waker set WOKEN and already counted us awake */
            atomic_store_explicit(&w->state, W_RUNNING, memory_order_relaxed);
        return;
    }
    own_add(&w->sleeps, 1);
    while (atomic_load_explicit(&w->state, memory_order_acquire) == W_SLEEPING)
        futex(&w->state, FUTEX_WAIT_PRIVATE, W_SLEEPING);
    /* WOKEN: the waker counted us awake (its seq_cst CAS pairs with our acquire load). */
    atomic_store_explicit(&w->state, W_RUNNING, memory_order_relaxed);
    own_add(&w->wakes, 1);
}

static void *worker_main(void *arg) {
    struct rpc_worker *w = arg;
    struct eleos_rpc_pool *pool = w->pool;
    char name[16];
    snprintf(name, sizeof name, "eleos-rpc/%u", w->index);
    pthread_setname_np(pthread_self(), name);
    if (pool->cpus) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(pool->cpus[w->index % pool->cfg.ncpus], &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
    }
    uint64_t idle_since = tsc_now(), last = idle_since;
    for (;;) {
        if (serve_one(pool, w, &last)) {
            idle_since = last;
            continue;
        }
        if (atomic_load_explicit(&pool->stopping, memory_order_acquire))
            break; /* a full pass found nothing: drained */
        last = tsc_now();
        if (last - idle_since >= pool->spin_cycles) {
            own_add(&w->spin_cycles, last - idle_since);
            worker_sleep(pool, w);
            idle_since = last = tsc_now();
            continue;
        }
        _mm_pause();
    }
    own_add(&w->spin_cycles, tsc_now() - idle_since);
    atomic_fetch_sub_explicit(&pool->hdr->awake, 1, memory_order_seq_cst);
    return NULL;
}

/* --- pool lifetime ---------------------------------------------------------------------- */

void eleos_rpc_pool_config_default(struct eleos_rpc_pool_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->workers = ELEOS_RPC_DEFAULT_WORKERS;
    cfg->channels = ELEOS_RPC_DEFAULT_CHANNELS;
    cfg->ring_size = ELEOS_RPC_DEFAULT_RING;
    cfg->bounce_size = ELEOS_RPC_DEFAULT_BOUNCE;
    cfg->spin_ns = ELEOS_RPC_DEFAULT_SPIN_NS;
    cfg->fault_seed = 1;
}

int eleos_rpc_pool_create(struct eleos_enclave *enc, const struct eleos_rpc_pool_config *cfg_in,
                          struct eleos_rpc_pool **out) {
    struct eleos_rpc_pool_config cfg;
    eleos_rpc_pool_config_default(&cfg);
    if (cfg_in) {
        if (cfg_in->workers)
            cfg.workers = cfg_in->workers;
        if (cfg_in->channels)
            cfg.channels = cfg_in->channels;
        if (cfg_in->ring_size)
            cfg.ring_size = cfg_in->ring_size;
        if (cfg_in->bounce_size)
            cfg.bounce_size = cfg_in->bounce_size;
        if (cfg_in->spin_ns)
            cfg.spin_ns = cfg_in->spin_ns;
        cfg.cpus = cfg_in->cpus;
        cfg.ncpus = cfg_in->ncpus;
        cfg.fault = cfg_in->fault;
        cfg.fault_seed = cfg_in->fault_seed;
    }
    if (!out || cfg.workers > ELEOS_RPC_MAX_WORKERS || cfg.channels > ELEOS_RPC_MAX_CHANNELS ||
        cfg.ring_size > ELEOS_RPC_MAX_RING || (cfg.ring_size & (cfg.ring_size - 1)) ||
        cfg.bounce_size > (64u << 20) || (cfg.cpus && cfg.ncpus == 0))
        return -EINVAL;
    struct eleos_rpc_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return -ENOMEM;
    pool->enc = enc;
    pool->cfg = cfg;
    pool->channels = cfg.channels;
    pool->ring = cfg.ring_size;
    pool->bounce = rpc_round_up(cfg.bounce_size, ELEOS_PAGE_SIZE);
    pool->stride = rpc_chan_stride(pool->ring, pool->bounce);
    pool->area_size = rpc_total_size(pool->channels, pool->ring, pool->bounce);
    pool->spin_cycles = (uint64_t)((double)cfg.spin_ns * tsc_ghz());
    pthread_mutex_init(&pool->reg_lock, NULL);
    atomic_init(&pool->fault, cfg.fault);
    atomic_init(&pool->rng, cfg.fault_seed);
    if (cfg.cpus) {
        pool->cpus = malloc(cfg.ncpus * sizeof *pool->cpus);
        if (!pool->cpus)
            goto nomem;
        memcpy(pool->cpus, cfg.cpus, cfg.ncpus * sizeof *pool->cpus);
        pool->cfg.cpus = pool->cpus;
    }
    pool->workers = aligned_alloc(RPC_LINE, rpc_round_up(cfg.workers * sizeof *pool->workers,
                                                         RPC_LINE));
    if (!pool->workers)
        goto nomem;
    memset(pool->workers, 0, cfg.workers * sizeof *pool->workers);
    pool->area = eleos_untrusted_alloc(pool->area_size);
    if (!pool->area)
        goto nomem;
    pool->hdr = pool->area;
    struct rpc_area_hdr *hdr = pool->hdr;
    atomic_store_explicit(&hdr->version, RPC_VERSION, memory_order_relaxed);
    atomic_store_explicit(&hdr->channels, pool->channels, memory_order_relaxed);
    atomic_store_explicit(&hdr->ring_size, pool->ring, memory_order_relaxed);
    atomic_store_explicit(&hdr->workers, cfg.workers, memory_order_relaxed);
    atomic_store_explicit(&hdr->bounce_size, pool->bounce, memory_order_relaxed);
    atomic_store_explicit(&hdr->chan_stride, pool->stride, memory_order_relaxed);
    atomic_store_explicit(&hdr->total_size, pool->area_size, memory_order_relaxed);
    for (uint32_t c = 0; c < pool->channels; c++)
        chan(pool, c)->host_pool = pool;
    /* Published last; the enclave is handed the area after create returns anyway. */
    atomic_store_explicit(&hdr->magic, RPC_MAGIC, memory_order_release);
    int rc = do_register(pool, ELEOS_RPC_FN_NULL, fn_null, NULL);
    if (rc) {
        eleos_rpc_pool_destroy(pool);
        return rc;
    }
    *out = pool;
    return 0;
nomem:
    free(pool->workers);
    free(pool->cpus);
    pthread_mutex_destroy(&pool->reg_lock);
    free(pool);
    return -ENOMEM;
}

int eleos_rpc_pool_start(struct eleos_rpc_pool *pool) {
    if (pool->running)
        return -EALREADY;
    atomic_store_explicit(&pool->stopping, false, memory_order_seq_cst);
    unsigned n = pool->cfg.workers;
    /* Every worker starts awake (and sleeps after its spin budget if there is no work). */
    atomic_fetch_add_explicit(&pool->hdr->awake, n, memory_order_seq_cst);
    for (unsigned i = 0; i < n; i++) {
        struct rpc_worker *w = &pool->workers[i];
        atomic_store_explicit(&w->state, W_RUNNING, memory_order_relaxed);
        w->pool = pool;
        w->index = i;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc) {
            atomic_fetch_sub_explicit(&pool->hdr->awake, n - i, memory_order_seq_cst);
            pool->nworkers = i;
            pool->running = true;
            eleos_rpc_pool_stop(pool);
            return -rc;
        }
    }
    pool->nworkers = n;
    pool->running = true;
    atomic_store_explicit(&pool->nrunning, n, memory_order_relaxed);
    return 0;
}

void eleos_rpc_pool_stop(struct eleos_rpc_pool *pool) {
    if (!pool->running)
        return;
    /* seq_cst: pairs with the workers' state store + stopping load in worker_sleep. */
    atomic_store_explicit(&pool->stopping, true, memory_order_seq_cst);
    for (unsigned i = 0; i < pool->nworkers; i++)
        while (wake_one(pool))
            ;
    for (unsigned i = 0; i < pool->nworkers; i++)
        pthread_join(pool->workers[i].thread, NULL);
    pool->running = false;
    atomic_store_explicit(&pool->nrunning, 0, memory_order_relaxed);
}

void eleos_rpc_pool_destroy(struct eleos_rpc_pool *pool) {
    if (!pool)
        return;
    eleos_rpc_pool_stop(pool);
    for (unsigned i = 0; i < ELEOS_RPC_MAX_FNS; i++)
        free(atomic_load_explicit(&pool->table[i], memory_order_relaxed));
    while (pool->old_entries) {
        struct rpc_fn_entry *e = pool->old_entries;
        pool->old_entries = e->next_old;
        free(e);
    }
    eleos_untrusted_free(pool->area, pool->area_size);
    free(pool->workers);
    free(pool->cpus);
    pthread_mutex_destroy(&pool->reg_lock);
    free(pool);
}

void *eleos_rpc_pool_shared(const struct eleos_rpc_pool *pool, size_t *size) {
    if (size)
        *size = pool->area_size;
    return pool->area;
}

void *eleos_rpc_pool_bounce(struct eleos_rpc_pool *pool, unsigned channel, size_t *size) {
    if (channel >= pool->channels)
        return NULL;
    if (size)
        *size = pool->bounce;
    return rpc_chan_bounce(chan(pool, channel), pool->ring);
}

void eleos_rpc_pool_stats(const struct eleos_rpc_pool *pool, struct eleos_rpc_pool_stats *out) {
    memset(out, 0, sizeof *out);
    uint64_t spin = 0, busy = 0;
    for (unsigned i = 0; i < pool->cfg.workers; i++) {
        struct rpc_worker *w = &pool->workers[i];
        out->served += atomic_load_explicit(&w->served, memory_order_relaxed);
        out->blocking += atomic_load_explicit(&w->blocking, memory_order_relaxed);
        out->sleeps += atomic_load_explicit(&w->sleeps, memory_order_relaxed);
        out->wakes += atomic_load_explicit(&w->wakes, memory_order_relaxed);
        spin += atomic_load_explicit(&w->spin_cycles, memory_order_relaxed);
        busy += atomic_load_explicit(&w->busy_cycles, memory_order_relaxed);
    }
    out->exit_served = atomic_load_explicit(&pool->exit_served, memory_order_relaxed);
    out->exit_wakes = atomic_load_explicit(&pool->exit_wakes, memory_order_relaxed);
    out->bad_fn = atomic_load_explicit(&pool->bad_fn, memory_order_relaxed);
    out->spin_ns = (uint64_t)((double)spin / tsc_ghz());
    out->busy_ns = (uint64_t)((double)busy / tsc_ghz());
    out->awake = atomic_load_explicit(&pool->hdr->awake, memory_order_relaxed);
    out->workers = atomic_load_explicit(&pool->nrunning, memory_order_relaxed);
}
