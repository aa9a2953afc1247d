/*
 * AES-GCM glue over OpenSSL libcrypto, shared by the emulator's EPC sealing and by SUVM.
 *
 * One struct gcm holds a key schedule for sealing and one for opening, set up once; each
 * seal/open only sets the IV, so no allocation happens on the hot path (this matters because
 * the emulator seals from a SIGSEGV handler). A struct gcm is not MT-safe: the caller
 * serialises use of one instance (per-thread instances or under the caller's lock).
 */
#ifndef ELEOS_COMMON_GCM_H
#define ELEOS_COMMON_GCM_H

#include <stddef.h>
#include <stdint.h>

#define GCM_IV_SIZE  12u
#define GCM_TAG_SIZE 16u

struct gcm {
    void *enc; /* EVP_CIPHER_CTX *, keyed for encryption */
    void *dec; /* EVP_CIPHER_CTX *, keyed for decryption */
};

/* key_size is 16, 24 or 32 bytes. 0, -EINVAL or -ENOMEM. */
int gcm_init(struct gcm *g, const uint8_t *key, size_t key_size)
    __attribute__((warn_unused_result));
void gcm_fini(struct gcm *g);

/* Fills key with key_size random bytes from the OpenSSL DRBG. 0 or -EIO. */
int gcm_random_key(uint8_t *key, size_t key_size) __attribute__((warn_unused_result));

/* Encrypts size bytes of in into out (may alias) and writes the tag. aad may be NULL when
 * aad_size is 0. 0 or -EIO. */
int gcm_seal(struct gcm *g, const uint8_t iv[GCM_IV_SIZE], const void *aad, size_t aad_size,
             const void *in, void *out, size_t size, uint8_t tag[GCM_TAG_SIZE])
    __attribute__((warn_unused_result));

/* Decrypts and verifies. On a bad tag returns -EBADMSG; out then holds unverified bytes the
 * caller must discard (it is wiped to zero here, so nothing unverified survives). */
int gcm_open(struct gcm *g, const uint8_t iv[GCM_IV_SIZE], const void *aad, size_t aad_size,
             const void *in, void *out, size_t size, const uint8_t tag[GCM_TAG_SIZE])
    __attribute__((warn_unused_result));

#endif
