/*
 * SUVM's page cache follows the platform EPC (docs/suvm.md, "Sharing the EPC").
 *
 * The paper's SUVM "coordinates its page cache size with the SGX driver": an enclave whose
 * cache is sized for a whole EPC makes everyone thrash once other enclaves share it. Here the
 * platform tells each enclave its share (eleos_enclave_epc_share: min(max, max-min fair
 * share)); a coordinated instance sizes its cache so that the enclave's whole footprint fits
 * it:
 *
 *     cache = share - (footprint - cache frames in use) - one chunk of headroom
 *
 * where the footprint is every ELRANGE page holding data, resident or swapped out (the
 * emulator's own counters), so the rest of the heap — SUVM's metadata, the application's
 * trusted data — is measured, not estimated, and does not move when the platform pages the
 * enclave. Only frames handed out at least once count as the cache's part: a fresh chunk
 * commits no EPC page, and counting it would let every grow justify the next.
 *
 * When. No host polling and no ECALL: the size is checked on SUVM's own paths — every fault,
 * every 256th hit of a thread, every allocation, every pass of the background evictor — and
 * recomputed when the platform's generation moved (an enclave came or went, a max changed)
 * or COORD_PERIOD_NS passed since the last recompute (the heap grows without any generation
 * change, and a host may freeze the generation). A change is applied at the first check
 * after it: within one evictor nap (at most 20 ms) when the evictor runs, else at the next
 * fault or allocation; an idle instance without an evictor keeps its size until it is used
 * (the platform's reclaim takes its pages meanwhile, which costs it nothing until then).
 *
 * Trust. The share and the generation come from a table any process of the user can
 * rewrite. The share is clamped to [0, min(max, capacity)] (both kept by the emulator) and
 * the result to [one chunk, cache_max_size], so the worst a host can do is make the cache
 * small (slow) or as large as configured (EPC paging, slow): never a size SUVM cannot live
 * with. A frozen generation only delays a change to the next period; a generation that
 * changes on every look costs one recompute per check, which the period does not bound, but
 * a resize happens only when the size really moves (hysteresis below).
 *
 * Pins. A shrink evicts the retired frames' pages; a pinned one cannot go. A check on an
 * enclave thread waits SUVM_COORD_WAIT_FAULT_NS for pins, the evictor's (a host thread with
 * no pins of its own) SUVM_COORD_WAIT_EVICTOR_NS; then the shrink is undone (-EBUSY,
 * counted in resize_busy) and retried COORD_RETRY_NS later.
 */
#include <errno.h>

#include "common/tsc.h"
#include "suvm/suvm_internal.h"

/* Recompute at least this often: the heap's growth changes no generation. */
#define COORD_PERIOD_NS 50000000ull
/* After a refused shrink (pinned pages) or a concurrent resize, try again this much later. */
#define COORD_RETRY_NS 1000000ull
/* Left free under the share: the platform reclaims enclaves over their share, and a page or
 * two of heap growth between checks should not make it. One chunk (256 KiB). */
#define COORD_HEADROOM_FRAMES SUVM_CHUNK_FRAMES
/* Grow only when the fit exceeds the size by this much: a footprint that wobbles by a few
 * pages must not make the cache grow and shrink by a chunk at every check. */
#define COORD_GROW_SLACK_FRAMES (2u * SUVM_CHUNK_FRAMES)

static uint64_t ns_to_cycles(uint64_t ns) {
    return (uint64_t)((double)ns * tsc_ghz());
}

/* The cache (frames, a chunk multiple) that fits st's share; alone: its max instead. */
static uint32_t coord_fit(struct eleos_suvm *s, const struct eleos_epc_status *st, bool alone) {
    uint64_t max = st->max < st->capacity ? st->max : st->capacity;
    uint64_t share = alone || st->share > max ? max : st->share;
    uint64_t foot = st->current + st->swapped;
    uint64_t cache = atomic_load_explicit(&s->touched_frames, memory_order_relaxed);
    uint64_t other = foot > cache ? foot - cache : 0;
    uint64_t fit = share > other + COORD_HEADROOM_FRAMES ? share - other - COORD_HEADROOM_FRAMES
                                                         : 0;
    fit -= fit % SUVM_CHUNK_FRAMES;
    if (fit < SUVM_CHUNK_FRAMES)
        fit = SUVM_CHUNK_FRAMES;
    if (fit > s->max_frames)
        fit = s->max_frames;
    atomic_store_explicit(&s->coord_share, share, memory_order_relaxed);
    atomic_store_explicit(&s->coord_other, other, memory_order_relaxed);
    atomic_store_explicit(&s->coord_target, fit, memory_order_relaxed);
    return (uint32_t)fit;
}

uint32_t suvm_coord_initial(struct eleos_suvm *s) {
    bool auto_size = s->cfg.cache_size == ELEOS_SUVM_CACHE_AUTO;
    enum eleos_suvm_sizing z = s->cfg.sizing;
    s->coord = s->enc && (z == ELEOS_SUVM_SIZING_COORDINATED ||
                          (z == ELEOS_SUVM_SIZING_DEFAULT && auto_size));
    uint32_t n = (uint32_t)(s->cfg.cache_size / SUVM_CHUNK_SIZE * SUVM_CHUNK_FRAMES);
    struct eleos_epc_status st;
    bool have = s->enc && eleos_enclave_epc_status(s->enc, &st) == 0;
    if (auto_size)
        n = have ? coord_fit(s, &st, !s->coord) : s->max_frames;
    if (s->coord) {
        /* An explicit starting size is checked at the first fault; an auto one is fresh. */
        atomic_store_explicit(&s->coord_gen, have ? st.generation : 0, memory_order_relaxed);
        atomic_store_explicit(&s->coord_due,
                              auto_size && have ? tsc_now() + ns_to_cycles(COORD_PERIOD_NS) : 0,
                              memory_order_relaxed);
    }
    return n;
}

/* Recomputes and resizes; the caller holds coord_busy. Returns when the next check is due. */
static uint64_t coord_apply(struct eleos_suvm *s, uint64_t wait_ns, uint64_t now) {
    struct eleos_epc_status st;
    if (eleos_enclave_epc_status(s->enc, &st) != 0)
        return now + ns_to_cycles(COORD_PERIOD_NS); /* a forked child's copy: nothing to do */
    atomic_store_explicit(&s->coord_gen, st.generation, memory_order_relaxed);
    suvm_stat_add(s, ST_COORD_RECOMPUTES, 1);
    uint32_t fit = coord_fit(s, &st, false);
    uint32_t n = atomic_load_explicit(&s->nframes, memory_order_relaxed);
    if (fit >= n && fit < n + COORD_GROW_SLACK_FRAMES && fit != s->max_frames)
        return now + ns_to_cycles(COORD_PERIOD_NS);
    if (fit == n)
        return now + ns_to_cycles(COORD_PERIOD_NS);
    int r = suvm_resize_frames(s, fit, false, wait_ns);
    if (r == -EBUSY)
        suvm_stat_add(s, ST_RESIZE_BUSY, 1);
    /* -EBUSY (pinned pages), -EAGAIN (a resize in progress), -ENOMEM (no heap to grow):
     * the size stays; try again soon. */
    return now + ns_to_cycles(r ? COORD_RETRY_NS : COORD_PERIOD_NS);
}

void suvm_coord_check_slow(struct eleos_suvm *s, uint64_t wait_ns) {
    uint64_t gen = eleos_enclave_epc_generation(s->enc);
    uint64_t now = tsc_now();
    if (gen == atomic_load_explicit(&s->coord_gen, memory_order_relaxed) &&
        now < atomic_load_explicit(&s->coord_due, memory_order_relaxed))
        return;
    /* One thread recomputes; the others go on with the size as it is. */
    if (atomic_exchange_explicit(&s->coord_busy, 1, memory_order_acquire))
        return;
    uint64_t due = coord_apply(s, wait_ns, now);
    atomic_store_explicit(&s->coord_due, due, memory_order_relaxed);
    atomic_store_explicit(&s->coord_busy, 0, memory_order_release);
}

/* Hits between two checks of one thread. */
#define COORD_HIT_TICKS 256u

static _Thread_local uint32_t coord_ticks;

void suvm_coord_pin_tick(struct eleos_suvm *s, uint64_t page) {
    if (__builtin_expect(!s->coord, 1))
        return;
    uint32_t w = atomic_load_explicit(&s->pt[page].word, memory_order_relaxed);
    if ((w & PTE_FRAME_MASK) && ++coord_ticks < COORD_HIT_TICKS)
        return;
    coord_ticks = 0;
    suvm_coord_check_slow(s, SUVM_COORD_WAIT_FAULT_NS);
}

void suvm_coord_evictor_pass(struct eleos_suvm *s) {
    /* A host thread with no pins of its own: a shrink may wait longer for other threads'. */
    suvm_coord_check(s, SUVM_COORD_WAIT_EVICTOR_NS);
}
