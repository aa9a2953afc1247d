/*
 * ioq_mod.c — the moderated wait's ask (ioq_mod.h).
 */
#include "ioq/ioq_mod.h"

#include <string.h>

void ioq_mod_init(struct ioq_mod *m) {
    memset(m, 0, sizeof *m);
    m->expect = 1;
    m->backoff = IOQ_MOD_HOLD_MIN;
}

uint32_t ioq_mod_queued(struct ioq_mod *m) {
    m->young[m->wave % IOQ_MOD_WAVES]++;
    return m->wave;
}

void ioq_mod_released(struct ioq_mod *m, uint32_t w) {
    uint32_t *b = &m->young[w % IOQ_MOD_WAVES];
    /* counted until its bucket is recycled, IOQ_MOD_WAVES waits after its own */
    if (m->wave - w < IOQ_MOD_WAVES && *b)
        (*b)--;
}

void ioq_mod_next_wave(struct ioq_mod *m) {
    m->wave++;
    m->young[m->wave % IOQ_MOD_WAVES] = 0; /* wave - IOQ_MOD_WAVES's, reused from now on */
}

unsigned ioq_mod_young(const struct ioq_mod *m) {
    unsigned n = 0;
    for (unsigned i = 0; i < IOQ_MOD_WAVES; i++)
        n += m->young[i];
    return n;
}

unsigned ioq_mod_want(const struct ioq_mod *m, unsigned n) {
    if (!m->full)
        return m->expect;
    unsigned all = n + ioq_mod_young(m);
    return all > m->expect ? all : m->expect;
}

void ioq_mod_learn(struct ioq_mod *m, unsigned n, unsigned want) {
    if (want && n < want) { /* the bound ran out: ask for what came */
        m->expect = n ? n : 1;
        m->hold = m->backoff;
        if (m->full) {
            m->full = false;
            m->backoff = m->backoff * 2 > IOQ_MOD_HOLD_MAX ? IOQ_MOD_HOLD_MAX : m->backoff * 2;
        }
        return;
    }
    if (n > m->expect)
        m->expect = n;
    if (!want)
        return;
    if (m->full) {
        m->backoff = IOQ_MOD_HOLD_MIN; /* the round came back whole: keep asking for it */
        return;
    }
    if (m->hold)
        m->hold--;
    else
        m->full = true;
}
