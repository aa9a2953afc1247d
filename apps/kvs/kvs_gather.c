/*
 * kvs_gather.c — the consolidation decision (kvs_gather.h).
 */
#include "kvs_gather.h"

#include <stddef.h>

/* AUTO: cores are free, every worker waits for its own connections (latency first). */
static bool cores_free(int64_t idle, unsigned active, unsigned n) {
    if (idle < 0)
        return true; /* nothing known: as memcached does */
    return active < n ? idle >= (int64_t)(n - active) * 1000 : idle >= KVS_GATHER_BUSY_IDLE;
}

/* What this period alone asks for. */
static unsigned target(enum kvs_gather_mode mode, int64_t idle, unsigned active, unsigned n,
                       const uint32_t *busy, unsigned calm) {
    if (mode == KVS_GATHER_OFF || n <= 1)
        return n;
    if (mode == KVS_GATHER_AUTO && cores_free(idle, active, n))
        return n;
    bool scarce = mode == KVS_GATHER_ON || idle < KVS_GATHER_BUSY_IDLE;
    uint64_t sum = 0;
    uint32_t max = 0;
    for (unsigned i = 0; i < active; i++) {
        sum += busy[i];
        if (busy[i] > max)
            max = busy[i];
    }
    if (active < n && max > KVS_GATHER_GROW_PERMILLE)
        return active + 1;
    if (active > 1 && scarce && !calm &&
        sum < (uint64_t)(active - 1) * KVS_GATHER_SHRINK_PERMILLE)
        return active - 1;
    return active;
}

unsigned kvs_gather_decide(struct kvs_gather *g, enum kvs_gather_mode mode, int64_t idle,
                           unsigned active, unsigned n, const uint32_t *busy) {
    if (n == 0)
        return 0;
    if (active == 0 || active > n)
        active = n;
    if (g->calm)
        g->calm--;
    unsigned t = target(mode, idle, active, n, busy, g->calm);
    if (mode == KVS_GATHER_OFF)
        return t; /* forced: at once */
    g->ticks = t == g->pending ? g->ticks + 1 : 1;
    g->pending = t;
    bool free = mode == KVS_GATHER_AUTO && cores_free(idle, active, n);
    if (t == active || g->ticks < (free ? KVS_GATHER_FREE_HOLD : KVS_GATHER_HOLD))
        return active;
    if (t > active && !free) { /* added: the others saturated */
        g->backoff = g->backoff ? g->backoff * 2 : KVS_GATHER_CALM;
        if (g->backoff > KVS_GATHER_CALM_MAX)
            g->backoff = KVS_GATHER_CALM_MAX;
        g->calm = g->backoff;
    }
    g->ticks = 0;
    return t;
}

unsigned kvs_gather_emptied(struct kvs_gather *g, enum kvs_gather_mode mode, unsigned active,
                            unsigned n, int64_t now_ms) {
    if (n == 0)
        return 0;
    if (active == 0 || active > n)
        active = n;
    int64_t last = g->emptied_ms;
    g->emptied_ms = now_ms;
    if (last && now_ms - last < (int64_t)KVS_GATHER_HOLD * KVS_GATHER_PERIOD_MS)
        return active; /* connections come and go: one load */
    *g = (struct kvs_gather){.emptied_ms = now_ms};
    return mode == KVS_GATHER_OFF ? n : 1;
}

const char *kvs_gather_mode_name(int mode) {
    static const char *const names[] = {"auto", "off", "on"};
    return mode >= 0 && (size_t)mode < sizeof names / sizeof names[0] ? names[mode] : NULL;
}
