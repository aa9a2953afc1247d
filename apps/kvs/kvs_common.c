/*
 * kvs_common.c — the libc heap adapter and the growable buffer (see kvs_common.h).
 * Nothing here makes a system call on its own; the libc heap may (native mode only).
 */
#include "kvs_common.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *libc_malloc(void *ctx, size_t size) {
    (void)ctx;
    return malloc(size);
}
static void *libc_realloc(void *ctx, void *p, size_t size) {
    (void)ctx;
    return realloc(p, size);
}
static void libc_free(void *ctx, void *p) {
    (void)ctx;
    free(p);
}

const struct kvs_alloc kvs_alloc_libc = {libc_malloc, libc_realloc, libc_free, NULL};

/* First allocation of a buffer: one typical response or request fits without regrowth. */
#define BUF_MIN_CAP 2048u

/* Bytes every kvs_buf of the process holds (capacity, not length). */
static _Atomic uint64_t buf_held;

uint64_t kvs_buf_held_bytes(void) {
    return atomic_load_explicit(&buf_held, memory_order_relaxed);
}

void kvs_buf_init(struct kvs_buf *b, const struct kvs_alloc *a) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->alloc = a;
}

void kvs_buf_fini(struct kvs_buf *b) {
    atomic_fetch_sub_explicit(&buf_held, b->cap, memory_order_relaxed);
    kvs_free(b->alloc, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int kvs_buf_reserve(struct kvs_buf *b, size_t extra) {
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < want)
        cap *= 2;
    char *p = b->alloc->realloc(b->alloc->ctx, b->data, cap);
    if (!p)
        return -ENOMEM;
    atomic_fetch_add_explicit(&buf_held, cap - b->cap, memory_order_relaxed);
    b->data = p;
    b->cap = cap;
    return 0;
}

int kvs_buf_append(struct kvs_buf *b, const void *p, size_t n) {
    int r = kvs_buf_reserve(b, n);
    if (r)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int kvs_buf_printf(struct kvs_buf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return kvs_buf_append(b, small, (size_t)n);
    int r = kvs_buf_reserve(b, (size_t)n + 1);
    if (r)
        return r;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void kvs_buf_consume(struct kvs_buf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void kvs_buf_shrink(struct kvs_buf *b, size_t keep) {
    if (b->len == 0 && b->cap > keep)
        kvs_buf_fini(b);
}

void kvs_buf_sent(struct kvs_buf *b, size_t *sent) {
    if (*sent == b->len) {
        b->len = *sent = 0;
        kvs_buf_shrink(b, 0);
    } else if (*sent >= KVS_BUF_SENT_MAX) {
        kvs_buf_consume(b, *sent);
        *sent = 0;
    }
}

/* --- kvs_lock ------------------------------------------------------------------------------ */

/* Spins before sleeping: critical sections are a lookup and a value copy (a few us at most,
 * more when a value faults), and a sleep costs an exit plus a wake-up exit for the holder. */
#define KVS_LOCK_SPINS 2000

static void futex_call(_Atomic uint32_t *word, int op, uint32_t val) {
    /* Through libc: in enclave modes this traps and is counted as an exit. Errors (EAGAIN:
     * the word moved on; EINTR; a host's games with the word) just send the waiter round its
     * loop again, which re-checks the trusted state. */
    (void)syscall(SYS_futex, (uint32_t *)word, op, val, NULL, NULL, 0);
}

void kvs_lock_init(struct kvs_lock *l, _Atomic uint32_t *wake) {
    atomic_init(&l->state, 0);
    atomic_init(&l->own_wake, 0);
    l->wake = wake ? wake : &l->own_wake;
}

void kvs_lock_acquire(struct kvs_lock *l) {
    uint32_t free_ = 0;
    /* Acquire on success: pairs with the release in kvs_lock_release. */
    if (atomic_compare_exchange_strong_explicit(&l->state, &free_, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    for (int i = 0; i < KVS_LOCK_SPINS; i++) {
        __builtin_ia32_pause();
        free_ = 0;
        if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->state, &free_, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
    }
    for (;;) {
        /* Read the wake word before announcing ourselves: a release in between bumps it,
         * so the futex wait below returns at once instead of missing the wake-up. */
        uint32_t seen = atomic_load_explicit(l->wake, memory_order_acquire);
        if (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) == 0)
            return;
        futex_call(l->wake, FUTEX_WAIT_PRIVATE, seen);
    }
}

void kvs_lock_release(struct kvs_lock *l) {
    /* Release: pairs with the acquiring exchange/CAS. */
    if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2) {
        atomic_fetch_add_explicit(l->wake, 1, memory_order_release);
        futex_call(l->wake, FUTEX_WAKE_PRIVATE, 1);
    }
}
