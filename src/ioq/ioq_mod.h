/*
 * ioq_mod.h — how many completions a moderated wait holds out for (eleos/ioq.h,
 * "Completion moderation").
 *
 * A closed-loop server's round is every operation it queued in its last few passes: each
 * connection's receive is posted after its reply, and the request comes back within a
 * round. So a wait first asks for every operation queued in the last IOQ_MOD_WAVES - 1
 * waits that is still outstanding ("full"). Operations older than that (a listener's
 * accept, an idle connection's receive) are not waited for: they age out instead of
 * costing a miss each wait.
 *
 * When a full wait runs out of its bound (an open or sparse load: what was queued does not
 * all come back within a round), the ask falls back to what the wait did get and grows
 * only with what later waits deliver; the full ask is tried again after a hold that doubles
 * with each full miss (up to IOQ_MOD_HOLD_MAX waits) and shrinks back once a full wait
 * fills. A server at its round misses only where the load really changes.
 *
 * Pure, enclave memory only: the queue feeds it its own submissions, releases, waits and
 * what each wait got; no host value enters, so a host cannot steer it beyond the latency
 * moderation_ns bounds anyway.
 */
#ifndef ELEOS_IOQ_MOD_H
#define ELEOS_IOQ_MOD_H

#include <stdbool.h>
#include <stdint.h>

#define IOQ_MOD_WAVES 4u     /* an operation is young for the waits after it, up to 3 */
#define IOQ_MOD_HOLD_MIN 8u  /* waits at the fallback before the full ask is tried again */
#define IOQ_MOD_HOLD_MAX 256u

struct ioq_mod {
    uint32_t wave;                    /* waits so far                                    */
    uint32_t young[IOQ_MOD_WAVES];    /* outstanding operations queued per recent wave   */
    bool full;                        /* asking for every young operation                */
    uint32_t expect;                  /* the fallback: what recent waits delivered       */
    uint32_t hold, backoff;           /* waits left at the fallback, and the next hold   */
};

void ioq_mod_init(struct ioq_mod *m);

/* Outstanding operations queued in the waves still young. */
unsigned ioq_mod_young(const struct ioq_mod *m);

/* An operation was queued: returns the wave to keep with it for ioq_mod_released. */
uint32_t ioq_mod_queued(struct ioq_mod *m);

/* An operation queued in wave w left the queue (completed, or never issued). */
void ioq_mod_released(struct ioq_mod *m, uint32_t w);

/* A wait begins: operations that were queued before the last IOQ_MOD_WAVES - 1 waits are
 * no longer young. */
void ioq_mod_next_wave(struct ioq_mod *m);

/* How many completions to hold out for, n being reaped already (before the caller's
 * min, max and outstanding caps). */
unsigned ioq_mod_want(const struct ioq_mod *m, unsigned n);

/* What a wait got: n completions for an ask of want (0: the wait was not moderated; its
 * n still teaches the fallback). */
void ioq_mod_learn(struct ioq_mod *m, unsigned n, unsigned want);

#endif
