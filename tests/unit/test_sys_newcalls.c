/*
 * test_sys_newcalls — targeted forgeries against fcntl, dup/dup3, poll, fstatat, mkdirat,
 * renameat and getrandom. The executor registered here runs each call for real, then
 * rewrites one thing the enclave receives, chosen by the test. What no kernel could return
 * must become -EIO, counted, with the caller's memory untouched (poll: every revents 0);
 * what a kernel can return (O_LARGEFILE in F_GETFL, POLLHUP on a POLLOUT request) must pass.
 * A host that returns chosen "random" bytes must not decide getrandom's output.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "eleos/sys.h"
#include "harness.h"
#include "rpc_testutil.h"

enum forge {
    F_NONE,
    F_GETFD_2,       /* fcntl(F_GETFD): 2, not a descriptor flag                     */
    F_GETFL_HIGH,    /* fcntl(F_GETFL): bit 30 set, no open flag                     */
    F_GETFL_LARGE,   /* fcntl(F_GETFL): O_LARGEFILE added (honest: the kernel sets it) */
    F_DUP_SELF,      /* dup, fcntl(F_DUPFD): the old descriptor itself               */
    F_DUP_LOW,       /* fcntl(F_DUPFD): a descriptor below the minimum asked         */
    F_DUP3_OTHER,    /* dup3: a descriptor other than newfd                          */
    F_POLL_BIT,      /* poll: POLLPRI in the first entry, which asked POLLIN only    */
    F_POLL_COUNT,    /* poll: result one more than the entries with events           */
    F_POLL_NEG,      /* poll: revents on an entry with a negative fd                 */
    F_POLL_NVAL,     /* poll: POLLNVAL together with POLLIN                          */
    F_POLL_HUP,      /* poll: POLLHUP added to the first entry (honest)              */
    F_STAT_LINK,     /* newfstatat: a followed path comes back as a symbolic link   */
    F_STAT_MODE,     /* newfstatat: mode above 16 bits                               */
    F_POSITIVE,      /* mkdirat, renameat: 1                                         */
    F_RAND_ZERO,     /* getrandom: all zero bytes                                    */
    F_RAND_LONG,     /* getrandom: one byte more than asked                          */
};

/* The kernel's O_LARGEFILE on x86-64 (glibc defines O_LARGEFILE as 0 there). */
#define KERNEL_O_LARGEFILE 0100000

static struct eleos_enclave *enc;
static struct eleos_rpc_pool *pool;
static struct eleos_rpc_client *cl;
static _Atomic int forge;

static void *ptr(uint64_t v) {
    return (void *)(uintptr_t)v;
}

static long forge_poll(int f, const uint64_t *a, long r) {
    struct pollfd *pf = ptr(a[1]);
    if (f == F_POLL_BIT)
        pf[0].revents |= POLLPRI;
    else if (f == F_POLL_COUNT)
        return r + 1;
    else if (f == F_POLL_NEG && a[2] > 1) {
        pf[1].revents = POLLIN;
        return r + 1;
    } else if (f == F_POLL_NVAL) {
        pf[0].revents = POLLNVAL | POLLIN;
        return r + (r == 0);
    } else if (f == F_POLL_HUP) {
        r += pf[0].revents == 0;
        pf[0].revents |= POLLHUP;
    }
    return r;
}

static long forge_result(int f, const uint64_t *a, long r) {
    switch ((long)a[0]) {
    case SYS_fcntl:
        if (r < 0)
            return r;
        if (f == F_GETFD_2 && a[2] == F_GETFD)
            return 2;
        if ((f == F_GETFL_HIGH || f == F_GETFL_LARGE) && a[2] == F_GETFL)
            return r | (f == F_GETFL_HIGH ? 0x40000000L : KERNEL_O_LARGEFILE);
        if (f == F_DUP_SELF && a[2] == F_DUPFD) {
            close((int)r);
            return (long)a[1];
        }
        if (f == F_DUP_LOW && a[2] == F_DUPFD) {
            close((int)r);
            return (long)a[3] - 1;
        }
        return r;
    case SYS_dup:
        if (f == F_DUP_SELF && r >= 0) {
            close((int)r);
            return (long)a[1];
        }
        return r;
    case SYS_dup3:
        return (f == F_DUP3_OTHER && r >= 0) ? (long)a[1] : r;
    case SYS_poll:
        return r >= 0 ? forge_poll(f, a, r) : r;
    case SYS_newfstatat:
        if (r == 0 && f == F_STAT_LINK)
            ((struct stat *)ptr(a[3]))->st_mode = S_IFLNK | 0777;
        if (r == 0 && f == F_STAT_MODE)
            ((struct stat *)ptr(a[3]))->st_mode |= 0x10000;
        return r;
    case SYS_mkdirat:
    case SYS_renameat2:
        return f == F_POSITIVE ? 1 : r;
    case SYS_getrandom:
        if (f == F_RAND_ZERO && r > 0)
            memset(ptr(a[1]), 0, (size_t)r);
        return (f == F_RAND_LONG && r >= 0) ? (long)a[2] + 1 : r;
    default:
        return r;
    }
}

static int64_t forge_exec(void *ctx, const uint64_t a[ELEOS_RPC_NARGS]) {
    (void)ctx;
    long r = syscall((long)a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    if (r == -1)
        r = -errno;
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

/* --- one call in the enclave under a forgery -------------------------------------------- */

enum op { OP_GETFD, OP_GETFL, OP_DUP, OP_DUPFD, OP_DUP3, OP_POLL, OP_STAT, OP_LSTAT,
          OP_MKDIR, OP_RENAME, OP_RANDOM };

struct call {
    enum op op;
    int fd, fd2;
    const char *path, *path2;
    long ret;
    struct pollfd pf[2];
    struct stat st;
    unsigned char rnd[256];
};

static long e_call(void *arg) {
    struct call *c = arg;
    switch (c->op) {
    case OP_GETFD: c->ret = eleos_sys_fcntl(c->fd, F_GETFD, 0); break;
    case OP_GETFL: c->ret = eleos_sys_fcntl(c->fd, F_GETFL, 0); break;
    case OP_DUP: c->ret = eleos_sys_dup(c->fd); break;
    case OP_DUPFD: c->ret = eleos_sys_fcntl(c->fd, F_DUPFD, 50); break;
    case OP_DUP3: c->ret = eleos_sys_dup3(c->fd, c->fd2, 0); break;
    case OP_POLL: c->ret = eleos_sys_poll(c->pf, 2, 0); break;
    case OP_STAT: c->ret = eleos_sys_stat(c->path, &c->st); break;
    case OP_LSTAT: c->ret = eleos_sys_lstat(c->path, &c->st); break;
    case OP_MKDIR: c->ret = eleos_sys_mkdirat(AT_FDCWD, c->path, 0700); break;
    case OP_RENAME: c->ret = eleos_sys_renameat(AT_FDCWD, c->path, AT_FDCWD, c->path2); break;
    case OP_RANDOM: c->ret = eleos_sys_getrandom(c->rnd, sizeof c->rnd, 0); break;
    }
    return 0;
}

/* Runs c under forgery f; returns how many results were rejected. */
static uint64_t run(struct call *c, int f) {
    uint64_t before = faults();
    atomic_store(&forge, f);
    long rv;
    REQUIRE(eleos_enclave_ecall(enc, e_call, c, &rv) == 0);
    atomic_store(&forge, F_NONE);
    return faults() - before;
}

static void case_fcntl_dup(void) {
    int p[2];
    REQUIRE(pipe(p) == 0);
    struct call c = {.op = OP_GETFD, .fd = p[0]};
    CHECK_EQ(run(&c, F_GETFD_2), 1);
    CHECK_EQ(c.ret, -EIO);
    c.op = OP_GETFL;
    CHECK_EQ(run(&c, F_GETFL_HIGH), 1);
    CHECK_EQ(c.ret, -EIO);
    CHECK_EQ(run(&c, F_GETFL_LARGE), 0);
    CHECK(c.ret >= 0 && (c.ret & KERNEL_O_LARGEFILE));
    c.op = OP_DUP;
    CHECK_EQ(run(&c, F_DUP_SELF), 1);
    CHECK_EQ(c.ret, -EIO);
    c.op = OP_DUPFD;
    CHECK_EQ(run(&c, F_DUP_SELF), 1);
    CHECK_EQ(c.ret, -EIO);
    CHECK_EQ(run(&c, F_DUP_LOW), 1);
    CHECK_EQ(c.ret, -EIO);
    CHECK_EQ(run(&c, F_NONE), 0);
    CHECK(c.ret >= 50);
    close((int)c.ret);
    c = (struct call){.op = OP_DUP3, .fd = p[0], .fd2 = 60};
    CHECK_EQ(run(&c, F_DUP3_OTHER), 1);
    CHECK_EQ(c.ret, -EIO);
    close(60);
    close(p[0]);
    close(p[1]);
}

static void case_poll(void) {
    int p[2];
    REQUIRE(pipe(p) == 0);
    static const struct { int f; uint64_t rejected; } cases[] = {
        {F_POLL_BIT, 1}, {F_POLL_COUNT, 1}, {F_POLL_NEG, 1}, {F_POLL_NVAL, 1}, {F_POLL_HUP, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct call c = {.op = OP_POLL};
        c.pf[0] = (struct pollfd){p[0], POLLIN, 0x55};
        /* The negative-fd forgery needs a skipped entry; the others a writable one. */
        c.pf[1] = (struct pollfd){cases[i].f == F_POLL_NEG ? -1 : p[1], POLLOUT, 0x55};
        CHECK_EQ(run(&c, cases[i].f), cases[i].rejected);
        if (cases[i].rejected) {
            CHECK_EQ(c.ret, -EIO);
            CHECK(c.pf[0].revents == 0 && c.pf[1].revents == 0);
        } else {
            CHECK_EQ(c.ret, 2);
            CHECK(c.pf[0].revents == POLLHUP && c.pf[1].revents == POLLOUT);
        }
        CHECK(c.pf[0].fd == p[0] && c.pf[0].events == POLLIN); /* inputs never rewritten */
    }
    close(p[0]);
    close(p[1]);
}

static void case_paths(void) {
    char dir[64], dir2[80];
    snprintf(dir, sizeof dir, "/tmp/eleos-newcalls-%d", (int)getpid());
    snprintf(dir2, sizeof dir2, "%s.b", dir);
    struct call c = {.op = OP_STAT, .path = "/"};
    memset(&c.st, 0x5a, sizeof c.st);
    struct stat sentinel = c.st;
    CHECK_EQ(run(&c, F_STAT_LINK), 1);
    CHECK_EQ(c.ret, -EIO);
    CHECK(memcmp(&c.st, &sentinel, sizeof sentinel) == 0);
    CHECK_EQ(run(&c, F_STAT_MODE), 1);
    CHECK(c.ret == -EIO && memcmp(&c.st, &sentinel, sizeof sentinel) == 0);
    c.op = OP_LSTAT; /* not followed: a link is honest */
    CHECK_EQ(run(&c, F_STAT_LINK), 0);
    CHECK(c.ret == 0 && S_ISLNK(c.st.st_mode));
    c = (struct call){.op = OP_MKDIR, .path = dir, .path2 = dir2};
    CHECK_EQ(run(&c, F_POSITIVE), 1);
    CHECK_EQ(c.ret, -EIO);
    c.op = OP_RENAME;
    CHECK_EQ(run(&c, F_POSITIVE), 1);
    CHECK_EQ(c.ret, -EIO);
    CHECK_EQ(access(dir2, F_OK), 0); /* the real rename ran: the lie was only its result */
    rmdir(dir2);
}

/* RDRAND, asked as the library asks (CPUID.1:ECX bit 30). */
static bool cpu_has_rdrand(void) {
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    return (c >> 30) & 1;
}

static bool all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void case_getrandom(void) {
    struct call c = {.op = OP_RANDOM};
    CHECK_EQ(run(&c, F_RAND_LONG), 1);
    CHECK_EQ(c.ret, -EIO);
    CHECK(all_zero(c.rnd, sizeof c.rnd)); /* nothing delivered */
    CHECK_EQ(run(&c, F_RAND_ZERO), 0);
    CHECK_EQ(c.ret, (long)sizeof c.rnd);
    if (cpu_has_rdrand()) {
        /* The host chose every byte, yet the output is the CPU's: not its zeros, and not
         * the same twice. */
        unsigned char first[sizeof c.rnd];
        memcpy(first, c.rnd, sizeof first);
        CHECK(!all_zero(c.rnd, sizeof c.rnd));
        CHECK_EQ(run(&c, F_RAND_ZERO), 0);
        CHECK(memcmp(first, c.rnd, sizeof first) != 0);
    } else {
        fprintf(stderr, "  no RDRAND on this CPU: the host's bytes pass unmixed (documented)\n");
        CHECK(all_zero(c.rnd, sizeof c.rnd));
    }
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

#define WITH_POOL(name)                                                                     \
    static void test_##name(void) {                                                         \
        setup();                                                                            \
        case_##name();                                                                      \
        teardown();                                                                         \
    }
WITH_POOL(fcntl_dup)
WITH_POOL(poll)
WITH_POOL(paths)
WITH_POOL(getrandom)

TEST_MAIN(TEST_CASE(test_fcntl_dup), TEST_CASE(test_poll), TEST_CASE(test_paths),
          TEST_CASE(test_getrandom))
