/*
 * face_proto.c — eleos-face's framing, sealing, replay window and key file (face_proto.h).
 */
#include "face_proto.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* --- sealing ---------------------------------------------------------------------------- */

void *face_gcm_new(void) {
    return EVP_CIPHER_CTX_new();
}

void face_gcm_free(void *ctx) {
    EVP_CIPHER_CTX_free(ctx);
}

static void make_iv(uint8_t iv[FACE_IV_BYTES], uint32_t dir, uint64_t seq) {
    memcpy(iv, &dir, 4);
    memcpy(iv + 4, &seq, 8);
}

int face_seal(void *ctx, const uint8_t key[FACE_KEY_BYTES], uint32_t dir, uint64_t seq,
              const void *aad, size_t aad_len, const void *in, void *out, size_t len,
              uint8_t tag[FACE_TAG_BYTES]) {
    uint8_t iv[FACE_IV_BYTES];
    int n;
    make_iv(iv, dir, seq);
    if (len > INT_MAX || aad_len > INT_MAX ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, (uint8_t *)out + n, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, FACE_TAG_BYTES, tag) != 1)
        return -1;
    return 0;
}

int face_open(void *ctx, const uint8_t key[FACE_KEY_BYTES], uint32_t dir, uint64_t seq,
              const void *aad, size_t aad_len, const void *in, void *out, size_t len,
              const uint8_t tag[FACE_TAG_BYTES]) {
    uint8_t iv[FACE_IV_BYTES], t[FACE_TAG_BYTES];
    int n;
    make_iv(iv, dir, seq);
    memcpy(t, tag, sizeof t);
    if (len > INT_MAX || aad_len > INT_MAX ||
        EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_DecryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, FACE_TAG_BYTES, t) != 1 ||
        EVP_DecryptFinal_ex(ctx, (uint8_t *)out + n, &n) != 1) {
        /* Nothing unverified survives. */
        OPENSSL_cleanse(out, len);
        return -1;
    }
    return 0;
}

/* --- framing ---------------------------------------------------------------------------- */

enum face_status face_req_check(const struct face_req *r) {
    if (r->magic != FACE_REQ_MAGIC || r->len != FACE_PROBE_BYTES || r->reserved != 0)
        return FACE_E_FRAME;
    return FACE_OK;
}

int face_req_build(void *ctx, const uint8_t key[FACE_KEY_BYTES], uint32_t client,
                   uint64_t seq, const struct face_probe *probe, uint8_t *buf) {
    struct face_req h = {FACE_REQ_MAGIC, client, seq, FACE_PROBE_BYTES, 0};
    memcpy(buf, &h, sizeof h);
    uint8_t *ct = buf + sizeof h;
    return face_seal(ctx, key, 0, seq, &h, sizeof h, probe, ct, FACE_PROBE_BYTES,
                     ct + FACE_PROBE_BYTES);
}

size_t face_ans_build(void *ctx, const uint8_t *key, uint32_t client, uint64_t seq,
                      enum face_status st, const struct face_result *res, uint8_t *buf) {
    bool sealed = key && res;
    struct face_ans h = {FACE_ANS_MAGIC, (uint32_t)st, seq,
                         sealed ? (uint32_t)sizeof *res : 0, client};
    memcpy(buf, &h, sizeof h);
    if (!sealed)
        return sizeof h;
    uint8_t *ct = buf + sizeof h;
    if (face_seal(ctx, key, 1, seq, &h, sizeof h, res, ct, sizeof *res, ct + sizeof *res))
        return 0;
    return FACE_ANS_MAX;
}

int face_ans_open(void *ctx, const uint8_t key[FACE_KEY_BYTES], uint32_t client,
                  uint64_t seq, const uint8_t *buf, size_t len, enum face_status *st,
                  struct face_result *res) {
    struct face_ans h;
    if (len < sizeof h)
        return -1;
    memcpy(&h, buf, sizeof h);
    if (h.magic != FACE_ANS_MAGIC || h.status >= FACE_NSTATUS)
        return -1;
    *st = (enum face_status)h.status;
    if (h.len == 0)
        /* A refusal in clear may echo seq 0 (a request it could not read). */
        return len == sizeof h && (h.seq == seq || h.seq == 0) ? 0 : -1;
    if (h.len != sizeof *res || len != FACE_ANS_MAX || h.client != client || h.seq != seq ||
        (h.status != FACE_OK && h.status != FACE_E_IDENTITY))
        return -1;
    const uint8_t *ct = buf + sizeof h;
    return face_open(ctx, key, 1, seq, &h, sizeof h, ct, res, sizeof *res, ct + sizeof *res);
}

/* --- replay window ----------------------------------------------------------------------- */

static bool window_bit(const struct face_window *w, uint64_t s) {
    uint64_t i = s % FACE_WINDOW;
    return (w->bits[i / 64] >> (i % 64)) & 1;
}

bool face_window_check(const struct face_window *w, uint64_t seq) {
    if (seq == 0)
        return false;
    if (seq > w->top)
        return true;
    if (w->top - seq >= FACE_WINDOW)
        return false; /* below the window: can no longer be told apart from a replay */
    return !window_bit(w, seq);
}

void face_window_commit(struct face_window *w, uint64_t seq) {
    if (seq > w->top) {
        /* Slide: the slots of seqs that leave the window are cleared for the new ones. */
        uint64_t gap = seq - w->top;
        if (gap >= FACE_WINDOW) {
            memset(w->bits, 0, sizeof w->bits);
        } else {
            for (uint64_t s = w->top + 1; s <= seq; s++) {
                uint64_t i = s % FACE_WINDOW;
                w->bits[i / 64] &= ~(1ull << (i % 64));
            }
        }
        w->top = seq;
    }
    uint64_t i = seq % FACE_WINDOW;
    w->bits[i / 64] |= 1ull << (i % 64);
}

/* --- key file ---------------------------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One non-comment line "<id> <hex>" of n bytes: 0 or -1. */
static int key_line(const char *s, size_t n, struct face_keys *k) {
    size_t p = 0;
    uint32_t id = 0;
    if (p == n || s[p] < '0' || s[p] > '9')
        return -1;
    while (p < n && s[p] >= '0' && s[p] <= '9') {
        id = id * 10 + (uint32_t)(s[p++] - '0');
        if (id >= FACE_CLIENTS_MAX)
            return -1;
    }
    if (p == n || (s[p] != ' ' && s[p] != '\t'))
        return -1;
    while (p < n && (s[p] == ' ' || s[p] == '\t'))
        p++;
    if (n - p < 2 * FACE_KEY_BYTES || k->present[id])
        return -1;
    uint8_t key[FACE_KEY_BYTES];
    for (unsigned i = 0; i < FACE_KEY_BYTES; i++) {
        int hi = hexval(s[p + 2 * i]), lo = hexval(s[p + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    for (p += 2 * FACE_KEY_BYTES; p < n; p++)
        if (s[p] != ' ' && s[p] != '\t' && s[p] != '\r')
            return -1;
    memcpy(k->key[id], key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    k->present[id] = true;
    k->count++;
    return 0;
}

int face_keys_parse(const char *buf, size_t len, struct face_keys *k, unsigned *bad_line) {
    memset(k, 0, sizeof *k);
    *bad_line = 0;
    unsigned line = 0;
    for (size_t p = 0; p < len;) {
        const char *nl = memchr(buf + p, '\n', len - p);
        size_t n = nl ? (size_t)(nl - (buf + p)) : len - p;
        const char *s = buf + p;
        line++;
        p += n + 1;
        size_t q = 0;
        while (q < n && (s[q] == ' ' || s[q] == '\t' || s[q] == '\r'))
            q++;
        if (q == n || s[q] == '#')
            continue;
        if (key_line(s + q, n - q, k)) {
            *bad_line = line;
            OPENSSL_cleanse(k, sizeof *k);
            return -1;
        }
    }
    return k->count ? 0 : -1;
}
