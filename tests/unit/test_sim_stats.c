/*
 * test_sim_stats — what the statistics say: the AEX counter counts swap-ins taken in
 * enclave mode, not first touches nor host-mode swap-ins (docs/emulator.md, "Why a first
 * touch is not an AEX"); eleos_enclave_stats_print's table comes after what the program
 * printed before it, even with stdout redirected to a file and fully buffered.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eleos/enclave.h"
#include "harness.h"
#include "sim_testutil.h"

#define PAGE 4096u
#define NPAGES 16u

static struct eleos_enclave *enc;
static volatile uint8_t *pages;

static long alloc_and_touch(void *arg) {
    (void)arg;
    pages = eleos_enclave_aligned_alloc(enc, PAGE, NPAGES * PAGE);
    if (!pages)
        return -1;
    for (unsigned i = 0; i < NPAGES; i++)
        pages[i * PAGE] = (uint8_t)(i + 1);
    return 0;
}

static long read_pages(void *arg) {
    unsigned n = (unsigned)(uintptr_t)arg;
    long sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += pages[i * PAGE];
    return sum;
}

static void test_aex_counts_swap_ins_in_enclave_mode(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 8 * MiB);
    enc = sim_test_create(&cfg);
    struct eleos_enclave_stats a, b;
    eleos_enclave_stats(enc, &a);
    long ret = -1;
    REQUIRE(eleos_enclave_ecall(enc, alloc_and_touch, NULL, &ret) == 0 && ret == 0);
    eleos_enclave_stats(enc, &b);
    /* First touches: committed, not AEXs, nothing swapped. */
    CHECK(b.epc_commits - a.epc_commits >= NPAGES);
    CHECK_EQ(b.aex - a.aex, 0);
    CHECK_EQ(b.epc_faults - a.epc_faults, 0);

    /* Pages the driver evicted, touched by enclave code: each one swap-in and one AEX. */
    for (unsigned i = 0; i < 4; i++)
        REQUIRE(eleos_enclave_evict_page(enc, (const void *)(pages + i * PAGE)) == 0);
    eleos_enclave_stats(enc, &a);
    REQUIRE(eleos_enclave_ecall(enc, read_pages, (void *)(uintptr_t)4, &ret) == 0);
    CHECK_EQ(ret, 1 + 2 + 3 + 4);
    eleos_enclave_stats(enc, &b);
    CHECK_EQ(b.epc_faults - a.epc_faults, 4);
    CHECK_EQ(b.aex - a.aex, 4);

    /* The same from host mode: a swap-in, but no enclave code was interrupted. */
    REQUIRE(eleos_enclave_evict_page(enc, (const void *)pages) == 0);
    eleos_enclave_stats(enc, &a);
    CHECK_EQ(read_pages((void *)(uintptr_t)1), 1);
    eleos_enclave_stats(enc, &b);
    CHECK_EQ(b.epc_faults - a.epc_faults, 1);
    CHECK_EQ(b.aex - a.aex, 0);
    eleos_enclave_free(enc, (void *)pages);
    eleos_enclave_destroy(enc);
}

/* Reads the whole of fd from its start into a NUL-terminated malloc'd string. */
static char *slurp(int fd) {
    off_t end = lseek(fd, 0, SEEK_END);
    REQUIRE(end >= 0);
    char *buf = calloc(1, (size_t)end + 1);
    REQUIRE(buf && pread(fd, buf, (size_t)end, 0) == end);
    return buf;
}

static void test_stats_print_after_buffered_stdout(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 8 * MiB);
    enc = sim_test_create(&cfg);
    char path[] = "/tmp/eleos-stats-print-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    REQUIRE(saved >= 0 && dup2(fd, STDOUT_FILENO) == STDOUT_FILENO);
    static char vbuf[1 << 16];
    setvbuf(stdout, vbuf, _IOFBF, sizeof vbuf); /* as when stdout is a file or a pipe */
    printf("before the table\n");
    eleos_enclave_stats_print(enc, STDOUT_FILENO);
    printf("after the table\n");
    fflush(stdout);
    REQUIRE(dup2(saved, STDOUT_FILENO) == STDOUT_FILENO);
    close(saved);
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *out = slurp(fd);
    close(fd);
    const char *before = strstr(out, "before the table");
    const char *table = strstr(out, "statistics");
    const char *after = strstr(out, "after the table");
    CHECK(before && table && after);
    CHECK(before && table && before < table);
    CHECK(table && after && table < after);
    free(out);
    eleos_enclave_destroy(enc);
}

TEST_MAIN(TEST_CASE(test_aex_counts_swap_ins_in_enclave_mode),
          TEST_CASE(test_stats_print_after_buffered_stdout))
