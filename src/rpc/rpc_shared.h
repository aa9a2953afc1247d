/*
 * The layout of the RPC shared area (untrusted memory), used by both sides.
 *
 * Area = header | channel 0 | channel 1 | … ; every part is cache-line aligned.
 *
 *   header (host writes the geometry once at creation; the enclave snapshots it once)
 *     line 0  geometry: magic, version, channels, ring size, bounce size, strides
 *     line 1  awake     workers awake and spinning (host writes; enclave reads)
 *     line 2  chan_hwm  highest channel index in use + 1 (enclave writes; workers read)
 *   channel (one per enclave thread)
 *     line 0  head      requests claimed (workers CAS; the enclave CASes to take back)
 *                       + a host-only back pointer to the pool (the enclave never reads it)
 *     line 1  exit_ctl  what the exit path (an OCALL) must do
 *     line 2  exit_req  the request of a single exit-path call
 *     ring    R request lines (enclave writes) then R response lines (workers write)
 *     bounce  the thread's bounce buffer (page aligned)
 *
 * Slot protocol, seq = a free-running 64-bit request number, slot = seq & (R-1):
 *   FREE       the enclave's trusted reap index has passed seq - R
 *   SUBMITTED  req[slot]'s fields written, then req[slot].pub = (uint32_t)(seq + 1) stored
 *              with release
 *   ACCEPTED   a worker (or the enclave, taking it back) moved head from seq to seq + 1
 *   DONE       resp[slot].ret written, then resp[slot].done = seq + 1 with release
 * A worker finds work by reading head h (its own line) and then the request line of slot h:
 * the publication mark travels in the same cache line as the request, so a call costs one
 * line transfer each way, as in the physical floor (no separate tail line to poll first).
 * A slot's mark can only equal h + 1 if request h was published: the slot held h - R (or
 * an older request) before, and 32 bits cannot wrap within one lap of the ring. Requests
 * the enclave runs on the exit path are never marked; head is moved past them instead.
 * The enclave keeps tail, reap and per-slot consumption in trusted memory and only ever
 * compares what it reads (done, head) against its own values.
 *
 * Every field is an atomic: the host may write any of them at any time (the adversarial
 * tests do), and both sides access them with explicit orders; on x86 relaxed accesses are
 * plain moves.
 */
#ifndef ELEOS_RPC_SHARED_H
#define ELEOS_RPC_SHARED_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "eleos/rpc.h"

#define RPC_LINE    64u
#define RPC_MAGIC   0x43505253454c45ull /* "ELESRPC" */
#define RPC_VERSION 2u

struct rpc_area_hdr {
    alignas(RPC_LINE) _Atomic uint64_t magic;
    _Atomic uint32_t version;
    _Atomic uint32_t channels;
    _Atomic uint32_t ring_size;
    _Atomic uint32_t workers;
    _Atomic uint64_t bounce_size;
    _Atomic uint64_t chan_stride;
    _Atomic uint64_t total_size;
    alignas(RPC_LINE) _Atomic uint32_t awake;
    alignas(RPC_LINE) _Atomic uint32_t chan_hwm;
};

/* fn and flags are validated by the enclave (fn < ELEOS_RPC_MAX_FNS, two flag bits) before
 * they are written, so 16 bits each hold them and the publication mark fits in the line. */
struct rpc_req {
    _Atomic uint32_t pub;   /* (uint32_t)(seq + 1) once published; stored last, release */
    _Atomic uint16_t fn;
    _Atomic uint16_t flags;
    _Atomic uint64_t args[ELEOS_RPC_NARGS];
};

struct rpc_resp {
    alignas(RPC_LINE) _Atomic uint64_t done; /* seq + 1 of the request whose result is in ret */
    _Atomic int64_t ret;
};

/* Exit-path operations (rpc_exit_ctl.op). */
#define RPC_EXIT_ONE   1u /* run exit_req; the OCALL returns its result                   */
#define RPC_EXIT_RANGE 2u /* run ring slots [first, last); results in the response lines  */
#define RPC_EXIT_WAKE  1u /* rpc_exit_ctl.flags: wake a sleeping worker on the way         */

struct rpc_exit_ctl {
    alignas(RPC_LINE) _Atomic uint32_t op;
    _Atomic uint32_t flags;
    _Atomic uint64_t first;
    _Atomic uint64_t last;
};

struct eleos_rpc_pool;

struct rpc_chan {
    alignas(RPC_LINE) _Atomic uint64_t head;
    struct eleos_rpc_pool *host_pool; /* host-only; never read by the enclave */
    struct rpc_exit_ctl exit_ctl;
    alignas(RPC_LINE) struct rpc_req exit_req;
    /* then: struct rpc_req req[R] (one per line), struct rpc_resp resp[R], bounce */
};

_Static_assert(sizeof(struct rpc_req) == RPC_LINE, "a request is one cache line");
_Static_assert(ELEOS_RPC_MAX_FNS <= 65536u, "fn fits in rpc_req.fn");
_Static_assert(sizeof(struct rpc_resp) == RPC_LINE, "a response is one cache line");
_Static_assert(sizeof(struct rpc_chan) % RPC_LINE == 0, "channel header in whole lines");

/* Geometry, computed identically on both sides from (channels, ring, bounce). */
static inline uint64_t rpc_round_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}
static inline uint64_t rpc_hdr_size(void) {
    return rpc_round_up(sizeof(struct rpc_area_hdr), ELEOS_PAGE_SIZE);
}
static inline uint64_t rpc_req_off(void) {
    return sizeof(struct rpc_chan);
}
static inline uint64_t rpc_resp_off(uint32_t ring) {
    return rpc_req_off() + (uint64_t)ring * sizeof(struct rpc_req);
}
static inline uint64_t rpc_bounce_off(uint32_t ring) {
    return rpc_round_up(rpc_resp_off(ring) + (uint64_t)ring * sizeof(struct rpc_resp),
                        ELEOS_PAGE_SIZE);
}
static inline uint64_t rpc_chan_stride(uint32_t ring, uint64_t bounce) {
    return rpc_bounce_off(ring) + rpc_round_up(bounce, ELEOS_PAGE_SIZE);
}
static inline uint64_t rpc_total_size(uint32_t channels, uint32_t ring, uint64_t bounce) {
    return rpc_hdr_size() + (uint64_t)channels * rpc_chan_stride(ring, bounce);
}

static inline struct rpc_chan *rpc_chan_at(void *area, uint64_t stride, uint32_t c) {
    return (struct rpc_chan *)((char *)area + rpc_hdr_size() + (uint64_t)c * stride);
}
static inline struct rpc_req *rpc_chan_req(struct rpc_chan *ch) {
    return (struct rpc_req *)((char *)ch + rpc_req_off());
}
static inline struct rpc_resp *rpc_chan_resp(struct rpc_chan *ch, uint32_t ring) {
    return (struct rpc_resp *)((char *)ch + rpc_resp_off(ring));
}
static inline void *rpc_chan_bounce(struct rpc_chan *ch, uint32_t ring) {
    return (char *)ch + rpc_bounce_off(ring);
}

/* The exit path's entry point (host_rpc.c), called through eleos_enclave_ocall with the
 * channel as argument. Host mode. */
long rpc_host_exit(void *chan);

#endif
