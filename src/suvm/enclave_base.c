/*
 * SUVM's leaf: the memory its metadata lives in (the enclave heap, or host memory for a
 * host-mode instance), its statistics counters, and what an integrity failure does. Every
 * other SUVM file calls down into this one; it calls none of them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "suvm/suvm_internal.h"

/* --- Memory: the enclave heap, or host memory for a host-mode instance --------------------- */

void *suvm_mem_alloc_in(struct eleos_enclave *enc, size_t align, size_t size) {
    if (enc)
        return eleos_enclave_aligned_alloc(enc, align, size);
    void *p = NULL;
    return posix_memalign(&p, align, size ? size : 1) ? NULL : p;
}

void *suvm_mem_alloc(struct eleos_suvm *s, size_t align, size_t size) {
    return suvm_mem_alloc_in(s->enc, align, size);
}

void suvm_mem_free(struct eleos_suvm *s, void *p) {
    if (s->enc)
        eleos_enclave_free(s->enc, p);
    else
        free(p);
}

void suvm_warn_once(_Atomic bool *told, const char *msg) {
    if (!atomic_exchange_explicit(told, true, memory_order_relaxed))
        fprintf(stderr, "eleos: suvm: %s\n", msg);
}

/* Checked on every way into an instance except the spointer fast path, which is reached only
 * through a link that was checked. One load and a branch for an enclave instance. */
int suvm_host_guard(const struct eleos_suvm *s) {
    static _Atomic bool told;
    if (s->enc || !eleos_enclave_in_enclave_mode())
        return 0;
    suvm_warn_once(&told, "a host-mode instance (page cache in untrusted memory) was used "
                          "inside an enclave: refused with -EPERM");
    return -EPERM;
}

/* --- Statistics ------------------------------------------------------------------------------ */

/* The first SUVM_NSHARDS - 1 threads that count get a shard of their own, which they bump
 * with a plain load and store (no other thread writes it): a locked add costs ~20 cycles and
 * drains the store buffer, and a fault counts three times. Later threads share the last
 * shard with atomic adds. A reset racing with a thread's count may lose that reset. 64-bit,
 * so the assignment never wraps around to an owned shard. */
static _Atomic uint64_t shard_next;
static _Thread_local unsigned shard_of_thread; /* index + 1; 0 = not assigned yet */

void suvm_stat_add(struct eleos_suvm *s, enum suvm_stat st, uint64_t n) {
    unsigned k = shard_of_thread;
    if (!k) {
        uint64_t i = atomic_fetch_add_explicit(&shard_next, 1, memory_order_relaxed);
        k = (unsigned)(i < SUVM_NSHARDS - 1 ? i : SUVM_NSHARDS - 1) + 1;
        shard_of_thread = k;
    }
    /* Relaxed: counters order nothing. */
    _Atomic uint64_t *c = &s->stats[k - 1].c[st];
    if (k < SUVM_NSHARDS)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

int suvm_integrity_failure(struct eleos_suvm *s, uint64_t page, uint32_t sub) {
    suvm_stat_add(s, ST_INTEGRITY, 1);
    if (s->cfg.integrity_policy == ELEOS_SUVM_INTEGRITY_ABORT) {
        /* Continuing is not allowed by the configuration: the exit to print is moot. */
        char msg[128];
        int n = snprintf(msg, sizeof msg,
                         "eleos-suvm: integrity failure on page %llu sub-page %u\n",
                         (unsigned long long)page, sub);
        if (n > 0) {
            ssize_t w = write(2, msg, (size_t)n);
            (void)w;
        }
        abort();
    }
    return -EBADMSG;
}
