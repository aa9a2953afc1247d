/*
 * eleos/enclave.h — the SGX platform interface.
 *
 * Everything in Eleos (exitless RPC, SUVM, the applications) is written against this
 * interface. The only backend today is the SGX platform emulator in src/sim, which enforces
 * SGX's rules with real Linux mechanisms and charges SGX's published costs through a cost
 * model that measures its own mechanism on the machine it runs on and busy-waits only what
 * is missing to reach the published totals (see "The cost model" below). Its rules:
 *
 *   - ELRANGE: one reserved mapping per enclave. The enclave heap is carved only from it.
 *   - EPC: a cap on resident ELRANGE pages. Touching a non-resident page is an asynchronous
 *     exit (a real SIGSEGV); the emulated driver seals a victim page with AES-GCM into
 *     untrusted swap and opens and verifies the faulting page.
 *   - Enclave mode: a thread inside an ECALL runs with Linux Syscall User Dispatch in BLOCK
 *     mode, so every system call it makes traps (SIGSYS) and becomes a counted, charged exit.
 *
 * What the emulator takes over in the process: the SIGSYS and SIGSEGV handlers (installed
 * with the raw rt_sigaction syscall on the first eleos_enclave_create). SIGSEGVs outside any
 * ELRANGE are passed to the handler that was installed before (or the default action).
 * Enclave code may not install handlers for SIGSYS/SIGSEGV, create threads or processes, or
 * change Syscall User Dispatch; such calls fail with -EPERM, as they cannot happen in SGX.
 *
 * Requirements: Linux 5.11 or later on x86-64 (Syscall User Dispatch,
 * PR_SET_SYSCALL_USER_DISPATCH); on an older kernel eleos_enclave_create returns -ENOSYS.
 * The batched I/O queue (eleos/ioq.h) uses io_uring where the kernel has what it needs:
 * Linux 6.1 for ELEOS_IOQ_EXEC_URING (IORING_SETUP_SINGLE_ISSUER 6.0, DEFER_TASKRUN 6.1),
 * 5.19 for the WORKER and SQPOLL executors (IORING_SETUP_SUBMIT_ALL 5.18, cancel by
 * descriptor IORING_ASYNC_CANCEL_FD 5.19); without them queues run on ELEOS_IOQ_EXEC_BATCH.
 *
 * Conventions: fallible functions return 0 or a negative errno. Unless said otherwise every
 * function is MT-safe. "Host mode" is a thread outside any ECALL (or inside an OCALL),
 * "enclave mode" a thread inside an ECALL; a function marked for one mode may misbehave or
 * return -EPERM in the other. "No exit" means the call leaves the enclave neither through
 * an OCALL nor through a trapped system call.
 */
#ifndef ELEOS_ENCLAVE_H
#define ELEOS_ENCLAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eleos/attrs.h"

#ifdef __cplusplus
extern "C" {
#endif


/* Page size of ELRANGE and EPC (SGX uses 4 KiB pages). */
#define ELEOS_PAGE_SIZE 4096u

/* Defaults. The EPC default is the usable part of SGX1's 128 MiB PRM. */
#define ELEOS_ENCLAVE_DEFAULT_ELRANGE_SIZE (4ull << 30)
#define ELEOS_ENCLAVE_DEFAULT_EPC_SIZE     (93ull << 20)

/* Number of syscall numbers tracked individually in the statistics. */
#define ELEOS_ENCLAVE_NSYSCALLS 512

/*
 * The cost model: what the emulator cannot make real, it charges as a TSC busy-wait.
 *
 * The fields are TARGETS: the total cost of one event as SGX would pay it. The emulator
 * measures what its own mechanism for that event costs on the machine it runs on (once per
 * process, lazily at the first eleos_enclave_create that needs it, or eleos_cost_calibrate();
 * see docs/emulator.md, "Calibration") and charges only the difference:
 *     extra = max(0, target - measured mechanism),   effective = mechanism + extra.
 * Where the mechanism alone exceeds a target, nothing can be subtracted: the event costs
 * more than the target and eleos_cost_calibration_get() reports it (over_target).
 *   - an OCALL / ECALL round trip (EEXIT + EENTER) totals about 8,200 cycles (HotCalls);
 *   - the exit of a trapped syscall (the SDK's syscall OCALL) likewise, on top of the
 *     syscall's own work;
 *   - an EPC page swap (AEX + EWB + ELDU + ERESUME: the fault that loads a page back,
 *     including the eviction that made room) totals about 40,000 cycles (VAULT).
 * A target of 0 turns that charge off. Each field can also be set through the environment
 * (names in brackets), which overrides the config; eleos_cost_model_default() reads it.
 * With raw set (ELEOS_COST_RAW=1) the *_cycles fields are instead extras charged as given,
 * with no calibration: for experiments that need an exact, machine-independent surcharge.
 */
struct eleos_cost_model {
    uint64_t ecall_cycles;      /* target per ECALL round trip [ELEOS_COST_ECALL]     */
    uint64_t ocall_cycles;      /* target per explicit OCALL   [ELEOS_COST_OCALL]     */
    uint64_t syscall_cycles;    /* target per syscall trapped in enclave mode (the exit
                                   part: the SIGSYS round trip + extra)
                                                               [ELEOS_COST_SYSCALL]   */
    uint64_t epc_fault_cycles;  /* target per EPC swap: a fault that loads a page from
                                   swap, including the eviction that made room; the
                                   extra is charged at the load [ELEOS_COST_EPC_FAULT] */
    uint64_t epc_evict_cycles;  /* explicit extra per page written back (EWB), default 0:
                                   the swap target already includes the eviction
                                                               [ELEOS_COST_EPC_EVICT] */
    uint32_t pollute_kib;       /* KiB of untrusted scratch touched per exit to model TLB
                                   and LLC pollution; 0 = off  [ELEOS_COST_POLLUTE_KIB] */
    bool raw;                   /* fields above are extras, no calibration [ELEOS_COST_RAW] */
};

/* Default targets (cycles): the published totals. */
#define ELEOS_COST_DEFAULT_ECALL      8200u
#define ELEOS_COST_DEFAULT_OCALL      8200u
#define ELEOS_COST_DEFAULT_SYSCALL    8200u
#define ELEOS_COST_DEFAULT_EPC_FAULT  40000u
#define ELEOS_COST_DEFAULT_EPC_EVICT  0u

/* Fills *m with the default targets, then applies ELEOS_COST_* environment overrides.
 * ELEOS_COST=0 in the environment turns every charge off. Either mode, no exit. */
void eleos_cost_model_default(struct eleos_cost_model *m);

/* A model that charges nothing (only the real mechanism is paid). Either mode, no exit. */
void eleos_cost_model_off(struct eleos_cost_model *m);

/* --- Calibration ------------------------------------------------------------------------ */

enum eleos_cost_event {
    ELEOS_COST_EV_ECALL = 0,    /* null ECALL round trip                                 */
    ELEOS_COST_EV_OCALL = 1,    /* null OCALL round trip                                 */
    ELEOS_COST_EV_SYSCALL = 2,  /* exit part of a trapped syscall (trapped - native)     */
    ELEOS_COST_EV_EPC_SWAP = 3, /* EPC fault loading a page from swap, with its eviction */
    ELEOS_COST_NEVENTS = 4,
};

struct eleos_cost_event_calibration {
    uint64_t mechanism;         /* measured cycles of the emulator's own mechanism (median) */
    uint64_t target;            /* the model's target (0 in raw mode)                     */
    uint64_t extra;             /* cycles busy-waited per event                           */
    uint64_t effective;         /* mechanism + extra: what one event costs here           */
    bool over_target;           /* the mechanism alone exceeds the target                 */
};

struct eleos_cost_calibration {
    struct eleos_cost_event_calibration ev[ELEOS_COST_NEVENTS];
    bool raw;                   /* the model was in raw mode (extras as given)            */
    double elapsed_ms;          /* how long the one measurement took                      */
};

/* Measures the mechanism costs now if not done yet in this process (a few ms; cached).
 * Host mode only (-EPERM in enclave mode); once done, it returns 0 in either mode with no
 * exit. 0 or a negative errno of enclave creation. */
ELEOS_MUST_CHECK int eleos_cost_calibrate(void);

/* The calibration applied to model m (calibrating first if needed). 0 or a negative errno
 * (as eleos_cost_calibrate: -EPERM if it must calibrate in enclave mode). Either mode once
 * the process is calibrated, then no exit. */
ELEOS_MUST_CHECK int eleos_cost_calibration_get(const struct eleos_cost_model *m,
                                                struct eleos_cost_calibration *out);

/* Writes one line (no newline) of effective cost per event against its target, snprintf
 * style: returns the length it needed. Either mode, no exit. */
int eleos_cost_calibration_format(const struct eleos_cost_calibration *c, char *buf,
                                  size_t size);

/* "ecall", "ocall", "syscall-exit", "epc-swap"; "?" for any other value. Either mode, no
 * exit. */
const char *eleos_cost_event_name(enum eleos_cost_event ev);

/* What to do when a swapped-out page fails verification (tampered or replayed swap). */
enum eleos_integrity_policy {
    /* The enclave is lost: the ECALL in progress returns -EBADMSG, so does every later one
     * (like SGX_ERROR_ENCLAVE_LOST). The faulting thread never sees the bad data. */
    ELEOS_INTEGRITY_LOSE_ENCLAVE = 0,
    /* Print a diagnostic and abort the process. */
    ELEOS_INTEGRITY_ABORT = 1,
};

struct eleos_enclave_config {
    uint64_t elrange_size;      /* bytes of ELRANGE (rounded up to 64 MiB), 0 = default */
    uint64_t epc_size;          /* this enclave's EPC limit in bytes (rounded down to
                                   pages; misc.max of the sgx_epc cgroup), 0 = default;
                                   above the platform's capacity it means "unlimited"   */
    bool enforce;               /* trap syscalls in enclave mode (default true)          */
    bool print_stats;           /* print the statistics table on destroy                 */
    enum eleos_integrity_policy integrity_policy;
    struct eleos_cost_model cost;
    const char *name;           /* for messages; copied; NULL = "enclave"                */
    /* The platform EPC this enclave shares with every other enclave on it (see "Platform
     * EPC" below). NULL = $ELEOS_EPC_PLATFORM, else "default"; "private" = an EPC of its
     * own of epc_size (no sharing). Names: 1-63 of [A-Za-z0-9._-], not starting with '.'. */
    const char *epc_platform;
    /* Capacity in bytes if this enclave creates the platform; 0 = $ELEOS_EPC_CAPACITY
     * (bytes, optional K/M/G suffix), else 93 MiB. Joining an existing platform whose
     * capacity differs from an explicit request fails with -EEXIST. */
    uint64_t epc_platform_capacity;
};

/* Defaults: 4 GiB ELRANGE, 93 MiB EPC, enforcement on, cost model from
 * eleos_cost_model_default(), ELEOS_ENFORCE=0 in the environment turns enforcement off.
 * Either mode, no exit. */
void eleos_enclave_config_default(struct eleos_enclave_config *cfg);

struct eleos_enclave;

/* Creates an enclave (host mode). *out is owned by the caller until eleos_enclave_destroy.
 * Errors: -EINVAL (bad config), -ENOMEM, -ENOSYS (kernel without Syscall User Dispatch),
 * -EEXIST (platform capacity mismatch), -EBADMSG (the platform's shared table is corrupt),
 * -ENOSPC (the platform has no free enclave slot), or an errno of opening the table. */
ELEOS_MUST_CHECK int eleos_enclave_create(const struct eleos_enclave_config *cfg,
                                          struct eleos_enclave **out);

/* After fork, the child's copy of every enclave is lost: ECALLs return -EBADMSG, its heap
 * hands out nothing, trim and evict_page return -EBADMSG, destroy frees only the child's
 * bookkeeping. The child may create enclaves of its own (docs/emulator.md, "fork"). */

/* Destroys an enclave (host mode). No thread may be inside it. Its heap and ELRANGE
 * contents are gone after the call; every pointer into it is invalid. Prints the statistics
 * if configured. enc NULL is a no-op. */
void eleos_enclave_destroy(struct eleos_enclave *enc);

/* --- Transitions ------------------------------------------------------------------------ */

typedef long (*eleos_enclave_fn)(void *arg);

/*
 * ECALL: runs fn(arg) in enclave mode on the calling thread and returns 0, storing fn's
 * result in *ret (may be NULL). Several threads may be inside one enclave at once; ECALLs
 * nest inside OCALLs. Returns -EBADMSG if the enclave is lost (integrity failure), before
 * or during the call. arg is passed through untouched (the emulator does not marshal).
 * Host mode (or inside an OCALL): -EPERM in enclave mode, where SGX forbids EENTER. Also
 * -EINVAL (NULL enc or fn), or the errno of enabling Syscall User Dispatch on this thread.
 */
ELEOS_MUST_CHECK int eleos_enclave_ecall(struct eleos_enclave *enc, eleos_enclave_fn fn,
                                         void *arg, long *ret);

/*
 * OCALL: from enclave mode, runs fn(arg) in host mode on the calling thread and returns its
 * result. Counted and charged as one exit round trip. Called in host mode, it just calls
 * fn (no transition is counted).
 */
long eleos_enclave_ocall(eleos_enclave_fn fn, void *arg);

/* The enclave the calling thread is executing in, or NULL in host mode. No exit. */
struct eleos_enclave *eleos_enclave_current(void);

/* True while the calling thread runs enclave code (inside an ECALL, not in an OCALL).
 * No exit. */
bool eleos_enclave_in_enclave_mode(void);

/* --- Memory ----------------------------------------------------------------------------- */

/*
 * The enclave heap. Memory comes only from the enclave's ELRANGE (a mimalloc arena), so it
 * counts against the EPC and is paged by the emulated driver. Callable in enclave or host
 * mode, from any thread; makes no system call (no exit). Returns NULL on exhaustion (errno
 * untouched).
 * eleos_enclave_free(enc, NULL) is a no-op; freeing a pointer not from this enclave's heap
 * aborts (our bug or the caller's, never a host input).
 */
void *eleos_enclave_malloc(struct eleos_enclave *enc, size_t size);
void *eleos_enclave_calloc(struct eleos_enclave *enc, size_t count, size_t size);
void *eleos_enclave_realloc(struct eleos_enclave *enc, void *p, size_t size);
void *eleos_enclave_aligned_alloc(struct eleos_enclave *enc, size_t alignment, size_t size);
void eleos_enclave_free(struct eleos_enclave *enc, void *p);

/*
 * Gives the EPC pages of [addr, addr+size) back, like SGX2's page trimming or
 * madvise(MADV_DONTNEED): every whole page in the range loses its contents (resident or
 * swapped out) and its EPC frame; the next touch commits a zero page. Partial pages at the
 * ends are left alone. This is how an enclave returns memory it no longer needs (SUVM's
 * balloon) without waiting for the driver to page it out. The caller guarantees no thread
 * uses the range; trim heap memory before freeing it (the allocator writes into freed
 * blocks). 0, -EINVAL (not inside ELRANGE), -EBADMSG (forked child) or -EIO. Either mode;
 * makes no exit.
 */
ELEOS_MUST_CHECK int eleos_enclave_trim(struct eleos_enclave *enc, void *addr, size_t size);

/* Untrusted (host) memory: page-aligned, zeroed, outside every ELRANGE. Usable from both
 * modes; allocation in enclave mode is an OCALL in real SGX and is one counted exit here
 * (the trapped mmap, in syscall_exits), as is freeing (munmap). NULL on failure. */
void *eleos_untrusted_alloc(size_t size);
void eleos_untrusted_free(void *p, size_t size);

/*
 * Crossing the trust boundary with a buffer (ECALL arguments, a host function's results):
 * eleos_copy_in copies size bytes from untrusted memory into dst, eleos_copy_out copies
 * size bytes from src to untrusted memory. In enclave mode the untrusted range must lie
 * entirely outside the calling enclave, else nothing is copied and -EFAULT is returned (a
 * host must not be able to make the enclave read or overwrite its own memory through an
 * argument). Read once: validate what was copied, never the source again. In host mode
 * they are plain copies. 0 or -EFAULT (also for NULL with a non-zero size). No exit.
 */
ELEOS_MUST_CHECK int eleos_copy_in(void *dst, const void *untrusted_src, size_t size);
ELEOS_MUST_CHECK int eleos_copy_out(void *untrusted_dst, const void *src, size_t size);

/* The two sides of eleos_ocall_buffers (below). */
struct eleos_ocall_args;
typedef long (*eleos_host_fn)(struct eleos_ocall_args *a);

struct eleos_ocall_args {       /* what the host function gets: untrusted memory only      */
    const void *in;             /* the [in] bytes (a host copy)                              */
    size_t in_size;
    void *out;                  /* room for the [out] bytes                                  */
    size_t out_size;
    size_t out_len;             /* set by the host function: bytes written to out            */
    void *user;                 /* eleos_ocall_buffers' user argument                        */
    eleos_host_fn fn_;          /* private                                                   */
};

struct eleos_ocall_buf {        /* the enclave's side                                        */
    const void *in;             /* [in] bytes, or NULL with in_size 0                        */
    size_t in_size;
    void *out;                  /* [out] buffer, or NULL with out_size 0                     */
    size_t out_size;            /* its capacity                                              */
    size_t out_len;             /* on success: bytes copied into out (<= out_size)           */
};

/*
 * Host functions of one's own, with buffers: the contract edger8r's [in], [out] and [size]
 * give SGX SDK users. Enclave code calls eleos_ocall_buffers(fn, user, &b, &ret):
 *   1. the b.in_size bytes at b.in ([in]) are copied into untrusted memory;
 *   2. fn runs in host mode (one OCALL, one counted exit) with a struct eleos_ocall_args
 *      whose pointers all lie in that untrusted memory: the copy of the [in] bytes, and
 *      out_size bytes of room for its [out] bytes. It writes at most out_size bytes to out,
 *      stores how many in out_len and returns any long (ret gets it);
 *   3. the enclave reads out_len once: if it exceeds b.out_size the call fails with -EIO
 *      and nothing is copied; else out_len bytes are copied into b.out and b.out_len is set.
 * The host function never sees an enclave address and cannot make the enclave read or write
 * out of bounds; what it wrote is still the host's data: validate it (and ret) as any host
 * value. Passing the same buffer as in and out gives [in, out]. user is passed through as
 * is: an integer or a host pointer, never an enclave one (the host may read what it names).
 * Limits: in_size and out_size at most 1 GiB each. The untrusted memory is a per-thread
 * scratch block kept for the next call (growing it is one more exit, mmap; the first call
 * on a thread makes it: 2 exits then); eleos_ocall_buffers_release frees the calling
 * thread's (one exit, munmap, if it has one).
 * Callable in host mode too (plain calls, no exit). 0, -EINVAL (NULL buffer with a size,
 * size above the limit, no fn), -ENOMEM (no scratch block), -EIO (out_len > out_size).
 */
ELEOS_MUST_CHECK int eleos_ocall_buffers(eleos_host_fn fn, void *user, struct eleos_ocall_buf *b,
                                         long *ret);
void eleos_ocall_buffers_release(void);

/* True if [p, p+size) lies entirely inside enc's ELRANGE. size 0 checks just p. Either
 * mode, no exit. */
bool eleos_enclave_within(const struct eleos_enclave *enc, const void *p, size_t size);

/* True if [p, p+size) lies entirely outside enc's ELRANGE (overflow counts as inside).
 * Either mode, no exit. */
bool eleos_enclave_outside(const struct eleos_enclave *enc, const void *p, size_t size);

/* The live enclave whose ELRANGE holds p, or NULL (host memory, or an enclave already
 * destroyed). Callable in either mode, makes no system call. For allocators shared by both
 * modes (a library's malloc hooks): free a pointer on the heap it came from. */
struct eleos_enclave *eleos_enclave_containing(const void *p);

/* ELRANGE bounds (for tests and diagnostics). Either mode, no exit. */
void eleos_enclave_elrange(const struct eleos_enclave *enc, void **base, size_t *size);

/* --- Statistics ------------------------------------------------------------------------- */

struct eleos_enclave_stats {
    uint64_t ecalls;            /* ECALL round trips                                       */
    uint64_t ocalls;            /* explicit OCALL round trips                              */
    uint64_t syscall_exits;     /* syscalls trapped in enclave mode (each an exit)         */
    uint64_t syscalls[ELEOS_ENCLAVE_NSYSCALLS]; /* syscall_exits by syscall number         */
    uint64_t syscalls_denied;   /* of those, refused with -EPERM (clone, execve, …)        */
    uint64_t aex;               /* asynchronous exits: EPC faults (swap-ins) taken in enclave
                                   mode; first touches (epc_commits) are not exits          */
    uint64_t epc_commits;       /* first touch of an ELRANGE page (zero page, no swap-in)  */
    uint64_t epc_faults;        /* faults that loaded a page back from swap (ELDU)         */
    uint64_t epc_evictions;     /* pages evicted from the EPC (EWB)                        */
    uint64_t epc_trimmed;       /* pages given back with eleos_enclave_trim                */
    uint64_t pages_sealed;      /* pages encrypted into swap                               */
    uint64_t pages_opened;      /* pages decrypted and verified from swap                  */
    uint64_t integrity_failures;/* swap pages that failed verification                    */
    uint64_t epc_resident;      /* pages resident now                                      */
    uint64_t epc_resident_max;  /* high-water mark of resident pages                       */
    uint64_t epc_capacity;      /* the cap, in pages                                       */
    uint64_t cycles_charged;    /* modeled cycles busy-waited by the cost model            */
    uint64_t host_allocs;       /* host malloc/calloc/realloc calls made in enclave mode:  */
                                /* untrusted memory (use eleos_enclave_malloc); see        */
                                /* ELEOS_HOST_ALLOC in docs/emulator.md                    */
    uint64_t epc_swapped;       /* pages now only in swap (sealed out, not trimmed): with   */
                                /* epc_resident, the enclave's whole EPC footprint          */
};

/* Copies a snapshot of the counters (each read atomically; not one global instant).
 * Either mode, no exit. */
void eleos_enclave_stats(const struct eleos_enclave *enc, struct eleos_enclave_stats *out);

/* Zeroes the counters (not epc_resident / epc_capacity). Either mode, no exit; a count
 * made by another thread at the same moment may survive the reset. */
void eleos_enclave_stats_reset(struct eleos_enclave *enc);

/* Prints a readable table of the statistics to fd (host mode only: it writes). Flushes
 * every stdio output stream first, so what the program printed before comes before the
 * table. Write errors are ignored. */
void eleos_enclave_stats_print(const struct eleos_enclave *enc, int fd);

/* The configuration in force (cost model after environment overrides). Either mode, no
 * exit. out->name points into enc: valid until eleos_enclave_destroy. */
void eleos_enclave_get_config(const struct eleos_enclave *enc, struct eleos_enclave_config *out);

/* The calibration of enc's cost model: eleos_cost_calibration_get(&its model, out), with
 * its errors and modes (no exit once the process is calibrated). */
ELEOS_MUST_CHECK int eleos_enclave_cost_calibration(const struct eleos_enclave *enc,
                                                    struct eleos_cost_calibration *out);

/* --- Time ------------------------------------------------------------------------------- */

/* TSC read and its frequency in GHz (measured once per process against CLOCK_MONOTONIC
 * through the vDSO: the first call spins about 20 ms). Either mode, no exit, never fail. */
uint64_t eleos_tsc(void);
double eleos_tsc_ghz(void);

/* --- Host-side view of swap: the adversary's handle, for tests and fault injection ------ */

/*
 * Returns the untrusted swap slot holding the sealed copy of ELRANGE page addr (4096 bytes
 * of ciphertext; *tag gets its 16-byte MAC), or NULL if that page has never been swapped
 * out. The host may rewrite these at will; the enclave must detect it. Host mode only.
 */
void *eleos_enclave_swap_slot(struct eleos_enclave *enc, const void *addr, uint8_t **tag);

/* Forces the page holding addr out of the EPC now (as the driver would under pressure).
 * 0, -EINVAL (not in ELRANGE), or -ENOENT (not resident). Host mode only. */
ELEOS_MUST_CHECK int eleos_enclave_evict_page(struct eleos_enclave *enc, const void *addr);

/* --- Platform EPC ------------------------------------------------------------------------
 *
 * Every enclave of a machine shares one EPC: a named platform whose accounting lives in
 * /dev/shm/eleos-epc-<name>, shared by the enclaves of every process that uses the name.
 * When it is full, the faulting enclave's emulator reclaims pages, enclaves over their fair
 * share first (docs/emulator.md, "The platform EPC"). Each enclave also has a limit (max),
 * as the sgx_epc resource of the Linux misc cgroup: over it, the enclave pages out its own
 * pages; it is never killed.
 */

struct eleos_epc_status {
    uint64_t capacity;          /* platform capacity (pages)                                */
    uint64_t used;              /* pages resident on the whole platform                     */
    uint64_t current;           /* this enclave's resident pages                            */
    uint64_t max;               /* this enclave's limit (pages; capacity = unlimited)       */
    uint64_t share;             /* pages it may hold without causing reclaim (see below)    */
    uint64_t generation;        /* the platform's share-change counter                      */
    uint64_t id;                /* this enclave's id on the platform (eleos-epc shows it)   */
    uint64_t swapped;           /* this enclave's pages now in swap: current + swapped is   */
                                /* its footprint, what it would hold with room for all      */
    uint32_t enclaves;          /* enclaves on the platform                                 */
};

/* Fills *out. Host or enclave mode, no system call (no exit). 0, or -EBADMSG in a forked
 * child. Untrusted like the share (below). */
ELEOS_MUST_CHECK int eleos_enclave_epc_status(const struct eleos_enclave *enc,
                                              struct eleos_epc_status *out);

/*
 * The enclave's share, in pages: min(max, its max-min fair share of the capacity among the
 * platform's enclaves). What an enclave may keep resident without making anyone reclaim; a
 * page cache (SUVM) sizes itself to it. Callable in either mode with no exit.
 *
 * Computed from the shared table, which the host can rewrite: an enclave must treat it as a
 * hint, clamp it to bounds it can live with, and never size memory it trusts from it without
 * that clamp. 0 in a forked child.
 */
uint64_t eleos_enclave_epc_share(const struct eleos_enclave *enc);

/* The platform's generation: it changes whenever any enclave's share may have changed (an
 * enclave came or went, a max changed). Reading it is one load of shared memory (no exit),
 * so a page cache can compare it on its own schedule and recompute its share only when it
 * moved. Untrusted like the share: a host can change it at will (costing only a recompute)
 * or freeze it (the share is then recomputed on the cache's own bounded schedule). Either
 * mode. */
uint64_t eleos_enclave_epc_generation(const struct eleos_enclave *enc);

/* Sets the enclave's limit (bytes, rounded down to pages, at least 16 pages; 0 or above the
 * capacity = unlimited). Over it, the enclave's next fault (and its process's reclaimer at
 * once) pages out its own pages down to it. Host mode. 0, -EINVAL, -EBADMSG (forked child). */
ELEOS_MUST_CHECK int eleos_enclave_epc_set_max(struct eleos_enclave *enc, uint64_t bytes);

/* A platform seen from outside, for tools (tools/eleos-epc). */
struct eleos_epc_platform_entry {
    uint64_t id;
    uint32_t pid;
    bool alive;                 /* the owning process still runs                            */
    uint64_t current, max, commits, faults, evictions;
    char name[56];
};

struct eleos_epc_platform_info {
    uint64_t capacity, used, generation, overcommits;
    uint32_t enclaves;
};

/* Reads the platform's table (NULL name: the default as for enclaves). Up to n entries go to
 * entries (may be NULL with n 0); *found gets how many exist. 0, -ENOENT (no such platform),
 * -EBADMSG (corrupt table), -EINVAL (bad name). Host mode (it opens the table), for tools;
 * needs no enclave in the process. */
ELEOS_MUST_CHECK int eleos_epc_platform_read(const char *name, struct eleos_epc_platform_info *info,
                                             struct eleos_epc_platform_entry *entries, size_t n,
                                             size_t *found);

/* Sets the limit of enclave id on the platform (bytes; 0 = unlimited), as writing misc.max.
 * The owner applies it at its next fault and its reclaimer at once. 0, -ENOENT (no such
 * platform or enclave), -EBADMSG, -EINVAL. Host mode (it opens the table), for tools. */
ELEOS_MUST_CHECK int eleos_epc_platform_set_max(const char *name, uint64_t id, uint64_t bytes);

/* True once an integrity failure has lost the enclave. Either mode, no exit. */
bool eleos_enclave_is_lost(const struct eleos_enclave *enc);

#ifdef __cplusplus
}
#endif
#endif /* ELEOS_ENCLAVE_H */
