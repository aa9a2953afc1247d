/*
 * ioq_trial.h — AUTO's choice between the kernel (URING) and a polling worker (WORKER) by
 * trial: run the other executor for a short while and keep it only if the queue completed
 * clearly more per second on it.
 *
 * A worker that looks better is confirmed before it is kept: URING is measured again after
 * it (A-B-A), and the worker must beat the better of the two URING windows, so a load that
 * grows during a trial does not make the worker look faster than it is.
 *
 * Why measure instead of reading idle CPU alone: whether a poller pays depends on how the
 * app waits, not only on whether a core is idle. A latency-bound connection (one request in
 * flight) gains from a worker that keeps the round trip out of the scheduler even on two
 * vCPUs; a throughput-bound server loses with it as soon as the poller takes a core the app
 * needed. The idle CPU still decides whether a trial may run at all (the caller's
 * worker_ok); the rate decides the rest.
 *
 * Pure: time and the completion count come in, the executor to be on comes out, so the
 * unit test drives it with made-up rates. The counts are the queue's own (enclave memory).
 */
#ifndef ELEOS_IOQ_TRIAL_H
#define ELEOS_IOQ_TRIAL_H

#include <stdbool.h>
#include <stdint.h>

#include "eleos/ioq.h"

#define IOQ_TRIAL_WINDOW_NS 25000000ull  /* a rate is measured over this long            */
#define IOQ_TRIAL_SETTLE_NS 5000000ull   /* after a switch, not measured (migration)     */
#define IOQ_TRIAL_GAP_NS 200000000ull    /* first gap between trials, and after a win    */
#define IOQ_TRIAL_GAP_MAX_NS 5000000000ull /* a lost trial doubles the gap up to this     */
#define IOQ_TRIAL_MIN_RATE 2000u         /* completions per second below which none runs */
/* A worker must beat the kernel by 10 % to be kept (it spends a core polling); the kernel
 * is kept unless it is 5 % slower than the worker. */
#define IOQ_TRIAL_WORKER_GAIN 110u
#define IOQ_TRIAL_URING_LOSS 95u

enum ioq_trial_phase {
    IOQ_TRIAL_IDLE,    /* until the next trial is due                                     */
    IOQ_TRIAL_BASE,    /* measuring the incumbent                                         */
    IOQ_TRIAL_SETTLE,  /* on the candidate, not measured yet                              */
    IOQ_TRIAL_MEASURE, /* measuring the candidate                                         */
    IOQ_TRIAL_BACK,    /* a worker that looked better: back on URING, not measured yet    */
    IOQ_TRIAL_CONFIRM, /* measuring URING again: a load that rose during the trial is not
                          the worker's doing                                              */
};

struct ioq_trial {
    enum ioq_trial_phase phase;
    enum eleos_ioq_exec from, to;  /* during a trial: the incumbent and the candidate   */
    uint64_t mark_ns, mark_done;   /* start of the window being measured                */
    uint64_t base_rate;            /* the incumbent's completions per second            */
    uint64_t cand_rate;            /* the candidate's, while confirming                 */
    uint64_t gap_ns, next_ns;      /* no trial starts before next_ns                    */
    uint64_t trials, won;          /* trials run, and of them those the candidate won   */
};

/* Starts the schedule at now_ns: the first trial after IOQ_TRIAL_GAP_NS. */
void ioq_trial_init(struct ioq_trial *t, uint64_t now_ns);

/* One step at now_ns with done completions so far, on executor cur (URING or WORKER; any
 * other is returned unchanged). worker_ok: a worker may run (one exists, a core is free).
 * Returns the executor to be on now. Without worker_ok no trial starts (one measuring its
 * base ends) and the answer is URING; a candidate already running is still judged. */
enum eleos_ioq_exec ioq_trial_step(struct ioq_trial *t, uint64_t now_ns, uint64_t done,
                                   enum eleos_ioq_exec cur, bool worker_ok);

#endif
