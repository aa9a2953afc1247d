/*
 * kvs_store.c — the eleos-kvs item store (memcached's items.c + slabs.c + assoc.c, simplified).
 *
 * Design. One lock (s->lock) protects everything below; kvs_store_foo() takes it and calls
 * do_foo()/foo_locked(). Items are split across the trust boundary of sgx/eleos modes:
 *
 *   trusted (s->meta heap)      struct kvs_item: hash chain, LRU links, key, flags, expiry,
 *                               CAS, and the backend address of the value chunk; the bucket
 *                               array; per-class free-chunk stacks and page lists.
 *   value backend (s->mem)      slab pages of s->page_size bytes, carved into chunks of the
 *                               class size. A chunk holds only the value bytes; it is sized
 *                               by memcached's whole-item formula (header + key + value +
 *                               CRLF + CAS) so that -m bounds the number of items, and so the
 *                               trusted headers, exactly as memcached's -m does.
 *
 * Slab classes grow by a factor (1.25) from 96 bytes up to half a page, plus one class of a
 * whole page for items above that (memcached chains chunks instead; one chunk is simpler and
 * costs at most the same memory). A class gets pages while the total is under -m (its first
 * page always, as memcached); once it cannot, allocation reuses an expired item from the
 * class's LRU tail or evicts the tail. Pages are never moved between classes (no slab
 * automover) and are only freed at destroy.
 *
 * Time is memcached's rel_time: seconds since a clock origin 62 s before creation; expiry
 * and flush_all follow memcached 1.6.18 (realtime(), item_is_flushed()). Items are checked
 * lazily on access and at the LRU tail on allocation.
 *
 * Pinning: an item being copied from (append/prepend, incr growing the value) is pinned so
 * the allocation for its successor cannot evict it under our feet.
 *
 * Trust: values read back from the backend are treated as data only (never as lengths or
 * pointers); all lengths come from the trusted header.
 */
#include "kvs_store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* memcached refreshes an item's access time at most once a minute (ITEM_UPDATE_INTERVAL). */
#define ITEM_UPDATE_INTERVAL 60u
/* Items examined at a class's LRU tail for expired entries before evicting (memcached: 5). */
#define LRU_TAIL_SEARCH 5
/* Attempts to free a chunk before giving up (memcached's do_item_alloc tries 10 times). */
#define ALLOC_TRIES 10
/* Hash table: starts at 2^16 buckets (memcached's default), doubles above 1.5 items per
 * bucket, and stops growing at 2^28 (2 GiB of buckets) so a flood cannot exhaust the heap. */
#define HASHPOWER_DEFAULT 16u
#define HASHPOWER_MAX 28u
/* Bounce size for copying between items through the backend (append, incr). */
#define COPY_CHUNK 4096u

struct kvs_item {
    struct kvs_item *h_next;  /* hash chain                                 */
    struct kvs_item *prev;    /* LRU: towards the head (most recent)        */
    struct kvs_item *next;    /* LRU: towards the tail                      */
    uint64_t cas;
    uint64_t data;            /* backend address of the value chunk         */
    uint32_t time;            /* last access (rel_time)                     */
    uint32_t exptime;         /* rel_time, 0 = never                        */
    uint32_t flags;
    uint32_t nbytes;          /* value bytes, without CRLF                  */
    uint32_t hv;
    uint8_t nkey;
    uint8_t clsid;
    uint8_t linked;
    uint8_t fetched;
    uint8_t pinned;
    uint8_t meta_bits;        /* KVS_META_* below: the meta protocol's item bits */
    char key[];
};

/* memcached's ITEM_STALE, ITEM_TOKEN_SENT and ITEM_KEY_BINARY (kvs_item.meta_bits). */
#define KVS_META_STALE 1u
#define KVS_META_TOKEN_SENT 2u
#define KVS_META_KEY_BINARY 4u

struct slabclass {
    uint32_t size;            /* chunk bytes                                */
    uint32_t perslab;         /* chunks per page                            */
    uint64_t *freelist;       /* stack of free chunk addresses              */
    size_t nfree, free_cap;
    uint64_t *pages;          /* page base addresses (freed at destroy)     */
    size_t npages, pages_cap;
    uint64_t end_page;        /* newest page, carved lazily                 */
    uint32_t end_free;        /* chunks not yet carved from it              */
    struct kvs_item *head, *tail;
    uint64_t nitems, requested;
    uint64_t evicted, evicted_unfetched, reclaimed, expired_unfetched, outofmemory;
    uint64_t evicted_nonzero;
    uint32_t evicted_time;    /* idle time of the last item evicted         */
    struct kvs_class_counters cnt;  /* memcached's per-class slab_stats      */
};

struct kvs_store {
    struct kvs_lock lock;
    const struct kvs_alloc *meta;
    const struct kvs_mem_ops *mem;
    void *mem_ctx;
    size_t item_size_max, page_size, mem_limit, mem_malloced;
    bool evictions;
    struct slabclass cls[KVS_MAX_SLAB_CLASSES];
    unsigned largest;         /* classes are 1..largest                     */

    struct kvs_item **buckets;
    unsigned hashpower;
    uint64_t curr_items, total_items, bytes;

    _Atomic uint32_t current_time;
    int64_t process_started;
    uint32_t oldest_live;
    uint64_t oldest_cas;
    uint64_t cas_id;
    uint64_t backend_errors;
    uint64_t meta_bytes;
    uint64_t get_expired, get_flushed;
    bool no_cas;              /* -C: items get CAS 0, flush_all by time only  */
    bool flush_pending;       /* a flush_all whose items are not reclaimed yet */
    bool sizes_on;            /* `stats sizes_enable`                          */
    uint64_t sizes_cas_min;   /* items stored since then are counted           */
    struct kvs_prefix_table *prefixes;  /* `stats detail` (kvs_store_prefix_*)  */
};

static void prefix_table_free(struct kvs_store *s);

/* --- heap backend --------------------------------------------------------------------- */

static int heap_page_alloc(void *ctx, size_t size, uint64_t *addr) {
    void *p = kvs_malloc(ctx, size);
    if (!p)
        return -ENOMEM;
    *addr = (uint64_t)(uintptr_t)p;
    return 0;
}
static void heap_page_free(void *ctx, uint64_t addr, size_t size) {
    (void)size;
    kvs_free(ctx, (void *)(uintptr_t)addr);
}
static int heap_read(void *ctx, uint64_t addr, void *buf, size_t size) {
    (void)ctx;
    memcpy(buf, (const void *)(uintptr_t)addr, size);
    return 0;
}
static int heap_write(void *ctx, uint64_t addr, const void *buf, size_t size) {
    (void)ctx;
    memcpy((void *)(uintptr_t)addr, buf, size);
    return 0;
}
const struct kvs_mem_ops kvs_mem_heap_ops = {"heap", heap_page_alloc, heap_page_free, heap_read,
                                             heap_write};

/* --- config, time ------------------------------------------------------------------------ */

void kvs_store_config_default(struct kvs_store_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->mem_limit = 64u << 20;
    cfg->item_size_max = KVS_ITEM_SIZE_MAX_DEFAULT;
    cfg->factor = KVS_SLAB_FACTOR;
    cfg->hashpower = HASHPOWER_DEFAULT;
    cfg->evictions = true;
    cfg->meta = &kvs_alloc_libc;
    cfg->mem = &kvs_mem_heap_ops;
    cfg->mem_ctx = (void *)&kvs_alloc_libc;
}

void kvs_store_clock_set(struct kvs_store *s, int64_t now) {
    int64_t rel = now - s->process_started;
    if (rel < 0 || rel > UINT32_MAX)
        return;
    uint32_t cur = atomic_load_explicit(&s->current_time, memory_order_relaxed);
    /* Monotonic: several workers tick the clock; a late one must not move it back. */
    while (cur < (uint32_t)rel &&
           !atomic_compare_exchange_weak_explicit(&s->current_time, &cur, (uint32_t)rel,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

uint32_t kvs_store_current_time(const struct kvs_store *s) {
    return atomic_load_explicit(&s->current_time, memory_order_relaxed);
}

int64_t kvs_store_process_started(const struct kvs_store *s) {
    return s->process_started;
}

uint32_t kvs_store_realtime(const struct kvs_store *s, int64_t exptime) {
    if (exptime == 0)
        return 0;
    if (exptime > KVS_REALTIME_MAXDELTA) {
        /* An absolute time at or before the origin would wrap to "far future"; memcached
         * makes it 1 (already expired) instead. */
        if (exptime <= s->process_started)
            return 1;
        return (uint32_t)(exptime - s->process_started);
    }
    return (uint32_t)(exptime + kvs_store_current_time(s));
}

size_t kvs_store_item_total(size_t nkey, uint32_t flags, size_t vlen) {
    return KVS_ITEM_HEADER_SIZE + nkey + 1 + (flags ? sizeof(uint32_t) : 0) + vlen + 2 +
           KVS_CAS_SIZE;
}

bool kvs_store_item_size_ok(const struct kvs_store *s, size_t nkey, uint32_t flags,
                            size_t vlen) {
    return vlen <= s->item_size_max && kvs_store_item_total(nkey, flags, vlen) <= s->item_size_max;
}

size_t kvs_store_item_size_max(const struct kvs_store *s) {
    return s->item_size_max;
}

static unsigned slabs_clsid(const struct kvs_store *s, size_t size) {
    if (size == 0 || size > s->item_size_max)
        return 0;
    for (unsigned i = 1; i <= s->largest; i++)
        if (size <= s->cls[i].size)
            return i;
    return 0;
}

/* --- create / destroy ---------------------------------------------------------------------- */

static void *meta_calloc(struct kvs_store *s, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = kvs_malloc(s->meta, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

int kvs_store_create(const struct kvs_store_config *cfg, struct kvs_store **out) {
    if (!cfg->meta || !cfg->mem || cfg->item_size_max < KVS_ITEM_SIZE_MIN ||
        cfg->factor <= 1.0 || cfg->hashpower < 4 || cfg->hashpower > HASHPOWER_MAX)
        return -EINVAL;
    struct kvs_store *s = kvs_malloc(cfg->meta, sizeof *s);
    if (!s)
        return -ENOMEM;
    memset(s, 0, sizeof *s);
    s->meta = cfg->meta;
    s->mem = cfg->mem;
    s->mem_ctx = cfg->mem_ctx;
    s->item_size_max = cfg->item_size_max;
    s->page_size = cfg->item_size_max > KVS_SLAB_PAGE_SIZE ? cfg->item_size_max
                                                            : KVS_SLAB_PAGE_SIZE;
    s->mem_limit = cfg->mem_limit;
    s->evictions = cfg->evictions;
    s->no_cas = cfg->no_cas;
    s->process_started = cfg->now - KVS_CLOCK_ORIGIN_SLACK;
    atomic_init(&s->current_time, KVS_CLOCK_ORIGIN_SLACK);
    /* The lock's state stays in the store (trusted); waiters sleep on cfg->lock_wake. */
    kvs_lock_init(&s->lock, cfg->lock_wake);

    /* memcached's slabs_init: chunk sizes grow by the factor, 8-byte aligned, up to half a
     * page; then a half-page class; then our whole-page class for the largest items. */
    size_t chunk_max = s->page_size / 2;
    double size = KVS_SLAB_CHUNK_MIN;
    unsigned i = 0;
    while (++i < KVS_MAX_SLAB_CLASSES - 2) {
        if (size >= (double)chunk_max / cfg->factor)
            break;
        uint32_t sz = (uint32_t)size;
        if (sz % KVS_SLAB_ALIGN)
            sz += KVS_SLAB_ALIGN - sz % KVS_SLAB_ALIGN;
        s->cls[i].size = sz;
        s->cls[i].perslab = (uint32_t)(s->page_size / sz);
        size = (double)sz * cfg->factor;
    }
    s->cls[i].size = (uint32_t)chunk_max;
    s->cls[i].perslab = (uint32_t)(s->page_size / chunk_max);
    i++;
    s->cls[i].size = (uint32_t)s->page_size;
    s->cls[i].perslab = 1;
    s->largest = i;

    s->hashpower = cfg->hashpower;
    s->buckets = meta_calloc(s, (size_t)1 << s->hashpower, sizeof *s->buckets);
    if (!s->buckets) {
        kvs_free(s->meta, s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void kvs_store_destroy(struct kvs_store *s) {
    if (!s)
        return;
    for (unsigned c = 1; c <= s->largest; c++) {
        struct slabclass *p = &s->cls[c];
        for (struct kvs_item *it = p->head, *next; it; it = next) {
            next = it->next;
            kvs_free(s->meta, it);
        }
        for (size_t k = 0; k < p->npages; k++)
            s->mem->page_free(s->mem_ctx, p->pages[k], s->page_size);
        kvs_free(s->meta, p->pages);
        kvs_free(s->meta, p->freelist);
    }
    kvs_free(s->meta, s->buckets);
    prefix_table_free(s);
    kvs_free(s->meta, s);
}

/* --- slabs ----------------------------------------------------------------------------- */

static int grow_array(struct kvs_store *s, uint64_t **arr, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    uint64_t *p = s->meta->realloc(s->meta->ctx, *arr, ncap * sizeof **arr);
    if (!p)
        return -ENOMEM;
    s->meta_bytes += (ncap - *cap) * sizeof **arr;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* A class may take a new page while under the limit; its first page always (memcached). */
static int slabs_newpage_locked(struct kvs_store *s, unsigned c) {
    struct slabclass *p = &s->cls[c];
    if (s->mem_limit && s->mem_malloced + s->page_size > s->mem_limit && p->npages > 0)
        return -ENOMEM;
    if (grow_array(s, &p->pages, &p->pages_cap, p->npages + 1))
        return -ENOMEM;
    uint64_t addr;
    if (s->mem->page_alloc(s->mem_ctx, s->page_size, &addr))
        return -ENOMEM;
    p->pages[p->npages++] = addr;
    p->end_page = addr;
    p->end_free = p->perslab;
    s->mem_malloced += s->page_size;
    return 0;
}

static int slabs_alloc_locked(struct kvs_store *s, unsigned c, uint64_t *chunk) {
    struct slabclass *p = &s->cls[c];
    if (p->nfree) {
        *chunk = p->freelist[--p->nfree];
        return 0;
    }
    if (!p->end_free && slabs_newpage_locked(s, c))
        return -ENOMEM;
    *chunk = p->end_page + (uint64_t)(p->perslab - p->end_free) * p->size;
    p->end_free--;
    return 0;
}

static void slabs_free_locked(struct kvs_store *s, unsigned c, uint64_t chunk) {
    struct slabclass *p = &s->cls[c];
    /* The stack never needs more entries than the class has chunks, so growth only fails
     * when the trusted heap is exhausted; the chunk is then leaked to the class (counted as
     * used), which is safe. */
    if (grow_array(s, &p->freelist, &p->free_cap, p->nfree + 1) == 0)
        p->freelist[p->nfree++] = chunk;
}

/* --- hash table and LRU -------------------------------------------------------------- */

static uint32_t hash_key(const char *key, size_t nkey) {
    /* FNV-1a, folded to 32 bits: the table is trusted memory and keys are client data, but
     * denial of service is out of scope (docs/design.md). */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < nkey; i++) {
        h ^= (uint8_t)key[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static struct kvs_item **bucket(struct kvs_store *s, uint32_t hv) {
    return &s->buckets[hv & ((1u << s->hashpower) - 1)];
}

static void assoc_expand_locked(struct kvs_store *s) {
    unsigned np = s->hashpower + 1;
    struct kvs_item **nb = meta_calloc(s, (size_t)1 << np, sizeof *nb);
    if (!nb)
        return; /* keep the current table: longer chains, still correct */
    size_t n = (size_t)1 << s->hashpower;
    for (size_t i = 0; i < n; i++) {
        for (struct kvs_item *it = s->buckets[i], *next; it; it = next) {
            next = it->h_next;
            struct kvs_item **b = &nb[it->hv & ((1u << np) - 1)];
            it->h_next = *b;
            *b = it;
        }
    }
    kvs_free(s->meta, s->buckets);
    s->buckets = nb;
    s->hashpower = np;
}

static struct kvs_item *assoc_find_locked(struct kvs_store *s, const char *key, size_t nkey,
                                          uint32_t hv) {
    for (struct kvs_item *it = *bucket(s, hv); it; it = it->h_next)
        if (it->hv == hv && it->nkey == nkey && memcmp(it->key, key, nkey) == 0)
            return it;
    return NULL;
}

static void lru_unlink_locked(struct kvs_store *s, struct kvs_item *it) {
    struct slabclass *p = &s->cls[it->clsid];
    if (it->prev)
        it->prev->next = it->next;
    else
        p->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        p->tail = it->prev;
    it->prev = it->next = NULL;
}

static void lru_link_head_locked(struct kvs_store *s, struct kvs_item *it) {
    struct slabclass *p = &s->cls[it->clsid];
    it->prev = NULL;
    it->next = p->head;
    if (p->head)
        p->head->prev = it;
    p->head = it;
    if (!p->tail)
        p->tail = it;
}

static void item_link_locked(struct kvs_store *s, struct kvs_item *it) {
    it->linked = 1;
    it->time = kvs_store_current_time(s);
    it->cas = s->no_cas ? 0 : ++s->cas_id;
    struct kvs_item **b = bucket(s, it->hv);
    it->h_next = *b;
    *b = it;
    lru_link_head_locked(s, it);
    struct slabclass *p = &s->cls[it->clsid];
    p->nitems++;
    size_t total = kvs_store_item_total(it->nkey, it->flags, it->nbytes);
    p->requested += total;
    s->bytes += total;
    s->curr_items++;
    s->total_items++;
    if (s->curr_items > ((uint64_t)3 << s->hashpower) / 2 && s->hashpower < HASHPOWER_MAX)
        assoc_expand_locked(s);
}

/* Frees an unlinked item's chunk and header. */
static void item_free_locked(struct kvs_store *s, struct kvs_item *it) {
    slabs_free_locked(s, it->clsid, it->data);
    s->meta_bytes -= sizeof *it + it->nkey;
    kvs_free(s->meta, it);
}

static void item_unlink_locked(struct kvs_store *s, struct kvs_item *it) {
    struct kvs_item **pp = bucket(s, it->hv);
    while (*pp && *pp != it)
        pp = &(*pp)->h_next;
    if (*pp)
        *pp = it->h_next;
    lru_unlink_locked(s, it);
    struct slabclass *p = &s->cls[it->clsid];
    p->nitems--;
    size_t total = kvs_store_item_total(it->nkey, it->flags, it->nbytes);
    p->requested -= total;
    s->bytes -= total;
    s->curr_items--;
    it->linked = 0;
    item_free_locked(s, it);
}

static bool item_is_flushed(const struct kvs_store *s, const struct kvs_item *it) {
    uint32_t now = kvs_store_current_time(s);
    if (s->oldest_live == 0 || s->oldest_live > now)
        return false;
    return it->time <= s->oldest_live || (s->oldest_cas && it->cas && it->cas < s->oldest_cas);
}

static bool item_is_expired(const struct kvs_store *s, const struct kvs_item *it) {
    return it->exptime != 0 && it->exptime <= kvs_store_current_time(s);
}

/* Looks key up; an item found dead (flushed or expired) is unlinked and freed. */
static struct kvs_item *item_get_locked(struct kvs_store *s, const char *key, size_t nkey,
                                        uint32_t hv) {
    struct kvs_item *it = assoc_find_locked(s, key, nkey, hv);
    if (it && (item_is_flushed(s, it) || item_is_expired(s, it))) {
        if (item_is_flushed(s, it)) {
            s->get_flushed++;
        } else {
            s->get_expired++;
            if (!it->fetched)
                s->cls[it->clsid].expired_unfetched++;
        }
        item_unlink_locked(s, it);
        return NULL;
    }
    return it;
}

/* memcached's do_item_update/bump: most recent at the head; access time refreshed at most
 * once per ITEM_UPDATE_INTERVAL (flush_all compares against it). */
static void item_bump_locked(struct kvs_store *s, struct kvs_item *it) {
    uint32_t now = kvs_store_current_time(s);
    if (it->time + ITEM_UPDATE_INTERVAL < now)
        it->time = now;
    if (s->cls[it->clsid].head != it) {
        lru_unlink_locked(s, it);
        lru_link_head_locked(s, it);
    }
}

/* Frees one chunk of class c: an expired or flushed item near the tail, else (if allowed)
 * the least recently used unpinned item. Returns true if a chunk was freed. */
static bool lru_pull_tail_locked(struct kvs_store *s, unsigned c) {
    struct slabclass *p = &s->cls[c];
    int n = 0;
    for (struct kvs_item *it = p->tail; it && n < LRU_TAIL_SEARCH; it = it->prev, n++) {
        if (it->pinned)
            continue;
        if (item_is_flushed(s, it) || item_is_expired(s, it)) {
            if (!it->fetched && item_is_expired(s, it))
                p->expired_unfetched++;
            p->reclaimed++;
            item_unlink_locked(s, it);
            return true;
        }
    }
    if (!s->evictions)
        return false;
    for (struct kvs_item *it = p->tail; it; it = it->prev) {
        if (it->pinned)
            continue;
        p->evicted++;
        if (it->exptime)
            p->evicted_nonzero++;
        p->evicted_time = kvs_store_current_time(s) - it->time;
        if (!it->fetched)
            p->evicted_unfetched++;
        item_unlink_locked(s, it);
        return true;
    }
    return false;
}

static int item_alloc_locked(struct kvs_store *s, const char *key, size_t nkey, uint32_t flags,
                             uint32_t exptime, size_t vlen, struct kvs_item **out) {
    if (nkey == 0 || nkey > KVS_KEY_MAX || !kvs_store_item_size_ok(s, nkey, flags, vlen))
        return -E2BIG;
    unsigned c = slabs_clsid(s, kvs_store_item_total(nkey, flags, vlen));
    if (c == 0)
        return -E2BIG;
    struct kvs_item *it = kvs_malloc(s->meta, sizeof *it + nkey);
    if (!it)
        return -ENOMEM;
    uint64_t chunk = 0;
    int r = -ENOMEM;
    for (int i = 0; i < ALLOC_TRIES; i++) {
        r = slabs_alloc_locked(s, c, &chunk);
        if (r == 0 || !lru_pull_tail_locked(s, c))
            break;
    }
    if (r) {
        s->cls[c].outofmemory++;
        kvs_free(s->meta, it);
        return -ENOMEM;
    }
    memset(it, 0, sizeof *it);
    memcpy(it->key, key, nkey);
    it->nkey = (uint8_t)nkey;
    it->clsid = (uint8_t)c;
    it->flags = flags;
    it->exptime = exptime;
    it->nbytes = (uint32_t)vlen;
    it->data = chunk;
    it->hv = hash_key(key, nkey);
    s->meta_bytes += sizeof *it + nkey;
    *out = it;
    return 0;
}

int kvs_store_item_alloc(struct kvs_store *s, const char *key, size_t nkey, uint32_t flags,
                         uint32_t exptime, size_t vlen, struct kvs_item **out) {
    kvs_lock_acquire(&s->lock);
    int r = item_alloc_locked(s, key, nkey, flags, exptime, vlen, out);
    kvs_lock_release(&s->lock);
    return r;
}

int kvs_store_item_write(struct kvs_store *s, struct kvs_item *it, size_t off, const void *buf,
                         size_t size) {
    if (off > it->nbytes || size > it->nbytes - off)
        return -EINVAL;
    int r = s->mem->write(s->mem_ctx, it->data + off, buf, size);
    if (r) {
        kvs_lock_acquire(&s->lock);
        s->backend_errors++;
        kvs_lock_release(&s->lock);
    }
    return r;
}

void kvs_store_item_free(struct kvs_store *s, struct kvs_item *it) {
    if (!it)
        return;
    kvs_lock_acquire(&s->lock);
    item_free_locked(s, it);
    kvs_lock_release(&s->lock);
}

/* Copies n value bytes between backend addresses through a bounce buffer (the backend
 * may be SUVM, which has no shared address to memcpy between). */
static int copy_data_locked(struct kvs_store *s, uint64_t dst, uint64_t src, size_t n) {
    char tmp[COPY_CHUNK];
    for (size_t off = 0; off < n;) {
        size_t k = n - off < sizeof tmp ? n - off : sizeof tmp;
        int r = s->mem->read(s->mem_ctx, src + off, tmp, k);
        if (!r)
            r = s->mem->write(s->mem_ctx, dst + off, tmp, k);
        if (r) {
            s->backend_errors++;
            return r;
        }
        off += k;
    }
    return 0;
}

/* Replaces old by it in the table (both under the same key). */
static void item_replace_locked(struct kvs_store *s, struct kvs_item *old, struct kvs_item *it) {
    item_unlink_locked(s, old);
    item_link_locked(s, it);
}

/* memcached 1.6.18 do_store_item for the text protocol. */
static enum kvs_store_result store_item_locked(struct kvs_store *s, struct kvs_item *it,
                                               enum kvs_store_cmd cmd, uint64_t cas_in) {
    struct kvs_item *old = item_get_locked(s, it->key, it->nkey, it->hv);
    uint64_t it_cas = cmd == KVS_CMD_CAS ? cas_in : 0;
    if (!old) {
        switch (cmd) {
        case KVS_CMD_ADD:
        case KVS_CMD_SET:
            item_link_locked(s, it);
            return KVS_STORED;
        case KVS_CMD_CAS:
            item_free_locked(s, it);
            return KVS_NOT_FOUND;
        default:
            item_free_locked(s, it);
            return KVS_NOT_STORED;
        }
    }
    switch (cmd) {
    case KVS_CMD_ADD:
        /* add does not store, but promotes the existing item (memcached). */
        item_bump_locked(s, old);
        item_free_locked(s, it);
        return KVS_NOT_STORED;
    case KVS_CMD_CAS:
        if (it_cas != 0 && it_cas == old->cas) {
            s->cls[old->clsid].cnt.cas_hits++;
            item_replace_locked(s, old, it);
            return KVS_STORED;
        }
        s->cls[old->clsid].cnt.cas_badval++;
        item_free_locked(s, it);
        return KVS_EXISTS;
    case KVS_CMD_APPEND:
    case KVS_CMD_PREPEND: {
        /* The result keeps the old item's flags and expiry. */
        struct kvs_item *nit;
        old->pinned = 1;
        int r = item_alloc_locked(s, it->key, it->nkey, old->flags, old->exptime,
                                  (size_t)old->nbytes + it->nbytes, &nit);
        old->pinned = 0;
        if (r) {
            item_free_locked(s, it);
            return KVS_NOT_STORED;
        }
        bool app = cmd == KVS_CMD_APPEND;
        r = copy_data_locked(s, nit->data + (app ? 0 : it->nbytes), old->data, old->nbytes);
        if (!r)
            r = copy_data_locked(s, nit->data + (app ? old->nbytes : 0), it->data, it->nbytes);
        item_free_locked(s, it);
        if (r) {
            item_free_locked(s, nit);
            return KVS_NOT_STORED;
        }
        item_replace_locked(s, old, nit);
        return KVS_STORED;
    }
    case KVS_CMD_SET:
    case KVS_CMD_REPLACE:
        item_replace_locked(s, old, it);
        return KVS_STORED;
    }
    item_free_locked(s, it);
    return KVS_STORE_ERROR;
}

enum kvs_store_result kvs_store_item_link(struct kvs_store *s, struct kvs_item *it,
                                          enum kvs_store_cmd cmd, uint64_t cas_in) {
    kvs_lock_acquire(&s->lock);
    s->cls[it->clsid].cnt.set_cmds++; /* memcached counts every storage command's class */
    enum kvs_store_result r = store_item_locked(s, it, cmd, cas_in);
    kvs_lock_release(&s->lock);
    return r;
}

void kvs_store_unlink_key(struct kvs_store *s, const char *key, size_t nkey) {
    uint32_t hv = hash_key(key, nkey);
    kvs_lock_acquire(&s->lock);
    struct kvs_item *it = assoc_find_locked(s, key, nkey, hv);
    if (it)
        item_unlink_locked(s, it);
    kvs_lock_release(&s->lock);
}

void kvs_store_item_view(const struct kvs_item *it, struct kvs_item_view *v) {
    v->key = it->key;
    v->nkey = it->nkey;
    v->exptime = it->exptime;
    v->nbytes = it->nbytes;
    v->clsid = it->clsid;
}

int kvs_store_get(struct kvs_store *s, const char *key, size_t nkey, bool touch,
                  uint32_t exptime, kvs_get_sink sink, void *arg) {
    uint32_t hv = hash_key(key, nkey);
    kvs_lock_acquire(&s->lock);
    struct kvs_item *it = item_get_locked(s, key, nkey, hv);
    int r = 0;
    if (it) {
        if (touch)
            it->exptime = exptime;
        it->fetched = 1;
        s->cls[it->clsid].cnt.get_hits++;
        if (touch)
            s->cls[it->clsid].cnt.touch_hits++;
        item_bump_locked(s, it);
        struct kvs_get_info info = {it->flags, it->nbytes, it->cas, it->clsid};
        void *dst = sink(arg, &info);
        if (!dst) {
            r = -ENOMEM;
        } else if (s->mem->read(s->mem_ctx, it->data, dst, it->nbytes)) {
            s->backend_errors++;
            r = -EIO;
        } else {
            r = 1;
        }
    }
    kvs_lock_release(&s->lock);
    return r;
}

enum kvs_store_result kvs_store_delete(struct kvs_store *s, const char *key, size_t nkey) {
    uint32_t hv = hash_key(key, nkey);
    kvs_lock_acquire(&s->lock);
    struct kvs_item *it = item_get_locked(s, key, nkey, hv);
    if (it) {
        s->cls[it->clsid].cnt.delete_hits++;
        item_unlink_locked(s, it);
    }
    kvs_lock_release(&s->lock);
    return it ? KVS_DELETED : KVS_NOT_FOUND;
}

enum kvs_store_result kvs_store_touch(struct kvs_store *s, const char *key, size_t nkey,
                                      uint32_t exptime) {
    uint32_t hv = hash_key(key, nkey);
    kvs_lock_acquire(&s->lock);
    struct kvs_item *it = item_get_locked(s, key, nkey, hv);
    if (it) {
        it->exptime = exptime;
        it->fetched = 1;
        s->cls[it->clsid].cnt.touch_hits++;
        item_bump_locked(s, it);
    }
    kvs_lock_release(&s->lock);
    return it ? KVS_TOUCHED : KVS_NOT_FOUND;
}

/* --- the meta protocol (kvs_meta.c) ------------------------------------------------------ */

static enum kvs_store_result delta_item_locked(struct kvs_store *s, struct kvs_item *it,
                                               bool incr, uint64_t delta, uint64_t cas_in,
                                               bool use_cas, uint64_t *cas_out, char *buf,
                                               size_t bufsize, struct kvs_item **res_it);

struct kvs_item *kvs_store_meta_lock(struct kvs_store *s, const char *key, size_t nkey) {
    kvs_lock_acquire(&s->lock);
    if (nkey == 0 || nkey > KVS_KEY_MAX)
        return NULL;
    return item_get_locked(s, key, nkey, hash_key(key, nkey));
}

void kvs_store_meta_unlock(struct kvs_store *s) {
    kvs_lock_release(&s->lock);
}

void kvs_store_meta_info(const struct kvs_store *s, const struct kvs_item *it,
                         struct kvs_meta_info *o) {
    o->key = it->key;
    o->nkey = it->nkey;
    o->flags = it->flags;
    o->nbytes = it->nbytes;
    o->exptime = it->exptime;
    o->atime = it->time;
    o->cas = it->cas;
    o->fetched = it->fetched != 0;
    o->stale = (it->meta_bits & KVS_META_STALE) != 0;
    o->token_sent = (it->meta_bits & KVS_META_TOKEN_SENT) != 0;
    o->key_binary = (it->meta_bits & KVS_META_KEY_BINARY) != 0;
    o->clsid = it->clsid;
    o->total = kvs_store_item_total(it->nkey, it->flags, it->nbytes);
    (void)s;
}

void kvs_store_meta_set_exptime(struct kvs_item *it, uint32_t exptime) {
    it->exptime = exptime;
}

void kvs_store_meta_set_token_sent(struct kvs_item *it) {
    it->meta_bits |= KVS_META_TOKEN_SENT;
}

void kvs_store_meta_set_key_binary(struct kvs_item *it) {
    it->meta_bits |= KVS_META_KEY_BINARY;
}

void kvs_store_meta_bump(struct kvs_store *s, struct kvs_item *it) {
    it->fetched = 1;
    item_bump_locked(s, it);
}

int kvs_store_meta_read(struct kvs_store *s, const struct kvs_item *it, void *dst) {
    if (s->mem->read(s->mem_ctx, it->data, dst, it->nbytes)) {
        s->backend_errors++;
        return -EIO;
    }
    return 0;
}

int kvs_store_meta_create(struct kvs_store *s, const char *key, size_t nkey, const char *val,
                          size_t vlen, struct kvs_item **out) {
    struct kvs_item *it;
    int r = item_alloc_locked(s, key, nkey, 0, 0, vlen, &it);
    if (r)
        return r;
    if (vlen && s->mem->write(s->mem_ctx, it->data, val, vlen)) {
        s->backend_errors++;
        item_free_locked(s, it);
        return -EIO;
    }
    item_link_locked(s, it);
    *out = it;
    return 0;
}

void kvs_store_meta_invalidate(struct kvs_store *s, struct kvs_item *it) {
    it->meta_bits |= KVS_META_STALE;
    it->meta_bits &= (uint8_t)~KVS_META_TOKEN_SENT; /* the next client may win a token */
    it->cas = ++s->cas_id;
}

void kvs_store_meta_unlink(struct kvs_store *s, struct kvs_item *it) {
    item_unlink_locked(s, it);
}

enum kvs_store_result kvs_store_meta_delta(struct kvs_store *s, struct kvs_item *it, bool incr,
                                           uint64_t delta, uint64_t cas_cmp, char *buf,
                                           size_t bufsize, struct kvs_item **res_it) {
    *res_it = NULL;
    /* memcached's order: an empty value is non-numeric before the CAS is compared. */
    if (it->nbytes == 0)
        return KVS_NON_NUMERIC;
    if (cas_cmp != 0 && it->cas != cas_cmp)
        return KVS_EXISTS;
    enum kvs_store_result r =
        delta_item_locked(s, it, incr, delta, 0, true, NULL, buf, bufsize, res_it);
    if (r != KVS_STORED)
        *res_it = NULL;
    return r;
}

enum kvs_store_result kvs_store_item_link_meta(struct kvs_store *s, struct kvs_item *it,
                                               enum kvs_store_cmd cmd, uint64_t cas_in,
                                               bool set_stale, uint64_t *cas_out) {
    kvs_lock_acquire(&s->lock);
    enum kvs_store_result r;
    struct kvs_item *old = item_get_locked(s, it->key, it->nkey, it->hv);
    if (old && cas_in != 0 && cas_in != old->cas &&
        (cmd == KVS_CMD_APPEND || cmd == KVS_CMD_PREPEND)) {
        item_free_locked(s, it); /* append/prepend take a CAS as a plain precondition */
        r = KVS_EXISTS;
    } else if (old && cmd == KVS_CMD_CAS && set_stale && cas_in != 0 && cas_in < old->cas) {
        /* ms I with an older CAS: the value is stored but stays stale, keeping the TTL and
         * the token state of the item it replaces (memcached's CAS_STALE). */
        it->exptime = old->exptime;
        it->meta_bits |= KVS_META_STALE | (old->meta_bits & KVS_META_TOKEN_SENT);
        item_replace_locked(s, old, it);
        r = KVS_STORED;
    } else {
        /* add/set keep their plain rules; cas_in only matters to KVS_CMD_CAS there. */
        r = store_item_locked(s, it, cmd, cas_in);
    }
    /* item_link_locked took the newest unique for whatever item was stored. */
    *cas_out = r == KVS_STORED ? s->cas_id : 0;
    kvs_lock_release(&s->lock);
    return r;
}

/* memcached's safe_strtoull: decimal, leading space allowed, rejects trailing garbage and
 * negative numbers that wrap. */
static bool safe_strtoull(const char *str, uint64_t *out) {
    errno = 0;
    char *end;
    unsigned long long v = strtoull(str, &end, 10);
    if (errno == ERANGE || end == str)
        return false;
    if (*end == ' ' || (*end >= '\t' && *end <= '\r') || *end == '\0') {
        if ((long long)v < 0 && memchr(str, '-', (size_t)(end - str)))
            return false;
        *out = v;
        return true;
    }
    return false;
}

/* Largest value length read into a stack buffer for incr/decr; longer ones (still valid
 * numbers if padded with spaces) go through the trusted heap. */
#define DELTA_STACK_BUF 64u

/* memcached's do_add_delta on the live item it (store lock held). cas_in != 0: the item's
 * CAS (0 when !use_cas) must match it (checked after the empty-value test, as memcached
 * does); cas_out: the CAS afterwards; *res_it receives the item holding the result (it, or
 * its replacement when the number outgrew the value). */
static enum kvs_store_result delta_item_locked(struct kvs_store *s, struct kvs_item *it,
                                               bool incr, uint64_t delta, uint64_t cas_in,
                                               bool use_cas, uint64_t *cas_out, char *buf,
                                               size_t bufsize, struct kvs_item **res_it) {
    enum kvs_store_result res;
    char small[DELTA_STACK_BUF + 1];
    char *tmp = small;
    const char *key = it->key;
    size_t nkey = it->nkey;
    *res_it = it;
    if (it->nbytes == 0) {
        res = KVS_NON_NUMERIC;
        goto out;
    }
    if (cas_in != 0 && cas_in != (use_cas ? it->cas : 0)) {
        res = KVS_EXISTS;
        goto out;
    }
    if (it->nbytes > DELTA_STACK_BUF) {
        tmp = kvs_malloc(s->meta, (size_t)it->nbytes + 1);
        if (!tmp) {
            tmp = small;
            res = KVS_NO_MEMORY;
            goto out;
        }
    }
    if (s->mem->read(s->mem_ctx, it->data, tmp, it->nbytes)) {
        s->backend_errors++;
        res = KVS_STORE_ERROR;
        goto out;
    }
    tmp[it->nbytes] = '\0';
    uint64_t value;
    if (!safe_strtoull(tmp, &value)) {
        res = KVS_NON_NUMERIC;
        goto out;
    }
    if (incr)
        s->cls[it->clsid].cnt.incr_hits++;
    else
        s->cls[it->clsid].cnt.decr_hits++;
    if (incr)
        value += delta; /* wraps at 2^64, as memcached */
    else
        value = delta > value ? 0 : value - delta;
    int n = snprintf(buf, bufsize, "%llu", (unsigned long long)value);
    size_t len = (size_t)n;
    if (len <= it->nbytes) {
        /* In place: pad with spaces (memcached), new CAS. */
        char pad[DELTA_STACK_BUF];
        memset(pad, ' ', sizeof pad);
        int r = s->mem->write(s->mem_ctx, it->data, buf, len);
        for (size_t off = len; !r && off < it->nbytes;) {
            size_t k = it->nbytes - off < sizeof pad ? it->nbytes - off : sizeof pad;
            r = s->mem->write(s->mem_ctx, it->data + off, pad, k);
            off += k;
        }
        if (r) {
            s->backend_errors++;
            res = KVS_STORE_ERROR;
            goto out;
        }
        it->cas = s->no_cas ? 0 : ++s->cas_id;
        item_bump_locked(s, it);
        res = KVS_STORED;
    } else {
        struct kvs_item *nit;
        it->pinned = 1;
        int r = item_alloc_locked(s, key, nkey, it->flags, it->exptime, len, &nit);
        it->pinned = 0;
        if (r) {
            res = KVS_NO_MEMORY;
            goto out;
        }
        if (s->mem->write(s->mem_ctx, nit->data, buf, len)) {
            s->backend_errors++;
            item_free_locked(s, nit);
            res = KVS_STORE_ERROR;
            goto out;
        }
        item_replace_locked(s, it, nit);
        *res_it = nit;
        res = KVS_STORED;
    }
    if (cas_out)
        *cas_out = s->cas_id; /* the CAS just given to the updated item */
out:
    if (tmp != small)
        kvs_free(s->meta, tmp);
    return res;
}

static enum kvs_store_result delta_cas(struct kvs_store *s, const char *key, size_t nkey,
                                       bool incr, uint64_t delta, uint64_t cas_in, bool use_cas,
                                       uint64_t *cas_out, char *buf, size_t bufsize) {
    uint32_t hv = hash_key(key, nkey);
    enum kvs_store_result res = KVS_NOT_FOUND;
    kvs_lock_acquire(&s->lock);
    struct kvs_item *it = item_get_locked(s, key, nkey, hv);
    if (it)
        res = delta_item_locked(s, it, incr, delta, cas_in, use_cas, cas_out, buf, bufsize,
                                &it);
    kvs_lock_release(&s->lock);
    return res;
}

enum kvs_store_result kvs_store_delta(struct kvs_store *s, const char *key, size_t nkey,
                                      bool incr, uint64_t delta, char *buf, size_t bufsize) {
    return delta_cas(s, key, nkey, incr, delta, 0, true, NULL, buf, bufsize);
}

void kvs_store_flush(struct kvs_store *s, int64_t delay) {
    kvs_lock_acquire(&s->lock);
    uint32_t now = kvs_store_current_time(s);
    uint32_t new_oldest = delay > 0 ? kvs_store_realtime(s, delay) : now;
    /* memcached with CAS on: everything stored up to this instant (oldest_cas) or last
     * accessed before the deadline is dead from then on. */
    if (s->no_cas) {
        s->oldest_live = new_oldest; /* memcached -C: by access time alone */
    } else {
        s->oldest_live = new_oldest - 1;
        if (s->oldest_live <= now)
            s->oldest_cas = ++s->cas_id;
    }
    s->flush_pending = true; /* kvs_store_reclaim_flushed frees them */
    kvs_lock_release(&s->lock);
}

void kvs_store_stats(struct kvs_store *s, struct kvs_store_stats *o) {
    memset(o, 0, sizeof *o);
    kvs_lock_acquire(&s->lock);
    o->curr_items = s->curr_items;
    o->total_items = s->total_items;
    o->bytes = s->bytes;
    o->limit_maxbytes = s->mem_limit;
    o->malloced = s->mem_malloced;
    for (unsigned c = 1; c <= s->largest; c++) {
        o->evictions += s->cls[c].evicted;
        o->evicted_unfetched += s->cls[c].evicted_unfetched;
        o->reclaimed += s->cls[c].reclaimed;
        o->expired_unfetched += s->cls[c].expired_unfetched;
        o->outofmemory += s->cls[c].outofmemory;
    }
    o->hash_power_level = s->hashpower;
    o->hash_bytes = ((uint64_t)1 << s->hashpower) * sizeof(void *);
    o->metadata_bytes = s->meta_bytes + o->hash_bytes;
    o->backend_errors = s->backend_errors;
    o->get_expired = s->get_expired;
    o->get_flushed = s->get_flushed;
    o->slab_classes = s->largest;
    kvs_lock_release(&s->lock);
}

bool kvs_store_slab_stats(struct kvs_store *s, unsigned c, struct kvs_slab_stats *o) {
    memset(o, 0, sizeof *o);
    kvs_lock_acquire(&s->lock);
    bool ok = c >= 1 && c <= s->largest;
    if (ok) {
        struct slabclass *p = &s->cls[c];
        o->chunk_size = p->size;
        o->chunks_per_page = p->perslab;
        o->total_pages = p->npages;
        o->free_chunks = p->nfree;
        o->free_chunks_end = p->end_free;
        o->used_chunks = p->npages * p->perslab - p->nfree - p->end_free;
        o->items = p->nitems;
        o->evicted = p->evicted;
        o->requested = p->requested;
        o->outofmemory = p->outofmemory;
        o->reclaimed = p->reclaimed;
        o->age = p->tail ? kvs_store_current_time(s) - p->tail->time : 0;
        o->expired_unfetched = p->expired_unfetched;
        o->evicted_unfetched = p->evicted_unfetched;
        o->evicted_nonzero = p->evicted_nonzero;
        o->evicted_time = p->evicted_time;
        o->cnt = p->cnt;
    }
    kvs_lock_release(&s->lock);
    return ok;
}

/* --- CAS-aware variants (the binary protocol: memcached's proto_bin.c semantics) ------ */

enum kvs_store_result kvs_store_item_link_cas(struct kvs_store *s, struct kvs_item *it,
                                              enum kvs_store_cmd cmd, uint64_t cas_in,
                                              bool use_cas, uint64_t *cas_out) {
    kvs_lock_acquire(&s->lock);
    enum kvs_store_result r;
    if ((cmd == KVS_CMD_APPEND || cmd == KVS_CMD_PREPEND) && cas_in != 0) {
        /* memcached checks an append's CAS against the item it extends. */
        struct kvs_item *old = item_get_locked(s, it->key, it->nkey, it->hv);
        if (old && cas_in != (use_cas ? old->cas : 0)) {
            item_free_locked(s, it);
            kvs_lock_release(&s->lock);
            return KVS_EXISTS;
        }
    }
    r = store_item_locked(s, it, cmd, cas_in);
    if (r == KVS_STORED && cas_out)
        *cas_out = s->cas_id; /* item_link_locked numbered the stored item last */
    kvs_lock_release(&s->lock);
    return r;
}

enum kvs_store_result kvs_store_delete_cas(struct kvs_store *s, const char *key, size_t nkey,
                                           uint64_t cas_in, bool use_cas) {
    uint32_t hv = hash_key(key, nkey);
    kvs_lock_acquire(&s->lock);
    struct kvs_item *it = item_get_locked(s, key, nkey, hv);
    enum kvs_store_result r = KVS_NOT_FOUND;
    if (it && cas_in != 0 && cas_in != (use_cas ? it->cas : 0)) {
        r = KVS_EXISTS;
    } else if (it) {
        item_unlink_locked(s, it);
        r = KVS_DELETED;
    }
    kvs_lock_release(&s->lock);
    return r;
}

enum kvs_store_result kvs_store_delta_cas(struct kvs_store *s, const char *key, size_t nkey,
                                          bool incr, uint64_t delta, uint64_t cas_in,
                                          bool use_cas, uint64_t *cas_out, char *buf,
                                          size_t bufsize) {
    return delta_cas(s, key, nkey, incr, delta, cas_in, use_cas, cas_out, buf, bufsize);
}

/* --- statistics support (`stats` groups) ---------------------------------------------- */

/* Walks one class's LRU and unlinks the items flush_all made dead. */
static void reclaim_class_locked(struct kvs_store *s, unsigned c) {
    for (struct kvs_item *it = s->cls[c].head, *next; it; it = next) {
        next = it->next;
        if (!it->pinned && item_is_flushed(s, it)) {
            s->cls[c].reclaimed++;
            item_unlink_locked(s, it);
        }
    }
}

uint32_t kvs_store_oldest_live(struct kvs_store *s) {
    kvs_lock_acquire(&s->lock);
    uint32_t v = s->oldest_live;
    kvs_lock_release(&s->lock);
    return v;
}

void kvs_store_reclaim_flushed(struct kvs_store *s) {
    kvs_lock_acquire(&s->lock);
    /* A delayed flush_all takes effect at its deadline: reclaim then, not before. */
    if (s->flush_pending && s->oldest_live <= kvs_store_current_time(s)) {
        for (unsigned c = 1; c <= s->largest; c++)
            reclaim_class_locked(s, c);
        s->flush_pending = false;
    }
    kvs_lock_release(&s->lock);
}

void kvs_store_stats_reset(struct kvs_store *s) {
    kvs_lock_acquire(&s->lock);
    s->total_items = 0;
    s->get_expired = s->get_flushed = 0;
    for (unsigned c = 1; c <= s->largest; c++) {
        struct slabclass *p = &s->cls[c];
        p->evicted = p->evicted_unfetched = p->reclaimed = p->expired_unfetched = 0;
        p->outofmemory = p->evicted_nonzero = 0;
        p->evicted_time = 0;
        memset(&p->cnt, 0, sizeof p->cnt);
    }
    prefix_table_free(s);
    kvs_lock_release(&s->lock);
}

void kvs_store_cachedump(struct kvs_store *s, unsigned cls, unsigned limit, kvs_dump_fn fn,
                         void *arg) {
    kvs_lock_acquire(&s->lock);
    if (cls >= 1 && cls <= s->largest) {
        unsigned shown = 0;
        for (struct kvs_item *it = s->cls[cls].head; it && (limit == 0 || shown < limit);
             it = it->next) {
            int64_t exp = it->exptime ? (int64_t)it->exptime + s->process_started : 0;
            if (!fn(arg, it->key, it->nkey, it->nbytes, exp))
                break;
            shown++;
        }
    }
    kvs_lock_release(&s->lock);
}

int kvs_store_sizes_enable(struct kvs_store *s) {
    kvs_lock_acquire(&s->lock);
    int r = 0;
    if (s->no_cas) {
        r = -EPERM;
    } else if (!s->sizes_on) {
        s->sizes_on = true;
        s->sizes_cas_min = s->cas_id + 1; /* memcached: get_cas_id() at enable */
    }
    kvs_lock_release(&s->lock);
    return r;
}

void kvs_store_sizes_disable(struct kvs_store *s) {
    kvs_lock_acquire(&s->lock);
    s->sizes_on = false;
    kvs_lock_release(&s->lock);
}

bool kvs_store_sizes_enabled(struct kvs_store *s) {
    kvs_lock_acquire(&s->lock);
    bool on = s->sizes_on;
    kvs_lock_release(&s->lock);
    return on;
}

/* Built on demand from the live items rather than kept on every link/unlink: the same
 * counts (items stored since enable and still there), no cost when nobody asks. */
int kvs_store_sizes(struct kvs_store *s, void (*fn)(void *arg, size_t size, uint64_t n),
                    void *arg) {
    kvs_lock_acquire(&s->lock);
    size_t nb = s->item_size_max / 32 + 1;
    uint64_t *hist = meta_calloc(s, nb, sizeof *hist);
    if (!hist) {
        kvs_lock_release(&s->lock);
        return -ENOMEM;
    }
    for (unsigned c = 1; c <= s->largest; c++)
        for (struct kvs_item *it = s->cls[c].head; it; it = it->next) {
            if (it->cas < s->sizes_cas_min)
                continue;
            size_t total = kvs_store_item_total(it->nkey, it->flags, it->nbytes);
            size_t b = (total + 31) / 32;
            if (b < nb)
                hist[b]++;
        }
    kvs_lock_release(&s->lock);
    for (size_t b = 0; b < nb; b++)
        if (hist[b])
            fn(arg, b * 32, hist[b]);
    kvs_free(s->meta, hist);
    return 0;
}

/* Prefix statistics: a hash table of prefixes plus their first-seen order. Bounded, so a
 * client inventing prefixes cannot exhaust the trusted heap (memcached's is unbounded). */
#define PREFIX_BUCKETS 256u
#define PREFIX_MAX 65536u

struct kvs_prefix {
    struct kvs_prefix *h_next, *o_next;
    uint64_t counts[4];            /* get, hit, set, del */
    size_t len;
    char name[];
};

struct kvs_prefix_table {
    struct kvs_prefix *buckets[PREFIX_BUCKETS];
    struct kvs_prefix *first, *last;
    unsigned n;
};

static void prefix_table_free(struct kvs_store *s) {
    struct kvs_prefix_table *t = s->prefixes;
    if (!t)
        return;
    for (struct kvs_prefix *p = t->first, *next; p; p = next) {
        next = p->o_next;
        kvs_free(s->meta, p);
    }
    kvs_free(s->meta, t);
    s->prefixes = NULL;
}

static struct kvs_prefix *prefix_find_locked(struct kvs_store *s, const char *key, size_t len) {
    if (!s->prefixes) {
        s->prefixes = meta_calloc(s, 1, sizeof *s->prefixes);
        if (!s->prefixes)
            return NULL;
    }
    struct kvs_prefix_table *t = s->prefixes;
    struct kvs_prefix **b = &t->buckets[hash_key(key, len) % PREFIX_BUCKETS];
    for (struct kvs_prefix *p = *b; p; p = p->h_next)
        if (p->len == len && memcmp(p->name, key, len) == 0)
            return p;
    if (t->n >= PREFIX_MAX)
        return NULL;
    struct kvs_prefix *p = kvs_malloc(s->meta, sizeof *p + len + 1);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    memcpy(p->name, key, len);
    p->name[len] = '\0';
    p->len = len;
    p->h_next = *b;
    *b = p;
    if (t->last)
        t->last->o_next = p;
    else
        t->first = p;
    t->last = p;
    t->n++;
    return p;
}

void kvs_store_prefix_record(struct kvs_store *s, char delim, const char *key, size_t nkey,
                             enum kvs_prefix_op op, bool hit) {
    /* memcached: the prefix ends at the delimiter; a NUL ends the search too. */
    size_t len = 0;
    while (len < nkey && key[len] != '\0' && key[len] != delim)
        len++;
    if (len == nkey || key[len] != delim)
        return;
    kvs_lock_acquire(&s->lock);
    struct kvs_prefix *p = prefix_find_locked(s, key, len);
    if (p) {
        if (op == KVS_PREFIX_GET) {
            p->counts[0]++;
            if (hit)
                p->counts[1]++;
        } else {
            p->counts[op == KVS_PREFIX_SET ? 2 : 3]++;
        }
    }
    kvs_lock_release(&s->lock);
}

void kvs_store_prefix_dump(struct kvs_store *s,
                           bool (*fn)(void *arg, const char *prefix, size_t len,
                                      const uint64_t counts[4]),
                           void *arg) {
    kvs_lock_acquire(&s->lock);
    for (struct kvs_prefix *p = s->prefixes ? s->prefixes->first : NULL; p; p = p->o_next)
        if (!fn(arg, p->name, p->len, p->counts))
            break;
    kvs_lock_release(&s->lock);
}
