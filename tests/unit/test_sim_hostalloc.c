/*
 * The process's allocator is left alone, and host allocations made in enclave mode are
 * caught (sim_hostalloc.c): counted in host_allocs, or fatal with ELEOS_HOST_ALLOC=abort.
 *
 * Normal builds check that malloc is still glibc's (its own accounting, mallinfo2, sees the
 * blocks) and that mimalloc is not in the global scope. Under ASan/TSan the sanitizer owns
 * malloc; the test says so and checks instead that the sanitizer's allocator owns the
 * blocks, and that the count (through the sanitizer's hooks) is the same.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim_testutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
/* From sanitizer/allocator_interface.h, which gcc does not always ship. */
int __sanitizer_get_ownership(const volatile void *p);
#else
#define UNDER_SANITIZER 0
#endif

extern char **environ;

/* Through a volatile pointer, so the compiler cannot drop a malloc/free pair. */
static void *(*volatile host_malloc)(size_t) = malloc;

struct body {
    void *plain, *zeroed, *grown, *dup, *inside;
};

static long allocate(void *arg) {
    struct body *b = arg;
    b->plain = host_malloc(100);                     /* 1 */
    b->zeroed = calloc(4, 32);                       /* 2 */
    b->grown = realloc(b->plain, 4000);              /* 3 */
    b->dup = strdup("libc allocates too");           /* 4: libc's own call to malloc */
    b->inside = eleos_enclave_malloc(eleos_enclave_current(), 100); /* not counted */
    return 0;
}

/* Is p a block of the process's allocator (not mimalloc, not ELRANGE)? */
static bool process_allocator_owns(void *p, size_t size) {
#if UNDER_SANITIZER
    (void)size;
    return __sanitizer_get_ownership(p) != 0;
#else
    /* glibc's accounting of its own in-use bytes grows by the block. */
    struct mallinfo2 before = mallinfo2();
    void *q = host_malloc(size);
    struct mallinfo2 after = mallinfo2();
    bool grew = after.uordblks >= before.uordblks + size;
    free(q);
    return grew && malloc_usable_size(p) > 0;
#endif
}

static void test_process_allocator_untouched(void) {
    if (UNDER_SANITIZER)
        fprintf(stderr, "note: built with a sanitizer, which owns malloc: checking that its "
                        "allocator owns the blocks instead of glibc's accounting\n");
    /* mimalloc serves the enclave heaps from a private copy, out of the global scope. */
    CHECK(dlsym(RTLD_DEFAULT, "mi_malloc") == NULL);
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 4 * MiB);
    struct eleos_enclave *e = sim_test_create(&cfg);
    CHECK(dlsym(RTLD_DEFAULT, "mi_malloc") == NULL);
    void *p = host_malloc(64 << 10);
    REQUIRE(p);
    CHECK(process_allocator_owns(p, 64 << 10));
    CHECK(eleos_enclave_outside(e, p, 64 << 10));
    free(p);
    /* The enclave heap still works, and it is ELRANGE. */
    void *in = eleos_enclave_malloc(e, 1000);
    CHECK(in && eleos_enclave_within(e, in, 1000));
    eleos_enclave_free(e, in);
    eleos_enclave_destroy(e);
}

static void test_enclave_mode_allocations_counted(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 4 * MiB);
    struct eleos_enclave *e = sim_test_create(&cfg);
    /* Host-mode allocations are the host's business: not counted. */
    free(host_malloc(10));
    struct eleos_enclave_stats s;
    eleos_enclave_stats(e, &s);
    CHECK_EQ(s.host_allocs, 0);
    struct body b = {0};
    long ret = -1;
    REQUIRE(eleos_enclave_ecall(e, allocate, &b, &ret) == 0 && ret == 0);
    eleos_enclave_stats(e, &s);
    CHECK_EQ(s.host_allocs, 4);
    /* Each is host memory, still the process allocator's: nothing was redirected. */
    CHECK(b.zeroed && eleos_enclave_outside(e, b.zeroed, 128));
    CHECK(b.grown && eleos_enclave_outside(e, b.grown, 4000));
    CHECK(b.dup && eleos_enclave_outside(e, b.dup, 1) && strcmp(b.dup, "libc allocates too") == 0);
    CHECK(process_allocator_owns(b.grown, 4000));
    CHECK(b.inside && eleos_enclave_within(e, b.inside, 100));
    free(b.zeroed);
    free(b.grown);
    free(b.dup);
    eleos_enclave_free(e, b.inside);
    eleos_enclave_stats_reset(e);
    eleos_enclave_stats(e, &s);
    CHECK_EQ(s.host_allocs, 0);
    eleos_enclave_destroy(e);
}

/* ELEOS_HOST_ALLOC=abort: this program again, in a child, dies at the first one. */
static void test_abort_policy(void) {
    if (getenv("HOSTALLOC_TEST_CHILD")) {
        struct eleos_enclave_config cfg;
        sim_test_config(&cfg, 64 * MiB, 4 * MiB);
        struct eleos_enclave *e = sim_test_create(&cfg);
        struct body b = {0};
        long ret = -1;
        int r = eleos_enclave_ecall(e, allocate, &b, &ret);
        fprintf(stderr, "child: the ECALL returned %d: not stopped\n", r);
        _exit(3);
    }
    char *argv[] = {"test_sim_hostalloc", NULL};
    char *envp[] = {"HOSTALLOC_TEST_CHILD=1", "ELEOS_HOST_ALLOC=abort",
                    "ASAN_OPTIONS=abort_on_error=1:detect_leaks=0",
                    "TSAN_OPTIONS=report_bugs=0", NULL};
    pid_t pid;
    REQUIRE(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp) == 0);
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

/* The abort case first: the child it starts goes straight to it. */
TEST_MAIN(TEST_CASE(test_abort_policy), TEST_CASE(test_process_allocator_untouched),
          TEST_CASE(test_enclave_mode_allocations_counted))
