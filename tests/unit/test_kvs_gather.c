/*
 * test_kvs_gather — the consolidation decision (kvs_gather.h): how many workers hold
 * connections, from their CPU shares and whether the machine has a core to spare. A
 * change holds for its periods, a removal after a saturation waits its (doubling) calm,
 * OFF spreads at once, AUTO gathers on a busy machine and spreads again only after a
 * whole core per gathered-away worker stayed idle; a load that ended (the last connection
 * closed) starts the next on one worker, without the calm the last one earned, unless
 * connections come and go all the time.
 */
#include "harness.h"
#include "kvs_gather.h"

/* Feeds the same period k times; the last answer. */
static unsigned feed(struct kvs_gather *g, enum kvs_gather_mode m, int64_t idle, unsigned *active,
                     unsigned n, const uint32_t *busy, unsigned k) {
    for (unsigned i = 0; i < k; i++)
        *active = kvs_gather_decide(g, m, idle, *active, n, busy);
    return *active;
}

static void test_gathers_light_load(void) {
    struct kvs_gather g = {0};
    uint32_t busy[4] = {200, 200, 200, 200};
    unsigned a = 4;
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 4000, &a, 4, busy, KVS_GATHER_HOLD - 1), 4u);
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 4000, &a, 4, busy, 1), 3u); /* held, then one less */
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 4000, &a, 4, busy, 10 * KVS_GATHER_HOLD), 1u);
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 4000, &a, 4, busy, 10), 1u); /* never below one */
}

static void test_stays_when_it_would_not_fit(void) {
    struct kvs_gather g = {0};
    uint32_t busy[2] = {600, 600}; /* 1.2 cores: one worker could not carry it */
    unsigned a = 2;
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 0, &a, 2, busy, 20), 2u);
}

static void test_saturation_adds_and_calms(void) {
    struct kvs_gather g = {0};
    uint32_t hot[2] = {990, 0}, light[2] = {300, 300};
    unsigned a = 1;
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 0, &a, 2, hot, KVS_GATHER_HOLD), 2u);
    /* the calm: no removal for KVS_GATHER_CALM periods even though the load would fit */
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 0, &a, 2, light, KVS_GATHER_CALM - 1), 2u);
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 0, &a, 2, light, KVS_GATHER_HOLD + 1), 1u);
    /* saturated again: added again, and the calm doubles */
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 0, &a, 2, hot, KVS_GATHER_HOLD), 2u);
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 0, &a, 2, light, 2 * KVS_GATHER_CALM - 1), 2u);
    CHECK_EQ(feed(&g, KVS_GATHER_ON, 0, &a, 2, light, KVS_GATHER_HOLD + 1), 1u);
    for (int i = 0; i < 20; i++) { /* capped */
        feed(&g, KVS_GATHER_ON, 0, &a, 2, hot, KVS_GATHER_HOLD);
        feed(&g, KVS_GATHER_ON, 0, &a, 2, light, KVS_GATHER_CALM_MAX + KVS_GATHER_HOLD);
    }
    CHECK(g.backoff <= KVS_GATHER_CALM_MAX);
}

static void test_auto_follows_idle_cpu(void) {
    struct kvs_gather g = {0};
    uint32_t busy[4] = {100, 100, 100, 100};
    unsigned a = 4;
    /* cores to spare, or no monitor: AUTO keeps every worker */
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, KVS_GATHER_BUSY_IDLE, &a, 4, busy, 20), 4u);
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, -1, &a, 4, busy, 20), 4u);
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 100, &a, 4, busy, 30), 1u);
    /* the CPU gathering leaves idle (under a core per worker given up) does not undo it */
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 2900, &a, 4, busy, 50), 1u);
    /* free: spread, but only after KVS_GATHER_FREE_HOLD periods, all at once */
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 3000, &a, 4, busy, KVS_GATHER_FREE_HOLD - 1), 1u);
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 100, &a, 4, busy, 1), 1u); /* a flicker restarts it */
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 3000, &a, 4, busy, KVS_GATHER_FREE_HOLD - 1), 1u);
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 3000, &a, 4, busy, 1), 4u);
    /* between busy and free: no further gathering, only saturation adds */
    struct kvs_gather h = {0};
    uint32_t two[2] = {100, 100};
    a = 2;
    CHECK_EQ(feed(&h, KVS_GATHER_AUTO, 500, &a, 2, two, 30), 2u);
}

static void test_emptied_starts_over(void) {
    struct kvs_gather g = {0};
    uint32_t hot[2] = {990, 0}, light[2] = {300, 300};
    unsigned a = 1;
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 0, &a, 2, hot, KVS_GATHER_HOLD), 2u);
    CHECK(g.calm > 0); /* the saturated load's calm */
    const int64_t t = 1000000, hold_ms = (int64_t)KVS_GATHER_HOLD * KVS_GATHER_PERIOD_MS;
    a = kvs_gather_emptied(&g, KVS_GATHER_AUTO, a, 2, t);
    CHECK_EQ(a, 1u);
    CHECK_EQ(g.calm, 0u);
    CHECK_EQ(g.backoff, 0u);
    /* the next load fits one worker: it stays there */
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 0, &a, 2, light, 30), 1u);
    /* the next load saturates it: one is added within the hold, as before any load */
    CHECK_EQ(feed(&g, KVS_GATHER_AUTO, 0, &a, 2, hot, KVS_GATHER_HOLD), 2u);
    /* connections that come and go within the hold: the decision (and its calm) stays */
    a = kvs_gather_emptied(&g, KVS_GATHER_AUTO, a, 2, t + hold_ms - 1);
    CHECK_EQ(a, 2u);
    CHECK(g.calm > 0);
    a = kvs_gather_emptied(&g, KVS_GATHER_AUTO, a, 2, t + 2 * hold_ms - 2);
    CHECK_EQ(a, 2u);
    /* quiet for the hold since the last emptying: starts over */
    CHECK_EQ(kvs_gather_emptied(&g, KVS_GATHER_ON, a, 2, t + 3 * hold_ms), 1u);
    /* OFF: every worker; bounds */
    struct kvs_gather h = {0};
    CHECK_EQ(kvs_gather_emptied(&h, KVS_GATHER_OFF, 1, 4, t), 4u);
    CHECK_EQ(kvs_gather_emptied(&h, KVS_GATHER_AUTO, 1, 0, t + 2 * hold_ms), 0u);
    CHECK_EQ(kvs_gather_emptied(&h, KVS_GATHER_AUTO, 1, 1, t + 4 * hold_ms), 1u);
}

static void test_off_and_bounds(void) {
    struct kvs_gather g = {0};
    uint32_t busy[4] = {0, 0, 0, 0};
    unsigned a = 1;
    CHECK_EQ(kvs_gather_decide(&g, KVS_GATHER_OFF, 0, a, 4, busy), 4u); /* at once */
    CHECK_EQ(kvs_gather_decide(&g, KVS_GATHER_ON, 0, 9, 4, busy), 4u);  /* clamped */
    CHECK_EQ(kvs_gather_decide(&g, KVS_GATHER_ON, 0, 1, 1, busy), 1u);
    CHECK_EQ(kvs_gather_decide(&g, KVS_GATHER_ON, 0, 0, 0, busy), 0u);
    CHECK(kvs_gather_mode_name(KVS_GATHER_AUTO) != NULL);
    CHECK(kvs_gather_mode_name(3) == NULL);
    CHECK(kvs_gather_mode_name(-1) == NULL);
}

TEST_MAIN(TEST_CASE(test_gathers_light_load), TEST_CASE(test_stays_when_it_would_not_fit),
          TEST_CASE(test_saturation_adds_and_calms), TEST_CASE(test_auto_follows_idle_cpu),
          TEST_CASE(test_emptied_starts_over), TEST_CASE(test_off_and_bounds))
