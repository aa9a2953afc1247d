/*
 * SUVM integrity: the host (this test, through eleos_suvm_backing_slot) tampers with,
 * replays and swaps sealed pages and sub-pages; every case must fail with -EBADMSG, be
 * counted, and never hand wrong data to the caller. Also: the abort policy aborts.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eleos/suvm.h"
#include "harness.h"
#include "suvm/suvm_testutil.h"

#define MiB SUVM_T_MIB
#define PAGE 4096u
#define CACHE (256 * 1024) /* 64 frames */

static struct eleos_suvm *mk(size_t sub, enum eleos_suvm_integrity_policy pol) {
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = CACHE;
    cfg.backing_size = 8 * MiB;
    cfg.subpage_size = sub;
    cfg.integrity_policy = pol;
    cfg.host_mode = !eleos_enclave_in_enclave_mode(); /* the host-mode pass, explicitly */
    struct eleos_suvm *s = NULL;
    REQUIRE(eleos_suvm_create(&cfg, &s) == 0);
    return s;
}

/* Pushes every page out of the cache by touching 2x the cache of other memory. */
static void churn(struct eleos_suvm *s, uint64_t other) {
    for (uint64_t off = 0; off < 2 * CACHE; off += PAGE)
        CHECK_EQ(eleos_suvm_read(s, other + off, &(uint64_t){0}, 8), 0);
}

static uint64_t failures(struct eleos_suvm *s) {
    struct eleos_suvm_stats st;
    eleos_suvm_stats(s, &st);
    return st.integrity_failures;
}

/* Expects reading [addr, addr+size) to fail and leave buf wiped (all zeros: no data from
 * the store, none of the caller's old bytes), as a failed read is documented to. */
static void expect_bad(struct eleos_suvm *s, uint64_t addr, size_t size, bool direct) {
    static uint8_t buf[PAGE];
    memset(buf, 0xa5, sizeof buf);
    uint64_t before = failures(s);
    int r = direct ? eleos_suvm_read_direct(s, addr, buf, size)
                   : eleos_suvm_read(s, addr, buf, size);
    CHECK_EQ(r, -EBADMSG);
    CHECK_EQ(failures(s), before + 1);
    for (size_t i = 0; i < size; i++) {
        if (buf[i] != 0) {
            CHECK(!"data reached the caller after an integrity failure");
            break;
        }
    }
    /* A spointer fails the same way (page mode: whole page). */
    if (!direct) {
        struct eleos_suvm_ptr p;
        void *v = NULL;
        eleos_suvm_ptr_init(&p, s, addr);
        CHECK_EQ(eleos_suvm_ptr_deref(&p, &v), -EBADMSG);
        eleos_suvm_ptr_fini(&p);
    }
}

static void expect_value(struct eleos_suvm *s, uint64_t addr, uint8_t val, size_t size,
                         bool direct) {
    static uint8_t buf[PAGE];
    int r = direct ? eleos_suvm_read_direct(s, addr, buf, size)
                   : eleos_suvm_read(s, addr, buf, size);
    CHECK_EQ(r, 0);
    for (size_t i = 0; i < size; i++) {
        if (buf[i] != val) {
            CHECK_EQ(buf[i], val);
            break;
        }
    }
}

static long c_page_mode(void *arg) {
    (void)arg;
    struct eleos_suvm *s = mk(0, ELEOS_SUVM_INTEGRITY_ERROR);
    uint64_t a, other;
    REQUIRE(eleos_suvm_alloc(s, 4 * PAGE, &a) == 0);
    REQUIRE(eleos_suvm_alloc(s, 2 * CACHE, &other) == 0);
    static uint8_t buf[PAGE];
    for (int i = 0; i < 4; i++) {
        memset(buf, 0x10 + i, PAGE);
        CHECK_EQ(eleos_suvm_write(s, a + (uint64_t)i * PAGE, buf, PAGE), 0);
    }
    churn(s, other);
    uint64_t pg = a / PAGE;
    uint8_t *tag;
    uint8_t *ct = eleos_suvm_backing_slot(s, pg, &tag, NULL);
    REQUIRE(ct);

    /* 1. Tampered ciphertext, then tampered tag; restoring makes the page readable. */
    ct[100] ^= 1;
    expect_bad(s, a, PAGE, false);
    ct[100] ^= 1;
    tag[3] ^= 0x80;
    expect_bad(s, a, 16, false);
    tag[3] ^= 0x80;
    expect_value(s, a, 0x10, PAGE, false);

    /* 2. Replay: keep version 1 of page 1, rewrite it (version 2), put version 1 back. */
    uint8_t *ct1, *tag1;
    ct1 = eleos_suvm_backing_slot(s, pg + 1, &tag1, NULL);
    static uint8_t old_ct[PAGE];
    uint8_t old_tag[16];
    memcpy(old_ct, ct1, PAGE);
    memcpy(old_tag, tag1, 16);
    memset(buf, 0x77, PAGE);
    CHECK_EQ(eleos_suvm_write(s, a + PAGE, buf, PAGE), 0);
    churn(s, other);
    CHECK(memcmp(old_ct, ct1, PAGE) != 0);
    memcpy(ct1, old_ct, PAGE);
    memcpy(tag1, old_tag, 16);
    expect_bad(s, a + PAGE, PAGE, false);

    /* 3. Swap pages 2 and 3 (ciphertext and tags). */
    uint8_t *ct2, *tag2, *ct3, *tag3;
    ct2 = eleos_suvm_backing_slot(s, pg + 2, &tag2, NULL);
    ct3 = eleos_suvm_backing_slot(s, pg + 3, &tag3, NULL);
    static uint8_t tmp[PAGE];
    uint8_t ttmp[16];
    memcpy(tmp, ct2, PAGE);
    memcpy(ct2, ct3, PAGE);
    memcpy(ct3, tmp, PAGE);
    memcpy(ttmp, tag2, 16);
    memcpy(tag2, tag3, 16);
    memcpy(tag3, ttmp, 16);
    expect_bad(s, a + 2 * PAGE, PAGE, false);
    expect_bad(s, a + 3 * PAGE, PAGE, false);
    /* Swap back: both fine again. */
    memcpy(tmp, ct2, PAGE);
    memcpy(ct2, ct3, PAGE);
    memcpy(ct3, tmp, PAGE);
    memcpy(ttmp, tag2, 16);
    memcpy(tag2, tag3, 16);
    memcpy(tag3, ttmp, 16);
    expect_value(s, a + 2 * PAGE, 0x12, PAGE, false);
    expect_value(s, a + 3 * PAGE, 0x13, PAGE, false);

    /* 4. A never-written page is not read from the store at all: garbage there is
     * ignored, and it reads as zeros. */
    uint64_t z;
    REQUIRE(eleos_suvm_alloc(s, PAGE * 2, &z) == 0);
    uint8_t *zt;
    memset(eleos_suvm_backing_slot(s, z / PAGE, &zt, NULL), 0xff, PAGE);
    expect_value(s, z, 0, PAGE, false);
    /* 5. Freed and reused pages: the old sealed copy is dead even if the host restores it. */
    uint8_t *ca = eleos_suvm_backing_slot(s, pg, &tag, NULL);
    memcpy(old_ct, ca, PAGE);
    memcpy(old_tag, tag, 16);
    CHECK_EQ(eleos_suvm_free(s, a), 0);
    /* Allocate single pages until page pg comes back (next fit wraps around). */
    uint64_t a2 = 0;
    for (int i = 0; i < 2048 && a2 != a; i++)
        REQUIRE(eleos_suvm_alloc(s, PAGE, &a2) == 0);
    CHECK_EQ(a2, a);
    expect_value(s, a2, 0, PAGE, false);
    memset(buf, 0x99, PAGE);
    CHECK_EQ(eleos_suvm_write(s, a2, buf, PAGE), 0);
    churn(s, other);
    memcpy(ca, old_ct, PAGE);
    memcpy(tag, old_tag, 16);
    expect_bad(s, a2, PAGE, false);
    CHECK(failures(s) >= 7);
    eleos_suvm_destroy(s);
    return 0;
}

static void swap_sub(uint8_t *ca, uint8_t *ta, uint32_t ia, uint8_t *cb, uint8_t *tb,
                     uint32_t ib, size_t sub) {
    uint8_t tmp[1024], tt[16];
    memcpy(tmp, ca + ia * sub, sub);
    memcpy(ca + ia * sub, cb + ib * sub, sub);
    memcpy(cb + ib * sub, tmp, sub);
    memcpy(tt, ta + ia * 16, 16);
    memcpy(ta + ia * 16, tb + ib * 16, 16);
    memcpy(tb + ib * 16, tt, 16);
}

static long c_subpage_mode(void *arg) {
    size_t sub = (size_t)(uintptr_t)arg;
    struct eleos_suvm *s = mk(sub, ELEOS_SUVM_INTEGRITY_ERROR);
    uint32_t nsub = PAGE / (uint32_t)sub;
    uint64_t a, other;
    REQUIRE(eleos_suvm_alloc(s, 2 * PAGE, &a) == 0);
    REQUIRE(eleos_suvm_alloc(s, 2 * CACHE, &other) == 0);
    static uint8_t buf[PAGE];
    /* Direct writes on uncached pages: sealed per sub-page straight to the store. */
    for (uint32_t i = 0; i < 2 * nsub; i++) {
        memset(buf, (int)(0x20 + i), sub);
        CHECK_EQ(eleos_suvm_write_direct(s, a + i * sub, buf, sub), 0);
    }
    struct eleos_suvm_stats st;
    eleos_suvm_stats(s, &st);
    CHECK_EQ(st.subpage_writes, 2 * nsub);
    CHECK_EQ(st.minor_faults + st.major_faults, 0); /* no frame taken */
    uint64_t pg = a / PAGE;
    uint8_t *tags, *tags1;
    size_t tsz;
    uint8_t *ct = eleos_suvm_backing_slot(s, pg, &tags, &tsz);
    uint8_t *ct1 = eleos_suvm_backing_slot(s, pg + 1, &tags1, NULL);
    CHECK_EQ(tsz, nsub * 16);

    /* Tamper sub-page 1: only it fails; its neighbours read fine. */
    ct[sub + 5] ^= 4;
    expect_bad(s, a + sub, sub, true);
    expect_bad(s, a + sub + 10, 1, true);
    expect_value(s, a, 0x20, sub, true);
    expect_value(s, a + 2 * sub, 0x22, sub, true);
    /* A whole-page fault (bulk read) of the page fails too. */
    expect_bad(s, a, PAGE, false);
    ct[sub + 5] ^= 4;
    expect_value(s, a + sub, 0x21, sub, true);

    /* Replay a sub-page. */
    static uint8_t old[1024];
    uint8_t old_tag[16];
    memcpy(old, ct + 2 * sub, sub);
    memcpy(old_tag, tags + 2 * 16, 16);
    memset(buf, 0x66, sub);
    CHECK_EQ(eleos_suvm_write_direct(s, a + 2 * sub + 0, buf, sub / 2), 0); /* partial */
    memcpy(ct + 2 * sub, old, sub);
    memcpy(tags + 2 * 16, old_tag, 16);
    expect_bad(s, a + 2 * sub, sub, true);

    /* Swap two sub-pages within page 1, then the last sub-page of page 0 with that of
     * page 1; each swap is detected, and undoing it makes the data readable again. */
    swap_sub(ct1, tags1, 0, ct1, tags1, 1, sub);
    expect_bad(s, a + PAGE, sub, true);
    expect_bad(s, a + PAGE + sub, sub, true);
    swap_sub(ct1, tags1, 0, ct1, tags1, 1, sub);
    uint32_t l = nsub - 1;
    swap_sub(ct, tags, l, ct1, tags1, l, sub);
    expect_bad(s, a + l * sub, sub, true);
    expect_bad(s, a + PAGE + l * sub, sub, true);
    swap_sub(ct, tags, l, ct1, tags1, l, sub);
    expect_value(s, a + l * sub, (uint8_t)(0x20 + l), sub, true);
    CHECK_EQ(eleos_suvm_read(s, a + PAGE, buf, PAGE), 0);
    for (uint32_t i = 0; i < nsub; i++)
        CHECK_EQ(buf[i * sub], 0x20 + nsub + i);
    eleos_suvm_destroy(s);
    return 0;
}

/* A failed open on the fault path that also writes back a dirty victim (the pipelined
 * seal + open, enclave_seal.c): the fault fails with -EBADMSG, and every victim sealed on the
 * way is still written out completely, so all other data reads back intact; a host that
 * changes the victims' fresh copies afterwards is caught too. */
static long c_dirty_victims(void *arg) {
    (void)arg;
    struct eleos_suvm *s = mk(0, ELEOS_SUVM_INTEGRITY_ERROR);
    uint64_t a, other;
    REQUIRE(eleos_suvm_alloc(s, PAGE, &a) == 0);
    REQUIRE(eleos_suvm_alloc(s, 2 * CACHE, &other) == 0);
    static uint8_t buf[PAGE];
    memset(buf, 0x3c, PAGE);
    CHECK_EQ(eleos_suvm_write(s, a, buf, PAGE), 0);
    churn(s, other); /* a is sealed now */
    uint8_t *ct = eleos_suvm_backing_slot(s, a / PAGE, NULL, NULL);
    ct[4000] ^= 0x10;
    for (int round = 0; round < 3; round++) {
        /* Every frame dirty: whatever the faults below evict is sealed on the fault path. */
        for (uint64_t off = 0; off < CACHE; off += PAGE) {
            memset(buf, (int)(off / PAGE + round), 64);
            CHECK_EQ(eleos_suvm_write(s, other + off, buf, 64), 0);
        }
        struct eleos_suvm_stats before, after;
        eleos_suvm_stats(s, &before);
        /* Two failed faults (bulk read, spointer); the first evicts a dirty victim, the
         * second reuses the frame the first gave back. */
        expect_bad(s, a, PAGE, false);
        eleos_suvm_stats(s, &after);
        CHECK(after.dirty_writebacks >= before.dirty_writebacks + 1);
        CHECK_EQ(after.bytes_sealed - before.bytes_sealed,
                 (after.dirty_writebacks - before.dirty_writebacks) * PAGE);
        CHECK_EQ(after.major_faults, before.major_faults); /* failed opens are not faults */
        for (uint64_t off = 0; off < CACHE; off += PAGE) {
            uint8_t got[64];
            CHECK_EQ(eleos_suvm_read(s, other + off, got, 64), 0);
            if (got[0] != (uint8_t)(off / PAGE + round) || got[63] != got[0]) {
                CHECK_EQ(got[0], (uint8_t)(off / PAGE + round));
                break;
            }
        }
    }
    /* The victims' copies are authenticated like any other: tamper one, read it again. */
    churn(s, other + CACHE); /* evicts the first half of other, re-sealed or dropped */
    uint8_t *ct2 = eleos_suvm_backing_slot(s, other / PAGE, NULL, NULL);
    ct2[7] ^= 1;
    expect_bad(s, other, 64, false);
    ct2[7] ^= 1;
    expect_value(s, other, 2, 64, false);
    ct[4000] ^= 0x10;
    expect_value(s, a, 0x3c, PAGE, false);
    eleos_suvm_destroy(s);
    return 0;
}

static void test_page_mode(void) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    CHECK_EQ(suvm_t_run(e, c_page_mode, NULL), 0);
    eleos_enclave_destroy(e);
    CHECK_EQ(suvm_t_run(NULL, c_page_mode, NULL), 0);
}

static void test_dirty_victims(void) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    CHECK_EQ(suvm_t_run(e, c_dirty_victims, NULL), 0);
    eleos_enclave_destroy(e);
    CHECK_EQ(suvm_t_run(NULL, c_dirty_victims, NULL), 0);
}

static void test_subpage_256(void) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    CHECK_EQ(suvm_t_run(e, c_subpage_mode, (void *)(uintptr_t)256), 0);
    eleos_enclave_destroy(e);
}

static void test_subpage_1k(void) {
    CHECK_EQ(suvm_t_run(NULL, c_subpage_mode, (void *)(uintptr_t)1024), 0);
    CHECK_EQ(suvm_t_run(NULL, c_subpage_mode, (void *)(uintptr_t)512), 0);
}

/* Expects a read of [addr, addr+size) spanning a tampered page or sub-page to fail and to
 * deliver nothing (docs/suvm.md): every byte of the destination range is zero afterwards,
 * neither the verified bytes of the pages before the bad one nor the caller's old contents,
 * and nothing past the range is written. */
static void expect_wiped(struct eleos_suvm *s, uint64_t addr, size_t size, bool direct) {
    static uint8_t buf[4 * PAGE];
    REQUIRE(size < sizeof buf);
    memset(buf, 0xa5, sizeof buf);
    int r = direct ? eleos_suvm_read_direct(s, addr, buf, size)
                   : eleos_suvm_read(s, addr, buf, size);
    CHECK_EQ(r, -EBADMSG);
    size_t left = 0, outside = 0;
    for (size_t i = 0; i < sizeof buf; i++) {
        if (i < size && buf[i] != 0)
            left++;
        if (i >= size && buf[i] != 0xa5)
            outside++;
    }
    CHECK_EQ(left, 0);
    CHECK_EQ(outside, 0);
}

/* Three pages, the middle one tampered (page mode: anywhere in it; sub-page mode: its
 * second sub-page); reads that verify good pages or sub-pages before reaching the bad one. */
static long c_failed_read(void *arg) {
    size_t sub = (size_t)(uintptr_t)arg;
    struct eleos_suvm *s = mk(sub, ELEOS_SUVM_INTEGRITY_ERROR);
    uint64_t a, other;
    REQUIRE(eleos_suvm_alloc(s, 3 * PAGE, &a) == 0);
    REQUIRE(eleos_suvm_alloc(s, 2 * CACHE, &other) == 0);
    static uint8_t buf[PAGE];
    for (int i = 0; i < 3; i++) {
        memset(buf, 0x31 + i, PAGE);
        CHECK_EQ(eleos_suvm_write(s, a + (uint64_t)i * PAGE, buf, PAGE), 0);
    }
    churn(s, other);
    uint8_t *ct = eleos_suvm_backing_slot(s, a / PAGE + 1, NULL, NULL);
    REQUIRE(ct);
    size_t at = sub ? sub + 7 : 2000;
    ct[at] ^= 1;
    /* Page 0 faulted in and copied, then page 1 fails. */
    expect_wiped(s, a + 100, 2 * PAGE, false);
    /* Page 0 cached now (a hit), a good page 2 after the bad one. */
    CHECK_EQ(eleos_suvm_read(s, a, buf, 8), 0);
    expect_wiped(s, a, 3 * PAGE, false);
    if (sub) {
        /* Direct access: sub-page 0 of page 1 opened and copied, then sub-page 1 fails;
         * and the same after the tail of the cached page 0. */
        expect_wiped(s, a + PAGE, 2 * sub, true);
        expect_wiped(s, a + PAGE - 64, 64 + 2 * sub, true);
    }
    ct[at] ^= 1;
    for (int i = 0; i < 3; i++)
        expect_value(s, a + (uint64_t)i * PAGE, (uint8_t)(0x31 + i), PAGE, false);
    eleos_suvm_destroy(s);
    return 0;
}

static void test_failed_read_wipes(void) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    CHECK_EQ(suvm_t_run(e, c_failed_read, NULL), 0);
    CHECK_EQ(suvm_t_run(e, c_failed_read, (void *)(uintptr_t)512), 0);
    eleos_enclave_destroy(e);
    CHECK_EQ(suvm_t_run(NULL, c_failed_read, NULL), 0);
    CHECK_EQ(suvm_t_run(NULL, c_failed_read, (void *)(uintptr_t)256), 0);
}

/* The abort policy, in a child process with a host-mode instance. */
static void test_abort_policy(void) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct eleos_suvm *s = mk(0, ELEOS_SUVM_INTEGRITY_ABORT);
        uint64_t a, other;
        if (eleos_suvm_alloc(s, PAGE, &a) || eleos_suvm_alloc(s, 2 * CACHE, &other))
            _exit(2);
        static uint8_t buf[PAGE];
        memset(buf, 1, PAGE);
        if (eleos_suvm_write(s, a, buf, PAGE))
            _exit(3);
        for (uint64_t off = 0; off < 2 * CACHE; off += PAGE)
            if (eleos_suvm_read(s, other + off, buf, 8))
                _exit(4);
        uint8_t *ct = eleos_suvm_backing_slot(s, a / PAGE, NULL, NULL);
        ct[0] ^= 1;
        int r = eleos_suvm_read(s, a, buf, PAGE);
        _exit(r == -EBADMSG ? 5 : 6); /* must not get here */
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

TEST_MAIN(TEST_CASE(test_page_mode), TEST_CASE(test_dirty_victims), TEST_CASE(test_subpage_256), TEST_CASE(test_subpage_1k),
          TEST_CASE(test_failed_read_wipes), TEST_CASE(test_abort_policy))
