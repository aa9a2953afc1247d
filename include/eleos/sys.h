/*
 * eleos/sys.h — exitless system calls for enclave code.
 *
 * Each wrapper marshals its arguments through the calling thread's untrusted bounce buffer
 * (eleos_rpc_bounce), has the call run by a host worker (or on the exit path), and validates
 * the result before copying anything back into enclave memory (Iago checks). The rule: a
 * result is accepted only if the kernel could honestly have returned it for this request.
 *   - a byte count never exceeds what was offered to the host, except a MSG_TRUNC receive
 *     on a socket that keeps message boundaries, which reports the whole message's length
 *     (at most ELEOS_SYS_MSG_MAX); on a stream socket MSG_TRUNC never reports more;
 *   - a failure carries an errno in [1, ELEOS_SYS_ERRNO_MAX];
 *   - a descriptor, returned or passed in SCM_RIGHTS, is in [0, ELEOS_SYS_FD_MAX]; the
 *     descriptors of one message are distinct and at most 253 (SCM_MAX_FD);
 *   - recvmsg control data is laid out as the kernel lays it out: each cmsg_len at least a
 *     header and within the returned msg_controllen; msg_flags holds only bits a kernel
 *     returns (MSG_TRUNC, MSG_CTRUNC, MSG_EOR, MSG_OOB, MSG_ERRQUEUE, SCTP's
 *     MSG_NOTIFICATION, and MSG_CMSG_CLOEXEC when it was asked);
 *   - epoll_wait never returns more events than asked, nor registration-only flags
 *     (EPOLLET, EPOLLONESHOT, EPOLLWAKEUP, EPOLLEXCLUSIVE) as ready events;
 *   - optlen and msg_controllen never exceed the space given. Address lengths (socklen_t,
 *     msg_namelen) are at most sizeof(struct sockaddr_storage), and, as the kernel does,
 *     the real length is returned even when it exceeds the space given: then only the bytes
 *     that fit are copied (check the returned length against your buffer);
 *   - fstat: sizes >= 0, a 16-bit mode, a 32-bit link count, one of the seven file types,
 *     or none with one link, no size and no blocks (an anonymous inode: eventfd, epoll…);
 *     st_nlink 0 is accepted otherwise (a file unlinked while open, O_TMPFILE);
 *   - lseek(SEEK_SET) lands where asked; lseek(SEEK_END) on a regular file lands at the size
 *     fstat reports + offset (if they disagree, the position is set again at that end);
 *   - timespec nanoseconds < 1e9 (nanosleep's remainder <= the request), pipe2 returns two
 *     distinct descriptors, process ids are at most PID_MAX_LIMIT (2^22).
 * A result that fails a check becomes -EIO and is counted (eleos_sys_stats); nothing of it
 * reaches the caller. No enclave pointer is ever passed to the host, and no host pointer is
 * used unless it was checked to lie outside the enclave. epoll_event.data comes back from
 * the host like every other result: treat it as an untrusted value (an index to check),
 * never as a pointer.
 *
 * Return values follow the kernel: the result (>= 0) or a negative errno; errno is never
 * touched.
 *
 * Transfers larger than the bounce buffer's data area (ELEOS_RPC_DEFAULT_BOUNCE -
 * ELEOS_SYS_META_SIZE = 64 KiB by default) first ask the descriptor's type (one more call,
 * getsockopt SO_TYPE; two for a send on a SOCK_STREAM socket, whose protocol may be SCTP):
 *   - Messages (SOCK_DGRAM, SOCK_SEQPACKET, SOCK_RAW, … and SCTP) are never split or cut: a
 *     send goes whole or fails with the kernel's error (EMSGSIZE), a receive gets the whole
 *     message if the caller's buffer holds it, else the kernel's truncation (MSG_TRUNC in
 *     recvmsg's msg_flags, the rest discarded). Such a message travels through a temporary
 *     untrusted mapping the host makes through the same channel (mmap/munmap, no exit),
 *     accepted only if it lies wholly outside the enclave.
 *   - Byte streams (stream sockets, pipes, files) may legally transfer less than asked:
 *     write/writev/send/sendto/pwrite send bounce-sized chunks (stopping at the first short
 *     or failed chunk); read/readv/recv/recvfrom/recvmsg return at most one bounce buffer's
 *     worth, so that a read never blocks for data the caller did not need; sendmsg sends at
 *     most one bounce buffer's worth (a short send: loop as for any stream).
 * readv/writev are performed as one read/write of the gathered buffer. A receive with
 * MSG_TRUNC asks the socket type too (to know whether a length beyond the buffer is honest).
 * Control data (sendmsg, recvmsg) and socket options are limited to ELEOS_SYS_META_SIZE -
 * 512 bytes: larger requests are -EINVAL, except that recvmsg offers at most that much
 * control space (the kernel reports MSG_CTRUNC if more was pending).
 *
 * Blocking: calls that may block (read/write on any fd, accept4, connect, fsync, nanosleep,
 * epoll_wait with a timeout, socket transfers without MSG_DONTWAIT) are flagged
 * ELEOS_RPC_F_MAYBLOCK, so the worker running one leaves the awake set and other threads do
 * not queue behind it. Event loops on non-blocking sockets should pass MSG_DONTWAIT to
 * send/recv/sendto/recvfrom/sendmsg/recvmsg (and use epoll_wait with timeout 0 while busy):
 * those calls keep their worker awake and never push other threads to the exit path.
 *
 * Exit path switch: globally (eleos_sys_set_exitless) and per thread / per call
 * (eleos_sys_thread_mode returns the previous mode, so a single call can be bracketed).
 *
 * Thread safety: every wrapper is MT-safe; each thread uses its own channel and bounce
 * buffer. Call from enclave mode (host mode works too and is used by tests).
 */
#ifndef ELEOS_SYS_H
#define ELEOS_SYS_H

#include <stdbool.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "eleos/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest errno a system call returns: the kernel's MAX_ERRNO. The ABI reserves
 * [-4095, -1] for errors; the named errnos end at 133 (EHWPOISON), but kernel-internal
 * codes above them do reach user space (ENOTSUPP, 524, from some drivers and file
 * systems), so a tighter bound would turn honest results into -EIO. */
#define ELEOS_SYS_ERRNO_MAX 4095
/* Largest descriptor accepted from the host: the kernel's ceiling for fs.nr_open. */
#define ELEOS_SYS_FD_MAX    ((1 << 30) - 1)
/* Longest message one call transfers: the kernel's MAX_RW_COUNT (INT_MAX rounded down to
 * a page), which bounds every send and so every message a MSG_TRUNC receive can report. */
#define ELEOS_SYS_MSG_MAX   0x7ffff000L
/* Bytes at the start of each bounce buffer reserved for marshalled structures. */
#define ELEOS_SYS_META_SIZE 4096u

/* --- host side -------------------------------------------------------------------------- */

/* Registers the system-call executor (ELEOS_RPC_FN_SYSCALL) in pool. Host mode. It honours
 * the pool's ELEOS_RPC_FAULT_* flags (tests). Without it every wrapper returns -EBADRQC
 * (the pool's answer for an unregistered function; it prints one line on stderr). */
ELEOS_MUST_CHECK int eleos_sys_host_register(struct eleos_rpc_pool *pool);

/* --- enclave side ----------------------------------------------------------------------- */

/* Sets the client the wrappers use (process wide; NULL detaches). Wrappers called without a
 * client return -EUNATCH (and print one line on stderr, once per process). The two set-up
 * errors are distinct from each other and from -ENOSYS, which a wrapper returns only when
 * the kernel lacks the call. */
void eleos_sys_init(struct eleos_rpc_client *cl);

enum eleos_sys_mode {
    ELEOS_SYS_MODE_DEFAULT = 0, /* follow the global switch                              */
    ELEOS_SYS_MODE_EXITLESS = 1,
    ELEOS_SYS_MODE_EXIT = 2,
};

/* Global switch (default exitless). MT-safe. */
void eleos_sys_set_exitless(bool on);
/* The calling thread's mode, overriding the global switch; returns the previous mode. */
enum eleos_sys_mode eleos_sys_thread_mode(enum eleos_sys_mode mode);

struct eleos_sys_stats {
    uint64_t iago_len;     /* byte counts or returned lengths larger than the request,
                              control messages overrunning the control data              */
    uint64_t iago_errno;   /* errno values out of range                                  */
    uint64_t iago_events;  /* epoll_wait: more events than asked, registration flags     */
    uint64_t iago_struct;  /* insane returned structures, descriptors (also SCM_RIGHTS),
                              msg_flags, socket types, temporary buffers                 */
};
/* The Iago counters, process wide since start or the last reset (each read atomically, not
 * one instant), and their reset. Either mode, no exit, MT-safe. */
void eleos_sys_stats(struct eleos_sys_stats *out);
void eleos_sys_stats_reset(void);

/* --- the wrappers ------------------------------------------------------------------------
 *
 * Every wrapper below: enclave mode (host mode works too, for tests); MT-safe; errno
 * untouched; the kernel's result or -errno. Common errors besides the call's own: -ENOSYS
 * (eleos_sys_init was not called), -ENOSPC (more threads than the pool has channels),
 * -ENOBUFS (the pool's bounce buffers are no larger than ELEOS_SYS_META_SIZE), -EIO (the
 * host's answer failed an Iago check; counted in eleos_sys_stats). Each system call
 * the wrapper makes costs no exit while a host worker is awake and one exit (an OCALL)
 * otherwise or in ELEOS_SYS_MODE_EXIT; "one call" below means one such system call. The
 * data area of the bounce buffer (64 KiB with the default pool) bounds what one call moves.
 */

/* read: one call. A count up to the data area (64 KiB by default) is read as asked; a
 * larger count first asks the descriptor's type (one more call, files and pipes included):
 * a byte stream then returns at most one data area (a short read), a socket that keeps
 * message boundaries receives the whole message through a temporary untrusted mapping
 * (two more calls, mmap/munmap). The result is at most count. May block (the worker leaves
 * the awake set meanwhile). */
ssize_t eleos_sys_read(int fd, void *buf, size_t count);
/* write: a count up to the data area is one call. A larger count first asks the
 * descriptor's type (one call; two on a SOCK_STREAM socket, which may be SCTP): a byte
 * stream then goes in data-area-sized chunks, one call each, stopping at the first short or
 * failed chunk; a message goes whole in one call through a temporary mapping, or fails with
 * -EMSGSIZE above ELEOS_SYS_MSG_MAX. Each chunk's count is checked against what it offered.
 * May block. */
ssize_t eleos_sys_write(int fd, const void *buf, size_t count);
/* pread: offset >= 0, else -EINVAL. Reads count bytes in data-area-sized chunks, one
 * call each, until count, end of file or the first short chunk; an error after some bytes
 * returns the bytes read. Files only: no socket type is asked. */
ssize_t eleos_sys_pread(int fd, void *buf, size_t count, off_t offset);
/* pwrite: offset >= 0, else -EINVAL. Writes count bytes in data-area-sized chunks, one call
 * each, stopping at the first short or failed chunk; a chunk that would take the offset
 * past the largest off_t ends the transfer. Files only. */
ssize_t eleos_sys_pwrite(int fd, const void *buf, size_t count, off_t offset);
/* readv: iovcnt in [0, 1024] (UIO_MAXIOV) and a total length that fits ssize_t, else
 * -EINVAL. Performed as one read of the total (at most one data area from a byte stream,
 * as eleos_sys_read) scattered over iov in enclave memory. May block. */
ssize_t eleos_sys_readv(int fd, const struct iovec *iov, int iovcnt);
/* writev: limits as eleos_sys_readv; the buffers are gathered and written as
 * eleos_sys_write writes (chunks on a stream, whole on a message socket). May block. */
ssize_t eleos_sys_writev(int fd, const struct iovec *iov, int iovcnt);
/* send: eleos_sys_sendto without an address. */
ssize_t eleos_sys_send(int fd, const void *buf, size_t len, int flags);
/* recv: eleos_sys_recvfrom without an address. */
ssize_t eleos_sys_recv(int fd, void *buf, size_t len, int flags);
/* sendto: as eleos_sys_write (chunks on a stream, whole messages otherwise), addrlen at
 * most sizeof(struct sockaddr_storage) (128), else -EINVAL. With MSG_DONTWAIT in flags the
 * call cannot block and keeps its worker awake; without it, it may block. */
ssize_t eleos_sys_sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *addr, socklen_t addrlen);
/* recvfrom: one call, at most one data area (64 KiB) from a stream socket; a whole message
 * (through a temporary mapping) from a message socket when len exceeds the data area. With
 * MSG_TRUNC the socket type is asked first (one call): only a message socket may report a
 * length above len (at most ELEOS_SYS_MSG_MAX). addr may be NULL; otherwise addrlen must
 * not be (-EFAULT), at most 128 bytes of address are given to the host, the real length is
 * returned in *addrlen and only what fits is copied. MSG_DONTWAIT: as eleos_sys_sendto. */
ssize_t eleos_sys_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                           socklen_t *addrlen);
/* sendmsg: msg_iovlen <= 1024, msg_namelen <= 128, msg_controllen <= 3584
 * (ELEOS_SYS_META_SIZE - 512), else -EINVAL. On a stream at most one data area is sent (a
 * short send: loop); a message goes whole or fails with -EMSGSIZE. One call (plus the
 * socket type when the data exceed the data area). MSG_DONTWAIT: as eleos_sys_sendto. */
ssize_t eleos_sys_sendmsg(int fd, const struct msghdr *msg, int flags);
/* recvmsg: msg_iovlen <= 1024 (else -EINVAL); at most one data area from a stream, the
 * whole message from a message socket; at most 128 bytes of name and 3584 bytes of control
 * space are offered (the kernel sets MSG_CTRUNC if more was pending). Control data, names,
 * SCM_RIGHTS descriptors (<= 253, distinct, in range) and msg_flags are validated before
 * anything reaches msg. MSG_TRUNC asks the socket type first. MSG_DONTWAIT: as sendto. */
ssize_t eleos_sys_recvmsg(int fd, struct msghdr *msg, int flags);
/* accept4: a new descriptor (<= ELEOS_SYS_FD_MAX). addr may be NULL; otherwise addrlen
 * must not be (-EFAULT) and the address is returned as by eleos_sys_recvfrom. One call; may
 * block (a non-blocking listener does not, but is still flagged so). */
int eleos_sys_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
/* connect: addrlen <= 128 and addr non-NULL when addrlen > 0, else -EINVAL. One call; may
 * block. 0 or -errno (-EINPROGRESS on a non-blocking socket, as the kernel says). */
int eleos_sys_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* socket: a new descriptor (<= ELEOS_SYS_FD_MAX) or -errno. One call. */
int eleos_sys_socket(int domain, int type, int protocol);
/* bind: address limits as eleos_sys_connect. One call; 0 or -errno (a positive result is
 * -EIO). */
int eleos_sys_bind(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* listen: one call; 0 or -errno. */
int eleos_sys_listen(int fd, int backlog);
/* shutdown: one call; 0 or -errno. */
int eleos_sys_shutdown(int fd, int how);
/* setsockopt: optlen <= 3584 and optval non-NULL when optlen > 0, else -EINVAL. One call;
 * 0 or -errno. */
int eleos_sys_setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen);
/* getsockopt: optlen non-NULL and optval non-NULL when *optlen > 0 (-EFAULT); *optlen <=
 * 3584 (-EINVAL). The returned length must not exceed *optlen (else -EIO). One call. */
int eleos_sys_getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen);
/* getsockname: addr and addrlen non-NULL (-EFAULT); the address is returned as by
 * eleos_sys_recvfrom (real length, copy clamped to *addrlen and 128 bytes). One call. */
int eleos_sys_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen);
/* getpeername: as eleos_sys_getsockname. */
int eleos_sys_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen);
/* close: one call; 0 or -errno. */
int eleos_sys_close(int fd);
/* openat: path NULL is -EFAULT; a path of PATH_MAX (4096) bytes or more, counting its
 * terminating NUL, is -ENAMETOOLONG. A new descriptor (<= ELEOS_SYS_FD_MAX) or -errno.
 * One call. The host chooses what the path names: authenticate file contents yourself. */
int eleos_sys_openat(int dirfd, const char *path, int flags, mode_t mode);
/* fstat: one call; the structure is accepted only as the kernel can fill it (see the top
 * of this header), else -EIO and *st untouched. */
int eleos_sys_fstat(int fd, struct stat *st);
/* lseek: one call; SEEK_SET must land where asked. SEEK_END on a regular file is confirmed
 * with eleos_sys_fstat (one more call) and set again with SEEK_SET if the two disagree (a
 * third); -EOVERFLOW if size + offset overflows. Other whences return the kernel's answer. */
off_t eleos_sys_lseek(int fd, off_t offset, int whence);
/* fsync: one call; may block. 0 or -errno. */
int eleos_sys_fsync(int fd);
/* ftruncate: one call; 0 or -errno. */
int eleos_sys_ftruncate(int fd, off_t length);
/* unlink (unlinkat relative to the working directory): path limits as eleos_sys_openat.
 * One call; 0 or -errno. */
int eleos_sys_unlink(const char *path);
/* epoll_create1: a new descriptor (<= ELEOS_SYS_FD_MAX) or -errno. One call. */
int eleos_sys_epoll_create1(int flags);
/* epoll_ctl: event may be NULL (EPOLL_CTL_DEL). event->data crosses to the host and comes
 * back from eleos_sys_epoll_wait as an untrusted value: store an index you can check, never
 * a pointer. One call; 0 or -errno. */
int eleos_sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
/* epoll_wait: maxevents > 0 and events non-NULL, else -EINVAL. At most 5461 events per call
 * (the data area over sizeof(struct epoll_event), 12 bytes on x86-64): a larger maxevents
 * is silently capped. More events than asked, or registration-only flags among them, are
 * -EIO with events wiped. One call; with a timeout other than 0 it may block. */
int eleos_sys_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
/* pipe2: two distinct descriptors in range, else -EIO. One call; 0 or -errno. */
int eleos_sys_pipe2(int fds[2], int flags);
/* eventfd (eventfd2): a new descriptor (<= ELEOS_SYS_FD_MAX) or -errno. One call. */
int eleos_sys_eventfd(unsigned int initval, int flags);
/* nanosleep: req non-NULL (-EFAULT) and valid (tv_sec >= 0, 0 <= tv_nsec < 1e9, else
 * -EINVAL). One call; may block. On -EINTR, *rem (if rem) is a valid remainder no longer
 * than req, else -EIO. */
int eleos_sys_nanosleep(const struct timespec *req, struct timespec *rem);
/* clock_gettime: CLOCK_REALTIME/MONOTONIC(_RAW/_COARSE)/BOOTTIME are read through the vDSO
 * (no exit, no RPC: the kernel's time page is still untrusted); other clocks take one call.
 * Either way the result must be a valid timespec (else -EIO); -EINVAL for a clock the vDSO
 * refuses. */
int eleos_sys_clock_gettime(clockid_t clk, struct timespec *ts);
/* getpid, getppid: one call; a process id in [0, 2^22] (PID_MAX_LIMIT; 0 is a parent
 * outside the caller's pid namespace), else -EIO. The host can still lie within range. */
pid_t eleos_sys_getpid(void);
pid_t eleos_sys_getppid(void);

/* --- descriptors, poll, paths, randomness ------------------------------------------------
 *
 * Same contract as above: kernel return values, errno never touched, every result checked
 * against what the kernel could return for this request (-EIO and a counter otherwise,
 * nothing of it delivered), paths copied into the bounce buffer (PATH_MAX bytes at most with
 * the NUL, else -ENAMETOOLONG; NULL is -EFAULT). */

/*
 * fcntl for the commands an enclave needs on its descriptors; any other command (locks,
 * leases, owners, signals, pipe sizes, seals) is -EINVAL without a call.
 *   F_GETFD: FD_CLOEXEC or 0 (anything else is -EIO, counted in iago_struct).
 *   F_SETFD, F_SETFL: 0 or an errno (a positive result is -EIO).
 *   F_GETFL: the file's status and access flags; only bits open(2) accepts (and the
 *     kernel's __FMODE_EXEC/__FMODE_NONOTIFY) are honest.
 *   F_DUPFD, F_DUPFD_CLOEXEC: arg in [0, ELEOS_SYS_FD_MAX] (else -EINVAL); the new descriptor
 *     must be >= arg, within ELEOS_SYS_FD_MAX and not fd itself.
 */
int eleos_sys_fcntl(int fd, int cmd, long arg);

/* dup: a new descriptor, not fd. dup3: the result must be newfd (flags: O_CLOEXEC; newfd ==
 * oldfd is the kernel's -EINVAL). dup2: as dup3 with no flags, and for newfd == oldfd
 * returns oldfd if it is open (checked with F_GETFD), as dup2(2) does. */
int eleos_sys_dup(int fd);
int eleos_sys_dup2(int oldfd, int newfd);
int eleos_sys_dup3(int oldfd, int newfd, int flags);

/*
 * poll(2). At most (bounce data area / 8) = 8192 entries by default (more: -EINVAL; the
 * kernel's own limit is RLIMIT_NOFILE). fd and events travel to the host; only revents
 * comes back, written into fds[i].revents. Checks: the result is at most nfds and equals the
 * number of entries with a non-zero revents; each revents holds only the events asked plus
 * POLLERR/POLLHUP, or POLLNVAL alone; an entry with a negative fd gets 0. On a failed check
 * every revents is 0 and the call returns -EIO (counted in iago_events). A non-zero timeout
 * marks the call as blocking (ELEOS_RPC_F_MAYBLOCK). NULL fds with nfds > 0 is -EFAULT.
 */
int eleos_sys_poll(struct pollfd *fds, nfds_t nfds, int timeout);

/*
 * fstatat(2) (the kernel's newfstatat) with flags AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH,
 * AT_NO_AUTOMOUNT (others: -EINVAL). *st is checked as eleos_sys_fstat's, and a path
 * resolved with links followed (non-empty, no AT_SYMLINK_NOFOLLOW) must not come back as a
 * symbolic link. *st is written only on success. stat and lstat are fstatat(AT_FDCWD, path,
 * st, 0) and (…, AT_SYMLINK_NOFOLLOW).
 */
int eleos_sys_fstatat(int dirfd, const char *path, struct stat *st, int flags);
int eleos_sys_stat(const char *path, struct stat *st);
int eleos_sys_lstat(const char *path, struct stat *st);

/* mkdirat(2) and renameat(2): 0 or an errno (a positive result is -EIO). renameat's two
 * paths share the bounce buffer's data area (each below PATH_MAX). */
int eleos_sys_mkdirat(int dirfd, const char *path, mode_t mode);
int eleos_sys_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/*
 * getrandom(2) with flags GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE (others: -EINVAL).
 * Returns at most one bounce buffer's data area (64 KiB by default) per call, like a short
 * read: loop for more. A count above the request is -EIO (iago_len).
 * Security: the host chooses these bytes; never key enclave secrets with host randomness
 * alone. So each 8 bytes the host returns are XORed with 8 bytes of the CPU's RDRAND, which
 * the host does not control (on SGX it executes inside the enclave): the result is as
 * unpredictable as the better source. If RDRAND keeps failing the call returns -EIO with the
 * buffer zeroed. Only on a CPU without RDRAND (never an SGX machine; some emulator hosts)
 * are the host's bytes returned as they are. Blocks (ELEOS_RPC_F_MAYBLOCK) unless
 * GRND_NONBLOCK.
 */
ssize_t eleos_sys_getrandom(void *buf, size_t len, unsigned int flags);

#ifdef __cplusplus
}
#endif
#endif /* ELEOS_SYS_H */
