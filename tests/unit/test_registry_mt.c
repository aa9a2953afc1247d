/*
 * The enclave-side registry of live objects (src/common/enclave_registry.c) that ECALL
 * handles are resolved in: a handle resolves only to its own live object of its own owner;
 * made-up, stale and foreign handles resolve to nothing and are counted; removal waits for
 * every reference; a slot is reused under a new generation; a full registry says so.
 * Threads resolve a handle while it is retired and its slot reused (the TSan stage runs it).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "common/enclave_registry.h"
#include "harness.h"

static struct enclave_registry reg;
static int owner_a, owner_b; /* stand-ins for two enclaves */
static int obj1, obj2;

static void test_resolve(void) {
    uint64_t refused = enclave_registry_refused(&reg);
    uint64_t h = enclave_registry_add(&reg, &obj1, &owner_a);
    CHECK(h != 0 && h < (1ull << 63));
    CHECK(enclave_registry_get(&reg, h, &owner_a) == &obj1);
    enclave_registry_put(&reg, h);
    CHECK(enclave_registry_get(&reg, h, &owner_b) == NULL);   /* foreign enclave */
    CHECK(enclave_registry_get(&reg, h, NULL) == NULL);       /* host mode */
    CHECK_EQ(enclave_registry_find(&reg, &obj1, &owner_a), h);
    CHECK_EQ(enclave_registry_find(&reg, &obj1, &owner_b), 0);
    CHECK_EQ(enclave_registry_find(&reg, &obj2, &owner_a), 0);
    static const uint64_t junk[] = {0, 0x10000, 1ull << 63, ENCLAVE_REGISTRY_SLOTS + 1,
                                    UINT64_MAX, 0xffff};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        CHECK(enclave_registry_get(&reg, junk[i], &owner_a) == NULL);
    CHECK(enclave_registry_get(&reg, h ^ (1ull << 20), &owner_a) == NULL); /* generation */
    CHECK(enclave_registry_retire(&reg, h));
    CHECK(!enclave_registry_retire(&reg, h));
    CHECK(enclave_registry_get(&reg, h, &owner_a) == NULL);
    enclave_registry_drain(&reg, h);
    /* The slot comes back under a new generation: the old handle stays dead. */
    uint64_t h2 = enclave_registry_add(&reg, &obj2, &owner_a);
    CHECK(h2 != h && (h2 & 0xffff) == (h & 0xffff));
    CHECK(enclave_registry_get(&reg, h, &owner_a) == NULL);
    CHECK(enclave_registry_get(&reg, h2, &owner_a) == &obj2);
    enclave_registry_put(&reg, h2);
    CHECK_EQ(enclave_registry_refused(&reg) - refused, 13);
    CHECK(enclave_registry_retire(&reg, h2));
    enclave_registry_drain(&reg, h2);
}

static void test_full(void) {
    static uint64_t h[ENCLAVE_REGISTRY_SLOTS];
    for (unsigned i = 0; i < ENCLAVE_REGISTRY_SLOTS; i++) {
        h[i] = enclave_registry_add(&reg, &obj1, &owner_a);
        CHECK(h[i] != 0);
    }
    CHECK_EQ(enclave_registry_add(&reg, &obj2, &owner_a), 0);
    /* A retired slot is not reusable before its drain. */
    CHECK(enclave_registry_retire(&reg, h[7]));
    CHECK_EQ(enclave_registry_add(&reg, &obj2, &owner_a), 0);
    enclave_registry_drain(&reg, h[7]);
    uint64_t again = enclave_registry_add(&reg, &obj2, &owner_a);
    CHECK(again != 0 && again != h[7]);
    h[7] = again;
    for (unsigned i = 0; i < ENCLAVE_REGISTRY_SLOTS; i++) {
        CHECK(enclave_registry_retire(&reg, h[i]));
        enclave_registry_drain(&reg, h[i]);
    }
}

/* Resolvers hold a reference while they mark themselves inside; the remover's drain must
 * not return while one is, and after it nobody resolves the old handle again, not even
 * once its slot holds another object. */
static _Atomic uint64_t shared_handle;
static _Atomic int inside, stop, wrong;

static void *resolver(void *arg) {
    (void)arg;
    uint64_t h = atomic_load(&shared_handle);
    while (!atomic_load(&stop)) {
        int *o = enclave_registry_get(&reg, h, &owner_a);
        if (!o)
            continue;
        atomic_fetch_add(&inside, 1);
        if (o != &obj1 || *o != 1)
            atomic_store(&wrong, 1);
        atomic_fetch_sub(&inside, 1);
        enclave_registry_put(&reg, h);
    }
    return NULL;
}

static void test_retire_while_resolving(void) {
    for (int round = 0; round < 50; round++) {
        obj1 = 1;
        uint64_t h = enclave_registry_add(&reg, &obj1, &owner_a);
        REQUIRE(h);
        atomic_store(&shared_handle, h);
        atomic_store(&stop, 0);
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            REQUIRE(pthread_create(&t[i], NULL, resolver, NULL) == 0);
        nanosleep(&(struct timespec){0, 200000}, NULL);
        CHECK(enclave_registry_retire(&reg, h));
        enclave_registry_drain(&reg, h);
        CHECK_EQ(atomic_load(&inside), 0);
        obj1 = 0; /* "freed": a resolver that still reached it would see 0 */
        uint64_t h2 = enclave_registry_add(&reg, &obj2, &owner_a);
        CHECK(h2 != 0 && h2 != h);
        nanosleep(&(struct timespec){0, 200000}, NULL);
        atomic_store(&stop, 1);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        CHECK(enclave_registry_retire(&reg, h2));
        enclave_registry_drain(&reg, h2);
    }
    CHECK_EQ(atomic_load(&wrong), 0);
}

TEST_MAIN(TEST_CASE(test_resolve), TEST_CASE(test_full), TEST_CASE(test_retire_while_resolving))
