/*
 * ioq_trial.c — AUTO's URING/WORKER choice by trial (ioq_trial.h). A schedule of phases:
 * IDLE until the next trial is due; BASE measures the incumbent for one window; SETTLE
 * lets the switch to the candidate (its migrations) pass; MEASURE measures the candidate
 * for one window; a worker that won goes through BACK and CONFIRM (URING measured again)
 * before it is kept. Lost trials space the next ones out (doubling gap), so a machine
 * where the candidate never wins pays for a trial rarely.
 */
#include "ioq/ioq_trial.h"

/* Completions per second since the mark, at most RATE_MAX (so that rate * 100 fits). */
#define RATE_MAX 1000000000000ull

static uint64_t rate_of(const struct ioq_trial *t, uint64_t now_ns, uint64_t done) {
    uint64_t ns = now_ns - t->mark_ns, n = done - t->mark_done;
    if (!ns || n > RATE_MAX / 1000)
        return RATE_MAX;
    uint64_t r = n * 1000000000ull / ns;
    return r > RATE_MAX ? RATE_MAX : r;
}

static void mark(struct ioq_trial *t, enum ioq_trial_phase p, uint64_t now_ns, uint64_t done) {
    t->phase = p;
    t->mark_ns = now_ns;
    t->mark_done = done;
}

static void schedule(struct ioq_trial *t, uint64_t now_ns, uint64_t gap_ns) {
    t->gap_ns = gap_ns;
    t->next_ns = now_ns + gap_ns;
    t->phase = IOQ_TRIAL_IDLE;
}

void ioq_trial_init(struct ioq_trial *t, uint64_t now_ns) {
    *t = (struct ioq_trial){.phase = IOQ_TRIAL_IDLE};
    schedule(t, now_ns, IOQ_TRIAL_GAP_NS);
}

static bool beats(const struct ioq_trial *t, uint64_t rate, uint64_t base) {
    unsigned pct = t->to == ELEOS_IOQ_EXEC_WORKER ? IOQ_TRIAL_WORKER_GAIN : IOQ_TRIAL_URING_LOSS;
    return rate * 100 >= base * pct;
}

static enum eleos_ioq_exec verdict(struct ioq_trial *t, uint64_t now_ns, bool won) {
    t->trials++;
    if (won) {
        t->won++;
        schedule(t, now_ns, IOQ_TRIAL_GAP_NS);
        return t->to;
    }
    uint64_t gap = t->gap_ns * 2;
    schedule(t, now_ns, gap > IOQ_TRIAL_GAP_MAX_NS ? IOQ_TRIAL_GAP_MAX_NS : gap);
    return t->from;
}

/* The candidate's window is over: a loss ends the trial; a worker's win goes back to URING
 * to be confirmed; URING's win is kept at once (it is the cheaper executor). */
static enum eleos_ioq_exec judge(struct ioq_trial *t, uint64_t now_ns, uint64_t done) {
    uint64_t rate = rate_of(t, now_ns, done);
    bool won = beats(t, rate, t->base_rate);
    if (!won || t->to != ELEOS_IOQ_EXEC_WORKER)
        return verdict(t, now_ns, won);
    t->cand_rate = rate;
    mark(t, IOQ_TRIAL_BACK, now_ns, done);
    return t->from;
}

/* URING's second window is over: the worker must beat the better of the two. */
static enum eleos_ioq_exec confirm(struct ioq_trial *t, uint64_t now_ns, uint64_t done) {
    uint64_t again = rate_of(t, now_ns, done);
    uint64_t base = again > t->base_rate ? again : t->base_rate;
    return verdict(t, now_ns, beats(t, t->cand_rate, base));
}

enum eleos_ioq_exec ioq_trial_step(struct ioq_trial *t, uint64_t now_ns, uint64_t done,
                                   enum eleos_ioq_exec cur, bool worker_ok) {
    if (cur != ELEOS_IOQ_EXEC_URING && cur != ELEOS_IOQ_EXEC_WORKER)
        return cur;
    /* A trial under way is judged on its rates: the readings during it describe it. */
    if (!worker_ok && (t->phase == IOQ_TRIAL_IDLE || t->phase == IOQ_TRIAL_BASE)) {
        if (t->phase == IOQ_TRIAL_BASE)
            schedule(t, now_ns, t->gap_ns);
        return ELEOS_IOQ_EXEC_URING;
    }
    if (now_ns < t->mark_ns || done < t->mark_done) /* time or count went back: restart */
        mark(t, t->phase, now_ns, done);
    bool on_cand = t->phase == IOQ_TRIAL_SETTLE || t->phase == IOQ_TRIAL_MEASURE;
    bool on_from = t->phase == IOQ_TRIAL_BACK || t->phase == IOQ_TRIAL_CONFIRM;
    if ((on_cand && cur != t->to) || (on_from && cur != t->from)) {
        schedule(t, now_ns, t->gap_ns); /* the switch did not happen: nothing to judge */
        return cur;
    }
    switch (t->phase) {
    case IOQ_TRIAL_IDLE:
        if (now_ns >= t->next_ns)
            mark(t, IOQ_TRIAL_BASE, now_ns, done);
        return cur;
    case IOQ_TRIAL_BASE:
        if (now_ns - t->mark_ns < IOQ_TRIAL_WINDOW_NS)
            return cur;
        t->base_rate = rate_of(t, now_ns, done);
        if (t->base_rate < IOQ_TRIAL_MIN_RATE) { /* too light to tell: ask again later */
            schedule(t, now_ns, t->gap_ns);
            return cur;
        }
        t->from = cur;
        t->to = cur == ELEOS_IOQ_EXEC_URING ? ELEOS_IOQ_EXEC_WORKER : ELEOS_IOQ_EXEC_URING;
        mark(t, IOQ_TRIAL_SETTLE, now_ns, done);
        return t->to;
    case IOQ_TRIAL_SETTLE:
        if (now_ns - t->mark_ns >= IOQ_TRIAL_SETTLE_NS)
            mark(t, IOQ_TRIAL_MEASURE, now_ns, done);
        return t->to;
    case IOQ_TRIAL_MEASURE:
        if (now_ns - t->mark_ns < IOQ_TRIAL_WINDOW_NS)
            return t->to;
        return judge(t, now_ns, done);
    case IOQ_TRIAL_BACK:
        if (now_ns - t->mark_ns >= IOQ_TRIAL_SETTLE_NS)
            mark(t, IOQ_TRIAL_CONFIRM, now_ns, done);
        return t->from;
    case IOQ_TRIAL_CONFIRM:
        if (now_ns - t->mark_ns < IOQ_TRIAL_WINDOW_NS)
            return t->from;
        return confirm(t, now_ns, done);
    }
    return cur;
}
