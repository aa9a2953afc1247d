/*
 * test_ioq_mod — the moderated wait's ask (src/ioq/ioq_mod.h), driven with made-up rounds:
 * operations count while young and age out after IOQ_MOD_WAVES - 1 waits (released late
 * or twice, nothing underflows); a closed loop's round is asked for whole once the hold is
 * over, and kept while it fills; a sparse load's full asks that miss fall back to what came
 * and space out up to the cap; a full wait that fills resets the spacing; an unmoderated
 * wait teaches the fallback; a long-lived operation (a listener's accept) is never waited
 * for once it is old.
 */
#include "harness.h"
#include "ioq/ioq_mod.h"

#define ROUND 16u

/* A loop of passes: each a wait that gets `got` completions (the oldest of the last pass's
 * operations), then `queued` operations queued (kept in w for release by the next pass). */
struct loop {
    struct ioq_mod m;
    uint32_t w[ROUND];
    unsigned nw;
    unsigned misses, full_waits;
};

static unsigned wait_pass(struct loop *l, unsigned got, unsigned queued) {
    ioq_mod_next_wave(&l->m);
    unsigned want = ioq_mod_want(&l->m, 0);
    /* the wait returns with all that came: fewer than asked once the bound runs out */
    if (got >= want && l->m.full)
        l->full_waits++;
    if (got < want)
        l->misses++;
    for (unsigned i = 0; i < got && i < l->nw; i++)
        ioq_mod_released(&l->m, l->w[i]);
    ioq_mod_learn(&l->m, got, want);
    l->nw = 0;
    for (unsigned i = 0; i < queued && i < ROUND; i++)
        l->w[l->nw++] = ioq_mod_queued(&l->m);
    return want;
}

static void test_young_operations_age_out(void) {
    struct ioq_mod m;
    ioq_mod_init(&m);
    uint32_t a = ioq_mod_queued(&m), b = ioq_mod_queued(&m);
    CHECK_EQ(ioq_mod_young(&m), 2u);
    ioq_mod_released(&m, a);
    CHECK_EQ(ioq_mod_young(&m), 1u);
    for (unsigned i = 0; i < IOQ_MOD_WAVES - 1; i++) {
        ioq_mod_next_wave(&m);
        CHECK_EQ(ioq_mod_young(&m), 1u); /* still young for the waits after it */
    }
    ioq_mod_next_wave(&m);
    CHECK_EQ(ioq_mod_young(&m), 0u);
    ioq_mod_queued(&m); /* reuses b's bucket */
    ioq_mod_released(&m, b); /* released after it aged out: the newer one still counts */
    CHECK_EQ(ioq_mod_young(&m), 1u);
    CHECK_EQ(m.young[m.wave % IOQ_MOD_WAVES], 1u);
}

static void test_closed_loop_gets_its_round(void) {
    struct loop l = {0};
    ioq_mod_init(&l.m);
    unsigned want = 0;
    for (int i = 0; i < 40; i++)
        want = wait_pass(&l, ROUND, ROUND);
    CHECK(l.m.full);
    CHECK_EQ(want, ROUND);
    CHECK_EQ(l.misses, 0u);
    CHECK(l.full_waits >= 30);
}

/* Half the round comes each wait (an open load): each full ask misses, the fallback holds
 * longer each time, up to the cap; a round that comes back whole resets the spacing. */
static void test_sparse_load_spaces_its_full_asks(void) {
    struct loop l = {0};
    ioq_mod_init(&l.m);
    for (int i = 0; i < 2000; i++)
        wait_pass(&l, ROUND / 2, ROUND);
    /* holds of 8, 16, ... 256, then 256 each: far fewer misses than waits */
    CHECK(l.misses >= 6 && l.misses <= 14);
    CHECK_EQ(l.m.backoff, IOQ_MOD_HOLD_MAX);
    CHECK_EQ(l.m.expect, ROUND / 2);
    for (int i = 0; i < 300 && !l.m.full; i++)
        wait_pass(&l, ROUND, ROUND); /* the whole round again: the hold runs out */
    CHECK(l.m.full);
    wait_pass(&l, ROUND, ROUND);
    CHECK_EQ(l.m.backoff, IOQ_MOD_HOLD_MIN);
}

static void test_unmoderated_wait_teaches(void) {
    struct ioq_mod m;
    ioq_mod_init(&m);
    ioq_mod_learn(&m, 12, 0);
    CHECK_EQ(m.expect, 12u);
    CHECK(!m.full);
    CHECK_EQ(ioq_mod_want(&m, 0), 12u);
    ioq_mod_learn(&m, 3, 0); /* not moderated: no miss, nothing cut */
    CHECK_EQ(m.expect, 12u);
}

/* A listener's accept queued once and never completing: waited for only while young. */
static void test_long_lived_operation_not_waited_for(void) {
    struct loop l = {0};
    ioq_mod_init(&l.m);
    (void)ioq_mod_queued(&l.m);
    for (int i = 0; i < 40; i++)
        wait_pass(&l, 4, 4);
    CHECK(l.m.full);
    CHECK_EQ(ioq_mod_want(&l.m, 0), 4u);
    CHECK(l.misses <= 2);
}

TEST_MAIN(TEST_CASE(test_young_operations_age_out), TEST_CASE(test_closed_loop_gets_its_round),
          TEST_CASE(test_sparse_load_spaces_its_full_asks),
          TEST_CASE(test_unmoderated_wait_teaches),
          TEST_CASE(test_long_lived_operation_not_waited_for))
