/* Names of the syscalls servers make, for the statistics table. */
#include <sys/syscall.h>

const char *sim_syscall_name(long nr);

#define N(x) [SYS_##x] = #x
static const char *const names[] = {
    N(read), N(write), N(open), N(close), N(stat), N(fstat), N(lstat), N(poll), N(lseek),
    N(mmap), N(mprotect), N(munmap), N(brk), N(rt_sigaction), N(rt_sigprocmask), N(ioctl),
    N(pread64), N(pwrite64), N(readv), N(writev), N(access), N(pipe), N(select),
    N(sched_yield), N(mremap), N(madvise), N(dup), N(dup2), N(nanosleep), N(getpid),
    N(sendfile), N(socket), N(connect), N(accept), N(sendto), N(recvfrom), N(sendmsg),
    N(recvmsg), N(shutdown), N(bind), N(listen), N(getsockname), N(getpeername),
    N(socketpair), N(setsockopt), N(getsockopt), N(clone), N(fork), N(vfork), N(execve),
    N(exit), N(wait4), N(kill), N(uname), N(fcntl), N(fsync), N(fdatasync), N(truncate),
    N(ftruncate), N(getdents), N(getcwd), N(rename), N(mkdir), N(rmdir), N(unlink),
    N(gettimeofday), N(getrusage), N(getuid), N(getgid), N(geteuid), N(getegid),
    N(getppid), N(getpgrp), N(sigaltstack), N(prctl), N(arch_prctl), N(gettid), N(futex),
    N(time), N(epoll_create), N(getdents64), N(clock_gettime), N(clock_nanosleep),
    N(exit_group), N(epoll_wait), N(epoll_ctl), N(tgkill), N(openat), N(newfstatat),
    N(ppoll), N(accept4), N(epoll_pwait), N(eventfd2), N(epoll_create1), N(dup3), N(pipe2),
    N(prlimit64), N(getrandom), N(memfd_create), N(statx), N(rseq), N(clone3),
    N(execveat), N(fallocate), N(rt_sigreturn), N(sched_getaffinity), N(set_robust_list),
};

const char *sim_syscall_name(long nr) {
    if (nr >= 0 && nr < (long)(sizeof names / sizeof names[0]) && names[nr])
        return names[nr];
    return "?";
}
