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
 * Crossing the boundary. Sealed data is snapshotted into enclave memory before it is opened
 * and opened there in place (into the destination frame, never into a host buffer), and it
 * is built in an enclave bounce buffer before it is copied out: GCM implementations read
 * their buffers more than once (GHASH and CTR passes), so working on host memory would let
 * the host change bytes between the check and the decryption, or obtain a tag over bytes it
 * chose. Every crossing goes through untrusted_copy_in/out below.
 *
 * The fault path (page mode). A major fault with a dirty victim seals the victim's frame and
 * opens another page into the same frame, holding one crypto slot throughout. The victim is
 * sealed into the bounce buffer first (suvm_seal_defer) and written out while the new page
 * is decrypted (suvm_open_swap); the memory transfers are overlapped with the AES work as
 * described at "The fault path" below. The security argument is unchanged: the bytes opened
 * are an enclave copy, the bytes sealed are built in enclave memory, and every copy is bound
 * to (page, sub-page, version) exactly as before.
 */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

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

/* untrusted_copy_out_nt's loop where the CPU has AVX-512: 64-byte streaming stores, a quarter
 * of the store instructions of its 16-byte loop (measured ~0.03 us less per dirty fault). */
__attribute__((target("avx512f"))) static void copy_out_nt64(void *host_dst,
                                                           const void *enclave_src,
                                                           size_t size) {
    __m512i *d = host_dst;
    const __m512i *src = enclave_src;
    for (size_t i = 0; i < size / 64; i++)
        _mm512_stream_si512(d + i, _mm512_load_si512(src + i));
}

/* untrusted_copy_out for whole sealed pages and sub-pages (64-byte aligned, multiples of 64
 * bytes; anything else takes the plain copy): non-temporal stores. A sealed page is not read
 * again until it is faulted back, usually much later, so fetching its old line for ownership
 * (a DRAM read per line) and keeping it in the cache is wasted work on the fault path.
 * Unfenced: the caller fences before the page-table update that makes the copy current (x86
 * NT stores are weakly ordered). */
static void untrusted_copy_out_nt(void *host_dst, const void *enclave_src, size_t size) {
    if (((uintptr_t)host_dst | (uintptr_t)enclave_src | size) & 63) {
        untrusted_copy_out(host_dst, enclave_src, size);
        return;
    }
    if (__builtin_cpu_supports("avx512f")) {
        copy_out_nt64(host_dst, enclave_src, size);
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
}

/* Streamed and fenced. */
static void untrusted_copy_out_stream(void *host_dst, const void *enclave_src, size_t size) {
    untrusted_copy_out_nt(host_dst, enclave_src, size);
    _mm_sfence();
}

/* --- Crypto slots ------------------------------------------------------------------------- */

static _Thread_local unsigned crypto_hint;

struct crypto_slot *suvm_crypto_get(struct eleos_suvm *s) {
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

void suvm_crypto_put(struct crypto_slot *c) {
    atomic_store_explicit(&c->busy, 0, memory_order_release); /* pairs with crypto_get */
}

int suvm_crypto_init(struct eleos_suvm *s) {
    s->crypto = suvm_mem_alloc(s, 64, sizeof(struct crypto_slot) * SUVM_NCRYPTO);
    if (!s->crypto)
        return -ENOMEM;
    memset(s->crypto, 0, sizeof(struct crypto_slot) * SUVM_NCRYPTO);
    for (unsigned i = 0; i < SUVM_NCRYPTO; i++) {
        struct crypto_slot *c = &s->crypto[i];
        c->out_page = SUVM_NO_PAGE;
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
    struct crypto_slot *c = suvm_crypto_get(s);
    int r = gcm_seal(&c->gcm, b.iv, b.aad, sizeof b.aad, src, c->bounce, size, tag);
    if (r == 0) {
        untrusted_copy_out_stream(store_dst, c->bounce, size);
        untrusted_copy_out(tag_dst, tag, GCM_TAG_SIZE);
    }
    suvm_crypto_put(c);
    if (r == 0 && s->nsub > 1) /* page mode: derived from the page counters (stats) */
        suvm_stat_add(s, ST_BYTES_SEALED, size);
    return r;
}

/* Opens size bytes sealed as (page, sub, version) into dst (enclave memory): the ciphertext
 * is first copied into dst, then decrypted there in place, so the bytes decrypted are the
 * bytes authenticated whatever the host does meanwhile. On failure dst is wiped. */
static int open_(struct eleos_suvm *s, uint64_t page, uint32_t sub, uint32_t version,
                 const uint8_t *store_src, const uint8_t *tag_src, uint8_t *dst, size_t size) {
    struct binding b;
    uint8_t tag[GCM_TAG_SIZE];
    bind(&b, s, page, sub, version);
    untrusted_copy_in(tag, tag_src, GCM_TAG_SIZE);
    untrusted_copy_in(dst, store_src, size);
    struct crypto_slot *c = suvm_crypto_get(s);
    int r = gcm_open(&c->gcm, b.iv, b.aad, sizeof b.aad, dst, dst, size, tag);
    suvm_crypto_put(c);
    if (r) {
        memset(dst, 0, size); /* gcm_open wipes on a bad tag; also on any other error */
        if (r == -EBADMSG)
            return suvm_integrity_failure(s, page, sub);
        return r;
    }
    if (s->nsub > 1) /* page mode: derived from the page counters (stats) */
        suvm_stat_add(s, ST_BYTES_OPENED, size);
    return 0;
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

/* --- The fault path: pipelined seal of the victim + open of the faulting page ------------- */

/*
 * A dirty major fault moves 12 KiB through memory (the victim's plaintext in, its ciphertext
 * out, the new ciphertext in) besides two AES-GCM passes over L1-resident data. Measured on
 * the development VM (DRAM latency ~185 ns), the transfer that matters is the new ciphertext:
 * a random 4 KiB of the store, fetched from DRAM (with it in cache, a replica of this loop
 * costs 1.2x one hot open + seal; from DRAM, 1.5-1.7x). The victim's frame is already cached
 * (the previous fault fetched it, see clock_peek) and the streaming stores of the victim's
 * ciphertext drain in the background. So:
 *
 *   fault start:           as soon as the page is known to be sealed, before the victim is
 *                          even chosen, hint its tag and the first chunk of its ciphertext
 *                          (suvm_fault_prefetch);
 *   seal pass, per chunk:  hint the next chunk of the new ciphertext and a slice of the next
 *                          fault's likely victim, encrypt the chunk of the victim into the
 *                          bounce buffer;
 *   open pass, per chunk:  stream the chunk of the victim's ciphertext out (non-temporal
 *                          stores, which drain during the decryption), copy the chunk of the
 *                          new ciphertext into the frame, hint another slice of the next
 *                          victim, decrypt the chunk in place; then one fence.
 *
 * Copying each chunk just before it is decrypted (rather than the page before the first)
 * lets the decryption start while the rest is still arriving. The next victim is hinted into
 * L2 only: it is read a whole fault later, and L1 hints would compete with the ciphertext for
 * the core's ~16 line-fill buffers.
 *
 * Chunk boundaries are multiples of 96 bytes (the stitched AES-GCM code's 6-block unit; only
 * the last chunk has a tail): a chunk that ends mid-unit sends its tail through OpenSSL's
 * slower unstitched path (4 x 1024 B cost 0.15 us more than one call per page, 3 x 960 +
 * 1216 B 0.09 us). Five chunks measured best; three let the transfers bunch up and stall.
 *
 * Without a dirty victim (free frame, clean victim) there is no seal pass to hide the
 * ciphertext fetch behind, so the open pass hints it a chunk ahead of the decryption.
 */
#define NCHUNKS 5u
static const unsigned chunk_at[NCHUNKS + 1] = {0, 768, 1536, 2304, 3072, SUVM_PAGE_SIZE};
/* Share of the next victim's frame hinted during the seal pass; the open pass does the rest. */
#define AHEAD_IN_SEAL (SUVM_PAGE_SIZE / 2)

/* Cache hint (to L2) for enclave memory: the next victim's frame. */
static void prefetch_enclave(const uint8_t *p, unsigned from, unsigned to) {
    for (unsigned i = from & ~63u; i < to; i += 64)
        _mm_prefetch((const char *)p + i, _MM_HINT_T1);
}

/* Cache hints for [from, to) of a sealed page in the store, about to be snapshotted (no
 * data is consumed). */
static void untrusted_hint(const uint8_t *host_src, unsigned from, unsigned to) {
    for (unsigned i = from & ~63u; i < to; i += 64)
        _mm_prefetch((const char *)host_src + i, _MM_HINT_T0);
}

void suvm_fault_prefetch(struct eleos_suvm *s, uint64_t page) {
    if (s->nsub != 1)
        return;
    _mm_prefetch((const char *)s->tags + page * GCM_TAG_SIZE, _MM_HINT_T0);
    untrusted_hint(s->store + page * SUVM_PAGE_SIZE, 0, chunk_at[1]);
}

void suvm_sub_prefetch(struct eleos_suvm *s, uint64_t page, uint32_t sub) {
    _mm_prefetch((const char *)s->tags + (page * s->nsub + sub) * GCM_TAG_SIZE, _MM_HINT_T0);
    unsigned off = sub * (unsigned)s->subsz;
    untrusted_hint(s->store + page * SUVM_PAGE_SIZE, off, off + (unsigned)s->subsz);
}

int suvm_seal_defer(struct eleos_suvm *s, struct crypto_slot *c, uint64_t page,
                    const uint8_t *src, uint64_t next, const uint8_t *ahead) {
    struct pte *e = &s->pt[page];
    if (e->version == UINT32_MAX)
        return -EOVERFLOW;
    struct binding b;
    bind(&b, s, page, 0, e->version + 1);
    /* The victim's tag slot is written at the end of the open pass; fetched for writing now,
     * the store does not wait for DRAM there (in front of the fence). */
    __asm__("prefetchw %0" : : "m"(s->tags[page * GCM_TAG_SIZE]));
    /* The first chunk of next was hinted by suvm_fault_prefetch. */
    const uint8_t *nsrc = next == SUVM_NO_PAGE ? NULL : s->store + next * SUVM_PAGE_SIZE;
    EVP_CIPHER_CTX *x = c->gcm.enc;
    int n = 0;
    if (EVP_EncryptInit_ex(x, NULL, NULL, NULL, b.iv) != 1 ||
        EVP_EncryptUpdate(x, NULL, &n, b.aad, (int)sizeof b.aad) != 1)
        return -EIO;
    for (unsigned k = 0; k < NCHUNKS; k++) {
        unsigned o = chunk_at[k], end = chunk_at[k + 1];
        /* In flight while this chunk is encrypted. */
        if (nsrc && k + 1 < NCHUNKS)
            untrusted_hint(nsrc, end, chunk_at[k + 2]);
        if (ahead)
            prefetch_enclave(ahead, o * AHEAD_IN_SEAL / SUVM_PAGE_SIZE,
                             end * AHEAD_IN_SEAL / SUVM_PAGE_SIZE);
        if (EVP_EncryptUpdate(x, c->bounce + o, &n, src + o, (int)(end - o)) != 1)
            return -EIO;
    }
    if (EVP_EncryptFinal_ex(x, c->bounce + SUVM_PAGE_SIZE, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, GCM_TAG_SIZE, c->out_tag) != 1)
        return -EIO;
    /* The new copy is current once written out; the page stays LOCKED until then, and only
     * the holder of LOCKED reads the version. */
    e->version++;
    c->out_page = page;
    return 0;
}

/* Writes the sealed page pending in c from byte `from` on, and its tag, to the backing store
 * and fences: the streaming stores are ordered before the page-table update that makes the
 * copy current (x86 NT stores are weakly ordered). */
static void seal_out_rest(struct eleos_suvm *s, struct crypto_slot *c, unsigned from) {
    uint64_t page = c->out_page;
    untrusted_copy_out_nt(s->store + page * SUVM_PAGE_SIZE + from, c->bounce + from,
                          SUVM_PAGE_SIZE - from);
    untrusted_copy_out(s->tags + page * GCM_TAG_SIZE, c->out_tag, GCM_TAG_SIZE);
    _mm_sfence();
    c->out_page = SUVM_NO_PAGE;
}

void suvm_seal_complete(struct eleos_suvm *s, struct crypto_slot *c) {
    if (c->out_page != SUVM_NO_PAGE)
        seal_out_rest(s, c, 0);
}

int suvm_open_swap(struct eleos_suvm *s, struct crypto_slot *c, uint64_t page, uint8_t *dst,
                   const uint8_t *ahead) {
    struct binding b;
    uint8_t tag[GCM_TAG_SIZE];
    bind(&b, s, page, 0, s->pt[page].version);
    untrusted_copy_in(tag, s->tags + page * GCM_TAG_SIZE, GCM_TAG_SIZE);
    const uint8_t *src = s->store + page * SUVM_PAGE_SIZE;
    bool out = c->out_page != SUVM_NO_PAGE;
    uint8_t *odst = out ? s->store + c->out_page * SUVM_PAGE_SIZE : NULL;
    /* The part of the next victim the seal pass did not hint (all of it without one). */
    unsigned afrom = out ? AHEAD_IN_SEAL : 0;
    EVP_CIPHER_CTX *x = c->gcm.dec;
    int n = 0, r = 0;
    if (EVP_DecryptInit_ex(x, NULL, NULL, NULL, b.iv) != 1 ||
        EVP_DecryptUpdate(x, NULL, &n, b.aad, (int)sizeof b.aad) != 1)
        r = -EIO;
    for (unsigned k = 0; k < NCHUNKS; k++) {
        unsigned o = chunk_at[k], end = chunk_at[k + 1];
        if (out) /* drains while this chunk is decrypted */
            untrusted_copy_out_nt(odst + o, c->bounce + o, end - o);
        else if (k + 1 < NCHUNKS) /* no seal pass hid the fetch: a chunk ahead */
            untrusted_hint(src, end, chunk_at[k + 2]);
        /* The snapshot of this chunk: from here on only enclave memory (dst) is read. */
        untrusted_copy_in(dst + o, src + o, end - o);
        if (ahead)
            prefetch_enclave(ahead, afrom + o * (SUVM_PAGE_SIZE - afrom) / SUVM_PAGE_SIZE,
                             afrom + end * (SUVM_PAGE_SIZE - afrom) / SUVM_PAGE_SIZE);
        if (!r && EVP_DecryptUpdate(x, dst + o, &n, dst + o, (int)(end - o)) != 1)
            r = -EIO;
    }
    if (out)
        seal_out_rest(s, c, SUVM_PAGE_SIZE); /* the tag, and the fence */
    if (!r && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, GCM_TAG_SIZE, tag) != 1)
        r = -EIO;
    if (!r && EVP_DecryptFinal_ex(x, dst + SUVM_PAGE_SIZE, &n) != 1)
        r = -EBADMSG;
    if (r) {
        memset(dst, 0, SUVM_PAGE_SIZE); /* nothing unverified survives */
        return r == -EBADMSG ? suvm_integrity_failure(s, page, 0) : r;
    }
    return 0;
}
