/*
 * SUVM sealing: the only code that touches the untrusted backing store.
 *
 * Format. Page mode: page i's ciphertext at store + i*4096, its 16-byte GCM tag at
 * tags + i*16. Sub-page mode: the same 4096 bytes hold nsub independently sealed sub-pages,
 * and the tags array has nsub tags per page.
 *
 * Nonce (96 bits) = page index (32) | version (32) | sub-page index (16) | mode (16). The
 * version of a page (or sub-page) only grows while the key lives, and every seal takes a
 * new version, so a nonce is never used twice under one key. The additional data binds
 * the same page, sub-page and version again under a domain label. The enclave keeps the
 * current version, so: a modified ciphertext or tag fails the tag check; an old copy
 * (replay) was sealed under an older version and fails; a copy of another page or
 * sub-page (swap) was sealed under another index and fails.
 *
 * Crossing the boundary. Ciphertext is snapshotted into an enclave bounce buffer before it
 * is opened, and built in the bounce buffer before it is copied out: GCM implementations
 * read their buffers more than once (GHASH and CTR passes), so working in place on host
 * memory would let the host change bytes between the check and the decryption, or obtain a
 * tag over bytes it chose. Every crossing goes through untrusted_copy_in/out below.
 */
#include <errno.h>
#include <string.h>

#include "suvm/suvm_internal.h"

/* --- The crossings ------------------------------------------------------------------------ */

/* Snapshot untrusted bytes into enclave memory; the caller uses only the snapshot. */
static void untrusted_copy_in(void *enclave_dst, const void *host_src, size_t size) {
    memcpy(enclave_dst, host_src, size);
}

/* Publish enclave-built bytes (ciphertext, tags: never plaintext) to untrusted memory. */
static void untrusted_copy_out(void *host_dst, const void *enclave_src, size_t size) {
    memcpy(host_dst, enclave_src, size);
}

/* The same for whole sealed pages and sub-pages (16-byte aligned, multiples of 64 bytes):
 * non-temporal stores. A sealed page is not read again until it is faulted back, usually
 * much later, so fetching its old line for ownership (a DRAM read per line) and keeping it
 * in the cache is wasted work on the fault path. The fence orders the streaming stores
 * before the page-table update that makes the copy current (x86 NT stores are weakly
 * ordered). */
static void untrusted_copy_out_stream(void *host_dst, const void *enclave_src, size_t size) {
    if (((uintptr_t)host_dst | (uintptr_t)enclave_src | size) & 63) {
        untrusted_copy_out(host_dst, enclave_src, size);
        return;
    }
    __m128i *d = host_dst;
    const __m128i *src = enclave_src;
    for (size_t i = 0; i < size / 16; i += 4) {
        __m128i a = _mm_load_si128(src + i), b = _mm_load_si128(src + i + 1);
        __m128i c = _mm_load_si128(src + i + 2), e = _mm_load_si128(src + i + 3);
        _mm_stream_si128(d + i, a);
        _mm_stream_si128(d + i + 1, b);
        _mm_stream_si128(d + i + 2, c);
        _mm_stream_si128(d + i + 3, e);
    }
    _mm_sfence();
}

/* --- Crypto slots ------------------------------------------------------------------------- */

static _Thread_local unsigned crypto_hint;

static struct crypto_slot *crypto_get(struct eleos_suvm *s) {
    unsigned i = crypto_hint;
    for (;;) {
        struct crypto_slot *c = &s->crypto[i % SUVM_NCRYPTO];
        /* Pairs with the release in crypto_put: the previous user's work on the context
         * is complete before we use it. */
        if (!atomic_load_explicit(&c->busy, memory_order_relaxed) &&
            !atomic_exchange_explicit(&c->busy, 1, memory_order_acquire)) {
            crypto_hint = i % SUVM_NCRYPTO;
            return c;
        }
        i++;
        if (i % SUVM_NCRYPTO == crypto_hint)
            _mm_pause();
    }
}

static void crypto_put(struct crypto_slot *c) {
    atomic_store_explicit(&c->busy, 0, memory_order_release); /* pairs with crypto_get */
}

int suvm_crypto_init(struct eleos_suvm *s) {
    s->crypto = suvm_mem_alloc(s, 64, sizeof(struct crypto_slot) * SUVM_NCRYPTO);
    if (!s->crypto)
        return -ENOMEM;
    memset(s->crypto, 0, sizeof(struct crypto_slot) * SUVM_NCRYPTO);
    for (unsigned i = 0; i < SUVM_NCRYPTO; i++) {
        struct crypto_slot *c = &s->crypto[i];
        c->bounce = suvm_mem_alloc(s, 64, SUVM_PAGE_SIZE);
        if (!c->bounce)
            return -ENOMEM;
        int r = gcm_init(&c->gcm, s->key, s->cfg.key_size);
        if (r)
            return r == -EINVAL ? -EINVAL : -EIO;
    }
    return 0;
}

void suvm_crypto_fini(struct eleos_suvm *s) {
    if (!s->crypto)
        return;
    for (unsigned i = 0; i < SUVM_NCRYPTO; i++) {
        struct crypto_slot *c = &s->crypto[i];
        if (c->gcm.enc || c->gcm.dec)
            gcm_fini(&c->gcm);
        if (c->bounce) {
            memset(c->bounce, 0, SUVM_PAGE_SIZE);
            suvm_mem_free(s, c->bounce);
        }
    }
    suvm_mem_free(s, s->crypto);
    s->crypto = NULL;
}

/* --- Nonce and additional data ------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

struct binding {
    uint8_t iv[GCM_IV_SIZE];
    uint8_t aad[16];
};

static void bind(struct binding *b, const struct eleos_suvm *s, uint64_t page, uint32_t sub,
                 uint32_t version) {
    uint16_t mode = s->nsub > 1 ? 1 : 0;
    /* create() guarantees page < 2^32. */
    put32(b->iv, (uint32_t)page);
    put32(b->iv + 4, version);
    b->iv[8] = (uint8_t)sub;
    b->iv[9] = (uint8_t)(sub >> 8);
    b->iv[10] = (uint8_t)mode;
    b->iv[11] = (uint8_t)(mode >> 8);
    memcpy(b->aad, "SUVM", 4);
    put32(b->aad + 4, (uint32_t)page);
    put32(b->aad + 8, sub | (uint32_t)mode << 16);
    put32(b->aad + 12, version);
}

/* --- Seal / open --------------------------------------------------------------------------- */

/* Seals size bytes of src as (page, sub, version) to store_dst / tag_dst. */
static int seal(struct eleos_suvm *s, uint64_t page, uint32_t sub, uint32_t version,
                const uint8_t *src, size_t size, uint8_t *store_dst, uint8_t *tag_dst) {
    struct binding b;
    uint8_t tag[GCM_TAG_SIZE];
    bind(&b, s, page, sub, version);
    struct crypto_slot *c = crypto_get(s);
    int r = gcm_seal(&c->gcm, b.iv, b.aad, sizeof b.aad, src, c->bounce, size, tag);
    if (r == 0) {
        untrusted_copy_out_stream(store_dst, c->bounce, size);
        untrusted_copy_out(tag_dst, tag, GCM_TAG_SIZE);
    }
    crypto_put(c);
    if (r == 0)
        suvm_stat_add(s, ST_BYTES_SEALED, size);
    return r;
}

static int open_(struct eleos_suvm *s, uint64_t page, uint32_t sub, uint32_t version,
                 const uint8_t *store_src, const uint8_t *tag_src, uint8_t *dst, size_t size) {
    struct binding b;
    uint8_t tag[GCM_TAG_SIZE];
    bind(&b, s, page, sub, version);
    untrusted_copy_in(tag, tag_src, GCM_TAG_SIZE);
    struct crypto_slot *c = crypto_get(s);
    untrusted_copy_in(c->bounce, store_src, size);
    int r = gcm_open(&c->gcm, b.iv, b.aad, sizeof b.aad, c->bounce, dst, size, tag);
    crypto_put(c);
    if (r == -EBADMSG)
        return suvm_integrity_failure(s, page, sub);
    if (r == 0)
        suvm_stat_add(s, ST_BYTES_OPENED, size);
    return r;
}

int suvm_seal_sub(struct eleos_suvm *s, uint64_t page, uint32_t sub, const uint8_t *src) {
    uint32_t *ver = &s->subver[page * s->nsub + sub];
    if (*ver == UINT32_MAX)
        return -EOVERFLOW;
    size_t off = (size_t)sub * s->subsz;
    int r = seal(s, page, sub, *ver + 1, src, s->subsz,
                 s->store + page * SUVM_PAGE_SIZE + off,
                 s->tags + (page * s->nsub + sub) * GCM_TAG_SIZE);
    if (r)
        return r;
    (*ver)++;
    s->pt[page].version |= 1u << sub;
    return 0;
}

int suvm_open_sub(struct eleos_suvm *s, uint64_t page, uint32_t sub, uint8_t *dst) {
    if (!(s->pt[page].version & (1u << sub))) {
        memset(dst, 0, s->subsz);
        return 0;
    }
    size_t off = (size_t)sub * s->subsz;
    return open_(s, page, sub, s->subver[page * s->nsub + sub],
                 s->store + page * SUVM_PAGE_SIZE + off,
                 s->tags + (page * s->nsub + sub) * GCM_TAG_SIZE, dst, s->subsz);
}

int suvm_seal_page(struct eleos_suvm *s, uint64_t page, const uint8_t *src) {
    if (s->nsub > 1) {
        /* Check every counter first so a page is sealed whole or not at all. */
        for (uint32_t i = 0; i < s->nsub; i++)
            if (s->subver[page * s->nsub + i] == UINT32_MAX)
                return -EOVERFLOW;
        for (uint32_t i = 0; i < s->nsub; i++) {
            int r = suvm_seal_sub(s, page, i, src + (size_t)i * s->subsz);
            if (r)
                return r;
        }
        return 0;
    }
    struct pte *e = &s->pt[page];
    if (e->version == UINT32_MAX)
        return -EOVERFLOW;
    int r = seal(s, page, 0, e->version + 1, src, SUVM_PAGE_SIZE,
                 s->store + page * SUVM_PAGE_SIZE, s->tags + page * GCM_TAG_SIZE);
    if (r)
        return r;
    e->version++;
    return 0;
}

int suvm_open_page(struct eleos_suvm *s, uint64_t page, uint8_t *dst) {
    if (s->nsub > 1) {
        for (uint32_t i = 0; i < s->nsub; i++) {
            int r = suvm_open_sub(s, page, i, dst + (size_t)i * s->subsz);
            if (r) {
                memset(dst, 0, SUVM_PAGE_SIZE); /* nothing unverified survives */
                return r;
            }
        }
        return 0;
    }
    return open_(s, page, 0, s->pt[page].version, s->store + page * SUVM_PAGE_SIZE,
                 s->tags + page * GCM_TAG_SIZE, dst, SUVM_PAGE_SIZE);
}
