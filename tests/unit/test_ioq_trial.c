/*
 * test_ioq_trial — AUTO's URING/WORKER choice by trial (src/ioq/ioq_trial.h), driven with
 * made-up completion rates in 1 ms steps: no trial before its gap; a worker is kept only
 * when it completes clearly more than URING before and after it (a load rising during the
 * trial is not the worker's doing), the kernel whenever it is nearly as fast; lost trials
 * space the next ones out up to the cap; a light load, a host that reports no free core, and
 * executors the trial does not choose between start no trial; a trial under way is judged
 * on its rates whatever the readings say.
 */
#include "harness.h"
#include "ioq/ioq_trial.h"

#define MS 1000000ull

struct sim {
    struct ioq_trial t;
    uint64_t now, done;
    enum eleos_ioq_exec cur;
    unsigned switches;
};

static void sim_init(struct sim *s, enum eleos_ioq_exec cur) {
    *s = (struct sim){.now = 1000 * MS, .cur = cur};
    ioq_trial_init(&s->t, s->now);
}

/* Runs ms milliseconds at the given rates (completions per second) on each executor. */
static void run(struct sim *s, uint64_t ms, uint64_t uring_rate, uint64_t worker_rate,
                bool worker_ok) {
    for (uint64_t i = 0; i < ms; i++) {
        s->now += MS;
        s->done += (s->cur == ELEOS_IOQ_EXEC_WORKER ? worker_rate : uring_rate) / 1000;
        enum eleos_ioq_exec e = ioq_trial_step(&s->t, s->now, s->done, s->cur, worker_ok);
        if (e != s->cur)
            s->switches++;
        s->cur = e;
    }
}

static void test_no_trial_before_the_gap(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    run(&s, IOQ_TRIAL_GAP_NS / MS - 1, 50000, 100000, true);
    CHECK_EQ(s.switches, 0u);
    CHECK_EQ(s.t.trials, 0u);
}

static void test_faster_worker_is_kept(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    run(&s, 400, 50000, 60000, true); /* 1.2x: over the 10 % the worker must gain */
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_WORKER);
    CHECK_EQ(s.t.trials, 1u);
    CHECK_EQ(s.t.won, 1u);
    CHECK_EQ(s.switches, 3u); /* there, back to confirm, there again */
    CHECK(s.t.base_rate >= 49000 && s.t.base_rate <= 51000);
}

/* The load grows during the trial: the worker beats the first URING window but not the
 * second, so it is not kept. */
static void test_rising_load_is_not_the_workers(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    for (int i = 0; i < 1000 && s.t.phase != IOQ_TRIAL_SETTLE; i++)
        run(&s, 1, 40000, 40000, true);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_WORKER);
    run(&s, 200, 60000, 50000, true); /* 1.25x the base, 0.83x URING's second window */
    CHECK_EQ(s.t.trials, 1u);
    CHECK_EQ(s.t.won, 0u);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_URING);
    CHECK_EQ(s.switches, 2u);
}

static void test_slightly_faster_worker_is_not(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    run(&s, 400, 50000, 53000, true); /* 1.06x: not worth a polling core */
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_URING);
    CHECK_EQ(s.t.trials, 1u);
    CHECK_EQ(s.t.won, 0u);
    CHECK_EQ(s.switches, 2u); /* there and back, no confirmation needed */
    CHECK_EQ(s.t.gap_ns, 2 * IOQ_TRIAL_GAP_NS);
}

static void test_lost_trials_space_out_to_the_cap(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    run(&s, 60000, 50000, 30000, true); /* a minute where the worker always loses */
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_URING);
    CHECK_EQ(s.t.won, 0u);
    CHECK_EQ(s.t.gap_ns, IOQ_TRIAL_GAP_MAX_NS);
    /* 0.2+0.4+0.8+1.6+3.2 s, then every 5 s: about 16 trials, not one per gap of 0.2 s */
    CHECK(s.t.trials >= 12 && s.t.trials <= 18);
}

static void test_kernel_kept_when_nearly_as_fast(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_WORKER);
    run(&s, 400, 97000, 100000, true); /* 0.97 of the worker: the cheaper one wins */
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_URING);
    CHECK_EQ(s.t.won, 1u);
    CHECK_EQ(s.switches, 1u); /* the cheaper one is kept without a confirmation */
    sim_init(&s, ELEOS_IOQ_EXEC_WORKER);
    run(&s, 400, 80000, 100000, true);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_WORKER);
    CHECK_EQ(s.t.won, 0u);
}

static void test_light_load_runs_no_trial(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    run(&s, 3000, IOQ_TRIAL_MIN_RATE / 2, 100000, true);
    CHECK_EQ(s.switches, 0u);
    CHECK_EQ(s.t.trials, 0u);
    CHECK_EQ(s.t.gap_ns, IOQ_TRIAL_GAP_NS); /* not doubled: nothing was lost */
}

static void test_no_free_core(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    run(&s, 3000, 50000, 100000, false);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_URING);
    CHECK_EQ(s.t.trials, 0u);
    /* On WORKER with the worker gone: back to URING at once. */
    sim_init(&s, ELEOS_IOQ_EXEC_WORKER);
    run(&s, 1, 50000, 100000, false);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_URING);
}

static void test_trial_under_way_is_judged(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    /* Base and the switch with a free core, then readings of none: still judged. */
    run(&s, IOQ_TRIAL_GAP_NS / MS + IOQ_TRIAL_WINDOW_NS / MS + 1, 50000, 80000, true);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_WORKER);
    CHECK_EQ(s.t.phase, IOQ_TRIAL_SETTLE);
    for (int i = 0; i < 100 && !s.t.trials; i++)
        run(&s, 1, 50000, 80000, false);
    CHECK_EQ(s.t.trials, 1u);
    CHECK_EQ(s.t.won, 1u);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_WORKER);
}

static void test_other_executors_untouched(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_SQPOLL);
    run(&s, 1000, 50000, 100000, true);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_SQPOLL);
    sim_init(&s, ELEOS_IOQ_EXEC_BATCH);
    run(&s, 1000, 50000, 100000, false);
    CHECK_EQ(s.cur, ELEOS_IOQ_EXEC_BATCH);
    CHECK_EQ(s.switches, 0u);
}

/* A clock or a count that goes back (a new base after a restart of the counters) starts
 * the window again instead of judging on a wrapped difference. */
static void test_clock_or_count_back(void) {
    struct sim s;
    sim_init(&s, ELEOS_IOQ_EXEC_URING);
    run(&s, IOQ_TRIAL_GAP_NS / MS + 5, 50000, 60000, true);
    CHECK_EQ(s.t.phase, IOQ_TRIAL_BASE);
    enum eleos_ioq_exec e = ioq_trial_step(&s.t, s.now - 100 * MS, s.done, s.cur, true);
    CHECK_EQ(e, ELEOS_IOQ_EXEC_URING);
    e = ioq_trial_step(&s.t, s.now, 0, s.cur, true);
    CHECK_EQ(e, ELEOS_IOQ_EXEC_URING);
    CHECK_EQ(s.t.trials, 0u);
}

TEST_MAIN(TEST_CASE(test_no_trial_before_the_gap), TEST_CASE(test_faster_worker_is_kept),
          TEST_CASE(test_rising_load_is_not_the_workers),
          TEST_CASE(test_slightly_faster_worker_is_not),
          TEST_CASE(test_lost_trials_space_out_to_the_cap),
          TEST_CASE(test_kernel_kept_when_nearly_as_fast), TEST_CASE(test_light_load_runs_no_trial),
          TEST_CASE(test_no_free_core), TEST_CASE(test_trial_under_way_is_judged),
          TEST_CASE(test_other_executors_untouched), TEST_CASE(test_clock_or_count_back))
