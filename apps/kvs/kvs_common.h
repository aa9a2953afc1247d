/*
 * kvs_common.h — small pieces shared by every eleos-kvs module: the trusted-memory allocator
 * interface and a growable byte buffer.
 *
 * In sgx and eleos modes the server's code runs inside the enclave, where glibc's malloc may
 * issue mmap/brk (each an exit, and the memory would be untrusted). Everything the enclave
 * allocates for itself (hash table, item headers, connection state, buffers) therefore goes
 * through struct kvs_alloc, which is the enclave heap there and libc in native mode.
 */
#ifndef ELEOS_KVS_COMMON_H
#define ELEOS_KVS_COMMON_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "eleos/attrs.h"


/* A heap. MT-safe implementations only. malloc returns NULL on exhaustion. */
struct kvs_alloc {
    void *(*malloc)(void *ctx, size_t size);
    void *(*realloc)(void *ctx, void *p, size_t size);
    void (*free)(void *ctx, void *p);
    void *ctx;
};

/* libc's heap (native mode, unit tests, the fuzzer). */
extern const struct kvs_alloc kvs_alloc_libc;

static inline void *kvs_malloc(const struct kvs_alloc *a, size_t size) {
    return a->malloc(a->ctx, size);
}
static inline void kvs_free(const struct kvs_alloc *a, void *p) {
    if (p)
        a->free(a->ctx, p);
}

/* A growable byte buffer on a struct kvs_alloc heap. Caller serialises. */
struct kvs_buf {
    char *data;
    size_t len;
    size_t cap;
    const struct kvs_alloc *alloc;
};

void kvs_buf_init(struct kvs_buf *b, const struct kvs_alloc *a);
/* What every buffer of the process holds now, in bytes of capacity (connections' input
 * and replies, and any being built): `stats` reports it as eleos_conn_buf_bytes. */
uint64_t kvs_buf_held_bytes(void);
void kvs_buf_fini(struct kvs_buf *b);
/* Makes room for extra more bytes. 0 or -ENOMEM (the buffer is unchanged then). */
ELEOS_MUST_CHECK int kvs_buf_reserve(struct kvs_buf *b, size_t extra);
ELEOS_MUST_CHECK int kvs_buf_append(struct kvs_buf *b, const void *p, size_t n);
ELEOS_MUST_CHECK int kvs_buf_printf(struct kvs_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void kvs_buf_consume(struct kvs_buf *b, size_t n);
/* Frees the storage if it grew beyond keep bytes and is empty (a large multiget's buffer
 * should not stay pinned to an idle connection). */
void kvs_buf_shrink(struct kvs_buf *b, size_t keep);
/* A reply buffer whose first *sent bytes went out: empty and freed once all did; else, once
 * KVS_BUF_SENT_MAX went out, the unsent rest moves to the front. A client that reads slowly
 * would otherwise pin everything sent since the buffer last emptied (the kernel takes a few
 * MB before the send stalls), on top of the unsent bytes the output limit bounds. */
#define KVS_BUF_SENT_MAX (256u << 10)
void kvs_buf_sent(struct kvs_buf *b, size_t *sent);

/*
 * A mutex whose state lives with the data it protects (trusted memory in enclave modes) but
 * whose sleeping happens on a separate wake word that may live in untrusted memory, as the
 * SGX SDK's mutex waits on an untrusted event: a futex on enclave memory fails with EFAULT
 * whenever its EPC page is paged out (the kernel cannot read it), and glibc's pthread mutex
 * then aborts the process. The host owning the wake word can only wake waiters early or
 * never (denial of service); mutual exclusion rests on the trusted state alone. Waiters
 * spin briefly before sleeping (a sleep is a futex call: an exit in enclave modes).
 */
struct kvs_lock {
    _Atomic uint32_t state;     /* 0 free, 1 held, 2 held with possible sleepers */
    _Atomic uint32_t own_wake;  /* the wake word when none is given              */
    _Atomic uint32_t *wake;     /* futex word (untrusted in enclave modes)       */
};

/* wake: a 4-byte aligned word outside the enclave, or NULL to use one inside the lock
 * (native mode, tests). */
void kvs_lock_init(struct kvs_lock *l, _Atomic uint32_t *wake);
void kvs_lock_acquire(struct kvs_lock *l);
void kvs_lock_release(struct kvs_lock *l);

#endif
