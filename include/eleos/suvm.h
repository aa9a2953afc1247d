/*
 * eleos/suvm.h — SUVM: Secure User-managed Virtual Memory (docs/design.md).
 *
 * Paging done by the enclave itself, without exits. An SUVM instance owns
 *   - a page cache ("EPC++") of 4 KiB frames in enclave memory, sized to fit in the EPC, so
 *     SUVM itself never causes an EPC fault;
 *   - a backing store in untrusted memory holding AES-GCM-sealed pages;
 *   - a flat page table and the allocator metadata, both inside the enclave.
 * Data is reached through SUVM addresses (64-bit offsets into the backing store; 0 is never
 * a valid allocation) and spointers, small structs that translate an SUVM address to its
 * frame in the page cache. A linked spointer pins its page; the inline fast path is one
 * unsigned compare and one add, without atomics. A miss is a software page fault handled
 * inside the enclave.
 *
 * Security: each sealed page (or sub-page) is bound by AES-GCM to its page index, sub-page
 * index and version; the current version of every page lives in the enclave. Tampering,
 * replay of an old copy and swapping two pages are detected and reported as -EBADMSG
 * (never as wrong data), or abort the process if the instance is configured so.
 *
 * Where functions may be called: every function runs inside an ECALL of the enclave the
 * instance was created in, except those marked "host mode". An instance created in host
 * mode (no enclave) uses host memory for its page cache; it exists for tests and as a
 * baseline, with the same code paths, and must be asked for (config host_mode). Used inside
 * an enclave, such an instance refuses every call that reaches its cache or allocator
 * (alloc, free, dereference slow paths, bulk and direct access, flush, resize) with -EPERM,
 * and prints one line on stderr, once: its "enclave" data would be host memory.
 *
 * Conventions: fallible functions return 0 or a negative errno (ELEOS_MUST_CHECK). Thread
 * safety is stated per function; an instance is MT-safe unless said otherwise, a spointer is
 * not (one thread uses one spointer at a time).
 */
#ifndef ELEOS_SUVM_H
#define ELEOS_SUVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "eleos/enclave.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SUVM pages are EPC pages. */
#define ELEOS_SUVM_PAGE_SIZE  4096u
#define ELEOS_SUVM_PAGE_SHIFT 12u

/* Defaults for struct eleos_suvm_config (see eleos_suvm_config_default). */
#define ELEOS_SUVM_DEFAULT_CACHE_SIZE   (60ull << 20)  /* the paper's 60 MiB EPC++      */
#define ELEOS_SUVM_DEFAULT_BACKING_SIZE (1ull << 30)
#define ELEOS_SUVM_DEFAULT_KEY_SIZE     16u            /* AES-128-GCM, as the paper      */

/* Largest allocation served from a slab (smaller sizes round up to a power of two >= 64);
 * larger ones get whole pages. */
#define ELEOS_SUVM_SLAB_MAX 2048u

/* What a detected integrity failure does. Either way the caller never sees the bad data. */
enum eleos_suvm_integrity_policy {
    ELEOS_SUVM_INTEGRITY_ERROR = 0, /* the operation fails with -EBADMSG (counted)     */
    ELEOS_SUVM_INTEGRITY_ABORT = 1, /* print a diagnostic and abort the process         */
};

/* How the page cache is sized (docs/suvm.md, "Sharing the EPC").
 * COORDINATED: SUVM sizes the cache so the enclave's whole EPC footprint (cache, SUVM
 *   metadata and the rest of its heap) fits the share the platform gives the enclave, and
 *   follows it as enclaves come and go: checked on SUVM's own paths (faults, allocation, the
 *   background evictor's pass), never by host polling or ECALLs.
 * FIXED: the size given (cache_size), or with ELEOS_SUVM_CACHE_AUTO sized once at creation
 *   as if the enclave were alone on the platform (from its max, not its share); changed only
 *   by eleos_suvm_resize.
 * DEFAULT: COORDINATED when cache_size is ELEOS_SUVM_CACHE_AUTO, FIXED otherwise. */
enum eleos_suvm_sizing {
    ELEOS_SUVM_SIZING_DEFAULT = 0,
    ELEOS_SUVM_SIZING_FIXED = 1,
    ELEOS_SUVM_SIZING_COORDINATED = 2,
};

/* cache_size value: let SUVM size the cache (see enum eleos_suvm_sizing). */
#define ELEOS_SUVM_CACHE_AUTO 0u

struct eleos_suvm_config {
    size_t cache_size;       /* page-cache bytes (rounded down to 256 KiB chunks, >= 1 chunk),
                                or ELEOS_SUVM_CACHE_AUTO; a coordinated instance starts
                                here (auto: from its share)                                  */
    size_t cache_max_size;   /* upper bound for eleos_suvm_resize and coordination; 0 =
                                cache_size, or for an auto size in an enclave the platform's
                                capacity (60 MiB for a host-mode instance)                   */
    enum eleos_suvm_sizing sizing; /* default: coordinated iff cache_size is auto          */
    size_t backing_size;     /* SUVM address space = backing-store bytes (page multiple)     */
    size_t subpage_size;     /* 0 = page mode; 256, 512 or 1024 = sub-page mode: pages are
                                sealed per sub-page and read/write_direct touch only the
                                sub-pages they need                                          */
    size_t key_size;         /* AES-GCM key bytes: 16, 24 or 32                              */
    uint32_t low_watermark;  /* evictor starts when fewer frames are free (0 = default)     */
    uint32_t high_watermark; /* ... and refills up to this many (0 = default)               */
    bool clean_drop;         /* drop clean pages instead of re-sealing them (default true;
                                false only for the ablation benchmark)                       */
    enum eleos_suvm_integrity_policy integrity_policy;
    bool host_mode;          /* a host-mode instance, for tests and baselines: created in host
                                mode with its page cache and metadata in untrusted host
                                memory. Default false: create refuses host mode (-EPERM) so
                                that enclave data never lands in such a cache by mistake;
                                set true only outside an enclave (-EINVAL inside one).   */
};

/* Fills *cfg with the defaults: 60 MiB cache, 1 GiB backing store, page mode, AES-128,
 * watermarks 32/64 frames (as the Linux SGX reclaimer), clean drop on, error policy.
 * Either mode, no exit. */
void eleos_suvm_config_default(struct eleos_suvm_config *cfg);

struct eleos_suvm;

/*
 * Creates an instance inside the calling thread's enclave (or, with cfg->host_mode, with host
 * memory when called in host mode). The page cache and all metadata come from the enclave
 * heap; the backing store from eleos_untrusted_alloc. Three counted exits (measured by
 * test_suvm_exits): the backing store's mapping, the request for 2 MiB pages on it
 * (madvise) and OpenSSL's fork check (getpid) while drawing a fresh random key. MT-safe.
 * *out belongs to the caller until eleos_suvm_destroy.
 * The cache must fit the enclave's EPC next to the rest of the enclave: cache_size and
 * cache_max_size are clamped to the EPC capacity minus an eighth of it and minus the
 * instance's page table (and sub-page versions), with one line on stderr saying so; read
 * the size granted in eleos_suvm_stats' cache_frames. A larger cache would double-page
 * (the driver evicting SUVM's own frames). With cache_size ELEOS_SUVM_CACHE_AUTO the size
 * comes from the platform instead (the enclave's share, or its max for FIXED, less the rest
 * of its footprint; enum eleos_suvm_sizing), and a coordinated instance then resizes itself
 * on its own paths (faults, allocation, the evictor's pass; no exit).
 * Errors: -EINVAL (bad config; host_mode set inside an enclave), -EPERM (called in host
 * mode without host_mode), -ENOMEM (also: 256 instances live in the process already, or
 * not one 256 KiB chunk of cache fits the EPC), -EIO (no randomness / crypto setup failed).
 */
ELEOS_MUST_CHECK int eleos_suvm_create(const struct eleos_suvm_config *cfg,
                                       struct eleos_suvm **out);

/* Destroys an instance: frees the page cache, metadata and backing store and wipes the key.
 * No spointer may still be linked, no other thread using s. An evictor still running on it
 * (the host did not stop it) is stopped and waited for first, as is any other ECALL using
 * its handle; afterwards the handle names nothing. Destroy every instance before its
 * enclave (handles tell enclaves apart by their address, which a later enclave may reuse).
 * One counted exit: unmapping the backing store. */
void eleos_suvm_destroy(struct eleos_suvm *s);

/* --- Allocation ------------------------------------------------------------------------- */

/*
 * Allocates size bytes of SUVM memory, zero-filled, and stores its address in *addr.
 * Slab allocations (<= ELEOS_SUVM_SLAB_MAX) are aligned to their rounded size and never
 * cross a page; larger ones are page-aligned. MT-safe, no exit. On a coordinated instance
 * this is one of the checks of the cache's size, which may resize it (no exit either).
 * Errors: -EINVAL (size 0), -ENOMEM (address space exhausted or no enclave heap), -EBADMSG
 * (zeroing a reused slab slot hit an integrity failure).
 */
ELEOS_MUST_CHECK int eleos_suvm_alloc(struct eleos_suvm *s, size_t size, uint64_t *addr);

/*
 * Frees an allocation. Pages left without live data go back to the "never written" state:
 * their cached frames are dropped and their sealed copies are dead (they read as zeros when
 * reused; the version counter stays, so no nonce is ever reused). MT-safe, no exit.
 * Errors: -EINVAL (not an allocation's start, or double free), -EBUSY (a spointer still
 * pins one of the pages; nothing was freed).
 */
ELEOS_MUST_CHECK int eleos_suvm_free(struct eleos_suvm *s, uint64_t addr);

/* Usable size of the allocation starting at addr, or 0 if addr is not one. MT-safe, no
 * exit. */
size_t eleos_suvm_alloc_size(struct eleos_suvm *s, uint64_t addr);

/* --- Spointers ---------------------------------------------------------------------------
 *
 * A spointer is caller storage: init it, move it with set/add, dereference it, fini it.
 * Dereferencing links it to the page's frame (pinning the page) and returns an enclave
 * pointer valid up to the end of that page, until the spointer is dereferenced on another
 * page, is reset or is finalised. Write intent (deref_w) marks the page dirty; a page reached
 * only through reads is dropped, not re-sealed, on eviction. A spointer is used by one thread
 * at a time; different spointers may be used by different threads on the same data
 * (synchronising the data itself is the caller's business).
 *
 * Moving (set/add) is arithmetic only: it never unlinks. The link follows the spointer at
 * its next dereference, which, on another page, drops the old pin and takes the new one in
 * one slow-path call. So a spointer pins at most one page at any time, the page it last
 * dereferenced, until it is dereferenced elsewhere, reset or finalised; reset a spointer
 * that is parked away from its page if that page must become evictable or freeable
 * (eleos_suvm_free returns -EBUSY on a pinned page).
 *
 * No spointer function makes an exit: a miss is a software fault handled in the enclave.
 *
 * The idiom for a scan is deref + use + add per element (or deref once per page, using the
 * returned pointer up to the page end). Every function below is inline, and the out-of-line
 * slow paths take the fields they need by value and return the new link by value, so no
 * function ever receives the spointer's address: a spointer that is a local variable stays
 * in registers and the per-element cost is one compare, one add for the address and one
 * add to move (no atomics, no load or store of the spointer).
 */
struct eleos_suvm_ptr {
    /* Private: use the functions below. One 64-byte aligned block, so a spointer kept in
     * memory touches one cache line.
     * Invariant: the SUVM address is _rpage + _off (mod 2^64). Linked: _rpage is the
     * pinned page, _base its frame, _rlim = 4096 (and _wlim = 4096 once written), so an
     * access is in the linked page iff _off < _rlim, and its enclave address is
     * _base + _off. Unlinked: _rpage = 0 (so _off is the address), _rlim = _wlim = 0 (every
     * compare fails). */
    uint64_t _off __attribute__((aligned(64)));
    uint8_t *_base;
    uint64_t _rlim;
    uint64_t _wlim;
    uint64_t _rpage;
    struct eleos_suvm *_s;
    uint32_t _frame;    /* frame index while linked */
};

/* Slow paths behind the inline functions. Not for direct use.
 * link_: links addr (pinning its page, faulting it in if needed), first dropping the link
 *   to rpage/frame (if rpage != 0) when addr is on another page; if addr is on rpage it
 *   only marks the frame dirty (write). Returns the new link, or err != 0 with every old
 *   link dropped.
 * unpin_: drops a link. dirty_: marks a linked frame dirty. */
struct eleos_suvm_link_ {
    uint8_t *base;   /* the page's frame (enclave address) */
    uint32_t frame;
    int32_t err;     /* 0, or -errno and the spointer ends unlinked */
};
/* The slow paths described above; private to the inline functions below. */
struct eleos_suvm_link_ eleos_suvm_link_(struct eleos_suvm *s, uint64_t addr, uint64_t rpage,
                                         uint32_t frame, bool write);
void eleos_suvm_unpin_(struct eleos_suvm *s, uint32_t frame);
void eleos_suvm_dirty_(struct eleos_suvm *s, uint32_t frame);

/* Forgets the link (not the address) without unpinning. */
static inline void eleos_suvm_ptr_clear_(struct eleos_suvm_ptr *p) {
    p->_off += p->_rpage;
    p->_rpage = 0;
    p->_base = 0;
    p->_rlim = 0;
    p->_wlim = 0;
}

/* Initialises p at addr, unlinked. Never fails (addr is checked on first dereference). */
static inline void eleos_suvm_ptr_init(struct eleos_suvm_ptr *p, struct eleos_suvm *s,
                                       uint64_t addr) {
    p->_off = addr;
    p->_rpage = 0;
    p->_base = 0;
    p->_rlim = 0;
    p->_wlim = 0;
    p->_s = s;
    p->_frame = 0;
}

/* Unlinks p, keeping its address: the page may be evicted until the next dereference. */
static inline void eleos_suvm_ptr_reset(struct eleos_suvm_ptr *p) {
    if (p->_rlim) {
        eleos_suvm_unpin_(p->_s, p->_frame);
        eleos_suvm_ptr_clear_(p);
    }
}

/* Unlinks p (unpins its page) and leaves it unusable until the next init. */
static inline void eleos_suvm_ptr_fini(struct eleos_suvm_ptr *p) {
    eleos_suvm_ptr_reset(p);
    p->_s = 0;
    p->_off = 0;
}

/* The SUVM address p points at. */
static inline uint64_t eleos_suvm_ptr_addr(const struct eleos_suvm_ptr *p) {
    return p->_rpage + p->_off;
}

/* Pointer arithmetic: moves p by delta bytes (may be negative). One add; the link is
 * checked (and moved, if p left its page) by the next dereference. */
static inline void eleos_suvm_ptr_add(struct eleos_suvm_ptr *p, int64_t delta) {
    p->_off += (uint64_t)delta;
}

/* Moves p to addr, as eleos_suvm_ptr_add (one subtraction). */
static inline void eleos_suvm_ptr_set(struct eleos_suvm_ptr *p, uint64_t addr) {
    eleos_suvm_ptr_add(p, (int64_t)(addr - eleos_suvm_ptr_addr(p)));
}

/* The shared slow path of deref/deref_w (kept small: one call, then the new fields). */
static inline int eleos_suvm_ptr_slow_(struct eleos_suvm_ptr *p, bool write, void **out) {
    uint64_t a = eleos_suvm_ptr_addr(p);
    struct eleos_suvm_link_ l = eleos_suvm_link_(p->_s, a, p->_rpage, p->_frame, write);
    if (__builtin_expect(l.err != 0, 0)) {
        eleos_suvm_ptr_clear_(p);
        *out = 0;
        return l.err;
    }
    p->_rpage = a & ~(uint64_t)(ELEOS_SUVM_PAGE_SIZE - 1);
    p->_off = a & (ELEOS_SUVM_PAGE_SIZE - 1);
    p->_base = l.base;
    p->_frame = l.frame;
    p->_rlim = ELEOS_SUVM_PAGE_SIZE;
    p->_wlim = write ? ELEOS_SUVM_PAGE_SIZE : 0;
    *out = l.base + p->_off;
    return 0;
}

/*
 * Read access: *out = enclave address of the byte at p, readable up to the end of its page.
 * Fast path (p on its linked page): one compare and one add, no atomics (the pin was taken
 * at link time). Otherwise the slow path links p's page, first dropping the old link.
 * Errors (slow path; p ends unlinked, its old page unpinned): -EFAULT (address outside the
 * backing store or in its reserved first page), -EBADMSG (integrity failure), -ENOMEM
 * (every frame pinned).
 */
ELEOS_MUST_CHECK static inline int eleos_suvm_ptr_deref(struct eleos_suvm_ptr *p, void **out) {
    if (__builtin_expect(p->_off < p->_rlim, 1)) {
        *out = p->_base + p->_off;
        return 0;
    }
    return eleos_suvm_ptr_slow_(p, false, out);
}

/* Write access: as eleos_suvm_ptr_deref, and marks the page dirty so eviction seals it. */
ELEOS_MUST_CHECK static inline int eleos_suvm_ptr_deref_w(struct eleos_suvm_ptr *p,
                                                          void **out) {
    if (__builtin_expect(p->_off < p->_wlim, 1)) {
        *out = p->_base + p->_off;
        return 0;
    }
    return eleos_suvm_ptr_slow_(p, true, out);
}

/* Explicit dirty intent for the page p is linked to, i.e. last reached with deref (e.g.
 * after a read the caller decided to modify it in place). No-op on an unlinked spointer. */
static inline void eleos_suvm_ptr_mark_dirty(struct eleos_suvm_ptr *p) {
    if (p->_rlim && !p->_wlim) {
        eleos_suvm_dirty_(p->_s, p->_frame);
        p->_wlim = p->_rlim;
    }
}

/* --- Bulk access between SUVM and enclave buffers (MT-safe; may cross pages) ------------
 *
 * Errors: -EFAULT (range outside the backing store or in its reserved first page; nothing
 * is read or written), -EBADMSG (integrity failure), -ENOMEM (every frame pinned).
 * A failed read delivers nothing: once its range was accepted, a read that fails leaves all
 * size bytes of buf zero, including those of pages verified before the failing one (they
 * are wiped, so a partial result cannot pass for data). A failed write, memset or memcmp
 * may have done the pages before the failing one. */

/* read copies size bytes at SUVM address addr into buf (enclave memory), write copies buf
 * to addr (marking the pages dirty), memset fills size bytes at addr with c. Faulting pages
 * in as needed, pinning each only while it is copied. Enclave mode (the instance's enclave);
 * no exit (SUVM pages inside the enclave); MT-safe. Errors as above. */
ELEOS_MUST_CHECK int eleos_suvm_read(struct eleos_suvm *s, uint64_t addr, void *buf,
                                     size_t size);
ELEOS_MUST_CHECK int eleos_suvm_write(struct eleos_suvm *s, uint64_t addr, const void *buf,
                                      size_t size);
ELEOS_MUST_CHECK int eleos_suvm_memset(struct eleos_suvm *s, uint64_t addr, int c,
                                       size_t size);
/* *result gets memcmp's sign of SUVM bytes versus buf. */
ELEOS_MUST_CHECK int eleos_suvm_memcmp(struct eleos_suvm *s, uint64_t addr, const void *buf,
                                       size_t size, int *result);

/*
 * Sub-page direct access for small random accesses. If the page is in the cache this is an
 * ordinary cached read/write. Otherwise (sub-page mode) only the sub-pages touched are
 * opened (and, for a write, re-sealed) straight from/to the backing store, without taking a
 * frame. In page mode these behave like eleos_suvm_read/write. MT-safe, no exit.
 * Errors as eleos_suvm_read; a failed read_direct likewise leaves buf all zeros.
 */
ELEOS_MUST_CHECK int eleos_suvm_read_direct(struct eleos_suvm *s, uint64_t addr, void *buf,
                                            size_t size);
ELEOS_MUST_CHECK int eleos_suvm_write_direct(struct eleos_suvm *s, uint64_t addr,
                                             const void *buf, size_t size);

/*
 * A hint that addr will be accessed soon, for loops that know their next addresses (a batch
 * of keys, a list of offsets): if its page is cached, the cache line of addr in its frame is
 * prefetched; if it is not, its sealed copy starts coming in (page mode: the page's first
 * chunk, so its fault finds it on the way; sub-page mode: the sub-page of addr, which direct
 * access opens). Takes no pin, no lock and no statistic, never faults, never fails
 * (an address outside the instance is ignored), and a page evicted meanwhile only wastes the
 * hint. A random-access loop pays one cache miss per page change behind the pin's atomic
 * operation, which serialises it; hinting a few iterations ahead overlaps those misses
 * (bench_suvm_spointer, "random+hint"). MT-safe, no exit.
 */
void eleos_suvm_prefetch(struct eleos_suvm *s, uint64_t addr);

/* --- Cache management -------------------------------------------------------------------- */

/* Seals every dirty unpinned page to the backing store (pages stay cached, now clean).
 * Errors: -EOVERFLOW (a page's version counter is exhausted; it stays dirty). MT-safe, no
 * exit. */
ELEOS_MUST_CHECK int eleos_suvm_flush(struct eleos_suvm *s);

/*
 * Resizes the page cache at run time (what lets enclaves share one EPC; a coordinated
 * instance calls it itself, and recomputes its size at its next check after this): grows
 * by allocating frames from the enclave heap, shrinks by evicting the retired frames' pages,
 * giving their EPC pages back to the platform (eleos_enclave_trim, no exit) and freeing
 * them to the enclave heap, so the enclave's resident EPC drops by the shrunk amount.
 * new_size is rounded down to 256 KiB chunks and must lie in [one chunk, cache_max_size].
 * Concurrent use of s is allowed; concurrent resizes are serialised. No exit, either way.
 * Errors: -EINVAL, -ENOMEM (growing), -EBUSY (shrinking would evict a page that stays
 * pinned; the cache keeps its old size).
 */
ELEOS_MUST_CHECK int eleos_suvm_resize(struct eleos_suvm *s, size_t new_size);

/* --- Background evictor ---------------------------------------------------------------------
 *
 * Enclave code cannot create threads, so the evictor is a host thread that ECALLs into the
 * enclave and runs eleos_suvm_evictor_run there; it may be started from host mode or, through
 * an OCALL the library makes, from inside the enclave. It keeps between low and high watermark
 * frames free, evicting in batches by CLOCK. It polls for a bounded time, then naps through
 * an OCALL (an honest, counted exit); enclave threads never exit to wake it: a fault that
 * finds no free frame evicts synchronously.
 *
 * The ECALLs take the instance's handle (eleos_suvm_handle), never its address: the host
 * chooses ECALL arguments, and a pointer it chose could name a fake instance (in host
 * memory, or planted in enclave memory) that the evictor would then trust. A handle is
 * resolved in an enclave-side registry of live instances; one that names no live instance
 * of the calling enclave — made up, of a destroyed instance, of another enclave, used from
 * host mode — is refused with -ESRCH and counted in eleos_suvm_bad_handles.
 */
struct eleos_suvm_evictor;

/* Starts thread "eleos-evict" inside enc running the evictor for s (created in enc). s is
 * only compared with the enclave's live instances, never dereferenced. *out owned by the
 * caller until eleos_suvm_evictor_stop. Errors: -ESRCH (s is no live instance of enc, or
 * called inside another enclave), -ENOMEM, -errno of pthread_create (-EIO: the host
 * answered with no errno). A second evictor for the same instance ends at once (its run
 * returns -EBUSY).
 * Host mode: one ECALL asks the enclave for s's handle, then the thread is created.
 * Inside an ECALL of enc (for an enclave that does all its work in one ECALL): the library
 * makes the exits itself, two of them: an untrusted record for the host (mmap) and the OCALL
 * that creates the thread, which then ECALLs in as above. Stop the evictor in the mode that
 * started it. */
ELEOS_MUST_CHECK int eleos_suvm_evictor_start(struct eleos_enclave *enc, struct eleos_suvm *s,
                                              struct eleos_suvm_evictor **out);

/* Stops and joins the evictor, frees ev. Host mode, or inside the enclave for an evictor
 * started there (two exits: the OCALL that joins the thread and the record's munmap). */
void eleos_suvm_evictor_stop(struct eleos_suvm_evictor *ev);

/* The instance's handle for the ECALLs below: nonzero, below 2^63, a slot index and a
 * 47-bit generation, so no later instance gets it (short of 2^47 reuses of one slot).
 * Enclave side, no exit; not a secret. MT-safe. */
uint64_t eleos_suvm_handle(const struct eleos_suvm *s);

/* ECALL bodies, exposed for callers that manage their own host threads; arg is a handle
 * cast to a pointer, (void *)(uintptr_t)eleos_suvm_handle(s).
 * run: the evictor loop; returns 0 when asked to stop, -EBUSY if another evictor serves the
 *   instance, -ESRCH if arg names no live instance of the calling enclave.
 * halt: asks a running eleos_suvm_evictor_run to return (within one nap); 0 or -ESRCH.
 * Neither ever dereferences arg. An instance being destroyed stops its evictor and waits for
 * every ECALL inside it, so destroy may run while the host still runs one. Enclave mode
 * (as ECALL bodies); MT-safe. halt makes no exit; run's only exits are its naps (one OCALL
 * each, counted in evictor_naps). */
long eleos_suvm_evictor_run(void *arg);
long eleos_suvm_evictor_halt(void *arg);

/* Enclave side: asks a running evictor of s to return (within one nap). MT-safe, no exit. */
void eleos_suvm_evictor_request_stop(struct eleos_suvm *s);

/* ECALLs refused because their argument named no live instance of the calling enclave, in
 * the whole process since it started (host faults, or the host's bugs). MT-safe; either
 * mode, no exit. */
uint64_t eleos_suvm_bad_handles(void);

/* --- Statistics ------------------------------------------------------------------------- */

struct eleos_suvm_stats {
    uint64_t hits;               /* page found in the cache on a link or bulk access      */
    uint64_t minor_faults;       /* miss on a never-written page: zero-filled, no crypto   */
    uint64_t major_faults;       /* miss opened and verified from the backing store        */
    uint64_t evictions;          /* pages removed from the cache                          */
    uint64_t clean_drops;        /* of those, dropped without sealing                      */
    uint64_t dirty_writebacks;   /* of those, sealed to the backing store                  */
    uint64_t flush_writebacks;   /* pages sealed by eleos_suvm_flush                       */
    uint64_t sync_evictions;     /* evictions done by a faulting thread (no free frame)    */
    uint64_t evictor_batches;    /* batches evicted by the background evictor              */
    uint64_t evictor_naps;       /* times the evictor slept through an OCALL               */
    uint64_t subpage_reads;      /* sub-pages opened by read/write_direct                  */
    uint64_t subpage_writes;     /* sub-pages sealed by write_direct                       */
    uint64_t bytes_sealed;
    uint64_t bytes_opened;
    uint64_t integrity_failures; /* tampered, replayed or swapped pages/sub-pages detected */
    uint64_t cache_frames;       /* frames in the cache now                                */
    uint64_t free_frames;        /* of those, free now                                     */
    uint64_t allocated_bytes;    /* live allocation bytes (after rounding)                 */
    uint64_t metadata_bytes;     /* enclave bytes of page table, versions, allocator       */
    uint64_t metadata_per_gib;   /* fixed metadata bytes per GiB of backing store          */
    uint64_t slab_metadata_bytes;/* of metadata_bytes, slab descriptors (grow with use)    */
    /* Sizing (coordinated instances; resizes also count eleos_suvm_resize's).               */
    uint64_t resize_shrinks;     /* resizes that shrank the cache                          */
    uint64_t resize_grows;       /* resizes that grew it                                   */
    uint64_t resize_busy;        /* coordinated shrinks refused (-EBUSY: pinned pages);
                                    retried at a later check                               */
    uint64_t coord_recomputes;   /* times the coordinated size was recomputed              */
    uint64_t coord_share;        /* gauge: the enclave's EPC share (pages) last seen, clamped */
    uint64_t coord_other;        /* gauge: the rest of the enclave's footprint (pages)     */
    uint64_t coord_target;       /* gauge: the cache size (frames) coordination aims at    */
    bool coordinated;            /* the instance follows its enclave's share               */
};

/* Snapshot of the counters (each read atomically, not one instant). MT-safe, no exit. */
void eleos_suvm_stats(struct eleos_suvm *s, struct eleos_suvm_stats *out);

/* Zeroes the event counters (not the gauges). MT-safe; a count made by another thread at
 * the same moment may survive the reset (counting takes no lock). No exit. */
void eleos_suvm_stats_reset(struct eleos_suvm *s);

/* --- For tests and fault injection: the adversary's view of the backing store ----------- */

/*
 * Host mode or enclave mode (the store is untrusted memory either way): the sealed bytes of
 * page `page` (4096) and its tags (16 per sub-page, or one for the page), for tests that
 * tamper, replay or swap. Returns NULL if page is out of range. No exit; MT-safe (the
 * bytes themselves change under concurrent sealing).
 */
void *eleos_suvm_backing_slot(struct eleos_suvm *s, uint64_t page, uint8_t **tags,
                              size_t *tags_size);

#ifdef __cplusplus
}
#endif
#endif /* ELEOS_SUVM_H */
