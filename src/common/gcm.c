/*
 * AES-GCM glue. Each context is keyed once (EVP_*Init_ex with cipher and key); every
 * operation then re-initialises only the IV (cipher and key NULL), which OpenSSL 3 handles
 * without allocating, so the functions are usable from the emulator's fault handler.
 */
#include "common/gcm.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

static const EVP_CIPHER *cipher_for(size_t key_size) {
    switch (key_size) {
    case 16: return EVP_aes_128_gcm();
    case 24: return EVP_aes_192_gcm();
    case 32: return EVP_aes_256_gcm();
    default: return NULL;
    }
}

int gcm_init(struct gcm *g, const uint8_t *key, size_t key_size) {
    const EVP_CIPHER *c = cipher_for(key_size);
    memset(g, 0, sizeof *g);
    if (!c)
        return -EINVAL;
    EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new(), *d = EVP_CIPHER_CTX_new();
    if (!e || !d)
        goto fail;
    if (EVP_EncryptInit_ex(e, c, NULL, key, NULL) != 1 ||
        EVP_DecryptInit_ex(d, c, NULL, key, NULL) != 1)
        goto fail;
    g->enc = e;
    g->dec = d;
    return 0;
fail:
    EVP_CIPHER_CTX_free(e);
    EVP_CIPHER_CTX_free(d);
    return -ENOMEM;
}

void gcm_fini(struct gcm *g) {
    EVP_CIPHER_CTX_free(g->enc);
    EVP_CIPHER_CTX_free(g->dec);
    g->enc = g->dec = NULL;
}

int gcm_random_key(uint8_t *key, size_t key_size) {
    return RAND_bytes(key, (int)key_size) == 1 ? 0 : -EIO;
}

int gcm_seal(struct gcm *g, const uint8_t iv[GCM_IV_SIZE], const void *aad, size_t aad_size,
             const void *in, void *out, size_t size, uint8_t tag[GCM_TAG_SIZE]) {
    EVP_CIPHER_CTX *c = g->enc;
    int n = 0;
    if (size > INT_MAX || aad_size > INT_MAX)
        return -EINVAL;
    if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv) != 1)
        return -EIO;
    if (aad_size && EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_size) != 1)
        return -EIO;
    if (size && EVP_EncryptUpdate(c, out, &n, in, (int)size) != 1)
        return -EIO;
    if (EVP_EncryptFinal_ex(c, (unsigned char *)out + n, &n) != 1)
        return -EIO;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_SIZE, tag) != 1)
        return -EIO;
    return 0;
}

int gcm_open(struct gcm *g, const uint8_t iv[GCM_IV_SIZE], const void *aad, size_t aad_size,
             const void *in, void *out, size_t size, const uint8_t tag[GCM_TAG_SIZE]) {
    EVP_CIPHER_CTX *c = g->dec;
    int n = 0;
    uint8_t t[GCM_TAG_SIZE];
    if (size > INT_MAX || aad_size > INT_MAX)
        return -EINVAL;
    /* Copy the tag first: it may live in host memory that changes under us. */
    memcpy(t, tag, sizeof t);
    if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, iv) != 1)
        return -EIO;
    if (aad_size && EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_size) != 1)
        return -EIO;
    if (size && EVP_DecryptUpdate(c, out, &n, in, (int)size) != 1)
        return -EIO;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG_SIZE, t) != 1)
        return -EIO;
    if (EVP_DecryptFinal_ex(c, (unsigned char *)out + n, &n) != 1) {
        memset(out, 0, size);
        return -EBADMSG;
    }
    return 0;
}
