#include "common/tsc.h"

#include <stdatomic.h>
#include <time.h>

#include "eleos/enclave.h"

/* Stored as fixed point (GHz × 2^20) so one atomic load publishes it. */
static _Atomic uint64_t ghz_fixed;

static uint64_t ns_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double tsc_ghz(void) {
    uint64_t f = atomic_load_explicit(&ghz_fixed, memory_order_relaxed);
    if (f == 0) {
        /* 20 ms against CLOCK_MONOTONIC (vDSO: no system call, so usable in enclave mode)
         * gives well under 0.1 % error. Two racing threads compute near-equal values. */
        uint64_t t0 = ns_now(), c0 = tsc_now();
        while (ns_now() - t0 < 20000000u)
            ;
        uint64_t t1 = ns_now(), c1 = tsc_now();
        f = (uint64_t)((double)(c1 - c0) / (double)(t1 - t0) * 1048576.0);
        atomic_store_explicit(&ghz_fixed, f, memory_order_relaxed);
    }
    return (double)f / 1048576.0;
}

uint64_t eleos_tsc(void) {
    return tsc_now();
}

double eleos_tsc_ghz(void) {
    return tsc_ghz();
}
