/*
 * test_sys_setup — each forgotten set-up step has its own error: a wrapper called before
 * eleos_sys_init returns -EUNATCH, one whose pool never got eleos_sys_host_register returns
 * -EBADRQC (the pool's answer for an unregistered function), and neither is -ENOSYS, which
 * stays the kernel's "no such call". With both steps done the same call succeeds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "eleos/sys.h"
#include "harness.h"
#include "rpc_testutil.h"

static struct eleos_rpc_client *cl;

static long e_getpid(void *arg) {
    (void)arg;
    return eleos_sys_getpid();
}

static long e_open(void *arg) {
    (void)arg;
    return eleos_sys_openat(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0);
}

static long e_init(void *arg) {
    eleos_sys_init(arg);
    return 0;
}

static void run_case(bool registered, bool initialised, long want) {
    struct eleos_enclave *enc = rpc_test_enclave(0);
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = 1;
    pc.channels = 2;
    struct eleos_rpc_pool *pool =
        rpc_test_pool(enc, &pc, NULL, 0, registered ? eleos_sys_host_register : NULL);
    cl = rpc_test_client(enc, pool, initialised ? eleos_sys_init : NULL);
    long r = 0;
    REQUIRE(eleos_enclave_ecall(enc, e_getpid, NULL, &r) == 0);
    if (want == 0)
        CHECK_EQ(r, getpid());
    else
        CHECK_EQ(r, want);
    REQUIRE(eleos_enclave_ecall(enc, e_open, NULL, &r) == 0);
    if (want == 0) {
        CHECK(r >= 0);
        if (r >= 0)
            close((int)r);
    } else {
        CHECK_EQ(r, want);
    }
    struct eleos_rpc_pool_stats ps;
    eleos_rpc_pool_stats(pool, &ps);
    CHECK_EQ(ps.bad_fn, (!registered && initialised) ? 2 : 0);
    REQUIRE(eleos_enclave_ecall(enc, e_init, NULL, &r) == 0);
    rpc_test_client_destroy(enc, cl, NULL);
    rpc_test_teardown(enc, pool);
}

static void test_forgot_sys_init(void) {
    run_case(true, false, -EUNATCH);
}

static void test_forgot_host_register(void) {
    run_case(false, true, -EBADRQC);
}

static void test_forgot_both(void) {
    run_case(false, false, -EUNATCH); /* the enclave-side step is missed first */
}

static void test_both_done(void) {
    run_case(true, true, 0);
}

TEST_MAIN(TEST_CASE(test_forgot_sys_init), TEST_CASE(test_forgot_host_register),
          TEST_CASE(test_forgot_both), TEST_CASE(test_both_done))
