/*
 * enclave_ioq_ring.c — I/O queues, enclave side: lanes (rings with io_uring's layout in
 * untrusted memory), submission, validated reaping, waiting, and the executor choice.
 *
 * Ring indices: the enclave owns the SQ tail and the CQ head and keeps both in enclave
 * memory; it only writes them out. What it reads (the SQ head the host consumed up to, the
 * CQ tail the host produced up to) is checked against its own copy: more than a ring's worth
 * apart is a lie, counted and ignored, never used to index.
 *
 * Waiting: on the URING and BATCH executors a wait is one exit that submits and waits
 * together. On WORKER and SQPOLL completions arrive in the ring while the enclave runs, so a
 * wait first spins on the CQ tail (a bounded budget), and only exits to sleep when nothing
 * came. The executor choice (AUTO): a worker may be tried while the host reports a free
 * core and no contention (core_free, every POLICY_NS) by a shallow queue; whether it is
 * kept is measured (ioq_trial.h: completions per second on each executor).
 */
#include <errno.h>
#include <immintrin.h>
#include <string.h>

#include "common/tsc.h"
#include "eleos/sys.h"
#include "ioq/ioq_internal.h"
#include "ioq/ioq_trial.h"

#define POLICY_NS 100000000ull         /* how often AUTO reconsiders (the host's period) */
#define SPIN_NS 30000ull               /* a WORKER/SQPOLL wait spins this long, at most  */
#define POLICY_HOLD 3u                 /* periods a moderation change must hold          */
#define STALL_NS 10000ull              /* ... unless the poller takes nothing this long  */
#define OTHER_LANE_NS 1000000ull       /* a lane no longer current is still polled this  */
/* AUTO: a worker may be tried with this much of a core free (thousandths), by a queue with
 * at most this many operations in flight. A deeper queue already shares each exit among
 * many operations, so a poller can save little there and its trials cost more than they
 * find (eleos-kvs, 8-16 receives per queue, lost every one). */
#define WORKER_FREE_PERMILLE 300u
#define TRIAL_MAX_INFLIGHT 4u
#define WORKER_WAIT_PERMILLE 100u /* a worker waiting for a CPU 10% of the time */
/* AUTO moderation: on below this much idle CPU (thousandths of a core, all cores), off
 * above the second. */
#define MOD_ON_PERMILLE 300u
#define MOD_OFF_PERMILLE 600u

static uint64_t ns_to_tsc(const struct eleos_ioq *q, uint64_t ns) {
    return ns >= UINT64_MAX / (q->hz ? q->hz : 1) ? UINT64_MAX : ns * q->hz / 1000000000ull;
}

/* The executor AUTO starts new queues on: the last one a trial kept in this enclave
 * (enclave memory; queues of one program see the same machine), so that a short-lived
 * queue (a connection) does not pay for a trial of its own. */
static _Atomic int auto_hint = ELEOS_IOQ_EXEC_URING;

static uint64_t tsc_ns_of(const struct eleos_ioq *q, uint64_t t) {
    return (uint64_t)((unsigned __int128)t * 1000000000u / (q->hz ? q->hz : 1));
}

/* --- OCALLs ------------------------------------------------------------------------------------ */

long ioq_ocall(struct eleos_ioq *q, uint32_t op, uint32_t exec) {
    q->call->op = op;
    q->call->exec = exec;
    q->call->entries = q->entries;
    if (q->enc && eleos_enclave_in_enclave_mode())
        q->st.exits++;
    long r = eleos_enclave_ocall(ioq_host_call, q->call);
    return r < -ELEOS_SYS_ERRNO_MAX ? -EIO : r;
}

/* One exit that submits what lane l holds and, with GETEVENTS, waits for min completions. */
static void lane_enter(struct eleos_ioq *q, struct ioq_lane *l, uint32_t min, uint64_t ns,
                       uint32_t flags) {
    q->call->handle = l->handle;
    q->call->to_submit = l->sq_entries;
    q->call->min_complete = min;
    q->call->flags = flags;
    q->call->timeout_ns = ns;
    q->st.enters++;
    (void)ioq_ocall(q, IOQ_CALL_ENTER, l->exec);
    l->last_enter = tsc_now();
}

/* --- lanes ----------------------------------------------------------------------------------- */

static bool pow2(uint32_t v) {
    return v && !(v & (v - 1));
}

/* Checks a lane description against the enclave's range: every part lies outside it and is
 * big enough for the geometry, and the geometry is one the queue can use. */
static bool desc_ok(const struct eleos_ioq *q, const struct ioq_lane_desc *d, uint32_t exec) {
    if (d->exec != exec || !pow2(d->sq_entries) || !pow2(d->cq_entries) ||
        d->sq_entries > 32768 || d->cq_entries > 65536 || d->cq_entries < q->entries ||
        d->sq_entries < 8 || !d->ctl)
        return false;
    const struct {
        uint64_t a;
        uint64_t size;
        uint64_t align;
    } parts[] = {
        {d->sq_khead, 4, 4}, {d->sq_ktail, 4, 4}, {d->sq_kflags, 4, 4},
        {d->sq_array, 4ull * d->sq_entries, 4}, {d->sqes, 64ull * d->sq_entries, 8},
        {d->cq_khead, 4, 4}, {d->cq_ktail, 4, 4}, {d->cqes, 16ull * d->cq_entries, 8},
        {d->ctl, sizeof(struct ioq_svc_ctl), IOQ_LINE},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!parts[i].a || parts[i].a % parts[i].align)
            return false;
        if (q->enc && !eleos_enclave_outside(q->enc, (void *)(uintptr_t)parts[i].a,
                                             parts[i].size))
            return false;
    }
    return true;
}

int ioq_lane_open(struct eleos_ioq *q, enum eleos_ioq_exec exec) {
    struct ioq_lane *l = &q->lanes[exec];
    if (l->live)
        return 0;
    memset(&q->call->desc, 0, sizeof q->call->desc);
    long r = ioq_ocall(q, IOQ_CALL_SETUP, exec);
    if (r < 0)
        return (int)r;
    struct ioq_lane_desc d;
    if (eleos_copy_in(&d, &q->call->desc, sizeof d) || !desc_ok(q, &d, exec)) {
        q->st.host_faults++;
        q->call->handle = d.handle;
        (void)ioq_ocall(q, IOQ_CALL_RELEASE, exec);
        return -EIO;
    }
    memset(l, 0, sizeof *l);
    l->exec = exec;
    l->sq_entries = d.sq_entries;
    l->cq_entries = d.cq_entries;
    l->sq_khead = (_Atomic uint32_t *)(uintptr_t)d.sq_khead;
    l->sq_ktail = (_Atomic uint32_t *)(uintptr_t)d.sq_ktail;
    l->sq_kflags = (_Atomic uint32_t *)(uintptr_t)d.sq_kflags;
    l->sq_array = (uint32_t *)(uintptr_t)d.sq_array;
    l->sqes = (struct io_uring_sqe *)(uintptr_t)d.sqes;
    l->cq_khead = (_Atomic uint32_t *)(uintptr_t)d.cq_khead;
    l->cq_ktail = (_Atomic uint32_t *)(uintptr_t)d.cq_ktail;
    l->cqes = (struct io_uring_cqe *)(uintptr_t)d.cqes;
    l->ctl = (struct ioq_svc_ctl *)(uintptr_t)d.ctl;
    l->handle = d.handle;
    /* Our indices start where the host says the rings are now, once. */
    l->sq_tail = l->sq_published = atomic_load_explicit(l->sq_ktail, memory_order_acquire);
    l->cq_head = atomic_load_explicit(l->cq_khead, memory_order_acquire);
    l->live = true;
    return 0;
}

void ioq_lane_close(struct eleos_ioq *q, struct ioq_lane *l) {
    q->call->handle = l->handle;
    (void)ioq_ocall(q, IOQ_CALL_RELEASE, l->exec);
    l->live = false;
}

/* AUTO's first executor: URING (BATCH without io_uring), or WORKER where a trial in this
 * enclave kept it and a worker runs. */
static enum eleos_ioq_exec auto_start(struct eleos_ioq *q) {
    ioq_trial_init(&q->trial, tsc_ns_of(q, tsc_now()));
    if (ioq_lane_open(q, ELEOS_IOQ_EXEC_URING))
        return ELEOS_IOQ_EXEC_BATCH;
    if (atomic_load_explicit(&auto_hint, memory_order_relaxed) != ELEOS_IOQ_EXEC_WORKER ||
        ioq_lane_open(q, ELEOS_IOQ_EXEC_WORKER))
        return ELEOS_IOQ_EXEC_URING;
    struct ioq_lane *w = &q->lanes[ELEOS_IOQ_EXEC_WORKER];
    if (atomic_load_explicit(&w->ctl->worker_state, memory_order_relaxed) == IOQ_WORKER_NONE) {
        ioq_lane_close(q, w);
        return ELEOS_IOQ_EXEC_URING;
    }
    return ELEOS_IOQ_EXEC_WORKER;
}

int ioq_lanes_init(struct eleos_ioq *q) {
    q->hz = (uint64_t)(tsc_ghz() * 1e9);
    q->spin_budget = ns_to_tsc(q, SPIN_NS);
    q->pol_start = tsc_now();
    enum eleos_ioq_exec want = q->forced;
    if (want == ELEOS_IOQ_EXEC_AUTO)
        want = auto_start(q);
    int r = ioq_lane_open(q, want);
    if (r == -EIO)
        return r;
    if (r)
        return -ENOSYS;
    if (want == ELEOS_IOQ_EXEC_WORKER &&
        atomic_load_explicit(&q->lanes[want].ctl->worker_state, memory_order_relaxed) ==
            IOQ_WORKER_NONE) {
        ioq_lane_close(q, &q->lanes[want]); /* no service runs: nobody would submit */
        return -ENOSYS;
    }
    q->avail[ELEOS_IOQ_EXEC_URING] = q->lanes[ELEOS_IOQ_EXEC_URING].live;
    q->avail[want] = true;
    q->cur = want;
    return 0;
}

/* An SQE to fill in lane l, or NULL when the ring is full even after handing it over. */
struct io_uring_sqe *ioq_sqe_get(struct eleos_ioq *q, struct ioq_lane *l) {
    for (int attempt = 0; attempt < 2; attempt++) {
        uint32_t head = atomic_load_explicit(l->sq_khead, memory_order_acquire);
        uint32_t used = l->sq_tail - head;
        /* A head that never was: treated as a full ring, so it costs an enter, which lets a
         * host that lied once put it right (nothing else enters a queue with nothing
         * outstanding, and it would refuse every operation from then on). */
        if (used > l->sq_entries) {
            q->st.host_faults++;
        } else if (used < l->sq_entries) {
            uint32_t idx = l->sq_tail & (l->sq_entries - 1);
            struct io_uring_sqe *sqe = &l->sqes[idx];
            memset(sqe, 0, sizeof *sqe);
            l->sq_array[idx] = idx;
            l->sq_tail++;
            return sqe;
        }
        if (eleos_ioq_submit(q) < 0 || (l->exec != ELEOS_IOQ_EXEC_URING &&
                                        l->exec != ELEOS_IOQ_EXEC_BATCH))
            return NULL;
        lane_enter(q, l, 0, 0, 0);
    }
    return NULL;
}

/* --- submission ----------------------------------------------------------------------------- */

/* Makes l's new SQEs visible; returns how many. */
static uint32_t lane_publish(struct eleos_ioq *q, struct ioq_lane *l) {
    uint32_t n = l->sq_tail - l->sq_published;
    if (!n)
        return 0;
    atomic_store_explicit(l->sq_ktail, l->sq_tail, memory_order_release);
    l->sq_published = l->sq_tail;
    q->st.by_exec[l->exec] += n;
    return n;
}

/* After publishing on a polled lane: wake the poller if it went to sleep. The fence orders
 * our tail store before the state load, against the poller's state store and tail load. */
static void lane_kick(struct eleos_ioq *q, struct ioq_lane *l) {
    atomic_thread_fence(memory_order_seq_cst);
    if (l->exec == ELEOS_IOQ_EXEC_SQPOLL) {
        if (atomic_load_explicit(l->sq_kflags, memory_order_relaxed) & IORING_SQ_NEED_WAKEUP) {
            q->st.wakes++;
            lane_enter(q, l, 0, 0, IOQ_ENTER_SQ_WAKEUP);
        }
        return;
    }
    uint32_t st = atomic_load_explicit(&l->ctl->worker_state, memory_order_relaxed);
    if (st == IOQ_WORKER_SLEEPING) {
        q->st.wakes++;
        q->call->handle = l->handle;
        (void)ioq_ocall(q, IOQ_CALL_WAKE, l->exec);
    } else if (st != IOQ_WORKER_AWAKE) {
        lane_enter(q, l, 0, 0, 0); /* no worker: submit it ourselves */
    }
}

int eleos_ioq_submit(struct eleos_ioq *q) {
    struct ioq_lane *l = &q->lanes[q->cur];
    uint32_t n = lane_publish(q, l);
    if (!n)
        return 0;
    if (l->exec == ELEOS_IOQ_EXEC_URING || l->exec == ELEOS_IOQ_EXEC_BATCH)
        lane_enter(q, l, 0, 0, 0);
    else
        lane_kick(q, l);
    return (int)n;
}

/* Submits where a failure needs no handling (the operations stay queued for the next). */
static void submit_quiet(struct eleos_ioq *q) {
    int r = eleos_ioq_submit(q);
    (void)r;
}

/* --- reaping ------------------------------------------------------------------------------ */

/* Issues a migrating operation again, as it was, on the current lane (its bounce and tag
 * stay); false if that lane has no room (then it completes as cancelled). */
static bool reissue(struct eleos_ioq *q, struct ioq_op *op) {
    struct ioq_lane *to = &q->lanes[q->cur];
    if (op->lane == q->cur)
        return false;
    struct io_uring_sqe *sqe = ioq_sqe_get(q, to);
    if (!sqe)
        return false;
    *sqe = op->sqe;
    q->lanes[op->lane].inflight--;
    op->lane = (uint8_t)q->cur;
    op->migrating = false;
    to->inflight++;
    return true;
}

/* Reaps up to max completions of lane l into out; checks the tail, then each tag. */
static unsigned lane_reap(struct eleos_ioq *q, struct ioq_lane *l, struct eleos_ioq_cqe *out,
                          unsigned max) {
    uint32_t tail = atomic_load_explicit(l->cq_ktail, memory_order_acquire);
    uint32_t avail = tail - l->cq_head;
    if (avail > l->cq_entries) {
        q->st.host_faults++;
        return 0;
    }
    unsigned n = 0;
    for (; avail && n < max; avail--) {
        const volatile struct io_uring_cqe *c = &l->cqes[l->cq_head & (l->cq_entries - 1)];
        uint64_t tag = c->user_data;
        int32_t res = c->res;
        l->cq_head++;
        uint32_t slot = (uint32_t)tag;
        struct ioq_op *op = slot < q->entries ? &q->ops[slot] : NULL;
        if (op && (tag >> 32) == 0)
            continue; /* the answer to a migration's cancel: nothing to deliver */
        if (!op || op->state == OP_FREE || op->gen != (uint32_t)(tag >> 32) ||
            op->lane != l->exec) {
            q->st.host_faults++;
            continue;
        }
        if (op->migrating && res == -ECANCELED && !q->closing && reissue(q, op))
            continue;
        op->migrating = false;
        ioq_op_complete(q, op, res, &out[n++]);
    }
    atomic_store_explicit(l->cq_khead, l->cq_head, memory_order_release);
    return n;
}

static int reap_all(struct eleos_ioq *q, struct eleos_ioq_cqe *cqes, unsigned max) {
    unsigned n = 0;
    for (unsigned e = 1; e < ELEOS_IOQ_NEXEC && n < max; e++) {
        struct ioq_lane *l = &q->lanes[e];
        if (l->live && (l->inflight || e == (unsigned)q->cur))
            n += lane_reap(q, l, cqes + n, max - n);
    }
    return (int)n;
}

int eleos_ioq_reap(struct eleos_ioq *q, struct eleos_ioq_cqe *cqes, unsigned max) {
    ioq_rx_rewind(q); /* the data of the last call's completions is given up now */
    return reap_all(q, cqes, max);
}

/* --- the executor choice ----------------------------------------------------------------------- */

/*
 * Whether a worker may be tried, from what the host reports (untrusted: a lie only costs
 * speed): on URING, while a core is free (idle CPU, counting a spinning worker's as idle: it
 * yields to anyone else) and the worker's threads do not wait for a CPU (a loaded machine,
 * where every spin steals from the app). On WORKER those readings describe the worker's own
 * polling, so there only the trials decide (they try URING again, ioq_trial.h), unless the
 * worker went away. SQPOLL's poller cannot yield, so the choice leaves it to be forced.
 */
static bool worker_exists(const struct eleos_ioq *q) {
    struct ioq_svc_ctl *ctl = q->lanes[q->cur].ctl;
    return q->avail[ELEOS_IOQ_EXEC_URING] && ctl &&
           atomic_load_explicit(&ctl->worker_state, memory_order_relaxed) != IOQ_WORKER_NONE;
}

/* The host's reading of a free core (taken every POLICY_NS, whatever the executor). */
static bool core_free(struct eleos_ioq *q) {
    struct ioq_svc_ctl *ctl = q->lanes[q->cur].ctl;
    if (!ctl)
        return false;
    uint32_t ncpus = atomic_load_explicit(&ctl->ncpus, memory_order_relaxed);
    uint64_t cap = (ncpus ? ncpus : 1) * 1000ull;
    uint64_t free = (uint64_t)atomic_load_explicit(&ctl->idle_permille, memory_order_relaxed) +
                    atomic_load_explicit(&ctl->spin_permille, memory_order_relaxed);
    if (free > cap)
        free = cap;
    bool contended = atomic_load_explicit(&ctl->wait_permille, memory_order_relaxed) >=
                     WORKER_WAIT_PERMILLE;
    return !contended && free >= WORKER_FREE_PERMILLE;
}

bool eleos_ioq_poller_starved(const struct eleos_ioq *q) {
    const struct ioq_lane *l = &q->lanes[q->cur];
    if (l->exec != ELEOS_IOQ_EXEC_WORKER || !l->ctl)
        return false;
    return atomic_load_explicit(&l->ctl->wait_permille, memory_order_relaxed) >=
           WORKER_WAIT_PERMILLE;
}

/* Asks lane l to cancel each operation it has in flight; each comes back cancelled (or
 * done) and is issued again on the current lane (reissue), so no operation is left on a
 * lane the queue no longer waits on. The cancels carry generation 0: no operation has it. */
static void migrate_from(struct eleos_ioq *q, struct ioq_lane *l) {
    for (uint32_t i = 0; i < q->entries && l->inflight; i++) {
        struct ioq_op *op = &q->ops[i];
        if (op->state == OP_FREE || op->lane != l->exec || op->migrating || op->kind == K_CANCEL)
            continue;
        struct io_uring_sqe *sqe = ioq_sqe_get(q, l);
        if (!sqe)
            break;
        io_uring_prep_cancel64(sqe, (uint64_t)op->gen << 32 | i, 0);
        sqe->user_data = i; /* generation 0 */
        op->migrating = true;
    }
    if (lane_publish(q, l)) {
        if (l->exec == ELEOS_IOQ_EXEC_URING || l->exec == ELEOS_IOQ_EXEC_BATCH)
            lane_enter(q, l, 0, 0, 0);
        else
            lane_kick(q, l);
    }
}

static int switch_to(struct eleos_ioq *q, enum eleos_ioq_exec e) {
    if (e == q->cur)
        return 0;
    int r = ioq_lane_open(q, e);
    if (r)
        return r;
    submit_quiet(q); /* what the old lane holds goes out on it */
    struct ioq_lane *old = &q->lanes[q->cur];
    q->cur = e;
    q->avail[e] = true;
    migrate_from(q, old);
    return 0;
}

/* AUTO moderation follows the machine's idle CPU as the host's monitor reports it (a lie
 * only costs speed or latency, bounded by moderation_ns). No monitor: nothing is known, so
 * no moderation. A change must hold POLICY_HOLD periods: a load hovering at a threshold
 * must not flip it at every reading. */
static void moderation_tick(struct eleos_ioq *q) {
    if (q->mod_mode != ELEOS_IOQ_MOD_AUTO)
        return;
    int64_t idle = eleos_ioq_host_idle(q);
    if (idle < 0) {
        q->mod_on = false;
        return;
    }
    bool busy = idle < (q->mod_on ? MOD_OFF_PERMILLE : MOD_ON_PERMILLE);
    q->mod_ticks = busy == q->mod_pending ? q->mod_ticks + 1 : 1;
    q->mod_pending = busy;
    if (busy != q->mod_on && q->mod_ticks >= POLICY_HOLD)
        q->mod_on = busy;
}

bool eleos_ioq_moderating(const struct eleos_ioq *q) {
    return q->mod_mode == ELEOS_IOQ_MOD_ON || (q->mod_mode == ELEOS_IOQ_MOD_AUTO && q->mod_on);
}

int64_t eleos_ioq_host_idle(const struct eleos_ioq *q) {
    struct ioq_svc_ctl *ctl = q->lanes[q->cur].ctl;
    if (!ctl || atomic_load_explicit(&ctl->worker_state, memory_order_relaxed) == IOQ_WORKER_NONE)
        return -1;
    uint64_t idle = (uint64_t)atomic_load_explicit(&ctl->idle_permille, memory_order_relaxed) +
                    atomic_load_explicit(&ctl->spin_permille, memory_order_relaxed);
    return idle > INT32_MAX ? INT32_MAX : (int64_t)idle; /* a host value: bounded */
}

int eleos_ioq_set_moderation(struct eleos_ioq *q, enum eleos_ioq_moderation mode) {
    if ((unsigned)mode > ELEOS_IOQ_MOD_ON)
        return -EINVAL;
    q->mod_mode = mode;
    return 0;
}

/* Every wait: the trial's step (cheap); every POLICY_NS: the host's readings. */
static void policy_tick(struct eleos_ioq *q) {
    uint64_t now = tsc_now();
    if (now - q->pol_start >= ns_to_tsc(q, POLICY_NS)) {
        moderation_tick(q);
        if (q->forced == ELEOS_IOQ_EXEC_AUTO)
            q->core_free = core_free(q);
        q->depth = q->depth_peak;
        q->depth_peak = 0;
        q->pol_start = now;
    }
    if (q->forced != ELEOS_IOQ_EXEC_AUTO)
        return;
    uint64_t won = q->trial.won;
    bool ok = worker_exists(q) &&
              (q->cur == ELEOS_IOQ_EXEC_WORKER ||
               (q->core_free && q->depth <= TRIAL_MAX_INFLIGHT));
    enum eleos_ioq_exec t =
        ioq_trial_step(&q->trial, tsc_ns_of(q, now), q->st.completions, q->cur, ok);
    if (t != q->cur && switch_to(q, t) == 0)
        q->st.switches++;
    if (q->trial.won != won)
        atomic_store_explicit(&auto_hint, (int)q->cur, memory_order_relaxed);
}

enum eleos_ioq_exec eleos_ioq_executor(const struct eleos_ioq *q) {
    return q->cur;
}

int eleos_ioq_set_executor(struct eleos_ioq *q, enum eleos_ioq_exec exec) {
    if ((unsigned)exec >= ELEOS_IOQ_NEXEC)
        return -EINVAL;
    if (exec == ELEOS_IOQ_EXEC_WORKER) {
        struct ioq_svc_ctl *ctl = q->lanes[q->cur].ctl;
        if (atomic_load_explicit(&ctl->worker_state, memory_order_relaxed) == IOQ_WORKER_NONE)
            return -ENOSYS;
    }
    if (exec != ELEOS_IOQ_EXEC_AUTO && switch_to(q, exec))
        return -ENOSYS; /* the executor in force stays, and so does the choice's mode */
    if (exec == ELEOS_IOQ_EXEC_AUTO && q->forced != ELEOS_IOQ_EXEC_AUTO)
        ioq_trial_init(&q->trial, tsc_ns_of(q, tsc_now())); /* a fresh schedule */
    q->forced = exec;
    return 0;
}

/* --- waiting ----------------------------------------------------------------------------- */

/* Spins on lane l's CQ for at most the budget; the number reaped. */
static unsigned lane_spin(struct eleos_ioq *q, struct ioq_lane *l, struct eleos_ioq_cqe *out,
                          unsigned max, uint64_t deadline) {
    uint64_t start = tsc_now(), end = start + q->spin_budget;
    if (end > deadline)
        end = deadline;
    unsigned n = 0;
    uint64_t now = start, stall = ns_to_tsc(q, STALL_NS);
    uint32_t head = atomic_load_explicit(l->sq_khead, memory_order_relaxed);
    uint64_t moved = start;
    while (!n && now < end) {
        for (int i = 0; i < 16; i++)
            _mm_pause();
        n = lane_reap(q, l, out, max);
        now = tsc_now();
        /* SQEs the poller has not taken for 10 us: it has no CPU (ours, perhaps), and
         * spinning on would only keep it from one. */
        uint32_t h = atomic_load_explicit(l->sq_khead, memory_order_relaxed);
        if (h != head || h == l->sq_published)
            moved = now, head = h;
        else if (now - moved > stall)
            break;
    }
    if (n)
        q->st.spins++;
    return n;
}

/* Lanes that are no longer current but hold operations still need an exit now and then
 * (deferred completions are posted only on entry). */
static unsigned poll_old_lanes(struct eleos_ioq *q, struct eleos_ioq_cqe *out, unsigned max) {
    unsigned n = 0;
    uint64_t now = tsc_now(), every = ns_to_tsc(q, OTHER_LANE_NS);
    for (unsigned e = 1; e < ELEOS_IOQ_NEXEC; e++) {
        struct ioq_lane *l = &q->lanes[e];
        if (e == (unsigned)q->cur || !l->live || !l->inflight || n >= max)
            continue;
        if ((e == ELEOS_IOQ_EXEC_URING || e == ELEOS_IOQ_EXEC_BATCH) &&
            now - l->last_enter > every)
            lane_enter(q, l, 0, 0, IOQ_ENTER_GETEVENTS);
        n += lane_reap(q, l, out + n, max - n);
    }
    return n;
}

static bool others_inflight(const struct eleos_ioq *q) {
    for (unsigned e = 1; e < ELEOS_IOQ_NEXEC; e++)
        if (e != (unsigned)q->cur && q->lanes[e].live && q->lanes[e].inflight)
            return true;
    return false;
}

/* One round of waiting on the current lane: spin (polled executors) then one exit. */
/* The lane a wait blocks on: the current one, unless only others hold operations (ones
 * being migrated, say): waiting on an empty lane would return at once, again and again. */
static struct ioq_lane *wait_lane(struct eleos_ioq *q) {
    struct ioq_lane *l = &q->lanes[q->cur];
    for (unsigned e = 1; !l->inflight && e < ELEOS_IOQ_NEXEC; e++)
        if (q->lanes[e].live && q->lanes[e].inflight)
            return &q->lanes[e];
    return l;
}

static unsigned wait_round(struct eleos_ioq *q, struct eleos_ioq_cqe *out, unsigned max,
                           unsigned need, uint64_t deadline) {
    struct ioq_lane *cur = &q->lanes[q->cur];
    if (lane_publish(q, cur) && cur->exec != ELEOS_IOQ_EXEC_URING &&
        cur->exec != ELEOS_IOQ_EXEC_BATCH)
        lane_kick(q, cur);
    struct ioq_lane *l = wait_lane(q);
    bool polled = l->exec == ELEOS_IOQ_EXEC_WORKER || l->exec == ELEOS_IOQ_EXEC_SQPOLL;
    unsigned n = 0;
    if (polled) {
        n = lane_spin(q, l, out, max, deadline);
        if (n >= need)
            return n;
    }
    uint64_t now = tsc_now();
    uint64_t ns = deadline == UINT64_MAX ? UINT64_MAX
                                         : (deadline > now ? (deadline - now) * 1000000000ull /
                                                                 (q->hz ? q->hz : 1)
                                                           : 0);
    if (others_inflight(q) && ns > OTHER_LANE_NS)
        ns = OTHER_LANE_NS;
    uint32_t min = need - n;
    if (min > l->inflight)
        min = l->inflight;
    lane_enter(q, l, min, ns, IOQ_ENTER_GETEVENTS);
    if (l != cur) /* what the current lane holds was published; hand it over too */
        lane_enter(q, cur, 0, 0, 0);
    return n + lane_reap(q, l, out + n, max - n);
}

/* Waits until n reaches min (capped at what is outstanding) or the deadline passes; with
 * poll, hands over what is queued and takes what is ready, once. */
static unsigned wait_until(struct eleos_ioq *q, struct eleos_ioq_cqe *cqes, unsigned max,
                           unsigned n, unsigned min, uint64_t deadline, bool poll) {
    while (n < max) {
        unsigned need = min > n ? min - n : 0;
        if (need > q->outstanding)
            need = q->outstanding;
        if (!need || poll) {
            struct ioq_lane *l = &q->lanes[q->cur];
            int sub = eleos_ioq_submit(q);
            /* URING posts completions only on entry, BATCH runs ops only then: a poll
             * that wants something must enter once, even with nothing to submit. */
            if (sub == 0 && need && l->inflight &&
                (l->exec == ELEOS_IOQ_EXEC_URING || l->exec == ELEOS_IOQ_EXEC_BATCH))
                lane_enter(q, l, 0, 0, IOQ_ENTER_GETEVENTS);
            n += (unsigned)reap_all(q, cqes + n, max - n);
            break;
        }
        n += wait_round(q, cqes + n, max - n, need, deadline);
        n += poll_old_lanes(q, cqes + n, max - n);
        if (n >= min || tsc_now() >= deadline)
            break;
    }
    return n;
}

/* How many completions a moderated wait holds out for (ioq_mod.h), at least min, at most
 * what fits and what is outstanding; min itself when not moderating. */
static unsigned moderation_want(const struct eleos_ioq *q, unsigned max, unsigned n,
                                unsigned min) {
    enum eleos_ioq_exec e = q->cur;
    if (!eleos_ioq_moderating(q) || (e != ELEOS_IOQ_EXEC_URING && e != ELEOS_IOQ_EXEC_BATCH))
        return min;
    unsigned want = ioq_mod_want(&q->mod, n);
    if (want > max)
        want = max;
    if (want > n + q->outstanding)
        want = n + q->outstanding;
    return want > min ? want : min;
}

int eleos_ioq_wait(struct eleos_ioq *q, struct eleos_ioq_cqe *cqes, unsigned max, unsigned min,
                   uint64_t timeout_ns) {
    if (!cqes || !max)
        return -EINVAL;
    if (min > max)
        min = max;
    if (q->outstanding > q->depth_peak) /* before the reap: how deep the queue runs */
        q->depth_peak = q->outstanding;
    unsigned n = (unsigned)eleos_ioq_reap(q, cqes, max); /* rewinds the receive area */
    ioq_mod_next_wave(&q->mod);
    uint64_t start = tsc_now();
    uint64_t deadline = timeout_ns == UINT64_MAX ? UINT64_MAX : start + ns_to_tsc(q, timeout_ns);
    unsigned want = timeout_ns && min ? moderation_want(q, max, n, min) : min;
    if (want > min) {
        uint64_t bound = start + ns_to_tsc(q, q->mod_ns);
        q->st.moderated++;
        n = wait_until(q, cqes, max, n, want, bound < deadline ? bound : deadline, false);
        if (n < want)
            q->st.mod_timeouts++;
    }
    if (want <= min || (n < min && tsc_now() < deadline))
        n = wait_until(q, cqes, max, n, min, deadline, timeout_ns == 0);
    if (min && timeout_ns)
        ioq_mod_learn(&q->mod, n, want > min ? want : 0);
    policy_tick(q);
    return (int)n;
}
