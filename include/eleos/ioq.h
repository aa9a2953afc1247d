/*
 * eleos/ioq.h — batched, completion-based system calls from the enclave.
 *
 * An I/O queue (struct eleos_ioq) lets enclave code queue many system calls and reap their
 * completions later, the way io_uring programs do: queue a recv for every connection, the
 * replies of a whole pass as sends, then wait once. The operations travel on rings in
 * untrusted memory that have io_uring's layout (struct io_uring_sqe / io_uring_cqe); who
 * drains them is the queue's *executor*, chosen at run time:
 *
 *   ELEOS_IOQ_EXEC_URING   the kernel, through io_uring. One exit (io_uring_enter) submits a
 *                          whole batch and reaps every completion that is ready; the ring is
 *                          single-issuer with deferred task work, so completions are posted
 *                          only when the enclave enters (no interrupt of enclave code).
 *   ELEOS_IOQ_EXEC_WORKER  a host worker thread submits what the enclave queued (io_uring
 *                          again, the worker as issuer) and the kernel posts completions to
 *                          the shared ring: no exit while the worker is awake. The worker
 *                          spins only while it finds work, yielding its core to any runnable
 *                          thread, and sleeps after ELEOS_IOQ_DEFAULT_WORKER_SPIN_NS idle.
 *   ELEOS_IOQ_EXEC_SQPOLL  io_uring with a kernel polling thread: no exit while it is awake.
 *   ELEOS_IOQ_EXEC_BATCH   no io_uring (kernel without it, or disabled): one exit performs
 *                          every queued operation that can complete and, when asked to
 *                          wait, polls the rest.
 *   ELEOS_IOQ_EXEC_AUTO    the queue picks among them, and keeps re-picking, from what the
 *                          machine affords now: the idle CPU the host reports and the exits
 *                          per operation each executor costs (docs/rpc.md).
 *
 * Ownership: a queue belongs to the thread that created it (io_uring's single issuer): only
 * that thread may queue, submit, reap and wait. Create one queue per enclave thread.
 *
 * Buffers: enclave code passes enclave buffers. The queue gives each operation a bounce
 * buffer in untrusted memory: data to send is copied out when the operation is queued (the
 * caller's buffer is free again at once, unlike io_uring); received data is copied into
 * the caller's buffer at reap time, after the completion has been validated, so a receive
 * buffer must stay valid until its completion is reaped. A receive queued with no buffer
 * (buf NULL) gets one at completion, like io_uring's provided buffers: its bytes come in
 * cqe.data, so a server's idle connections hold no enclave memory. Transfers larger than
 * ELEOS_IOQ_MAX_XFER are shortened (a short transfer, as the calls allow).
 *
 * Trust (Iago checks): a completion is accepted only if it names an operation this queue
 * has outstanding on that ring (a tag of slot and generation kept in enclave memory), only
 * once, with a result the operation can have (a byte count never above the request, an
 * errno in range, poll events among those asked for…). Anything else is counted
 * (host_faults) and dropped, or turned into -EIO for that operation. The host can still
 * delay, drop or garble I/O, as it always can.
 *
 * Host side: eleos_ioq_service_start starts the worker threads of ELEOS_IOQ_EXEC_WORKER and
 * the idle-CPU monitor AUTO reads. Without it a queue uses the other executors.
 *
 * Kernel: the URING executor needs Linux 6.1 (IORING_SETUP_SINGLE_ISSUER and
 * IORING_SETUP_DEFER_TASKRUN), WORKER and SQPOLL need 5.19 (IORING_SETUP_SUBMIT_ALL,
 * IORING_ASYNC_CANCEL_FD/ALL); a queue whose executor cannot be set up on this kernel gets
 * -ENOSYS from eleos_ioq_create, or, under AUTO, runs on BATCH, which needs no io_uring.
 * The opcodes used (RECV, SEND, RECVMSG, SENDMSG, READ, WRITE, READV, WRITEV, ACCEPT, CLOSE,
 * FSYNC, POLL_ADD, ASYNC_CANCEL, NOP) all predate 5.19.
 *
 * Conventions: fallible functions return 0 (or a count) or a negative errno. Every function
 * of the enclave side runs on the queue's owner thread only (see Ownership), in enclave
 * mode or host mode; host-side functions run in host mode and are MT-safe. Exit counts are
 * per call in enclave mode (host mode makes none): OCALLs and trapped system calls, as
 * eleos_enclave_stats counts them; eleos_ioq_stats' exits counts the OCALLs only.
 */
#ifndef ELEOS_IOQ_H
#define ELEOS_IOQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "eleos/attrs.h"
#include "eleos/enclave.h"

#ifdef __cplusplus
extern "C" {
#endif

enum eleos_ioq_exec {
    ELEOS_IOQ_EXEC_AUTO = 0,
    ELEOS_IOQ_EXEC_URING,
    ELEOS_IOQ_EXEC_WORKER,
    ELEOS_IOQ_EXEC_SQPOLL,
    ELEOS_IOQ_EXEC_BATCH,
    ELEOS_IOQ_NEXEC
};

#define ELEOS_IOQ_MAX_ENTRIES     16384u     /* operations outstanding per queue          */
#define ELEOS_IOQ_DEFAULT_ENTRIES 1024u
#define ELEOS_IOQ_MAX_XFER        (256u << 10) /* bytes per operation                     */
#define ELEOS_IOQ_MAX_IOV         16u        /* iovecs per vectored operation             */
#define ELEOS_IOQ_MAX_NAME        128u       /* socket address bytes (accept, *msg)       */
/* An idle worker spins this long before it sleeps. */
#define ELEOS_IOQ_DEFAULT_WORKER_SPIN_NS 200000u
/* How long a moderated wait holds out for more completions than it was asked for. */
#define ELEOS_IOQ_DEFAULT_MODERATION_NS 200000u

/* Fault injection (tests only): the host forges, replays, reorders and drops completions
 * and rewrites bounce buffers after completing into them. */
#define ELEOS_IOQ_FAULT_FORGE   0x01u /* extra completions with random or stale tags      */
#define ELEOS_IOQ_FAULT_REPLAY  0x02u /* completions posted twice                         */
#define ELEOS_IOQ_FAULT_REORDER 0x04u /* completions of a batch posted in reverse order   */
#define ELEOS_IOQ_FAULT_RESULT  0x08u /* results above the request, errnos out of range   */
#define ELEOS_IOQ_FAULT_BOUNCE  0x10u /* bounce buffers rewritten after completion        */
#define ELEOS_IOQ_FAULT_INDEX   0x20u /* ring indices (CQ tail, SQ head) moved wildly     */
#define ELEOS_IOQ_FAULT_DROP    0x40u /* some completions of NOPs never posted             */

/* A completion as the enclave sees it (validated). res: as the system call returns it, or
 * -errno. flags: 0. data: for a receive queued without a buffer, the res bytes received,
 * in enclave memory the queue owns until the next reap or wait on it; NULL otherwise. */
struct eleos_ioq_cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
    void *data;
};

/* ============================== host side ============================================== */

struct eleos_ioq_service_config {
    unsigned workers;       /* worker threads for ELEOS_IOQ_EXEC_WORKER (0 = 1, max 8)     */
    uint64_t spin_ns;       /* idle spin before a worker sleeps (0 = default)              */
    unsigned fault;         /* ELEOS_IOQ_FAULT_* for every queue (tests), 0 = honest host  */
    uint32_t fault_seed;
};

/* Fills *cfg with the defaults: one worker, ELEOS_IOQ_DEFAULT_WORKER_SPIN_NS, honest host.
 * Pure (no exit, no allocation); any mode, any thread. */
void eleos_ioq_service_config_default(struct eleos_ioq_service_config *cfg);

/* Starts the process's I/O service (host mode): worker threads and the CPU monitor.
 * ELEOS_IOQ_FAULT in the environment (a number of ELEOS_IOQ_FAULT_* bits) overrides
 * cfg->fault: tests run whole servers against a lying host that way.
 * -EALREADY if running, -errno from pthread_create. Queues created before it starts see it
 * from their next wait on. */
ELEOS_MUST_CHECK int eleos_ioq_service_start(const struct eleos_ioq_service_config *cfg);

/* Stops it; queues on the worker executor fall back to URING (or BATCH). Idempotent. */
void eleos_ioq_service_stop(void);

/* Fault injection for queues created from now on and for live ones (tests). */
void eleos_ioq_service_set_fault(unsigned fault);

struct eleos_ioq_service_stats {
    uint64_t submits;       /* io_uring_enter submissions made by workers                   */
    uint64_t sleeps;        /* times a worker went to sleep                                 */
    uint64_t wakes;         /* times an enclave woke a sleeping worker (each an exit)       */
    uint64_t idle_permille; /* idle CPU the monitor last measured, in thousandths of a core */
    unsigned ncpus;
    unsigned workers;
};
/* A snapshot of the service's counters (each read atomically). Host mode; MT-safe. */
void eleos_ioq_service_stats(struct eleos_ioq_service_stats *out);

/* ============================== enclave side =========================================== */

struct eleos_ioq;

/*
 * Completion moderation (as a NIC coalesces interrupts). On URING and BATCH every round of
 * waiting is an exit; a moderated wait asks the host for every operation queued in the
 * queue's last three waits that is still outstanding (a closed-loop server's round; older
 * ones, such as an accept, are not waited for), never fewer than the caller's min, for at
 * most moderation_ns, so one exit carries a whole round of a busy server's requests. When
 * the bound runs out on that ask it falls back to what recent waits delivered and is tried
 * again after a hold that grows with each such miss; a wait still returns as soon as it
 * has what it asked for. AUTO moderates only while the host's monitor reports the
 * machine's CPUs busy (then a request that waits costs no idle CPU and an exit saved is
 * CPU given back); ON always (on URING and BATCH); OFF never. WORKER and SQPOLL post
 * completions while the enclave runs, so their waits are never moderated.
 */
enum eleos_ioq_moderation {
    ELEOS_IOQ_MOD_AUTO = 0,
    ELEOS_IOQ_MOD_OFF,
    ELEOS_IOQ_MOD_ON,
};

struct eleos_ioq_config {
    unsigned entries;        /* operations outstanding at most, power of two (0 = default) */
    enum eleos_ioq_exec exec; /* ELEOS_IOQ_EXEC_AUTO by default                            */
    enum eleos_ioq_moderation moderation; /* ELEOS_IOQ_MOD_AUTO by default                */
    uint32_t moderation_ns;  /* bound of a moderated wait (0 = the default)                */
};

/* Fills *cfg with the defaults: ELEOS_IOQ_DEFAULT_ENTRIES operations, ELEOS_IOQ_EXEC_AUTO,
 * ELEOS_IOQ_MOD_AUTO, ELEOS_IOQ_DEFAULT_MODERATION_NS. Pure; any mode, any thread, no exit. */
void eleos_ioq_config_default(struct eleos_ioq_config *cfg);

/*
 * Creates a queue for the calling thread (enclave mode; host mode works too and makes no
 * exits). enc may be NULL in host mode. Three exits: two blocks of untrusted memory (mmap)
 * and the OCALL that sets up its rings. cfg NULL means the defaults. Errors: -EINVAL (entries
 * not a power of two in [8, ELEOS_IOQ_MAX_ENTRIES], unknown executor, enc NULL in enclave
 * mode), -ENOMEM, -ENOSYS (the executor asked for is not available here; WORKER without
 * eleos_ioq_service_start), -EIO (the host answered with rings that fail validation).
 */
ELEOS_MUST_CHECK int eleos_ioq_create(struct eleos_enclave *enc, const struct eleos_ioq_config *cfg,
                                      struct eleos_ioq **out);

/* Cancels what is outstanding, waits for it (bounded), frees the rings and the queue. NULL
 * is a no-op. Exits: one per executor the queue used (closing its rings) and one per block
 * of untrusted memory freed, its own two and its blocks of bounce buffers (4 for a queue
 * that used one executor and one block), plus the waits for what was in flight. */
void eleos_ioq_destroy(struct eleos_ioq *q);

/*
 * Queueing. Each returns 0 or -EAGAIN (the queue holds `entries` operations: reap first),
 * -EINVAL (bad argument), -ENOMEM (no bounce memory). Nothing reaches the host until
 * eleos_ioq_submit or eleos_ioq_wait. user_data comes back in the completion.
 * No exit, except one (mmap) when the queue needs a new block of bounce memory (freed
 * buffers are kept for reuse), and a submit (as eleos_ioq_submit) when the submission ring
 * is full.
 */
ELEOS_MUST_CHECK int eleos_ioq_nop(struct eleos_ioq *q, uint64_t user_data);
ELEOS_MUST_CHECK int eleos_ioq_recv(struct eleos_ioq *q, int fd, void *buf, size_t len, int flags,
                                    uint64_t user_data);
ELEOS_MUST_CHECK int eleos_ioq_send(struct eleos_ioq *q, int fd, const void *buf, size_t len,
                                    int flags, uint64_t user_data);
/* msg->msg_iov buffers, msg_name (msg_namelen bytes): as recv/send. Ancillary data is not
 * supported (-EINVAL). On reap of recvmsg, msg_namelen and msg_flags are updated. */
ELEOS_MUST_CHECK int eleos_ioq_recvmsg(struct eleos_ioq *q, int fd, struct msghdr *msg, int flags,
                                       uint64_t user_data);
ELEOS_MUST_CHECK int eleos_ioq_sendmsg(struct eleos_ioq *q, int fd, const struct msghdr *msg,
                                       int flags, uint64_t user_data);
/* off = -1: the file position (read/write); otherwise pread/pwrite. */
ELEOS_MUST_CHECK int eleos_ioq_read(struct eleos_ioq *q, int fd, void *buf, size_t len,
                                    int64_t off, uint64_t user_data);
ELEOS_MUST_CHECK int eleos_ioq_write(struct eleos_ioq *q, int fd, const void *buf, size_t len,
                                     int64_t off, uint64_t user_data);
ELEOS_MUST_CHECK int eleos_ioq_readv(struct eleos_ioq *q, int fd, const struct iovec *iov,
                                     int iovcnt, int64_t off, uint64_t user_data);
ELEOS_MUST_CHECK int eleos_ioq_writev(struct eleos_ioq *q, int fd, const struct iovec *iov,
                                      int iovcnt, int64_t off, uint64_t user_data);
/* addr/addrlen may be NULL; the new descriptor gets SOCK_NONBLOCK|SOCK_CLOEXEC from flags
 * as accept4 would. */
ELEOS_MUST_CHECK int eleos_ioq_accept(struct eleos_ioq *q, int fd, struct sockaddr *addr,
                                      socklen_t *addrlen, int flags, uint64_t user_data);
ELEOS_MUST_CHECK int eleos_ioq_close(struct eleos_ioq *q, int fd, uint64_t user_data);
ELEOS_MUST_CHECK int eleos_ioq_fsync(struct eleos_ioq *q, int fd, bool datasync,
                                     uint64_t user_data);
/* Readiness wait: completes with the poll(2) events that are ready (POLLIN, POLLOUT…). */
ELEOS_MUST_CHECK int eleos_ioq_poll(struct eleos_ioq *q, int fd, short events,
                                    uint64_t user_data);
/* Cancels every outstanding operation on fd (they complete with -ECANCELED, or with their
 * result if they had finished); this one completes with the number cancelled or -ENOENT. */
ELEOS_MUST_CHECK int eleos_ioq_cancel_fd(struct eleos_ioq *q, int fd, uint64_t user_data);

/* Hands everything queued to the executor (an exit only where the executor needs one).
 * Returns the number of operations handed over. Exits: URING and BATCH one when anything is
 * queued, none otherwise; WORKER and SQPOLL none while their thread is awake, one to wake
 * it (or, with no worker running, to submit). */
ELEOS_MUST_CHECK int eleos_ioq_submit(struct eleos_ioq *q);

/* Validated completions that are ready, up to max, without waiting or exiting (no exit).
 * Returns how many were stored in cqes. */
ELEOS_MUST_CHECK int eleos_ioq_reap(struct eleos_ioq *q, struct eleos_ioq_cqe *cqes, unsigned max);

/*
 * Submits what is queued, then returns when at least min completions (capped at what is
 * outstanding) are reaped into cqes, or timeout_ns has passed (0: do not wait; UINT64_MAX:
 * no limit). Returns the number reaped (possibly fewer than min on timeout), or -EINVAL
 * (cqes NULL or max 0). Exits: none when enough completions are ready (or, on WORKER and
 * SQPOLL, arrive while it spins); else one per round of waiting, which on URING and BATCH
 * also submits what is queued (one exit for queued work that completes at once).
 */
ELEOS_MUST_CHECK int eleos_ioq_wait(struct eleos_ioq *q, struct eleos_ioq_cqe *cqes, unsigned max,
                                    unsigned min, uint64_t timeout_ns);

/* Completion moderation in force, and a way to set it (see enum eleos_ioq_moderation).
 * set_moderation: 0 or -EINVAL (unknown mode). moderating: true if the next wait on URING
 * or BATCH may hold out for more than its min. No exit. */
ELEOS_MUST_CHECK int eleos_ioq_set_moderation(struct eleos_ioq *q, enum eleos_ioq_moderation mode);
bool eleos_ioq_moderating(const struct eleos_ioq *q);

/* The idle CPU the host's monitor last reported, in thousandths of a core: what AUTO's
 * choices read (idle time plus the time the service's own workers spent spinning, which
 * they would give up), or -1 when no monitor runs (no service started). The host's word:
 * a program may steer by it, never rely on it. Any mode, any thread, no exit. */
int64_t eleos_ioq_host_idle(const struct eleos_ioq *q);

/* True while the queue runs on WORKER and the host's monitor reports the service's workers
 * waiting for a CPU (10 % of the time or more, over its last period): completions then
 * arrive only when a worker gets a core, and threads that spin for them (polling with a
 * zero timeout) take it from the worker. Such threads should wait instead (a wait with a
 * timeout spins briefly, then sleeps). False on every other executor. The host's word: a
 * program may steer by it, never rely on it. No exit. */
bool eleos_ioq_poller_starved(const struct eleos_ioq *q);

/* Operations queued or in flight (not yet reaped). No exit. */
unsigned eleos_ioq_outstanding(const struct eleos_ioq *q);

/* The executor new operations go to now, and a way to force one (AUTO returns to adaptive).
 * set_executor: 0, -EINVAL (unknown executor) or -ENOSYS if that executor is not available
 * (the one in force stays). Exits: one to set up the rings of an executor the queue has not
 * used yet, plus the submits and cancels that move what is in flight; none to return to one
 * it has. executor and exec_name ("?" for an unknown value): no exit. */
enum eleos_ioq_exec eleos_ioq_executor(const struct eleos_ioq *q);
ELEOS_MUST_CHECK int eleos_ioq_set_executor(struct eleos_ioq *q, enum eleos_ioq_exec exec);
const char *eleos_ioq_exec_name(enum eleos_ioq_exec exec);
/* Parses "auto", "uring", "worker", "sqpoll", "batch"; -EINVAL otherwise (s may be NULL).
 * Any mode, any thread, no exit. */
int eleos_ioq_exec_parse(const char *s, enum eleos_ioq_exec *out);

struct eleos_ioq_stats {
    uint64_t ops;           /* operations queued                                         */
    uint64_t completions;   /* completions reaped (validated)                            */
    uint64_t exits;         /* exits (OCALLs) the queue made                             */
    uint64_t enters;        /* of those: submit/wait batches                             */
    uint64_t wakes;         /* of those: to wake a sleeping worker or polling thread     */
    uint64_t spins;         /* waits satisfied by spinning on the ring, without an exit  */
    uint64_t host_faults;   /* completions or indices that failed validation             */
    uint64_t bad_results;   /* results out of range, turned into -EIO                    */
    uint64_t switches;      /* executor changes made by AUTO                             */
    uint64_t moderated;     /* waits that asked the host for more than their min        */
    uint64_t mod_timeouts;  /* of those: ended by the moderation bound with fewer       */
    uint64_t by_exec[ELEOS_IOQ_NEXEC]; /* operations submitted per executor              */
    uint64_t trials;        /* AUTO: executors tried against the one in use (measured)   */
    uint64_t trials_won;    /* of those: the one tried was kept                          */
};

/* The queue's counters (the owner thread, or any thread for an approximate snapshot). No
 * exit. */
void eleos_ioq_stats(const struct eleos_ioq *q, struct eleos_ioq_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* ELEOS_IOQ_H */
