/*
 * SUVM inside an enclave causes no exits and no EPC faults: after setup, random work over a
 * data set 4x the page cache (faults, evictions, sealing, spointers, sub-page access, flush,
 * resize, alloc/free) leaves the enclave's syscall_exits and epc_faults at zero. With the
 * background evictor running, its naps are explicit OCALLs, and still no syscall exits.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "eleos/suvm.h"
#include "harness.h"
#include "suvm/suvm_testutil.h"

#define MiB SUVM_T_MIB

/* The TSan runtime itself maps shadow memory and waits on futexes from inside the
 * instrumented code, which the emulator rightly counts as exits; under TSan this test only
 * looks for races, the exit counts are checked by the other builds. */
#if defined(__SANITIZE_THREAD__)
#define SANITIZER_EXITS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SANITIZER_EXITS 1
#endif
#endif
#ifndef SANITIZER_EXITS
#define SANITIZER_EXITS 0
#endif

struct ctx {
    struct eleos_suvm *s;
    size_t sub;
    uint64_t base;
    uint64_t data;
};

static long c_create(void *arg) {
    struct ctx *c = arg;
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = 8 * MiB;
    cfg.cache_max_size = 12 * MiB;
    cfg.backing_size = 64 * MiB;
    cfg.subpage_size = c->sub;
    int r = eleos_suvm_create(&cfg, &c->s);
    if (r)
        return r;
    c->data = 32 * MiB;
    return eleos_suvm_alloc(c->s, c->data, &c->base);
}

static long c_work(void *arg) {
    struct ctx *c = arg;
    struct eleos_suvm *s = c->s;
    uint64_t rng = 7;
    static uint8_t buf[4096];
    long bad = 0;
    for (int op = 0; op < 40000; op++) {
        uint64_t r = suvm_t_rand(&rng);
        uint64_t off = suvm_t_rand(&rng) % (c->data - 4096);
        switch (r % 6) {
        case 0:
            memset(buf, (int)(off >> 12), 4096);
            bad += eleos_suvm_write(s, c->base + (off & ~4095ull), buf, 4096) != 0;
            break;
        case 1:
            bad += eleos_suvm_read(s, c->base + off, buf, 4096) != 0;
            break;
        case 2: {
            struct eleos_suvm_ptr p;
            void *v;
            eleos_suvm_ptr_init(&p, s, c->base + off);
            bad += eleos_suvm_ptr_deref_w(&p, &v) != 0;
            if (v)
                *(uint8_t *)v += 1;
            eleos_suvm_ptr_fini(&p);
            break;
        }
        case 3:
            bad += eleos_suvm_write_direct(s, c->base + off, buf, 100) != 0;
            break;
        case 4:
            bad += eleos_suvm_read_direct(s, c->base + off, buf, 300) != 0;
            break;
        case 5: {
            uint64_t a;
            if (eleos_suvm_alloc(s, 1 + r % 10000, &a) == 0) {
                bad += eleos_suvm_memset(s, a, 1, 1 + r % 10000) != 0;
                bad += eleos_suvm_free(s, a) != 0;
            }
            break;
        }
        }
        if (op == 10000)
            bad += eleos_suvm_resize(s, 12 * MiB) != 0;
        if (op == 20000)
            bad += eleos_suvm_resize(s, 4 * MiB) != 0;
        if (op == 30000)
            bad += eleos_suvm_flush(s) != 0;
    }
    return bad;
}

static long c_destroy(void *arg) {
    struct ctx *c = arg;
    eleos_suvm_destroy(c->s);
    return 0;
}

static void run(size_t sub, bool evictor) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    struct ctx c = {.sub = sub};
    REQUIRE(suvm_t_run(e, c_create, &c) == 0);
    struct eleos_suvm_evictor *ev = NULL;
    if (evictor)
        REQUIRE(eleos_suvm_evictor_start(e, c.s, &ev) == 0);
    eleos_enclave_stats_reset(e);
    CHECK_EQ(suvm_t_run(e, c_work, &c), 0);
    static struct eleos_enclave_stats st;
    eleos_enclave_stats(e, &st);
    if (evictor)
        eleos_suvm_evictor_stop(ev);
    fprintf(stderr, "  sub=%zu evictor=%d: ecalls %llu ocalls %llu syscall_exits %llu "
            "epc_commits %llu epc_faults %llu\n", sub, evictor,
            (unsigned long long)st.ecalls, (unsigned long long)st.ocalls,
            (unsigned long long)st.syscall_exits, (unsigned long long)st.epc_commits,
            (unsigned long long)st.epc_faults);
    CHECK(st.ecalls >= 1);
    if (!SANITIZER_EXITS)
        CHECK_EQ(st.syscall_exits, 0);
    CHECK_EQ(st.epc_faults, 0);
    CHECK_EQ(st.epc_evictions, 0);
    CHECK_EQ(st.integrity_failures, 0);
    if (st.syscall_exits) {
        for (int i = 0; i < ELEOS_ENCLAVE_NSYSCALLS; i++)
            if (st.syscalls[i])
                fprintf(stderr, "  syscall %d: %llu exits\n", i,
                        (unsigned long long)st.syscalls[i]);
    }
    CHECK_EQ(suvm_t_run(e, c_destroy, &c), 0);
    eleos_enclave_destroy(e);
}

static void test_page_mode(void) {
    run(0, false);
}
static void test_subpage_mode(void) {
    run(256, false);
}
static void test_with_evictor(void) {
    run(0, true);
}



/* --- the exit counts the headers state, measured ------------------------------------------ */

static uint64_t exits_of(const struct eleos_enclave_stats *st) {
    return st->ocalls + st->syscall_exits;
}

enum step { S_CREATE, S_ALLOC, S_GROW, S_SHRINK, S_FLUSH, S_DESTROY, S_UALLOC, S_UFREE,
            S_TRIM, S_OCALL, S_NSTEPS };
static const char *step_name[S_NSTEPS] = {"create", "alloc", "resize grow", "resize shrink",
                                          "flush", "destroy", "untrusted_alloc",
                                          "untrusted_free", "trim", "ocall"};

struct steps {
    struct eleos_enclave *e;
    uint64_t exits[S_NSTEPS];
};

static uint64_t now_exits(struct eleos_enclave *e) {
    static struct eleos_enclave_stats st; /* large: not on the enclave stack */
    eleos_enclave_stats(e, &st);
    return exits_of(&st);
}

static long nop(void *arg) {
    (void)arg;
    return 0;
}

static long c_steps(void *arg) {
    struct steps *x = arg;
    struct ctx c = {.sub = 0};
    uint64_t t = now_exits(x->e);
#define STEP(k, stmt)                                                                       \
    do {                                                                                    \
        if ((stmt) != 0)                                                                    \
            return -(k) - 1;                                                                \
        uint64_t n_ = now_exits(x->e);                                                      \
        x->exits[k] = n_ - t;                                                               \
        t = n_;                                                                             \
    } while (0)
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = 8 * MiB;
    cfg.cache_max_size = 12 * MiB;
    cfg.backing_size = 64 * MiB;
    STEP(S_CREATE, eleos_suvm_create(&cfg, &c.s));
    STEP(S_ALLOC, eleos_suvm_alloc(c.s, 16 * MiB, &c.base));
    STEP(S_GROW, eleos_suvm_resize(c.s, 12 * MiB));
    STEP(S_SHRINK, eleos_suvm_resize(c.s, 4 * MiB));
    STEP(S_FLUSH, eleos_suvm_flush(c.s));
    eleos_suvm_destroy(c.s);
    STEP(S_DESTROY, 0);
    void *u = eleos_untrusted_alloc(1 * MiB);
    STEP(S_UALLOC, u == NULL);
    eleos_untrusted_free(u, 1 * MiB);
    STEP(S_UFREE, 0);
    void *h = eleos_enclave_aligned_alloc(x->e, 4096, 64 * 1024);
    memset(h, 1, 64 * 1024);
    t = now_exits(x->e);
    STEP(S_TRIM, eleos_enclave_trim(x->e, h, 64 * 1024));
    eleos_enclave_free(x->e, h);
    t = now_exits(x->e);
    STEP(S_OCALL, eleos_enclave_ocall(nop, NULL));
#undef STEP
    return 0;
}

static void test_documented_exit_counts(void) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    struct steps x = {.e = e};
    CHECK_EQ(suvm_t_run(e, c_steps, &x), 0);
    /* What the headers say (suvm.h, enclave.h). */
    static const uint64_t documented[S_NSTEPS] = {
        [S_CREATE] = 3, [S_ALLOC] = 0,   [S_GROW] = 0,  [S_SHRINK] = 0, [S_FLUSH] = 0,
        [S_DESTROY] = 1, [S_UALLOC] = 1, [S_UFREE] = 1, [S_TRIM] = 0,   [S_OCALL] = 1,
    };
    for (int i = 0; i < S_NSTEPS; i++) {
        fprintf(stderr, "  %-16s %llu exits\n", step_name[i], (unsigned long long)x.exits[i]);
        if (!SANITIZER_EXITS && x.exits[i] != documented[i]) {
            fprintf(stderr, "  %s: documented %llu exits\n", step_name[i],
                    (unsigned long long)documented[i]);
            CHECK(false);
        }
    }
    eleos_enclave_destroy(e);
}
/* --- the evictor started from inside the enclave ------------------------------------------ */

struct inside {
    struct eleos_enclave *e, *other;
    uint64_t start_exits, stop_exits, batches;
    int start, wrong_enclave, refill;
};

/* Fills the cache past its low watermark, then waits (bounded) for the evictor to bring the
 * free frames back up: only a running evictor does that without a fault. */
static long c_evictor_inside(void *arg) {
    struct inside *x = arg;
    struct ctx c = {.sub = 0};
    if (c_create(&c) != 0)
        return -2;
    struct eleos_suvm_evictor *ev = NULL;
    x->wrong_enclave = eleos_suvm_evictor_start(x->other, c.s, &ev);
    uint64_t t = now_exits(x->e);
    x->start = eleos_suvm_evictor_start(x->e, c.s, &ev);
    x->start_exits = now_exits(x->e) - t;
    if (x->start)
        return 0;
    static uint8_t page[4096];
    for (uint64_t off = 0; off < 8 * MiB; off += 4096)
        if (eleos_suvm_write(c.s, c.base + off, page, sizeof page))
            return -1;
    struct eleos_suvm_stats st;
    /* A bound, so that an evictor that never runs fails the test instead of hanging it. */
    uint64_t deadline = eleos_tsc() + (uint64_t)(60e9 * eleos_tsc_ghz());
    do {
        eleos_suvm_stats(c.s, &st);
        __builtin_ia32_pause();
    } while (st.evictor_batches == 0 && eleos_tsc() < deadline);
    x->batches = st.evictor_batches;
    x->refill = st.free_frames > 0;
    t = now_exits(x->e);
    eleos_suvm_evictor_stop(ev);
    x->stop_exits = now_exits(x->e) - t;
    eleos_suvm_destroy(c.s);
    return 0;
}

static void test_evictor_started_inside(void) {
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    struct eleos_enclave *other = suvm_t_enclave(256 * MiB, 32 * MiB, false);
    struct inside x = {.e = e, .other = other};
    CHECK_EQ(suvm_t_run(e, c_evictor_inside, &x), 0);
    CHECK_EQ(x.wrong_enclave, -ESRCH); /* for another enclave than the one it runs in */
    CHECK_EQ(x.start, 0);
    CHECK(x.batches > 0);
    CHECK(x.refill);
    fprintf(stderr, "  evictor from inside: start %llu exits, stop %llu exits, %llu batches\n",
            (unsigned long long)x.start_exits, (unsigned long long)x.stop_exits,
            (unsigned long long)x.batches);
    if (!SANITIZER_EXITS) {
        CHECK_EQ(x.start_exits, 2); /* documented: the record's mmap and the OCALL */
        CHECK_EQ(x.stop_exits, 2);  /* the joining OCALL and the record's munmap */
    }
    eleos_enclave_destroy(other);
    eleos_enclave_destroy(e);
}

TEST_MAIN(TEST_CASE(test_page_mode), TEST_CASE(test_subpage_mode), TEST_CASE(test_with_evictor),
          TEST_CASE(test_documented_exit_counts), TEST_CASE(test_evictor_started_inside))
