/* Configuration paths: cost-model environment overrides, the abort integrity policy,
 * several enclaves paging at once, host-mode access to ELRANGE, illegal nesting. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim_testutil.h"

static struct eleos_enclave *make(uint64_t epc, enum eleos_integrity_policy pol) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 256 * MiB, epc);
    cfg.integrity_policy = pol;
    return sim_test_create(&cfg);
}

static void test_cost_env_overrides(void) {
    struct eleos_cost_model m;
    setenv("ELEOS_COST_OCALL", "1234", 1);
    setenv("ELEOS_COST_POLLUTE_KIB", "512", 1);
    setenv("ELEOS_COST_SYSCALL", "junk", 1); /* not a number: ignored */
    eleos_cost_model_default(&m);
    CHECK_EQ(m.ocall_cycles, 1234);
    CHECK_EQ(m.pollute_kib, 512);
    CHECK_EQ(m.syscall_cycles, ELEOS_COST_DEFAULT_SYSCALL);
    CHECK_EQ(m.ecall_cycles, ELEOS_COST_DEFAULT_ECALL);
    setenv("ELEOS_COST", "0", 1);
    unsetenv("ELEOS_COST_OCALL");
    eleos_cost_model_default(&m);
    CHECK_EQ(m.ocall_cycles, 0);
    CHECK_EQ(m.ecall_cycles, 0);
    CHECK_EQ(m.pollute_kib, 512); /* explicit settings still apply after ELEOS_COST=0 */
    unsetenv("ELEOS_COST");
    unsetenv("ELEOS_COST_POLLUTE_KIB");
    unsetenv("ELEOS_COST_SYSCALL");
    setenv("ELEOS_ENFORCE", "0", 1);
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    CHECK(!cfg.enforce);
    unsetenv("ELEOS_ENFORCE");
    eleos_enclave_config_default(&cfg);
    CHECK(cfg.enforce);
}

static long touch(void *arg) {
    return ((volatile char *)arg)[0];
}

static void test_abort_policy(void) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        /* Child: a tampered swap page must abort the process under this policy. */
        struct eleos_enclave *e = make(4 * MiB, ELEOS_INTEGRITY_ABORT);
        char *p = eleos_enclave_malloc(e, 4096);
        p[0] = 42;
        if (eleos_enclave_evict_page(e, p) != 0)
            _exit(10);
        uint8_t *tag;
        uint8_t *slot = eleos_enclave_swap_slot(e, p, &tag);
        if (!slot)
            _exit(11);
        slot[0] ^= 0xff;
        long ret;
        if (eleos_enclave_ecall(e, touch, p, &ret) != 0)
            _exit(12); /* not reached: the abort comes first */
        _exit(13);
    }
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st));
    if (WIFSIGNALED(st))
        CHECK_EQ(WTERMSIG(st), SIGABRT);
    else
        fprintf(stderr, "child exited with %d\n", WEXITSTATUS(st));
}

struct pager {
    struct eleos_enclave *enc;
    long bad;
};

static long page_a_lot(void *arg) {
    struct pager *pg = arg;
    size_t n = 6 * MiB / 8;
    uint64_t *p = eleos_enclave_malloc(pg->enc, n * 8);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        p[i] = i ^ (uintptr_t)pg;
    for (size_t i = 0; i < n; i++)
        pg->bad += p[i] != (i ^ (uintptr_t)pg);
    eleos_enclave_free(pg->enc, p);
    return 0;
}

static void *pager_main(void *arg) {
    struct pager *pg = arg;
    long ret = -1;
    if (eleos_enclave_ecall(pg->enc, page_a_lot, pg, &ret) != 0 || ret != 0)
        pg->bad = -1;
    return NULL;
}

static void test_two_enclaves_paging(void) {
    struct pager a = {make(2 * MiB, 0), 0}, b = {make(3 * MiB, 0), 0};
    pthread_t ta, tb;
    REQUIRE(pthread_create(&ta, NULL, pager_main, &a) == 0);
    REQUIRE(pthread_create(&tb, NULL, pager_main, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ(a.bad, 0);
    CHECK_EQ(b.bad, 0);
    struct eleos_enclave_stats sa, sb;
    eleos_enclave_stats(a.enc, &sa);
    eleos_enclave_stats(b.enc, &sb);
    CHECK(sa.epc_resident_max <= 2 * MiB / 4096);
    CHECK(sb.epc_resident_max <= 3 * MiB / 4096);
    CHECK(sa.epc_evictions > 0 && sb.epc_evictions > 0);
    eleos_enclave_destroy(a.enc);
    eleos_enclave_destroy(b.enc);
}

static char *shared_page;
static struct eleos_enclave_stats before_ocall;

static long host_reads(void *arg) {
    (void)arg;
    return shared_page[10];
}

static long enclave_writes_then_ocalls(void *arg) {
    struct eleos_enclave *e = arg;
    shared_page = eleos_enclave_malloc(e, 64);
    shared_page[10] = 99;
    /* Host mode inside the OCALL touches a page that may need a fault: it works, and it is
     * not an asynchronous exit (the thread is not in enclave mode). */
    if (eleos_enclave_evict_page(e, shared_page) != 0)
        return -1;
    eleos_enclave_stats(e, &before_ocall);
    return eleos_enclave_ocall(host_reads, NULL);
}

static long nested_ecall(void *arg) {
    long r;
    return eleos_enclave_ecall(arg, touch, shared_page, &r);
}

static void test_host_access_and_nesting_rules(void) {
    struct eleos_enclave *e = make(4 * MiB, 0);
    long ret = 0;
    CHECK_EQ(eleos_enclave_ecall(e, enclave_writes_then_ocalls, e, &ret), 0);
    CHECK_EQ(ret, 99);
    struct eleos_enclave_stats s;
    eleos_enclave_stats(e, &s);
    CHECK_EQ(s.epc_faults - before_ocall.epc_faults, 1);
    CHECK_EQ(s.aex - before_ocall.aex, 0);
    /* EENTER from enclave mode is illegal. */
    CHECK_EQ(eleos_enclave_ecall(e, nested_ecall, e, &ret), 0);
    CHECK_EQ(ret, -EPERM);
    eleos_enclave_free(e, shared_page);
    eleos_enclave_destroy(e);
}

static void test_trim(void) {
    struct eleos_enclave *e = make(4 * MiB, 0);
    size_t size = 64 * 4096;
    uint8_t *p = eleos_enclave_aligned_alloc(e, 4096, size);
    REQUIRE(p);
    memset(p, 0x77, size);
    /* Half of it swapped out, half resident. */
    for (size_t i = 0; i < 32; i++)
        REQUIRE(eleos_enclave_evict_page(e, p + i * 4096) == 0);
    struct eleos_enclave_stats s0, s1;
    eleos_enclave_stats(e, &s0);
    /* Unaligned range: the first and last partial pages keep their contents. */
    CHECK_EQ(eleos_enclave_trim(e, p + 100, size - 200), 0);
    eleos_enclave_stats(e, &s1);
    CHECK_EQ(s1.epc_trimmed - s0.epc_trimmed, 62);
    CHECK_EQ(s0.epc_resident - s1.epc_resident, 31); /* pages 32..62 were resident */
    CHECK_EQ(p[0], 0x77);
    CHECK_EQ(p[size - 1], 0x77);
    long zeros = 0;
    for (size_t i = 4096; i < size - 4096; i++)
        zeros += p[i] == 0;
    CHECK_EQ(zeros, (long)(size - 2 * 4096));
    /* The memory is usable again, and paging still works after the FIFO was compacted. */
    memset(p, 0x11, size);
    uint8_t *big = eleos_enclave_malloc(e, 8 * MiB);
    REQUIRE(big);
    memset(big, 0x22, 8 * MiB);
    long bad = 0;
    for (size_t i = 0; i < size; i++)
        bad += p[i] != 0x11;
    for (size_t i = 0; i < 8 * MiB; i += 512)
        bad += big[i] != 0x22;
    CHECK_EQ(bad, 0);
    eleos_enclave_stats(e, &s1);
    CHECK(s1.epc_resident <= s1.epc_capacity);
    CHECK_EQ(s1.integrity_failures, 0);
    CHECK_EQ(eleos_enclave_trim(e, (char *)p - (1 << 30), 4096), -EINVAL);
    CHECK_EQ(eleos_enclave_trim(e, p, 0), 0);
    eleos_enclave_free(e, big);
    eleos_enclave_free(e, p);
    eleos_enclave_destroy(e);
}

TEST_MAIN(TEST_CASE(test_trim), TEST_CASE(test_cost_env_overrides), TEST_CASE(test_abort_policy),
          TEST_CASE(test_two_enclaves_paging), TEST_CASE(test_host_access_and_nesting_rules))
