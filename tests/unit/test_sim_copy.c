/*
 * eleos_copy_in / eleos_copy_out: inside an ECALL the untrusted side must lie outside the
 * calling enclave (wholly), else nothing is copied; in host mode they are plain copies.
 */
#include <string.h>

#include "sim_testutil.h"

#define PAGE 4096

struct args {
    char *host;      /* host memory, 2 pages */
    char *inside;    /* enclave heap, 1 page */
    char *base;      /* the first byte of ELRANGE */
    long results[8];
};

static long copies(void *arg) {
    struct args *a = arg;
    char buf[64];
    memset(buf, 0, sizeof buf);
    a->results[0] = eleos_copy_in(buf, a->host, 16);          /* ok                   */
    a->results[1] = buf[0] == 'h' && buf[15] == 'h';
    a->results[2] = eleos_copy_in(buf, a->inside, 16);        /* enclave memory       */
    a->results[3] = eleos_copy_out(a->inside, "x", 1);        /* enclave memory       */
    a->results[4] = eleos_copy_out(a->host + 10, "yy", 2);    /* ok                   */
    a->results[5] = eleos_copy_in(buf, NULL, 4);              /* NULL with a size     */
    a->results[6] = eleos_copy_in(buf, NULL, 0);              /* nothing to copy      */
    /* A range that starts below ELRANGE and runs into it. */
    a->results[7] = eleos_copy_in(buf, a->base - 8, 16);
    return 0;
}

static void test_copy_checks(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 4 * MiB);
    struct eleos_enclave *e = sim_test_create(&cfg);
    struct args a = {eleos_untrusted_alloc(2 * PAGE), eleos_enclave_aligned_alloc(e, PAGE, PAGE),
                     NULL, {0}};
    void *base;
    eleos_enclave_elrange(e, &base, NULL);
    a.base = base;
    REQUIRE(a.host && a.inside);
    memset(a.host, 'h', 2 * PAGE);
    memset(a.inside, 'e', PAGE);
    long ret;
    REQUIRE(eleos_enclave_ecall(e, copies, &a, &ret) == 0);
    CHECK_EQ(a.results[0], 0);
    CHECK_EQ(a.results[1], 1);
    CHECK_EQ(a.results[2], -EFAULT);
    CHECK_EQ(a.results[3], -EFAULT);
    CHECK(a.inside[0] == 'e');
    CHECK_EQ(a.results[4], 0);
    CHECK(a.host[10] == 'y' && a.host[11] == 'y');
    CHECK_EQ(a.results[5], -EFAULT);
    CHECK_EQ(a.results[6], 0);
    CHECK_EQ(a.results[7], -EFAULT);
    /* Host mode: plain copies (there is no calling enclave). */
    char buf[4];
    CHECK_EQ(eleos_copy_in(buf, a.inside, sizeof buf), 0);
    CHECK(buf[0] == 'e');
    eleos_untrusted_free(a.host, 2 * PAGE);
    eleos_enclave_free(e, a.inside);
    eleos_enclave_destroy(e);
}

TEST_MAIN(TEST_CASE(test_copy_checks))
