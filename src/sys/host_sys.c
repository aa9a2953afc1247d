/*
 * host_sys.c — the untrusted half of exitless system calls: the executor registered as
 * ELEOS_RPC_FN_SYSCALL, and the fault injector the adversarial tests switch on.
 *
 * The executor runs on a worker thread (or on the caller's thread in an OCALL) in host mode:
 * args[0] is the system call number, args[1..6] its arguments, every pointer among them
 * points into the calling thread's bounce buffer. It returns the kernel's result or -errno.
 *
 * Fault injection (the pool's ELEOS_RPC_FAULT_* flags) plays the malicious host of the
 * threat model, after the real call was made: oversized byte counts and returned lengths,
 * errno values out of range, too many epoll events, insane structures (stat, msg_flags,
 * epoll event bits, poll revents, descriptors, seek positions, file status flags), and a
 * bounce buffer rewritten with garbage. The enclave side must turn every one into a clean error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "eleos/sys.h"

static void *ptr(uint64_t v) {
    return (void *)(uintptr_t)v;
}

/* ELEOS_RPC_FAULT_STRUCT: a returned structure, descriptor or flag word no kernel
 * produces. Returns the (possibly forged) result of system call a[0] whose result was r. */
static long inject_struct(const uint64_t *a, long r, uint64_t rnd) {
    switch ((long)a[0]) {
    case SYS_fstat:
        if (r == 0) {
            struct stat *st = ptr(a[2]);
            if (rnd & 1) {
                st->st_size = -1 - (long)(rnd % 1000);
            } else { /* no file type, yet a size: not an anonymous inode */
                st->st_mode &= ~(mode_t)S_IFMT;
                st->st_size = 1 + (long)(rnd % 1000);
            }
        }
        break;
    case SYS_recvmsg:
        if (r >= 0)
            ((struct msghdr *)ptr(a[2]))->msg_flags |= MSG_WAITALL;
        break;
    case SYS_epoll_wait:
        if (r > 0)
            ((struct epoll_event *)ptr(a[2]))->events |= EPOLLET;
        break;
    case SYS_pipe2:
        if (r == 0) {
            int *fds = ptr(a[1]);
            fds[1] = (rnd & 1) ? fds[0] : -7;
        }
        break;
    case SYS_nanosleep:
        if (a[2]) {
            struct timespec *rem = ptr(a[2]);
            rem->tv_sec = 0;
            rem->tv_nsec = 2000000000L;
            r = -EINTR;
        }
        break;
    case SYS_clock_gettime:
        if (r == 0)
            ((struct timespec *)ptr(a[2]))->tv_nsec = 5000000000L;
        break;
    case SYS_lseek:
        if (r >= 0)
            r = (a[3] == SEEK_SET ? (long)a[2] : r) + 17;
        break;
    case SYS_socket:
    case SYS_openat:
    case SYS_accept4:
    case SYS_eventfd2:
    case SYS_epoll_create1:
        /* Every other time only: the calls on a real descriptor get their forgeries too. */
        if (rnd & 1)
            r = (long)1 << 40;
        break;
    case SYS_close:
    case SYS_bind:
    case SYS_listen:
    case SYS_mkdirat:
    case SYS_renameat2:
        r = 1 + (long)(rnd % 100);
        break;
    case SYS_newfstatat:
        if (r == 0)
            ((struct stat *)ptr(a[3]))->st_mode |= 0x10000;
        break;
    case SYS_fcntl:
        if (r >= 0)
            r = (a[2] == F_GETFL) ? (r | 0x40000000L) : (long)(a[1] + (rnd & 1 ? 0 : 1u << 31));
        break;
    case SYS_dup:
    case SYS_dup3:
        if (r >= 0)
            r = (rnd & 1) ? (long)a[1] : (long)1 << 40;
        break;
    case SYS_poll:
        if (r >= 0 && a[2])
            ((struct pollfd *)ptr(a[1]))->revents |= POLLPRI | POLLRDBAND;
        break;
    default:
        break;
    }
    return r;
}

/* ELEOS_RPC_FAULT_BOUNCE: rewrites the data system call a[0] produced or consumed (the
 * whole buffer it was given). */
static void inject_bounce(const uint64_t *a, uint64_t rnd) {
    switch ((long)a[0]) {
    case SYS_read:
    case SYS_pread64:
    case SYS_recvfrom:
    case SYS_write:
    case SYS_pwrite64:
    case SYS_sendto:
        if (a[2])
            memset(ptr(a[2]), (int)(rnd & 0xff), a[3]);
        break;
    case SYS_epoll_wait:
        if (a[2])
            memset(ptr(a[2]), (int)(rnd & 0xff), a[3] * sizeof(struct epoll_event));
        break;
    case SYS_fstat:
        memset(ptr(a[2]), (int)(rnd & 0xff), sizeof(struct stat));
        break;
    case SYS_newfstatat:
        memset(ptr(a[3]), (int)(rnd & 0xff), sizeof(struct stat));
        break;
    case SYS_getrandom:
        memset(ptr(a[1]), (int)(rnd & 0xff), a[2]);
        break;
    case SYS_poll:
        memset(ptr(a[1]), (int)(rnd & 0xff), a[2] * sizeof(struct pollfd));
        break;
    default:
        break;
    }
}

/* ELEOS_RPC_FAULT_LEN: a length beyond what system call a[0] was given (its result, or an
 * address or message length it wrote back); the forged result. */
static long inject_len(const uint64_t *a, long r, uint64_t rnd) {
    switch ((long)a[0]) {
    case SYS_read:
    case SYS_pread64:
    case SYS_write:
    case SYS_pwrite64:
        if (r >= 0)
            r = (long)a[3] + 1 + (long)(rnd % 100000);
        break;
    case SYS_recvfrom:
        if (r >= 0)
            r = (long)a[3] + 1 + (long)(rnd % 100000);
        if (a[6])
            *(socklen_t *)ptr(a[6]) = 0x7fffff00u;
        break;
    case SYS_sendto:
    case SYS_sendmsg:
        if (r >= 0)
            r += 1 + (long)(rnd % 100000);
        break;
    case SYS_getrandom:
        if (r >= 0)
            r = (long)a[2] + 1 + (long)(rnd % 100000);
        break;
    case SYS_poll:
        if (r >= 0)
            r = (long)a[2] + 1 + (long)(rnd % 100);
        break;
    case SYS_recvmsg:
        if (rnd & 1) {
            if (r >= 0)
                r += 1 + (long)(rnd % 100000);
        } else {
            struct msghdr *h = ptr(a[2]);
            h->msg_controllen = (size_t)1 << 40;
            h->msg_namelen = 0x7fffff00u;
        }
        break;
    case SYS_accept4:
    case SYS_getsockname:
    case SYS_getpeername:
        if (a[3])
            *(socklen_t *)ptr(a[3]) = 0x7fffff00u;
        break;
    case SYS_getsockopt:
        *(socklen_t *)ptr(a[5]) = 0x7fffff00u;
        break;
    default:
        break;
    }
    return r;
}

/* Returns a forged result for system call a[0] whose real result was r. */
static long inject(struct eleos_rpc_pool *pool, unsigned f, const uint64_t *a, long r) {
    long nr = (long)a[0];
    uint64_t rnd = eleos_rpc_pool_fault_random(pool);
    if (f & ELEOS_RPC_FAULT_BOUNCE)
        inject_bounce(a, rnd);
    if (f & ELEOS_RPC_FAULT_LEN)
        r = inject_len(a, r, rnd);
    if (f & ELEOS_RPC_FAULT_ERRNO) {
        /* Beyond the kernel's MAX_ERRNO (ELEOS_SYS_ERRNO_MAX): never an errno. */
        static const long bad[] = {-4096, -4097, -65536, -1000000, -(1L << 40), INT64_MIN};
        r = bad[rnd % (sizeof bad / sizeof bad[0])];
    }
    if ((f & ELEOS_RPC_FAULT_EPOLL) && nr == SYS_epoll_wait)
        r = (long)a[3] + 1 + (long)(rnd % 1000);
    if (f & ELEOS_RPC_FAULT_STRUCT)
        r = inject_struct(a, r, rnd);
    return r;
}

static int64_t sys_exec(void *ctx, const uint64_t a[ELEOS_RPC_NARGS]) {
    struct eleos_rpc_pool *pool = ctx;
    long r = syscall((long)a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    if (r == -1)
        r = -errno;
    unsigned f = eleos_rpc_pool_fault(pool);
    if (f & ~(ELEOS_RPC_FAULT_RET | ELEOS_RPC_FAULT_SCRIBBLE))
        r = inject(pool, f, a, r);
    return r;
}

int eleos_sys_host_register(struct eleos_rpc_pool *pool) {
    return eleos_rpc_pool_register_reserved(pool, ELEOS_RPC_FN_SYSCALL, sys_exec, pool);
}
