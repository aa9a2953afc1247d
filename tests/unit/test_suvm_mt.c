/*
 * SUVM under concurrency (label "concurrent": run under TSan too):
 *   - threads faulting the same pages at once end on one frame per page;
 *   - stress: threads doing random operations on their own regions (checked against their
 *     own reference) and reading a shared read-only region, with prefetch hints, the
 *     background evictor running and a thread resizing the cache up and down under the load.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "eleos/suvm.h"
#include "harness.h"
#include "suvm/suvm_testutil.h"

#define MiB SUVM_T_MIB
#define PAGE 4096u
#define NTHREADS 4

static struct eleos_enclave *enc;
static struct eleos_suvm *S;
static _Atomic int gate;
static _Atomic int stop_resizer;

static long c_create(void *arg) {
    const struct eleos_suvm_config *cfg = arg;
    return eleos_suvm_create(cfg, &S);
}

static long c_destroy(void *arg) {
    (void)arg;
    eleos_suvm_destroy(S);
    S = NULL;
    return 0;
}

static void setup(size_t cache, size_t max, size_t backing, size_t sub) {
    enc = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = cache;
    cfg.cache_max_size = max;
    cfg.backing_size = backing;
    cfg.subpage_size = sub;
    cfg.host_mode = enc == NULL;
    REQUIRE(suvm_t_run(enc, c_create, &cfg) == 0);
}

static void teardown(void) {
    CHECK_EQ(suvm_t_run(enc, c_destroy, NULL), 0);
    eleos_enclave_destroy(enc);
    enc = NULL;
}

/* --- one frame per page ---------------------------------------------------------------------- */

struct same_arg {
    uint64_t base;
    int npages;
    long bad;
};

static long c_same(void *argp) {
    struct same_arg *a = argp;
    atomic_fetch_add_explicit(&gate, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&gate, memory_order_acquire) < NTHREADS)
        ;
    long bad = 0;
    for (int i = 0; i < a->npages; i++) {
        uint64_t v = 0;
        if (eleos_suvm_read(S, a->base + (uint64_t)i * PAGE, &v, 8) || v != (uint64_t)i + 1)
            bad++;
    }
    return bad;
}

static long c_same_prepare(void *argp) {
    struct same_arg *a = argp;
    if (eleos_suvm_alloc(S, (size_t)a->npages * PAGE, &a->base))
        return -1;
    for (int i = 0; i < a->npages; i++) {
        uint64_t v = (uint64_t)i + 1;
        if (eleos_suvm_write(S, a->base + (uint64_t)i * PAGE, &v, 8))
            return -1;
    }
    /* Push them all out (sealed): shrink to one chunk, fill it with other pages, grow. */
    uint64_t other;
    if (eleos_suvm_resize(S, 256 * 1024) || eleos_suvm_alloc(S, 256 * 1024, &other))
        return -2;
    for (uint64_t off = 0; off < 256 * 1024; off += PAGE)
        if (eleos_suvm_read(S, other + off, &(uint64_t){0}, 8))
            return -3;
    if (eleos_suvm_resize(S, 2 * MiB))
        return -4;
    eleos_suvm_stats_reset(S);
    return 0;
}

static void *same_thread(void *arg) {
    long r = suvm_t_run(enc, c_same, arg);
    ((struct same_arg *)arg)->bad = r;
    return NULL;
}

static void test_same_page_one_frame(void) {
    setup(2 * MiB, 2 * MiB, 16 * MiB, 0);
    struct same_arg proto = {.npages = 300};
    REQUIRE(suvm_t_run(enc, c_same_prepare, &proto) == 0);
    atomic_store(&gate, 0);
    pthread_t th[NTHREADS];
    struct same_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = proto;
        REQUIRE(pthread_create(&th[i], NULL, same_thread, &args[i]) == 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(args[i].bad, 0);
    }
    struct eleos_suvm_stats st;
    eleos_suvm_stats(S, &st);
    /* 300 pages fit in 512 frames: each was opened exactly once. */
    CHECK_EQ(st.major_faults, 300);
    CHECK_EQ(st.minor_faults, 0);
    CHECK_EQ(st.hits, 300 * (NTHREADS - 1));
    teardown();
}

/* --- stress ----------------------------------------------------------------------------------- */

#define REGION (2 * MiB)
#define SHARED (1 * MiB)

struct worker {
    uint64_t base, shared;
    uint8_t *ref; /* host memory, REGION bytes */
    uint64_t seed;
    long bad;
};

static uint8_t shared_val(uint64_t off) {
    return (uint8_t)(off * 131 + (off >> 12));
}

static long c_worker(void *argp) {
    struct worker *w = argp;
    static _Thread_local uint8_t buf[9000];
    uint64_t rng = w->seed;
    long bad = 0;
    struct eleos_suvm_ptr p;
    eleos_suvm_ptr_init(&p, S, w->base);
    for (int op = 0; op < 6000; op++) {
        uint64_t r = suvm_t_rand(&rng);
        size_t size = 1 + (size_t)(suvm_t_rand(&rng) % (r & 0x10 ? 9000 : 200));
        size_t off = (size_t)(suvm_t_rand(&rng) % (REGION - size));
        int rr = 0;
        /* Hints race with faults, evictions and resizes (no pin, no lock): harmless. */
        eleos_suvm_prefetch(S, w->base + (r >> 8) % REGION);
        eleos_suvm_prefetch(S, w->shared + (r >> 24) % SHARED);
        switch (r % 7) {
        case 0:
        case 1:
            for (size_t i = 0; i < size; i++)
                buf[i] = (uint8_t)(r >> (i % 32));
            rr = eleos_suvm_write(S, w->base + off, buf, size);
            memcpy(w->ref + off, buf, size);
            break;
        case 2:
            rr = eleos_suvm_read(S, w->base + off, buf, size);
            bad += memcmp(buf, w->ref + off, size) != 0;
            break;
        case 3: {
            off &= ~(size_t)7;
            eleos_suvm_ptr_set(&p, w->base + off);
            void *v;
            rr = eleos_suvm_ptr_deref_w(&p, &v);
            if (!rr) {
                memcpy(v, &r, 8);
                memcpy(w->ref + off, &r, 8);
            }
            if (r & 0x100)
                eleos_suvm_ptr_reset(&p);
            break;
        }
        case 4:
            if (r & 0x20) {
                rr = eleos_suvm_write_direct(S, w->base + off, &r, size < 8 ? size : 8);
                memcpy(w->ref + off, &r, size < 8 ? size : 8);
            } else {
                rr = eleos_suvm_read_direct(S, w->base + off, buf, size);
                bad += memcmp(buf, w->ref + off, size) != 0;
            }
            break;
        case 5: { /* the shared, read-only region */
            size_t so = (size_t)(r >> 16) % (SHARED - 64);
            rr = eleos_suvm_read(S, w->shared + so, buf, 64);
            for (size_t i = 0; i < 64; i++)
                bad += buf[i] != shared_val(so + i);
            break;
        }
        case 6: {
            uint64_t a;
            size_t sz = 1 + (size_t)(r >> 20) % 5000;
            rr = eleos_suvm_alloc(S, sz, &a);
            if (!rr) {
                int c = 1;
                rr = eleos_suvm_memset(S, a, 0x3c, sz);
                buf[0] = 0x3c;
                if (!rr)
                    rr = eleos_suvm_memcmp(S, a + sz - 1, buf, 1, &c);
                bad += c != 0;
                int f = eleos_suvm_free(S, a);
                rr = rr ? rr : f;
            }
            break;
        }
        }
        if (rr)
            bad++;
    }
    eleos_suvm_ptr_fini(&p);
    /* Final full compare. */
    for (size_t off = 0; off < REGION; off += 8192) {
        if (eleos_suvm_read(S, w->base + off, buf, 8192) ||
            memcmp(buf, w->ref + off, 8192)) {
            bad++;
            break;
        }
    }
    return bad;
}

static void *worker_thread(void *arg) {
    struct worker *w = arg;
    w->bad = suvm_t_run(enc, c_worker, w);
    return NULL;
}

static long c_resize_loop(void *arg) {
    (void)arg;
    static const size_t sizes[] = {512 * 1024, 2 * MiB, 1 * MiB, 1536 * 1024};
    long errors = 0;
    for (int i = 0; !atomic_load_explicit(&stop_resizer, memory_order_acquire); i++) {
        int r = eleos_suvm_resize(S, sizes[i % 4]);
        if (r && r != -EBUSY)
            errors++;
        for (volatile int k = 0; k < 20000; k++)
            ;
    }
    return errors;
}

static void *resizer_thread(void *arg) {
    *(long *)arg = suvm_t_run(enc, c_resize_loop, NULL);
    return NULL;
}

static long c_prepare(void *argp) {
    struct worker *w = argp;
    uint64_t shared;
    if (eleos_suvm_alloc(S, SHARED, &shared))
        return -1;
    for (uint64_t off = 0; off < SHARED; off++) {
        uint8_t v = shared_val(off);
        if (eleos_suvm_write(S, shared + off, &v, 1))
            return -1;
    }
    for (int i = 0; i < NTHREADS; i++) {
        w[i].shared = shared;
        if (eleos_suvm_alloc(S, REGION, &w[i].base))
            return -1;
    }
    return 0;
}

static void stress(size_t sub) {
    /* 9 MiB of data, 1 MiB cache (1/8), resized between 512 KiB and 2 MiB. */
    setup(1 * MiB, 2 * MiB, 16 * MiB, sub);
    struct worker w[NTHREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].ref = calloc(1, REGION);
        w[i].seed = 1000 + (uint64_t)i;
        REQUIRE(w[i].ref);
    }
    REQUIRE(suvm_t_run(enc, c_prepare, w) == 0);
    struct eleos_suvm_evictor *ev = NULL;
    REQUIRE(eleos_suvm_evictor_start(enc, S, &ev) == 0);
    atomic_store(&stop_resizer, 0);
    long resize_errors = 0;
    pthread_t rt, th[NTHREADS];
    REQUIRE(pthread_create(&rt, NULL, resizer_thread, &resize_errors) == 0);
    for (int i = 0; i < NTHREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, worker_thread, &w[i]) == 0);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(w[i].bad, 0);
    }
    atomic_store_explicit(&stop_resizer, 1, memory_order_release);
    pthread_join(rt, NULL);
    CHECK_EQ(resize_errors, 0);
    eleos_suvm_evictor_stop(ev);
    struct eleos_suvm_stats st;
    eleos_suvm_stats(S, &st);
    CHECK(st.evictions > 0);
    CHECK_EQ(st.integrity_failures, 0);
    CHECK(st.free_frames <= st.cache_frames);
    fprintf(stderr, "  sub=%zu: hits %llu minor %llu major %llu evictions %llu (sync %llu, "
            "evictor batches %llu, naps %llu) frames %llu\n", sub,
            (unsigned long long)st.hits, (unsigned long long)st.minor_faults,
            (unsigned long long)st.major_faults, (unsigned long long)st.evictions,
            (unsigned long long)st.sync_evictions, (unsigned long long)st.evictor_batches,
            (unsigned long long)st.evictor_naps, (unsigned long long)st.cache_frames);
    for (int i = 0; i < NTHREADS; i++)
        free(w[i].ref);
    teardown();
}

static void test_stress_page_mode(void) {
    stress(0);
}
static void test_stress_subpage_mode(void) {
    stress(512);
}

TEST_MAIN(TEST_CASE(test_same_page_one_frame), TEST_CASE(test_stress_page_mode),
          TEST_CASE(test_stress_subpage_mode))
