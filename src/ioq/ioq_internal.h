/*
 * The enclave-side state of an I/O queue (enclave memory: the queue lives on the heap of
 * the enclave that created it). Shared by enclave_ioq.c (operations, bounce buffers) and
 * enclave_ioq_ring.c (lanes, submission, validated completions, the executor choice).
 */
#ifndef ELEOS_IOQ_INTERNAL_H
#define ELEOS_IOQ_INTERNAL_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "eleos/ioq.h"
#include "ioq/ioq_mod.h"
#include "ioq/ioq_trial.h"
#include "ioq/ioq_shared.h"

/* Per-operation untrusted header: msghdr, iovecs, socket address and its length. */
#define IOQ_HDR_SIZE 512u
#define IOQ_NCLASS 5u /* bounce size classes: 2 (carved from slabs), 4, 16, 64, 256 KiB */

enum ioq_state { OP_FREE = 0, OP_QUEUED, OP_INFLIGHT };

enum ioq_kind {
    K_NOP = 0, K_RECV, K_SEND, K_RECVMSG, K_SENDMSG, K_READ, K_WRITE, K_READV, K_WRITEV,
    K_ACCEPT, K_CLOSE, K_FSYNC, K_POLL, K_CANCEL
};

struct ioq_op {
    uint8_t state;
    uint8_t kind;
    uint8_t lane;
    uint8_t cls;            /* bounce class of data, or 0xff: none                    */
    bool migrating;         /* cancelled on its old lane, to be issued again on the new */
    uint32_t mod_wave;      /* the wave it was queued in (ioq_mod.h)                   */
    uint32_t gen;           /* tag = gen << 32 | slot; never 0                         */
    uint32_t len;           /* bytes requested (after capping)                         */
    uint32_t events;        /* K_POLL: events asked for                                */
    uint64_t user_data;
    void *data;             /* untrusted data bounce                                   */
    void *dst;              /* K_RECV, K_READ: where received bytes go (enclave)       */
    struct iovec *iov;      /* K_READV, K_RECVMSG: enclave copy of the caller's iovecs */
    int iovcnt;
    struct msghdr *msg;     /* K_RECVMSG: the caller's msghdr, updated at reap         */
    struct sockaddr *addr;  /* K_ACCEPT, K_RECVMSG: where the peer address goes        */
    socklen_t *addrlen;     /* K_ACCEPT                                                */
    socklen_t addrcap;
    struct io_uring_sqe sqe; /* as issued, to issue it again on another lane           */
};

/* A lane as the enclave uses it: a trusted copy of the host's description plus the
 * enclave's own indices. Pointers into untrusted memory are read with atomics. */
struct ioq_lane {
    bool live;
    uint32_t exec;
    uint32_t sq_entries, cq_entries;
    _Atomic uint32_t *sq_khead, *sq_ktail, *sq_kflags;
    uint32_t *sq_array;
    struct io_uring_sqe *sqes;
    _Atomic uint32_t *cq_khead, *cq_ktail;
    struct io_uring_cqe *cqes;
    struct ioq_svc_ctl *ctl;
    uint64_t handle;
    uint32_t sq_tail;       /* next SQE we write                                       */
    uint32_t sq_published;  /* tail the host has seen                                  */
    uint32_t cq_head;
    uint32_t inflight;      /* operations on this lane not yet reaped                  */
    uint64_t last_enter;    /* TSC of the last exit that ran this lane                 */
};

struct ioq_class {
    void **free;            /* cached untrusted buffers of this size                  */
    uint32_t nfree, cap;
};

struct eleos_ioq {
    struct eleos_enclave *enc;
    uint32_t entries;
    struct ioq_op *ops;
    uint32_t *free_ops;
    uint32_t nfree;
    char *hdr;                          /* untrusted: entries * IOQ_HDR_SIZE           */
    struct ioq_call *call;              /* untrusted OCALL block                       */
    struct ioq_lane lanes[ELEOS_IOQ_NEXEC];
    bool avail[ELEOS_IOQ_NEXEC];        /* executors that can be set up here           */
    enum eleos_ioq_exec cur;            /* lane new operations go to                   */
    enum eleos_ioq_exec forced;         /* AUTO: adaptive                              */
    bool core_free;                     /* AUTO: the host's last reading (worker trial) */
    uint32_t depth, depth_peak;         /* most operations in flight at a wait: last
                                           POLICY_NS window, and the current one         */
    struct ioq_trial trial;             /* AUTO: URING or WORKER, by measured rate      */
    bool closing;                       /* destroy: cancelled operations stay cancelled */
    uint32_t outstanding;
    struct ioq_class cls[IOQ_NCLASS];
    void **slabs;                       /* untrusted chunks the 2 KiB class is cut from */
    /* where buffer-less receives land: chunks rewound by every reap or wait */
    struct ioq_rx_chunk { char *p; size_t size, used; } *rx;
    uint32_t nrx, rx_cur;
    uint32_t nslabs, slabs_cap;
    struct eleos_ioq_stats st;
    /* completion moderation */
    enum eleos_ioq_moderation mod_mode;
    bool mod_on;                        /* AUTO: the machine is busy (held decision)    */
    bool mod_pending;                   /* AUTO's last reading, and how many ticks held */
    unsigned mod_ticks;
    struct ioq_mod mod;                 /* how many completions a moderated wait asks */
    uint64_t mod_ns;
    /* executor choice */
    uint64_t pol_start;                 /* TSC at the start of the current window      */
    uint64_t spin_budget;               /* cycles a wait spins before it exits         */
    uint64_t hz;                        /* TSC cycles per second                       */
};

/* enclave_ioq.c */
void *ioq_mem_alloc(struct eleos_ioq *q, size_t size);
void ioq_mem_free(struct eleos_ioq *q, void *p);
void ioq_op_release(struct eleos_ioq *q, uint32_t slot);
void ioq_cancel_all(struct eleos_ioq *q);
void *ioq_rx_copy(struct eleos_ioq *q, const void *src, size_t n);
void ioq_rx_rewind(struct eleos_ioq *q);
void ioq_op_complete(struct eleos_ioq *q, struct ioq_op *op, int32_t res,
                     struct eleos_ioq_cqe *out);

/* enclave_ioq_ring.c */
long ioq_ocall(struct eleos_ioq *q, uint32_t op, uint32_t exec);
int ioq_lane_open(struct eleos_ioq *q, enum eleos_ioq_exec exec);
void ioq_lane_close(struct eleos_ioq *q, struct ioq_lane *l);
struct io_uring_sqe *ioq_sqe_get(struct eleos_ioq *q, struct ioq_lane *l);
int ioq_lanes_init(struct eleos_ioq *q);

#endif
