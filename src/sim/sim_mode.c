/*
 * Enclave mode, transitions and the emulator's signal handlers.
 *
 * Design. A thread is in enclave mode while it runs inside an ECALL and not inside an OCALL.
 * The first time a thread enters any enclave it turns on Linux Syscall User Dispatch (SUD)
 * with a per-thread selector byte and the allowed range of trampoline.S. Entering enclave
 * mode stores BLOCK in the selector, leaving it stores ALLOW: a memory store, as cheap as
 * EENTER/EEXIT are not, so the cost model adds the difference.
 *
 * With the selector at BLOCK every syscall the thread makes (from our code, libc, a
 * sanitizer runtime…) is not executed by the kernel but raises SIGSYS. The SIGSYS handler is
 * the emulated OCALL of the SGX SDK's syscall proxy: it switches to ALLOW, counts the exit by
 * syscall number, charges the modeled cost, performs the call with the original arguments
 * and writes the result into the interrupted context. A few calls cannot exist in an enclave
 * and are refused with -EPERM (thread/process creation, exec, changing SUD or the
 * emulator's own signal handlers); rt_sigprocmask is applied to the interrupted context's
 * mask, since the kernel would otherwise overwrite it on return from the handler.
 *
 * Signal plumbing. Handlers are installed with the raw rt_sigaction syscall and a restorer in
 * the allowed range, because the closing rt_sigreturn may run while the selector is BLOCK.
 * Both handlers use SA_NODEFER so that a signal nested in them (an async signal arriving
 * while the selector is BLOCK, whose own syscalls trap) still reaches them. The SIGSEGV
 * handler (an EPC fault) blocks every asynchronous signal while it runs, and so does every
 * host-side path that holds the EPC lock (sim_block_async): a handler of the application
 * that ran in the middle and touched a non-resident page would need the lock its own
 * thread holds. A foreign
 * handler's rt_sigreturn in enclave mode traps too: we resume the thread at the sigreturn
 * instruction of the allowed range with the same stack, which finishes that return.
 *
 * SIGSEGV on an ELRANGE address is an EPC fault (an asynchronous exit); anything else goes
 * to the handler that was installed before ours, or the default action.
 *
 * Async-signal safety: the handlers touch only this thread's TLS, the enclave (spinlock
 * protected), atomics and the raw syscall trampoline; they never allocate. OpenSSL is used
 * from the SIGSEGV handler with contexts keyed in advance (no allocation, see gcm.c); the
 * interrupted code is enclave code touching ELRANGE, never the emulator itself.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <linux/prctl.h>

#include "sim/sim_internal.h"

#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2
#endif


/* --- raw sigaction ----------------------------------------------------------------------- */

/* The kernel's struct sigaction layout on x86-64. */
struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static struct kernel_sigaction old_segv;
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;
static int handlers_err;

static void sigsys_handler(int sig, siginfo_t *si, void *ucv);
static void sigsegv_handler(int sig, siginfo_t *si, void *ucv);


static void install_handlers(void) {
    struct kernel_sigaction sa = {0};
    sa.flags = SA_SIGINFO | SA_RESTORER | SA_NODEFER | SA_ONSTACK;
    sa.restorer = eleos_sim_restorer;
    sa.mask = 0;
    sa.handler = (void *)sigsys_handler;
    long r = eleos_sim_raw_syscall(SYS_rt_sigaction, SIGSYS, (long)&sa, 0, 8, 0, 0);
    if (r == 0) {
        /* An EPC fault runs with asynchronous signals blocked: an application handler that
         * interrupted it and touched a non-resident page would fault again on the same
         * thread while it holds the EPC lock. The kernel restores the mask on return. */
        sa.mask = ASYNC_SIGNALS;
        sa.handler = (void *)sigsegv_handler;
        r = eleos_sim_raw_syscall(SYS_rt_sigaction, SIGSEGV, (long)&sa, (long)&old_segv, 8, 0,
                                  0);
    }
    handlers_err = (int)r;
}

int sim_install_handlers(void);
int sim_install_handlers(void) {
    pthread_once(&handlers_once, install_handlers);
    return handlers_err;
}

/* --- per-thread SUD ---------------------------------------------------------------------- */

static int thread_enable_sud(struct sim_thread *t) {
    if (t->sud_on)
        return 0;
    t->selector = SIM_SELECTOR_ALLOW;
    uintptr_t start = (uintptr_t)eleos_sim_allowed_start;
    uintptr_t len = (uintptr_t)eleos_sim_allowed_end - start;
    if (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, start, len,
              (char *)&t->selector) != 0)
        return errno == EINVAL ? -ENOSYS : -errno;
    t->sud_on = true;
    return 0;
}

/* --- transitions ------------------------------------------------------------------------- */

static inline void enter_enclave_mode(struct sim_thread *t, struct eleos_enclave *enc) {
    t->enc = enc;
    t->in_enclave = true;
    if (enc->cfg.enforce)
        t->selector = SIM_SELECTOR_BLOCK;
}

static inline void leave_enclave_mode(struct sim_thread *t) {
    t->selector = SIM_SELECTOR_ALLOW;
    t->in_enclave = false;
}

int eleos_enclave_ecall(struct eleos_enclave *enc, eleos_enclave_fn fn, void *arg, long *ret) {
    struct sim_thread *t = &sim_self;
    if (!enc || !fn)
        return -EINVAL;
    if (atomic_load_explicit(&enc->lost, memory_order_acquire))
        return -EBADMSG;
    if (t->in_enclave)
        return -EPERM; /* SGX: EENTER from enclave mode is illegal; use an OCALL first */
    if (enc->cfg.enforce) {
        int r = thread_enable_sud(t);
        if (r)
            return r;
    }
    /* Save the outer context: this ECALL may be nested inside an OCALL of another one. */
    struct eleos_enclave *outer_enc = t->enc;
    sigjmp_buf *outer_jmp = t->lost_jmp;
    sigjmp_buf jb;

    sim_stat_add(&enc->stats.ecalls, 1);
    atomic_fetch_add_explicit(&enc->threads_inside, 1, memory_order_relaxed);
    sim_charge(enc, enc->extra[ELEOS_COST_EV_ECALL]);
    sim_pollute(enc, t);

    /* savemask 0: no syscall on the ECALL path. The SIGSEGV handler restores the
     * interrupted mask itself before it jumps here. */
    if (sigsetjmp(jb, 0) != 0) {
        /* Landed here from the fault handler: the enclave is lost. */
        leave_enclave_mode(t);
        t->in_handler = false;
        t->enc = outer_enc;
        t->lost_jmp = outer_jmp;
        atomic_fetch_sub_explicit(&enc->threads_inside, 1, memory_order_relaxed);
        return -EBADMSG;
    }
    t->lost_jmp = &jb;
    enter_enclave_mode(t, enc);
    long r = fn(arg);
    leave_enclave_mode(t);
    t->enc = outer_enc;
    t->lost_jmp = outer_jmp;
    atomic_fetch_sub_explicit(&enc->threads_inside, 1, memory_order_relaxed);
    if (ret)
        *ret = r;
    return 0;
}

long eleos_enclave_ocall(eleos_enclave_fn fn, void *arg) {
    struct sim_thread *t = &sim_self;
    if (!t->in_enclave)
        return fn(arg);
    struct eleos_enclave *enc = t->enc;
    leave_enclave_mode(t);
    sim_stat_add(&enc->stats.ocalls, 1);
    sim_charge(enc, enc->extra[ELEOS_COST_EV_OCALL]);
    sim_pollute(enc, t);
    long r = fn(arg);
    t->enc = enc; /* a nested ECALL restored it already; keep it explicit */
    enter_enclave_mode(t, enc);
    return r;
}

struct eleos_enclave *eleos_enclave_current(void) {
    return sim_self.in_enclave ? sim_self.enc : NULL;
}

bool eleos_enclave_in_enclave_mode(void) {
    return sim_self.in_enclave;
}

/* --- SIGSYS: syscalls in enclave mode ---------------------------------------------------- */

static bool denied_syscall(long nr, const greg_t *g) {
    switch (nr) {
    case SYS_clone:
    case SYS_clone3:
    case SYS_fork:
    case SYS_vfork:
    case SYS_execve:
    case SYS_execveat:
        return true; /* no threads or processes are created from inside an enclave */
    case SYS_prctl:
        return g[REG_RDI] == PR_SET_SYSCALL_USER_DISPATCH;
    case SYS_rt_sigaction:
        /* Reading is fine; replacing the emulator's handlers is not. */
        return (g[REG_RDI] == SIGSYS || g[REG_RDI] == SIGSEGV) && g[REG_RSI] != 0;
    default:
        return false;
    }
}

/* rt_sigprocmask on behalf of the interrupted code: the mask that matters is the one the
 * kernel restores from the context when the handler returns. */
static long emulate_sigprocmask(ucontext_t *uc, long how, const uint64_t *set, uint64_t *oldset,
                                long setsize) {
    uint64_t cur, nset;
    if (setsize != 8)
        return -EINVAL;
    memcpy(&cur, &uc->uc_sigmask, sizeof cur);
    if (oldset)
        memcpy(oldset, &cur, sizeof cur);
    if (!set)
        return 0;
    memcpy(&nset, set, sizeof nset);
    switch (how) {
    case SIG_BLOCK: cur |= nset; break;
    case SIG_UNBLOCK: cur &= ~nset; break;
    case SIG_SETMASK: cur = nset; break;
    default: return -EINVAL;
    }
    /* The kernel refuses to block these; blocking SIGSYS/SIGSEGV would kill the process at
     * the next trap or fault. */
    cur &= ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)) | (1ull << (SIGSYS - 1)) |
             (1ull << (SIGSEGV - 1)));
    memcpy(&uc->uc_sigmask, &cur, sizeof cur);
    return 0;
}

static void sigsys_handler(int sig, siginfo_t *si, void *ucv) {
    (void)sig;
    ucontext_t *uc = ucv;
    greg_t *g = uc->uc_mcontext.gregs;
    struct sim_thread *t = &sim_self;
    char saved = t->selector;
    t->selector = SIM_SELECTOR_ALLOW;

    if (si->si_code != SYS_USER_DISPATCH)
        sim_die("SIGSYS not raised by syscall user dispatch (seccomp?)");
    long nr = si->si_syscall;

    if (nr == SYS_rt_sigreturn) {
        /* A foreign signal handler finished in enclave mode: complete its sigreturn from the
         * allowed range, on the same stack. Not an exit in SGX terms (it is AEX's ERESUME). */
        g[REG_RIP] = (greg_t)(uintptr_t)eleos_sim_sigreturn_insn;
        g[REG_RAX] = SYS_rt_sigreturn;
        t->selector = saved;
        return;
    }

    struct eleos_enclave *enc = t->enc;
    long ret;
    if (enc) {
        sim_stat_add(&enc->stats.syscall_exits, 1);
        if (nr >= 0 && nr < ELEOS_ENCLAVE_NSYSCALLS)
            sim_stat_add(&enc->stats.syscalls[nr], 1);
        sim_charge(enc, enc->extra[ELEOS_COST_EV_SYSCALL]);
        sim_pollute(enc, t);
    }
    if (denied_syscall(nr, g)) {
        if (enc)
            sim_stat_add(&enc->stats.syscalls_denied, 1);
        ret = -EPERM;
    } else if (nr == SYS_rt_sigprocmask) {
        ret = emulate_sigprocmask(uc, g[REG_RDI], (const uint64_t *)g[REG_RSI],
                                  (uint64_t *)g[REG_RDX], g[REG_R10]);
    } else if (sim_marshal_wanted(nr, g)) {
        /* Pointers into enclave memory: copied through emulator memory (sim_marshal.c). */
        ret = sim_marshal_call(t, nr, g);
    } else {
        ret = eleos_sim_raw_syscall(nr, g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10],
                                    g[REG_R8], g[REG_R9]);
    }
    g[REG_RAX] = ret;
    t->selector = saved;
}

/* --- SIGSEGV: EPC faults ----------------------------------------------------------------- */

static void chain_segv(int sig, siginfo_t *si, void *ucv) {
    void *h = old_segv.handler;
    if (h == SIG_IGN || h == SIG_DFL) {
        /* Restore the default action and return: the access faults again and the kernel
         * applies it (a core dump at the faulting instruction). */
        struct kernel_sigaction dfl = {0};
        dfl.handler = SIG_DFL;
        eleos_sim_raw_syscall(SYS_rt_sigaction, SIGSEGV, (long)&dfl, 0, 8, 0, 0);
        return;
    }
    if (old_segv.flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))h)(sig, si, ucv);
    else
        ((void (*)(int))h)(sig);
}

static void sigsegv_handler(int sig, siginfo_t *si, void *ucv) {
    struct sim_thread *t = &sim_self;
    uintptr_t addr = (uintptr_t)si->si_addr;
    struct eleos_enclave *enc = sim_registry_find(addr);
    if (!enc || t->in_handler) {
        chain_segv(sig, si, ucv);
        return;
    }
    char saved = t->selector;
    t->selector = SIM_SELECTOR_ALLOW;
    t->in_handler = true;
    enum sim_fault f = sim_epc_fault(enc, addr, t->in_enclave);
    t->in_handler = false;
    if (f == SIM_FAULT_OK) {
        t->selector = saved;
        return;
    }
    if (f == SIM_FAULT_FATAL)
        sim_die("EPC fault could not be resolved (mprotect failed)");
    /* Integrity failure: the enclave is lost (SGX's ELDU would fail and the driver would
     * kill the enclave). Never return to the access that would read unverified data. */
    atomic_store_explicit(&enc->lost, true, memory_order_release);
    if (t->holds_heap_lock)
        sim_die("EPC swap page of the enclave heap's metadata failed verification");
    if (enc->cfg.integrity_policy == ELEOS_INTEGRITY_ABORT)
        sim_die("EPC swap page failed verification: tampered or replayed (policy: abort)");
    if (t->in_enclave && t->enc == enc && t->lost_jmp) {
        /* Jumping out skips the kernel's restore of the mask the fault interrupted. */
        ucontext_t *uc = ucv;
        uint64_t mask;
        memcpy(&mask, &uc->uc_sigmask, sizeof mask);
        sim_restore_mask(mask);
        siglongjmp(*t->lost_jmp, 1);
    }
    sim_die("EPC swap page failed verification while accessed from host mode");
}
