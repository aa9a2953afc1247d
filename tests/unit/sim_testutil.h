/* Enclave set-up shared by the emulator's tests. */
#ifndef ELEOS_SIM_TESTUTIL_H
#define ELEOS_SIM_TESTUTIL_H

#include <errno.h>

#include "eleos/enclave.h"
#include "harness.h"

#define MiB (1ull << 20)

/* The defaults with the cost model off (tests assert counts, not time) and small sizes. */
static inline void sim_test_config(struct eleos_enclave_config *cfg, uint64_t elrange,
                                   uint64_t epc) {
    eleos_enclave_config_default(cfg);
    eleos_cost_model_off(&cfg->cost);
    cfg->elrange_size = elrange;
    cfg->epc_size = epc;
}

/* Creates an enclave from cfg. A kernel without Syscall User Dispatch skips the program
 * (exit 77, with the reason on stderr); any other failure stops it. */
static inline struct eleos_enclave *sim_test_create(const struct eleos_enclave_config *cfg) {
    struct eleos_enclave *e = NULL;
    int r = eleos_enclave_create(cfg, &e);
    if (r == -ENOSYS)
        SKIP("kernel lacks Syscall User Dispatch");
    REQUIRE(r == 0 && e);
    return e;
}

#endif
