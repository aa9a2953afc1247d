/*
 * The parameter server's wire protocol and its pluggable parts.
 *
 * A client sends requests of a 8-byte header {uint32 op, uint32 count} followed by count
 * 8-byte keys (little endian, the machine's order: client and server share a host here).
 *   PS_OP_INC: the server adds 1 to the value of each key; reply: uint64 count applied.
 *   PS_OP_GET: reply: count uint64 values, in request order (used to verify).
 * Keys are reduced modulo the table size. A request with count 0 or above PS_MAX_KEYS, or an
 * unknown op, closes the connection (the client is broken; there is nothing to answer).
 */
#ifndef ELEOS_PSERVER_H
#define ELEOS_PSERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PS_OP_INC 1u
#define PS_OP_GET 2u
/* 64 KiB of keys: the largest batch of the paper's experiment. */
#define PS_MAX_KEYS 8192u

struct ps_header {
    uint32_t op;
    uint32_t count;
};

/* Where the table lives: host memory, the enclave heap or SUVM. Each call handles a batch so
 * a backend can amortise its per-call costs. Called from one thread per connection. */
struct ps_table_ops {
    const char *name;
    int (*inc)(void *t, const uint64_t *keys, uint32_t n);
    int (*get)(void *t, const uint64_t *keys, uint32_t n, uint64_t *out);
};

#endif
