/*
 * SUVM — Secure User-managed Virtual Memory (docs/design.md): instance lifetime, statistics.
 *
 * Design. An instance is created inside an enclave and lives entirely in its heap, except
 * the backing store. Data flow of an access:
 *
 *   spointer / bulk op --(page index)--> page table entry (8 B, enclave)
 *       resident and not LOCKED: pin the frame, done (a "hit")
 *       else: CAS LOCKED; take a frame (free stack, else CLOCK-evict one on the spot);
 *             SEALED? open + verify from the backing store (major) : zero-fill (minor);
 *             publish the frame in the entry (release) and unlock.
 *   eviction (background evictor in batches between the watermarks, or a faulting thread
 *   when no frame is free): CLOCK over unpinned frames; dirty pages are sealed to the
 *   backing store under a new version, clean ones dropped. A faulting thread that evicts a
 *   dirty page seals it and opens its own page in one pipelined pass (enclave_seal.c), and
 *   prefetches the next fault's likely victim (clock_peek, enclave_paging.c).
 *
 * Files, top down: this file (lifetime, statistics) calls the others; enclave_alloc.c
 * (allocator), enclave_access.c (spointers, bulk and sub-page direct access), enclave_coord.c
 * (the cache's size coordinated with the platform EPC), enclave_paging.c (faults, CLOCK,
 * evictor, flush, resize), enclave_seal.c (AES-GCM and every access to
 * untrusted memory), and the leaf enclave_base.c (memory, counters, integrity failures) that
 * all of them use. Beside them:
 * enclave_ecall.c (the ECALL entry points and
 * the registry of live instances they resolve handles in), host_evictor.c (the host thread
 * that runs the evictor inside the enclave).
 *
 * Threads. Any number of enclave threads may use an instance; plus at most one evictor.
 * No code on the access paths makes a system call: waiting is spinning (spinlocks and the
 * per-page LOCKED bit), memory comes from the enclave heap, the crypto contexts are set up
 * at create. The evictor's nap is an explicit OCALL. create/destroy make a few counted
 * exits (untrusted allocation of the backing store, OpenSSL context setup, randomness).
 *
 * Invariants. A pinned page is resident and never evicted. A page's version only grows
 * while the key lives (free keeps it), so (key, nonce) pairs are never reused. Plaintext
 * exists only in enclave memory (frames, bounce buffers, stack temporaries).
 *
 * Trust. The backing store (ciphertext and tags) is host-controlled: every read of it is a
 * snapshot verified by AES-GCM against the version kept here. The host also chooses the
 * arguments of the ECALLs it makes (the evictor's): they are handles, resolved in an
 * enclave-side registry, never pointers (enclave_ecall.c). Not defended against:
 * denial of service (the host can destroy the store), access-pattern leakage (which pages
 * are faulted is visible to the host), and the enclave's own bugs (a spointer used after
 * free reads another allocation's data).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "suvm/suvm_internal.h"

/* Defaults from the Linux SGX reclaimer: start below 32 free frames, refill to 64. */
#define DEFAULT_LOW_WATERMARK  32u
#define DEFAULT_HIGH_WATERMARK 64u

void eleos_suvm_config_default(struct eleos_suvm_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->cache_size = ELEOS_SUVM_DEFAULT_CACHE_SIZE;
    cfg->backing_size = ELEOS_SUVM_DEFAULT_BACKING_SIZE;
    cfg->key_size = ELEOS_SUVM_DEFAULT_KEY_SIZE;
    cfg->clean_drop = true;
    cfg->integrity_policy = ELEOS_SUVM_INTEGRITY_ERROR;
}

/* --- Statistics ------------------------------------------------------------------------------ */

static uint64_t stat_sum(struct eleos_suvm *s, enum suvm_stat st) {
    uint64_t v = 0;
    for (unsigned i = 0; i < SUVM_NSHARDS; i++)
        v += atomic_load_explicit(&s->stats[i].c[st], memory_order_relaxed);
    return v;
}

/* Fixed enclave bytes per backing page: page table entry, allocator map and bit, and in
 * sub-page mode one 32-bit version per sub-page. Times 8 to keep the bitmap's 1/8 exact. */
static uint64_t per_page_metadata_x8(const struct eleos_suvm *s) {
    uint64_t b = 8 * (sizeof(struct pte) + sizeof(uint32_t)) + 1;
    if (s->nsub > 1)
        b += 8ull * s->nsub * sizeof(uint32_t);
    return b;
}

void eleos_suvm_stats(struct eleos_suvm *s, struct eleos_suvm_stats *out) {
    memset(out, 0, sizeof *out);
    out->hits = stat_sum(s, ST_HITS);
    out->minor_faults = stat_sum(s, ST_MINOR);
    out->major_faults = stat_sum(s, ST_MAJOR);
    out->evictions = stat_sum(s, ST_CLEAN_DROPS) + stat_sum(s, ST_DIRTY_WB);
    out->clean_drops = stat_sum(s, ST_CLEAN_DROPS);
    out->dirty_writebacks = stat_sum(s, ST_DIRTY_WB);
    out->flush_writebacks = stat_sum(s, ST_FLUSH_WB);
    out->sync_evictions = stat_sum(s, ST_SYNC_EVICT);
    out->evictor_batches = stat_sum(s, ST_EVICTOR_BATCHES);
    out->evictor_naps = stat_sum(s, ST_EVICTOR_NAPS);
    out->subpage_reads = stat_sum(s, ST_SUB_READS);
    out->subpage_writes = stat_sum(s, ST_SUB_WRITES);
    if (s->nsub == 1) {
        /* Page mode seals and opens whole pages only: every seal is a write-back or a flush,
         * every open a major fault, so the fault path does not count bytes separately. */
        out->bytes_sealed = SUVM_PAGE_SIZE * (out->dirty_writebacks + out->flush_writebacks);
        out->bytes_opened = SUVM_PAGE_SIZE * out->major_faults;
    } else {
        out->bytes_sealed = stat_sum(s, ST_BYTES_SEALED);
        out->bytes_opened = stat_sum(s, ST_BYTES_OPENED);
    }
    out->integrity_failures = stat_sum(s, ST_INTEGRITY);
    out->cache_frames = atomic_load_explicit(&s->nframes, memory_order_relaxed);
    out->free_frames = atomic_load_explicit(&s->nfree, memory_order_relaxed);
    out->allocated_bytes = atomic_load_explicit(&s->allocated, memory_order_relaxed);
    out->slab_metadata_bytes = suvm_alloc_metadata_bytes(s);
    uint64_t fixed = s->npages * per_page_metadata_x8(s) / 8;
    uint64_t frames = (uint64_t)s->max_frames * (sizeof(struct frame) + sizeof(uint32_t) + 1) +
                      s->max_frames / SUVM_CHUNK_FRAMES * sizeof(uint8_t *);
    out->metadata_bytes = fixed + frames + out->slab_metadata_bytes +
                          SUVM_NCRYPTO * (sizeof(struct crypto_slot) + SUVM_PAGE_SIZE) +
                          sizeof *s;
    out->metadata_per_gib = ((1ull << 30) / SUVM_PAGE_SIZE) * per_page_metadata_x8(s) / 8;
    out->resize_shrinks = stat_sum(s, ST_RESIZE_SHRINKS);
    out->resize_grows = stat_sum(s, ST_RESIZE_GROWS);
    out->resize_busy = stat_sum(s, ST_RESIZE_BUSY);
    out->coord_recomputes = stat_sum(s, ST_COORD_RECOMPUTES);
    out->coord_share = atomic_load_explicit(&s->coord_share, memory_order_relaxed);
    out->coord_other = atomic_load_explicit(&s->coord_other, memory_order_relaxed);
    out->coord_target = atomic_load_explicit(&s->coord_target, memory_order_relaxed);
    out->coordinated = s->coord;
}

void eleos_suvm_stats_reset(struct eleos_suvm *s) {
    for (unsigned i = 0; i < SUVM_NSHARDS; i++)
        for (unsigned k = 0; k < ST_COUNT; k++)
            atomic_store_explicit(&s->stats[i].c[k], 0, memory_order_relaxed);
}

/* --- Lifetime ------------------------------------------------------------------------------- */

/* The most frames the cache may have: cache_max_size, else cache_size; for an auto size, the
 * platform's capacity (an enclave's cache never needs more), or the default for a host-mode
 * instance. */
static uint32_t max_frames_of(const struct eleos_suvm_config *cfg, struct eleos_enclave *enc) {
    uint64_t max = cfg->cache_max_size ? cfg->cache_max_size : cfg->cache_size;
    if (!max) {
        struct eleos_epc_status st;
        max = ELEOS_SUVM_DEFAULT_CACHE_SIZE;
        if (enc && eleos_enclave_epc_status(enc, &st) == 0 && st.capacity)
            max = st.capacity * SUVM_PAGE_SIZE;
        if (max / SUVM_PAGE_SIZE >= PTE_FRAME_MASK)
            max = (uint64_t)(PTE_FRAME_MASK - 1) * SUVM_PAGE_SIZE;
    }
    return (uint32_t)(max / SUVM_CHUNK_SIZE * SUVM_CHUNK_FRAMES);
}

static int check_config(const struct eleos_suvm_config *c) {
    bool auto_size = c->cache_size == ELEOS_SUVM_CACHE_AUTO;
    if ((!auto_size && c->cache_size < SUVM_CHUNK_SIZE) || c->backing_size < 2 * SUVM_PAGE_SIZE)
        return -EINVAL;
    size_t max = c->cache_max_size ? c->cache_max_size : c->cache_size;
    if (max < c->cache_size || (c->cache_max_size && c->cache_max_size < SUVM_CHUNK_SIZE))
        return -EINVAL;
    if (c->sizing != ELEOS_SUVM_SIZING_DEFAULT && c->sizing != ELEOS_SUVM_SIZING_FIXED &&
        c->sizing != ELEOS_SUVM_SIZING_COORDINATED)
        return -EINVAL;
    /* Frame indices + 1 must fit PTE_FRAME_MASK; page indices 32 bits (the nonce). */
    if (max / SUVM_PAGE_SIZE >= PTE_FRAME_MASK ||
        c->backing_size / SUVM_PAGE_SIZE >= UINT32_MAX)
        return -EINVAL;
    if (c->key_size != 16 && c->key_size != 24 && c->key_size != 32)
        return -EINVAL;
    if (c->subpage_size != 0 && c->subpage_size != 256 && c->subpage_size != 512 &&
        c->subpage_size != 1024)
        return -EINVAL;
    if (c->integrity_policy != ELEOS_SUVM_INTEGRITY_ERROR &&
        c->integrity_policy != ELEOS_SUVM_INTEGRITY_ABORT)
        return -EINVAL;
    return 0;
}

/* The EPC bytes this enclave may hold resident: today its configured cap, as the emulator
 * reports it. One function, so that a platform-wide EPC with a per-enclave share can
 * answer here instead. */
static size_t epc_capacity(const struct eleos_enclave *enc) {
    struct eleos_enclave_stats st;
    eleos_enclave_stats(enc, &st);
    return (size_t)st.epc_capacity * SUVM_PAGE_SIZE;
}

/* The largest page cache that fits the EPC next to everything else the enclave keeps
 * resident: an eighth of the EPC for its code, heap and stacks, and this instance's own
 * page table and versions. A larger cache would be paged by the driver under SUVM's feet
 * (double paging: each SUVM hit may be an EPC fault). */
static size_t cache_budget(const struct eleos_enclave *enc, const struct eleos_suvm_config *c) {
    size_t epc = epc_capacity(enc);
    size_t npages = c->backing_size / SUVM_PAGE_SIZE;
    size_t nsub = c->subpage_size ? SUVM_PAGE_SIZE / c->subpage_size : 1;
    size_t meta = npages * sizeof(struct pte) + (nsub > 1 ? npages * nsub * sizeof(uint32_t) : 0);
    size_t reserve = epc / 8 + meta;
    return epc > reserve ? (epc - reserve) / SUVM_CHUNK_SIZE * SUVM_CHUNK_SIZE : 0;
}

/* Where the instance may live, and a cache that fits: 0, or -EPERM (host mode without
 * host_mode), -EINVAL (host_mode inside an enclave), -ENOMEM (not one chunk fits). *c gets
 * the cache sizes clamped to the EPC, with a line on stderr when they were. */
static int check_placement(struct eleos_enclave *enc, struct eleos_suvm_config *c) {
    static _Atomic bool told_host, told_clamp;
    if (!enc && !c->host_mode) {
        suvm_warn_once(&told_host, "eleos_suvm_create called in host mode: the page cache "
                                   "would be untrusted memory; set host_mode for a test "
                                   "instance (-EPERM)");
        return -EPERM;
    }
    if (!enc)
        return 0;
    if (c->host_mode)
        return -EINVAL;
    size_t budget = cache_budget(enc, c);
    size_t max = c->cache_max_size ? c->cache_max_size : c->cache_size;
    if (budget < SUVM_CHUNK_SIZE)
        return -ENOMEM;
    if (max <= budget)
        return 0;
    if (!atomic_exchange_explicit(&told_clamp, true, memory_order_relaxed))
        fprintf(stderr, "eleos: suvm: a %zu MiB cache cannot fit the enclave's %zu MiB EPC: "
                        "clamped to %zu MiB\n", max >> 20, epc_capacity(enc) >> 20,
                budget >> 20);
    if (c->cache_size > budget)
        c->cache_size = budget;
    if (c->cache_max_size > budget)
        c->cache_max_size = budget;
    return 0;
}

int eleos_suvm_create(const struct eleos_suvm_config *config, struct eleos_suvm **out) {
    int r = check_config(config);
    if (r)
        return r;
    struct eleos_enclave *enc = eleos_enclave_current();
    struct eleos_suvm_config c = *config;
    r = check_placement(enc, &c);
    if (r)
        return r;
    const struct eleos_suvm_config *cfg = &c;
    struct eleos_suvm *s = suvm_mem_alloc_in(enc, 64, sizeof *s);
    if (!s)
        return -ENOMEM;
    memset(s, 0, sizeof *s);
    s->enc = enc;
    s->cfg = *cfg;
    s->npages = cfg->backing_size / SUVM_PAGE_SIZE;
    s->nsub = cfg->subpage_size ? (uint32_t)(SUVM_PAGE_SIZE / cfg->subpage_size) : 1;
    s->subsz = SUVM_PAGE_SIZE / s->nsub;
    s->max_frames = max_frames_of(cfg, enc);
    /* Watermarks: defaults, clamped to the cache's size whenever the evictor reads them
     * (suvm_watermarks), so small caches still have frames to use. */
    s->cfg_low = cfg->low_watermark ? cfg->low_watermark : DEFAULT_LOW_WATERMARK;
    s->cfg_high = cfg->high_watermark ? cfg->high_watermark : DEFAULT_HIGH_WATERMARK;

    r = gcm_random_key(s->key, cfg->key_size);
    if (r)
        goto fail;
    r = -ENOMEM;
    s->pt = suvm_mem_alloc(s, 64, (size_t)s->npages * sizeof *s->pt);
    if (!s->pt)
        goto fail;
    memset(s->pt, 0, (size_t)s->npages * sizeof *s->pt);
    if (s->nsub > 1) {
        size_t n = (size_t)s->npages * s->nsub * sizeof *s->subver;
        s->subver = suvm_mem_alloc(s, 64, n);
        if (!s->subver)
            goto fail;
        memset(s->subver, 0, n);
    }
    s->store_size = (size_t)s->npages * SUVM_PAGE_SIZE;
    s->tags_size = (size_t)s->npages * s->nsub * GCM_TAG_SIZE;
    /* One untrusted mapping for ciphertext and tags, 2 MiB aligned, and a request for 2 MiB
     * pages (one counted exit, at create only): every major fault touches two random store
     * pages and two tags, and with 4 KiB pages each costs a TLB miss (a two-dimensional
     * page walk in a VM). A hint; without it nothing changes but speed. The host commits
     * the store in 2 MiB steps as pages are first sealed. */
    size_t used = (s->store_size + s->tags_size + SUVM_HUGE - 1) & ~(SUVM_HUGE - 1);
    s->ualloc_size = used + SUVM_HUGE;
    s->ualloc = eleos_untrusted_alloc(s->ualloc_size);
    if (!s->ualloc)
        goto fail;
    s->store = (uint8_t *)(((uintptr_t)s->ualloc + SUVM_HUGE - 1) & ~(uintptr_t)(SUVM_HUGE - 1));
    s->tags = s->store + s->store_size;
    (void)madvise(s->store, used, MADV_HUGEPAGE);
    s->frames = suvm_mem_alloc(s, 64, (size_t)s->max_frames * sizeof *s->frames);
    s->chunks = suvm_mem_alloc(s, 64, s->max_frames / SUVM_CHUNK_FRAMES * sizeof *s->chunks);
    s->free_stack = suvm_mem_alloc(s, 64, (size_t)s->max_frames * sizeof *s->free_stack);
    s->touched = suvm_mem_alloc(s, 64, s->max_frames);
    if (!s->frames || !s->chunks || !s->free_stack || !s->touched)
        goto fail;
    memset(s->touched, 0, s->max_frames);
    memset(s->frames, 0, (size_t)s->max_frames * sizeof *s->frames);
    memset(s->chunks, 0, s->max_frames / SUVM_CHUNK_FRAMES * sizeof *s->chunks);
    r = suvm_crypto_init(s);
    if (r)
        goto fail;
    r = suvm_alloc_init(s);
    if (r)
        goto fail;
    /* Last before the frames: an auto size measures the metadata allocated above. */
    uint32_t nframes = suvm_coord_initial(s);
    r = suvm_frames_grow(s, nframes);
    if (r)
        goto fail;
    uint32_t low, high;
    suvm_watermarks(s, &low, &high);
    s->cfg.low_watermark = low;
    s->cfg.high_watermark = high;
    r = suvm_register(s); /* last: from here on ECALLs can reach s */
    if (r)
        goto fail;
    *out = s;
    return 0;
fail:
    eleos_suvm_destroy(s);
    return r;
}

void eleos_suvm_destroy(struct eleos_suvm *s) {
    if (!s)
        return;
    suvm_unregister(s); /* first: no ECALL may use s while it is torn down */
    suvm_frames_free_all(s);
    suvm_alloc_fini(s);
    suvm_crypto_fini(s);
    if (s->ualloc)
        eleos_untrusted_free(s->ualloc, s->ualloc_size);
    suvm_mem_free(s, s->pt);
    suvm_mem_free(s, s->subver);
    suvm_mem_free(s, s->frames);
    suvm_mem_free(s, s->chunks);
    suvm_mem_free(s, s->free_stack);
    suvm_mem_free(s, s->touched);
    memset(s->key, 0, sizeof s->key);
    suvm_mem_free(s, s);
}

void *eleos_suvm_backing_slot(struct eleos_suvm *s, uint64_t page, uint8_t **tags,
                              size_t *tags_size) {
    if (page >= s->npages)
        return NULL;
    if (tags)
        *tags = s->tags + page * s->nsub * GCM_TAG_SIZE;
    if (tags_size)
        *tags_size = (size_t)s->nsub * GCM_TAG_SIZE;
    return s->store + page * SUVM_PAGE_SIZE;
}
