/*
 * rpc_testutil.h — setup shared by the RPC and system-call unit tests (test_rpc_*.c,
 * test_sys_*.c): an enclave with the cost model off, a started pool with the test's host
 * functions registered, and the enclave-side client created and destroyed inside ECALLs.
 * Setup failures stop the test program (REQUIRE); no Syscall User Dispatch skips it.
 *
 * The helpers take the system-call layer's hooks as optional callbacks
 * (eleos_sys_host_register, eleos_sys_init) so that the RPC tests, which do not link
 * eleos_sys, can use them too.
 */
#ifndef ELEOS_RPC_TESTUTIL_H
#define ELEOS_RPC_TESTUTIL_H

#include <errno.h>
#include <stddef.h>

#include "eleos/rpc.h"
#include "harness.h"

/* The TSan runtime makes system calls of its own (shadow memory) inside enclave code, which
 * the emulator rightly counts as exits; the zero-exit checks only hold without it. */
#if defined(__SANITIZE_THREAD__)
#define NO_SANITIZER_SYSCALLS 0
#else
#define NO_SANITIZER_SYSCALLS 1
#endif

/* Checks inside the enclave: failures are recorded, not printed (printing would be a
 * syscall exit); the test reports e_fails and the first failing line once back out. */
static int e_fail_line __attribute__((unused)), e_fails __attribute__((unused));
#define E_CHECK(c)                                                                          \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            e_fails++;                                                                      \
            if (!e_fail_line)                                                               \
                e_fail_line = __LINE__;                                                     \
        }                                                                                   \
    } while (0)

/* An enclave with the cost model off and a 256 MiB ELRANGE; epc_size 0 keeps the default
 * EPC. Owned by the caller (rpc_test_teardown). */
static inline struct eleos_enclave *rpc_test_enclave(uint64_t epc_size) {
    struct eleos_enclave_config ec;
    eleos_enclave_config_default(&ec);
    eleos_cost_model_off(&ec.cost);
    ec.elrange_size = 256u << 20;
    if (epc_size)
        ec.epc_size = epc_size;
    struct eleos_enclave *enc = NULL;
    int rc = eleos_enclave_create(&ec, &enc);
    if (rc == -ENOSYS)
        SKIP("no Syscall User Dispatch");
    REQUIRE(rc == 0);
    return enc;
}

struct rpc_test_fn {
    uint32_t id;
    eleos_rpc_fn fn;
};

/* Creates a pool on enc from pc, registers fns[0..count) (ctx NULL) and, if reg is given,
 * calls it (eleos_sys_host_register), then starts the workers. */
static inline struct eleos_rpc_pool *rpc_test_pool(struct eleos_enclave *enc,
                                                   const struct eleos_rpc_pool_config *pc,
                                                   const struct rpc_test_fn *fns, size_t count,
                                                   int (*reg)(struct eleos_rpc_pool *)) {
    struct eleos_rpc_pool *pool = NULL;
    REQUIRE(eleos_rpc_pool_create(enc, pc, &pool) == 0);
    for (size_t i = 0; i < count; i++)
        REQUIRE(eleos_rpc_pool_register(pool, fns[i].id, fns[i].fn, NULL) == 0);
    if (reg)
        REQUIRE(reg(pool) == 0);
    REQUIRE(eleos_rpc_pool_start(pool) == 0);
    return pool;
}

struct rpc_test_client_arg {
    struct eleos_enclave *enc;
    struct eleos_rpc_pool *pool;
    struct eleos_rpc_client *cl;
    void (*init)(struct eleos_rpc_client *); /* eleos_sys_init, or NULL */
};

static inline long rpc_test_e_client_create(void *arg) {
    struct rpc_test_client_arg *a = arg;
    size_t size;
    void *area = eleos_rpc_pool_shared(a->pool, &size);
    int rc = eleos_rpc_client_create(a->enc, area, size, &a->cl);
    if (rc == 0 && a->init)
        a->init(a->cl);
    return rc;
}

static inline long rpc_test_e_client_destroy(void *arg) {
    struct rpc_test_client_arg *a = arg;
    if (a->init)
        a->init(NULL);
    eleos_rpc_client_destroy(a->cl);
    return 0;
}

/* Creates the client of pool's shared area inside an ECALL (as an enclave would, from the
 * area the host hands in) and, if init is given, calls init(client) there too. */
static inline struct eleos_rpc_client *rpc_test_client(struct eleos_enclave *enc,
                                                       struct eleos_rpc_pool *pool,
                                                       void (*init)(struct eleos_rpc_client *)) {
    struct rpc_test_client_arg a = {enc, pool, NULL, init};
    long rv;
    REQUIRE(eleos_enclave_ecall(enc, rpc_test_e_client_create, &a, &rv) == 0 && rv == 0);
    return a.cl;
}

/* Destroys cl inside an ECALL, after init(NULL) if init is given. */
static inline void rpc_test_client_destroy(struct eleos_enclave *enc, struct eleos_rpc_client *cl,
                                           void (*init)(struct eleos_rpc_client *)) {
    struct rpc_test_client_arg a = {enc, NULL, cl, init};
    long rv;
    REQUIRE(eleos_enclave_ecall(enc, rpc_test_e_client_destroy, &a, &rv) == 0);
}

static inline void rpc_test_teardown(struct eleos_enclave *enc, struct eleos_rpc_pool *pool) {
    eleos_rpc_pool_destroy(pool);
    eleos_enclave_destroy(enc);
}

#endif
