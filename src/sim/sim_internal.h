/*
 * Internals of the SGX platform emulator. Shared by sim_*.c only.
 *
 * Trust: everything in src/sim plays the role of the CPU and the SGX driver. Its own
 * metadata (page states, versions, the sealing key) lives in ordinary process memory that
 * the emulator treats as "hardware"; the swap area is untrusted and may be rewritten by the
 * host at any time.
 */
#ifndef ELEOS_SIM_INTERNAL_H
#define ELEOS_SIM_INTERNAL_H

#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <ucontext.h>

#include "common/gcm.h"
#include "common/spinlock.h"
#include "eleos/enclave.h"

/* --- allowed range (trampoline.S) --------------------------------------------------------- */
extern char eleos_sim_allowed_start[];
extern char eleos_sim_allowed_end[];
extern char eleos_sim_sigreturn_insn[];
void eleos_sim_restorer(void);
long eleos_sim_raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

#define SIM_SELECTOR_ALLOW 0
#define SIM_SELECTOR_BLOCK 1

/* --- spin locks: common/spinlock.h; this variant yields the CPU after a bounded spin ----- */
void sim_spin_lock_yield(struct eleos_spinlock *l); /* host mode / handlers only */

/* --- per-thread state ------------------------------------------------------------------- */
struct sim_thread {
    /* Syscall User Dispatch selector byte the kernel reads on every syscall. Written only by
     * this thread (plain stores suffice: the kernel reads it on this thread's syscalls). */
    volatile char selector;
    bool sud_on;                     /* prctl done for this thread                        */
    bool in_enclave;                 /* running enclave code (not in an OCALL)            */
    bool in_handler;                 /* inside the emulator's SIGSEGV handler: recursion  */
    bool holds_heap_lock;            /* inside mimalloc: an integrity failure here is fatal */
    struct eleos_enclave *enc;       /* innermost enclave entered, NULL in host mode      */
    sigjmp_buf *lost_jmp;            /* innermost ECALL's landing pad for "enclave lost"  */
    uint8_t *pollute_buf;            /* untrusted scratch for the pollution knob          */
    size_t pollute_size;
    uint8_t *bounce;                 /* untrusted buffer of the syscall proxy             */
    size_t bounce_size;
};

struct sim_thread *sim_thread_self(void);
/* The same, for the handlers' hot paths (initial-exec TLS: no lazy allocation). */
extern _Thread_local struct sim_thread sim_self __attribute__((tls_model("initial-exec")));

/* --- EPC paging (sim_epc.c) --------------------------------------------------------------- */

enum sim_page_state {
    SIM_PAGE_UNTOUCHED = 0, /* never committed: first touch gets a zero page          */
    SIM_PAGE_RESIDENT = 1,  /* in the EPC, mapped read-write                           */
    SIM_PAGE_SWAPPED = 2,   /* sealed in swap, mapped PROT_NONE                        */
};

struct sim_epc {
    uint8_t *base;          /* ELRANGE, the enclave's view (MAP_SHARED over memfd)     */
    uint8_t *alias;         /* the "hardware" view of the same memfd, always RW        */
    size_t npages;
    int memfd;
    size_t cap_pages;       /* the limit asked at creation (epc_size), in pages        */
    size_t fifo_cap;        /* FIFO slots: min(npages, platform capacity); bounds max  */
    struct sim_platform *plat; /* the platform EPC this enclave's pages count against  */
    uint32_t slot;          /* its slot in the platform's table                        */

    struct eleos_spinlock lock; /* protects everything below                             */
    uint8_t *state;         /* enum sim_page_state per page                            */
    uint64_t *version;      /* per page: version of its sealed copy (anti-replay)      */
    uint32_t *fifo;         /* resident pages in load order: the eviction queue        */
    size_t fifo_head, fifo_count;
    uint64_t seal_counter;  /* next version; globally unique so a nonce never repeats  */
    struct gcm gcm;

    uint8_t *swap;          /* untrusted: npages × 4096 bytes of ciphertext            */
    uint8_t *tags;          /* untrusted: npages × 16 bytes of MACs                    */
    uint8_t *swapped_ever;  /* per page: has a sealed copy (for eleos_enclave_swap_slot) */
    /* Private ("hardware") staging for one page and its tag, under lock: crypto never runs
     * on host-writable bytes (AES-GCM reads the ciphertext twice: GHASH, then CTR). */
    uint8_t *stage;         /* 4096 bytes of ciphertext + GCM_TAG_SIZE                  */
};

/* Fault outcome. */
enum sim_fault {
    SIM_FAULT_OK = 0,     /* retry the access                                          */
    SIM_FAULT_LOST = 1,   /* integrity failure: the enclave is lost                     */
    SIM_FAULT_FATAL = 2,  /* the emulator could not make progress (mprotect failed …)   */
};

int sim_epc_init(struct eleos_enclave *enc, size_t elrange_size, size_t epc_size);
/* Frees the bookkeeping and leaves the platform (a forked child's copy only frees). */
void sim_epc_fini(struct eleos_enclave *enc);
/* Evicts up to n of enc's oldest pages; caller holds enc->epc.lock. Count, or -1 (fatal). */
long sim_epc_evict_batch_locked(struct eleos_enclave *enc, size_t n);

/* --- the platform EPC (sim_platform.c) -------------------------------------------------------- */
struct sim_platform;
/* Joins the platform of enc->cfg (creating it if needed) and claims a slot. Host mode. */
int sim_plat_attach(struct eleos_enclave *enc, const struct eleos_enclave_config *cfg);
void sim_plat_publish(struct eleos_enclave *enc);
void sim_plat_unpublish(struct eleos_enclave *enc);
void sim_plat_detach(struct eleos_enclave *enc);
/* Fault path (enc's lock held): the enclave's limit in pages, validated; a one-atomic
 * reservation; the slow path when the platform is full; the requests of other enclaves. */
size_t sim_plat_max(const struct eleos_enclave *enc);
size_t sim_plat_capacity(const struct eleos_enclave *enc);
bool sim_plat_reserve(struct eleos_enclave *enc);
enum sim_fault sim_plat_make_room(struct eleos_enclave *enc);
long sim_plat_service_locked(struct eleos_enclave *enc);
void sim_plat_unreserve(struct eleos_enclave *enc);
void sim_plat_commit(struct eleos_enclave *enc, bool swapped_in);
void sim_plat_release(struct eleos_enclave *enc, size_t n, bool evicted);
uint64_t sim_plat_share(const struct eleos_enclave *enc);
/* fork: plat_mu around it, and the child's reset. */
void sim_plat_lock(void);
void sim_plat_unlock(void);
void sim_plat_fork_child(void);
/* Resets contents to all-untouched (for ELRANGE reuse). Caller guarantees no users. */
void sim_epc_reset(struct eleos_enclave *enc);
/* Resolves an access to ELRANGE page addr: commits a first touch or swaps the page in.
 * aex: the access came from enclave mode, so a swap-in is counted as an AEX too. */
enum sim_fault sim_epc_fault(struct eleos_enclave *enc, uintptr_t addr, bool aex);
int sim_epc_evict_page(struct eleos_enclave *enc, uintptr_t addr);

/* --- heap (sim_heap.c) ------------------------------------------------------------------- */
int sim_heap_init(struct eleos_enclave *enc);
int sim_registry_add(struct eleos_enclave *enc);
void sim_registry_remove(struct eleos_enclave *enc);
void sim_registry_lock(void);
/* fork, in the child: inherited enclaves become lost and unregistered (sim_ranges.c); the
 * forking thread's Syscall User Dispatch state is reset (sim_base.c). */
void sim_registry_fork_child(void);
void sim_thread_fork_child(void);
#define SIGBIT(s) (1ull << ((s) - 1))
/* Every signal but the synchronous ones (the emulator's own SIGSEGV and SIGSYS among them)
 * and those that cannot be blocked. */
#define ASYNC_SIGNALS                                                                       \
    (~0ull & ~(SIGBIT(SIGSEGV) | SIGBIT(SIGBUS) | SIGBIT(SIGSYS) | SIGBIT(SIGILL) |         \
               SIGBIT(SIGFPE) | SIGBIT(SIGTRAP) | SIGBIT(SIGKILL) | SIGBIT(SIGSTOP)))
/* Blocks asynchronous signals (raw syscall: no exit); returns the previous mask. */
uint64_t sim_block_async(void);
void sim_restore_mask(uint64_t old);
/* The exit path's marshalling (sim_marshal.c): whether call nr has pointer arguments into
 * an ELRANGE, and performing it through emulator memory. g: the trapped registers. */
bool sim_marshal_wanted(long nr, const greg_t *g);
long sim_marshal_call(struct sim_thread *t, long nr, const greg_t *g);
void sim_registry_unlock(void);
void sim_heap_fini(struct eleos_enclave *enc);

/* --- cost model (sim_cost.c) --------------------------------------------------------------- */
void sim_charge(struct eleos_enclave *enc, uint64_t cycles);
/* --- calibration (sim_calib.c) ------------------------------------------------------------ */
/* Whether model m's extras depend on the measured mechanism (targets set, not raw). */
bool sim_cost_needs_calibration(const struct eleos_cost_model *m);
/* The extra cycles per event kind m charges (targets minus the cached measurement). */
void sim_cost_extras(const struct eleos_cost_model *m, uint64_t *extra);
/* Test hooks: every mechanism measured from now on is slowed by a busy-wait of `cycles`
 * (charged inside the real ECALL/OCALL/SIGSYS/fault paths of the scratch enclave), and the
 * cached calibration is dropped so the next one measures again. */
void sim_calib_test_slowdown(uint64_t cycles);
void sim_calib_forget(void);
void sim_pollute(struct eleos_enclave *enc, struct sim_thread *t);

/* Host allocations in enclave mode are counted in the enclave's host_allocs
 * (sim_hostalloc.c); called by every enclave creation so the catching is always linked. */
void sim_hostalloc_init(void);

/* --- the enclave ------------------------------------------------------------------------- */
struct sim_stats {
    _Atomic uint64_t ecalls, ocalls, syscall_exits, syscalls_denied, aex;
    _Atomic uint64_t epc_commits, epc_faults, epc_evictions, pages_sealed, pages_opened;
    _Atomic uint64_t integrity_failures, epc_resident, epc_resident_max, cycles_charged;
    _Atomic uint64_t epc_trimmed, host_allocs;
    _Atomic uint64_t epc_swapped; /* gauge: pages whose only copy is sealed in swap       */
    _Atomic uint64_t syscalls[ELEOS_ENCLAVE_NSYSCALLS];
};

struct eleos_enclave {
    struct eleos_enclave_config cfg;
    char name[32];
    atomic_bool lost;
    bool inherited;             /* a forked child's copy of its parent's enclave: lost, no
                                   memory behind it (set before the child has threads)   */
    atomic_bool tearing_down;   /* destroy in progress: a page failing verification is
                                   replaced by zeros (nobody can observe it any more)   */
    _Atomic int threads_inside;
    struct sim_epc epc;
    void *heap;             /* mi_heap_t *                                             */
    int arena_id;           /* mimalloc arena id of ELRANGE                            */
    struct sim_region *region; /* the reusable ELRANGE reservation                     */
    uint64_t extra[ELEOS_COST_NEVENTS]; /* cycles charged per event, fixed at creation */
    struct sim_stats stats;
};

/* ELRANGE reservations are pooled: mimalloc 2.0 cannot forget an arena, so a destroyed
 * enclave's ELRANGE (and its arena) is kept and handed to the next enclave of that size. */
struct sim_region {
    struct sim_region *next;
    uint8_t *base;
    uint8_t *alias;
    size_t size;
    int memfd;
    int arena_id;
};

/* Registry of live enclaves for the SIGSEGV handler (lock-free reads). */
struct eleos_enclave *sim_registry_find(uintptr_t addr);

#define sim_stat_add eleos_counter_add

void sim_die(const char *msg) __attribute__((noreturn));

#endif
