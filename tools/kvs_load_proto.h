/*
 * eleos-kvs-load's wire formats: request encoders and reply decoders for memcached's text,
 * binary and meta protocols (tools/kvs_load_proto.c). Pure functions over byte buffers; the
 * connection loop (tools/kvs_load.c) owns sockets, queues and counters.
 */
#ifndef ELEOS_KVS_LOAD_PROTO_H
#define ELEOS_KVS_LOAD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kl_proto { KL_TEXT, KL_BINARY, KL_META };

/* Bytes an encoded request needs besides its key and value (the largest of the three). */
#define KL_REQ_OVERHEAD 64u
/* A text/meta reply line longer than this without CRLF is a protocol error. */
#define KL_LINE_MAX 4096u
/* A value longer than this in a reply is a protocol error (memcached's item limit is 1 GiB). */
#define KL_VALUE_MAX (1u << 30)

const char *kl_proto_name(enum kl_proto p);
bool kl_proto_parse_name(const char *s, enum kl_proto *out);

/* A GET of key (klen bytes) at dst; returns the bytes written (<= klen + KL_REQ_OVERHEAD).
 * opaque travels in the binary header and comes back in the reply (text/meta ignore it). */
size_t kl_encode_get(enum kl_proto p, char *dst, const char *key, size_t klen, uint32_t opaque);

/* A SET's bytes before the value (exptime 0); the caller writes the vlen value bytes right
 * after them, then kl_encode_set_tail. Returns the bytes written. */
size_t kl_encode_set_head(enum kl_proto p, char *dst, const char *key, size_t klen,
                          uint32_t flags, size_t vlen, uint32_t opaque);
/* What follows the value (CRLF in text and meta, nothing in binary); returns its length. */
size_t kl_encode_set_tail(enum kl_proto p, char *dst);

enum kl_reply {
    KL_NEED,       /* incomplete: wait for more bytes (r->len = bytes needed in all, or 0) */
    KL_STORED,     /* a SET succeeded                                                      */
    KL_MISS,       /* a GET found nothing                                                  */
    KL_HIT,        /* a GET found the value: r->data, r->bytes, r->flags                   */
    KL_UNEXPECTED, /* a well-formed reply the request does not allow (an error reply ...):
                      r->len bytes to skip, r->what describes it                           */
    KL_FATAL,      /* bytes that cannot be framed: the connection is beyond repair         */
};

struct kl_parsed {
    size_t len;          /* the reply's bytes, to consume (KL_NEED: bytes needed, 0 = unknown) */
    const char *key;     /* the key the reply names (text VALUE line), else NULL             */
    size_t klen;
    const char *data;    /* KL_HIT: the value                                                */
    uint64_t bytes;
    uint64_t flags;
    bool has_opaque;     /* binary: the reply's opaque, to match against the request's       */
    uint32_t opaque;
    char what[200];      /* KL_UNEXPECTED / KL_FATAL: a printable description                */
};

/* Decodes the reply at p (avail bytes) to the oldest outstanding request, a GET if is_get,
 * else a SET. */
enum kl_reply kl_parse_reply(enum kl_proto p, bool is_get, const char *buf, size_t avail,
                             struct kl_parsed *r);

/* Printable excerpt of n bytes for messages: non-printables as \xNN, "..." when cut. */
const char *kl_excerpt(const char *p, size_t n, char *buf, size_t cap);

#endif
