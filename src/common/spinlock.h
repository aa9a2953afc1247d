/*
 * The library's one spin lock and one statistics counter: neither ever makes a system call,
 * so both work inside the enclave (a futex would be an exit, and on a paged-out EPC page an
 * EFAULT) and in the emulator's signal handlers.
 */
#ifndef ELEOS_COMMON_SPINLOCK_H
#define ELEOS_COMMON_SPINLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct eleos_spinlock {
    _Atomic uint32_t v;
};
#define ELEOS_SPINLOCK_INIT {0}

static inline bool eleos_spin_trylock(struct eleos_spinlock *l) {
    /* Acquire: pairs with the release store in eleos_spin_unlock. */
    return !atomic_load_explicit(&l->v, memory_order_relaxed) &&
           !atomic_exchange_explicit(&l->v, 1, memory_order_acquire);
}

static inline void eleos_spin_lock(struct eleos_spinlock *l) {
    while (!eleos_spin_trylock(l))
        __builtin_ia32_pause();
}

static inline void eleos_spin_unlock(struct eleos_spinlock *l) {
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

/* Statistics only: no ordering with anything else is needed. */
static inline void eleos_counter_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#endif
