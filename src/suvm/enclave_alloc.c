/*
 * SUVM allocator. All of its metadata lives in the enclave (the original Eleos kept it in
 * untrusted memory, where the host could redirect allocations):
 *
 *   - amap: 4 bytes per backing page: free, head of a run (with its page count), inside a
 *     run, or a slab page (with its descriptor index);
 *   - used: 1 bit per page, for next-fit search of free runs;
 *   - slab descriptors, one per slab page (24 bytes), for objects of 64 B .. 2 KiB in
 *     power-of-two classes; an object never crosses a page, so a spointer to it can be
 *     dereferenced once per object.
 *
 * Freed pages are released (suvm_page_release): their frames are dropped and they return
 * to the never-written state, so new runs and fresh slab slots read as zeros without being
 * written; reused slab slots are zeroed on allocation. One spinlock (alloc_lock) protects
 * everything here: allocation is not on the fault path, and a spinlock cannot exit.
 */
#include <errno.h>
#include <string.h>

#include "suvm/suvm_internal.h"

#define NO_RUN UINT64_MAX

static void bits_set(uint64_t *bm, uint64_t i, uint64_t n, bool v) {
    for (uint64_t k = i; k < i + n; k++) {
        if (v)
            bm[k >> 6] |= 1ull << (k & 63);
        else
            bm[k >> 6] &= ~(1ull << (k & 63));
    }
}

/* First run of n free pages in [from, to). alloc_lock held. */
static uint64_t find_run_in(const struct eleos_suvm *s, uint64_t n, uint64_t from, uint64_t to) {
    uint64_t i = from;
    while (i + n <= to) {
        /* Skip to the next free page. */
        uint64_t w = ~s->used[i >> 6] >> (i & 63);
        if (!w) {
            i = (i | 63) + 1;
            continue;
        }
        i += (uint64_t)__builtin_ctzll(w);
        if (i + n > to)
            break;
        /* Count free pages from i. */
        uint64_t j = i;
        while (j < i + n) {
            uint64_t u = s->used[j >> 6] >> (j & 63);
            if (u) {
                j += (uint64_t)__builtin_ctzll(u);
                break;
            }
            j = (j | 63) + 1;
        }
        if (j >= i + n)
            return i;
        i = j;
    }
    return NO_RUN;
}

static uint64_t find_run(struct eleos_suvm *s, uint64_t n) {
    uint64_t p = find_run_in(s, n, s->hint, s->npages);
    if (p == NO_RUN)
        p = find_run_in(s, n, 1, s->npages);
    if (p != NO_RUN)
        s->hint = p + n < s->npages ? p + n : 1;
    return p;
}

int suvm_alloc_init(struct eleos_suvm *s) {
    size_t words = (size_t)((s->npages + 63) / 64);
    s->amap = suvm_mem_alloc(s, 64, (size_t)s->npages * sizeof *s->amap);
    s->used = suvm_mem_alloc(s, 64, words * sizeof *s->used);
    if (!s->amap || !s->used)
        return -ENOMEM;
    memset(s->amap, 0, (size_t)s->npages * sizeof *s->amap);
    memset(s->used, 0, words * sizeof *s->used);
    bits_set(s->used, 0, 1, true); /* page 0: address 0 is never an allocation */
    /* Pages past the end (in the last word) are never free. */
    for (uint64_t i = s->npages; i < words * 64; i++)
        bits_set(s->used, i, 1, true);
    s->hint = 1;
    return 0;
}

void suvm_alloc_fini(struct eleos_suvm *s) {
    suvm_mem_free(s, s->amap);
    suvm_mem_free(s, s->used);
    suvm_mem_free(s, s->slabs);
    s->amap = NULL;
    s->used = NULL;
    s->slabs = NULL;
}

size_t suvm_alloc_metadata_bytes(struct eleos_suvm *s) {
    eleos_spin_lock(&s->alloc_lock);
    size_t n = (size_t)s->nslabs * sizeof(struct slab);
    eleos_spin_unlock(&s->alloc_lock);
    return n;
}

/* --- Slabs --------------------------------------------------------------------------------- */

static unsigned class_of(size_t size) {
    if (size <= 64)
        return 0;
    return (unsigned)(64 - __builtin_clzll((unsigned long long)size - 1)) - 6;
}

static uint32_t objs_per_slab(unsigned cls) {
    return 64u >> cls;
}

static void partial_remove(struct eleos_suvm *s, uint32_t idx) {
    struct slab *d = &s->slabs[idx - 1];
    if (d->prev)
        s->slabs[d->prev - 1].next = d->next;
    else
        s->partial[d->cls] = d->next;
    if (d->next)
        s->slabs[d->next - 1].prev = d->prev;
    d->next = d->prev = 0;
}

static void partial_push(struct eleos_suvm *s, uint32_t idx) {
    struct slab *d = &s->slabs[idx - 1];
    d->prev = 0;
    d->next = s->partial[d->cls];
    if (d->next)
        s->slabs[d->next - 1].prev = idx;
    s->partial[d->cls] = idx;
}

/* A free descriptor (index + 1), growing the table; 0 on exhaustion. alloc_lock held. */
static uint32_t slab_desc_new(struct eleos_suvm *s) {
    if (s->slab_free) {
        uint32_t idx = s->slab_free;
        s->slab_free = s->slabs[idx - 1].next;
        return idx;
    }
    uint32_t n = s->nslabs ? s->nslabs * 2 : 64;
    if (n > AMAP_VAL_MASK)
        return 0;
    struct slab *t = suvm_mem_alloc(s, 64, (size_t)n * sizeof *t);
    if (!t)
        return 0;
    if (s->nslabs)
        memcpy(t, s->slabs, (size_t)s->nslabs * sizeof *t);
    suvm_mem_free(s, s->slabs);
    s->slabs = t;
    /* Chain the new descriptors [nslabs+1, n-1] onto the free list, hand out nslabs. */
    uint32_t first = s->nslabs + 1;
    for (uint32_t i = first + 1; i <= n; i++)
        s->slabs[i - 1].next = i < n ? i + 1 : 0;
    s->slab_free = first + 1 <= n ? first + 1 : 0;
    s->nslabs = n;
    return first;
}

static int slab_alloc(struct eleos_suvm *s, size_t size, uint64_t *addr) {
    unsigned cls = class_of(size);
    uint32_t objsize = 64u << cls;
    eleos_spin_lock(&s->alloc_lock);
    uint32_t idx = s->partial[cls];
    if (!idx) {
        uint64_t page = find_run(s, 1);
        if (page == NO_RUN) {
            eleos_spin_unlock(&s->alloc_lock);
            return -ENOMEM;
        }
        idx = slab_desc_new(s);
        if (!idx) {
            eleos_spin_unlock(&s->alloc_lock);
            return -ENOMEM;
        }
        struct slab *d = &s->slabs[idx - 1];
        memset(d, 0, sizeof *d);
        d->page = (uint32_t)page;
        d->cls = (uint8_t)cls;
        d->nfree = (uint16_t)objs_per_slab(cls);
        s->amap[page] = AMAP_SLAB | (idx - 1);
        bits_set(s->used, page, 1, true);
        partial_push(s, idx);
    }
    struct slab *d = &s->slabs[idx - 1];
    uint32_t i = (uint32_t)__builtin_ctzll(~d->used);
    d->used |= 1ull << i;
    if (--d->nfree == 0)
        partial_remove(s, idx);
    /* Slots never handed out since the page was (re)claimed still read as zeros. */
    bool needs_zero = i < d->hwm;
    if (i >= d->hwm)
        d->hwm = (uint8_t)(i + 1);
    uint64_t a = ((uint64_t)d->page << SUVM_PAGE_SHIFT) + (uint64_t)i * objsize;
    atomic_fetch_add_explicit(&s->allocated, objsize, memory_order_relaxed);
    eleos_spin_unlock(&s->alloc_lock);
    if (needs_zero) {
        int r = eleos_suvm_memset(s, a, 0, objsize);
        if (r) {
            int r2 = eleos_suvm_free(s, a);
            (void)r2; /* freeing what we just allocated cannot fail */
            return r;
        }
    }
    *addr = a;
    return 0;
}

/* Frees slot i of slab idx. alloc_lock held. */
static int slab_free(struct eleos_suvm *s, uint32_t idx, uint64_t off) {
    struct slab *d = &s->slabs[idx - 1];
    uint32_t objsize = 64u << d->cls;
    if (off % objsize)
        return -EINVAL;
    uint32_t i = (uint32_t)(off / objsize);
    if (!((d->used >> i) & 1))
        return -EINVAL; /* double free */
    uint32_t nobj = objs_per_slab(d->cls);
    if (d->nfree + 1u == nobj) {
        /* Last object: the page goes back, with its frame and its sealed data. */
        if (suvm_page_pinned(s, d->page))
            return -EBUSY;
        int r = suvm_page_release(s, d->page, true);
        (void)r; /* force: cannot fail */
        if (d->nfree)
            partial_remove(s, idx);
        s->amap[d->page] = AMAP_FREE;
        bits_set(s->used, d->page, 1, false);
        d->used = 0;
        d->next = s->slab_free;
        s->slab_free = idx;
    } else {
        d->used &= ~(1ull << i);
        if (d->nfree++ == 0)
            partial_push(s, idx);
    }
    atomic_fetch_sub_explicit(&s->allocated, objsize, memory_order_relaxed);
    return 0;
}

/* --- Public API ---------------------------------------------------------------------------- */

int eleos_suvm_alloc(struct eleos_suvm *s, size_t size, uint64_t *addr) {
    int g = suvm_host_guard(s);
    if (g)
        return g;
    if (size == 0)
        return -EINVAL;
    /* Allocation is one of coordination's checks (the heap, hence the footprint, grows with
     * the application's data). Before alloc_lock: a resize may take a while. */
    suvm_coord_check(s, SUVM_COORD_WAIT_FAULT_NS);
    if (size <= ELEOS_SUVM_SLAB_MAX)
        return slab_alloc(s, size, addr);
    uint64_t n = (size + SUVM_PAGE_SIZE - 1) / SUVM_PAGE_SIZE;
    if (size > SIZE_MAX - SUVM_PAGE_SIZE || n > AMAP_VAL_MASK || n >= s->npages)
        return -ENOMEM;
    eleos_spin_lock(&s->alloc_lock);
    uint64_t p = find_run(s, n);
    if (p == NO_RUN) {
        eleos_spin_unlock(&s->alloc_lock);
        return -ENOMEM;
    }
    bits_set(s->used, p, n, true);
    s->amap[p] = AMAP_RUN | (uint32_t)n;
    for (uint64_t i = 1; i < n; i++)
        s->amap[p + i] = AMAP_TAIL;
    atomic_fetch_add_explicit(&s->allocated, n * SUVM_PAGE_SIZE, memory_order_relaxed);
    eleos_spin_unlock(&s->alloc_lock);
    *addr = p << SUVM_PAGE_SHIFT; /* released pages read as zeros: nothing to clear */
    return 0;
}

int eleos_suvm_free(struct eleos_suvm *s, uint64_t addr) {
    int g = suvm_host_guard(s);
    if (g)
        return g;
    uint64_t page = addr >> SUVM_PAGE_SHIFT, off = addr & SUVM_PAGE_MASK;
    if (page == 0 || page >= s->npages)
        return -EINVAL;
    int r = 0;
    eleos_spin_lock(&s->alloc_lock);
    uint32_t a = s->amap[page];
    switch (a & AMAP_TYPE_MASK) {
    case AMAP_RUN: {
        uint64_t n = a & AMAP_VAL_MASK;
        if (off) {
            r = -EINVAL;
            break;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (suvm_page_pinned(s, page + i)) {
                r = -EBUSY;
                break;
            }
        }
        if (r)
            break;
        for (uint64_t i = 0; i < n; i++) {
            int rr = suvm_page_release(s, page + i, true);
            (void)rr; /* force: cannot fail */
            s->amap[page + i] = AMAP_FREE;
        }
        bits_set(s->used, page, n, false);
        atomic_fetch_sub_explicit(&s->allocated, n * SUVM_PAGE_SIZE, memory_order_relaxed);
        break;
    }
    case AMAP_SLAB:
        r = slab_free(s, (a & AMAP_VAL_MASK) + 1, off);
        break;
    default:
        r = -EINVAL;
    }
    eleos_spin_unlock(&s->alloc_lock);
    return r;
}

size_t eleos_suvm_alloc_size(struct eleos_suvm *s, uint64_t addr) {
    uint64_t page = addr >> SUVM_PAGE_SHIFT, off = addr & SUVM_PAGE_MASK;
    if (page == 0 || page >= s->npages)
        return 0;
    size_t size = 0;
    eleos_spin_lock(&s->alloc_lock);
    uint32_t a = s->amap[page];
    if ((a & AMAP_TYPE_MASK) == AMAP_RUN && !off) {
        size = (size_t)(a & AMAP_VAL_MASK) * SUVM_PAGE_SIZE;
    } else if ((a & AMAP_TYPE_MASK) == AMAP_SLAB) {
        struct slab *d = &s->slabs[a & AMAP_VAL_MASK];
        uint32_t objsize = 64u << d->cls;
        if (off % objsize == 0 && ((d->used >> (off / objsize)) & 1))
            size = objsize;
    }
    eleos_spin_unlock(&s->alloc_lock);
    return size;
}
