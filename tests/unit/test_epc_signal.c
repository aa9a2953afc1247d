/*
 * Application signal handlers that touch enclave memory, delivered at the worst moments:
 * while the thread handles an EPC fault, and while it holds the EPC lock in
 * eleos_enclave_trim. The handler reads a page that is probably not resident, so it needs
 * the EPC lock itself. The process must survive, data must stay right, and nothing may
 * deadlock (a watchdog fails the test instead of hanging).
 *
 * Not labelled "concurrent": ThreadSanitizer runs every handler with all signals blocked,
 * and a handler that faults with SIGSEGV blocked is killed by the kernel (docs/emulator.md).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim_testutil.h"

#define PAGE 4096
#define PAGES 256          /* 1 MiB, four times the EPC below */
#define RUN_MS 1500
#define WATCHDOG_MS 20000

static uint8_t *area;      /* PAGES pages, page i filled with (uint8_t)i */
static atomic_ulong handled, wrong;
static atomic_bool stop;

static void on_usr1(int sig) {
    (void)sig;
    static _Thread_local unsigned next = 7;
    next = next * 1103515245u + 12345u;
    unsigned i = (next >> 8) % PAGES;
    if (((volatile uint8_t *)area)[(size_t)i * PAGE + 100] != (uint8_t)i)
        atomic_fetch_add(&wrong, 1);
    atomic_fetch_add(&handled, 1);
}

static int64_t ms_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the enclave: walks every page (most of them fault) and checks its bytes. */
static long walk(void *arg) {
    (void)arg;
    long bad = 0;
    for (size_t i = 0; i < PAGES; i++)
        bad += ((volatile uint8_t *)area)[i * PAGE + 5] != (uint8_t)i;
    return bad;
}

struct target {
    pthread_t thread;
    atomic_bool ready;
};

static void *signaller(void *arg) {
    struct target *t = arg;
    while (!atomic_load(&t->ready))
        ;
    while (!atomic_load(&stop)) {
        pthread_kill(t->thread, SIGUSR1);
        usleep(20);
    }
    return NULL;
}

struct job {
    struct eleos_enclave *e;
    struct target *t;
    bool trim;
    long bad;
    atomic_bool done;
};

/* Faults pages in (and, with trim, trims a scratch range in the enclave) until told to stop. */
static long trim_loop(void *arg) {
    struct job *j = arg;
    uint8_t *scratch = eleos_enclave_aligned_alloc(j->e, PAGE, 16 * PAGE);
    if (!scratch)
        return -1;
    while (!atomic_load(&stop)) {
        memset(scratch, 1, 16 * PAGE);
        if (eleos_enclave_trim(j->e, scratch, 16 * PAGE) != 0)
            return -2;
    }
    eleos_enclave_free(j->e, scratch);
    return 0;
}

static void *worker(void *arg) {
    struct job *j = arg;
    atomic_store(&j->t->ready, true);
    while (!atomic_load(&stop)) {
        long r = 0;
        int rc = eleos_enclave_ecall(j->e, j->trim ? trim_loop : walk, j, &r);
        if (rc || r)
            j->bad += rc ? 1000 : r;
    }
    atomic_store(&j->done, true);
    return NULL;
}

static void run(bool trim) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 256 * 1024);
    struct eleos_enclave *e = sim_test_create(&cfg);
    area = eleos_enclave_aligned_alloc(e, PAGE, (size_t)PAGES * PAGE);
    REQUIRE(area);
    for (size_t i = 0; i < PAGES; i++)
        memset(area + i * PAGE, (int)i, PAGE);
    atomic_store(&stop, false);
    atomic_store(&handled, 0);
    atomic_store(&wrong, 0);
    struct target t = {0};
    struct job j = {e, &t, trim, 0, false};
    pthread_t sig;
    REQUIRE(pthread_create(&t.thread, NULL, worker, &j) == 0);
    REQUIRE(pthread_create(&sig, NULL, signaller, &t) == 0);
    int64_t start = ms_now();
    while (ms_now() - start < RUN_MS)
        usleep(10000);
    atomic_store(&stop, true);
    while (!atomic_load(&j.done)) {
        if (ms_now() - start > WATCHDOG_MS) {
            fprintf(stderr, "FAIL: the enclave thread is stuck (deadlock with a signal)\n");
            _exit(1);
        }
        usleep(10000);
    }
    pthread_join(sig, NULL);
    pthread_join(t.thread, NULL);
    fprintf(stderr, "%s: %lu handlers ran, %lu read wrong data, worker errors %ld\n",
            trim ? "trim" : "faults", atomic_load(&handled), atomic_load(&wrong), j.bad);
    CHECK(atomic_load(&handled) > 100);
    CHECK_EQ(atomic_load(&wrong), 0);
    CHECK_EQ(j.bad, 0);
    eleos_enclave_free(e, area);
    eleos_enclave_destroy(e);
}

static void install_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
}

static void test_signal_during_faults(void) {
    install_handler();
    run(false);
}

static void test_signal_during_trim(void) {
    install_handler();
    run(true);
}

TEST_MAIN(TEST_CASE(test_signal_during_faults), TEST_CASE(test_signal_during_trim))
