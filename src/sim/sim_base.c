/*
 * The emulator's leaf: per-thread state, its spin locks, the fatal-error exit and the
 * signal-mask helpers. Everything else in src/sim calls down into this file; it calls
 * nothing of the emulator.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "sim/sim_internal.h"

/* initial-exec: the handlers read this in signal context, where a lazy TLS allocation
 * (__tls_get_addr, as in a dlopen'ed library) must never happen. */
_Thread_local struct sim_thread sim_self __attribute__((tls_model("initial-exec")));

/* The kernel does not carry Syscall User Dispatch into a forked child: the forking thread
 * must turn it on again before it enters an enclave there. */
void sim_thread_fork_child(void) {
    sim_self.sud_on = false;
    sim_self.selector = SIM_SELECTOR_ALLOW;
}

struct sim_thread *sim_thread_self(void) {
    return &sim_self;
}

/* For locks only ever taken in host mode or in the emulator's handlers: after a bounded
 * spin, yield the CPU (2-core machines run more threads than cores). */
#define SPIN_BEFORE_YIELD 256
void sim_spin_lock_yield(struct eleos_spinlock *l) {
    unsigned spins = 0;
    while (!eleos_spin_trylock(l)) {
        if (++spins % SPIN_BEFORE_YIELD == 0)
            eleos_sim_raw_syscall(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
        else
            __builtin_ia32_pause();
    }
}


void sim_die(const char *msg) {
    /* Called in any mode: write through the trampoline so it is never trapped. */
    eleos_sim_raw_syscall(SYS_write, 2, (long)"eleos-sim: fatal: ", 18, 0, 0, 0);
    eleos_sim_raw_syscall(SYS_write, 2, (long)msg, (long)strlen(msg), 0, 0, 0);
    eleos_sim_raw_syscall(SYS_write, 2, (long)"\n", 1, 0, 0, 0);
    abort();
}

uint64_t sim_block_async(void) {
    uint64_t block = ASYNC_SIGNALS, old = 0;
    eleos_sim_raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, (long)&block, (long)&old, 8, 0, 0);
    return old;
}

void sim_restore_mask(uint64_t old) {
    eleos_sim_raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, (long)&old, 0, 8, 0, 0);
}
