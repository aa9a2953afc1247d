/*
 * enclave_suvm.c — eleos-pserver's eleos mode, enclave side: exitless network calls and a
 * table in SUVM.
 *
 * The host creates the RPC worker pool (host_main.c); the setup ECALL (enclave_server.c)
 * creates the RPC client and, here, an SUVM instance whose backing store holds the table and
 * whose page cache (60 MiB, the paper's EPC++) fits the EPC. Two access policies:
 *   - the table fits the cache: page mode and spointers. After warm-up every increment is a
 *     cache hit, an atomic add in the pinned frame (concurrent faults on a page end on one
 *     frame, so atomics in it are shared by all threads);
 *   - the table is larger: sub-page mode (256 B) and direct access, as the paper's parameter
 *     server: an increment of a key whose page is not cached opens and re-seals just the
 *     256 B around it instead of swapping a whole page in and another out. SUVM synchronises
 *     its own state, not the data, so that read-modify-write is made atomic by a striped
 *     spinlock (enclave memory, no system call), striped by sub-page so that two keys of one
 *     sealed sub-page never race on its re-seal either.
 *
 * Each connection thread enters the enclave once; its RPC channel is released when the
 * connection ends (ps_enclave_serve).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "eleos/suvm.h"
#include "eleos/sys.h"
#include "pserver_server.h"

#define SUBPAGE      256u
/* Enough stripes that independent connections rarely collide, few enough to stay small. */
#define LOCK_STRIPES 4096u

struct suvm_table {
    struct eleos_suvm *suvm;
    bool direct;         /* sub-page direct access (table larger than the cache) */
    uint64_t base;       /* SUVM address of entry 0 */
    uint64_t entries;
    atomic_flag locks[LOCK_STRIPES];
    _Atomic uint64_t errors;
};

static void stripe_lock(struct suvm_table *t, uint64_t addr) {
    atomic_flag *l = &t->locks[(addr / SUBPAGE) % LOCK_STRIPES];
    /* Acquire pairs with the release in stripe_unlock. */
    while (atomic_flag_test_and_set_explicit(l, memory_order_acquire))
        __builtin_ia32_pause();
}

static void stripe_unlock(struct suvm_table *t, uint64_t addr) {
    atomic_flag_clear_explicit(&t->locks[(addr / SUBPAGE) % LOCK_STRIPES], memory_order_release);
}

/* A batch knows its next keys: each access hints the one HINT_AHEAD keys later, so the cache
 * misses of consecutive random accesses overlap (bench_suvm_spointer: 57 -> 20 ns per random
 * read at 32 MiB). */
#define HINT_AHEAD 16u

static void hint(struct suvm_table *t, const uint64_t *keys, uint32_t n, uint32_t i) {
    if (i + HINT_AHEAD < n)
        eleos_suvm_prefetch(t->suvm, t->base + (keys[i + HINT_AHEAD] % t->entries) * 8);
}

static void hint_first(struct suvm_table *t, const uint64_t *keys, uint32_t n) {
    for (uint32_t i = 0; i < HINT_AHEAD && i < n; i++)
        eleos_suvm_prefetch(t->suvm, t->base + (keys[i] % t->entries) * 8);
}

/* Page-mode access through one spointer per batch: pins at most one page at a time. */
static int spointer_batch(struct suvm_table *t, const uint64_t *keys, uint32_t n, uint64_t *out) {
    struct eleos_suvm_ptr p;
    int r = 0;
    eleos_suvm_ptr_init(&p, t->suvm, t->base);
    hint_first(t, keys, n);
    for (uint32_t i = 0; i < n && r == 0; i++) {
        uint64_t *q;
        hint(t, keys, n, i);
        eleos_suvm_ptr_set(&p, t->base + (keys[i] % t->entries) * 8);
        if (out) {
            r = eleos_suvm_ptr_deref(&p, (void **)&q);
            if (r == 0)
                out[i] = __atomic_load_n(q, __ATOMIC_RELAXED);
        } else {
            r = eleos_suvm_ptr_deref_w(&p, (void **)&q);
            if (r == 0)
                __atomic_fetch_add(q, 1, __ATOMIC_RELAXED);
        }
    }
    eleos_suvm_ptr_fini(&p);
    if (r)
        atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    return r;
}

static int suvm_inc(void *tp, const uint64_t *keys, uint32_t n) {
    struct suvm_table *t = tp;
    if (!t->direct)
        return spointer_batch(t, keys, n, NULL);
    hint_first(t, keys, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t addr = t->base + (keys[i] % t->entries) * 8, v;
        hint(t, keys, n, i);
        stripe_lock(t, addr);
        int r = eleos_suvm_read_direct(t->suvm, addr, &v, sizeof v);
        if (r == 0) {
            v++;
            r = eleos_suvm_write_direct(t->suvm, addr, &v, sizeof v);
        }
        stripe_unlock(t, addr);
        if (r) {
            atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
            return r; /* -EBADMSG: the backing store was tampered with */
        }
    }
    return 0;
}

static int suvm_get(void *tp, const uint64_t *keys, uint32_t n, uint64_t *out) {
    struct suvm_table *t = tp;
    if (!t->direct)
        return spointer_batch(t, keys, n, out);
    hint_first(t, keys, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t addr = t->base + (keys[i] % t->entries) * 8;
        hint(t, keys, n, i);
        int r = eleos_suvm_read_direct(t->suvm, addr, &out[i], sizeof out[i]);
        if (r) {
            atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
            return r;
        }
    }
    return 0;
}

static const struct ps_table_ops suvm_direct_ops = {"suvm, 256 B sub-page direct access",
                                                    suvm_inc, suvm_get};
static const struct ps_table_ops suvm_cached_ops = {"suvm, page cache + spointers", suvm_inc,
                                                    suvm_get};

/* Enclave side of eleos mode's set-up (called by ps_enclave_setup, inside the enclave): the
 * table's state and the SUVM instance are enclave memory; only the sealed backing store is
 * host memory, and SUVM checks what it reads back from it. */
int ps_suvm_table_create(struct eleos_enclave *enc, uint64_t table_bytes,
                         uint64_t cache_bytes, const struct ps_table_ops **ops, void **tablep) {
    struct suvm_table *t = eleos_enclave_calloc(enc, 1, sizeof *t);
    if (!t)
        return -ENOMEM;
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    if (cache_bytes)
        cfg.cache_size = cache_bytes;
    t->direct = table_bytes > cfg.cache_size;
    if (t->direct)
        cfg.subpage_size = SUBPAGE;
    /* One page more than the table: SUVM reserves its address space's first page. */
    cfg.backing_size = table_bytes + 2 * ELEOS_SUVM_PAGE_SIZE;
    int r = eleos_suvm_create(&cfg, &t->suvm);
    if (r) {
        eleos_enclave_free(enc, t);
        return r;
    }
    t->entries = table_bytes / 8;
    /* Never-written pages read as zeros: the table starts at zero without touching it. */
    r = eleos_suvm_alloc(t->suvm, table_bytes, &t->base);
    if (r) {
        eleos_suvm_destroy(t->suvm);
        eleos_enclave_free(enc, t);
        return r;
    }
    *ops = t->direct ? &suvm_direct_ops : &suvm_cached_ops;
    *tablep = t;
    return 0;
}

void ps_suvm_table_stats(void *tp, struct ps_stats *st) {
    struct suvm_table *t = tp;
    struct eleos_suvm_stats ss;
    eleos_suvm_stats(t->suvm, &ss);
    st->suvm = true;
    st->suvm_hits = ss.hits;
    st->suvm_major_faults = ss.major_faults;
    st->suvm_subpage_reads = ss.subpage_reads;
    st->suvm_subpage_writes = ss.subpage_writes;
    st->suvm_integrity_failures = ss.integrity_failures;
    st->table_errors = atomic_load_explicit(&t->errors, memory_order_relaxed);
}
