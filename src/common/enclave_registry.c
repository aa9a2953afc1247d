/*
 * Enclave-side registry of live objects (see enclave_registry.h for the rule it enforces).
 *
 * Each slot is one atomic word: generation | BUSY | LIVE | reference count. get takes a
 * reference with one CAS that also checks LIVE and the generation, so a handle is either
 * resolved and pinned in one step or refused; nothing else about the slot is read before
 * that. retire clears LIVE and advances the generation in one CAS (references survive it),
 * drain waits for them, and add claims only slots with no flag and no reference.
 *
 * Orderings: add writes obj/owner after its claiming CAS and publishes them with the release
 * store that sets LIVE; get's acquire CAS pairs with it. A reference's reads of obj/owner
 * happen before its put (release), which drain's acquire load observes before it clears
 * BUSY (release), which the next add's claiming CAS (acquire) observes before it rewrites
 * obj/owner.
 */
#include "common/enclave_registry.h"

#include <immintrin.h>

#define W_REFS      0x7fffull
#define W_LIVE      (1ull << 15)
#define W_BUSY      (1ull << 16)
#define W_GEN_SHIFT 17
#define GEN_MASK    ((1ull << 47) - 1)
#define H_IDX_MASK  0xffffull
#define H_GEN_SHIFT 16

_Static_assert(ENCLAVE_REGISTRY_SLOTS < H_IDX_MASK, "slot index + 1 must fit 16 bits");

static uint64_t gen_of_word(uint64_t w) {
    return w >> W_GEN_SHIFT;
}

static uint64_t handle_of(uint64_t gen, uint32_t i) {
    return gen << H_GEN_SHIFT | (uint64_t)(i + 1);
}

/* The slot h names and the generation it expects, or NULL for a value that names no slot
 * (index 0 or out of range, bit 63 set). */
static struct enclave_registry_slot *slot_of(struct enclave_registry *r, uint64_t h,
                                             uint64_t *gen) {
    uint64_t i = h & H_IDX_MASK;
    if (i == 0 || i > ENCLAVE_REGISTRY_SLOTS || h >> 63)
        return NULL;
    *gen = h >> H_GEN_SHIFT;
    return &r->slot[i - 1];
}

static void refuse(struct enclave_registry *r) {
    atomic_fetch_add_explicit(&r->refused, 1, memory_order_relaxed); /* a statistic */
}

uint64_t enclave_registry_add(struct enclave_registry *r, void *obj, const void *owner) {
    for (uint32_t i = 0; i < ENCLAVE_REGISTRY_SLOTS; i++) {
        struct enclave_registry_slot *s = &r->slot[i];
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        if (w & (W_REFS | W_LIVE | W_BUSY))
            continue;
        if (!atomic_compare_exchange_strong_explicit(&s->word, &w, w | W_BUSY,
                                                     memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        s->obj = obj;
        s->owner = owner;
        atomic_store_explicit(&s->word, w | W_LIVE, memory_order_release);
        return handle_of(gen_of_word(w), i);
    }
    return 0;
}

/* Takes a reference on h's slot if h names its live generation. */
static bool ref(struct enclave_registry_slot *s, uint64_t gen) {
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    do {
        if (!(w & W_LIVE) || gen_of_word(w) != gen || (w & W_REFS) == W_REFS)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, w + 1, memory_order_acquire,
                                                    memory_order_relaxed));
    return true;
}

static void unref(struct enclave_registry_slot *s) {
    atomic_fetch_sub_explicit(&s->word, 1, memory_order_release); /* pairs with drain */
}

void *enclave_registry_get(struct enclave_registry *r, uint64_t h, const void *owner) {
    uint64_t gen;
    struct enclave_registry_slot *s = slot_of(r, h, &gen);
    if (s && ref(s, gen)) {
        if (s->owner == owner)
            return s->obj;
        unref(s);
    }
    refuse(r);
    return NULL;
}

void enclave_registry_put(struct enclave_registry *r, uint64_t h) {
    uint64_t gen;
    struct enclave_registry_slot *s = slot_of(r, h, &gen);
    if (s)
        unref(s);
}

uint64_t enclave_registry_find(struct enclave_registry *r, const void *obj, const void *owner) {
    for (uint32_t i = 0; i < ENCLAVE_REGISTRY_SLOTS; i++) {
        struct enclave_registry_slot *s = &r->slot[i];
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        uint64_t gen = gen_of_word(w);
        if (!(w & W_LIVE) || !ref(s, gen))
            continue;
        bool match = s->obj == obj && s->owner == owner;
        unref(s);
        if (match)
            return handle_of(gen, i);
    }
    refuse(r);
    return 0;
}

bool enclave_registry_retire(struct enclave_registry *r, uint64_t h) {
    uint64_t gen;
    struct enclave_registry_slot *s = slot_of(r, h, &gen);
    if (!s)
        return false;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    uint64_t next;
    do {
        if (!(w & W_LIVE) || gen_of_word(w) != gen)
            return false;
        next = ((gen + 1) & GEN_MASK) << W_GEN_SHIFT | W_BUSY | (w & W_REFS);
    } while (!atomic_compare_exchange_weak_explicit(&s->word, &w, next, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void enclave_registry_drain(struct enclave_registry *r, uint64_t h) {
    uint64_t gen;
    struct enclave_registry_slot *s = slot_of(r, h, &gen);
    if (!s)
        return;
    /* Acquire pairs with unref: the holders' last uses of the object happen before. */
    while (atomic_load_explicit(&s->word, memory_order_acquire) & W_REFS)
        _mm_pause();
    atomic_fetch_and_explicit(&s->word, ~W_BUSY, memory_order_release); /* pairs with add */
}

uint64_t enclave_registry_refused(const struct enclave_registry *r) {
    return atomic_load_explicit(&r->refused, memory_order_relaxed);
}
