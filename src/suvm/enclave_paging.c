/*
 * SUVM paging: software page faults, CLOCK eviction, the background evictor, flush and
 * resize of the page cache. Locking rules are in suvm_internal.h; in short:
 *
 *   - per-page LOCKED bit (CAS on the page-table word) serialises fill, eviction, flush,
 *     free and direct access of one page; it is only ever *tried* by eviction, so a
 *     faulting thread that holds one page's bit and evicts another cannot deadlock;
 *   - pin counts keep linked pages resident (Dekker-style handshake with LOCKED);
 *   - free_lock (leaf) protects the free-frame stack; resize_lock serialises resizes.
 *
 * No function here makes a system call or blocks in the kernel: waiting is spinning, and
 * the only exit is the evictor's nap, an explicit OCALL.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/tsc.h"
#include "suvm/suvm_internal.h"

/* The evictor evicts this many pages per batch (as the Linux SGX reclaimer), then
 * re-checks the watermark, so one batch costs ~16 seals (~20 µs) at most. */
#define EVICT_BATCH 16u

/* How far past the clock hand a fault looks for the next fault's likely victim. */
#define PEEK 8u

/* After its work is done the evictor polls the free count this long before napping:
 * faults come in bursts, and a nap costs an exit. */
#define EVICTOR_SPIN_NS 50000u

/* Nap length through an OCALL: starts short and doubles while idle, so an idle evictor
 * costs at most 50 exits a second (and no spinning) and a busy one reacts within ~50 µs;
 * faulting threads evict for themselves meanwhile. */
#define EVICTOR_NAP_MIN_NS 50000u
#define EVICTOR_NAP_MAX_NS 20000000u

/* --- Free-frame stack ---------------------------------------------------------------------- */

/* Returns a free frame (page field set to page + 1, so CLOCK skips it) or false. */
static bool frame_pop(struct eleos_suvm *s, uint64_t page, uint32_t *out) {
    /* Cheap pre-check: a fault under pressure usually finds the stack empty and should go
     * straight to eviction without a lock round trip. Only a hint; rechecked below. */
    if (!atomic_load_explicit(&s->nfree, memory_order_relaxed))
        return false;
    eleos_spin_lock(&s->free_lock);
    uint32_t target = atomic_load_explicit(&s->target, memory_order_relaxed);
    while (s->free_count) {
        uint32_t f = s->free_stack[--s->free_count];
        if (f >= target) { /* retired by a shrink in progress: park it */
            atomic_store_explicit(&s->frames[f].parked, 1, memory_order_release);
            continue;
        }
        atomic_store_explicit(&s->nfree, s->free_count, memory_order_relaxed);
        atomic_store_explicit(&s->frames[f].page, (uint32_t)page + 1, memory_order_relaxed);
        if (!s->touched[f]) {
            s->touched[f] = 1;
            atomic_store_explicit(&s->touched_frames,
                                  atomic_load_explicit(&s->touched_frames,
                                                       memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        }
        eleos_spin_unlock(&s->free_lock);
        *out = f;
        return true;
    }
    atomic_store_explicit(&s->nfree, 0, memory_order_relaxed);
    eleos_spin_unlock(&s->free_lock);
    return false;
}

/* Puts an owned, empty frame back (or retires it if a shrink removed it). */
static void frame_push(struct eleos_suvm *s, uint32_t f) {
    atomic_store_explicit(&s->frames[f].page, 0, memory_order_relaxed);
    eleos_spin_lock(&s->free_lock);
    if (f < atomic_load_explicit(&s->target, memory_order_relaxed)) {
        s->free_stack[s->free_count++] = f;
        atomic_store_explicit(&s->nfree, s->free_count, memory_order_relaxed);
    } else {
        atomic_store_explicit(&s->frames[f].parked, 1, memory_order_release);
    }
    eleos_spin_unlock(&s->free_lock);
}

/* --- Eviction ------------------------------------------------------------------------------ */

enum evict_result { EV_SKIP, EV_DONE, EV_ERROR };

/*
 * A fault in progress, for the pipelined page-mode path (enclave_seal.c): the crypto slot it
 * holds from the victim's seal to the end of its fill, the page it will open (prefetched
 * while the victim is sealed), and the victim whose sealed copy is still pending in the slot.
 * That victim's page stays LOCKED until its copy is written out and fenced (fault_done).
 */
struct fault_ctx {
    struct crypto_slot *c; /* NULL until needed                                    */
    uint64_t next;         /* page the fault opens, SUVM_NO_PAGE for a minor fault  */
    uint64_t victim;       /* page sealed but not yet written out, or SUVM_NO_PAGE */
    const uint8_t *ahead;  /* frame of the next fault's likely victim, or NULL          */
};

static void fault_ctx_init(struct fault_ctx *fc) {
    fc->c = NULL;
    fc->next = SUVM_NO_PAGE;
    fc->victim = SUVM_NO_PAGE;
    fc->ahead = NULL;
}

/* Completes the pending victim (if any): its copy out and fenced, its page unlocked as
 * sealed and not cached. Keeps the slot. */
static void fault_victim_done(struct eleos_suvm *s, struct fault_ctx *fc) {
    if (fc->victim == SUVM_NO_PAGE)
        return;
    suvm_seal_complete(s, fc->c);
    suvm_page_unlock(s, fc->victim, PTE_SEALED);
    fc->victim = SUVM_NO_PAGE;
}

/* Ends the fault's use of the pipeline: victim done, slot released. */
static void fault_done(struct eleos_suvm *s, struct fault_ctx *fc) {
    fault_victim_done(s, fc);
    if (fc->c) {
        suvm_crypto_put(fc->c);
        fc->c = NULL;
    }
}

/*
 * Look-ahead for the next fault: the first frame after the clock hand that CLOCK would evict
 * as things stand (in use, unpinned, reference bit clear). Its page-table entry is
 * prefetched here, and its frame is returned so that the current fault prefetches it (into
 * L2) while it encrypts and decrypts: the next fault then seals (dirty victim) or overwrites
 * (clean victim) a frame that is already in the cache. CLOCK victims are cold by
 * construction, so without this every dirty fault would wait for 4 KiB from DRAM before its
 * seal could start. Only a hint: the frame is not owned and may be freed meanwhile (a
 * prefetch never faults); the chunk pointer is read atomically for that reason.
 */
static const uint8_t *clock_peek(struct eleos_suvm *s, uint32_t n) {
    uint32_t h = atomic_load_explicit(&s->clock_hand, memory_order_relaxed);
    for (uint32_t i = 0; i < PEEK; i++) {
        uint32_t g = (h + i) % n;
        struct frame *fr = &s->frames[g];
        uint32_t pg = atomic_load_explicit(&fr->page, memory_order_relaxed);
        if (!pg || atomic_load_explicit(&fr->pin, memory_order_relaxed) ||
            atomic_load_explicit(&fr->ref, memory_order_relaxed))
            continue;
        _mm_prefetch((const char *)&s->pt[pg - 1], _MM_HINT_T0);
        uint8_t *chunk = __atomic_load_n(&s->chunks[g / SUVM_CHUNK_FRAMES], __ATOMIC_RELAXED);
        return chunk ? chunk + (size_t)(g % SUVM_CHUNK_FRAMES) * SUVM_PAGE_SIZE : NULL;
    }
    return NULL;
}

/*
 * Tries to evict frame f. On EV_DONE the caller owns the empty frame (page field 0).
 * second_chance: honour and clear the reference bit (CLOCK); shrink and flush ignore it.
 * fc (a faulting thread, page mode): a dirty victim is sealed with suvm_seal_defer and left
 * pending in fc (its page still LOCKED) instead of being written out here.
 */
static enum evict_result try_evict(struct eleos_suvm *s, uint32_t f, bool second_chance,
                                   struct fault_ctx *fc) {
    struct frame *fr = &s->frames[f];
    uint32_t pg = atomic_load_explicit(&fr->page, memory_order_relaxed);
    if (!pg || atomic_load_explicit(&fr->pin, memory_order_relaxed))
        return EV_SKIP;
    if (second_chance && atomic_load_explicit(&fr->ref, memory_order_relaxed)) {
        atomic_store_explicit(&fr->ref, 0, memory_order_relaxed);
        return EV_SKIP;
    }
    uint64_t page = pg - 1;
    struct pte *e = &s->pt[page];
    uint32_t w = atomic_load_explicit(&e->word, memory_order_relaxed);
    if ((w & PTE_LOCKED) || (w & PTE_FRAME_MASK) != f + 1)
        return EV_SKIP; /* stale hint, or the page is being filled */
    /* seq_cst CAS then seq_cst pin load: pairs with the pinner's seq_cst increment then
     * seq_cst re-read in suvm_page_pin; one of us sees the other. */
    if (!atomic_compare_exchange_strong_explicit(&e->word, &w, w | PTE_LOCKED,
                                                 memory_order_seq_cst, memory_order_relaxed))
        return EV_SKIP;
    if (atomic_load_explicit(&fr->pin, memory_order_seq_cst)) {
        suvm_page_unlock(s, page, w);
        return EV_SKIP;
    }
    /* We own the page and the frame; the last unpin's release made its writes visible. */
    uint32_t sealed = w & PTE_SEALED;
    bool dirty = atomic_load_explicit(&fr->dirty, memory_order_relaxed);
    bool defer = false;
    if (fc && s->nsub == 1)
        fc->ahead = clock_peek(s, atomic_load_explicit(&s->nframes, memory_order_relaxed));
    if (dirty || !s->cfg.clean_drop) {
        int r;
        if (fc && s->nsub == 1) {
            if (!fc->c)
                fc->c = suvm_crypto_get(s);
            r = suvm_seal_defer(s, fc->c, page, suvm_frame_addr(s, f), fc->next, fc->ahead);
            defer = r == 0;
        } else {
            r = suvm_seal_page(s, page, suvm_frame_addr(s, f));
        }
        if (r) {
            /* Version exhausted or crypto error: the page stays cached, dirty. */
            suvm_page_unlock(s, page, w);
            return EV_ERROR;
        }
        sealed = PTE_SEALED;
        suvm_stat_add(s, ST_DIRTY_WB, 1);
    } else {
        suvm_stat_add(s, ST_CLEAN_DROPS, 1);
    }
    /* No separate eviction counter: evictions = clean drops + dirty write-backs, which
     * saves one shared-line RMW per eviction on the fault path. */
    atomic_store_explicit(&fr->dirty, 0, memory_order_relaxed);
    atomic_store_explicit(&fr->ref, 0, memory_order_relaxed);
    atomic_store_explicit(&fr->page, 0, memory_order_relaxed);
    if (defer)
        fc->victim = page; /* unlocked by fault_victim_done once written out */
    else
        suvm_page_unlock(s, page, sealed);
    return EV_DONE;
}

/* CLOCK: evicts one unpinned page and returns its frame, owned by the caller. fc: as
 * try_evict (NULL: evict synchronously). */
static int clock_evict_one(struct eleos_suvm *s, uint32_t *out, struct fault_ctx *fc) {
    for (;;) {
        uint32_t n = atomic_load_explicit(&s->nframes, memory_order_acquire);
        uint32_t target = atomic_load_explicit(&s->target, memory_order_relaxed);
        /* Two full turns clear every reference bit once; a third finds a victim unless
         * every frame is pinned (or being filled). */
        uint64_t budget = 3ull * n + 1;
        bool evicted_retired = false;
        while (budget--) {
            uint32_t f = atomic_fetch_add_explicit(&s->clock_hand, 1, memory_order_relaxed) % n;
            if (try_evict(s, f, true, fc) != EV_DONE)
                continue;
            if (f < atomic_load_explicit(&s->target, memory_order_relaxed)) {
                *out = f;
                return 0;
            }
            /* Retired by a concurrent shrink: not ours to use. */
            if (fc)
                fault_victim_done(s, fc);
            frame_push(s, f);
            evicted_retired = true;
        }
        if (!evicted_retired && target == atomic_load_explicit(&s->target,
                                                               memory_order_relaxed))
            return -ENOMEM;
    }
}

/* A frame for page: from the free stack, else evicted on the spot by this thread. */
static int frame_get(struct eleos_suvm *s, uint64_t page, uint32_t *out, struct fault_ctx *fc) {
    if (frame_pop(s, page, out))
        return 0;
    int r = clock_evict_one(s, out, fc);
    if (r == 0) {
        atomic_store_explicit(&s->frames[*out].page, (uint32_t)page + 1, memory_order_relaxed);
        suvm_stat_add(s, ST_SYNC_EVICT, 1);
        return 0;
    }
    /* A frame may have been freed meanwhile (by the evictor or a free()). */
    return frame_pop(s, page, out) ? 0 : r;
}

/* --- Faults -------------------------------------------------------------------------------- */

/*
 * The first half of every fill: waits while another thread holds the page, then either finds
 * it resident (returns 1, *wp = its word, nothing locked) or locks it and takes a frame for it
 * (returns 0, *wp = the word before locking, *fp = the frame; the caller fills the frame and
 * unlocks). Whoever sets LOCKED fills the page; the others wait and then find it resident, so
 * concurrent faults on one page end on one frame. -errno if no frame could be had (the page
 * is unlocked again).
 */
static int lock_for_fill(struct eleos_suvm *s, uint64_t page, uint32_t *wp, uint32_t *fp,
                         bool opens, struct fault_ctx *fc) {
    struct pte *e = &s->pt[page];
    for (;;) {
        /* Acquire pairs with the release store that published the frame. */
        uint32_t w = atomic_load_explicit(&e->word, memory_order_acquire);
        if (w & PTE_LOCKED) {
            _mm_pause();
            continue;
        }
        *wp = w;
        if (w & PTE_FRAME_MASK)
            return 1;
        if (!atomic_compare_exchange_weak_explicit(&e->word, &w, w | PTE_LOCKED,
                                                   memory_order_acquire, memory_order_relaxed))
            continue;
        /* A fill that opens the page's sealed copy starts fetching it now, before the
         * victim is chosen, and lets the victim's seal fetch the rest. */
        fc->next = opens && (w & PTE_SEALED) ? page : SUVM_NO_PAGE;
        if (fc->next != SUVM_NO_PAGE)
            suvm_fault_prefetch(s, page);
        int r = frame_get(s, page, fp, fc);
        if (r)
            suvm_page_unlock(s, page, w);
        return r;
    }
}

/* Pins a page found resident with word w. False if the word changed meanwhile (retry). */
static bool pin_resident(struct eleos_suvm *s, uint64_t page, uint32_t w, bool write,
                         uint32_t *out) {
    uint32_t fi = w & PTE_FRAME_MASK;
    struct frame *fr = &s->frames[fi - 1];
    /* seq_cst pair with try_evict's CAS + pin load (see there). */
    atomic_fetch_add_explicit(&fr->pin, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&s->pt[page].word, memory_order_seq_cst) != w) {
        atomic_fetch_sub_explicit(&fr->pin, 1, memory_order_relaxed);
        return false;
    }
    if (!atomic_load_explicit(&fr->ref, memory_order_relaxed))
        atomic_store_explicit(&fr->ref, 1, memory_order_relaxed);
    if (write && !atomic_load_explicit(&fr->dirty, memory_order_relaxed))
        atomic_store_explicit(&fr->dirty, 1, memory_order_relaxed);
    suvm_stat_add(s, ST_HITS, 1);
    *out = fi - 1;
    return true;
}

int suvm_page_pin(struct eleos_suvm *s, uint64_t page, bool write, uint32_t *out) {
    struct pte *e = &s->pt[page];
    for (;;) {
        /* The common case first: resident and not locked (acquire pairs with the release
         * that published the frame). */
        uint32_t w = atomic_load_explicit(&e->word, memory_order_acquire);
        if ((w & PTE_FRAME_MASK) && !(w & PTE_LOCKED)) {
            if (pin_resident(s, page, w, write, out))
                return 0;
            continue;
        }
        uint32_t f;
        struct fault_ctx fc;
        fault_ctx_init(&fc);
        int r = lock_for_fill(s, page, &w, &f, true, &fc);
        if (r < 0) {
            fault_done(s, &fc); /* nothing pending, but maybe a crypto slot */
            return r;
        }
        if (r == 1) {
            if (pin_resident(s, page, w, write, out))
                return 0;
            continue;
        }
        struct frame *fr = &s->frames[f];
        uint8_t *data = suvm_frame_addr(s, f);
        if (w & PTE_SEALED) {
            if (s->nsub == 1) {
                if (!fc.c)
                    fc.c = suvm_crypto_get(s);
                r = suvm_open_swap(s, fc.c, page, data, fc.ahead); /* writes the victim out */
            } else {
                r = suvm_open_page(s, page, data);
            }
            fault_done(s, &fc);
            if (r) {
                frame_push(s, f);
                suvm_page_unlock(s, page, w);
                return r;
            }
            suvm_stat_add(s, ST_MAJOR, 1);
        } else {
            fault_done(s, &fc);
            memset(data, 0, SUVM_PAGE_SIZE); /* never written (or freed): zeros */
            suvm_stat_add(s, ST_MINOR, 1);
        }
        atomic_store_explicit(&fr->dirty, write, memory_order_relaxed);
        atomic_store_explicit(&fr->ref, 1, memory_order_relaxed);
        /* Pin before publishing, so no evictor can see the page resident and unpinned. */
        atomic_fetch_add_explicit(&fr->pin, 1, memory_order_relaxed);
        suvm_page_unlock(s, page, (w & PTE_SEALED) | (f + 1));
        *out = f;
        return 0;
    }
}

int suvm_page_overwrite(struct eleos_suvm *s, uint64_t page, const void *src, int c) {
    uint32_t w, f;
    struct fault_ctx fc;
    fault_ctx_init(&fc);
    int r = lock_for_fill(s, page, &w, &f, false, &fc);
    fault_done(s, &fc); /* a sealed victim goes out now: there is no open to overlap with */
    if (r)
        return r; /* 1: resident, the caller writes through the cache; or -errno */
    /* The new contents go in while the page is still LOCKED: nobody can see the frame's
     * previous contents (another page's plaintext). */
    uint8_t *data = suvm_frame_addr(s, f);
    if (src)
        memcpy(data, src, SUVM_PAGE_SIZE);
    else
        memset(data, c, SUVM_PAGE_SIZE);
    struct frame *fr = &s->frames[f];
    atomic_store_explicit(&fr->dirty, 1, memory_order_relaxed);
    atomic_store_explicit(&fr->ref, 1, memory_order_relaxed);
    suvm_stat_add(s, ST_MINOR, 1);
    suvm_page_unlock(s, page, (w & PTE_SEALED) | (f + 1));
    return 0;
}

uint32_t suvm_page_lock(struct eleos_suvm *s, uint64_t page) {
    struct pte *e = &s->pt[page];
    for (;;) {
        uint32_t w = atomic_load_explicit(&e->word, memory_order_relaxed);
        if (w & PTE_LOCKED) {
            _mm_pause();
            continue;
        }
        /* seq_cst: a lock holder that then checks pins takes part in the pin handshake. */
        if (atomic_compare_exchange_weak_explicit(&e->word, &w, w | PTE_LOCKED,
                                                  memory_order_seq_cst, memory_order_relaxed))
            return w;
    }
}

bool suvm_page_pinned(struct eleos_suvm *s, uint64_t page) {
    uint32_t w = atomic_load_explicit(&s->pt[page].word, memory_order_acquire);
    uint32_t fi = w & PTE_FRAME_MASK;
    return fi && atomic_load_explicit(&s->frames[fi - 1].pin, memory_order_acquire);
}

int suvm_page_release(struct eleos_suvm *s, uint64_t page, bool force) {
    uint32_t w = suvm_page_lock(s, page);
    uint32_t fi = w & PTE_FRAME_MASK;
    if (fi) {
        struct frame *fr = &s->frames[fi - 1];
        if (atomic_load_explicit(&fr->pin, memory_order_seq_cst)) {
            if (!force) {
                suvm_page_unlock(s, page, w);
                return -EBUSY;
            }
            /* A caller's use-after-free race: keep the frame, but its contents go. */
            memset(suvm_frame_addr(s, fi - 1), 0, SUVM_PAGE_SIZE);
            atomic_store_explicit(&fr->dirty, 0, memory_order_relaxed);
            if (s->nsub > 1)
                s->pt[page].version = 0;
            suvm_page_unlock(s, page, fi);
            return 0;
        }
        atomic_store_explicit(&fr->dirty, 0, memory_order_relaxed);
        atomic_store_explicit(&fr->ref, 0, memory_order_relaxed);
        frame_push(s, fi - 1);
    }
    /* Sub-page mode: forget which sub-pages hold data; their versions stay (nonces). */
    if (s->nsub > 1)
        s->pt[page].version = 0;
    suvm_page_unlock(s, page, 0);
    return 0;
}

/* --- Flush --------------------------------------------------------------------------------- */

int eleos_suvm_flush(struct eleos_suvm *s) {
    int err = suvm_host_guard(s);
    if (err)
        return err;
    uint32_t n = atomic_load_explicit(&s->nframes, memory_order_acquire);
    for (uint32_t f = 0; f < n; f++) {
        struct frame *fr = &s->frames[f];
        uint32_t pg = atomic_load_explicit(&fr->page, memory_order_relaxed);
        if (!pg || !atomic_load_explicit(&fr->dirty, memory_order_relaxed) ||
            atomic_load_explicit(&fr->pin, memory_order_relaxed))
            continue;
        uint64_t page = pg - 1;
        struct pte *e = &s->pt[page];
        uint32_t w = atomic_load_explicit(&e->word, memory_order_relaxed);
        if ((w & PTE_LOCKED) || (w & PTE_FRAME_MASK) != f + 1)
            continue;
        if (!atomic_compare_exchange_strong_explicit(&e->word, &w, w | PTE_LOCKED,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed))
            continue;
        /* Pairs with suvm_page_pin, as in try_evict: a pinned page may be written while we
         * seal, so it is skipped. */
        if (atomic_load_explicit(&fr->pin, memory_order_seq_cst) ||
            !atomic_load_explicit(&fr->dirty, memory_order_relaxed)) {
            suvm_page_unlock(s, page, w);
            continue;
        }
        int r = suvm_seal_page(s, page, suvm_frame_addr(s, f));
        if (r) {
            err = err ? err : r;
            suvm_page_unlock(s, page, w);
            continue;
        }
        atomic_store_explicit(&fr->dirty, 0, memory_order_relaxed);
        suvm_stat_add(s, ST_FLUSH_WB, 1);
        suvm_page_unlock(s, page, w | PTE_SEALED);
    }
    return err;
}

/* --- Background evictor --------------------------------------------------------------------- */

static long evictor_nap(void *arg) {
    /* Host mode (inside the OCALL): the nanosleep here is the honest exit. */
    uint64_t ns = (uint64_t)(uintptr_t)arg;
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
    return 0;
}

/* Evicts up to EVICT_BATCH pages to the free stack. Returns how many. */
static uint32_t evict_batch(struct eleos_suvm *s) {
    uint32_t done = 0;
    uint32_t n = atomic_load_explicit(&s->nframes, memory_order_acquire);
    uint64_t budget = 3ull * n;
    while (done < EVICT_BATCH && budget--) {
        uint32_t f = atomic_fetch_add_explicit(&s->clock_hand, 1, memory_order_relaxed) % n;
        if (try_evict(s, f, true, NULL) == EV_DONE) {
            frame_push(s, f);
            done++;
        }
    }
    return done;
}

long suvm_evictor_loop(struct eleos_suvm *s, void (*pass)(struct eleos_suvm *)) {
    if (atomic_exchange_explicit(&s->evictor_running, true, memory_order_acq_rel))
        return -EBUSY;
    uint64_t spin_cycles = (uint64_t)(EVICTOR_SPIN_NS * tsc_ghz());
    uint64_t nap_ns = EVICTOR_NAP_MIN_NS;
    /* Acquire pairs with the release in request_stop (nothing else is published). */
    while (!atomic_load_explicit(&s->evictor_stop, memory_order_acquire)) {
        if (pass)
            pass(s);
        uint32_t low, high;
        suvm_watermarks(s, &low, &high);
        if (atomic_load_explicit(&s->nfree, memory_order_relaxed) < low) {
            while (atomic_load_explicit(&s->nfree, memory_order_relaxed) < high &&
                   !atomic_load_explicit(&s->evictor_stop, memory_order_relaxed)) {
                if (!evict_batch(s))
                    break; /* everything pinned: faulting threads will cope */
                suvm_stat_add(s, ST_EVICTOR_BATCHES, 1);
            }
            nap_ns = EVICTOR_NAP_MIN_NS;
            continue;
        }
        uint64_t t0 = tsc_now();
        bool work = false;
        /* Spin only while work came recently: an idle server's evictor naps, no more. */
        while (nap_ns <= 4 * EVICTOR_NAP_MIN_NS && tsc_now() - t0 < spin_cycles) {
            if (atomic_load_explicit(&s->nfree, memory_order_relaxed) < low ||
                atomic_load_explicit(&s->evictor_stop, memory_order_relaxed)) {
                work = true;
                break;
            }
            _mm_pause();
        }
        if (work)
            continue;
        eleos_enclave_ocall(evictor_nap, (void *)(uintptr_t)nap_ns);
        suvm_stat_add(s, ST_EVICTOR_NAPS, 1);
        if (nap_ns < EVICTOR_NAP_MAX_NS)
            nap_ns *= 2;
    }
    atomic_store_explicit(&s->evictor_stop, false, memory_order_relaxed);
    atomic_store_explicit(&s->evictor_running, false, memory_order_release);
    return 0;
}

void eleos_suvm_evictor_request_stop(struct eleos_suvm *s) {
    atomic_store_explicit(&s->evictor_stop, true, memory_order_release); /* pairs: run */
}

/* --- Resize -------------------------------------------------------------------------------- */

/* Allocates chunks for frames [nframes, new_frames) and makes them free. resize_lock held
 * (or create). */
int suvm_frames_grow(struct eleos_suvm *s, uint32_t new_frames) {
    uint32_t old = atomic_load_explicit(&s->nframes, memory_order_relaxed);
    for (uint32_t c = old / SUVM_CHUNK_FRAMES; c < new_frames / SUVM_CHUNK_FRAMES; c++) {
        uint8_t *chunk = suvm_mem_alloc(s, SUVM_PAGE_SIZE, SUVM_CHUNK_SIZE);
        /* Atomic (relaxed) because clock_peek reads chunk pointers of frames it does not own;
         * everyone else is ordered after this by the release of nframes below. */
        __atomic_store_n(&s->chunks[c], chunk, __ATOMIC_RELAXED);
        if (!chunk) {
            while (c-- > old / SUVM_CHUNK_FRAMES) {
                suvm_mem_free(s, s->chunks[c]);
                __atomic_store_n(&s->chunks[c], NULL, __ATOMIC_RELAXED);
            }
            return -ENOMEM;
        }
    }
    for (uint32_t f = old; f < new_frames; f++) {
        struct frame *fr = &s->frames[f];
        s->touched[f] = 0; /* a fresh chunk: no EPC page committed yet (free_lock not
                              needed: nobody can pop these frames before the push below) */
        atomic_store_explicit(&fr->page, 0, memory_order_relaxed);
        atomic_store_explicit(&fr->pin, 0, memory_order_relaxed);
        atomic_store_explicit(&fr->ref, 0, memory_order_relaxed);
        atomic_store_explicit(&fr->dirty, 0, memory_order_relaxed);
        atomic_store_explicit(&fr->parked, 0, memory_order_relaxed);
    }
    eleos_spin_lock(&s->free_lock);
    atomic_store_explicit(&s->target, new_frames, memory_order_relaxed);
    /* Push in reverse so low frames are handed out first. */
    for (uint32_t f = new_frames; f-- > old;)
        s->free_stack[s->free_count++] = f;
    atomic_store_explicit(&s->nfree, s->free_count, memory_order_relaxed);
    eleos_spin_unlock(&s->free_lock);
    /* Release: CLOCK scanners that see the new count see the initialised frames and the
     * chunk pointers (pairs with the acquire loads of nframes). */
    atomic_store_explicit(&s->nframes, new_frames, memory_order_release);
    return 0;
}

/*
 * Gives chunk c back: its EPC pages to the platform (the balloon's point: another enclave
 * can use them), then its memory to the enclave heap. Trimming first matters twice: the
 * heap writes into freed blocks, which would commit the pages again, and a trimmed page
 * loses its contents, so no plaintext of evicted SUVM pages is left behind in the heap.
 * Nobody may touch the chunk's frames any more (they are parked, nframes published).
 */
static void chunk_release(struct eleos_suvm *s, uint32_t c) {
    uint8_t *chunk = s->chunks[c];
    if (!chunk)
        return;
    eleos_spin_lock(&s->free_lock);
    uint32_t gone = 0;
    for (uint32_t f = c * SUVM_CHUNK_FRAMES; f < (c + 1) * SUVM_CHUNK_FRAMES; f++) {
        gone += s->touched[f];
        s->touched[f] = 0;
    }
    atomic_store_explicit(&s->touched_frames,
                          atomic_load_explicit(&s->touched_frames, memory_order_relaxed) - gone,
                          memory_order_relaxed);
    eleos_spin_unlock(&s->free_lock);
    if (!s->enc || eleos_enclave_trim(s->enc, chunk, SUVM_CHUNK_SIZE) != 0)
        memset(chunk, 0, SUVM_CHUNK_SIZE); /* host mode, or trim failed: wipe instead */
    suvm_mem_free(s, chunk);
    __atomic_store_n(&s->chunks[c], NULL, __ATOMIC_RELAXED); /* see suvm_frames_grow */
}

/* Shrinks to new_frames: retire, evict, free. resize_lock held.
 *
 * A retired frame ends "parked" (free, off the stack) once it is empty: either it was free
 * (parked here), or whoever empties it (this loop, CLOCK, free()) pushes it and frame_push
 * parks it because it is above target. Nobody hands a frame above target out, so once all
 * retired frames are parked their chunks can go. Undo un-parks under free_lock: a frame
 * still owned by someone (evicted but not yet pushed) is not parked and is pushed by its
 * owner, who then sees the restored target. */
static int frames_shrink(struct eleos_suvm *s, uint32_t new_frames, uint64_t wait_ns) {
    uint32_t old = atomic_load_explicit(&s->nframes, memory_order_relaxed);
    eleos_spin_lock(&s->free_lock);
    atomic_store_explicit(&s->target, new_frames, memory_order_relaxed);
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->free_count; i++) {
        uint32_t f = s->free_stack[i];
        if (f < new_frames)
            s->free_stack[k++] = f;
        else
            atomic_store_explicit(&s->frames[f].parked, 1, memory_order_release);
    }
    s->free_count = k;
    atomic_store_explicit(&s->nfree, k, memory_order_relaxed);
    eleos_spin_unlock(&s->free_lock);
    /* Frames being filled finish soon; pinned ones get a bounded wait, then the shrink is
     * undone. */
    uint64_t budget_cycles = (uint64_t)((double)wait_ns * tsc_ghz());
    uint64_t t0 = tsc_now();
    for (uint32_t f = new_frames; f < old; f++) {
        /* Acquire pairs with the release that parked it: the last owner is done with the
         * frame's data before the chunk is freed. */
        while (!atomic_load_explicit(&s->frames[f].parked, memory_order_acquire)) {
            enum evict_result r = EV_SKIP;
            if (atomic_load_explicit(&s->frames[f].page, memory_order_relaxed)) {
                r = try_evict(s, f, false, NULL);
                if (r == EV_DONE) {
                    frame_push(s, f); /* parks it */
                    break;
                }
            }
            if (r == EV_ERROR || tsc_now() - t0 > budget_cycles) {
                eleos_spin_lock(&s->free_lock);
                atomic_store_explicit(&s->target, old, memory_order_relaxed);
                for (uint32_t g = new_frames; g < old; g++) {
                    if (atomic_load_explicit(&s->frames[g].parked, memory_order_relaxed)) {
                        atomic_store_explicit(&s->frames[g].parked, 0, memory_order_relaxed);
                        s->free_stack[s->free_count++] = g;
                    }
                }
                atomic_store_explicit(&s->nfree, s->free_count, memory_order_relaxed);
                eleos_spin_unlock(&s->free_lock);
                return -EBUSY;
            }
            _mm_pause();
        }
    }
    /* CLOCK may still look at retired frames: they are empty and stay empty, so try_evict
     * skips them without touching their (freed) data. Publishing the count first keeps
     * new scans away before the chunks go. */
    atomic_store_explicit(&s->nframes, new_frames, memory_order_release);
    for (uint32_t c = new_frames / SUVM_CHUNK_FRAMES; c < old / SUVM_CHUNK_FRAMES; c++)
        chunk_release(s, c);
    return 0;
}

int suvm_resize_frames(struct eleos_suvm *s, uint32_t n, bool wait, uint64_t wait_ns) {
    if (wait)
        eleos_spin_lock(&s->resize_lock);
    else if (!eleos_spin_trylock(&s->resize_lock))
        return -EAGAIN;
    uint32_t old = atomic_load_explicit(&s->nframes, memory_order_relaxed);
    int r = 0;
    if (n > old) {
        r = suvm_frames_grow(s, n);
        if (!r)
            suvm_stat_add(s, ST_RESIZE_GROWS, 1);
    } else if (n < old) {
        r = frames_shrink(s, n, wait_ns);
        if (!r)
            suvm_stat_add(s, ST_RESIZE_SHRINKS, 1);
    }
    eleos_spin_unlock(&s->resize_lock);
    return r;
}

int eleos_suvm_resize(struct eleos_suvm *s, size_t new_size) {
    int g = suvm_host_guard(s);
    if (g)
        return g;
    size_t chunks = new_size / SUVM_CHUNK_SIZE;
    if (chunks == 0 || chunks * SUVM_CHUNK_FRAMES > s->max_frames)
        return -EINVAL;
    /* An explicit resize waits up to 100 ms for pinned pages. */
    return suvm_resize_frames(s, (uint32_t)(chunks * SUVM_CHUNK_FRAMES), true, 100000000ull);
}

void suvm_watermarks(const struct eleos_suvm *s, uint32_t *low, uint32_t *high) {
    /* Clamped to the size now, so a cache shrunk to a few chunks still has frames to use. */
    uint32_t n = atomic_load_explicit(&s->nframes, memory_order_relaxed);
    uint32_t h = s->cfg_high < n / 2 ? s->cfg_high : n / 2;
    uint32_t l = s->cfg_low < h ? s->cfg_low : h / 2;
    *low = l;
    *high = h;
}

void suvm_frames_free_all(struct eleos_suvm *s) {
    if (!s->chunks)
        return;
    /* Plaintext of SUVM data must not outlive the instance in the enclave heap. */
    for (uint32_t c = 0; c < s->max_frames / SUVM_CHUNK_FRAMES; c++)
        chunk_release(s, c);
}
