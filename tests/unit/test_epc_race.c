/*
 * The emulated EPC against a host that races it: a host thread keeps flipping one byte of a
 * page's sealed copy in the untrusted swap while the enclave faults the page in (open race)
 * or while the driver seals it (seal race). Every trial must end with the page's original
 * bytes or with the enclave lost (-EBADMSG) — never with modified bytes accepted. A build
 * that verifies and decrypts in place accepts modified bytes in a sizeable share of trials:
 * AES-GCM reads the ciphertext once for the tag and again for the plaintext.
 *
 * Not labelled "concurrent": the host's writes race the emulator's copy on purpose, which is
 * exactly what a race detector reports.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "sim_testutil.h"

#define PAGE 4096
#define TRIALS 300
#define FLIPS_BEFORE 64 /* the flipper is running before the fault starts */

struct flipper {
    volatile uint8_t *byte;
    atomic_bool stop;
    atomic_ulong flips;
};

static void *flip(void *arg) {
    struct flipper *f = arg;
    while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
        *f->byte ^= 0x01;
        atomic_fetch_add_explicit(&f->flips, 1, memory_order_relaxed);
    }
    return NULL;
}

/* In the enclave: how many bytes of the page differ from the pattern. */
static long count_changed(void *arg) {
    const volatile uint8_t *p = arg;
    long bad = 0;
    for (int i = 0; i < PAGE; i++)
        bad += p[i] != 0xa5;
    return bad;
}

static struct eleos_enclave *fresh(uint8_t **page) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 4 * MiB);
    struct eleos_enclave *e = sim_test_create(&cfg);
    *page = eleos_enclave_aligned_alloc(e, PAGE, PAGE);
    REQUIRE(*page);
    memset(*page, 0xa5, PAGE);
    return e;
}

static void start(struct flipper *f, pthread_t *t, uint8_t *byte) {
    f->byte = byte;
    atomic_init(&f->stop, false);
    atomic_init(&f->flips, 0);
    REQUIRE(pthread_create(t, NULL, flip, f) == 0);
    while (atomic_load_explicit(&f->flips, memory_order_relaxed) < FLIPS_BEFORE)
        ;
}

static void stop(struct flipper *f, pthread_t t) {
    atomic_store_explicit(&f->stop, true, memory_order_relaxed);
    pthread_join(t, NULL);
}

/* One trial's outcome: 0 original bytes, 1 lost (detected), 2 modified bytes accepted. */
static int touch(struct eleos_enclave *e, uint8_t *page) {
    long changed = -1;
    int r = eleos_enclave_ecall(e, count_changed, page, &changed);
    if (r == -EBADMSG)
        return 1;
    REQUIRE(r == 0);
    return changed ? 2 : 0;
}

/* One trial: a fresh enclave whose page has a swap slot; the flipper races either the
 * fault that brings the page in (open) or the eviction that seals it again (seal). */
static int trial(int i, bool seal) {
    uint8_t *page, *tag;
    struct eleos_enclave *e = fresh(&page);
    REQUIRE(eleos_enclave_evict_page(e, page) == 0);
    uint8_t *slot = eleos_enclave_swap_slot(e, page, &tag);
    REQUIRE(slot);
    if (seal)
        REQUIRE(touch(e, page) == 0);
    struct flipper f;
    pthread_t t;
    start(&f, &t, slot + 1000 + (i % 2000));
    int r = 0;
    if (seal)
        REQUIRE(eleos_enclave_evict_page(e, page) == 0);
    else
        r = touch(e, page);
    stop(&f, t);
    if (seal)
        r = touch(e, page);
    eleos_enclave_destroy(e);
    return r;
}

static void race(bool seal) {
    int outcome[3] = {0, 0, 0};
    for (int i = 0; i < TRIALS; i++)
        outcome[trial(i, seal)]++;
    fprintf(stderr, "%s race: %d clean, %d detected, %d modified accepted\n",
            seal ? "seal" : "open", outcome[0], outcome[1], outcome[2]);
    CHECK_EQ(outcome[2], 0);
    CHECK(outcome[1] > 0); /* the race really happened */
}

static void test_open_race(void) {
    race(false);
}

static void test_seal_race(void) {
    race(true);
}

TEST_MAIN(TEST_CASE(test_open_race), TEST_CASE(test_seal_race))
