/*
 * Private structures of SUVM, shared by the enclave_*.c files. The design is described at
 * the top of enclave_suvm.c; the lock and ordering rules of each shared field are written
 * next to it here.
 */
#ifndef ELEOS_SUVM_INTERNAL_H
#define ELEOS_SUVM_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <immintrin.h>

#include "common/spinlock.h"
#include "common/gcm.h"
#include "eleos/suvm.h"

#define SUVM_PAGE_SIZE  ELEOS_SUVM_PAGE_SIZE
#define SUVM_PAGE_SHIFT ELEOS_SUVM_PAGE_SHIFT
#define SUVM_PAGE_MASK  ((uint64_t)SUVM_PAGE_SIZE - 1)

/* The page cache grows and shrinks in chunks of this many frames (256 KiB): big enough that
 * the chunk table stays tiny, small enough to balloon in useful steps. */
#define SUVM_CHUNK_FRAMES 64u
#define SUVM_CHUNK_SIZE   ((size_t)SUVM_CHUNK_FRAMES * SUVM_PAGE_SIZE)

/* Huge page size the backing store is aligned to (see create). */
#define SUVM_HUGE ((size_t)2 << 20)

/* AES-GCM contexts (with their bounce buffers) shared by all threads. A struct gcm is not
 * MT-safe, and enclave code cannot allocate per-thread state cheaply, so threads take any
 * free one; more than the number of cores buys nothing. */
#define SUVM_NCRYPTO 8u

/* Statistics shards: threads add to "their" shard to keep the counters' cache lines from
 * bouncing between cores on every hit. */
#define SUVM_NSHARDS 8u

/* Spin locks: common/spinlock.h (no futex, so holding or waiting never exits). */

/* --- Page table --------------------------------------------------------------------------
 *
 * One 8-byte entry per backing page: this is all the per-page paging and crypto state the
 * enclave keeps (the GCM tag lives in the backing store next to the ciphertext; it cannot be
 * replayed because the version it was made under is the one kept here).
 *
 * word: PTE_LOCKED | PTE_SEALED | (frame index + 1, or 0 when not cached).
 *   LOCKED is a per-page lock held while the page is filled, evicted, flushed, freed or
 *   accessed directly; whoever sets it with a CAS owns the page's state until it stores the
 *   word back without the bit (release; pairs with the acquire loads/CAS of the others).
 *   SEALED: the backing store holds the current sealed copy (otherwise the page reads as
 *   zeros: never written, or freed).
 * version: page mode — the version of the sealed copy (only grows, never reset, so a nonce
 *   is never reused); sub-page mode — bitmap of sub-pages holding sealed data (their
 *   versions live in suvm->subver). Read and written only by the holder of LOCKED.
 */
#define PTE_LOCKED     (1u << 31)
#define PTE_SEALED     (1u << 30)
#define PTE_FRAME_MASK ((1u << 30) - 1)

struct pte {
    _Atomic uint32_t word;
    uint32_t version;
};

/* --- Frames ------------------------------------------------------------------------------
 *
 * page: index + 1 of the page the frame holds or is being filled with, 0 when free or
 *   retired. Written by the owner of that page's LOCKED bit (or of the free frame); read by
 *   CLOCK scans, which only use it as a hint and confirm with the page's CAS.
 * pin: number of links (spointers, bulk accesses in progress). 32 bits: a page can be
 *   pinned by any number of spointers (the original Eleos used a byte). Pinners increment,
 *   then re-read the page word; evictors set LOCKED, then read pin (both seq_cst: one of
 *   the two always sees the other, so a pinned page is never evicted).
 * ref: CLOCK reference bit, set on every link, cleared by the scan.
 * dirty: set by write intent while pinned; read by the evictor after it has seen pin == 0
 *   (the unpin is a release, so the writes to the frame are visible too).
 * parked: the frame is free but retired by a shrink (not on the free stack). Written under
 *   free_lock; read without it by the shrinking thread, which only waits for it.
 */
struct frame {
    _Atomic uint32_t page;
    _Atomic uint32_t pin;
    _Atomic uint8_t ref;
    _Atomic uint8_t dirty;
    _Atomic uint8_t parked;
};

/* An AES-GCM context and a bounce buffer for snapshotting sealed data out of (and building
 * it before copying into) untrusted memory. busy is a try-lock (acquire/release). */
struct crypto_slot {
    alignas(64) _Atomic uint32_t busy;
    struct gcm gcm;
    uint8_t *bounce;  /* SUVM_PAGE_SIZE bytes of enclave memory */
    /* Fault path: a page sealed into bounce whose copy to the store is still pending
     * (SUVM_NO_PAGE when none), and its tag. Owned by the slot's holder. */
    uint64_t out_page;
    uint8_t out_tag[GCM_TAG_SIZE];
};

#define SUVM_NO_PAGE UINT64_MAX

enum suvm_stat {
    ST_HITS,
    ST_MINOR,
    ST_MAJOR,
    ST_CLEAN_DROPS,
    ST_DIRTY_WB,
    ST_FLUSH_WB,
    ST_SYNC_EVICT,
    ST_EVICTOR_BATCHES,
    ST_EVICTOR_NAPS,
    ST_SUB_READS,
    ST_SUB_WRITES,
    ST_BYTES_SEALED,
    ST_BYTES_OPENED,
    ST_INTEGRITY,
    ST_RESIZE_SHRINKS,
    ST_RESIZE_GROWS,
    ST_RESIZE_BUSY,
    ST_COORD_RECOMPUTES,
    ST_COUNT
};

struct stat_shard {
    alignas(64) _Atomic uint64_t c[ST_COUNT];
};

/* A slab: one page cut into objects of one power-of-two class (64 B .. 2 KiB). */
struct slab {
    uint64_t used;     /* bitmap of allocated objects (at most 64)                 */
    uint32_t page;     /* page index                                               */
    uint32_t next;     /* partial list / free-descriptor list: index + 1, 0 = end  */
    uint32_t prev;     /* partial list: index + 1, 0 = head                        */
    uint16_t nfree;    /* free objects                                             */
    uint8_t cls;       /* object size = 64 << cls                                  */
    uint8_t hwm;       /* objects below hwm may hold old data; above are zero      */
};

#define SUVM_NCLASSES 6u /* 64, 128, 256, 512, 1024, 2048 */

/* Allocator page map values (struct eleos_suvm.amap). */
#define AMAP_TYPE_MASK (3u << 30)
#define AMAP_FREE      0u
#define AMAP_RUN       (1u << 30) /* head of a page run; low bits: page count         */
#define AMAP_TAIL      (2u << 30) /* inside a run                                      */
#define AMAP_SLAB      (3u << 30) /* slab page; low bits: slab descriptor index        */
#define AMAP_VAL_MASK  ((1u << 30) - 1)

struct eleos_suvm {
    struct eleos_enclave *enc;   /* NULL: host-mode instance                             */
    struct eleos_suvm_config cfg;
    uint64_t npages;             /* backing pages (page 0 reserved: address 0 is never valid) */
    uint32_t nsub;               /* sub-pages per page (1 in page mode)                  */
    uint32_t subsz;              /* bytes per sub-page (SUVM_PAGE_SIZE in page mode)      */
    uint8_t key[32];

    /* Enclave memory. */
    struct pte *pt;              /* npages entries                                       */
    uint32_t *subver;            /* sub-page mode: npages * nsub versions (LOCKED)       */

    /* Untrusted memory: touched only through the helpers in enclave_seal.c. One mapping
     * (ualloc), 2 MiB aligned inside it: the store, then the tags. */
    uint8_t *store;              /* npages * SUVM_PAGE_SIZE ciphertext                   */
    uint8_t *tags;               /* npages * nsub * GCM_TAG_SIZE                         */
    size_t store_size, tags_size;
    uint8_t *ualloc;
    size_t ualloc_size;

    /* The page cache. */
    struct frame *frames;        /* max_frames descriptors                               */
    uint8_t **chunks;            /* max_frames / SUVM_CHUNK_FRAMES chunk pointers; written
                                    under resize_lock before the frames become reachable  */
    uint32_t max_frames;
    _Atomic uint32_t nframes;    /* frames scanned by CLOCK (release by resize)          */
    _Atomic uint32_t target;     /* frames >= target are retired, never handed out       */
    _Atomic uint32_t clock_hand;
    struct eleos_spinlock resize_lock; /* serialises resize                                     */

    struct eleos_spinlock free_lock;   /* protects free_stack and free_count                   */
    uint32_t *free_stack;
    uint32_t free_count;
    /* Frames handed out at least once since their chunk was allocated (free_lock; read
     * relaxed through touched_frames): the cache's share of the enclave's EPC footprint,
     * since a chunk's frames commit EPC pages only when first used. */
    _Atomic uint32_t touched_frames;
    uint8_t *touched;            /* per frame: handed out since its chunk came (free_lock) */
    _Atomic uint32_t nfree;      /* free_count, readable without the lock (evictor poll) */

    struct crypto_slot *crypto;  /* SUVM_NCRYPTO slots                                   */

    /* Allocator (enclave_alloc.c). alloc_lock protects everything below it. */
    struct eleos_spinlock alloc_lock;
    uint32_t *amap;              /* npages entries (AMAP_*)                              */
    uint64_t *used;              /* bitmap of allocated pages                            */
    uint64_t hint;               /* next-fit start page                                  */
    struct slab *slabs;          /* descriptors (grown by realloc on the enclave heap)  */
    uint32_t nslabs;             /* descriptors allocated                                */
    uint32_t slab_free;          /* free descriptor list (index + 1)                     */
    uint32_t partial[SUVM_NCLASSES]; /* partial slabs per class (index + 1)              */
    _Atomic uint64_t allocated;  /* live allocation bytes (stats)                        */

    /* Coordination with the platform's EPC share (enclave_coord.c). coord and the
     * configured watermarks are written at create; the rest are atomics. */
    bool coord;
    uint32_t cfg_low, cfg_high;  /* watermarks before the per-size clamp                */
    _Atomic uint64_t coord_gen;  /* the platform generation last applied                */
    _Atomic uint64_t coord_due;  /* TSC at which the size is recomputed regardless      */
    _Atomic uint32_t coord_busy; /* one thread recomputes at a time (try-lock)          */
    _Atomic uint64_t coord_share, coord_other, coord_target; /* gauges for the stats    */

    /* Evictor. */
    _Atomic bool evictor_stop;    /* set by request_stop, read by the loop               */
    _Atomic bool evictor_running; /* one evictor per instance                             */

    /* The instance's handle in the registry of enclave_ecall.c (0 until registered): what
     * ECALLs take instead of this struct's address. Written at create, before publication. */
    uint64_t handle;

    struct stat_shard stats[SUVM_NSHARDS];
};

/* --- enclave_suvm.c --- */
/* Metadata memory of an instance in enc (NULL: host memory, host-mode instances). */
void *suvm_mem_alloc_in(struct eleos_enclave *enc, size_t align, size_t size);
void *suvm_mem_alloc(struct eleos_suvm *s, size_t align, size_t size);
void suvm_mem_free(struct eleos_suvm *s, void *p);
/* 0, or -EPERM (with one line on stderr, once) when s is a host-mode instance and the caller
 * runs in enclave mode: its page cache and metadata are untrusted memory. */
int suvm_host_guard(const struct eleos_suvm *s);
/* One line on stderr, once per process per call site's flag (enclave mode: one exit). */
void suvm_warn_once(_Atomic bool *told, const char *msg);
void suvm_stat_add(struct eleos_suvm *s, enum suvm_stat st, uint64_t n);
/* Applies the integrity policy to a detected failure and returns -EBADMSG. */
int suvm_integrity_failure(struct eleos_suvm *s, uint64_t page, uint32_t sub);

static inline uint8_t *suvm_frame_addr(const struct eleos_suvm *s, uint32_t f) {
    return s->chunks[f / SUVM_CHUNK_FRAMES] + (size_t)(f % SUVM_CHUNK_FRAMES) * SUVM_PAGE_SIZE;
}

/* --- enclave_seal.c --- */
int suvm_crypto_init(struct eleos_suvm *s) __attribute__((warn_unused_result));
void suvm_crypto_fini(struct eleos_suvm *s);
/* Seal / open a whole page between frame data and the backing store. Caller holds LOCKED.
 * seal bumps the version(s); -EOVERFLOW when a counter is exhausted (nothing changed). */
int suvm_seal_page(struct eleos_suvm *s, uint64_t page, const uint8_t *src)
    __attribute__((warn_unused_result));
int suvm_open_page(struct eleos_suvm *s, uint64_t page, uint8_t *dst)
    __attribute__((warn_unused_result));
/* The crypto slots: any free one (spins while all are busy; never blocks otherwise). */
struct crypto_slot *suvm_crypto_get(struct eleos_suvm *s);
void suvm_crypto_put(struct crypto_slot *c);
/* The page-mode fault path (see enclave_seal.c), under the LOCKED bits of both pages:
 * seal_defer seals page (a victim) from src into c's bounce buffer under a new version and
 *   leaves its copy-out pending in c, prefetching the sealed copy of next (SUVM_NO_PAGE:
 *   none) meanwhile; -EOVERFLOW / -EIO: nothing changed, nothing pending.
 * open_swap opens page into dst (its frame), writing out c's pending copy on the way; on
 *   return nothing is pending and the copy is fenced (even on failure: dst is then wiped).
 * seal_complete writes out and fences c's pending copy, if any. */
int suvm_seal_defer(struct eleos_suvm *s, struct crypto_slot *c, uint64_t page,
                    const uint8_t *src, uint64_t next, const uint8_t *ahead)
    __attribute__((warn_unused_result));
int suvm_open_swap(struct eleos_suvm *s, struct crypto_slot *c, uint64_t page, uint8_t *dst,
                   const uint8_t *ahead) __attribute__((warn_unused_result));
void suvm_seal_complete(struct eleos_suvm *s, struct crypto_slot *c);
/* Starts fetching the sealed copy of page, which the calling fault will open (page mode;
 * a hint only, nothing is read). */
void suvm_fault_prefetch(struct eleos_suvm *s, uint64_t page);
/* The same for one sub-page and its tag (sub-page mode, direct access). */
void suvm_sub_prefetch(struct eleos_suvm *s, uint64_t page, uint32_t sub);
/* Sub-page mode: one sub-page. Caller holds LOCKED. open of a never-written sub-page
 * yields zeros. */
int suvm_seal_sub(struct eleos_suvm *s, uint64_t page, uint32_t sub, const uint8_t *src)
    __attribute__((warn_unused_result));
int suvm_open_sub(struct eleos_suvm *s, uint64_t page, uint32_t sub, uint8_t *dst)
    __attribute__((warn_unused_result));

/* --- enclave_paging.c --- */
/* Pins page (faulting it in if needed) and returns its frame. */
int suvm_page_pin(struct eleos_suvm *s, uint64_t page, bool write, uint32_t *frame)
    __attribute__((warn_unused_result));
static inline void suvm_page_unpin(struct eleos_suvm *s, uint32_t f) {
    /* Release: the caller's accesses to the frame happen before an evictor that sees the
     * count drop (pairs with the seq_cst load in try_evict / flush_one). */
    atomic_fetch_sub_explicit(&s->frames[f].pin, 1, memory_order_release);
}
/* Writes a whole page that is not cached without opening its old copy (src, or bytes c
 * when src is NULL). Returns 1 (nothing done) if the page is cached. */
int suvm_page_overwrite(struct eleos_suvm *s, uint64_t page, const void *src, int c)
    __attribute__((warn_unused_result));
/* Takes the page's LOCKED bit, spinning while another thread holds it; returns the word
 * as it was (without LOCKED). */
uint32_t suvm_page_lock(struct eleos_suvm *s, uint64_t page);
static inline void suvm_page_unlock(struct eleos_suvm *s, uint64_t page, uint32_t word) {
    atomic_store_explicit(&s->pt[page].word, word, memory_order_release); /* pairs: lock */
}
/* Returns page to the never-written state, dropping its frame. -EBUSY if pinned (then
 * nothing changes) unless force, in which case a pinned frame is zeroed in place. */
int suvm_page_release(struct eleos_suvm *s, uint64_t page, bool force)
    __attribute__((warn_unused_result));
bool suvm_page_pinned(struct eleos_suvm *s, uint64_t page);
int suvm_frames_grow(struct eleos_suvm *s, uint32_t new_frames)
    __attribute__((warn_unused_result));
void suvm_frames_free_all(struct eleos_suvm *s);

/* The evictor's loop (the body of the evictor ECALL once its handle is resolved); pass (may
 * be NULL) runs at the start of every pass, with no pin or lock held. */
long suvm_evictor_loop(struct eleos_suvm *s, void (*pass)(struct eleos_suvm *));
/* Resizes to new_frames (a chunk multiple in [1 chunk, max_frames]) under resize_lock, taken
 * by waiting (wait) or tried (else -EAGAIN); a shrink waits at most wait_ns for pinned
 * frames, then is undone (-EBUSY). Counts the resize. */
int suvm_resize_frames(struct eleos_suvm *s, uint32_t new_frames, bool wait, uint64_t wait_ns)
    __attribute__((warn_unused_result));
/* The evictor's watermarks for the current cache size. */
void suvm_watermarks(const struct eleos_suvm *s, uint32_t *low, uint32_t *high);

/* --- enclave_coord.c (above enclave_paging.c: it resizes; access, alloc and the evictor's
 * ECALL call its checks) --- */
/* The size a new instance starts with (frames; sets s->coord). Needs s->max_frames. */
uint32_t suvm_coord_initial(struct eleos_suvm *s);
/* The check on SUVM's own paths: recomputes the size when the platform's generation moved
 * or the period passed, and resizes (a shrink waits at most wait_ns for pinned pages).
 * Cheap when nothing is due: two loads and a TSC read. Callers hold no LOCKED bit, no
 * crypto slot and ideally no pin. */
void suvm_coord_check_slow(struct eleos_suvm *s, uint64_t wait_ns);
static inline void suvm_coord_check(struct eleos_suvm *s, uint64_t wait_ns) {
    if (__builtin_expect(s->coord, 0))
        suvm_coord_check_slow(s, wait_ns);
}
/* How long a check on an enclave thread's path (fault, allocation) waits for pinned pages,
 * and the evictor's (a host thread that holds no pins). */
#define SUVM_COORD_WAIT_FAULT_NS 50000ull
#define SUVM_COORD_WAIT_EVICTOR_NS 10000000ull
/* A pin's check: every fault, and every COORD_HIT_TICKS-th hit of a thread (a cache that
 * fits its working set takes no faults and must still follow its share). */
void suvm_coord_pin_tick(struct eleos_suvm *s, uint64_t page);
/* The evictor's pass (suvm_evictor_loop's pass argument). */
void suvm_coord_evictor_pass(struct eleos_suvm *s);

/* --- enclave_ecall.c --- */
/* Registers a fully built instance (sets s->handle). -ENOMEM when the registry is full. */
int suvm_register(struct eleos_suvm *s) __attribute__((warn_unused_result));
/* Removes s from the registry, stopping an evictor the host still runs on it and waiting
 * until no ECALL uses it any more. No-op if s was never registered. */
void suvm_unregister(struct eleos_suvm *s);
/* ECALL body for the host side of the evictor (host_evictor.c): the handle of the instance
 * at address arg in the calling enclave, or -ESRCH (counted). arg is compared with the
 * registered addresses, never dereferenced. */
long suvm_ecall_find(void *arg);

/* --- the evictor's thread (host_evictor.c) and its start from inside (enclave_evictor.c) --- */

/* The host's record of an evictor thread. Untrusted memory: the enclave writes enc and handle
 * into it and hands it to the host, never reads it back. */
struct suvm_evictor_host {
    struct eleos_enclave *enc;   /* NULL: a host-mode instance */
    uint64_t handle;
    pthread_t thread;
};

struct eleos_suvm_evictor {
    struct eleos_enclave *enc;
    uint64_t handle;
    bool from_enclave;           /* started inside the enclave: this struct is enclave heap */
    struct suvm_evictor_host *host;
};

/* OCALL bodies (host mode): start the thread of the record at arg (0 or -errno), and join
 * it (0). */
long suvm_evictor_host_spawn(void *arg);
long suvm_evictor_host_join(void *arg);
/* eleos_suvm_evictor_start/stop called in enclave mode. */
int suvm_evictor_start_inside(struct eleos_suvm *s, struct eleos_suvm_evictor **out);
void suvm_evictor_stop_inside(struct eleos_suvm_evictor *ev);

/* --- enclave_alloc.c --- */
int suvm_alloc_init(struct eleos_suvm *s) __attribute__((warn_unused_result));
void suvm_alloc_fini(struct eleos_suvm *s);
size_t suvm_alloc_metadata_bytes(struct eleos_suvm *s);

#endif
