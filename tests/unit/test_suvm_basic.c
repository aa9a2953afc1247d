/*
 * SUVM single-threaded behaviour, run both inside an emulated enclave and as a host-mode
 * instance: configuration checks, allocation and free/reuse, zero fill, spointers, bulk
 * operations, random operations against a plain reference with a cache 1/8 of the data
 * (page mode and sub-page modes), clean drop, flush, resize, the prefetch hint.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "eleos/suvm.h"
#include "harness.h"
#include "suvm/suvm_testutil.h"

#define MiB SUVM_T_MIB
#define PAGE 4096u

static struct eleos_enclave *enc; /* NULL while running the host-mode pass */

static struct eleos_suvm *mk(size_t cache, size_t max, size_t backing, size_t sub,
                             bool clean_drop) {
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = cache;
    cfg.cache_max_size = max;
    cfg.backing_size = backing;
    cfg.subpage_size = sub;
    cfg.clean_drop = clean_drop;
    cfg.host_mode = !eleos_enclave_in_enclave_mode(); /* the host-mode pass, explicitly */
    struct eleos_suvm *s = NULL;
    int r = eleos_suvm_create(&cfg, &s);
    REQUIRE(r == 0 && s);
    return s;
}

/* --- cases (each runs inside the enclave when enc is set) ---------------------------------- */

static long c_config(void *arg) {
    (void)arg;
    struct eleos_suvm_config cfg;
    struct eleos_suvm *s = NULL;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = 4096;
    CHECK_EQ(eleos_suvm_create(&cfg, &s), -EINVAL);
    eleos_suvm_config_default(&cfg);
    cfg.key_size = 20;
    CHECK_EQ(eleos_suvm_create(&cfg, &s), -EINVAL);
    eleos_suvm_config_default(&cfg);
    cfg.subpage_size = 100;
    CHECK_EQ(eleos_suvm_create(&cfg, &s), -EINVAL);
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = 2 * MiB;
    cfg.cache_max_size = 1 * MiB;
    CHECK_EQ(eleos_suvm_create(&cfg, &s), -EINVAL);
    eleos_suvm_config_default(&cfg);
    cfg.backing_size = 4096;
    CHECK_EQ(eleos_suvm_create(&cfg, &s), -EINVAL);
    return 0;
}

static long c_alloc_free(void *arg) {
    (void)arg;
    struct eleos_suvm *s = mk(1 * MiB, 0, 16 * MiB, 0, true);
    static const size_t sizes[] = {1, 64, 65, 100, 128, 1000, 2048, 2049, 4096, 10000, 70000};
    enum { N = sizeof sizes / sizeof sizes[0] };
    uint64_t a[N];
    uint8_t buf[70000];
    for (int i = 0; i < N; i++) {
        CHECK_EQ(eleos_suvm_alloc(s, sizes[i], &a[i]), 0);
        CHECK(a[i] >= PAGE);
        CHECK(eleos_suvm_alloc_size(s, a[i]) >= sizes[i]);
        if (sizes[i] <= ELEOS_SUVM_SLAB_MAX) /* never crosses a page */
            CHECK_EQ(a[i] / PAGE, (a[i] + sizes[i] - 1) / PAGE);
        else
            CHECK_EQ(a[i] % PAGE, 0);
        memset(buf, 0x5a, sizes[i]);
        CHECK_EQ(eleos_suvm_memcmp(s, a[i], buf, sizes[i], &(int){0}), 0);
        int cmp = 1;
        memset(buf, 0, sizes[i]);
        CHECK_EQ(eleos_suvm_memcmp(s, a[i], buf, sizes[i], &cmp), 0);
        CHECK_EQ(cmp, 0); /* fresh memory is zero */
        memset(buf, (int)(i + 1), sizes[i]);
        CHECK_EQ(eleos_suvm_write(s, a[i], buf, sizes[i]), 0);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            CHECK(a[i] + sizes[i] <= a[j] || a[j] + sizes[j] <= a[i]);
    for (int i = 0; i < N; i++) {
        memset(buf, (int)(i + 1), sizes[i]);
        int cmp = 1;
        CHECK_EQ(eleos_suvm_memcmp(s, a[i], buf, sizes[i], &cmp), 0);
        CHECK_EQ(cmp, 0);
    }
    /* Errors. */
    CHECK_EQ(eleos_suvm_alloc(s, 0, &a[0]), -EINVAL);
    CHECK_EQ(eleos_suvm_alloc(s, 64 * MiB, &(uint64_t){0}), -ENOMEM);
    CHECK_EQ(eleos_suvm_free(s, 0), -EINVAL);
    CHECK_EQ(eleos_suvm_free(s, a[9] + 8), -EINVAL);
    CHECK_EQ(eleos_suvm_free(s, a[3] + 1), -EINVAL);
    /* Pinned: -EBUSY, nothing freed. */
    struct eleos_suvm_ptr p;
    void *v;
    eleos_suvm_ptr_init(&p, s, a[9] + PAGE);
    CHECK_EQ(eleos_suvm_ptr_deref(&p, &v), 0);
    CHECK_EQ(eleos_suvm_free(s, a[9]), -EBUSY);
    CHECK(eleos_suvm_alloc_size(s, a[9]) >= sizes[9]);
    eleos_suvm_ptr_fini(&p);
    /* Free everything, reallocate: contents are zero again (runs and slab slots). */
    for (int i = 0; i < N; i++)
        CHECK_EQ(eleos_suvm_free(s, a[i]), 0);
    CHECK_EQ(eleos_suvm_free(s, a[0]), -EINVAL); /* double free */
    struct eleos_suvm_stats st;
    eleos_suvm_stats(s, &st);
    CHECK_EQ(st.allocated_bytes, 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(eleos_suvm_alloc(s, sizes[i], &a[i]), 0);
        int cmp = 1;
        memset(buf, 0, sizes[i]);
        CHECK_EQ(eleos_suvm_memcmp(s, a[i], buf, sizes[i], &cmp), 0);
        CHECK_EQ(cmp, 0);
    }
    /* Reused slab slot inside a live slab page (the zero-on-alloc path). */
    uint64_t x, y, z;
    CHECK_EQ(eleos_suvm_alloc(s, 200, &x), 0);
    CHECK_EQ(eleos_suvm_alloc(s, 200, &y), 0);
    CHECK_EQ(eleos_suvm_memset(s, x, 0xee, 200), 0);
    CHECK_EQ(eleos_suvm_free(s, x), 0);
    CHECK_EQ(eleos_suvm_alloc(s, 200, &z), 0);
    CHECK_EQ(z, x);
    memset(buf, 0, 256);
    int cmp = 1;
    CHECK_EQ(eleos_suvm_memcmp(s, z, buf, 256, &cmp), 0);
    CHECK_EQ(cmp, 0);
    /* Many small objects: slab pages come and go. */
    static uint64_t many[5000];
    for (int i = 0; i < 5000; i++)
        CHECK_EQ(eleos_suvm_alloc(s, 64 + (size_t)(i % 7) * 100, &many[i]), 0);
    for (int i = 0; i < 5000; i++)
        CHECK_EQ(eleos_suvm_write(s, many[i], &i, sizeof i), 0);
    for (int i = 0; i < 5000; i++) {
        int v2 = -1;
        CHECK_EQ(eleos_suvm_read(s, many[i], &v2, sizeof v2), 0);
        if (v2 != i) {
            CHECK_EQ(v2, i);
            break;
        }
    }
    for (int i = 0; i < 5000; i++)
        CHECK_EQ(eleos_suvm_free(s, many[i]), 0);
    eleos_suvm_destroy(s);
    return 0;
}

static long c_spointer(void *arg) {
    (void)arg;
    struct eleos_suvm *s = mk(256 * 1024, 0, 8 * MiB, 0, true); /* 64 frames */
    uint64_t a;
    CHECK_EQ(eleos_suvm_alloc(s, 3 * PAGE, &a), 0);
    struct eleos_suvm_ptr p;
    eleos_suvm_ptr_init(&p, s, a);
    for (uint64_t i = 0; i < 3 * PAGE / 8; i++) {
        void *v;
        REQUIRE(eleos_suvm_ptr_deref_w(&p, &v) == 0);
        *(uint64_t *)v = i * 3 + 1;
        eleos_suvm_ptr_add(&p, 8);
    }
    CHECK_EQ(eleos_suvm_ptr_addr(&p), a + 3 * PAGE);
    eleos_suvm_ptr_add(&p, -8);
    void *v;
    CHECK_EQ(eleos_suvm_ptr_deref(&p, &v), 0);
    CHECK_EQ(*(uint64_t *)v, (3 * PAGE / 8 - 1) * 3 + 1);
    /* Keep p linked to the last page, churn the cache: the pinned page stays. */
    uint64_t big;
    CHECK_EQ(eleos_suvm_alloc(s, 2 * MiB, &big), 0);
    for (uint64_t off = 0; off < 2 * MiB; off += PAGE)
        CHECK_EQ(eleos_suvm_write(s, big + off, &off, sizeof off), 0);
    CHECK_EQ(*(uint64_t *)v, (3 * PAGE / 8 - 1) * 3 + 1);
    /* The earlier pages were evicted (sealed, dirty) and come back intact. */
    struct eleos_suvm_ptr q;
    eleos_suvm_ptr_init(&q, s, a);
    for (uint64_t i = 0; i < 3 * PAGE / 8; i++) {
        void *w;
        REQUIRE(eleos_suvm_ptr_deref(&q, &w) == 0);
        if (*(uint64_t *)w != i * 3 + 1) {
            CHECK_EQ(*(uint64_t *)w, i * 3 + 1);
            break;
        }
        eleos_suvm_ptr_add(&q, 8);
    }
    /* Read, then decide to write: mark_dirty makes the write survive eviction. */
    eleos_suvm_ptr_set(&q, a + 16);
    CHECK_EQ(eleos_suvm_ptr_deref(&q, &v), 0);
    eleos_suvm_ptr_mark_dirty(&q);
    *(uint64_t *)v = 777;
    eleos_suvm_ptr_reset(&q);
    for (uint64_t off = 0; off < 2 * MiB; off += PAGE)
        CHECK_EQ(eleos_suvm_read(s, big + off, &(uint64_t){0}, 8), 0);
    uint64_t got = 0;
    CHECK_EQ(eleos_suvm_read(s, a + 16, &got, 8), 0);
    CHECK_EQ(got, 777);
    /* Out of range. */
    eleos_suvm_ptr_set(&q, 0);
    CHECK_EQ(eleos_suvm_ptr_deref(&q, &v), -EFAULT);
    eleos_suvm_ptr_set(&q, 8 * MiB);
    CHECK_EQ(eleos_suvm_ptr_deref(&q, &v), -EFAULT);
    CHECK_EQ(eleos_suvm_read(s, 8 * MiB - 4, &got, 8), -EFAULT);
    eleos_suvm_ptr_fini(&q);
    eleos_suvm_ptr_fini(&p);
    eleos_suvm_destroy(s);
    return 0;
}

/* The link follows the spointer: moves are arithmetic, the next dereference moves the pin
 * (dropping the old one in the same call), errors leave it unlinked with nothing pinned, and
 * the fast path works in both directions across page boundaries. */
static long c_spointer_link(void *arg) {
    (void)arg;
    struct eleos_suvm *s = mk(256 * 1024, 0, 8 * MiB, 0, true); /* 64 frames */
    uint64_t a, b;
    CHECK_EQ(eleos_suvm_alloc(s, 4 * PAGE, &a), 0);
    CHECK_EQ(eleos_suvm_alloc(s, PAGE, &b), 0);
    for (uint64_t i = 0; i < 4 * PAGE / 8; i++)
        CHECK_EQ(eleos_suvm_write(s, a + i * 8, &i, 8), 0);
    struct eleos_suvm_ptr p;
    void *v;
    /* Backwards word by word from the last word: every value, across three page ends. */
    eleos_suvm_ptr_init(&p, s, a + 4 * PAGE - 8);
    for (uint64_t i = 4 * PAGE / 8; i-- > 0;) {
        REQUIRE(eleos_suvm_ptr_deref(&p, &v) == 0);
        if (*(uint64_t *)v != i) {
            CHECK_EQ(*(uint64_t *)v, i);
            break;
        }
        eleos_suvm_ptr_add(&p, -8);
    }
    CHECK_EQ(eleos_suvm_ptr_addr(&p), a - 8);
    /* Off the page and back without a dereference in between: still the same link. */
    eleos_suvm_ptr_set(&p, a + 8);
    REQUIRE(eleos_suvm_ptr_deref(&p, &v) == 0);
    eleos_suvm_ptr_add(&p, 3 * PAGE);
    eleos_suvm_ptr_add(&p, -3 * (int64_t)PAGE);
    void *w;
    REQUIRE(eleos_suvm_ptr_deref(&p, &w) == 0);
    CHECK(w == v);
    /* A spointer that moved away still pins the page it last dereferenced (b's page here)
     * until it is dereferenced elsewhere or reset. */
    eleos_suvm_ptr_set(&p, b);
    REQUIRE(eleos_suvm_ptr_deref(&p, &v) == 0);
    eleos_suvm_ptr_set(&p, a);
    CHECK_EQ(eleos_suvm_free(s, b), -EBUSY);
    REQUIRE(eleos_suvm_ptr_deref(&p, &v) == 0); /* moves the pin to a's first page */
    CHECK_EQ(eleos_suvm_free(s, b), 0);
    CHECK_EQ(eleos_suvm_alloc(s, PAGE, &b), 0);
    /* A failed dereference drops the old link: nothing stays pinned. */
    eleos_suvm_ptr_set(&p, b);
    REQUIRE(eleos_suvm_ptr_deref(&p, &v) == 0);
    eleos_suvm_ptr_set(&p, 8 * MiB + 16); /* past the store */
    CHECK_EQ(eleos_suvm_ptr_deref(&p, &v), -EFAULT);
    CHECK(v == NULL);
    CHECK_EQ(eleos_suvm_ptr_addr(&p), 8 * MiB + 16);
    CHECK_EQ(eleos_suvm_free(s, b), 0);
    CHECK_EQ(eleos_suvm_ptr_deref(&p, &v), -EFAULT); /* unlinked: fails again, cleanly */
    /* Read link, then write intent on the same page: marks it dirty without relinking; the
     * write survives eviction. mark_dirty on an unlinked spointer is a no-op. */
    eleos_suvm_ptr_set(&p, a + PAGE);
    REQUIRE(eleos_suvm_ptr_deref(&p, &v) == 0);
    REQUIRE(eleos_suvm_ptr_deref_w(&p, &w) == 0);
    CHECK(w == v);
    *(uint64_t *)w = 4242;
    eleos_suvm_ptr_reset(&p);
    eleos_suvm_ptr_mark_dirty(&p);
    uint64_t big;
    CHECK_EQ(eleos_suvm_alloc(s, 2 * MiB, &big), 0);
    for (uint64_t off = 0; off < 2 * MiB; off += PAGE)
        CHECK_EQ(eleos_suvm_write(s, big + off, &off, sizeof off), 0);
    uint64_t got = 0;
    CHECK_EQ(eleos_suvm_read(s, a + PAGE, &got, 8), 0);
    CHECK_EQ(got, 4242);
    eleos_suvm_ptr_fini(&p);
    /* A spointer in memory (not a local) works the same way. */
    static struct eleos_suvm_ptr q;
    eleos_suvm_ptr_init(&q, s, a + 2 * PAGE);
    REQUIRE(eleos_suvm_ptr_deref(&q, &v) == 0);
    CHECK_EQ(*(uint64_t *)v, 2 * PAGE / 8);
    eleos_suvm_ptr_fini(&q);
    CHECK_EQ(eleos_suvm_free(s, a), 0);
    eleos_suvm_destroy(s);
    return 0;
}

/* Random operations against a plain reference; the cache is 1/8 of the data. */
struct rnd_arg {
    size_t sub;
    uint8_t *ref; /* host memory, DATA bytes */
};
#define DATA (8 * MiB)

static long c_random(void *argp) {
    struct rnd_arg *arg = argp;
    struct eleos_suvm *s = mk(DATA / 8, 0, DATA + 2 * MiB, arg->sub, true);
    uint64_t base;
    REQUIRE(eleos_suvm_alloc(s, DATA, &base) == 0);
    uint8_t *ref = arg->ref;
    memset(ref, 0, DATA);
    static uint8_t buf[20000], buf2[20000];
    uint64_t rng = 42 + arg->sub;
    struct eleos_suvm_ptr p;
    eleos_suvm_ptr_init(&p, s, base);
    long bad = 0;
    for (int op = 0; op < 30000 && bad < 5; op++) {
        uint64_t r = suvm_t_rand(&rng);
        size_t size = 1 + (size_t)(suvm_t_rand(&rng) % (r % 4 == 0 ? 20000 : 300));
        size_t off = (size_t)(suvm_t_rand(&rng) % (DATA - size));
        switch (r % 9) {
        case 0:
        case 1:
            for (size_t i = 0; i < size; i++)
                buf[i] = (uint8_t)suvm_t_rand(&rng);
            CHECK_EQ(eleos_suvm_write(s, base + off, buf, size), 0);
            memcpy(ref + off, buf, size);
            break;
        case 2:
        case 3:
            CHECK_EQ(eleos_suvm_read(s, base + off, buf, size), 0);
            if (memcmp(buf, ref + off, size)) {
                bad++;
                CHECK(!"read differs from reference");
            }
            break;
        case 4: {
            int c = (int)(r >> 8) & 0xff;
            CHECK_EQ(eleos_suvm_memset(s, base + off, c, size), 0);
            memset(ref + off, c, size);
            break;
        }
        case 5: {
            int cmp = 7;
            memcpy(buf2, ref + off, size);
            if (r & 0x100)
                buf2[size / 2] ^= 1;
            CHECK_EQ(eleos_suvm_memcmp(s, base + off, buf2, size, &cmp), 0);
            int want = memcmp(ref + off, buf2, size);
            CHECK((cmp < 0) == (want < 0) && (cmp > 0) == (want > 0));
            break;
        }
        case 6: { /* spointer word write + read back */
            off &= ~(size_t)7;
            eleos_suvm_ptr_set(&p, base + off);
            void *v;
            uint64_t val = suvm_t_rand(&rng);
            REQUIRE(eleos_suvm_ptr_deref_w(&p, &v) == 0);
            memcpy(v, &val, 8);
            memcpy(ref + off, &val, 8);
            eleos_suvm_ptr_add(&p, -(int64_t)(off & 4095)); /* same page: stays linked */
            REQUIRE(eleos_suvm_ptr_deref(&p, &v) == 0);
            CHECK(memcmp(v, ref + (off & ~(size_t)4095), 64) == 0);
            if (r & 0x200)
                eleos_suvm_ptr_reset(&p);
            break;
        }
        case 7:
            if (r & 1) {
                for (size_t i = 0; i < size; i++)
                    buf[i] = (uint8_t)suvm_t_rand(&rng);
                CHECK_EQ(eleos_suvm_write_direct(s, base + off, buf, size), 0);
                memcpy(ref + off, buf, size);
            } else {
                CHECK_EQ(eleos_suvm_read_direct(s, base + off, buf, size), 0);
                if (memcmp(buf, ref + off, size)) {
                    bad++;
                    CHECK(!"direct read differs from reference");
                }
            }
            break;
        case 8:
            if ((r >> 8) % 50 == 0)
                CHECK_EQ(eleos_suvm_flush(s), 0);
            break;
        }
    }
    eleos_suvm_ptr_fini(&p);
    /* Full compare at the end. */
    for (size_t off = 0; off < DATA; off += sizeof buf2) {
        size_t n = DATA - off < sizeof buf2 ? DATA - off : sizeof buf2;
        CHECK_EQ(eleos_suvm_read(s, base + off, buf2, n), 0);
        if (memcmp(buf2, ref + off, n)) {
            CHECK(!"final compare differs");
            break;
        }
    }
    struct eleos_suvm_stats st;
    eleos_suvm_stats(s, &st);
    CHECK(st.major_faults > 0);
    CHECK(st.evictions > 0);
    CHECK(st.dirty_writebacks > 0);
    CHECK_EQ(st.integrity_failures, 0);
    if (arg->sub)
        CHECK(st.subpage_reads + st.subpage_writes > 0);
    eleos_suvm_destroy(s);
    return 0;
}

static long c_zero_and_clean(void *arg) {
    bool clean_drop = arg != NULL;
    struct eleos_suvm *s = mk(256 * 1024, 0, 8 * MiB, 0, clean_drop);
    uint64_t a;
    REQUIRE(eleos_suvm_alloc(s, 4 * MiB, &a) == 0);
    static uint8_t zero[PAGE], buf[PAGE];
    /* Never-written pages read as zeros, twice (after being dropped), without crypto. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t off = 0; off < 4 * MiB; off += PAGE) {
            CHECK_EQ(eleos_suvm_read(s, a + off, buf, PAGE), 0);
            if (memcmp(buf, zero, PAGE)) {
                CHECK(!"never-written page not zero");
                break;
            }
        }
    }
    struct eleos_suvm_stats st;
    eleos_suvm_stats(s, &st);
    if (clean_drop) {
        CHECK(st.minor_faults >= 2 * 1024);
        CHECK_EQ(st.bytes_opened, 0);
        CHECK_EQ(st.dirty_writebacks, 0);
    } else {
        /* SGX-like: every eviction writes back, so the second pass opens sealed zeros. */
        CHECK(st.minor_faults >= 1024);
        CHECK(st.dirty_writebacks > 0);
        CHECK(st.major_faults > 0);
    }
    /* Write everything once, then read-only passes: clean pages are dropped. */
    for (uint64_t off = 0; off < 4 * MiB; off += PAGE)
        CHECK_EQ(eleos_suvm_write(s, a + off, &off, sizeof off), 0);
    eleos_suvm_stats_reset(s);
    for (uint64_t off = 0; off < 4 * MiB; off += PAGE) {
        uint64_t v = 1;
        CHECK_EQ(eleos_suvm_read(s, a + off, &v, sizeof v), 0);
        CHECK_EQ(v, off);
    }
    eleos_suvm_stats(s, &st);
    CHECK(st.major_faults > 0);
    if (clean_drop) {
        /* Only the pages still dirty from the write pass may be sealed. */
        CHECK(st.dirty_writebacks <= 64);
        CHECK(st.clean_drops > 0);
    } else {
        CHECK_EQ(st.clean_drops, 0);
    }
    eleos_suvm_destroy(s);
    return 0;
}

/* eleos_suvm_prefetch is a hint only: on cached, sealed, never-written and invalid addresses
 * it counts nothing, pins nothing (free right after works) and changes no data. arg: the
 * sub-page size (0 = page mode). */
static long c_prefetch(void *arg) {
    size_t sub = (size_t)(uintptr_t)arg;
    struct eleos_suvm *s = mk(256 * 1024, 0, 8 * MiB, sub, true);
    uint64_t a, b;
    REQUIRE(eleos_suvm_alloc(s, 2 * MiB, &a) == 0); /* 8x the cache: most pages sealed */
    REQUIRE(eleos_suvm_alloc(s, 2 * PAGE, &b) == 0); /* never written */
    for (uint64_t off = 0; off < 2 * MiB; off += 8)
        CHECK_EQ(eleos_suvm_write(s, a + off, &(uint64_t){a + off}, 8), 0);
    eleos_suvm_stats_reset(s);
    struct eleos_suvm_stats st;
    eleos_suvm_stats(s, &st);
    uint64_t free_frames = st.free_frames;
    for (uint64_t off = 0; off < 2 * MiB; off += 64)
        eleos_suvm_prefetch(s, a + off);
    eleos_suvm_prefetch(s, b);
    eleos_suvm_prefetch(s, b + PAGE + 100);
    static const uint64_t bad[] = {0, 1, PAGE - 1, 8 * MiB, 8 * MiB + PAGE, UINT64_MAX};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
        eleos_suvm_prefetch(s, bad[i]);
    eleos_suvm_stats(s, &st);
    CHECK_EQ(st.hits + st.minor_faults + st.major_faults, 0);
    CHECK_EQ(st.free_frames, free_frames);
    CHECK_EQ(st.evictions + st.subpage_reads + st.bytes_opened, 0);
    /* Nothing pinned: the never-written pages free at once. */
    CHECK_EQ(eleos_suvm_free(s, b), 0);
    for (uint64_t off = 0; off < 2 * MiB; off += 8) {
        uint64_t v = 0;
        CHECK_EQ(eleos_suvm_read_direct(s, a + off, &v, 8), 0);
        if (v != a + off) {
            CHECK_EQ(v, a + off);
            break;
        }
    }
    CHECK_EQ(eleos_suvm_free(s, a), 0);
    eleos_suvm_destroy(s);
    return 0;
}

static long c_flush_resize(void *arg) {
    (void)arg;
    struct eleos_suvm *s = mk(1 * MiB, 2 * MiB, 8 * MiB, 0, true);
    uint64_t a;
    REQUIRE(eleos_suvm_alloc(s, 4 * MiB, &a) == 0);
    for (uint64_t off = 0; off < 4 * MiB; off += 512)
        CHECK_EQ(eleos_suvm_write(s, a + off, &off, sizeof off), 0);
    CHECK_EQ(eleos_suvm_flush(s), 0);
    struct eleos_suvm_stats st;
    eleos_suvm_stats(s, &st);
    CHECK(st.flush_writebacks > 0);
    CHECK_EQ(st.cache_frames, 256);
    CHECK_EQ(eleos_suvm_resize(s, 4 * MiB), -EINVAL);
    CHECK_EQ(eleos_suvm_resize(s, 1000), -EINVAL);
    static const size_t sizes[] = {2 * MiB, 256 * 1024, 1536 * 1024, 512 * 1024, 1 * MiB};
    for (int k = 0; k < 5; k++) {
        CHECK_EQ(eleos_suvm_resize(s, sizes[k]), 0);
        eleos_suvm_stats(s, &st);
        CHECK_EQ(st.cache_frames, sizes[k] / PAGE);
        CHECK(st.free_frames <= st.cache_frames);
        for (uint64_t off = 0; off < 4 * MiB; off += 512) {
            uint64_t v = 1;
            CHECK_EQ(eleos_suvm_read(s, a + off, &v, sizeof v), 0);
            if (v != off) {
                CHECK_EQ(v, off);
                break;
            }
        }
    }
    /* A shrink that would evict pinned pages fails and keeps the size. */
    enum { NP = 200 };
    static struct eleos_suvm_ptr ps[NP];
    for (int i = 0; i < NP; i++) {
        void *v;
        eleos_suvm_ptr_init(&ps[i], s, a + (uint64_t)i * PAGE);
        CHECK_EQ(eleos_suvm_ptr_deref(&ps[i], &v), 0);
    }
    CHECK_EQ(eleos_suvm_resize(s, 256 * 1024), -EBUSY);
    eleos_suvm_stats(s, &st);
    CHECK_EQ(st.cache_frames, 256);
    for (int i = 0; i < NP; i++)
        eleos_suvm_ptr_fini(&ps[i]);
    CHECK_EQ(eleos_suvm_resize(s, 256 * 1024), 0);
    for (uint64_t off = 0; off < 4 * MiB; off += 512) {
        uint64_t v = 1;
        CHECK_EQ(eleos_suvm_read(s, a + off, &v, sizeof v), 0);
        if (v != off) {
            CHECK_EQ(v, off);
            break;
        }
    }
    eleos_suvm_stats(s, &st);
    CHECK(st.metadata_per_gib > 0);
    CHECK(st.metadata_per_gib <= 16ull * ((1ull << 30) / PAGE));
    eleos_suvm_destroy(s);
    return 0;
}

/* Balloon: shrinking gives the EPC pages of the retired frames back to the platform. Runs
 * in an enclave only (host-mode instances have no EPC); the stats are read in host mode
 * between ECALLs. */
struct balloon {
    struct eleos_suvm *s;
    uint64_t a;
    size_t size;
};
#define BALLOON_DATA (16 * MiB)

static long c_balloon_fill(void *arg) {
    struct balloon *b = arg;
    b->s = mk(8 * MiB, 8 * MiB, 2 * BALLOON_DATA, 0, true);
    REQUIRE(eleos_suvm_alloc(b->s, BALLOON_DATA, &b->a) == 0);
    for (uint64_t off = 0; off < BALLOON_DATA; off += 256)
        CHECK_EQ(eleos_suvm_write(b->s, b->a + off, &off, sizeof off), 0);
    return 0;
}

static long c_balloon_resize(void *arg) {
    struct balloon *b = arg;
    return eleos_suvm_resize(b->s, b->size);
}

static long c_balloon_check(void *arg) {
    struct balloon *b = arg;
    struct eleos_suvm_stats st;
    eleos_suvm_stats(b->s, &st);
    CHECK_EQ(st.cache_frames, b->size / PAGE);
    long bad = 0;
    for (uint64_t off = 0; off < BALLOON_DATA; off += 256) {
        uint64_t v = 1;
        CHECK_EQ(eleos_suvm_read(b->s, b->a + off, &v, sizeof v), 0);
        bad += v != off;
    }
    CHECK_EQ(bad, 0);
    return 0;
}

static long c_balloon_destroy(void *arg) {
    struct balloon *b = arg;
    eleos_suvm_destroy(b->s);
    return 0;
}

static uint64_t resident(struct eleos_enclave *e) {
    struct eleos_enclave_stats es;
    eleos_enclave_stats(e, &es);
    return es.epc_resident;
}

static void test_balloon_trim(void) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    enc = e;
    struct balloon b = {0};
    REQUIRE(suvm_t_run(e, c_balloon_fill, &b) == 0);
    uint64_t full = resident(e);
    /* 8 MiB -> 1 MiB: 1792 frames leave; the heap may commit a page per freed chunk
     * again for its own bookkeeping, so expect at least 90 % of them back. */
    b.size = 1 * MiB;
    CHECK_EQ(suvm_t_run(e, c_balloon_resize, &b), 0);
    uint64_t small = resident(e);
    uint64_t shrunk = 7 * MiB / PAGE;
    CHECK(full > small);
    CHECK(full - small >= shrunk * 9 / 10);
    CHECK(full - small <= shrunk + 16);
    CHECK_EQ(suvm_t_run(e, c_balloon_check, &b), 0);
    /* Grow again: the cache refills (pages committed anew), data intact. */
    b.size = 8 * MiB;
    CHECK_EQ(suvm_t_run(e, c_balloon_resize, &b), 0);
    CHECK_EQ(suvm_t_run(e, c_balloon_check, &b), 0);
    CHECK(resident(e) >= small + shrunk * 9 / 10);
    struct eleos_enclave_stats es;
    eleos_enclave_stats(e, &es);
    CHECK(es.epc_trimmed >= shrunk);
    CHECK_EQ(es.epc_faults, 0);
    CHECK_EQ(suvm_t_run(e, c_balloon_destroy, &b), 0);
    enc = NULL;
    eleos_enclave_destroy(e);
}

/* --- drivers: every case in the enclave, then as a host-mode instance ---------------------- */

static void run_both(eleos_enclave_fn fn, void *arg) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    enc = e;
    CHECK_EQ(suvm_t_run(e, fn, arg), 0);
    eleos_enclave_destroy(e);
    enc = NULL;
    CHECK_EQ(suvm_t_run(NULL, fn, arg), 0);
}

static void test_config(void) {
    run_both(c_config, NULL);
}
static void test_alloc_free_reuse(void) {
    run_both(c_alloc_free, NULL);
}
static void test_spointers(void) {
    run_both(c_spointer, NULL);
}
static void test_spointer_link(void) {
    run_both(c_spointer_link, NULL);
}
static void test_random_page_mode(void) {
    struct rnd_arg a = {.sub = 0, .ref = malloc(DATA)};
    REQUIRE(a.ref);
    run_both(c_random, &a);
    free(a.ref);
}
static void test_random_subpage_256(void) {
    struct rnd_arg a = {.sub = 256, .ref = malloc(DATA)};
    REQUIRE(a.ref);
    run_both(c_random, &a);
    free(a.ref);
}
static void test_random_subpage_1k(void) {
    struct rnd_arg a = {.sub = 1024, .ref = malloc(DATA)};
    REQUIRE(a.ref);
    run_both(c_random, &a);
    free(a.ref);
}
static void test_zero_fill_clean_drop(void) {
    run_both(c_zero_and_clean, (void *)1);
}
static void test_no_clean_drop(void) {
    run_both(c_zero_and_clean, NULL);
}
static void test_flush_resize(void) {
    run_both(c_flush_resize, NULL);
}
static void test_prefetch_hint(void) {
    run_both(c_prefetch, NULL);
    run_both(c_prefetch, (void *)(uintptr_t)256);
}

TEST_MAIN(TEST_CASE(test_config), TEST_CASE(test_alloc_free_reuse), TEST_CASE(test_spointers),
          TEST_CASE(test_spointer_link),
          TEST_CASE(test_random_page_mode), TEST_CASE(test_random_subpage_256),
          TEST_CASE(test_random_subpage_1k), TEST_CASE(test_zero_fill_clean_drop),
          TEST_CASE(test_no_clean_drop), TEST_CASE(test_flush_resize),
          TEST_CASE(test_balloon_trim), TEST_CASE(test_prefetch_hint))
