/*
 * face_proto.h — eleos-face's wire protocol, the client keys and the replay window. Pure
 * code (no system call): shared by the server (inside the enclave), the client and the
 * tests. All integers are little endian (the machine's order: client and server share a
 * host here, as eleos-pserver's do).
 *
 * A request: struct face_req (24 bytes, in clear: it is the AAD) then len bytes of
 * ciphertext then a 16-byte GCM tag. The plaintext is struct face_probe: the identity the
 * client claims and its probe histogram; len must be exactly FACE_PROBE_BYTES. The cipher is
 * AES-256-GCM under the client's key; the IV is {direction 0 (uint32), seq (uint64)}, unique
 * per key because a seq is accepted once.
 *
 * An answer: struct face_ans (24 bytes, the AAD), then, when status is FACE_OK or
 * FACE_E_IDENTITY (the request was authentic), 16 bytes of ciphertext (struct face_result)
 * and a tag, sealed under the same key with IV {direction 1, seq}. Refusals of requests
 * that did not authenticate (bad frame, unknown client, bad tag, replay, truncated) travel
 * in clear with len 0: the server has no key it could trust to seal them with, and a forged
 * one can only deny service, which the threat model leaves out (docs/face.md).
 *
 * Replay protection: per client, a window of FACE_WINDOW sequence numbers behind the
 * highest accepted one; a seq is accepted once, and only if it lies above the window's
 * bottom. Clients with several threads may share a key and a counter: requests overtaking
 * each other on different connections are accepted as long as they stay within the window.
 * A seq enters the window only after its request authenticated.
 */
#ifndef ELEOS_FACE_PROTO_H
#define ELEOS_FACE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "face_lbp.h"

#define FACE_REQ_MAGIC 0x31514146u  /* "FAQ1" */
#define FACE_ANS_MAGIC 0x31414146u  /* "FAA1" */
#define FACE_KEY_BYTES 32u
#define FACE_TAG_BYTES 16u
#define FACE_IV_BYTES  12u
/* Client ids are 0 .. FACE_CLIENTS_MAX - 1. */
#define FACE_CLIENTS_MAX 4096u
#define FACE_WINDOW      1024u
/* Largest key file the server reads. */
#define FACE_KEYFILE_MAX (1u << 20)

enum face_status {
    FACE_OK = 0,
    FACE_E_FRAME = 1,     /* bad magic or length: the connection is closed after the reply */
    FACE_E_CLIENT = 2,    /* no key for that client id                                     */
    FACE_E_AUTH = 3,      /* the tag does not verify: tampered, or the wrong key           */
    FACE_E_REPLAY = 4,    /* seq already accepted, or below the window                     */
    FACE_E_IDENTITY = 5,  /* authentic, but the claimed identity is not enrolled (sealed)  */
    FACE_E_TRUNCATED = 6, /* the connection ended or stalled inside a request              */
    FACE_E_INTERNAL = 7,  /* the database could not be read (an integrity failure)         */
    FACE_NSTATUS = 8,
};

struct face_req {
    uint32_t magic;
    uint32_t client;
    uint64_t seq;
    uint32_t len;      /* ciphertext bytes, tag excluded: FACE_PROBE_BYTES */
    uint32_t reserved; /* 0 */
};

struct face_probe {
    uint32_t identity;
    uint32_t reserved;
    uint32_t hist[FACE_HIST_WORDS];
};
#define FACE_PROBE_BYTES ((uint32_t)sizeof(struct face_probe))
/* A whole request on the wire. */
#define FACE_REQ_BYTES (sizeof(struct face_req) + FACE_PROBE_BYTES + FACE_TAG_BYTES)

struct face_ans {
    uint32_t magic;
    uint32_t status;   /* enum face_status */
    uint64_t seq;      /* the request's (0 if it had none)                        */
    uint32_t len;      /* 0, or sizeof(struct face_result) when sealed            */
    uint32_t client;
};

struct face_result {
    uint32_t identity;
    uint32_t accept;   /* 1: distance below the threshold                        */
    double distance;   /* chi-square to the enrolled capture (FACE_E_IDENTITY: 0) */
};
#define FACE_ANS_MAX (sizeof(struct face_ans) + sizeof(struct face_result) + FACE_TAG_BYTES)

/* Which enrolled capture (0 or 1) a request with this seq is compared with: both captures
 * of an identity are in the database, and requests alternate between them. */
static inline unsigned face_capture_for(uint64_t seq) {
    return (unsigned)(seq & 1);
}

/* --- sealing (AES-256-GCM over OpenSSL's EVP; ctx is one EVP_CIPHER_CTX per thread) ---- */

void *face_gcm_new(void);
void face_gcm_free(void *ctx);
/* Seals len bytes of in into out (may alias) with IV {dir, seq}: 0 or -1. */
int face_seal(void *ctx, const uint8_t key[FACE_KEY_BYTES], uint32_t dir, uint64_t seq,
              const void *aad, size_t aad_len, const void *in, void *out, size_t len,
              uint8_t tag[FACE_TAG_BYTES]);
/* Opens and verifies: 0, or -1 (bad tag: out is wiped). */
int face_open(void *ctx, const uint8_t key[FACE_KEY_BYTES], uint32_t dir, uint64_t seq,
              const void *aad, size_t aad_len, const void *in, void *out, size_t len,
              const uint8_t tag[FACE_TAG_BYTES]);

/* --- framing ---------------------------------------------------------------------------- */

/* Checks a request header read from the wire: FACE_OK or FACE_E_FRAME. */
enum face_status face_req_check(const struct face_req *r);

/* Builds a whole request in buf (FACE_REQ_BYTES): the client's side. 0 or -1. */
int face_req_build(void *ctx, const uint8_t key[FACE_KEY_BYTES], uint32_t client,
                   uint64_t seq, const struct face_probe *probe, uint8_t *buf);

/* Builds an answer in buf (FACE_ANS_MAX bytes): sealed with key when res is given (key
 * non-NULL), in clear otherwise. Returns its length, or 0 on a crypto failure. */
size_t face_ans_build(void *ctx, const uint8_t *key, uint32_t client, uint64_t seq,
                      enum face_status st, const struct face_result *res, uint8_t *buf);

/* Checks and opens an answer of len bytes (the client's side): the header must name
 * client and seq; a sealed one must verify under key. Sets *st (and *res when sealed):
 * 0, or -1 (malformed, or forged). */
int face_ans_open(void *ctx, const uint8_t key[FACE_KEY_BYTES], uint32_t client,
                  uint64_t seq, const uint8_t *buf, size_t len, enum face_status *st,
                  struct face_result *res);

/* --- the replay window (caller serialises per client) ------------------------------------ */

struct face_window {
    uint64_t top;                       /* highest accepted seq (0: none yet)  */
    uint64_t bits[FACE_WINDOW / 64];    /* bit (s % FACE_WINDOW): s accepted    */
};

/* Would seq be accepted? (seq 0 never is.) */
bool face_window_check(const struct face_window *w, uint64_t seq);
/* Marks seq accepted (after face_window_check said yes and the request authenticated). */
void face_window_commit(struct face_window *w, uint64_t seq);

/* --- client keys ------------------------------------------------------------------------- */

struct face_keys {
    uint8_t key[FACE_CLIENTS_MAX][FACE_KEY_BYTES];
    bool present[FACE_CLIENTS_MAX];
    uint32_t count;
};

/*
 * Parses a key file: one client per line, "<id> <64 hex digits>" (id decimal, below
 * FACE_CLIENTS_MAX; the key is 32 bytes in hex), blank lines and lines starting with '#'
 * ignored. A duplicate id, a malformed line or no key at all is an error. 0, or -1 with
 * *bad_line set to the first bad line (1-based; 0: the file has no key).
 */
int face_keys_parse(const char *buf, size_t len, struct face_keys *k, unsigned *bad_line);

#endif
