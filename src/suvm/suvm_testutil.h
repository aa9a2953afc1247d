/*
 * Helpers shared by the SUVM tests and benchmarks (tests/unit/test_suvm_*.c,
 * bench/bench_suvm_*.c): an emulated enclave to run in, a deterministic PRNG, and running a
 * function inside the enclave. Host-mode only (creates enclaves), header-only.
 */
#ifndef ELEOS_SUVM_TESTUTIL_H
#define ELEOS_SUVM_TESTUTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "eleos/enclave.h"
#include "eleos/suvm.h"

#define SUVM_T_MIB (1ull << 20)

/* An enclave with the given EPC (cost model off unless cost). exit(77) when the kernel
 * cannot run enclaves. */
static inline struct eleos_enclave *suvm_t_enclave(uint64_t elrange, uint64_t epc, bool cost) {
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    if (!cost)
        eleos_cost_model_off(&cfg.cost);
    cfg.elrange_size = elrange;
    cfg.epc_size = epc;
    cfg.name = "suvm-test";
    struct eleos_enclave *e = NULL;
    int r = eleos_enclave_create(&cfg, &e);
    if (r == -ENOSYS) {
        fprintf(stderr, "SKIP: kernel lacks Syscall User Dispatch\n");
        exit(77);
    }
    if (r) {
        fprintf(stderr, "eleos_enclave_create: %d\n", r);
        exit(1);
    }
    return e;
}

/* Runs fn(arg) inside enc (or directly when enc is NULL) and returns its result; an ECALL
 * failure is returned as its error. */
static inline long suvm_t_run(struct eleos_enclave *enc, eleos_enclave_fn fn, void *arg) {
    if (!enc)
        return fn(arg);
    long ret = 0;
    int r = eleos_enclave_ecall(enc, fn, arg, &ret);
    return r ? r : ret;
}

/* splitmix64: deterministic, no syscalls, fine inside enclaves. */
static inline uint64_t suvm_t_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
