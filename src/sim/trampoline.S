/*
 * The emulator's allowed code range for Syscall User Dispatch.
 *
 * Syscalls issued from [eleos_sim_allowed_start, eleos_sim_allowed_end) are never trapped,
 * whatever a thread's selector says. Only two things live here: the signal restorer (the
 * rt_sigreturn that ends the SIGSYS/SIGSEGV handlers runs while the selector may be BLOCK)
 * and a raw six-argument syscall used by the emulator's own handlers. Nothing enclave-side
 * may call into this range; scripts/check_enclave_syscalls.sh verifies that no other object
 * of the project contains a syscall instruction.
 */
    .text
    .p2align 6
    .globl eleos_sim_allowed_start
    .type eleos_sim_allowed_start, @function
eleos_sim_allowed_start:

/* void eleos_sim_restorer(void): SA_RESTORER for the emulator's handlers. */
    .globl eleos_sim_restorer
    .type eleos_sim_restorer, @function
eleos_sim_restorer:
    movq $15, %rax              /* __NR_rt_sigreturn */
    .globl eleos_sim_sigreturn_insn
eleos_sim_sigreturn_insn:
    syscall
    hlt
    .size eleos_sim_restorer, .-eleos_sim_restorer

/* long eleos_sim_raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
 * Returns the kernel's result: >= 0, or -errno. */
    .globl eleos_sim_raw_syscall
    .type eleos_sim_raw_syscall, @function
eleos_sim_raw_syscall:
    movq %rdi, %rax
    movq %rsi, %rdi
    movq %rdx, %rsi
    movq %rcx, %rdx
    movq %r8, %r10
    movq %r9, %r8
    movq 8(%rsp), %r9
    syscall
    ret
    .size eleos_sim_raw_syscall, .-eleos_sim_raw_syscall

    .globl eleos_sim_allowed_end
eleos_sim_allowed_end:
    .size eleos_sim_allowed_start, .-eleos_sim_allowed_start

    .section .note.GNU-stack,"",@progbits
