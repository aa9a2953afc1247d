/*
 * test_sys_forge — targeted forgeries. The system-call executor registered here runs each
 * call for real and then rewrites one thing the enclave receives, chosen by the test: control
 * messages, passed descriptors, msg_flags, MSG_TRUNC lengths, fstat contents, lseek
 * positions, errno values, epoll event bits, and the temporary buffer a large message
 * travels in. Each forgery the call could not honestly produce must become -EIO, counted,
 * with nothing written to the caller's memory; each result it could honestly produce (an
 * unlinked file's nlink 0, an eventfd's missing file type, MSG_CTRUNC, a long address in a
 * short buffer, ENOTSUPP) must pass unchanged. Deterministic: the forger never races.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "eleos/sys.h"
#include "harness.h"
#include "rpc_testutil.h"

enum forge {
    F_NONE,
    F_CMSG_LONG,   /* recvmsg: cmsg_len beyond the returned msg_controllen          */
    F_CMSG_SHORT,  /* recvmsg: cmsg_len below sizeof(struct cmsghdr)                */
    F_FD_NEG,      /* recvmsg: SCM_RIGHTS descriptor -5                             */
    F_FD_HUGE,     /* recvmsg: SCM_RIGHTS descriptor INT_MAX                        */
    F_FD_DUP,      /* recvmsg: the same descriptor twice                            */
    F_MSG_FLAGS,   /* recvmsg: msg_flags with MSG_WAITALL, an input-only flag       */
    F_TRUNC,       /* recvfrom/recvmsg with MSG_TRUNC: INT_MAX                      */
    F_FSTAT_NOTYPE,     /* fstat: the file type bits cleared                       */
    F_FSTAT_NLINK0,     /* fstat: st_nlink 0                                       */
    F_FSTAT_NLINK_HUGE, /* fstat: st_nlink 2^32 (the kernel's nlink is 32 bits)     */
    F_FSTAT_MODE_HIGH,  /* fstat: st_mode bits above the kernel's 16-bit umode_t    */
    F_SEEK_END,    /* lseek(SEEK_END): 2^40 past the real position                  */
    F_SEEK_ALL,    /* every lseek: 17 past the real position                        */
    F_ERRNO,       /* getppid: returns forge_val                                    */
    F_EPOLL_ET,    /* epoll_wait: EPOLLET (an input-only flag) in the events        */
    F_MMAP,        /* mmap: returns forge_val instead of the new mapping            */
    F_SO_TYPE,     /* getsockopt(SO_TYPE): 77                                       */
    F_ADDRLEN,     /* recvfrom: the address length grows by forge_val (honest)      */
    F_SCTP,        /* getsockopt(SO_PROTOCOL): IPPROTO_SCTP                         */
    F_POS_OK,      /* pread/pwrite: every chunk "succeeds", whatever its offset     */
};

static struct eleos_enclave *enc;
static struct eleos_rpc_pool *pool;
static struct eleos_rpc_client *cl;
static _Atomic int forge;
static _Atomic long forge_val;
static _Atomic int sends;   /* sendto calls the host ran                      */
static _Atomic int wrapped; /* pread/pwrite calls with a negative file offset */

static void *ptr(uint64_t v) {
    return (void *)(uintptr_t)v;
}

/* The first control message of a recvmsg result in the bounce buffer, or NULL. */
static struct cmsghdr *first_cmsg(struct msghdr *h) {
    return h->msg_controllen >= sizeof(struct cmsghdr) ? (struct cmsghdr *)h->msg_control : NULL;
}

static void forge_recvmsg(int f, struct msghdr *h) {
    struct cmsghdr *c = first_cmsg(h);
    int *fds = c ? (int *)CMSG_DATA(c) : NULL;
    /* The enclave will reject what follows: the real descriptors never reach it. */
    if (c && c->cmsg_type == SCM_RIGHTS)
        for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= c->cmsg_len; i++)
            close(fds[i]);
    if (f == F_MSG_FLAGS)
        h->msg_flags |= MSG_WAITALL;
    if (!c)
        return;
    if (f == F_CMSG_LONG)
        c->cmsg_len = h->msg_controllen + 40;
    else if (f == F_CMSG_SHORT)
        c->cmsg_len = 8;
    else if (f == F_FD_NEG || f == F_FD_HUGE)
        fds[0] = f == F_FD_NEG ? -5 : INT_MAX;
    else if (f == F_FD_DUP)
        fds[1] = fds[0];
}

static void forge_fstat(int f, struct stat *st) {
    if (f == F_FSTAT_NOTYPE)
        st->st_mode &= ~(mode_t)S_IFMT;
    else if (f == F_FSTAT_NLINK0)
        st->st_nlink = 0;
    else if (f == F_FSTAT_NLINK_HUGE)
        st->st_nlink = (nlink_t)1 << 32;
    else if (f == F_FSTAT_MODE_HIGH)
        st->st_mode |= 0x10000;
}

static long forge_result(int f, const uint64_t *a, long r) {
    long nr = (long)a[0];
    if (nr == SYS_recvmsg && r >= 0) {
        if (f == F_TRUNC && (a[3] & MSG_TRUNC))
            return INT_MAX;
        forge_recvmsg(f, ptr(a[2]));
    } else if (nr == SYS_recvfrom && r >= 0) {
        if (f == F_TRUNC && (a[4] & MSG_TRUNC))
            return INT_MAX;
        if (f == F_ADDRLEN && a[6])
            *(socklen_t *)ptr(a[6]) += (socklen_t)atomic_load(&forge_val);
    } else if (nr == SYS_fstat && r == 0) {
        forge_fstat(f, ptr(a[2]));
    } else if (nr == SYS_lseek && r >= 0) {
        if (f == F_SEEK_END && a[3] == SEEK_END)
            return r + (1L << 40);
        if (f == F_SEEK_ALL)
            return r + 17;
    } else if (nr == SYS_getppid && f == F_ERRNO) {
        return atomic_load(&forge_val);
    } else if (nr == SYS_epoll_wait && r > 0 && f == F_EPOLL_ET) {
        ((struct epoll_event *)ptr(a[2]))->events |= EPOLLET;
    } else if (nr == SYS_mmap && r >= 0 && f == F_MMAP) {
        munmap(ptr((uint64_t)r), a[2]);
        return atomic_load(&forge_val);
    } else if (nr == SYS_getsockopt && r == 0 && f == F_SO_TYPE && a[3] == SO_TYPE) {
        *(int *)ptr(a[4]) = 77;
    } else if (nr == SYS_getsockopt && r == 0 && f == F_SCTP && a[3] == SO_PROTOCOL) {
        *(int *)ptr(a[4]) = IPPROTO_SCTP;
    } else if ((nr == SYS_pread64 || nr == SYS_pwrite64) && f == F_POS_OK) {
        if ((long)a[4] < 0)
            atomic_fetch_add(&wrapped, 1);
        return (long)a[3];
    }
    return r;
}

static int64_t forge_exec(void *ctx, const uint64_t a[ELEOS_RPC_NARGS]) {
    (void)ctx;
    long r = syscall((long)a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    if (r == -1)
        r = -errno;
    if (a[0] == SYS_sendto)
        atomic_fetch_add(&sends, 1);
    int f = atomic_load(&forge);
    return f == F_NONE ? r : forge_result(f, a, r);
}

static int register_forger(struct eleos_rpc_pool *p) {
    return eleos_rpc_pool_register_reserved(p, ELEOS_RPC_FN_SYSCALL, forge_exec, NULL);
}

static uint64_t faults(void) {
    struct eleos_sys_stats s;
    eleos_sys_stats(&s);
    return s.iago_len + s.iago_errno + s.iago_events + s.iago_struct;
}

/* --- recvmsg: control data, descriptors, flags ------------------------------------------ */

#define SENTINEL 0xa5
#define FLAGS_SENTINEL 0x5a5a

struct rm {
    int fd, flags;
    size_t ctrl_size;      /* the caller's control buffer                          */
    long ret;
    size_t controllen;     /* msg_controllen after the call                         */
    int msg_flags;         /* msg_flags after the call                              */
    bool untouched;        /* data, control and msghdr exactly as before the call   */
    int fds[4], nfds;      /* SCM_RIGHTS descriptors received (host closes them)    */
};

static bool all(const unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void take_fds(struct rm *x, struct msghdr *m) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= c->cmsg_len && x->nfds < 4;
                 i++)
                memcpy(&x->fds[x->nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
}

static long e_recvmsg(void *arg) {
    struct rm *x = arg;
    unsigned char *data = eleos_enclave_malloc(enc, 16);
    unsigned char *ctrl = eleos_enclave_malloc(enc, x->ctrl_size);
    memset(data, SENTINEL, 16);
    memset(ctrl, SENTINEL, x->ctrl_size);
    struct iovec iov = {data, 16};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
                       .msg_controllen = x->ctrl_size, .msg_flags = FLAGS_SENTINEL};
    x->ret = eleos_sys_recvmsg(x->fd, &m, x->flags);
    x->controllen = m.msg_controllen;
    x->msg_flags = m.msg_flags;
    x->untouched = all(data, 16, SENTINEL) && all(ctrl, x->ctrl_size, SENTINEL) &&
                   m.msg_controllen == x->ctrl_size && m.msg_flags == FLAGS_SENTINEL;
    x->nfds = 0;
    if (x->ret >= 0)
        take_fds(x, &m);
    eleos_enclave_free(enc, ctrl);
    eleos_enclave_free(enc, data);
    return 0;
}

/* Sends "fds" with nfds copies of fd attached (SCM_RIGHTS) from the host end. */
static void send_fds(int s, int fd, int nfds) {
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {"fds", 3};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    for (int i = 0; i < nfds; i++)
        memcpy(CMSG_DATA(c) + (size_t)i * sizeof(int), &fd, sizeof fd);
    REQUIRE(sendmsg(s, &m, 0) == 3);
}

static struct rm recv_forged(int f, int fd, int flags, size_t ctrl_size) {
    struct rm x = {.fd = fd, .flags = flags, .ctrl_size = ctrl_size};
    long rv;
    atomic_store(&forge, f);
    REQUIRE(eleos_enclave_ecall(enc, e_recvmsg, &x, &rv) == 0);
    atomic_store(&forge, F_NONE);
    for (int i = 0; i < x.nfds; i++)
        if (x.fds[i] >= 0 && x.fds[i] < 1 << 20)
            close(x.fds[i]);
    return x;
}

/* A forgery must give -EIO, one counted fault, and leave the caller's memory alone. */
#define EXPECT_REJECTED(x, before)                                                          \
    do {                                                                                    \
        CHECK_EQ((x).ret, -EIO);                                                            \
        CHECK_EQ(faults() - (before), 1);                                                   \
        CHECK((x).untouched);                                                               \
    } while (0)

static void case_recvmsg_control(void) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(devnull >= 0);
    /* Honest: one descriptor; MSG_CMSG_CLOEXEC is echoed in msg_flags by the kernel. */
    send_fds(sv[1], devnull, 1);
    uint64_t before = faults();
    struct rm x = recv_forged(F_NONE, sv[0], MSG_CMSG_CLOEXEC, 64);
    CHECK_EQ(x.ret, 3);
    CHECK_EQ(x.nfds, 1);
    CHECK_EQ(x.controllen, CMSG_SPACE(sizeof(int)));
    CHECK_EQ(x.msg_flags, MSG_CMSG_CLOEXEC);
    /* Honest: a control buffer too small for the descriptor: MSG_CTRUNC, nothing in it. */
    send_fds(sv[1], devnull, 1);
    x = recv_forged(F_NONE, sv[0], 0, 18);
    CHECK_EQ(x.ret, 3);
    CHECK_EQ(x.controllen, 0);
    CHECK_EQ(x.msg_flags, MSG_CTRUNC);
    CHECK_EQ(faults(), before);
    static const int forged[] = {F_CMSG_LONG, F_CMSG_SHORT, F_FD_NEG, F_FD_HUGE, F_FD_DUP,
                                 F_MSG_FLAGS};
    for (unsigned i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        send_fds(sv[1], devnull, forged[i] == F_FD_DUP ? 2 : 1);
        before = faults();
        x = recv_forged(forged[i], sv[0], 0, 64);
        if (x.ret != -EIO)
            fprintf(stderr, "  forgery %d accepted\n", forged[i]);
        EXPECT_REJECTED(x, before);
    }
    close(devnull);
    close(sv[0]);
    close(sv[1]);
}

/* --- MSG_TRUNC lengths ------------------------------------------------------------------ */

struct rf {
    int fd, flags;
    bool use_msg;   /* recvmsg rather than recv */
    long ret;
    bool untouched;
};

static long e_recv_trunc(void *arg) {
    struct rf *x = arg;
    unsigned char *data = eleos_enclave_malloc(enc, 10);
    memset(data, SENTINEL, 10);
    if (x->use_msg) {
        struct iovec iov = {data, 10};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_flags = FLAGS_SENTINEL};
        x->ret = eleos_sys_recvmsg(x->fd, &m, x->flags);
        x->untouched = all(data, 10, SENTINEL) && m.msg_flags == FLAGS_SENTINEL;
    } else {
        x->ret = eleos_sys_recv(x->fd, data, 10, x->flags);
        x->untouched = all(data, 10, SENTINEL);
    }
    eleos_enclave_free(enc, data);
    return 0;
}

static struct rf recv_trunc(int f, int fd, bool use_msg) {
    struct rf x = {.fd = fd, .flags = MSG_TRUNC | MSG_DONTWAIT, .use_msg = use_msg};
    long rv;
    atomic_store(&forge, f);
    REQUIRE(eleos_enclave_ecall(enc, e_recv_trunc, &x, &rv) == 0);
    atomic_store(&forge, F_NONE);
    return x;
}

static void case_msg_trunc(void) {
    static const char big[64] = "a datagram longer than the buffer";
    for (int type = SOCK_STREAM; type <= SOCK_DGRAM; type++) {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) == 0);
        for (int use_msg = 0; use_msg < 2; use_msg++) {
            /* Stream: MSG_TRUNC never reports more than the buffer; datagram: at most the
             * kernel's largest message, and INT_MAX is beyond it. */
            REQUIRE(send(sv[1], big, sizeof big, 0) == sizeof big);
            uint64_t before = faults();
            struct rf x = recv_trunc(F_TRUNC, sv[0], use_msg);
            EXPECT_REJECTED(x, before);
            /* Honest. */
            REQUIRE(send(sv[1], big, sizeof big, 0) == sizeof big);
            x = recv_trunc(F_NONE, sv[0], use_msg);
            CHECK_EQ(x.ret, type == SOCK_DGRAM ? (long)sizeof big : 10);
            CHECK_EQ(faults(), before + 1);
            if (type == SOCK_STREAM) /* drain */
                while (recv(sv[0], (char[64]){0}, 64, MSG_DONTWAIT) > 0)
                    ;
        }
        close(sv[0]);
        close(sv[1]);
    }
}

/* --- fstat ------------------------------------------------------------------------------ */

struct st {
    int fd;
    long ret;
    struct stat st;
    bool untouched;
};

static long e_fstat(void *arg) {
    struct st *x = arg;
    struct stat *s = eleos_enclave_malloc(enc, sizeof *s);
    memset(s, SENTINEL, sizeof *s);
    x->ret = eleos_sys_fstat(x->fd, s);
    x->untouched = all((unsigned char *)s, sizeof *s, SENTINEL);
    x->st = *s;
    eleos_enclave_free(enc, s);
    return 0;
}

static struct st fstat_forged(int f, int fd) {
    struct st x = {.fd = fd};
    long rv;
    atomic_store(&forge, f);
    REQUIRE(eleos_enclave_ecall(enc, e_fstat, &x, &rv) == 0);
    atomic_store(&forge, F_NONE);
    return x;
}

static void case_fstat(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/eleos-forge-%d", (int)getpid());
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(file >= 0 && write(file, "0123456789", 10) == 10);
    int efd = eventfd(0, EFD_CLOEXEC);
    REQUIRE(efd >= 0);
    uint64_t before = faults();
    /* Honest: an eventfd (an anonymous inode) has no file type; a regular file that was
     * unlinked while open has st_nlink 0 (as has an O_TMPFILE file). */
    struct st x = fstat_forged(F_NONE, efd);
    CHECK_EQ(x.ret, 0);
    CHECK_EQ(x.st.st_mode & S_IFMT, 0);
    x = fstat_forged(F_FSTAT_NLINK0, file);
    CHECK_EQ(x.ret, 0);
    REQUIRE(unlink(path) == 0);
    x = fstat_forged(F_NONE, file);
    CHECK(x.ret == 0 && x.st.st_nlink == 0 && S_ISREG(x.st.st_mode) && x.st.st_size == 10);
    CHECK_EQ(faults(), before);
    /* Forged: a regular file (10 bytes) with no type; an anonymous inode with no link (it
     * can never be unlinked); a link count or mode the kernel's types cannot hold. */
    static const struct {
        int forge, on_eventfd;
    } cases[] = {{F_FSTAT_NOTYPE, 0}, {F_FSTAT_NLINK0, 1}, {F_FSTAT_NLINK_HUGE, 0},
                 {F_FSTAT_MODE_HIGH, 0}};
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        before = faults();
        x = fstat_forged(cases[i].forge, cases[i].on_eventfd ? efd : file);
        if (x.ret != -EIO)
            fprintf(stderr, "  fstat forgery %d accepted\n", cases[i].forge);
        EXPECT_REJECTED(x, before);
    }
    close(efd);
    close(file);
}

/* --- lseek(SEEK_END) -------------------------------------------------------------------- */

struct sk {
    int fd, whence;
    off_t off;
    long ret;
};

static long e_lseek(void *arg) {
    struct sk *x = arg;
    x->ret = eleos_sys_lseek(x->fd, x->off, x->whence);
    return 0;
}

static long lseek_forged(int f, int fd, off_t off, int whence) {
    struct sk x = {.fd = fd, .whence = whence, .off = off};
    long rv;
    atomic_store(&forge, f);
    REQUIRE(eleos_enclave_ecall(enc, e_lseek, &x, &rv) == 0);
    atomic_store(&forge, F_NONE);
    return x.ret;
}

static void case_lseek_end(void) {
    FILE *tf = tmpfile();
    REQUIRE(tf);
    int fd = fileno(tf);
    REQUIRE(write(fd, "0123456789", 10) == 10);
    uint64_t before = faults();
    CHECK_EQ(lseek_forged(F_NONE, fd, 5, SEEK_END), 15);
    /* A position far past the size fstat reports is never returned: the wrapper lands on
     * the confirmed end instead (a size that changed in between is indistinguishable). */
    CHECK_EQ(lseek_forged(F_SEEK_END, fd, 5, SEEK_END), 15);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 15);
    CHECK_EQ(faults(), before);
    /* A host that lies about every seek cannot be confirmed at all. */
    CHECK_EQ(lseek_forged(F_SEEK_ALL, fd, 5, SEEK_END), -EIO);
    CHECK_EQ(faults() - before, 1);
    /* Not a regular file: nothing to compare with; the kernel's answer stands. */
    int p[2];
    REQUIRE(pipe(p) == 0);
    CHECK_EQ(lseek_forged(F_NONE, p[0], 0, SEEK_END), -ESPIPE);
    close(p[0]);
    close(p[1]);
    fclose(tf);
}

/* --- errno range, epoll flags ----------------------------------------------------------- */

static long e_getppid(void *arg) {
    *(long *)arg = eleos_sys_getppid();
    return 0;
}

static long getppid_forged(long val) {
    long r, rv;
    atomic_store(&forge_val, val);
    atomic_store(&forge, F_ERRNO);
    REQUIRE(eleos_enclave_ecall(enc, e_getppid, &r, &rv) == 0);
    atomic_store(&forge, F_NONE);
    return r;
}

static void case_errno_range(void) {
    uint64_t before = faults();
    /* ENOTSUPP (524) is kernel-internal but does reach user space from some drivers; any
     * value up to the kernel's MAX_ERRNO is an errno by the system-call ABI. */
    CHECK_EQ(getppid_forged(-524), -524);
    CHECK_EQ(getppid_forged(-4095), -4095);
    CHECK_EQ(faults(), before);
    CHECK_EQ(getppid_forged(-4096), -EIO);
    CHECK_EQ(getppid_forged(LONG_MIN), -EIO);
    CHECK_EQ(faults() - before, 2);
}

static void case_pid_range(void) {
    uint64_t before = faults();
    CHECK_EQ(getppid_forged(4 * 1024 * 1024), 4 * 1024 * 1024); /* PID_MAX_LIMIT */
    CHECK_EQ(getppid_forged(0), 0); /* a parent outside the pid namespace */
    CHECK_EQ(faults(), before);
    CHECK_EQ(getppid_forged(4 * 1024 * 1024 + 1), -EIO);
    CHECK_EQ(getppid_forged(INT_MAX), -EIO);
    CHECK_EQ(faults() - before, 2);
}

struct ew {
    int ep;
    long ret;
    bool untouched;
};

static long e_epoll(void *arg) {
    struct ew *x = arg;
    struct epoll_event *ev = eleos_enclave_malloc(enc, 2 * sizeof *ev);
    memset(ev, SENTINEL, 2 * sizeof *ev);
    x->ret = eleos_sys_epoll_wait(x->ep, ev, 2, 0);
    /* The output array may be wiped, but no forged event may be left in it. */
    x->untouched = true;
    for (int i = 0; i < 2; i++)
        x->untouched &= all((unsigned char *)&ev[i], sizeof *ev, SENTINEL) ||
                        all((unsigned char *)&ev[i], sizeof *ev, 0);
    eleos_enclave_free(enc, ev);
    return 0;
}

static void case_epoll_flags(void) {
    int p[2];
    REQUIRE(pipe(p) == 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET, .data.u64 = 3};
    REQUIRE(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev) == 0);
    struct ew x = {.ep = ep};
    long rv;
    uint64_t before = faults();
    atomic_store(&forge, F_EPOLL_ET);
    REQUIRE(eleos_enclave_ecall(enc, e_epoll, &x, &rv) == 0);
    atomic_store(&forge, F_NONE);
    EXPECT_REJECTED(x, before);
    /* Edge-triggered: the forged call consumed the edge; EPOLL_CTL_MOD re-arms it. */
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev) == 0);
    REQUIRE(eleos_enclave_ecall(enc, e_epoll, &x, &rv) == 0);
    CHECK_EQ(x.ret, 1);
    close(ep);
    close(p[0]);
    close(p[1]);
}

/* --- large messages: the socket type and the temporary buffer --------------------------- */

#define BIG 100000

struct bs {
    int fd;
    unsigned char *victim;   /* enclave memory the forged mapping points at */
    size_t victim_size;
    long ret;
};

static long e_victim(void *arg) {
    struct bs *x = arg;
    x->victim = eleos_enclave_aligned_alloc(enc, ELEOS_PAGE_SIZE, x->victim_size);
    if (x->victim)
        memset(x->victim, SENTINEL, x->victim_size);
    return 0;
}

static long e_send_big(void *arg) {
    struct bs *x = arg;
    unsigned char *buf = eleos_enclave_malloc(enc, BIG);
    memset(buf, 0x11, BIG);
    x->ret = eleos_sys_send(x->fd, buf, BIG, MSG_DONTWAIT);
    eleos_enclave_free(enc, buf);
    return 0;
}

static long send_big_forged(struct bs *x, int f, long val) {
    long rv;
    atomic_store(&forge_val, val);
    atomic_store(&forge, f);
    REQUIRE(eleos_enclave_ecall(enc, e_send_big, x, &rv) == 0);
    atomic_store(&forge, F_NONE);
    return x->ret;
}

static void case_big_message_buffer(void) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
    struct bs x = {.fd = sv[0], .victim_size = 2 * BIG};
    long rv;
    REQUIRE(eleos_enclave_ecall(enc, e_victim, &x, &rv) == 0 && x.victim);
    void *base;
    size_t size;
    eleos_enclave_elrange(enc, &base, &size);
    /* A "temporary buffer" inside the enclave, or straddling its first page: the enclave
     * must not write the message over its own memory. */
    long inside[] = {(long)(uintptr_t)x.victim, (long)(uintptr_t)base - ELEOS_PAGE_SIZE};
    for (unsigned i = 0; i < 2; i++) {
        uint64_t before = faults();
        CHECK_EQ(send_big_forged(&x, F_MMAP, inside[i]), -EIO);
        CHECK_EQ(faults() - before, 1);
    }
    CHECK(all(x.victim, x.victim_size, SENTINEL));
    /* A socket type no kernel has. */
    uint64_t before = faults();
    CHECK_EQ(send_big_forged(&x, F_SO_TYPE, 0), -EIO);
    CHECK_EQ(faults() - before, 1);
    CHECK_EQ(recv(sv[1], (char[16]){0}, 16, MSG_DONTWAIT), -1); /* nothing was sent */
    /* Honest. */
    CHECK_EQ(send_big_forged(&x, F_NONE, 0), BIG);
    close(sv[0]);
    close(sv[1]);
}

/* An SCTP socket keeps message boundaries even as SOCK_STREAM: a large send goes whole, in
 * one call, where a byte stream goes in bounce-sized chunks. (The forger makes a Unix
 * stream socket claim SCTP: SCTP itself is seldom available in test machines.) */
static void case_sctp_stream_send(void) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    struct bs x = {.fd = sv[0]};
    atomic_store(&sends, 0);
    CHECK_EQ(send_big_forged(&x, F_NONE, 0), BIG);
    CHECK_EQ(atomic_load(&sends), 2); /* a byte stream: two chunks */
    atomic_store(&sends, 0);
    CHECK_EQ(send_big_forged(&x, F_SCTP, 0), BIG);
    CHECK_EQ(atomic_load(&sends), 1); /* a message: whole */
    close(sv[0]);
    close(sv[1]);
}

/* --- file offsets near the end of off_t ------------------------------------------------ */

struct pw {
    int fd;
    long wr, rd;
};

static long e_pos(void *arg) {
    struct pw *x = arg;
    enum { N = 200000 };
    char *buf = eleos_enclave_malloc(enc, N);
    memset(buf, 0, N);
    x->wr = eleos_sys_pwrite(x->fd, buf, N, LLONG_MAX - 100);
    x->rd = eleos_sys_pread(x->fd, buf, N, LLONG_MAX - 100);
    eleos_enclave_free(enc, buf);
    return 0;
}

/* A host that claims every chunk of a pread/pwrite succeeded, even at offsets no file
 * reaches, must not make the enclave compute the next chunk's offset past the end of off_t
 * (signed overflow): the transfer stops at the last representable offset. */
static void case_offset_overflow(void) {
    FILE *tf = tmpfile();
    REQUIRE(tf);
    struct pw x = {.fd = fileno(tf)};
    long rv;
    atomic_store(&wrapped, 0);
    atomic_store(&forge, F_POS_OK);
    REQUIRE(eleos_enclave_ecall(enc, e_pos, &x, &rv) == 0);
    atomic_store(&forge, F_NONE);
    CHECK_EQ(atomic_load(&wrapped), 0);
    CHECK(x.wr > 0 && x.wr <= 200000);
    CHECK(x.rd > 0 && x.rd <= 200000);
    fclose(tf);
}

/* --- returned address lengths ----------------------------------------------------------- */

struct ra {
    int fd;
    long ret;
    socklen_t len;
    bool tail_untouched;
};

static long e_recv_addr(void *arg) {
    struct ra *x = arg;
    unsigned char *addr = eleos_enclave_malloc(enc, 8);
    char *data = eleos_enclave_malloc(enc, 8);
    memset(addr, SENTINEL, 8);
    socklen_t len = 4; /* room for part of a sockaddr_in only */
    x->ret = eleos_sys_recvfrom(x->fd, data, 8, 0, (struct sockaddr *)addr, &len);
    x->len = len;
    x->tail_untouched = all(addr + 4, 4, SENTINEL);
    eleos_enclave_free(enc, data);
    eleos_enclave_free(enc, addr);
    return 0;
}

static void case_addr_len(void) {
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    REQUIRE(u >= 0 && bind(u, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            getsockname(u, (struct sockaddr *)&sa, &sl) == 0);
    uint64_t before = faults();
    /* As the kernel does: the real length comes back, only what fits is copied. */
    static const int modes[] = {F_NONE, F_ADDRLEN};
    for (unsigned i = 0; i < 2; i++) {
        int f = modes[i];
        REQUIRE(sendto(u, "addr", 4, 0, (struct sockaddr *)&sa, sizeof sa) == 4);
        struct ra x = {.fd = u};
        long rv;
        atomic_store(&forge_val, 100); /* 116: still a length the kernel could report */
        atomic_store(&forge, f);
        REQUIRE(eleos_enclave_ecall(enc, e_recv_addr, &x, &rv) == 0);
        atomic_store(&forge, F_NONE);
        CHECK_EQ(x.ret, 4);
        CHECK_EQ(x.len, f == F_NONE ? sizeof sa : sizeof sa + 100);
        CHECK(x.tail_untouched);
    }
    CHECK_EQ(faults(), before);
    close(u);
}

/* --- setup ------------------------------------------------------------------------------ */

static void setup(void) {
    enc = rpc_test_enclave(0);
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = 1;
    pc.channels = 2;
    pool = rpc_test_pool(enc, &pc, NULL, 0, register_forger);
    cl = rpc_test_client(enc, pool, eleos_sys_init);
}

static void teardown(void) {
    rpc_test_client_destroy(enc, cl, eleos_sys_init);
    rpc_test_teardown(enc, pool);
}

/* Each case on a fresh pool and client. */
#define WITH_POOL(name)                                                                     \
    static void test_##name(void) {                                                         \
        setup();                                                                            \
        case_##name();                                                                      \
        teardown();                                                                         \
    }
WITH_POOL(recvmsg_control)
WITH_POOL(msg_trunc)
WITH_POOL(fstat)
WITH_POOL(lseek_end)
WITH_POOL(errno_range)
WITH_POOL(epoll_flags)
WITH_POOL(big_message_buffer)
WITH_POOL(addr_len)
WITH_POOL(pid_range)
WITH_POOL(sctp_stream_send)
WITH_POOL(offset_overflow)

TEST_MAIN(TEST_CASE(test_recvmsg_control), TEST_CASE(test_msg_trunc), TEST_CASE(test_fstat),
          TEST_CASE(test_lseek_end), TEST_CASE(test_errno_range), TEST_CASE(test_epoll_flags),
          TEST_CASE(test_big_message_buffer), TEST_CASE(test_addr_len),
          TEST_CASE(test_pid_range), TEST_CASE(test_sctp_stream_send),
          TEST_CASE(test_offset_overflow))
