/*
 * fork() while another thread uses an enclave: the child must not inherit one of the
 * emulator's locks held by a thread that does not exist in the child. The child may use
 * host memory and create an enclave of its own, whose system calls trap as in the parent
 * (the kernel does not carry Syscall User Dispatch across fork); the parent's enclave is
 * lost there (ECALL -EBADMSG, no memory, trim and evict refused: they would reach the
 * parent's memory). Every child must finish within a bound.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim_testutil.h"

#define CHILDREN 20
#define CHILD_BOUND_MS 5000

struct hammer {
    struct eleos_enclave *e;
    atomic_bool stop;
};

static long in_enclave_alloc(void *arg) {
    struct eleos_enclave *e = arg;
    for (int i = 0; i < 64; i++) {
        void *p = eleos_enclave_malloc(e, 64 + (size_t)i * 512);
        if (p)
            memset(p, i, 64);
        eleos_enclave_free(e, p);
    }
    return 0;
}

/* Keeps the heap lock, the EPC lock and ECALL entry busy in both modes. */
static void *hammer_main(void *arg) {
    struct hammer *h = arg;
    while (!atomic_load_explicit(&h->stop, memory_order_relaxed)) {
        void *p = eleos_enclave_malloc(h->e, 4096 * 3);
        eleos_enclave_free(h->e, p);
        long ret;
        if (eleos_enclave_ecall(h->e, in_enclave_alloc, h->e, &ret) != 0)
            break;
    }
    return NULL;
}

static long trapped_getppid(void *arg) {
    (void)arg;
    return getppid();
}

/* The parent's enclave, seen from the child: lost, and nothing reaches its memory. */
static void child_inherited(struct eleos_enclave *inh, void *page) {
    long ret;
    if (eleos_enclave_ecall(inh, in_enclave_alloc, inh, &ret) != -EBADMSG)
        _exit(5);
    if (eleos_enclave_malloc(inh, 64) != NULL)
        _exit(6);
    if (eleos_enclave_trim(inh, page, 4096) != -EBADMSG ||
        eleos_enclave_evict_page(inh, page) != -EBADMSG)
        _exit(7);
    eleos_enclave_destroy(inh);
}

/* The child: host memory, the inherited enclave, then an enclave of its own, then exit. */
static void child(struct eleos_enclave *inh, void *page) {
    for (int i = 0; i < 100; i++)
        free(malloc(100 + (size_t)i * 100));
    child_inherited(inh, page);
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 4 * MiB);
    struct eleos_enclave *e = NULL;
    if (eleos_enclave_create(&cfg, &e) != 0)
        _exit(3);
    long ret = -1;
    if (eleos_enclave_ecall(e, in_enclave_alloc, e, &ret) != 0 || ret != 0)
        _exit(4);
    struct eleos_enclave_stats st;
    eleos_enclave_stats(e, &st);
    uint64_t before = st.syscall_exits;
    if (eleos_enclave_ecall(e, trapped_getppid, NULL, &ret) != 0 || ret <= 0)
        _exit(8);
    eleos_enclave_stats(e, &st);
    if (st.syscall_exits != before + 1) /* the child's own enclave traps its syscalls */
        _exit(9);
    eleos_enclave_destroy(e);
    _exit(0);
}

static int64_t ms_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 0: exited 0; 1: exited otherwise; 2: still running at the bound (killed). */
static int reap(pid_t pid) {
    int64_t end = ms_now() + CHILD_BOUND_MS;
    int status;
    while (ms_now() < end) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
        usleep(1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 2;
}

static void test_fork_while_busy(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 4 * MiB);
    struct hammer h = {sim_test_create(&cfg), false};
    char *page = eleos_enclave_aligned_alloc(h.e, 4096, 4096);
    REQUIRE(page);
    memset(page, 0x5c, 4096);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, hammer_main, &h) == 0);
    int outcome[3] = {0, 0, 0};
    for (int i = 0; i < CHILDREN; i++) {
        usleep(2000);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0)
            child(h.e, page);
        outcome[reap(pid)]++;
    }
    atomic_store(&h.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    /* The children's trims and destroys of their copies never reached the parent. */
    CHECK(!eleos_enclave_is_lost(h.e));
    CHECK(page[0] == 0x5c && page[4095] == 0x5c);
    eleos_enclave_free(h.e, page);
    eleos_enclave_destroy(h.e);
    fprintf(stderr, "fork: %d children done, %d failed, %d hung\n", outcome[0], outcome[1],
            outcome[2]);
    CHECK_EQ(outcome[0], CHILDREN);
}

TEST_MAIN(TEST_CASE(test_fork_while_busy))
