/*
 * kvs_bin.h — memcached 1.6.18's binary protocol (proto_bin.c, protocol_binary.h) as a pure
 * function, the same model as the text protocol's kvs_proto_feed: (connection state, input
 * bytes) -> (bytes consumed, replies appended to out, store operations).
 *
 * A connection speaks one protocol for its whole life, chosen as memcached chooses it: -B
 * ascii or binary fixes it, -B auto (the default) looks at the first byte the client sends
 * (0x80, the request magic: binary; anything else: text); -S (SASL) forces binary, and -Y
 * (ASCII auth) without -B makes it text, as memcached's option checks do.
 *
 * Pure code: no system calls, no clock; every length in a header is checked before use.
 */
#ifndef ELEOS_KVS_BIN_H
#define ELEOS_KVS_BIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvs_proto;
struct kvs_buf;
struct kvs_ctx;

/* Which protocol a connection speaks; KVS_WIRE_NEGOTIATE until its first byte arrives. */
enum kvs_wire { KVS_WIRE_NEGOTIATE, KVS_WIRE_TEXT, KVS_WIRE_BINARY };

#define KVS_BIN_REQ_MAGIC 0x80
#define KVS_BIN_RES_MAGIC 0x81
#define KVS_BIN_HEADER_LEN 24u
/* memcached's MAX_SASL_MECH_LEN. */
#define KVS_BIN_SASL_MECH_MAX 32u
/* The largest SASL payload we buffer (memcached's bound is an item; PLAIN needs < 1 KiB). */
#define KVS_BIN_SASL_DATA_MAX (64u << 10)

/* protocol_binary.h's opcodes. */
enum kvs_bin_opcode {
    KVS_BIN_GET = 0x00, KVS_BIN_SET = 0x01, KVS_BIN_ADD = 0x02, KVS_BIN_REPLACE = 0x03,
    KVS_BIN_DELETE = 0x04, KVS_BIN_INCREMENT = 0x05, KVS_BIN_DECREMENT = 0x06,
    KVS_BIN_QUIT = 0x07, KVS_BIN_FLUSH = 0x08, KVS_BIN_GETQ = 0x09, KVS_BIN_NOOP = 0x0a,
    KVS_BIN_VERSION = 0x0b, KVS_BIN_GETK = 0x0c, KVS_BIN_GETKQ = 0x0d, KVS_BIN_APPEND = 0x0e,
    KVS_BIN_PREPEND = 0x0f, KVS_BIN_STAT = 0x10, KVS_BIN_SETQ = 0x11, KVS_BIN_ADDQ = 0x12,
    KVS_BIN_REPLACEQ = 0x13, KVS_BIN_DELETEQ = 0x14, KVS_BIN_INCREMENTQ = 0x15,
    KVS_BIN_DECREMENTQ = 0x16, KVS_BIN_QUITQ = 0x17, KVS_BIN_FLUSHQ = 0x18,
    KVS_BIN_APPENDQ = 0x19, KVS_BIN_PREPENDQ = 0x1a, KVS_BIN_VERBOSITY = 0x1b,
    KVS_BIN_TOUCH = 0x1c, KVS_BIN_GAT = 0x1d, KVS_BIN_GATQ = 0x1e,
    KVS_BIN_SASL_LIST_MECHS = 0x20, KVS_BIN_SASL_AUTH = 0x21, KVS_BIN_SASL_STEP = 0x22,
    KVS_BIN_GATK = 0x23, KVS_BIN_GATKQ = 0x24,
};

/* protocol_binary.h's response statuses (0x84 is the spec's "internal error", which
 * memcached never sends; we send it for an SUVM integrity failure). */
enum kvs_bin_status {
    KVS_BIN_SUCCESS = 0x00, KVS_BIN_KEY_ENOENT = 0x01, KVS_BIN_KEY_EEXISTS = 0x02,
    KVS_BIN_E2BIG = 0x03, KVS_BIN_EINVAL = 0x04, KVS_BIN_NOT_STORED = 0x05,
    KVS_BIN_DELTA_BADVAL = 0x06, KVS_BIN_AUTH_ERROR = 0x20, KVS_BIN_AUTH_CONTINUE = 0x21,
    KVS_BIN_UNKNOWN_COMMAND = 0x81, KVS_BIN_ENOMEM = 0x82, KVS_BIN_EINTERNAL = 0x84,
};

/* Where a binary connection is between requests. */
enum kvs_bin_state { KVS_BS_HEADER, KVS_BS_VALUE, KVS_BS_SWALLOW };
/* SASL progress: PLAIN without an initial response waits for its SASL_STEP. */
enum kvs_bin_sasl { KVS_SASL_NONE, KVS_SASL_CONTINUE, KVS_SASL_DONE };

/* A binary connection's state (part of struct kvs_proto; the value being received uses
 * the text protocol's item fields: item, vlen, have, cmd, cas). */
struct kvs_bin {
    enum kvs_bin_state state;
    uint8_t opcode;                   /* the request's opcode, echoed in its replies     */
    bool quiet;                       /* a "Q" opcode: success replies are suppressed    */
    bool authenticated;               /* -S: SASL succeeded on this connection           */
    enum kvs_bin_sasl sasl;
    uint32_t opaque;                  /* echoed in every reply to the request            */
    uint64_t req_cas;                 /* the request's CAS                               */
    uint64_t swallow;                 /* bytes left to discard (KVS_BS_SWALLOW)          */
    size_t flushed;                   /* out->len where memcached would have sent what it
                                         had: the feed's start, or after a NOOP          */
};

/* The protocol a connection whose first byte is `first` speaks (memcached's negotiation,
 * with -B, -S and -Y applied). */
enum kvs_wire kvs_bin_negotiate(const struct kvs_ctx *ctx, unsigned char first);

/* kvs_proto_feed for a binary connection: consumes complete requests (a header and its
 * extras and key; values are streamed into the item), leaves an incomplete one unconsumed,
 * stops taking requests once out holds p->out_limit bytes, and sets p->close / p->abort as
 * memcached closes the connection. */
size_t kvs_bin_feed(struct kvs_proto *p, const char *in, size_t len, struct kvs_buf *out);

#endif
