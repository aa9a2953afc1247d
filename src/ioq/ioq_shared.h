/*
 * The untrusted memory an I/O queue shares with the host, used by both sides.
 *
 * A lane is one pair of rings with io_uring's layout: the kernel's own rings (mmap'd by
 * io_uring_setup) for the URING, WORKER and SQPOLL executors, or rings of the same layout
 * in host memory that the host's batch executor drains (BATCH). The host describes a lane
 * in struct ioq_lane_desc; the enclave copies the description in once, checks every
 * address and size against its ELRANGE, and from then on uses only its own copy.
 *
 * OCALLs carry one struct ioq_call, in untrusted memory the enclave allocated: the host
 * reads the request and writes the description of a new lane; the enclave reads back only
 * the description (copied, then validated) and the OCALL's return value (range-checked).
 *
 * The service control block (struct ioq_svc_ctl) is host memory the enclave only reads, and
 * only to make performance decisions (is the worker asleep, how idle is the machine): a
 * lying host can make the queue slow, never make it accept a forged completion.
 */
#ifndef ELEOS_IOQ_SHARED_H
#define ELEOS_IOQ_SHARED_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "eleos/ioq.h"

#define IOQ_LINE 64u

/* OCALL operations (ioq_call.op). */
#define IOQ_CALL_SETUP   1u /* create a lane of exec for entries operations: fills desc  */
#define IOQ_CALL_ENTER   2u /* submit to_submit, wait for min_complete or timeout_ns     */
#define IOQ_CALL_WAKE    3u /* wake the service's sleeping worker                        */
#define IOQ_CALL_RELEASE 4u /* tear the lane down                                        */

struct ioq_lane_desc {
    uint32_t exec;
    uint32_t sq_entries;
    uint32_t cq_entries;
    uint32_t pad;
    uint64_t sq_khead, sq_ktail, sq_kflags, sq_array, sqes;
    uint64_t cq_khead, cq_ktail, cqes;
    uint64_t ctl;      /* struct ioq_svc_ctl (WORKER lanes), 0 otherwise                 */
    uint64_t handle;   /* the host's name for the lane; opaque to the enclave           */
};

struct ioq_call {
    uint32_t op;
    uint32_t exec;
    uint32_t entries;
    uint32_t to_submit;
    uint32_t min_complete;
    uint32_t flags;
    uint64_t timeout_ns;    /* UINT64_MAX: none                                        */
    uint64_t handle;
    struct ioq_lane_desc desc;
};

/* ioq_call.flags for IOQ_CALL_ENTER. */
#define IOQ_ENTER_GETEVENTS 0x1u /* wait for min_complete (else submit only)             */
#define IOQ_ENTER_SQ_WAKEUP 0x2u /* SQPOLL: wake the kernel's polling thread             */

/* Worker states (ioq_svc_ctl.worker_state). */
#define IOQ_WORKER_NONE     0u
#define IOQ_WORKER_AWAKE    1u
#define IOQ_WORKER_SLEEPING 2u

struct ioq_svc_ctl {
    alignas(IOQ_LINE) _Atomic uint32_t worker_state;
    alignas(IOQ_LINE) _Atomic uint32_t idle_permille;   /* idle CPU, thousandths of a core */
    _Atomic uint32_t spin_permille;                     /* CPU workers spent spinning idle */
    _Atomic uint32_t wait_permille;                     /* share of time an awake worker
                                                           waited for a CPU: no core free */
    _Atomic uint32_t ncpus;
};

/* The host's entry point for every OCALL of a queue (host_ioq.c). Host mode. */
long ioq_host_call(void *call);

#endif
