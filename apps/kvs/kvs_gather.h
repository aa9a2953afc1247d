/*
 * kvs_gather.h — how many workers of the completion loop hold connections.
 *
 * Each worker of the queue path waits on its own queue, and on the uring and batch
 * executors every wait is an exit. While the machine has no core to spare (the queue
 * moderates its waits: docs/rpc.md) a worker cannot poll, so it gives its core up once
 * per round of its own connections, and two workers waiting for half the connections
 * each pay two exits where one worker holding them all would pay one. So connections are
 * gathered on fewer workers while those can carry the load, and spread again when the
 * workers holding them are saturated or when cores are free again (docs/kvs.md).
 *
 * The decision is pure (no system call, no clock): the loop feeds it each period's
 * measurements. Worker 0 decides; workers at or beyond the answer hand their
 * connections to the ones below it.
 */
#ifndef KVS_GATHER_H
#define KVS_GATHER_H

#include <stdbool.h>
#include <stdint.h>

enum kvs_gather_mode {
    KVS_GATHER_AUTO = 0, /* gather while the machine has no core to spare            */
    KVS_GATHER_OFF = 1,  /* every worker holds connections (memcached's round robin)  */
    KVS_GATHER_ON = 2,   /* gather whenever fewer workers carry the load             */
};

/* A period of measurement; a new answer must hold for KVS_GATHER_HOLD periods in a row,
 * so a load at a threshold does not move connections back and forth. */
#define KVS_GATHER_PERIOD_MS 100
#define KVS_GATHER_HOLD 3u
/* A worker that used more than this share of a core (its thread's CPU time over the
 * period) is saturated: add one. Wall time would not do: on a machine without a spare
 * core a worker is often runnable but not running, and another worker would not run
 * either. */
#define KVS_GATHER_GROW_PERMILLE 950u
/* Remove one worker when the others could take its CPU time and stay below this share.
 * A whole core: the sum over more workers overestimates (fewer workers wake less often,
 * so they spend less per request), so a removal is a trial, undone (with KVS_GATHER_CALM)
 * if the remaining workers saturate. */
#define KVS_GATHER_SHRINK_PERMILLE 1000u
/* AUTO gathers only while the host reports less idle CPU than this (the queue's own
 * threshold for moderating), and spreads again once a whole core is idle for each worker
 * that gave its connections up: gathering itself leaves some CPU idle (the workers that
 * gave up their connections sleep), and that must not undo it. Spreading because cores
 * are free needs KVS_GATHER_FREE_HOLD periods in a row: the host's figure flickers. */
#define KVS_GATHER_BUSY_IDLE 300
#define KVS_GATHER_FREE_HOLD 10u
/* After a worker was added because the others were saturated, no removal for this many
 * periods, doubled each time it happens again (up to the max): a load that saturates one
 * worker must not have its connections gathered and spread over and over. */
#define KVS_GATHER_CALM 20u
#define KVS_GATHER_CALM_MAX 600u

struct kvs_gather {
    unsigned pending;   /* the answer the last periods gave                  */
    unsigned ticks;     /* periods in a row that gave it                      */
    unsigned calm;      /* periods left before a removal may be decided       */
    unsigned backoff;   /* the last calm set                                  */
    int64_t emptied_ms; /* when the last connection last closed (0: never)    */
};

/* The number of workers (1..n) that should hold connections after this period. active:
 * how many do now; busy[0..active): each one's CPU time over the period, in permille of
 * a core; idle: the machine's idle CPU the host reports, in permille of a core, -1 if
 * unknown (read by AUTO only). g starts zeroed. */
unsigned kvs_gather_decide(struct kvs_gather *g, enum kvs_gather_mode mode, int64_t idle,
                           unsigned active, unsigned n, const uint32_t *busy);

/* The last connection closed at now_ms: the load the periods before measured is gone, and
 * what they decided (the calm after a saturation above all) says nothing about the next
 * one. Unless the last connection also closed within the KVS_GATHER_HOLD periods before,
 * the decision starts over, and the next load starts on one worker (all of them if OFF):
 * if it saturates that one, one is added within KVS_GATHER_HOLD periods; if the server
 * stays without connections, AUTO spreads again once cores are free (KVS_GATHER_FREE_HOLD
 * periods), as before any load. The idle CPU the host reports cannot decide it here: it
 * still counts the load that just ended, or already counts its end. A server whose
 * connections come and go (one request per connection) empties all the time: it keeps
 * its decision. Returns the number of workers that hold connections from now on. */
unsigned kvs_gather_emptied(struct kvs_gather *g, enum kvs_gather_mode mode, unsigned active,
                            unsigned n, int64_t now_ms);

/* "auto", "off", "on"; NULL for anything else. */
const char *kvs_gather_mode_name(int mode);

#endif
