/*
 * enclave_rpc.c — the trusted half of exitless RPC: the client an enclave thread calls.
 *
 * Data flow. Each enclave thread owns one channel of the shared area (attached on its first
 * call, found again through a thread-local cache that stands in for SGX's TCS-local data).
 * A call writes its request line, marks it published (the line's last word, stored with
 * release: workers poll the request line itself, so one cache line travels each way), and
 * spins on its response line until done == seq + 1; it never makes a system call on this
 * path.
 *
 * Exit path (an OCALL through eleos_enclave_ocall): taken at once when exitless is off
 * (globally or by ELEOS_RPC_F_EXIT), when no worker is awake (the OCALL wakes one on its
 * way), or when the thread's ring is full. Ring requests go to the exit path by first
 * claiming them (moving head past them with a CAS, as a worker would), so a worker never
 * runs a request the exit path runs. The same take-back rescues a request published while
 * the last worker fell asleep or stopped: a waiting caller keeps reading `awake`, and when
 * it drops to zero (or nothing claimed the request for RPC_RECLAIM_NS) takes its unclaimed
 * requests back and runs them on the exit path.
 *
 * Trust. Everything the enclave relies on lives in enclave memory: the geometry (snapshot
 * and validated once at creation), each channel's tail, reap index and per-slot states.
 * From untrusted memory it reads only `awake` (a hint: any value is safe), a channel's head
 * (accepted only within [reap, tail]) and response lines (accepted only if done is exactly
 * the expected seq + 1; the result itself is the caller's to validate). Pointers into the
 * area are computed from the trusted base, never read from it. Nothing here is a lock in
 * untrusted memory. Not defended: a host that never answers (denial of service).
 */
#include <errno.h>
#include <string.h>
#include <x86intrin.h>

#include "common/tsc.h"
#include "rpc/rpc_shared.h"

/* A request published but unclaimed for this long is taken back even though a worker claims
 * to be awake: a worker that is awake but not running (the OS preempted it: more runnable
 * threads than cores) or busy elsewhere must not stall this caller. A claim normally takes
 * well under 1 us, and a worker serving other threads' short requests claims within a few;
 * 20 us is several exits' worth of waiting (an exit costs ~3 us with the SGX cost model), so
 * waiting longer than that is never the cheaper choice. Settable per client. */
#define RPC_RECLAIM_NS 20000u

/* After a request had to be taken back because no worker claimed it in time (the workers are
 * awake but not getting CPU time), the thread's next synchronous calls go straight to the
 * exit path instead of each waiting out the reclaim time again: first RPC_BACKOFF_MIN calls,
 * doubling on every consecutive timeout up to RPC_BACKOFF_MAX; a call that workers serve in
 * time resets it. Sized so a back-off costs about as much in exits as one timed-out wait. */
/* Right after this thread's exit path woke a sleeping worker, the worker may need far longer
 * than the reclaim time to get onto a CPU (on a VM: the halted vCPU's wake-up). The thread's
 * next exitless calls wait up to this long before taking a request back, so that waking
 * costs one exit, not one per call until the worker runs ("the first call after idle takes
 * the exit path at most once"). */
#define RPC_WAKE_GRACE_NS 1000000u
#define RPC_BACKOFF_MIN 4u
#define RPC_BACKOFF_MAX 256u

/* A waiting caller starts watching `awake` (and its request's head) only after this long. A
 * normal call completes well within it, and not reading the awake line while a worker runs
 * an ELEOS_RPC_F_MAYBLOCK request (which writes that line twice) keeps the line from
 * bouncing between the two cores on every such call. The price is at most this much extra
 * latency before a request stranded by sleeping or stopped workers is taken back. */
#define RPC_WATCH_NS 2000u

/* Thread-local cache entries: a thread seldom talks to more than one or two enclaves. */
#define RPC_TL_ENTRIES 4

enum { S_FREE = 0, S_INFLIGHT = 1, S_FORCED = 2, S_CONSUMED = 3 };

/* Per-channel counters: written by the owning thread only (load + store, no locked op),
 * read by eleos_rpc_client_stats; one cache line each so threads never share one. */
struct rpc_cstats {
    alignas(RPC_LINE) _Atomic uint64_t calls;
    _Atomic uint64_t submitted;   /* published to workers */
    _Atomic uint64_t exit_calls, no_worker, ring_full, reclaimed, unclaimed, backoff, ocalls;
    _Atomic uint64_t batches, host_faults, wait_cycles;
};

struct rpc_thread {
    struct eleos_rpc_client *cl;
    uint32_t chan_idx;
    struct rpc_chan *ch;       /* untrusted; computed from the trusted base */
    struct rpc_req *req;       /* untrusted ring of request lines           */
    struct rpc_resp *resp;     /* untrusted ring of response lines          */
    void *bounce;              /* untrusted bounce buffer                   */
    struct rpc_cstats *st;
    uint64_t tail;             /* requests published (trusted copy)         */
    uint64_t reap;             /* oldest request not yet consumed           */
    uint8_t *state;            /* S_* per slot                              */
    uint32_t backoff;          /* sync calls left to send to the exit path  */
    uint32_t backoff_len;      /* the next back-off's length                */
    bool timed_out;            /* the last wait took its request back late  */
    bool woke;                 /* a worker was woken for us: be patient     */
    int64_t *forced;           /* result of an S_FORCED slot                */
    uint8_t *mayblock;         /* the slot's request may block (ELEOS_RPC_F_MAYBLOCK) */
};

struct eleos_rpc_client {
    struct eleos_enclave *enc;
    uint64_t id;                       /* tells thread-local cache entries apart */
    void *area;                        /* untrusted */
    struct rpc_area_hdr *hdr;          /* untrusted */
    uint32_t channels, ring;
    uint64_t bounce, stride, total;
    _Atomic uint64_t reclaim_cycles;
    uint64_t watch_cycles;
    uint64_t grace_cycles;
    _Atomic bool exitless;
    _Atomic uint64_t bad_ids;          /* requests refused by valid_req          */
    _Atomic uint32_t hwm;              /* trusted: channels handed out + 1       */
    _Atomic(struct rpc_thread *) *owner; /* per channel; NULL = free            */
    uint64_t *chan_seq;                /* per channel: tail at the last detach   */
    bool *chan_fenced;                 /* per channel: chan_seq set by this client */
    struct rpc_cstats *stats;          /* per channel                            */
};

struct tl_entry {
    struct eleos_rpc_client *cl;
    uint64_t id;
    struct rpc_thread *t;
};
static _Thread_local struct tl_entry tl_cache[RPC_TL_ENTRIES];
static _Thread_local unsigned tl_victim;
static _Atomic uint64_t next_client_id = 1;

static void own_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* --- untrusted reads: the only places the enclave looks at host-written fields ---------- */

static uint32_t read_awake(const struct eleos_rpc_client *cl) {
    /* A hint; any value is safe. Relaxed: a stale value only delays a fallback. */
    return atomic_load_explicit(&cl->hdr->awake, memory_order_relaxed);
}

/* The channel head if it lies in [reap, tail], else false (host fault). */
static bool read_head(const struct rpc_thread *t, uint64_t *h) {
    uint64_t v = atomic_load_explicit(&t->ch->head, memory_order_relaxed);
    if (v - t->reap > t->tail - t->reap)
        return false;
    *h = v;
    return true;
}

/* --- creation --------------------------------------------------------------------------- */

int eleos_rpc_client_create(struct eleos_enclave *enc, void *shared, size_t size,
                            struct eleos_rpc_client **out) {
    if (!enc || !shared || !out || size < rpc_hdr_size() ||
        ((uintptr_t)shared & (ELEOS_PAGE_SIZE - 1)) || !eleos_enclave_outside(enc, shared, size))
        return -EINVAL;
    /* Inside an ECALL the range check must be against the enclave we run in, not one a
     * host-held value names. */
    if (eleos_enclave_in_enclave_mode() && enc != eleos_enclave_current())
        return -EINVAL;
    struct rpc_area_hdr *hdr = shared;
    /* Snapshot the geometry once; never read it again. Acquire pairs with the host's
     * release store of magic at creation. */
    uint64_t magic = atomic_load_explicit(&hdr->magic, memory_order_acquire);
    uint32_t version = atomic_load_explicit(&hdr->version, memory_order_relaxed);
    uint32_t channels = atomic_load_explicit(&hdr->channels, memory_order_relaxed);
    uint32_t ring = atomic_load_explicit(&hdr->ring_size, memory_order_relaxed);
    uint64_t bounce = atomic_load_explicit(&hdr->bounce_size, memory_order_relaxed);
    uint64_t stride = atomic_load_explicit(&hdr->chan_stride, memory_order_relaxed);
    uint64_t total = atomic_load_explicit(&hdr->total_size, memory_order_relaxed);
    if (magic != RPC_MAGIC || version != RPC_VERSION || channels == 0 ||
        channels > ELEOS_RPC_MAX_CHANNELS || ring == 0 || ring > ELEOS_RPC_MAX_RING ||
        (ring & (ring - 1)) || bounce > (64u << 20) || bounce % ELEOS_PAGE_SIZE ||
        stride != rpc_chan_stride(ring, bounce) || total != rpc_total_size(channels, ring, bounce) ||
        total > size)
        return -EINVAL;
    struct eleos_rpc_client *cl = eleos_enclave_calloc(enc, 1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    cl->enc = enc;
    cl->id = atomic_fetch_add_explicit(&next_client_id, 1, memory_order_relaxed);
    cl->area = shared;
    cl->hdr = hdr;
    cl->channels = channels;
    cl->ring = ring;
    cl->bounce = bounce;
    cl->stride = stride;
    cl->total = total;
    atomic_init(&cl->reclaim_cycles, (uint64_t)(RPC_RECLAIM_NS * tsc_ghz()));
    cl->watch_cycles = (uint64_t)(RPC_WATCH_NS * tsc_ghz());
    cl->grace_cycles = (uint64_t)(RPC_WAKE_GRACE_NS * tsc_ghz());
    atomic_init(&cl->exitless, true);
    cl->owner = eleos_enclave_calloc(enc, channels, sizeof *cl->owner);
    cl->chan_seq = eleos_enclave_calloc(enc, channels, sizeof *cl->chan_seq);
    cl->chan_fenced = eleos_enclave_calloc(enc, channels, sizeof *cl->chan_fenced);
    cl->stats = eleos_enclave_aligned_alloc(enc, RPC_LINE, channels * sizeof *cl->stats);
    if (!cl->owner || !cl->chan_seq || !cl->chan_fenced || !cl->stats) {
        eleos_enclave_free(enc, cl->owner);
        eleos_enclave_free(enc, cl->chan_seq);
        eleos_enclave_free(enc, cl->chan_fenced);
        eleos_enclave_free(enc, cl->stats);
        eleos_enclave_free(enc, cl);
        return -ENOMEM;
    }
    memset(cl->stats, 0, channels * sizeof *cl->stats);
    *out = cl;
    return 0;
}

struct eleos_enclave *eleos_rpc_client_enclave(const struct eleos_rpc_client *cl) {
    return cl->enc;
}

void eleos_rpc_set_exitless(struct eleos_rpc_client *cl, bool on) {
    atomic_store_explicit(&cl->exitless, on, memory_order_relaxed);
}

bool eleos_rpc_exitless(const struct eleos_rpc_client *cl) {
    return atomic_load_explicit(&cl->exitless, memory_order_relaxed);
}

void eleos_rpc_set_reclaim_ns(struct eleos_rpc_client *cl, uint64_t ns) {
    if (ns == 0)
        ns = RPC_RECLAIM_NS;
    atomic_store_explicit(&cl->reclaim_cycles, (uint64_t)((double)ns * tsc_ghz()),
                          memory_order_relaxed);
}

/* --- channels --------------------------------------------------------------------------- */

/*
 * First use of channel c by this client: the channel may carry an earlier client's history
 * (a client destroyed and created again on the same pool, or an enclave that died with
 * requests published). Sequence numbers continue from the head found there, one full ring
 * lap further, and the lap is claimed by moving head past it (a CAS, as a worker claims):
 * no worker runs a stale request after this, and neither stale publication marks (at most
 * h + R) nor stale done values (at most h + R) can equal those of the new requests (from
 * h + R + 1 on). Head is host-written, so a lying host can only pick where the numbering
 * starts, which it could disturb anyway (denial of service); the trusted tail/reap
 * bookkeeping starts consistent whatever it picks.
 */
static uint64_t fence_channel(struct eleos_rpc_client *cl, struct rpc_chan *ch) {
    uint64_t h = atomic_load_explicit(&ch->head, memory_order_relaxed);
    /* Pairs with the workers' claim CAS: a failure means a worker just claimed a stale
     * request (h was updated); fence from there. */
    while (!atomic_compare_exchange_weak_explicit(&ch->head, &h, h + cl->ring,
                                                  memory_order_acq_rel, memory_order_relaxed))
        ;
    return h + cl->ring;
}

static struct rpc_thread *attach(struct eleos_rpc_client *cl) {
    uint32_t R = cl->ring;
    size_t sz = sizeof(struct rpc_thread) + R * sizeof(int64_t) + 2u * R;
    struct rpc_thread *t = eleos_enclave_malloc(cl->enc, sz);
    if (!t)
        return NULL;
    memset(t, 0, sz);
    t->forced = (int64_t *)(t + 1);
    t->state = (uint8_t *)(t->forced + R);
    t->mayblock = t->state + R;
    t->cl = cl;
    for (uint32_t c = 0; c < cl->channels; c++) {
        struct rpc_thread *expect = NULL;
        if (atomic_load_explicit(&cl->owner[c], memory_order_relaxed) ||
            !atomic_compare_exchange_strong_explicit(&cl->owner[c], &expect, t,
                                                     memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        /* Acquire above pairs with the release in detach: chan_seq[c] is current. */
        t->chan_idx = c;
        t->ch = rpc_chan_at(cl->area, cl->stride, c);
        t->req = rpc_chan_req(t->ch);
        t->resp = rpc_chan_resp(t->ch, R);
        t->bounce = rpc_chan_bounce(t->ch, R);
        t->st = &cl->stats[c];
        if (!cl->chan_fenced[c]) {
            cl->chan_seq[c] = fence_channel(cl, t->ch);
            cl->chan_fenced[c] = true;
        }
        t->tail = t->reap = cl->chan_seq[c];
        /* Trusted high-water mark first, then the workers' copy (fetch-max on host memory:
         * a host that lowers it only denies service to itself). Release pairs with the
         * workers' acquire load of chan_hwm. */
        uint32_t want = c + 1, cur = atomic_load_explicit(&cl->hwm, memory_order_relaxed);
        while (cur < want && !atomic_compare_exchange_weak_explicit(
                                 &cl->hwm, &cur, want, memory_order_relaxed,
                                 memory_order_relaxed))
            ;
        cur = atomic_load_explicit(&cl->hdr->chan_hwm, memory_order_relaxed);
        while (cur < want && !atomic_compare_exchange_weak_explicit(
                                 &cl->hdr->chan_hwm, &cur, want, memory_order_release,
                                 memory_order_relaxed))
            ;
        return t;
    }
    eleos_enclave_free(cl->enc, t);
    return NULL;
}

/* The calling thread's channel in cl, attaching one if attach_ok. */
static struct rpc_thread *self(struct eleos_rpc_client *cl, bool attach_ok) {
    for (unsigned i = 0; i < RPC_TL_ENTRIES; i++)
        if (tl_cache[i].cl == cl && tl_cache[i].id == cl->id)
            return tl_cache[i].t;
    if (!attach_ok)
        return NULL;
    struct rpc_thread *t = attach(cl);
    if (!t)
        return NULL;
    unsigned slot = RPC_TL_ENTRIES;
    for (unsigned i = 0; i < RPC_TL_ENTRIES && slot == RPC_TL_ENTRIES; i++)
        if (!tl_cache[i].cl)
            slot = i;
    if (slot == RPC_TL_ENTRIES) /* evict; that channel stays held until client destroy */
        slot = tl_victim++ % RPC_TL_ENTRIES;
    tl_cache[slot] = (struct tl_entry){cl, cl->id, t};
    return t;
}

static void tl_forget(struct eleos_rpc_client *cl) {
    for (unsigned i = 0; i < RPC_TL_ENTRIES; i++)
        if (tl_cache[i].cl == cl && tl_cache[i].id == cl->id)
            tl_cache[i] = (struct tl_entry){0};
}

/* --- the exit path ---------------------------------------------------------------------- */

/* Writes a request's fields (valid_req has bounded fn and flags to 16 bits). */
static void put_req(struct rpc_req *rq, const struct eleos_rpc_req *r) {
    atomic_store_explicit(&rq->fn, (uint16_t)r->fn, memory_order_relaxed);
    atomic_store_explicit(&rq->flags, (uint16_t)r->flags, memory_order_relaxed);
    for (unsigned i = 0; i < ELEOS_RPC_NARGS; i++)
        atomic_store_explicit(&rq->args[i], r->args[i], memory_order_relaxed);
}

/* SUBMITTED: publishes request seq, whose fields are already in its slot. Release pairs
 * with the workers' acquire load of pub (pending): the fields, in the same line, are
 * visible once the mark is. */
static void publish(struct rpc_thread *t, uint64_t seq) {
    atomic_store_explicit(&t->req[seq & (t->cl->ring - 1)].pub, (uint32_t)(seq + 1),
                          memory_order_release);
}

static long do_ocall(struct rpc_thread *t, uint32_t op, uint32_t flags, uint64_t first,
                     uint64_t last) {
    struct rpc_exit_ctl *x = &t->ch->exit_ctl;
    atomic_store_explicit(&x->op, op, memory_order_relaxed);
    atomic_store_explicit(&x->flags, flags, memory_order_relaxed);
    atomic_store_explicit(&x->first, first, memory_order_relaxed);
    atomic_store_explicit(&x->last, last, memory_order_relaxed);
    own_add(&t->st->ocalls, 1);
    /* The OCALL itself orders everything (same thread on both sides). */
    return eleos_enclave_ocall(rpc_host_exit, t->ch);
}

/* One request on the exit path through the channel's exit slot. */
static int64_t exit_one(struct rpc_thread *t, const struct eleos_rpc_req *r, bool wake) {
    put_req(&t->ch->exit_req, r);
    return do_ocall(t, RPC_EXIT_ONE, wake ? RPC_EXIT_WAKE : 0, 0, 0);
}

/*
 * Runs every unclaimed request of the channel, plus the not yet published requests
 * [t->tail, new_tail) already written to their slots (never marked published), on the exit
 * path, and advances the trusted tail to new_tail. Returns how many *published* requests it
 * took back.
 */
static uint64_t take_back(struct rpc_thread *t, uint64_t new_tail, bool wake) {
    uint64_t h;
    for (;;) {
        if (!read_head(t, &h)) {
            /* The host corrupted head: we cannot tell which requests a worker holds. Run
             * the new ones ourselves and ignore whatever shows up in their slots. */
            own_add(&t->st->host_faults, 1);
            for (uint64_t s = t->tail; s != new_tail; s++) {
                struct rpc_req *rq = &t->req[s & (t->cl->ring - 1)];
                struct eleos_rpc_req r = {
                    .fn = atomic_load_explicit(&rq->fn, memory_order_relaxed),
                    .flags = atomic_load_explicit(&rq->flags, memory_order_relaxed)};
                for (unsigned i = 0; i < ELEOS_RPC_NARGS; i++)
                    r.args[i] = atomic_load_explicit(&rq->args[i], memory_order_relaxed);
                t->forced[s & (t->cl->ring - 1)] = exit_one(t, &r, wake);
                t->state[s & (t->cl->ring - 1)] = S_FORCED;
                /* Published all the same, so that workers do not stall at this slot once
                 * the host repairs head (it may run it again: the host's own doing). */
                publish(t, s);
            }
            t->tail = new_tail;
            return 0;
        }
        if (h == new_tail)
            return 0;
        /* Claim [h, new_tail) as a worker would: pairs with the workers' claim CAS. A
         * failure means a worker just took one; look again. */
        if (atomic_compare_exchange_strong_explicit(&t->ch->head, &h, new_tail,
                                                    memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    uint64_t old_tail = t->tail;
    /* [old_tail, new_tail) were never published and head is already past them. */
    t->tail = new_tail;
    do_ocall(t, RPC_EXIT_RANGE, wake ? RPC_EXIT_WAKE : 0, h, new_tail);
    /* Every slot we ran must be done now; one that is not was dropped by the host. */
    for (uint64_t s = h; s != new_tail; s++) {
        uint32_t slot = (uint32_t)(s & (t->cl->ring - 1));
        if (atomic_load_explicit(&t->resp[slot].done, memory_order_acquire) != s + 1) {
            own_add(&t->st->host_faults, 1);
            t->forced[slot] = -EIO;
            t->state[slot] = S_FORCED;
        }
    }
    return old_tail - h;
}

/* --- completion ------------------------------------------------------------------------- */

static bool try_complete(struct rpc_thread *t, uint64_t seq, int64_t *ret) {
    uint32_t slot = (uint32_t)(seq & (t->cl->ring - 1));
    if (t->state[slot] == S_FORCED) {
        *ret = t->forced[slot];
        return true;
    }
    /* Pairs with the release store of done by the worker or the exit path. */
    uint64_t d = atomic_load_explicit(&t->resp[slot].done, memory_order_acquire);
    if (d != seq + 1)
        return false;
    *ret = atomic_load_explicit(&t->resp[slot].ret, memory_order_relaxed);
    return true;
}

static void consume(struct rpc_thread *t, uint64_t seq) {
    uint32_t mask = t->cl->ring - 1;
    t->state[seq & mask] = S_CONSUMED;
    while (t->reap != t->tail && t->state[t->reap & mask] == S_CONSUMED) {
        t->state[t->reap & mask] = S_FREE;
        t->reap++;
    }
}

/* How long a call that cannot block may stay claimed but not done. */
#define DENIAL_NS 10e9

/* Rescues seq if no worker will run it: none awake, or unclaimed for too long. */
static void maybe_take_back(struct rpc_thread *t, uint64_t seq, uint64_t waited) {
    uint64_t h;
    uint64_t limit = atomic_load_explicit(&t->cl->reclaim_cycles, memory_order_relaxed);
    if (t->woke && limit < t->cl->grace_cycles)
        limit = t->cl->grace_cycles;
    bool late = waited >= limit;
    if (read_awake(t->cl) != 0 && !late)
        return;
    /* A call that cannot block and is still not done after DENIAL_NS was claimed by no
     * one or lied about (a head the host moved where we can take nothing back): it ends
     * with -EIO instead of holding the thread forever. */
    uint32_t slot = (uint32_t)(seq & (t->cl->ring - 1));
    bool denied = !t->mayblock[slot] && waited >= (uint64_t)(tsc_ghz() * DENIAL_NS);
    uint64_t n = 0;
    if (read_head(t, &h) && h <= seq)
        n = take_back(t, t->tail, true);
    else if (!denied)
        return; /* claimed: a worker is on it */
    if (denied && t->state[slot] == S_INFLIGHT) {
        own_add(&t->st->host_faults, 1);
        t->forced[slot] = -EIO;
        t->state[slot] = S_FORCED;
        return;
    }
    own_add(&t->st->reclaimed, n);
    if (late && n) {
        own_add(&t->st->unclaimed, n);
        t->timed_out = true;
    } else {
        t->woke = true; /* taken back because none was awake: the OCALL woke one */
    }
}

static int64_t wait_seq(struct rpc_thread *t, uint64_t seq) {
    int64_t r;
    if (try_complete(t, seq, &r))
        return r;
    uint64_t t0 = tsc_now();
    unsigned spins = 0;
    while (!try_complete(t, seq, &r)) {
        /* The clock only every few spins: rdtsc costs as much as a pause. */
        if ((++spins & 15) == 0) {
            uint64_t waited = tsc_now() - t0;
            if (waited >= t->cl->watch_cycles)
                maybe_take_back(t, seq, waited);
        }
        _mm_pause();
    }
    own_add(&t->st->wait_cycles, tsc_now() - t0);
    return r;
}

/* --- submission ------------------------------------------------------------------------- */

static bool valid_req(const struct eleos_rpc_req *r) {
    return r->fn < ELEOS_RPC_MAX_FNS && !(r->flags & ~(ELEOS_RPC_F_EXIT | ELEOS_RPC_F_MAYBLOCK));
}

static void count_bad_id(struct eleos_rpc_client *cl) {
    atomic_fetch_add_explicit(&cl->bad_ids, 1, memory_order_relaxed);
}

/* Publishes up to n requests; returns how many (0 when the ring is full). */
static unsigned submit_n(struct rpc_thread *t, const struct eleos_rpc_req *reqs, unsigned n,
                         uint64_t *tickets) {
    struct eleos_rpc_client *cl = t->cl;
    uint32_t mask = cl->ring - 1;
    uint64_t room = cl->ring - (t->tail - t->reap);
    if (n > room)
        n = (unsigned)room;
    if (n == 0)
        return 0;
    bool forced = !atomic_load_explicit(&cl->exitless, memory_order_relaxed);
    for (unsigned k = 0; k < n; k++)
        if (reqs[k].flags & ELEOS_RPC_F_EXIT)
            forced = true;
    bool to_workers = !forced && read_awake(cl) != 0;
    for (unsigned k = 0; k < n; k++) {
        uint64_t s = t->tail + k;
        put_req(&t->req[s & mask], &reqs[k]);
        t->state[s & mask] = S_INFLIGHT;
        t->mayblock[s & mask] = (reqs[k].flags & ELEOS_RPC_F_MAYBLOCK) != 0;
        if (tickets)
            tickets[k] = s;
        /* One at a time: a worker can start on the first while we write the rest. */
        if (to_workers)
            publish(t, s);
    }
    uint64_t new_tail = t->tail + n;
    own_add(&t->st->calls, n);
    if (n > 1)
        own_add(&t->st->batches, 1);
    if (to_workers) {
        own_add(&t->st->submitted, n);
        t->tail = new_tail;
    } else if (forced) {
        own_add(&t->st->exit_calls, n);
        own_add(&t->st->reclaimed, take_back(t, new_tail, false));
    } else {
        own_add(&t->st->no_worker, n);
        own_add(&t->st->reclaimed, take_back(t, new_tail, true));
        t->woke = true;
    }
    return n;
}

/* --- public calls ----------------------------------------------------------------------- */

int eleos_rpc_call(struct eleos_rpc_client *cl, const struct eleos_rpc_req *req, int64_t *ret) {
    if (!valid_req(req)) {
        count_bad_id(cl);
        return -EINVAL;
    }
    struct rpc_thread *t = self(cl, true);
    if (!t)
        return -ENOSPC;
    bool exitless = atomic_load_explicit(&cl->exitless, memory_order_relaxed) &&
                    !(req->flags & ELEOS_RPC_F_EXIT);
    int64_t r;
    if (!exitless) {
        own_add(&t->st->calls, 1);
        own_add(&t->st->exit_calls, 1);
        r = exit_one(t, req, false);
    } else if (read_awake(cl) == 0) {
        own_add(&t->st->calls, 1);
        own_add(&t->st->no_worker, 1);
        r = exit_one(t, req, true);
        t->woke = true;
    } else if (t->backoff) {
        t->backoff--;
        own_add(&t->st->calls, 1);
        own_add(&t->st->backoff, 1);
        r = exit_one(t, req, false);
    } else if (t->tail - t->reap == cl->ring) {
        own_add(&t->st->calls, 1);
        own_add(&t->st->ring_full, 1);
        r = exit_one(t, req, false);
    } else {
        uint64_t seq;
        t->timed_out = false;
        (void)submit_n(t, req, 1, &seq);
        r = wait_seq(t, seq);
        consume(t, seq);
        if (!t->timed_out)
            t->woke = false; /* a worker is running for us: back to the short reclaim */
        if (t->timed_out) {
            /* Workers are awake but not claiming: stop paying the reclaim wait per call. */
            if (t->backoff_len < RPC_BACKOFF_MIN)
                t->backoff_len = RPC_BACKOFF_MIN;
            t->backoff = t->backoff_len;
            if (t->backoff_len < RPC_BACKOFF_MAX)
                t->backoff_len *= 2;
        } else {
            t->backoff_len = RPC_BACKOFF_MIN;
        }
    }
    *ret = r;
    return 0;
}

int eleos_rpc_submit(struct eleos_rpc_client *cl, const struct eleos_rpc_req *req,
                     uint64_t *ticket) {
    int n = eleos_rpc_submit_batch(cl, req, 1, ticket);
    return n < 0 ? n : 0;
}

/* Validates a batch and returns the calling thread's channel; NULL with *err = -EINVAL (a
 * bad request, counted), -ENOSPC (no channel free) or 0 (empty batch: nothing to do). */
static struct rpc_thread *batch_thread(struct eleos_rpc_client *cl,
                                       const struct eleos_rpc_req *reqs, unsigned count,
                                       int *err) {
    *err = 0;
    for (unsigned i = 0; i < count; i++)
        if (!valid_req(&reqs[i])) {
            count_bad_id(cl);
            *err = -EINVAL;
            return NULL;
        }
    if (count == 0)
        return NULL;
    struct rpc_thread *t = self(cl, true);
    if (!t)
        *err = -ENOSPC;
    return t;
}

int eleos_rpc_submit_batch(struct eleos_rpc_client *cl, const struct eleos_rpc_req *reqs,
                           unsigned count, uint64_t *tickets) {
    int err;
    struct rpc_thread *t = batch_thread(cl, reqs, count, &err);
    if (!t)
        return err;
    unsigned n = submit_n(t, reqs, count, tickets);
    return n ? (int)n : -EAGAIN;
}

/* Checks a ticket of the calling thread: in flight and not yet redeemed. */
static struct rpc_thread *ticket_thread(struct eleos_rpc_client *cl, uint64_t ticket) {
    struct rpc_thread *t = self(cl, false);
    if (!t || ticket - t->reap >= t->tail - t->reap)
        return NULL;
    uint8_t s = t->state[ticket & (cl->ring - 1)];
    return (s == S_INFLIGHT || s == S_FORCED) ? t : NULL;
}

int eleos_rpc_poll(struct eleos_rpc_client *cl, uint64_t ticket, int64_t *ret) {
    struct rpc_thread *t = ticket_thread(cl, ticket);
    if (!t)
        return -EINVAL;
    int64_t r;
    if (!try_complete(t, ticket, &r)) {
        /* Polling callers are not spinning in wait_seq: rescue here too. */
        maybe_take_back(t, ticket, 0);
        if (!try_complete(t, ticket, &r))
            return -EAGAIN;
    }
    consume(t, ticket);
    *ret = r;
    return 0;
}

int eleos_rpc_wait(struct eleos_rpc_client *cl, uint64_t ticket, int64_t *ret) {
    struct rpc_thread *t = ticket_thread(cl, ticket);
    if (!t)
        return -EINVAL;
    *ret = wait_seq(t, ticket);
    consume(t, ticket);
    return 0;
}

int eleos_rpc_call_batch(struct eleos_rpc_client *cl, const struct eleos_rpc_req *reqs,
                         unsigned count, int64_t *rets) {
    int err;
    struct rpc_thread *t = batch_thread(cl, reqs, count, &err);
    if (!t)
        return err;
    /* Refill only once a quarter of the ring is free, so one doorbell covers many calls. */
    uint32_t refill = cl->ring / 4 ? cl->ring / 4 : 1;
    uint64_t first = t->tail;
    unsigned sub = 0, done = 0;
    while (done < count) {
        uint64_t room = cl->ring - (t->tail - t->reap);
        if (sub < count && (room >= refill || room >= count - sub || sub == done))
            sub += submit_n(t, reqs + sub, count - sub, NULL);
        if (done == sub) {
            /* The ring is full of this thread's older asynchronous requests: the rest goes
             * through the exit slot, one at a time. */
            for (; done < count; done++) {
                own_add(&t->st->calls, 1);
                own_add(&t->st->ring_full, 1);
                rets[done] = exit_one(t, &reqs[done], false);
            }
            break;
        }
        rets[done] = wait_seq(t, first + done);
        consume(t, first + done);
        done++;
        /* Collect whatever else already finished without spinning. */
        while (done < sub && try_complete(t, first + done, &rets[done])) {
            consume(t, first + done);
            done++;
        }
    }
    return 0;
}

void *eleos_rpc_bounce(struct eleos_rpc_client *cl, size_t *size) {
    struct rpc_thread *t = self(cl, true);
    if (!t)
        return NULL;
    if (size)
        *size = cl->bounce;
    return t->bounce;
}

/* Waits for (and discards) every outstanding request of t. */
static void drain(struct rpc_thread *t) {
    while (t->reap != t->tail) {
        uint64_t s = t->reap;
        if (t->state[s & (t->cl->ring - 1)] != S_CONSUMED)
            (void)wait_seq(t, s);
        consume(t, s);
    }
}

static void release(struct eleos_rpc_client *cl, struct rpc_thread *t) {
    drain(t);
    uint32_t c = t->chan_idx;
    cl->chan_seq[c] = t->tail;
    /* Pairs with the acquire CAS in attach: the next owner sees chan_seq[c]. */
    atomic_store_explicit(&cl->owner[c], NULL, memory_order_release);
    eleos_enclave_free(cl->enc, t);
}

void eleos_rpc_thread_detach(struct eleos_rpc_client *cl) {
    struct rpc_thread *t = self(cl, false);
    if (!t)
        return;
    tl_forget(cl);
    release(cl, t);
}

void eleos_rpc_client_destroy(struct eleos_rpc_client *cl) {
    if (!cl)
        return;
    tl_forget(cl);
    for (uint32_t c = 0; c < cl->channels; c++) {
        struct rpc_thread *t = atomic_load_explicit(&cl->owner[c], memory_order_acquire);
        if (t)
            release(cl, t);
    }
    struct eleos_enclave *enc = cl->enc;
    eleos_enclave_free(enc, cl->owner);
    eleos_enclave_free(enc, cl->chan_seq);
    eleos_enclave_free(enc, cl->chan_fenced);
    eleos_enclave_free(enc, cl->stats);
    eleos_enclave_free(enc, cl);
}

void eleos_rpc_client_stats(struct eleos_rpc_client *cl, struct eleos_rpc_client_stats *out) {
    memset(out, 0, sizeof *out);
    uint64_t submitted = 0;
    for (uint32_t c = 0; c < cl->channels; c++) {
        struct rpc_cstats *s = &cl->stats[c];
        out->calls += atomic_load_explicit(&s->calls, memory_order_relaxed);
        submitted += atomic_load_explicit(&s->submitted, memory_order_relaxed);
        out->exit_calls += atomic_load_explicit(&s->exit_calls, memory_order_relaxed);
        out->no_worker += atomic_load_explicit(&s->no_worker, memory_order_relaxed);
        out->ring_full += atomic_load_explicit(&s->ring_full, memory_order_relaxed);
        out->reclaimed += atomic_load_explicit(&s->reclaimed, memory_order_relaxed);
        out->unclaimed += atomic_load_explicit(&s->unclaimed, memory_order_relaxed);
        out->backoff += atomic_load_explicit(&s->backoff, memory_order_relaxed);
        out->ocalls += atomic_load_explicit(&s->ocalls, memory_order_relaxed);
        out->batches += atomic_load_explicit(&s->batches, memory_order_relaxed);
        out->host_faults += atomic_load_explicit(&s->host_faults, memory_order_relaxed);
        out->wait_cycles += atomic_load_explicit(&s->wait_cycles, memory_order_relaxed);
    }
    out->bad_ids = atomic_load_explicit(&cl->bad_ids, memory_order_relaxed);
    out->exitless = submitted - out->reclaimed;
    out->fallbacks = out->no_worker + out->ring_full + out->reclaimed + out->backoff;
}
