/* EPC paging and the enclave heap: data survives paging, the resident cap holds, tampered /
 * replayed / swapped swap pages are detected, several threads page at once, counters match. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sim_testutil.h"

#define PAGE 4096u

static struct eleos_enclave *new_enclave(uint64_t epc, bool cost) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 512 * MiB, epc);
    if (cost)
        eleos_cost_model_default(&cfg.cost);
    return sim_test_create(&cfg);
}

static uint64_t pattern(uint64_t i, uint64_t salt) {
    uint64_t x = i * 0x9e3779b97f4a7c15ull + salt;
    x ^= x >> 31;
    return x * 0xbf58476d1ce4e5b9ull;
}

struct region {
    struct eleos_enclave *enc;
    uint64_t *p;
    size_t words;
    uint64_t salt;
    size_t stride;
};

static long fill(void *arg) {
    struct region *r = arg;
    for (size_t i = 0; i < r->words; i++)
        r->p[i] = pattern(i, r->salt);
    return 0;
}

/* Reads every word in a scattered order so that pages are faulted back in many times. */
static long verify(void *arg) {
    struct region *r = arg;
    long bad = 0;
    size_t n = r->words, step = r->stride ? r->stride : 1;
    for (size_t start = 0; start < step; start++)
        for (size_t i = start; i < n; i += step)
            if (r->p[i] != pattern(i, r->salt))
                bad++;
    return bad;
}

static long heap_alloc(void *arg) {
    struct region *r = arg;
    r->p = eleos_enclave_malloc(r->enc, r->words * sizeof(uint64_t));
    return r->p ? 0 : -ENOMEM;
}

static void test_working_set_3x_epc(void) {
    struct eleos_enclave *e = new_enclave(8 * MiB, false);
    struct region r = {.enc = e, .words = 24 * MiB / 8, .salt = 1, .stride = 4096 / 8 * 7};
    long ret = -1;
    CHECK_EQ(eleos_enclave_ecall(e, heap_alloc, &r, &ret), 0);
    REQUIRE(ret == 0);
    CHECK(eleos_enclave_within(e, r.p, r.words * 8));
    CHECK_EQ(eleos_enclave_ecall(e, fill, &r, &ret), 0);
    CHECK_EQ(eleos_enclave_ecall(e, verify, &r, &ret), 0);
    CHECK_EQ(ret, 0);
    /* Twice: pages written back after the first pass are re-sealed with new versions. */
    r.salt = 2;
    CHECK_EQ(eleos_enclave_ecall(e, fill, &r, &ret), 0);
    CHECK_EQ(eleos_enclave_ecall(e, verify, &r, &ret), 0);
    CHECK_EQ(ret, 0);

    struct eleos_enclave_stats s;
    eleos_enclave_stats(e, &s);
    CHECK_EQ(s.epc_capacity, 8 * MiB / PAGE);
    CHECK(s.epc_resident_max <= s.epc_capacity);
    CHECK(s.epc_resident <= s.epc_capacity);
    CHECK(s.epc_faults > 2 * (24 * MiB / PAGE)); /* later passes missed on most pages */
    CHECK_EQ(s.pages_sealed, s.epc_evictions);
    CHECK_EQ(s.pages_opened, s.epc_faults);
    /* Conservation: every page brought in is resident or was evicted. */
    CHECK_EQ(s.epc_commits + s.epc_faults, s.epc_resident + s.epc_evictions);
    CHECK_EQ(s.integrity_failures, 0);
    CHECK_EQ(s.syscall_exits, 0); /* the heap and paging never syscall in enclave mode */
    CHECK(s.aex >= s.epc_faults);
    eleos_enclave_free(e, r.p);
    eleos_enclave_destroy(e);
}

static long touch_first(void *arg) {
    return (long)((volatile uint8_t *)arg)[0];
}

static long write_byte(void *arg) {
    ((volatile uint8_t *)arg)[100] = 0x5a;
    return 0;
}

/* Fills page A and page B with known bytes and evicts both, returning their addresses. */
static void two_evicted_pages(struct eleos_enclave *e, uint8_t **a, uint8_t **b) {
    uint8_t *p = eleos_enclave_aligned_alloc(e, PAGE, 2 * PAGE);
    REQUIRE(p);
    memset(p, 0xaa, PAGE);
    memset(p + PAGE, 0xbb, PAGE);
    REQUIRE(eleos_enclave_evict_page(e, p) == 0);
    REQUIRE(eleos_enclave_evict_page(e, p + PAGE) == 0);
    *a = p;
    *b = p + PAGE;
}

static void test_tampered_swap_detected(void) {
    struct eleos_enclave *e = new_enclave(4 * MiB, false);
    uint8_t *a, *b, *tag;
    two_evicted_pages(e, &a, &b);
    uint8_t *slot = eleos_enclave_swap_slot(e, a, &tag);
    REQUIRE(slot);
    slot[17] ^= 1; /* the host flips one ciphertext bit */
    long ret = 0;
    CHECK_EQ(eleos_enclave_ecall(e, touch_first, a, &ret), -EBADMSG);
    CHECK(eleos_enclave_is_lost(e));
    /* Lost for good: later ECALLs fail at once. */
    CHECK_EQ(eleos_enclave_ecall(e, touch_first, b, &ret), -EBADMSG);
    struct eleos_enclave_stats s;
    eleos_enclave_stats(e, &s);
    CHECK_EQ(s.integrity_failures, 1);
    eleos_enclave_destroy(e);

    /* A flipped tag bit is detected as well. */
    e = new_enclave(4 * MiB, false);
    two_evicted_pages(e, &a, &b);
    REQUIRE(eleos_enclave_swap_slot(e, b, &tag));
    tag[3] ^= 0x80;
    CHECK_EQ(eleos_enclave_ecall(e, touch_first, b, &ret), -EBADMSG);
    eleos_enclave_destroy(e);
}

static void test_replayed_swap_detected(void) {
    struct eleos_enclave *e = new_enclave(4 * MiB, false);
    uint8_t *a, *b, *tag;
    two_evicted_pages(e, &a, &b);
    uint8_t *slot = eleos_enclave_swap_slot(e, a, &tag);
    REQUIRE(slot);
    /* The host keeps the old sealed copy of page A ... */
    static uint8_t old_ct[PAGE], old_tag[16];
    memcpy(old_ct, slot, PAGE);
    memcpy(old_tag, tag, 16);
    /* ... the enclave loads, modifies and the driver evicts it again (new version) ... */
    long ret = 0;
    CHECK_EQ(eleos_enclave_ecall(e, write_byte, a, &ret), 0);
    CHECK_EQ(eleos_enclave_evict_page(e, a), 0);
    /* ... and the host puts the old copy back: a replay. */
    memcpy(slot, old_ct, PAGE);
    memcpy(tag, old_tag, 16);
    CHECK_EQ(eleos_enclave_ecall(e, touch_first, a, &ret), -EBADMSG);
    CHECK(eleos_enclave_is_lost(e));
    eleos_enclave_destroy(e);
}

static void test_swapped_slots_detected(void) {
    struct eleos_enclave *e = new_enclave(4 * MiB, false);
    uint8_t *a, *b, *ta, *tb;
    two_evicted_pages(e, &a, &b);
    uint8_t *sa = eleos_enclave_swap_slot(e, a, &ta), *sb = eleos_enclave_swap_slot(e, b, &tb);
    REQUIRE(sa && sb);
    /* Exchange the two sealed pages and their tags. */
    static uint8_t tmp[PAGE], tt[16];
    memcpy(tmp, sa, PAGE);
    memcpy(sa, sb, PAGE);
    memcpy(sb, tmp, PAGE);
    memcpy(tt, ta, 16);
    memcpy(ta, tb, 16);
    memcpy(tb, tt, 16);
    long ret = 0;
    CHECK_EQ(eleos_enclave_ecall(e, touch_first, a, &ret), -EBADMSG);
    eleos_enclave_destroy(e);
}

static void test_untampered_roundtrip(void) {
    struct eleos_enclave *e = new_enclave(4 * MiB, false);
    uint8_t *a, *b;
    two_evicted_pages(e, &a, &b);
    long ret = 0;
    CHECK_EQ(eleos_enclave_ecall(e, touch_first, a, &ret), 0);
    CHECK_EQ(ret, 0xaa);
    CHECK_EQ(eleos_enclave_ecall(e, touch_first, b, &ret), 0);
    CHECK_EQ(ret, 0xbb);
    CHECK_EQ(eleos_enclave_evict_page(e, a), 0);
    CHECK_EQ(eleos_enclave_evict_page(e, a), -ENOENT);
    CHECK_EQ(eleos_enclave_evict_page(e, &ret), -EINVAL);
    CHECK(!eleos_enclave_is_lost(e));
    eleos_enclave_destroy(e);
}

#define NTHREADS 4

struct worker {
    struct eleos_enclave *enc;
    struct region r;
    long bad;
    int rc;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    long ret = 0;
    for (int pass = 0; pass < 3; pass++) {
        w->r.salt += (uint64_t)pass * 1000;
        w->rc |= eleos_enclave_ecall(w->enc, fill, &w->r, &ret);
        w->rc |= eleos_enclave_ecall(w->enc, verify, &w->r, &w->bad);
        if (w->bad)
            break;
    }
    return NULL;
}

static void test_threads_paging_at_once(void) {
    struct eleos_enclave *e = new_enclave(4 * MiB, false);
    struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    /* All regions are live before any thread starts: 4 × 2 MiB over a 4 MiB EPC, so
     * evictions happen however the threads are scheduled. */
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.enc = e, .r = {.enc = e, .words = 2 * MiB / 8, .salt = 77 + i,
                                               .stride = 0}};
        long ret = -1;
        REQUIRE(eleos_enclave_ecall(e, heap_alloc, &w[i].r, &ret) == 0 && ret == 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(w[i].rc, 0);
        CHECK_EQ(w[i].bad, 0);
        eleos_enclave_free(e, w[i].r.p);
    }
    struct eleos_enclave_stats s;
    eleos_enclave_stats(e, &s);
    CHECK(s.epc_resident_max <= s.epc_capacity);
    CHECK(s.epc_evictions > 0);
    CHECK_EQ(s.integrity_failures, 0);
    CHECK_EQ(s.ecalls, NTHREADS * 7);
    eleos_enclave_destroy(e);
}

static long heap_ops(void *arg) {
    struct eleos_enclave *e = arg;
    long bad = 0;
    char *p = eleos_enclave_malloc(e, 100);
    uint64_t *z = eleos_enclave_calloc(e, 1000, 8);
    void *al = eleos_enclave_aligned_alloc(e, 4096, 10000);
    if (!p || !z || !al || ((uintptr_t)al & 4095))
        return -1;
    for (int i = 0; i < 1000; i++)
        bad += z[i] != 0;
    memset(p, 7, 100);
    p = eleos_enclave_realloc(e, p, 1 << 20);
    if (!p)
        return -2;
    for (int i = 0; i < 100; i++)
        bad += p[i] != 7;
    bad += !eleos_enclave_within(e, p, 1 << 20) + !eleos_enclave_within(e, al, 10000);
    eleos_enclave_free(e, p);
    eleos_enclave_free(e, z);
    eleos_enclave_free(e, al);
    eleos_enclave_free(e, NULL);
    bad += eleos_enclave_aligned_alloc(e, 3, 10) != NULL; /* not a power of two */
    return bad;
}

static void test_heap(void) {
    struct eleos_enclave *e = new_enclave(16 * MiB, false);
    long ret = -1;
    CHECK_EQ(eleos_enclave_ecall(e, heap_ops, e, &ret), 0);
    CHECK_EQ(ret, 0);
    struct eleos_enclave_stats s;
    eleos_enclave_stats(e, &s);
    CHECK_EQ(s.syscall_exits, 0);
    /* Host mode works too. */
    CHECK_EQ(heap_ops(e), 0);

    /* Range checks. */
    void *base;
    size_t size;
    eleos_enclave_elrange(e, &base, &size);
    CHECK(eleos_enclave_within(e, base, size));
    CHECK(!eleos_enclave_within(e, base, size + 1));
    CHECK(!eleos_enclave_within(e, (char *)base - 1, 2));
    CHECK(!eleos_enclave_outside(e, (char *)base - 1, 2));
    CHECK(eleos_enclave_outside(e, (char *)base - 16, 16));
    CHECK(eleos_enclave_outside(e, (char *)base + size, 100));
    CHECK(!eleos_enclave_outside(e, (void *)UINTPTR_MAX, 2)); /* wraps */
    void *u = eleos_untrusted_alloc(8192);
    CHECK(u && eleos_enclave_outside(e, u, 8192) && ((uintptr_t)u & 4095) == 0);
    /* Which enclave holds a pointer (allocators shared by both modes free by it). */
    CHECK(eleos_enclave_containing(base) == e);
    CHECK(eleos_enclave_containing((char *)base + size - 1) == e);
    CHECK(eleos_enclave_containing((char *)base + size) == NULL);
    CHECK(eleos_enclave_containing(u) == NULL);
    eleos_untrusted_free(u, 8192);
    eleos_enclave_destroy(e);
    CHECK(eleos_enclave_containing(base) == NULL); /* gone with the enclave */
}

static void test_create_destroy_reuse(void) {
    /* ELRANGE reservations are pooled; many create/destroy cycles must keep working and
     * start every enclave from zeroed memory. */
    for (int i = 0; i < 20; i++) {
        struct eleos_enclave *e = new_enclave(4 * MiB, false);
        uint64_t *p = eleos_enclave_calloc(e, 4096, 8);
        REQUIRE(p);
        long bad = 0;
        for (int j = 0; j < 4096; j++)
            bad += p[j] != 0;
        CHECK_EQ(bad, 0);
        memset(p, 0xff, 4096 * 8);
        eleos_enclave_destroy(e);
    }
}

struct pipe_io {
    struct eleos_enclave *enc;
    uint8_t *src, *dst;
    int fds[2];
    size_t size;
};

static long pipe_roundtrip(void *arg) {
    struct pipe_io *io = arg;
    /* Both buffers were evicted by the host: the syscall proxy marshals them through
     * untrusted memory, faulting the pages in as it copies. */
    ssize_t w = write(io->fds[1], io->src, io->size);
    if (w != (ssize_t)io->size)
        return -1;
    size_t got = 0;
    while (got < io->size) {
        ssize_t r = read(io->fds[0], io->dst + got, io->size - got);
        if (r <= 0)
            return -2;
        got += (size_t)r;
    }
    return memcmp(io->src, io->dst, io->size) == 0 ? 0 : -3;
}

static void test_syscalls_on_evicted_buffers(void) {
    struct eleos_enclave *e = new_enclave(4 * MiB, false);
    struct pipe_io io = {.enc = e, .size = 3 * PAGE + 100};
    io.src = eleos_enclave_aligned_alloc(e, PAGE, 4 * PAGE);
    io.dst = eleos_enclave_aligned_alloc(e, PAGE, 4 * PAGE);
    REQUIRE(io.src && io.dst && pipe(io.fds) == 0);
    for (size_t i = 0; i < io.size; i++)
        io.src[i] = (uint8_t)(i * 7);
    memset(io.dst, 0, 4 * PAGE);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(eleos_enclave_evict_page(e, io.src + i * PAGE), 0);
        CHECK_EQ(eleos_enclave_evict_page(e, io.dst + i * PAGE), 0);
    }
    long ret = -9;
    CHECK_EQ(eleos_enclave_ecall(e, pipe_roundtrip, &io, &ret), 0);
    CHECK_EQ(ret, 0);
    struct eleos_enclave_stats s;
    eleos_enclave_stats(e, &s);
    CHECK(s.epc_faults >= 7);
    CHECK(s.syscalls[SYS_write] == 1 && s.syscalls[SYS_read] >= 1);
    close(io.fds[0]);
    close(io.fds[1]);
    eleos_enclave_free(e, io.src);
    eleos_enclave_free(e, io.dst);
    eleos_enclave_destroy(e);
}

TEST_MAIN(TEST_CASE(test_working_set_3x_epc), TEST_CASE(test_syscalls_on_evicted_buffers), TEST_CASE(test_untampered_roundtrip),
          TEST_CASE(test_tampered_swap_detected), TEST_CASE(test_replayed_swap_detected),
          TEST_CASE(test_swapped_slots_detected), TEST_CASE(test_threads_paging_at_once),
          TEST_CASE(test_heap), TEST_CASE(test_create_destroy_reuse))
