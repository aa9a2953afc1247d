/*
 * test_kvs_lock — the store lock (struct kvs_lock): mutual exclusion under contention with
 * the wake word inside the lock and outside it, sleepers actually sleeping and being woken
 * (a holder that keeps the lock for milliseconds), and a wake word scribbled by "the host"
 * (spurious wake-ups must not break exclusion). TSan-checked (label concurrent).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "harness.h"
#include "kvs_common.h"

#define THREADS 4
#define ROUNDS  50000

static struct kvs_lock lock;
static long counter;           /* protected by lock, deliberately not atomic */
static _Atomic int inside;     /* threads inside the critical section       */
static _Atomic int overlaps;
static _Atomic uint32_t external_wake;
static _Atomic int scribble;

static void *hammer(void *arg) {
    long rounds = (long)(intptr_t)arg;
    for (long i = 0; i < rounds; i++) {
        kvs_lock_acquire(&lock);
        if (atomic_fetch_add(&inside, 1) != 0)
            atomic_fetch_add(&overlaps, 1);
        counter++;
        atomic_fetch_sub(&inside, 1);
        kvs_lock_release(&lock);
    }
    return NULL;
}

static void run(_Atomic uint32_t *wake, long rounds) {
    kvs_lock_init(&lock, wake);
    counter = 0;
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)rounds) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(counter, THREADS * rounds);
    CHECK_EQ(atomic_load(&overlaps), 0);
    CHECK_EQ(atomic_load(&lock.state), 0);
}

static void test_internal_wake(void) {
    run(NULL, ROUNDS);
}

static void test_external_wake(void) {
    run(&external_wake, ROUNDS);
}

/* Waiters must go to sleep and come back: the holder sleeps 20 ms inside. */
static void *slow_holder(void *arg) {
    (void)arg;
    kvs_lock_acquire(&lock);
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    counter++;
    kvs_lock_release(&lock);
    return NULL;
}

static void test_sleepers(void) {
    kvs_lock_init(&lock, &external_wake);
    counter = 0;
    uint32_t w0 = atomic_load(&external_wake);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, slow_holder, NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(counter, THREADS);
    /* Someone slept (20 ms is far beyond the spin phase), so releases bumped the word. */
    CHECK(atomic_load(&external_wake) != w0);
    CHECK_EQ(atomic_load(&lock.state), 0);
}

/* The wake word belongs to the host: rewriting it all the time only causes spurious
 * wake-ups; exclusion and the count must hold. */
static void *scribbler(void *arg) {
    (void)arg;
    uint32_t x = 1;
    while (atomic_load(&scribble))
        atomic_store(&external_wake, x = x * 1103515245u + 12345u);
    return NULL;
}

static void test_scribbled_wake(void) {
    atomic_store(&scribble, 1);
    pthread_t s;
    REQUIRE(pthread_create(&s, NULL, scribbler, NULL) == 0);
    run(&external_wake, ROUNDS / 5);
    atomic_store(&scribble, 0);
    pthread_join(s, NULL);
}

TEST_MAIN(TEST_CASE(test_internal_wake), TEST_CASE(test_external_wake),
          TEST_CASE(test_sleepers), TEST_CASE(test_scribbled_wake))
