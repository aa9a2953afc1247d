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
#include "exit_steps.h"
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

static uint64_t now_exits(struct eleos_enclave *e) {
    static struct eleos_enclave_stats st; /* large: not on the enclave stack */
    eleos_enclave_stats(e, &st);
    return exits_of(&st);
}

static long nop(void *arg) {
    (void)arg;
    return 0;
}

/* One call per step, each with the exit count its header documents for enclave mode. */
struct steps {
    struct exit_steps rec; /* rec.enc: e */
    struct eleos_enclave *e, *other;
};

#define STEP(x, nm, doc, stmt) EXIT_STEP(&(x)->rec, nm, doc, stmt)

/* suvm.h: set-up, management and teardown. */
static long c_steps_suvm_admin(void *arg) {
    struct steps *x = arg;
    struct eleos_suvm *s = NULL;
    uint64_t base = 0;
    struct eleos_suvm_config cfg;
    STEP(x, "suvm_config_default", 0, (eleos_suvm_config_default(&cfg), 0));
    cfg.cache_size = 8 * MiB;
    cfg.cache_max_size = 12 * MiB;
    cfg.backing_size = 64 * MiB;
    STEP(x, "suvm_create", 3, eleos_suvm_create(&cfg, &s));
    if (!s)
        return -1;
    STEP(x, "suvm_alloc", 0, eleos_suvm_alloc(s, 16 * MiB, &base));
    STEP(x, "suvm_alloc_size", 0, eleos_suvm_alloc_size(s, base) < 16 * MiB);
    STEP(x, "suvm_resize grow", 0, eleos_suvm_resize(s, 12 * MiB));
    STEP(x, "suvm_resize shrink", 0, eleos_suvm_resize(s, 4 * MiB));
    STEP(x, "suvm_flush", 0, eleos_suvm_flush(s));
    struct eleos_suvm_stats st;
    STEP(x, "suvm_stats", 0, (eleos_suvm_stats(s, &st), 0));
    STEP(x, "suvm_stats_reset", 0, (eleos_suvm_stats_reset(s), 0));
    STEP(x, "suvm_handle", 0, eleos_suvm_handle(s) == 0);
    STEP(x, "suvm_bad_handles", 0, (eleos_suvm_bad_handles(), 0));
    STEP(x, "suvm_evictor_request_stop", 0, (eleos_suvm_evictor_request_stop(s), 0));
    STEP(x, "suvm_evictor_halt", 0,
         eleos_suvm_evictor_halt((void *)(uintptr_t)eleos_suvm_handle(s)) != 0);
    STEP(x, "suvm_evictor_halt (bad)", 0, eleos_suvm_evictor_halt((void *)1) != -ESRCH);
    uint8_t *tags = NULL;
    size_t ntags = 0;
    STEP(x, "suvm_backing_slot", 0, eleos_suvm_backing_slot(s, 1, &tags, &ntags) == NULL);
    STEP(x, "suvm_free", 0, eleos_suvm_free(s, base));
    STEP(x, "suvm_destroy", 1, (eleos_suvm_destroy(s), 0));
    return 0;
}

/* Writes (or reads) every page of c's data, page by page. */
static int sweep(struct ctx *c, uint8_t *page, bool write) {
    int r = 0;
    for (uint64_t off = 0; !r && off < c->data; off += 4096)
        r = write ? eleos_suvm_write(c->s, c->base + off, page, 4096)
                  : eleos_suvm_read(c->s, c->base + off, page, 4096);
    return r;
}

/* suvm.h: data access, with a data set 4x the cache so that pages are sealed and opened. */
static long c_steps_suvm_access(void *arg) {
    struct steps *x = arg;
    struct ctx c = {.sub = 256};
    if (c_create(&c) != 0) /* 8 MiB cache, 32 MiB allocated, sub-page mode */
        return -1;
    struct eleos_suvm *s = c.s;
    static uint8_t page[4096];
    int cmp = 1;
    memset(page, 7, sizeof page);
    STEP(x, "suvm_write (paging)", 0, sweep(&c, page, true));
    STEP(x, "suvm_read (paging)", 0, sweep(&c, page, false));
    STEP(x, "suvm_memset", 0, eleos_suvm_memset(s, c.base, 7, 3 * 4096));
    STEP(x, "suvm_memcmp", 0, eleos_suvm_memcmp(s, c.base, page, 4096, &cmp) || cmp);
    STEP(x, "suvm_read_direct", 0, eleos_suvm_read_direct(s, c.base + c.data - 300, page, 100));
    STEP(x, "suvm_write_direct", 0, eleos_suvm_write_direct(s, c.base + 5000, page, 100));
    STEP(x, "suvm_prefetch", 0, (eleos_suvm_prefetch(s, c.base + 8 * MiB), 0));
    struct eleos_suvm_ptr p;
    void *v = NULL;
    eleos_suvm_ptr_init(&p, s, c.base + 20 * MiB);
    STEP(x, "suvm_ptr_deref_w (miss)", 0, eleos_suvm_ptr_deref_w(&p, &v));
    eleos_suvm_ptr_fini(&p);
    eleos_suvm_destroy(s);
    return 0;
}

static long host_echo(struct eleos_ocall_args *a) {
    size_t n = a->in_size < a->out_size ? a->in_size : a->out_size;
    memcpy(a->out, a->in, n);
    a->out_len = n;
    return 0;
}

/* enclave.h: transitions, memory and the boundary. */
static long c_steps_enclave_mem(void *arg) {
    struct steps *x = arg;
    struct eleos_enclave *e = x->e;
    STEP(x, "enclave_ocall", 1, eleos_enclave_ocall(nop, NULL));
    void *h = NULL, *h2 = NULL;
    STEP(x, "enclave_malloc", 0, (h = eleos_enclave_malloc(e, 1 * MiB)) == NULL);
    STEP(x, "enclave_realloc", 0, (h = eleos_enclave_realloc(e, h, 2 * MiB)) == NULL);
    STEP(x, "enclave_calloc", 0, (h2 = eleos_enclave_calloc(e, 1000, 100)) == NULL);
    STEP(x, "enclave_free", 0, (eleos_enclave_free(e, h2), eleos_enclave_free(e, h), 0));
    STEP(x, "enclave_aligned_alloc", 0,
         (h = eleos_enclave_aligned_alloc(e, 4096, 64 * 1024)) == NULL);
    if (h)
        memset(h, 1, 64 * 1024);
    STEP(x, "enclave_trim", 0, eleos_enclave_trim(e, h, 64 * 1024));
    eleos_enclave_free(e, h);
    void *u = NULL;
    STEP(x, "untrusted_alloc", 1, (u = eleos_untrusted_alloc(1 * MiB)) == NULL);
    static uint8_t buf[4096];
    STEP(x, "copy_in", 0, eleos_copy_in(buf, u, sizeof buf));
    STEP(x, "copy_out", 0, eleos_copy_out(u, buf, sizeof buf));
    STEP(x, "untrusted_free", 1, (eleos_untrusted_free(u, 1 * MiB), 0));
    char in[100] = "ping", out[100];
    struct eleos_ocall_buf b = {.in = in, .in_size = sizeof in, .out = out,
                                .out_size = sizeof out};
    long ret = -1;
    eleos_ocall_buffers_release(); /* so that the next call is this thread's first */
    STEP(x, "ocall_buffers (first)", 2, eleos_ocall_buffers(host_echo, NULL, &b, &ret) || ret);
    STEP(x, "ocall_buffers", 1, eleos_ocall_buffers(host_echo, NULL, &b, &ret) || ret);
    STEP(x, "ocall_buffers_release", 1, (eleos_ocall_buffers_release(), 0));
    return 0;
}

/* enclave.h: everything else callable in enclave mode. */
static long c_steps_enclave_misc(void *arg) {
    struct steps *x = arg;
    struct eleos_enclave *e = x->e;
    static struct eleos_enclave_stats st;
    static struct eleos_enclave_config cfg;
    static struct eleos_cost_calibration cal;
    struct eleos_cost_model m;
    struct eleos_epc_status es;
    char line[512];
    void *base;
    size_t size;
    STEP(x, "enclave_current", 0, eleos_enclave_current() != e);
    STEP(x, "enclave_in_enclave_mode", 0, !eleos_enclave_in_enclave_mode());
    void *h = eleos_enclave_malloc(e, 64); /* st is in the test's (host) data */
    STEP(x, "enclave_within", 0, !eleos_enclave_within(e, h, 64));
    STEP(x, "enclave_outside", 0, !eleos_enclave_outside(e, &st, sizeof st));
    STEP(x, "enclave_containing", 0, eleos_enclave_containing(h) != e);
    eleos_enclave_free(e, h);
    STEP(x, "enclave_elrange", 0, (eleos_enclave_elrange(e, &base, &size), size == 0));
    STEP(x, "enclave_stats", 0, (eleos_enclave_stats(e, &st), 0));
    STEP(x, "enclave_stats_reset", 0, (eleos_enclave_stats_reset(x->other), 0));
    STEP(x, "enclave_get_config", 0, (eleos_enclave_get_config(e, &cfg), 0));
    STEP(x, "enclave_config_default", 0, (eleos_enclave_config_default(&cfg), 0));
    STEP(x, "cost_model_default", 0, (eleos_cost_model_default(&m), 0));
    STEP(x, "cost_model_off", 0, (eleos_cost_model_off(&m), 0));
    STEP(x, "cost_calibrate (done)", 0, eleos_cost_calibrate());
    STEP(x, "cost_calibration_get", 0, eleos_cost_calibration_get(&m, &cal));
    STEP(x, "enclave_cost_calibration", 0, eleos_enclave_cost_calibration(e, &cal));
    STEP(x, "cost_calibration_format", 0, eleos_cost_calibration_format(&cal, line,
                                                                        sizeof line) <= 0);
    STEP(x, "cost_event_name", 0, eleos_cost_event_name(ELEOS_COST_EV_OCALL) == NULL);
    STEP(x, "tsc", 0, eleos_tsc() == 0);
    STEP(x, "tsc_ghz", 0, eleos_tsc_ghz() <= 0);
    STEP(x, "enclave_epc_status", 0, eleos_enclave_epc_status(e, &es));
    STEP(x, "enclave_epc_share", 0, eleos_enclave_epc_share(e) == 0);
    STEP(x, "enclave_epc_generation", 0, (eleos_enclave_epc_generation(e), 0));
    STEP(x, "enclave_is_lost", 0, eleos_enclave_is_lost(e));
    return 0;
}

static void test_documented_exit_counts(void) {
    /* Calibrated first (host mode), so that the calibration functions have something to
     * return in enclave mode. */
    REQUIRE(eleos_cost_calibrate() == 0);
    struct eleos_enclave *e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    static struct steps x;
    x.e = e;
    x.rec.enc = e;
    x.other = suvm_t_enclave(256 * MiB, 32 * MiB, false);
    CHECK_EQ(suvm_t_run(e, c_steps_suvm_admin, &x), 0);
    CHECK_EQ(suvm_t_run(e, c_steps_suvm_access, &x), 0);
    CHECK_EQ(suvm_t_run(e, c_steps_enclave_mem, &x), 0);
    CHECK_EQ(suvm_t_run(e, c_steps_enclave_misc, &x), 0);
    exit_steps_check(&x.rec, "", !SANITIZER_EXITS);
    eleos_enclave_destroy(x.other);
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
