/*
 * A hostile host against the ECALLs of the SUVM library (docs/design.md §5, rule 1). The host sees
 * every ECALL its own half of the library makes — the background evictor's start, run and
 * stop — so this test intercepts them (linked with --wrap=eleos_enclave_ecall) and replays
 * each entry point with arguments of its own choosing: a fake instance in host memory whose
 * one dirty frame is the real instance's struct (key included) and whose backing store is
 * host memory, the same fake planted in enclave memory, zeroed host and enclave blocks as the
 * target of the stop path's write, the real arguments from another enclave and from host
 * mode, the arguments of a destroyed instance, and plain integers. The enclave must refuse
 * every one (-ESRCH, counted), never write to the fakes or the targets, and the real
 * instance's data must stay verifiable, its evictor usable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "eleos/suvm.h"
#include "harness.h"
#include "suvm/suvm_internal.h"
#include "suvm/suvm_testutil.h"

#define MiB SUVM_T_MIB
#define PAGE 4096u
#define CACHE (256 * 1024)
#define DATA (4 * CACHE) /* most of it sealed in the backing store */

/* --- Seeing the library's ECALLs as the host does ----------------------------------------- */

int __real_eleos_enclave_ecall(struct eleos_enclave *enc, eleos_enclave_fn fn, void *arg,
                               long *ret);
int __wrap_eleos_enclave_ecall(struct eleos_enclave *enc, eleos_enclave_fn fn, void *arg,
                               long *ret);

enum phase { OFF, STARTING, STOPPING };

struct entry {
    eleos_enclave_fn fn;
    void *arg;
    enum phase phase;
};

#define MAX_ENTRIES 8
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static enum phase seen_phase;
static struct entry seen[MAX_ENTRIES];
static int nseen;

int __wrap_eleos_enclave_ecall(struct eleos_enclave *enc, eleos_enclave_fn fn, void *arg,
                               long *ret) {
    pthread_mutex_lock(&seen_lock);
    if (seen_phase != OFF && nseen < MAX_ENTRIES)
        seen[nseen++] = (struct entry){fn, arg, seen_phase};
    pthread_mutex_unlock(&seen_lock);
    return __real_eleos_enclave_ecall(enc, fn, arg, ret);
}

static bool seen_run(void) {
    pthread_mutex_lock(&seen_lock);
    bool found = false;
    for (int i = 0; i < nseen; i++)
        found |= seen[i].fn == eleos_suvm_evictor_run;
    pthread_mutex_unlock(&seen_lock);
    return found;
}

/* Starts and stops s's evictor through the public API and returns the ECALLs it made. */
static int capture(struct eleos_enclave *e, struct eleos_suvm *s, struct entry *out) {
    pthread_mutex_lock(&seen_lock);
    nseen = 0;
    seen_phase = STARTING;
    pthread_mutex_unlock(&seen_lock);
    struct eleos_suvm_evictor *ev = NULL;
    REQUIRE(eleos_suvm_evictor_start(e, s, &ev) == 0);
    for (int i = 0; i < 5000 && !seen_run(); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    pthread_mutex_lock(&seen_lock);
    seen_phase = STOPPING;
    pthread_mutex_unlock(&seen_lock);
    eleos_suvm_evictor_stop(ev);
    pthread_mutex_lock(&seen_lock);
    seen_phase = OFF;
    int n = nseen;
    memcpy(out, seen, sizeof seen);
    pthread_mutex_unlock(&seen_lock);
    REQUIRE(seen_run());
    return n;
}

/* --- Enclave side of the test: an application using one instance ------------------------- */

struct inst {
    struct eleos_suvm *s;
    uint64_t base;
};

static long e_create(void *arg) {
    struct inst *in = arg;
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = CACHE;
    cfg.backing_size = 8 * MiB;
    int r = eleos_suvm_create(&cfg, &in->s);
    if (r)
        return r;
    r = eleos_suvm_alloc(in->s, DATA, &in->base);
    for (uint64_t off = 0; !r && off < DATA; off += 8)
        r = eleos_suvm_write(in->s, in->base + off, &(uint64_t){off * 31 + 7}, 8);
    return r;
}

/* Number of words that do not read back (or an error), and no integrity failure counted. */
static long e_verify(void *arg) {
    struct inst *in = arg;
    long bad = 0;
    for (uint64_t off = 0; off < DATA; off += 8) {
        uint64_t v = 0;
        int r = eleos_suvm_read(in->s, in->base + off, &v, 8);
        if (r)
            return r;
        bad += v != off * 31 + 7;
    }
    struct eleos_suvm_stats st;
    eleos_suvm_stats(in->s, &st);
    return bad + (long)st.integrity_failures;
}

static long e_destroy(void *arg) {
    eleos_suvm_destroy(((struct inst *)arg)->s);
    return 0;
}

/* Host bytes copied into enclave memory, as an application copies in a request. */
struct plant {
    const void *src;
    size_t size;
    void *dst;
};

static long e_plant(void *arg) {
    struct plant *p = arg;
    p->dst = eleos_enclave_malloc(eleos_enclave_current(), p->size);
    if (!p->dst)
        return -ENOMEM;
    memcpy(p->dst, p->src, p->size);
    return 0;
}

static long e_unchanged(void *arg) {
    struct plant *p = arg;
    return memcmp(p->dst, p->src, p->size) == 0;
}

static long e_unplant(void *arg) {
    struct plant *p = arg;
    eleos_enclave_free(eleos_enclave_current(), p->dst);
    return 0;
}

/* --- The forgeries ------------------------------------------------------------------------ */

/* An instance laid out in host memory: one dirty cached frame whose bytes are the real
 * instance's struct, a host key, a backing store in host memory. An evictor that believed it
 * would seal the real struct, key and all, where the host reads it. Its stop flag is set so
 * that a broken enclave that runs an evictor on it returns (the test must end on broken
 * code too); a correct one never reads it. */
struct fake {
    struct eleos_suvm s;
    struct pte pt[2];
    struct frame frames[1];
    uint8_t *chunks[1];
    uint32_t free_stack[1];
    uint8_t tags[2 * GCM_TAG_SIZE];
    uint8_t store[2 * PAGE];
};

static void forge(struct fake *f, struct eleos_enclave *e, struct eleos_suvm *real) {
    memset(f, 0, sizeof *f);
    f->s.enc = e;
    eleos_suvm_config_default(&f->s.cfg);
    f->s.cfg.low_watermark = 1;
    f->s.cfg.high_watermark = 1;
    f->s.npages = 2;
    f->s.nsub = 1;
    f->s.subsz = PAGE;
    memset(f->s.key, 0x42, sizeof f->s.key);
    f->s.pt = f->pt;
    atomic_store(&f->pt[1].word, 1); /* page 1 in frame 0 */
    f->s.frames = f->frames;
    atomic_store(&f->frames[0].page, 2);
    atomic_store(&f->frames[0].dirty, 1);
    f->chunks[0] = (uint8_t *)real;
    f->s.chunks = f->chunks;
    f->s.max_frames = 1;
    atomic_store(&f->s.nframes, 1);
    atomic_store(&f->s.target, 1);
    f->s.free_stack = f->free_stack;
    f->s.store = f->store;
    f->s.tags = f->tags;
    f->s.store_size = sizeof f->store;
    f->s.tags_size = sizeof f->tags;
    atomic_store(&f->s.evictor_stop, true);
}

struct hcall {
    struct eleos_enclave *e; /* NULL: called in host mode, without an ECALL */
    eleos_enclave_fn fn;
    void *arg;
    int rc;
    long ret;
};

static void *hcall_thread(void *p) {
    struct hcall *h = p;
    if (h->e)
        h->rc = __real_eleos_enclave_ecall(h->e, h->fn, h->arg, &h->ret);
    else
        h->ret = h->fn(h->arg);
    return NULL;
}

static int refusals; /* calls expected to be refused (and counted) */

/* Calls fn(arg) from e (or host mode) on a thread of its own and expects -ESRCH. If the
 * call has not returned after 2 s the enclave accepted the forgery and runs an evictor on
 * it: the stop entries, with the same argument, end it, so the test can go on. */
static void expect_refused(const char *what, struct eleos_enclave *e, eleos_enclave_fn fn,
                           void *arg, const struct entry *ent, int n) {
    struct hcall h = {e, fn, arg, 0, 0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, hcall_thread, &h) == 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 2;
    bool hung = pthread_timedjoin_np(t, NULL, &dl) != 0;
    if (hung) {
        for (int i = 0; i < n; i++) {
            struct hcall stop = {e, ent[i].fn, arg, 0, 0};
            if (ent[i].phase == STOPPING)
                hcall_thread(&stop);
        }
        pthread_join(t, NULL);
    }
    refusals++;
    if (hung || h.rc != 0 || h.ret != -ESRCH) {
        fprintf(stderr, "  accepted: %s (%s; rc %d ret %ld)\n", what,
                hung ? "evictor ran on it" : "returned", h.rc, h.ret);
        CHECK(!"an ECALL accepted a forged argument");
    }
}

/* --- Fixture: one enclave with a live instance, another enclave, a destroyed instance ----- */

static struct {
    struct eleos_enclave *e, *other;
    struct inst real;
    struct entry live[MAX_ENTRIES], gone[MAX_ENTRIES];
    int nlive, ngone;
    struct fake *host_fake, *copy;      /* host memory; copy: the host's private reference */
    uint8_t *host_target, *zeros;       /* sizeof(struct fake) bytes of zeros               */
    struct plant planted_fake, planted_target;
    uint64_t bad_before;                /* eleos_suvm_bad_handles() after setup             */
} F;

static void setup(void) {
    F.e = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    F.other = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    REQUIRE(suvm_t_run(F.e, e_create, &F.real) == 0);
    F.nlive = capture(F.e, F.real.s, F.live);
    struct inst dead = {0};
    REQUIRE(suvm_t_run(F.e, e_create, &dead) == 0);
    F.ngone = capture(F.e, dead.s, F.gone);
    REQUIRE(suvm_t_run(F.e, e_destroy, &dead) == 0);

    size_t sz = sizeof(struct fake);
    F.host_fake = eleos_untrusted_alloc(sz);
    F.copy = malloc(sz);
    F.host_target = eleos_untrusted_alloc(sz);
    F.zeros = calloc(1, sz);
    REQUIRE(F.host_fake && F.copy && F.host_target && F.zeros);
    forge(F.host_fake, F.e, F.real.s);
    memcpy(F.copy, F.host_fake, sz);
    F.planted_fake = (struct plant){F.copy, sz, NULL};
    F.planted_target = (struct plant){F.zeros, sz, NULL};
    REQUIRE(suvm_t_run(F.e, e_plant, &F.planted_fake) == 0);
    REQUIRE(suvm_t_run(F.e, e_plant, &F.planted_target) == 0);
    F.bad_before = eleos_suvm_bad_handles();
}

/* Every entry point the library's host half used, with arg in place of its argument; after
 * each call, intact (if given) says whether the bytes behind arg are still as they were. */
static void all_entries(const char *what, struct eleos_enclave *e, void *arg,
                        bool (*intact)(void)) {
    for (int i = 0; i < F.nlive; i++) {
        expect_refused(what, e, F.live[i].fn, arg, F.live, F.nlive);
        if (intact && !intact()) {
            fprintf(stderr, "  written to: %s\n", what);
            CHECK(!"an ECALL wrote where a forged argument pointed");
        }
    }
}

static bool host_fake_intact(void) {
    return memcmp(F.host_fake, F.copy, sizeof(struct fake)) == 0;
}

static bool planted_fake_intact(void) {
    return suvm_t_run(F.e, e_unchanged, &F.planted_fake) == 1;
}

static bool host_target_intact(void) {
    return memcmp(F.host_target, F.zeros, sizeof(struct fake)) == 0;
}

static bool planted_target_intact(void) {
    return suvm_t_run(F.e, e_unchanged, &F.planted_target) == 1;
}

static void test_fake_instances(void) {
    all_entries("fake instance in host memory", F.e, F.host_fake, host_fake_intact);
    all_entries("fake instance planted in enclave memory", F.e, F.planted_fake.dst,
                planted_fake_intact);
}

/* The stop path's write (and the run's flags) at an address the host picks. */
static void test_stop_targets(void) {
    all_entries("host address as stop target", F.e, F.host_target, host_target_intact);
    all_entries("enclave address as stop target", F.e, F.planted_target.dst,
                planted_target_intact);
}

/* The real instance's own arguments, from an enclave it does not belong to, and from host
 * mode (no ECALL at all). */
static void test_wrong_context(void) {
    for (int i = 0; i < F.nlive; i++) {
        expect_refused("real argument in another enclave", F.other, F.live[i].fn,
                       F.live[i].arg, F.live, F.nlive);
        expect_refused("real argument in host mode", NULL, F.live[i].fn, F.live[i].arg,
                       F.live, F.nlive);
    }
}

static void test_destroyed_instance(void) {
    for (int i = 0; i < F.ngone; i++)
        expect_refused("argument of a destroyed instance", F.e, F.gone[i].fn, F.gone[i].arg,
                       F.gone, F.ngone);
}

static void test_integers(void) {
    static const uintptr_t ints[] = {0, 1, 2, 3, 0x101, 0x10001, 0x4141414141414141ull,
                                     UINTPTR_MAX, (uintptr_t)1 << 62};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        /* Handles are small integers and no secret: one that equals the live instance's
         * own handle is no forgery (it resolves to that instance, as its owner's does). */
        bool real = false;
        for (int i = 0; i < F.nlive; i++)
            real |= (uintptr_t)F.live[i].arg == ints[k];
        if (!real)
            all_entries("integer", F.e, (void *)ints[k], NULL);
    }
    /* Neighbours of the real arguments: another slot, another generation. */
    for (int i = 0; i < F.nlive; i++) {
        uintptr_t a = (uintptr_t)F.live[i].arg;
        all_entries("real argument + 1", F.e, (void *)(a + 1), NULL);
        all_entries("real argument ^ bit 40", F.e, (void *)(a ^ ((uintptr_t)1 << 40)), NULL);
    }
}

/* A host that leaves the evictor running when the enclave destroys the instance: destroy
 * stops it and waits for it, and the host's later stop request is refused. */
static void test_destroy_under_evictor(void) {
    struct inst in = {0};
    REQUIRE(suvm_t_run(F.e, e_create, &in) == 0);
    struct eleos_suvm_evictor *ev = NULL;
    REQUIRE(eleos_suvm_evictor_start(F.e, in.s, &ev) == 0);
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    CHECK_EQ(suvm_t_run(F.e, e_destroy, &in), 0);
    eleos_suvm_evictor_stop(ev);
    refusals++;
    CHECK_EQ(eleos_suvm_evictor_start(F.e, in.s, &ev), -ESRCH);
    refusals++;
}

/* After all that: the real instance reads back intact, its evictor still starts and stops,
 * nothing it was handed was written, and every refusal was counted. */
static void test_real_instance_intact(void) {
    CHECK_EQ(eleos_suvm_bad_handles() - F.bad_before, (uint64_t)refusals);
    CHECK_EQ(suvm_t_run(F.e, e_verify, &F.real), 0);
    struct entry again[MAX_ENTRIES];
    CHECK_EQ(capture(F.e, F.real.s, again), F.nlive);
    CHECK_EQ(suvm_t_run(F.e, e_verify, &F.real), 0);
    CHECK(host_fake_intact() && planted_fake_intact());
    CHECK(host_target_intact() && planted_target_intact());
    CHECK_EQ(suvm_t_run(F.e, e_unplant, &F.planted_fake), 0);
    CHECK_EQ(suvm_t_run(F.e, e_unplant, &F.planted_target), 0);
    CHECK_EQ(suvm_t_run(F.e, e_destroy, &F.real), 0);
    eleos_untrusted_free(F.host_fake, sizeof(struct fake));
    eleos_untrusted_free(F.host_target, sizeof(struct fake));
    free(F.copy);
    free(F.zeros);
    eleos_enclave_destroy(F.other);
    eleos_enclave_destroy(F.e);
}

TEST_MAIN(TEST_CASE(setup), TEST_CASE(test_fake_instances), TEST_CASE(test_stop_targets),
          TEST_CASE(test_wrong_context), TEST_CASE(test_destroyed_instance),
          TEST_CASE(test_integers), TEST_CASE(test_destroy_under_evictor),
          TEST_CASE(test_real_instance_intact))
