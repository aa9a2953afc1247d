/* Time-stamp counter helpers. The busy-wait is how the cost model charges cycles. */
#ifndef ELEOS_COMMON_TSC_H
#define ELEOS_COMMON_TSC_H

#include <stdint.h>
#include <x86intrin.h>

static inline uint64_t tsc_now(void) {
    return __rdtsc();
}

/* Spins until `cycles` TSC cycles have passed. Makes no system call. */
static inline void tsc_spin(uint64_t cycles) {
    uint64_t start = __rdtsc();
    while (__rdtsc() - start < cycles)
        _mm_pause();
}

/* TSC ticks per nanosecond, measured once (thread-safe, idempotent). */
double tsc_ghz(void);

static inline double tsc_to_ns(uint64_t cycles) {
    return (double)cycles / tsc_ghz();
}

#endif
