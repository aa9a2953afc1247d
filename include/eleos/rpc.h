/*
 * eleos/rpc.h — exitless calls: enclave threads get untrusted functions (and, through
 * eleos/sys.h, system calls) executed by host worker threads through shared untrusted
 * memory, without leaving the enclave.
 *
 * Two halves, on the two sides of the trust boundary:
 *
 *   host side  (untrusted)  struct eleos_rpc_pool: the shared area (rings + bounce buffers
 *                           in untrusted memory), the function table, the worker threads.
 *   enclave side (trusted)  struct eleos_rpc_client: created inside the enclave from the
 *                           address of the shared area (which the host passes in, e.g. as
 *                           an ECALL argument). It validates the area once, keeps its own
 *                           trusted copy of the geometry and of every ring index, and
 *                           validates everything it reads back.
 *
 * Each enclave thread gets its own channel (a ring of request/response slots plus a bounce
 * buffer) on its first call, so callers never share a lock or a cache line. Workers spin for
 * a bounded time (ELEOS_RPC_DEFAULT_SPIN_NS) and then sleep. The enclave never exits just to
 * wake a worker: when no worker is awake, a call takes the exit path (an OCALL) at once, and
 * that OCALL wakes a worker on its way, so the next call is exitless again.
 *
 * Results of untrusted functions are untrusted: the caller validates them (eleos/sys.h does
 * so for system calls). See docs/rpc.md for the channel protocol and the measurements.
 *
 * Conventions: fallible functions return 0 (or a count) or a negative errno. Host-side
 * functions run in host mode; enclave-side ones in enclave mode (host mode works too, for
 * tests, with no exit at all). Exit counts are per call in enclave mode; the exitless path
 * costs none. MT-safe unless said otherwise.
 */
#ifndef ELEOS_RPC_H
#define ELEOS_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eleos/enclave.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Argument words per request: a system call number plus its six arguments fit. */
#define ELEOS_RPC_NARGS 7

/* Function table. Ids below ELEOS_RPC_FN_USER are reserved for the library. */
#define ELEOS_RPC_MAX_FNS    256u
#define ELEOS_RPC_FN_NULL    0u   /* built in: does nothing, returns 0 (benchmarks)       */
#define ELEOS_RPC_FN_SYSCALL 1u   /* registered by eleos_sys_host_register()              */
#define ELEOS_RPC_FN_USER    16u  /* first id for applications                            */

/* Per-call flags (struct eleos_rpc_req.flags). */
#define ELEOS_RPC_F_EXIT     0x1u /* take the exit path (an OCALL) for this call          */
#define ELEOS_RPC_F_MAYBLOCK 0x2u /* may block for long (accept, epoll_wait, nanosleep…):
                                     the worker leaves the awake set while it runs it, so
                                     other callers fall back instead of waiting behind it */

/* Limits and defaults. */
#define ELEOS_RPC_MAX_WORKERS        64u
#define ELEOS_RPC_MAX_CHANNELS       1024u
#define ELEOS_RPC_MAX_RING           1024u
#define ELEOS_RPC_DEFAULT_WORKERS    1u
#define ELEOS_RPC_DEFAULT_CHANNELS   64u
#define ELEOS_RPC_DEFAULT_RING       64u
/* 64 KiB of data plus a page for marshalled structures (msghdr, sockaddr, iovecs…). */
#define ELEOS_RPC_DEFAULT_BOUNCE     (68u << 10)
/* Spin budget of an idle worker before it sleeps. 100 µs covers the gap between calls of a
 * busy server many times over, yet an idle pool is asleep long before 1 ms has passed. */
#define ELEOS_RPC_DEFAULT_SPIN_NS    100000u

/* Fault injection (tests only): the host misbehaves on purpose. ELEOS_RPC_FAULT_RET and
 * ELEOS_RPC_FAULT_SCRIBBLE act in the RPC layer; the others are read by the system-call
 * executor of eleos/sys.h. */
#define ELEOS_RPC_FAULT_RET      0x01u /* every result replaced by a random 64-bit value     */
#define ELEOS_RPC_FAULT_SCRIBBLE 0x02u /* after completion, rewrite the slot's result, the
                                          request line and the channel head with garbage  */
#define ELEOS_RPC_FAULT_LEN      0x04u /* byte counts and returned lengths exceed the request */
#define ELEOS_RPC_FAULT_ERRNO    0x08u /* failures with errno values out of range            */
#define ELEOS_RPC_FAULT_EPOLL    0x10u /* epoll_wait returns more events than asked          */
#define ELEOS_RPC_FAULT_STRUCT   0x20u /* returned structures with insane contents           */
#define ELEOS_RPC_FAULT_BOUNCE   0x40u /* after completion, rewrite the whole bounce buffer  */

struct eleos_rpc_req {
    uint32_t fn;                      /* function id, < ELEOS_RPC_MAX_FNS               */
    uint32_t flags;                   /* ELEOS_RPC_F_*                                  */
    uint64_t args[ELEOS_RPC_NARGS];   /* passed to the host function as they are        */
};

/* ============================== host side ============================================== */

/* A host function. args are a snapshot the worker took; ctx is the registration's. Runs on
 * a worker thread or (exit path) on the calling enclave thread in host mode. */
typedef int64_t (*eleos_rpc_fn)(void *ctx, const uint64_t args[ELEOS_RPC_NARGS]);

struct eleos_rpc_pool_config {
    unsigned workers;      /* worker threads, 1..ELEOS_RPC_MAX_WORKERS (0 = default)     */
    unsigned channels;     /* enclave threads that can hold a channel at once (0 = default) */
    unsigned ring_size;    /* slots per channel, a power of two (0 = default)            */
    size_t bounce_size;    /* untrusted bounce buffer per channel, bytes (0 = default)   */
    uint64_t spin_ns;      /* idle spin budget before a worker sleeps (0 = default)      */
    const int *cpus;       /* worker i runs on cpus[i % ncpus]; NULL = not pinned; copied */
    unsigned ncpus;
    unsigned fault;        /* ELEOS_RPC_FAULT_* (tests only), 0 = honest host            */
    uint32_t fault_seed;   /* seed of the fault injector's random numbers                */
};

struct eleos_rpc_pool;

/* Fills *cfg with the defaults: ELEOS_RPC_DEFAULT_WORKERS workers (unpinned),
 * ELEOS_RPC_DEFAULT_CHANNELS channels of ELEOS_RPC_DEFAULT_RING slots, a
 * ELEOS_RPC_DEFAULT_BOUNCE bounce buffer each, ELEOS_RPC_DEFAULT_SPIN_NS, honest host.
 * Pure; any mode, any thread, no exit. */
void eleos_rpc_pool_config_default(struct eleos_rpc_pool_config *cfg);

/* Creates a pool for enc (host mode): allocates the shared area, registers the built-in
 * functions. Workers are not running until eleos_rpc_pool_start. *out is owned by the caller
 * until eleos_rpc_pool_destroy. Errors: -EINVAL, -ENOMEM. */
ELEOS_MUST_CHECK int eleos_rpc_pool_create(struct eleos_enclave *enc,
                                           const struct eleos_rpc_pool_config *cfg,
                                           struct eleos_rpc_pool **out);

/* Starts the workers (threads named eleos-rpc/0, eleos-rpc/1, …). -EALREADY if running,
 * -errno from pthread_create. Caller serialises start/stop/destroy. */
ELEOS_MUST_CHECK int eleos_rpc_pool_start(struct eleos_rpc_pool *pool);

/* Stops the workers and joins them. Well defined with calls in flight: workers finish every
 * request already submitted before they leave; a request that no worker took is taken back
 * by its caller and run on the exit path. Calls keep working after stop (all through the
 * exit path). Idempotent. Caller serialises start/stop/destroy. */
void eleos_rpc_pool_stop(struct eleos_rpc_pool *pool);

/* Stops the pool and frees it and its shared area. No enclave thread may be inside a call
 * and every client of the area must be destroyed first. NULL is a no-op. Caller serialises
 * it with start/stop. */
void eleos_rpc_pool_destroy(struct eleos_rpc_pool *pool);

/* Registers fn under id (ELEOS_RPC_FN_USER <= id < ELEOS_RPC_MAX_FNS; the library uses lower
 * ids through eleos_rpc_pool_register_reserved). May be called while workers run; a call
 * racing with the registration sees the old or the new entry. -EINVAL on a bad id.
 * A request for an id nothing is registered under completes with -EBADRQC (not -ENOSYS,
 * which a function may return itself), counted in bad_fn, with one line on stderr per pool. */
ELEOS_MUST_CHECK int eleos_rpc_pool_register(struct eleos_rpc_pool *pool, uint32_t id,
                                             eleos_rpc_fn fn, void *ctx);
ELEOS_MUST_CHECK int eleos_rpc_pool_register_reserved(struct eleos_rpc_pool *pool, uint32_t id,
                                                      eleos_rpc_fn fn, void *ctx);

/* The shared area to hand to the enclave (eleos_rpc_client_create); *size gets its
 * length. Never fails. */
void *eleos_rpc_pool_shared(const struct eleos_rpc_pool *pool, size_t *size);

/* Fault injection: change the flags at run time (tests). Reading them is for host functions
 * that inject faults of their own (eleos/sys.h's executor). A random number for them. */
void eleos_rpc_pool_set_fault(struct eleos_rpc_pool *pool, unsigned fault);
unsigned eleos_rpc_pool_fault(const struct eleos_rpc_pool *pool);
uint64_t eleos_rpc_pool_fault_random(struct eleos_rpc_pool *pool);

/* The adversary's handle: channel c's untrusted bounce buffer (tests, fault injection);
 * *size (may be NULL) gets its size. NULL if channel is out of range. */
void *eleos_rpc_pool_bounce(struct eleos_rpc_pool *pool, unsigned channel, size_t *size);

struct eleos_rpc_pool_stats {
    uint64_t served;        /* requests run by workers                                   */
    uint64_t exit_served;   /* requests run on the exit path (in an OCALL)               */
    uint64_t blocking;      /* ELEOS_RPC_F_MAYBLOCK requests run by workers              */
    uint64_t bad_fn;        /* requests with an unknown function id (-EBADRQC)           */
    uint64_t sleeps;        /* times a worker went to sleep                              */
    uint64_t wakes;         /* times a sleeping worker was woken                         */
    uint64_t exit_wakes;    /* of those, by the exit path of a call                      */
    uint64_t spin_ns;       /* time workers spent spinning idle                          */
    uint64_t busy_ns;       /* time workers spent running requests                       */
    unsigned awake;         /* workers awake now                                         */
    unsigned workers;       /* workers running                                           */
};

/* A snapshot of the pool's counters (each read atomically). MT-safe. */
void eleos_rpc_pool_stats(const struct eleos_rpc_pool *pool, struct eleos_rpc_pool_stats *out);

/* ============================== enclave side =========================================== */

struct eleos_rpc_client;

/* Creates the enclave-side client of a pool's shared area (call in enclave mode; host mode
 * works too, for tests). Checks that [shared, shared+size) lies outside enc's ELRANGE and
 * that the area's geometry is consistent, and copies it into enclave memory. The client
 * lives in enc's heap. Errors: -EINVAL (bad area, or enc is not the enclave the caller is
 * in), -ENOMEM. No exit. */
ELEOS_MUST_CHECK int eleos_rpc_client_create(struct eleos_enclave *enc, void *shared,
                                             size_t size, struct eleos_rpc_client **out);

/* The enclave cl was created for: the one its shared area was checked to lie outside of
 * (eleos/sys.h checks other untrusted buffers against it too). No exit. */
struct eleos_enclave *eleos_rpc_client_enclave(const struct eleos_rpc_client *cl);

/* Frees the client. No thread may be inside a call; outstanding asynchronous requests are
 * waited for first. Every thread's channel is released. NULL is a no-op. No exit when
 * nothing is outstanding. */
void eleos_rpc_client_destroy(struct eleos_rpc_client *cl);

/* The global switch: exitless (default) or everything on the exit path. MT-safe, no
 * exit. */
void eleos_rpc_set_exitless(struct eleos_rpc_client *cl, bool on);
bool eleos_rpc_exitless(const struct eleos_rpc_client *cl);

/*
 * Reclaim time (default 20 us; 0 restores it): a request that no worker has claimed after
 * this long is taken back and run on the exit path, even though workers are counted awake
 * (an awake worker may be preempted when threads outnumber cores, or busy with other
 * threads' requests). The calling thread then sends its next few synchronous calls (4,
 * doubling per consecutive timeout up to 256) straight to the exit path, and returns to
 * exitless once workers claim a call in time again. MT-safe, no exit.
 */
void eleos_rpc_set_reclaim_ns(struct eleos_rpc_client *cl, uint64_t ns);

/*
 * Synchronous call: runs req on a worker (or on the exit path: ELEOS_RPC_F_EXIT, exitless
 * off, no worker awake, the thread's ring full) and stores the host function's result in
 * *ret. The result is untrusted. Errors: -EINVAL (id out of bounds, unknown flags),
 * -ENOSPC (more threads than channels). MT-safe (each thread uses its own channel).
 * Exits: none when a worker runs it, one (the OCALL) on the exit path.
 */
ELEOS_MUST_CHECK int eleos_rpc_call(struct eleos_rpc_client *cl, const struct eleos_rpc_req *req,
                                    int64_t *ret);

/*
 * Asynchronous: submit returns a ticket, valid only on the calling thread, to be redeemed
 * once by poll (0 and *ret when done, -EAGAIN when not yet) or wait (spins until done).
 * -EAGAIN from submit: the thread has too many requests outstanding; redeem some first.
 * A request taken by the exit path at submission is done before submit returns.
 * poll/wait: -EINVAL for a ticket that is not the calling thread's or was redeemed.
 * Exits: submit none, or one on the exit path; poll and wait none, except one when they
 * take back a request no worker claimed in time and run it on the exit path.
 */
ELEOS_MUST_CHECK int eleos_rpc_submit(struct eleos_rpc_client *cl,
                                      const struct eleos_rpc_req *req, uint64_t *ticket);
ELEOS_MUST_CHECK int eleos_rpc_poll(struct eleos_rpc_client *cl, uint64_t ticket, int64_t *ret);
ELEOS_MUST_CHECK int eleos_rpc_wait(struct eleos_rpc_client *cl, uint64_t ticket, int64_t *ret);

/*
 * Batched submission: publishes up to count requests with a single doorbell and stores
 * their tickets. Returns how many were submitted (fewer when the ring is nearly full, never
 * 0 for count > 0 unless -EAGAIN) or a negative errno (-EINVAL as eleos_rpc_call). When
 * no worker is awake the whole batch runs in one OCALL: one exit, else none.
 */
ELEOS_MUST_CHECK int eleos_rpc_submit_batch(struct eleos_rpc_client *cl,
                                            const struct eleos_rpc_req *reqs, unsigned count,
                                            uint64_t *tickets);

/* Runs count requests, pipelined through the thread's ring, results in rets[i]. 0 or the
 * first validation error (-EINVAL before anything is submitted). Exits: none while workers
 * take them; on the exit path one per batch submitted (one for a batch that fits the
 * ring). */
ELEOS_MUST_CHECK int eleos_rpc_call_batch(struct eleos_rpc_client *cl,
                                          const struct eleos_rpc_req *reqs, unsigned count,
                                          int64_t *rets);

/* The calling thread's untrusted bounce buffer (attaching a channel if needed), or NULL
 * (-ENOSPC: no channel free). Host memory: anything read back from it is untrusted. No
 * exit. */
void *eleos_rpc_bounce(struct eleos_rpc_client *cl, size_t *size);

/* Releases the calling thread's channel (waits for its outstanding requests first). A
 * thread that ends without detaching keeps its channel until eleos_rpc_client_destroy.
 * No exit (with nothing outstanding). */
void eleos_rpc_thread_detach(struct eleos_rpc_client *cl);

struct eleos_rpc_client_stats {
    uint64_t calls;         /* requests issued (sync, async and batched)                 */
    uint64_t exitless;      /* of those, run by workers                                  */
    uint64_t exit_calls;    /* run on the exit path because it was asked for            */
    uint64_t fallbacks;     /* run on the exit path although exitless was asked for     */
    uint64_t no_worker;     /*   of those: no worker awake at submission                 */
    uint64_t ring_full;     /*   of those: the thread's ring was full                    */
    uint64_t reclaimed;     /*   of those: submitted, then taken back (workers gone)     */
    uint64_t unclaimed;     /*     of which: no worker claimed it within the reclaim time */
    uint64_t backoff;       /*   of those: sync calls sent to the exit path after such a  */
                            /*   timeout (eleos_rpc_set_reclaim_ns)                       */
    uint64_t ocalls;        /* OCALLs (exits) made by the RPC layer                      */
    uint64_t batches;       /* batched submissions                                       */
    uint64_t bad_ids;       /* calls refused: function id out of bounds                  */
    uint64_t host_faults;   /* untrusted values that failed validation (ring head …)     */
    uint64_t wait_cycles;   /* TSC cycles enclave threads spun waiting for workers       */
};

/* A snapshot of the client's counters, summed over its threads. MT-safe, no exit. */
void eleos_rpc_client_stats(struct eleos_rpc_client *cl, struct eleos_rpc_client_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* ELEOS_RPC_H */
