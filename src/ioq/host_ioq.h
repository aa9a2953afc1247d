/*
 * Host side of I/O queues (untrusted): the lanes the host keeps for enclave queues, shared
 * by host_ioq.c (lanes, OCALLs, the service) and host_ioq_batch.c (the batch executor and
 * the fault injector).
 */
#ifndef ELEOS_HOST_IOQ_H
#define ELEOS_HOST_IOQ_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ioq/ioq_shared.h"

/* Rings of io_uring's layout in host memory, drained by the batch executor. */
struct ioq_batch_hdr {
    _Atomic uint32_t sq_khead, sq_ktail, sq_kflags, pad0;
    _Atomic uint32_t cq_khead, cq_ktail, pad1[2];
};

struct ioq_pending {
    struct io_uring_sqe sqe;
    short events;
};

struct ioq_batch {
    void *mem;
    size_t size;
    struct ioq_batch_hdr *hdr;
    uint32_t *array;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    uint32_t sq_entries, cq_entries;
    struct ioq_pending *pending;
    uint32_t npending;
};

struct ioq_host_lane {
    bool in_use;
    uint32_t gen;
    uint32_t exec;
    bool on_worker;          /* drained by the service's workers                        */
    struct io_uring ring;    /* kernel lanes                                            */
    struct ioq_batch batch;  /* BATCH                                                   */
    uint64_t fault_rng;
    struct io_uring_cqe replay[4]; /* recent completions, for the replay fault          */
    unsigned nreplay;
    bool lied;               /* ring indices were moved by the index fault             */
    uint32_t true_tail, true_head; /* what they were: CQ tail, SQ head                  */
};

/* host_ioq_batch.c */
int ioq_batch_init(struct ioq_batch *b, uint32_t entries);
void ioq_batch_fini(struct ioq_batch *b);
/* Runs what the SQ holds; waits until min completions are in the CQ or ns have passed. */
void ioq_batch_enter(struct ioq_batch *b, uint32_t min, uint64_t ns, unsigned fault,
                     uint64_t *rng);
/* Misbehaves on a lane's rings after an enter (fault injection): in place on kernel rings
 * (CQEs and indices), also by appending on the batch executor's own rings. */
void ioq_fault_apply(struct ioq_host_lane *hl, unsigned fault);
/* Puts back what the last call's index fault moved, before the executor runs again. */
void ioq_fault_undo(struct ioq_host_lane *hl);
uint64_t ioq_rand(uint64_t *state);

#endif
