/*
 * eleos/suvm.h — SUVM: Secure User-managed Virtual Memory (DESIGN.md §4).
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
 * baseline, with the same code paths.
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

struct eleos_suvm_config {
    size_t cache_size;       /* page-cache bytes (rounded down to 256 KiB chunks, >= 1 chunk) */
    size_t cache_max_size;   /* upper bound for eleos_suvm_resize; 0 = cache_size            */
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
};

/* Fills *cfg with the defaults: 60 MiB cache, 1 GiB backing store, page mode, AES-128,
 * watermarks 32/64 frames (as the Linux SGX reclaimer), clean drop on, error policy. */
void eleos_suvm_config_default(struct eleos_suvm_config *cfg);

struct eleos_suvm;

/*
 * Creates an instance inside the calling thread's enclave (or with host memory when called
 * in host mode). The page cache and all metadata come from the enclave heap; the backing
 * store from eleos_untrusted_alloc (one counted exit). A fresh random key is drawn.
 * *out belongs to the caller until eleos_suvm_destroy.
 * Errors: -EINVAL (bad config), -ENOMEM, -EIO (no randomness / crypto setup failed).
 */
ELEOS_MUST_CHECK int eleos_suvm_create(const struct eleos_suvm_config *cfg,
                                       struct eleos_suvm **out);

/* Destroys an instance: frees the page cache, metadata and backing store and wipes the key.
 * No spointer may still be linked, no evictor running, no other thread using s. */
void eleos_suvm_destroy(struct eleos_suvm *s);

/* --- Allocation ------------------------------------------------------------------------- */

/*
 * Allocates size bytes of SUVM memory, zero-filled, and stores its address in *addr.
 * Slab allocations (<= ELEOS_SUVM_SLAB_MAX) are aligned to their rounded size and never
 * cross a page; larger ones are page-aligned. MT-safe.
 * Errors: -EINVAL (size 0), -ENOMEM (address space exhausted or no enclave heap), -EBADMSG
 * (zeroing a reused slab slot hit an integrity failure).
 */
ELEOS_MUST_CHECK int eleos_suvm_alloc(struct eleos_suvm *s, size_t size, uint64_t *addr);

/*
 * Frees an allocation. Pages left without live data go back to the "never written" state:
 * their cached frames are dropped and their sealed copies are dead (they read as zeros when
 * reused; the version counter stays, so no nonce is ever reused). MT-safe.
 * Errors: -EINVAL (not an allocation's start, or double free), -EBUSY (a spointer still
 * pins one of the pages; nothing was freed).
 */
ELEOS_MUST_CHECK int eleos_suvm_free(struct eleos_suvm *s, uint64_t addr);

/* Usable size of the allocation starting at addr, or 0 if addr is not one. MT-safe. */
size_t eleos_suvm_alloc_size(struct eleos_suvm *s, uint64_t addr);

/* --- Spointers ---------------------------------------------------------------------------
 *
 * A spointer is caller storage: init it, move it with set/add, dereference it, fini it.
 * Dereferencing links it to the page's frame (pinning the page) and returns an enclave
 * pointer valid up to the end of that page, until the spointer moves to another page, is
 * reset or is finalised. Write intent (deref_w) marks the page dirty; a page reached only
 * through reads is dropped, not re-sealed, on eviction. Moving within a page keeps the link.
 * A spointer is used by one thread at a time; different spointers may be used by different
 * threads on the same data (synchronising the data itself is the caller's business).
 */
struct eleos_suvm_ptr {
    /* Private: use the functions below. The four fast-path fields share one 32-byte
     * aligned block, so a dereference touches one cache line. */
    uint64_t _addr __attribute__((aligned(32))); /* the SUVM address                      */
    uint64_t _rpage;    /* SUVM address of the linked page, ELEOS_SUVM_PTR_UNLINKED_ if none  */
    uint64_t _wpage;    /* same once write intent has marked the page dirty, else UNLINKED   */
    uintptr_t _delta;   /* frame address - _rpage (mod 2^64): enclave pointer = _addr + _delta */
    struct eleos_suvm *_s;
    uint32_t _frame;    /* frame index while linked                                          */
};

/* _rpage/_wpage of an unlinked spointer: no valid address lies within a page of it, so the
 * fast path's single unsigned compare fails and the slow path links. (An address in
 * [2^63, 2^63 + 4096) is never valid either; the fast path does not check for it and
 * returns a non-canonical pointer, which faults on use.) */
#define ELEOS_SUVM_PTR_UNLINKED_ (1ull << 63)

/* Initialises p at addr, unlinked. Never fails (addr is checked on first dereference). */
void eleos_suvm_ptr_init(struct eleos_suvm_ptr *p, struct eleos_suvm *s, uint64_t addr);

/* Unlinks p (unpins its page) and leaves it unusable until the next init. */
void eleos_suvm_ptr_fini(struct eleos_suvm_ptr *p);

/* Unlinks p, keeping its address: the page may be evicted until the next dereference. */
void eleos_suvm_ptr_reset(struct eleos_suvm_ptr *p);

/* Slow paths behind the inline functions, kept out of line so the fast path stays small.
 * Not for direct use. link_ returns the enclave pointer, or NULL with *err set. */
void *eleos_suvm_ptr_link_(struct eleos_suvm_ptr *p, bool write, int *err);
void eleos_suvm_ptr_unlink_(struct eleos_suvm_ptr *p);

/* The SUVM address p points at. */
static inline uint64_t eleos_suvm_ptr_addr(const struct eleos_suvm_ptr *p) {
    return p->_addr;
}

/* Moves p to addr. Stays linked if addr is on the same page; otherwise unlinks at once (the
 * old page is no longer pinned). Fast path: one subtraction and one compare. */
static inline void eleos_suvm_ptr_set(struct eleos_suvm_ptr *p, uint64_t addr) {
    p->_addr = addr;
    if (__builtin_expect(addr - p->_rpage >= ELEOS_SUVM_PAGE_SIZE, 0) &&
        p->_rpage != ELEOS_SUVM_PTR_UNLINKED_)
        eleos_suvm_ptr_unlink_(p);
}

/* Pointer arithmetic: moves p by delta bytes (may be negative). */
static inline void eleos_suvm_ptr_add(struct eleos_suvm_ptr *p, int64_t delta) {
    eleos_suvm_ptr_set(p, p->_addr + (uint64_t)delta);
}

/*
 * Read access: *out = enclave address of the byte at p, readable up to the end of its page.
 * Fast path when linked: one unsigned compare against the linked page and one add; no
 * atomics (the pin was taken at link time). Errors (slow path): -EFAULT (address outside
 * the backing store or in its reserved first page), -EBADMSG (integrity failure), -ENOMEM
 * (every frame pinned).
 */
ELEOS_MUST_CHECK static inline int eleos_suvm_ptr_deref(struct eleos_suvm_ptr *p, void **out) {
    uint64_t a = p->_addr;
    if (__builtin_expect(a - p->_rpage < ELEOS_SUVM_PAGE_SIZE, 1)) {
        *out = (void *)(uintptr_t)(a + p->_delta);
        return 0;
    }
    int err = 0;
    *out = eleos_suvm_ptr_link_(p, false, &err);
    return err;
}

/* Write access: as eleos_suvm_ptr_deref, and marks the page dirty so eviction seals it. */
ELEOS_MUST_CHECK static inline int eleos_suvm_ptr_deref_w(struct eleos_suvm_ptr *p,
                                                          void **out) {
    uint64_t a = p->_addr;
    if (__builtin_expect(a - p->_wpage < ELEOS_SUVM_PAGE_SIZE, 1)) {
        *out = (void *)(uintptr_t)(a + p->_delta);
        return 0;
    }
    int err = 0;
    *out = eleos_suvm_ptr_link_(p, true, &err);
    return err;
}

/* Explicit dirty intent for a page already reached with deref (e.g. after a read the caller
 * decided to modify it in place). No-op on an unlinked spointer. */
void eleos_suvm_ptr_mark_dirty(struct eleos_suvm_ptr *p);

/* --- Bulk access between SUVM and enclave buffers (MT-safe; may cross pages) ------------ */

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
 * frame. In page mode these behave like eleos_suvm_read/write. MT-safe.
 * Errors as eleos_suvm_read.
 */
ELEOS_MUST_CHECK int eleos_suvm_read_direct(struct eleos_suvm *s, uint64_t addr, void *buf,
                                            size_t size);
ELEOS_MUST_CHECK int eleos_suvm_write_direct(struct eleos_suvm *s, uint64_t addr,
                                             const void *buf, size_t size);

/* --- Cache management -------------------------------------------------------------------- */

/* Seals every dirty unpinned page to the backing store (pages stay cached, now clean).
 * Errors: -EOVERFLOW (a page's version counter is exhausted; it stays dirty). MT-safe. */
ELEOS_MUST_CHECK int eleos_suvm_flush(struct eleos_suvm *s);

/*
 * Resizes the page cache at run time (the balloon that lets enclaves share one EPC): grows
 * by allocating frames from the enclave heap, shrinks by evicting the retired frames' pages,
 * giving their EPC pages back to the platform (eleos_enclave_trim, no exit) and freeing
 * them to the enclave heap, so the enclave's resident EPC drops by the shrunk amount.
 * new_size is rounded down to 256 KiB chunks and must lie in [one chunk, cache_max_size].
 * Concurrent use of s is allowed; concurrent resizes are serialised.
 * Errors: -EINVAL, -ENOMEM (growing), -EBUSY (shrinking would evict a page that stays
 * pinned; the cache keeps its old size).
 */
ELEOS_MUST_CHECK int eleos_suvm_resize(struct eleos_suvm *s, size_t new_size);

/* --- Background evictor ---------------------------------------------------------------------
 *
 * Enclave code cannot create threads, so the evictor is a host thread that ECALLs into the
 * enclave and runs eleos_suvm_evictor_run there. It keeps between low and high watermark
 * frames free, evicting in batches by CLOCK. It polls for a bounded time, then naps through
 * an OCALL (an honest, counted exit); enclave threads never exit to wake it: a fault that
 * finds no free frame evicts synchronously.
 */
struct eleos_suvm_evictor;

/* Host mode: starts thread "eleos-evict" inside enc running the evictor for s (created in
 * enc). *out owned by the caller until eleos_suvm_evictor_stop. -EBUSY if one runs. */
ELEOS_MUST_CHECK int eleos_suvm_evictor_start(struct eleos_enclave *enc, struct eleos_suvm *s,
                                              struct eleos_suvm_evictor **out);

/* Host mode: stops and joins the evictor, frees ev. */
void eleos_suvm_evictor_stop(struct eleos_suvm_evictor *ev);

/* The ECALL body run by the evictor thread (arg: the struct eleos_suvm *). Returns 0 when
 * asked to stop. Exposed for callers that manage their own host threads. */
long eleos_suvm_evictor_run(void *arg);

/* Asks a running eleos_suvm_evictor_run to return (within one nap). MT-safe. */
void eleos_suvm_evictor_request_stop(struct eleos_suvm *s);

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
};

/* Snapshot of the counters (each read atomically, not one instant). MT-safe. */
void eleos_suvm_stats(struct eleos_suvm *s, struct eleos_suvm_stats *out);

/* Zeroes the event counters (not the gauges). MT-safe. */
void eleos_suvm_stats_reset(struct eleos_suvm *s);

/* --- For tests and fault injection: the adversary's view of the backing store ----------- */

/*
 * Host mode or enclave mode (the store is untrusted memory either way): the sealed bytes of
 * page `page` (4096) and its tags (16 per sub-page, or one for the page), for tests that
 * tamper, replay or swap. Returns NULL if page is out of range.
 */
void *eleos_suvm_backing_slot(struct eleos_suvm *s, uint64_t page, uint8_t **tags,
                              size_t *tags_size);

#ifdef __cplusplus
}
#endif
#endif /* ELEOS_SUVM_H */
