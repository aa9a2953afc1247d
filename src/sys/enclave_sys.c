/*
 * enclave_sys.c — the trusted half of exitless system calls: marshalling through the
 * thread's untrusted bounce buffer and Iago checks on every result.
 *
 * Data flow per call: arguments that are buffers or structures are copied into the bounce
 * buffer (structures into its first ELEOS_SYS_META_SIZE bytes, data after them); the
 * request names only bounce addresses and plain integers; the result is validated as a
 * number first, and only then is anything copied back, exactly as many bytes as the
 * validated result allows, with lengths taken from enclave copies. Every value read back
 * from the bounce buffer is read once into enclave memory (snapshot) and validated there:
 * the host may rewrite the bounce buffer while we copy (the adversarial tests do).
 *
 * Invariants: no enclave pointer is ever put in a request; every copy out of the bounce
 * buffer is bounded by a length the enclave computed or validated; a failed check yields
 * -EIO and bumps a counter. No system call is made here (enclave code): everything goes
 * through eleos_rpc_call, whose fast path is pure shared-memory spinning.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "eleos/sys.h"

/* Largest iovcnt accepted (the kernel's UIO_MAXIOV). */
#define SYS_IOV_MAX 1024
/* Most descriptors one message carries (the kernel's SCM_MAX_FD). */
#define SYS_SCM_MAX_FD 253
/* Largest process id (the kernel's PID_MAX_LIMIT on 64-bit). */
#define SYS_PID_MAX (4 * 1024 * 1024)
/* SCTP's notification flag in msg_flags (netinet/sctp.h's MSG_NOTIFICATION). */
#define SYS_MSG_NOTIFICATION 0x8000
/* Offsets inside the metadata area. */
#define META_HDR     0u    /* struct msghdr, stat, timespec pair, int pair, socklen_t… */
#define META_IOV     128u  /* one struct iovec                                        */
#define META_ADDRLEN 192u  /* socklen_t in/out                                        */
#define META_ADDR    256u  /* struct sockaddr_storage                                 */
#define META_CTRL    512u  /* control data of sendmsg/recvmsg                         */
#define META_CTRL_MAX (ELEOS_SYS_META_SIZE - META_CTRL)

static struct eleos_rpc_client *_Atomic g_client;
static _Atomic bool g_exit;
static _Thread_local enum eleos_sys_mode tl_mode;

static _Atomic uint64_t st_len, st_errno, st_events, st_struct;

void eleos_sys_init(struct eleos_rpc_client *cl) {
    atomic_store_explicit(&g_client, cl, memory_order_release); /* pairs with client() */
}

void eleos_sys_set_exitless(bool on) {
    atomic_store_explicit(&g_exit, !on, memory_order_relaxed);
}

enum eleos_sys_mode eleos_sys_thread_mode(enum eleos_sys_mode mode) {
    enum eleos_sys_mode old = tl_mode;
    tl_mode = mode;
    return old;
}

void eleos_sys_stats(struct eleos_sys_stats *out) {
    out->iago_len = atomic_load_explicit(&st_len, memory_order_relaxed);
    out->iago_errno = atomic_load_explicit(&st_errno, memory_order_relaxed);
    out->iago_events = atomic_load_explicit(&st_events, memory_order_relaxed);
    out->iago_struct = atomic_load_explicit(&st_struct, memory_order_relaxed);
}

void eleos_sys_stats_reset(void) {
    atomic_store_explicit(&st_len, 0, memory_order_relaxed);
    atomic_store_explicit(&st_errno, 0, memory_order_relaxed);
    atomic_store_explicit(&st_events, 0, memory_order_relaxed);
    atomic_store_explicit(&st_struct, 0, memory_order_relaxed);
}

static long iago(_Atomic uint64_t *counter) {
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    return -EIO;
}

/* --- the call --------------------------------------------------------------------------- */

/* The client, or NULL with a one-line diagnostic (once per process) naming the step that
 * was forgotten. In enclave mode the line is one counted exit, once. */
static struct eleos_rpc_client *client(void) {
    struct eleos_rpc_client *cl = atomic_load_explicit(&g_client, memory_order_acquire);
    static _Atomic bool told;
    if (!cl && !atomic_exchange_explicit(&told, true, memory_order_relaxed))
        fputs("eleos: system-call wrapper used before eleos_sys_init: -EUNATCH\n", stderr);
    return cl;
}

static uint32_t mode_flags(void) {
    enum eleos_sys_mode m = tl_mode;
    if (m == ELEOS_SYS_MODE_EXIT ||
        (m == ELEOS_SYS_MODE_DEFAULT && atomic_load_explicit(&g_exit, memory_order_relaxed)))
        return ELEOS_RPC_F_EXIT;
    return 0;
}

/* Runs system call nr on the host. Returns the raw, unvalidated result. */
static long sysc(uint32_t flags, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                 uint64_t a5, uint64_t a6) {
    struct eleos_rpc_client *cl = client();
    if (!cl)
        return -EUNATCH;
    struct eleos_rpc_req req = {.fn = ELEOS_RPC_FN_SYSCALL,
                                .flags = flags | mode_flags(),
                                .args = {(uint64_t)nr, a1, a2, a3, a4, a5, a6}};
    int64_t r;
    int rc = eleos_rpc_call(cl, &req, &r);
    return rc ? rc : (long)r;
}
/* Socket calls flagged MSG_DONTWAIT cannot block, so their worker stays in the awake set:
 * an event loop on non-blocking sockets (eleos-kvs) would otherwise make every recv and send
 * a "may block" call, during which other threads find no worker awake and take exits. */
static uint32_t sock_block(int flags) {
    return (flags & MSG_DONTWAIT) ? 0 : ELEOS_RPC_F_MAYBLOCK;
}

#define SYS(fl, nr, a1, a2, a3, a4, a5, a6)                                                   \
    sysc((fl), (nr), (uint64_t)(a1), (uint64_t)(a2), (uint64_t)(a3), (uint64_t)(a4),          \
         (uint64_t)(a5), (uint64_t)(a6))

/* --- Iago checks on numbers ------------------------------------------------------------- */

/* A negative result must be a real errno. */
static long check_err(long r) {
    if (r < 0 && r < -ELEOS_SYS_ERRNO_MAX)
        return iago(&st_errno);
    return r;
}
/* A byte count in [0, max]. */
static long check_len(long r, size_t max) {
    r = check_err(r);
    if (r >= 0 && (unsigned long)r > max)
        return iago(&st_len);
    return r;
}
/* 0 or an errno. */
static long check_zero(long r) {
    r = check_err(r);
    if (r > 0)
        return iago(&st_struct);
    return r;
}
/* A new descriptor. */
static long check_fd(long r) {
    r = check_err(r);
    if (r > ELEOS_SYS_FD_MAX)
        return iago(&st_struct);
    return r;
}

/* --- bounce buffer ---------------------------------------------------------------------- */

struct bounce {
    char *meta;      /* untrusted, ELEOS_SYS_META_SIZE bytes */
    char *data;      /* untrusted, data_size bytes           */
    size_t data_size;
};

static int get_bounce(struct bounce *b) {
    struct eleos_rpc_client *cl = client();
    if (!cl)
        return -EUNATCH;
    size_t size;
    char *p = eleos_rpc_bounce(cl, &size);
    if (!p)
        return -ENOSPC;
    if (size <= ELEOS_SYS_META_SIZE)
        return -ENOBUFS;
    b->meta = p;
    b->data = p + ELEOS_SYS_META_SIZE;
    b->data_size = size - ELEOS_SYS_META_SIZE;
    return 0;
}

/* Copies n bytes out of untrusted memory (the single crossing point for data). */
static void copy_in(void *dst, const void *untrusted_src, size_t n) {
    memcpy(dst, untrusted_src, n);
}
static void copy_out(void *untrusted_dst, const void *src, size_t n) {
    memcpy(untrusted_dst, src, n);
}
static socklen_t read_socklen(const char *meta) {
    socklen_t v;
    copy_in(&v, meta + META_ADDRLEN, sizeof v);
    return v;
}

static size_t min_sz(size_t a, size_t b) {
    return a < b ? a : b;
}

/* --- messages larger than the bounce buffer --------------------------------------------- */

enum { KIND_UNKNOWN = 0, KIND_STREAM = 1, KIND_MESSAGE = 2 };

/* One SOL_SOCKET option of fd that is an int (SO_TYPE, SO_PROTOCOL), through the metadata
 * area; 0, or a negative errno (-ENOTSOCK for anything that is not a socket). */
static long sock_int_opt(const struct bounce *b, int fd, int opt, int *val) {
    socklen_t len = sizeof(int);
    copy_out(b->meta + META_ADDRLEN, &len, sizeof len);
    long r = check_zero(SYS(0, SYS_getsockopt, fd, SOL_SOCKET, opt, b->meta + META_CTRL,
                            b->meta + META_ADDRLEN, 0));
    if (r < 0)
        return r;
    if (read_socklen(b->meta) != sizeof(int))
        return iago(&st_struct);
    copy_in(val, b->meta + META_CTRL, sizeof *val);
    return 0;
}

/*
 * Whether fd keeps message boundaries (KIND_MESSAGE) or is a byte stream (KIND_STREAM: a
 * stream socket, or no socket at all: files, pipes, eventfds). Asked only when it matters,
 * at the cost of a call or two: a transfer larger than the bounce buffer, or a receive
 * with MSG_TRUNC. SCTP keeps message boundaries even on SOCK_STREAM, which matters only
 * to a send (a receive may return part of an SCTP message). A host that lies about the type
 * only chooses between behaviours it controls anyway (its kernel can split or drop any
 * message); a type no kernel has is a fault.
 */
static long sock_kind(const struct bounce *b, int fd, bool sending) {
    int type;
    long r = sock_int_opt(b, fd, SO_TYPE, &type);
    if (r == -ENOTSOCK)
        return KIND_STREAM;
    if (r < 0)
        return r;
    switch (type) {
    case SOCK_STREAM: {
        if (!sending)
            return KIND_STREAM;
        int proto;
        r = sock_int_opt(b, fd, SO_PROTOCOL, &proto);
        return r < 0 ? r : proto == IPPROTO_SCTP ? KIND_MESSAGE : KIND_STREAM;
    }
    case SOCK_DGRAM:
    case SOCK_SEQPACKET:
    case SOCK_RAW:
    case SOCK_RDM:
    case SOCK_DCCP:
    case SOCK_PACKET:
        return KIND_MESSAGE;
    default:
        return iago(&st_struct);
    }
}

/*
 * Maps size bytes of untrusted memory for one message larger than the bounce buffer. The
 * host maps it through the same channel (no exit), so the address is the host's word: it
 * is accepted only page aligned and wholly outside the enclave, or the enclave would copy
 * the message over its own memory (or hand its own memory to the caller as received data).
 */
static long map_untrusted(size_t size, char **out) {
    struct eleos_rpc_client *cl = client();
    if (!cl)
        return -EUNATCH;
    long r = check_err(SYS(0, SYS_mmap, 0, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (r < 0)
        return r;
    char *p = (char *)(uintptr_t)r;
    if (!p || ((uintptr_t)p & (ELEOS_PAGE_SIZE - 1)) ||
        !eleos_enclave_outside(eleos_rpc_client_enclave(cl), p, size))
        return iago(&st_struct); /* not ours to unmap: the host keeps whatever it mapped */
    *out = p;
    return 0;
}

/* Where a transfer's data goes: the bounce buffer's data area or a temporary mapping. */
struct xfer {
    char *data;   /* untrusted                                                   */
    size_t n;     /* bytes offered to the host                                   */
    size_t map;   /* size of the temporary mapping (0: the bounce buffer)        */
    int kind;     /* KIND_*; KIND_UNKNOWN unless it was asked                    */
};

/*
 * Chooses where count bytes on fd go. Bytes that fit go through the bounce buffer. A byte
 * stream gets at most one bounce buffer's worth (a short transfer, which streams allow;
 * callers of write loop over chunks). A message goes whole through a temporary mapping: a
 * split would turn it into two messages and a cut would drop its tail. A message longer
 * than any the kernel transfers is EMSGSIZE to send; to receive, no message exceeds it.
 * need_kind asks the socket type even when the bytes fit (MSG_TRUNC receives).
 */
static long xfer_begin(const struct bounce *b, int fd, size_t count, bool sending,
                       bool need_kind, struct xfer *x) {
    *x = (struct xfer){b->data, count, 0, KIND_UNKNOWN};
    if (count <= b->data_size && !need_kind)
        return 0;
    long k = sock_kind(b, fd, sending);
    if (k < 0)
        return k;
    x->kind = (int)k;
    if (count <= b->data_size)
        return 0;
    if (k == KIND_STREAM) {
        x->n = b->data_size;
        return 0;
    }
    if (count > ELEOS_SYS_MSG_MAX) {
        if (sending)
            return -EMSGSIZE;
        x->n = ELEOS_SYS_MSG_MAX;
    }
    size_t size = (x->n + ELEOS_PAGE_SIZE - 1) & ~(size_t)(ELEOS_PAGE_SIZE - 1);
    long r = map_untrusted(size, &x->data);
    if (r < 0)
        return r;
    x->map = size;
    return 0;
}

static void xfer_end(const struct xfer *x) {
    if (x->map) /* the host's mapping, whatever it answers */
        (void)SYS(0, SYS_munmap, x->data, x->map, 0, 0, 0, 0);
}

/* A received length: at most what was offered, except that MSG_TRUNC on a socket that keeps
 * message boundaries reports the whole message's length, which no kernel makes longer
 * than ELEOS_SYS_MSG_MAX. */
static long check_recv_len(long r, const struct xfer *x, int flags) {
    r = check_err(r);
    if (r >= 0 && (size_t)r > x->n &&
        !((flags & MSG_TRUNC) && x->kind == KIND_MESSAGE && r <= ELEOS_SYS_MSG_MAX))
        return iago(&st_len);
    return r;
}

/* --- read / write family ---------------------------------------------------------------- */

/* Scatters n bytes of untrusted src over the iovec array. */
static void scatter_iov(const struct iovec *iov, int iovcnt, const char *src, size_t n) {
    for (int i = 0; i < iovcnt && n; i++) {
        size_t k = min_sz(iov[i].iov_len, n);
        copy_in(iov[i].iov_base, src, k);
        src += k;
        n -= k;
    }
}

/* Total length of an iovec array, or -EINVAL (bad count or overflow). */
static ssize_t iov_total(const struct iovec *iov, int iovcnt) {
    if (iovcnt < 0 || iovcnt > SYS_IOV_MAX || (iovcnt && !iov))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    return (ssize_t)total;
}

/* read and readv: one read of at most one bounce buffer's worth from a byte stream, of the
 * whole message from a socket that keeps message boundaries. */
static ssize_t read_iov(int fd, const struct iovec *iov, int iovcnt, size_t total) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    struct xfer x;
    long r = xfer_begin(&b, fd, total, false, false, &x);
    if (r < 0)
        return r;
    r = check_len(SYS(ELEOS_RPC_F_MAYBLOCK, SYS_read, fd, x.data, x.n, 0, 0, 0), x.n);
    if (r > 0)
        scatter_iov(iov, iovcnt, x.data, (size_t)r);
    xfer_end(&x);
    return r;
}

ssize_t eleos_sys_read(int fd, void *buf, size_t count) {
    struct iovec one = {buf, count};
    return read_iov(fd, &one, 1, count);
}

/* True once offset + done no longer fits an off_t. The counts come from the host: one that
 * claims chunks succeeded at offsets no file reaches must not make the next chunk's offset
 * overflow (the kernel would have failed the first such chunk). */
static bool past_max_offset(off_t offset, size_t done) {
    return done > (size_t)(LLONG_MAX - offset);
}

ssize_t eleos_sys_pread(int fd, void *buf, size_t count, off_t offset) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    if (offset < 0)
        return -EINVAL;
    size_t done = 0;
    do {
        size_t n = min_sz(count - done, b.data_size);
        long r = check_len(SYS(0, SYS_pread64, fd, b.data, n, offset + (off_t)done, 0, 0), n);
        if (r < 0)
            return done ? (ssize_t)done : r;
        copy_in((char *)buf + done, b.data, (size_t)r);
        done += (size_t)r;
        if ((size_t)r < n || past_max_offset(offset, done))
            break;
    } while (done < count);
    return (ssize_t)done;
}

/* Copies bytes [off, off+n) of what is being written to dst (untrusted). */
typedef void (*gather_fn)(const void *ctx, size_t off, void *dst, size_t n);

/* A write, pwrite, writev, send or sendto of count bytes gathered by get(ctx, …). */
struct wr {
    long nr;                     /* SYS_write, SYS_pwrite64 or SYS_sendto */
    int fd;
    size_t count;
    gather_fn get;
    const void *ctx;
    off_t offset;                /* pwrite                                */
    int flags;                   /* sendto                                */
    const struct sockaddr *addr; /* sendto                                */
    socklen_t addrlen;
};

/* Runs one write of n bytes at data (untrusted), done bytes into the transfer. */
static long write_once(const struct wr *w, const struct bounce *b, char *data, size_t n,
                       size_t done) {
    long r;
    if (w->nr == SYS_pwrite64)
        r = SYS(0, w->nr, w->fd, data, n, w->offset + (off_t)done, 0, 0);
    else if (w->nr == SYS_sendto)
        r = SYS(sock_block(w->flags), w->nr, w->fd, data, n, w->flags,
                w->addr ? (uint64_t)(uintptr_t)(b->meta + META_ADDR) : 0,
                w->addr ? w->addrlen : 0);
    else
        r = SYS(ELEOS_RPC_F_MAYBLOCK, w->nr, w->fd, data, n, 0, 0, 0);
    return check_len(r, n);
}

/* Writes a byte stream in bounce-sized chunks, stopping at the first short or failed chunk;
 * a message goes whole, in one call (xfer_begin). pwrite is for files: no socket to ask. */
static ssize_t write_all(const struct wr *w) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    if (w->addr && w->addrlen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    struct xfer x = {b.data, w->count, 0, KIND_STREAM};
    long r = w->nr == SYS_pwrite64 ? 0 : xfer_begin(&b, w->fd, w->count, true, false, &x);
    if (r < 0)
        return r;
    if (w->addr)
        copy_out(b.meta + META_ADDR, w->addr, w->addrlen);
    if (x.map) {
        w->get(w->ctx, 0, x.data, w->count);
        r = write_once(w, &b, x.data, w->count, 0);
        xfer_end(&x);
        return r;
    }
    size_t done = 0;
    do {
        size_t n = min_sz(w->count - done, b.data_size);
        w->get(w->ctx, done, b.data, n);
        r = write_once(w, &b, b.data, n, done);
        if (r < 0)
            return done ? (ssize_t)done : r;
        done += (size_t)r;
        if ((size_t)r < n || past_max_offset(w->offset, done))
            break;
    } while (done < w->count);
    return (ssize_t)done;
}

static void gather_flat(const void *ctx, size_t off, void *dst, size_t n) {
    copy_out(dst, (const char *)ctx + off, n);
}

struct iov_src {
    const struct iovec *iov;
    int iovcnt;
};

/* Copies bytes [off, off+n) of the iovec array's concatenation to dst. */
static void gather_iov(const void *ctx, size_t off, void *dst, size_t n) {
    const struct iov_src *s = ctx;
    char *d = dst;
    for (int i = 0; i < s->iovcnt && n; i++) {
        size_t len = s->iov[i].iov_len;
        if (off >= len) {
            off -= len;
            continue;
        }
        size_t k = min_sz(len - off, n);
        copy_out(d, (const char *)s->iov[i].iov_base + off, k);
        d += k;
        n -= k;
        off = 0;
    }
}

ssize_t eleos_sys_write(int fd, const void *buf, size_t count) {
    return write_all(&(struct wr){.nr = SYS_write, .fd = fd, .count = count,
                                  .get = gather_flat, .ctx = buf});
}

ssize_t eleos_sys_pwrite(int fd, const void *buf, size_t count, off_t offset) {
    if (offset < 0)
        return -EINVAL;
    return write_all(&(struct wr){.nr = SYS_pwrite64, .fd = fd, .count = count,
                                  .get = gather_flat, .ctx = buf, .offset = offset});
}

ssize_t eleos_sys_writev(int fd, const struct iovec *iov, int iovcnt) {
    ssize_t total = iov_total(iov, iovcnt);
    if (total < 0)
        return total;
    struct iov_src s = {iov, iovcnt};
    return write_all(&(struct wr){.nr = SYS_write, .fd = fd, .count = (size_t)total,
                                  .get = gather_iov, .ctx = &s});
}

ssize_t eleos_sys_readv(int fd, const struct iovec *iov, int iovcnt) {
    ssize_t total = iov_total(iov, iovcnt);
    if (total < 0)
        return total;
    return read_iov(fd, iov, iovcnt, (size_t)total);
}

ssize_t eleos_sys_sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *addr, socklen_t addrlen) {
    return write_all(&(struct wr){.nr = SYS_sendto, .fd = fd, .count = len,
                                  .get = gather_flat, .ctx = buf, .flags = flags,
                                  .addr = addr, .addrlen = addrlen});
}

ssize_t eleos_sys_send(int fd, const void *buf, size_t len, int flags) {
    return eleos_sys_sendto(fd, buf, len, flags, NULL, 0);
}

/* Validates a returned address length and copies the address out. *addrlen in/out. Like
 * the kernel, the real length comes back even when it exceeds the space given (cap), and
 * only what fits is copied; no address is longer than sockaddr_storage. */
static long take_addr(const char *meta, struct sockaddr *addr, socklen_t *addrlen, socklen_t cap) {
    if (!addr)
        return 0;
    socklen_t got = read_socklen(meta); /* once */
    if (got > sizeof(struct sockaddr_storage))
        return iago(&st_len);
    copy_in(addr, meta + META_ADDR, min_sz(got, cap));
    *addrlen = got;
    return 0;
}

/* Prepares the address area; returns the capacity given to the host. */
static socklen_t put_addrlen(char *meta, const struct sockaddr *addr, const socklen_t *addrlen) {
    if (!addr)
        return 0;
    socklen_t cap = *addrlen < sizeof(struct sockaddr_storage) ? *addrlen
                                                                : sizeof(struct sockaddr_storage);
    copy_out(meta + META_ADDRLEN, &cap, sizeof cap);
    return cap;
}

/* The bounce buffer of a call that returns an address (addr may be NULL); *cap gets the
 * address space given to the host. */
static int addr_bounce(struct bounce *b, const struct sockaddr *addr, const socklen_t *addrlen,
                       socklen_t *cap) {
    if (addr && !addrlen)
        return -EFAULT;
    int rc = get_bounce(b);
    if (rc)
        return rc;
    *cap = put_addrlen(b->meta, addr, addrlen);
    return 0;
}

ssize_t eleos_sys_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                           socklen_t *addrlen) {
    if (addr && !addrlen)
        return -EFAULT;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    struct xfer x;
    long r = xfer_begin(&b, fd, len, false, flags & MSG_TRUNC, &x);
    if (r < 0)
        return r;
    socklen_t cap = put_addrlen(b.meta, addr, addrlen);
    r = SYS(sock_block(flags), SYS_recvfrom, fd, x.data, x.n, flags,
            addr ? (uint64_t)(uintptr_t)(b.meta + META_ADDR) : 0,
            addr ? (uint64_t)(uintptr_t)(b.meta + META_ADDRLEN) : 0);
    r = check_recv_len(r, &x, flags);
    if (r >= 0) {
        long a = take_addr(b.meta, addr, addrlen, cap);
        if (a < 0)
            r = a;
        else
            copy_in(buf, x.data, min_sz((size_t)r, x.n));
    }
    xfer_end(&x);
    return r;
}

ssize_t eleos_sys_recv(int fd, void *buf, size_t len, int flags) {
    return eleos_sys_recvfrom(fd, buf, len, flags, NULL, NULL);
}

/* Writes the msghdr a sendmsg or recvmsg hands the host: one iovec over the transfer's data,
 * name and control areas in the metadata (NULL when cap is 0). */
static void put_msghdr(const struct bounce *b, const struct xfer *x, socklen_t namecap,
                       size_t ctrlcap) {
    struct iovec biov = {x->data, x->n};
    struct msghdr h = {0};
    h.msg_iov = (struct iovec *)(b->meta + META_IOV);
    h.msg_iovlen = 1;
    h.msg_name = namecap ? b->meta + META_ADDR : NULL;
    h.msg_namelen = namecap;
    h.msg_control = ctrlcap ? b->meta + META_CTRL : NULL;
    h.msg_controllen = ctrlcap;
    copy_out(b->meta + META_IOV, &biov, sizeof biov);
    copy_out(b->meta + META_HDR, &h, sizeof h);
}

ssize_t eleos_sys_sendmsg(int fd, const struct msghdr *msg, int flags) {
    if (msg->msg_iovlen > SYS_IOV_MAX)
        return -EINVAL;
    ssize_t total = iov_total(msg->msg_iov, (int)msg->msg_iovlen);
    if (total < 0)
        return -EINVAL;
    if (msg->msg_namelen > sizeof(struct sockaddr_storage) ||
        (msg->msg_namelen && !msg->msg_name) || msg->msg_controllen > META_CTRL_MAX ||
        (msg->msg_controllen && !msg->msg_control))
        return -EINVAL;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    /* A message goes whole; a stream gets one bounce buffer's worth (a short send). */
    struct xfer x;
    long r = xfer_begin(&b, fd, (size_t)total, true, false, &x);
    if (r < 0)
        return r;
    struct iov_src s = {msg->msg_iov, (int)msg->msg_iovlen};
    gather_iov(&s, 0, x.data, x.n);
    if (msg->msg_namelen)
        copy_out(b.meta + META_ADDR, msg->msg_name, msg->msg_namelen);
    if (msg->msg_controllen)
        copy_out(b.meta + META_CTRL, msg->msg_control, msg->msg_controllen);
    put_msghdr(&b, &x, msg->msg_namelen, msg->msg_controllen);
    r = check_len(SYS(sock_block(flags), SYS_sendmsg, fd, b.meta + META_HDR, flags, 0, 0, 0),
                  x.n);
    xfer_end(&x);
    return r;
}

/* Adds an SCM_RIGHTS payload's descriptors to fds[*n]: whole ints, each a descriptor the
 * kernel could have installed (ELEOS_SYS_FD_MAX), each new so none repeats, at most
 * SYS_SCM_MAX_FD in one message. */
static bool take_scm_fds(const char *data, size_t len, int *fds, size_t *n) {
    if (len % sizeof(int) || len / sizeof(int) > SYS_SCM_MAX_FD - *n)
        return false;
    for (size_t i = 0; i < len / sizeof(int); i++) {
        int fd;
        memcpy(&fd, data + i * sizeof(int), sizeof fd);
        if (fd < 0 || fd > ELEOS_SYS_FD_MAX)
            return false;
        for (size_t j = 0; j < *n; j++)
            if (fds[j] == fd)
                return false;
        fds[(*n)++] = fd;
    }
    return true;
}

/* Control data as the kernel lays it out (put_cmsg, scm_detach_fds): headers at aligned
 * offsets, each cmsg_len at least a header and within the returned length (a truncated
 * message shortens cmsg_len, never overruns), SCM_RIGHTS as take_scm_fds allows. ctrl is
 * the enclave's copy. Returns the counter of what is wrong (a length, a descriptor) or
 * NULL. */
static _Atomic uint64_t *bad_cmsgs(const char *ctrl, size_t len) {
    int fds[SYS_SCM_MAX_FD];
    size_t nfds = 0, off = 0;
    while (off < len) {
        struct cmsghdr c;
        if (len - off < sizeof c)
            return &st_len;
        memcpy(&c, ctrl + off, sizeof c);
        if (c.cmsg_len < sizeof c || c.cmsg_len > len - off)
            return &st_len;
        if (c.cmsg_level == SOL_SOCKET && c.cmsg_type == SCM_RIGHTS &&
            !take_scm_fds(ctrl + off + CMSG_LEN(0), c.cmsg_len - CMSG_LEN(0), fds, &nfds))
            return &st_struct;
        off += CMSG_ALIGN(c.cmsg_len);
    }
    return NULL;
}

/* The msg_flags bits a kernel returns: MSG_TRUNC, MSG_CTRUNC, MSG_EOR, MSG_OOB,
 * MSG_ERRQUEUE, SCTP's MSG_NOTIFICATION, and MSG_CMSG_CLOEXEC echoed when it was asked. */
static bool valid_msg_flags(int got, int flags) {
    int ok = MSG_TRUNC | MSG_CTRUNC | MSG_EOR | MSG_OOB | MSG_ERRQUEUE | SYS_MSG_NOTIFICATION |
             (flags & MSG_CMSG_CLOEXEC);
    return !(got & ~ok);
}

/* What recvmsg returned, read once into enclave memory and checked there (the address is
 * opaque bytes: it is copied straight to the caller, bounded by validated lengths). */
struct msg_snap {
    struct msghdr h;
    _Alignas(struct cmsghdr) char ctrl[META_CTRL_MAX];
};

/* Validates recvmsg's r bytes, name, control data and flags, then (and only then) hands them
 * to the caller's msghdr. */
static long take_msg(const struct bounce *b, const struct xfer *x, struct msghdr *msg,
                     int flags, socklen_t namecap, size_t ctrlcap, long r) {
    struct msg_snap s;
    copy_in(&s.h, b->meta + META_HDR, sizeof s.h); /* once; only lengths and flags are used */
    if (s.h.msg_namelen > sizeof(struct sockaddr_storage) || s.h.msg_controllen > ctrlcap)
        return iago(&st_len);
    copy_in(s.ctrl, b->meta + META_CTRL, s.h.msg_controllen);
    _Atomic uint64_t *bad = bad_cmsgs(s.ctrl, s.h.msg_controllen);
    if (bad)
        return iago(bad);
    if (!valid_msg_flags(s.h.msg_flags, flags))
        return iago(&st_struct);
    if (namecap)
        copy_in(msg->msg_name, b->meta + META_ADDR, min_sz(s.h.msg_namelen, namecap));
    msg->msg_namelen = msg->msg_name ? s.h.msg_namelen : 0;
    if (ctrlcap)
        memcpy(msg->msg_control, s.ctrl, s.h.msg_controllen);
    msg->msg_controllen = s.h.msg_controllen;
    msg->msg_flags = s.h.msg_flags;
    scatter_iov(msg->msg_iov, (int)msg->msg_iovlen, x->data, min_sz((size_t)r, x->n));
    return r;
}

ssize_t eleos_sys_recvmsg(int fd, struct msghdr *msg, int flags) {
    if (msg->msg_iovlen > SYS_IOV_MAX)
        return -EINVAL;
    ssize_t total = iov_total(msg->msg_iov, (int)msg->msg_iovlen);
    if (total < 0)
        return -EINVAL;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    struct xfer x;
    long r = xfer_begin(&b, fd, (size_t)total, false, flags & MSG_TRUNC, &x);
    if (r < 0)
        return r;
    socklen_t namecap = msg->msg_name ? (socklen_t)min_sz(msg->msg_namelen,
                                                           sizeof(struct sockaddr_storage))
                                      : 0;
    size_t ctrlcap = msg->msg_control ? min_sz(msg->msg_controllen, META_CTRL_MAX) : 0;
    put_msghdr(&b, &x, namecap, ctrlcap);
    r = check_recv_len(SYS(sock_block(flags), SYS_recvmsg, fd, b.meta + META_HDR, flags, 0, 0, 0),
                       &x, flags);
    if (r >= 0)
        r = take_msg(&b, &x, msg, flags, namecap, ctrlcap, r);
    xfer_end(&x);
    return r;
}

/* --- sockets ---------------------------------------------------------------------------- */

/* accept4, getsockname, getpeername: a call that returns an address. */
static long addr_call(long nr, uint32_t flags, int fd, struct sockaddr *addr, socklen_t *addrlen,
                      int extra) {
    struct bounce b;
    socklen_t cap;
    int rc = addr_bounce(&b, addr, addrlen, &cap);
    if (rc)
        return rc;
    long r = SYS(flags, nr, fd, addr ? (uint64_t)(uintptr_t)(b.meta + META_ADDR) : 0,
                 addr ? (uint64_t)(uintptr_t)(b.meta + META_ADDRLEN) : 0, extra, 0, 0);
    r = nr == SYS_accept4 ? check_fd(r) : check_zero(r);
    if (r < 0)
        return r;
    long a = take_addr(b.meta, addr, addrlen, cap);
    return a < 0 ? a : r;
}

int eleos_sys_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags) {
    return (int)addr_call(SYS_accept4, ELEOS_RPC_F_MAYBLOCK, fd, addr, addrlen, flags);
}

int eleos_sys_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen) {
    if (!addr)
        return -EFAULT;
    return (int)addr_call(SYS_getsockname, 0, fd, addr, addrlen, 0);
}

int eleos_sys_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen) {
    if (!addr)
        return -EFAULT;
    return (int)addr_call(SYS_getpeername, 0, fd, addr, addrlen, 0);
}

/* connect, bind: a call that takes an address. */
static long addr_in_call(long nr, uint32_t flags, int fd, const struct sockaddr *addr,
                         socklen_t addrlen) {
    if (addrlen > sizeof(struct sockaddr_storage) || (addrlen && !addr))
        return -EINVAL;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    copy_out(b.meta + META_ADDR, addr, addrlen);
    return check_zero(SYS(flags, nr, fd, b.meta + META_ADDR, addrlen, 0, 0, 0));
}

int eleos_sys_connect(int fd, const struct sockaddr *addr, socklen_t addrlen) {
    return (int)addr_in_call(SYS_connect, ELEOS_RPC_F_MAYBLOCK, fd, addr, addrlen);
}

int eleos_sys_bind(int fd, const struct sockaddr *addr, socklen_t addrlen) {
    return (int)addr_in_call(SYS_bind, 0, fd, addr, addrlen);
}

int eleos_sys_socket(int domain, int type, int protocol) {
    return (int)check_fd(SYS(0, SYS_socket, domain, type, protocol, 0, 0, 0));
}

int eleos_sys_listen(int fd, int backlog) {
    return (int)check_zero(SYS(0, SYS_listen, fd, backlog, 0, 0, 0, 0));
}

int eleos_sys_shutdown(int fd, int how) {
    return (int)check_zero(SYS(0, SYS_shutdown, fd, how, 0, 0, 0, 0));
}

int eleos_sys_setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen) {
    if (optlen > META_CTRL_MAX || (optlen && !optval))
        return -EINVAL;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    copy_out(b.meta + META_CTRL, optval, optlen);
    return (int)check_zero(SYS(0, SYS_setsockopt, fd, level, optname, b.meta + META_CTRL,
                               optlen, 0));
}

int eleos_sys_getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen) {
    if (!optlen || (*optlen && !optval))
        return -EFAULT;
    if (*optlen > META_CTRL_MAX)
        return -EINVAL;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    socklen_t cap = *optlen;
    copy_out(b.meta + META_ADDRLEN, &cap, sizeof cap);
    long r = check_zero(SYS(0, SYS_getsockopt, fd, level, optname, b.meta + META_CTRL,
                            b.meta + META_ADDRLEN, 0));
    if (r < 0)
        return (int)r;
    socklen_t got = read_socklen(b.meta);
    if (got > cap)
        return (int)iago(&st_len);
    copy_in(optval, b.meta + META_CTRL, got);
    *optlen = got;
    return 0;
}

/* --- files ------------------------------------------------------------------------------ */

int eleos_sys_close(int fd) {
    return (int)check_zero(SYS(0, SYS_close, fd, 0, 0, 0, 0, 0));
}

/* Copies a path into the data area. */
static int put_path(struct bounce *b, const char *path) {
    if (!path)
        return -EFAULT;
    size_t len = strnlen(path, PATH_MAX);
    if (len >= PATH_MAX || len + 1 > b->data_size)
        return -ENAMETOOLONG;
    copy_out(b->data, path, len + 1);
    return 0;
}

int eleos_sys_openat(int dirfd, const char *path, int flags, mode_t mode) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc || (rc = put_path(&b, path)))
        return rc;
    return (int)check_fd(SYS(0, SYS_openat, dirfd, b.data, flags, mode, 0, 0));
}

int eleos_sys_unlink(const char *path) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc || (rc = put_path(&b, path)))
        return rc;
    return (int)check_zero(SYS(0, SYS_unlinkat, AT_FDCWD, b.data, 0, 0, 0, 0));
}

/* A call (nr, a1, out-pointer) that returns 0 and fills a structure: the structure goes
 * through the metadata area and is copied into *out (enclave memory) once, for the caller
 * to validate there. 0 or a negative errno. */
static long struct_call(long nr, long a1, void *out, size_t size) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    long r = check_zero(SYS(0, nr, a1, b.meta + META_HDR, 0, 0, 0, 0));
    if (r < 0)
        return r;
    copy_in(out, b.meta + META_HDR, size);
    return 0;
}

/*
 * What fstat can honestly return. The kernel's own types bound two fields: the mode is 16
 * bits (umode_t) and the link count 32 (inode->i_nlink). The file type is one of the seven,
 * or none at all for an anonymous inode (eventfd, epoll, timerfd, signalfd…: mode 0600 and
 * no type bits), which has one link, no size and no blocks. A link count of 0 is honest for
 * every other type: a file unlinked while open, an O_TMPFILE file, a removed directory, a
 * FIFO or socket node opened and then unlinked; so only the anonymous inode rules it out.
 */
static bool valid_stat(const struct stat *s) {
    mode_t type = s->st_mode & S_IFMT;
    if (s->st_size < 0 || s->st_blocks < 0 || s->st_blksize < 0 || s->st_mode > 0xffffu ||
        s->st_nlink > UINT32_MAX)
        return false;
    if (type == 0)
        return s->st_nlink == 1 && s->st_size == 0 && s->st_blocks == 0;
    return type == S_IFREG || type == S_IFDIR || type == S_IFCHR || type == S_IFBLK ||
           type == S_IFIFO || type == S_IFLNK || type == S_IFSOCK;
}

int eleos_sys_fstat(int fd, struct stat *st) {
    struct stat s;
    long r = struct_call(SYS_fstat, fd, &s, sizeof s);
    if (r < 0)
        return (int)r;
    if (!valid_stat(&s))
        return (int)iago(&st_struct);
    *st = s;
    return 0;
}

/*
 * lseek(SEEK_END) on a regular file lands at its size + offset: the size is confirmed with
 * fstat after the seek. If the two disagree (a forged result, or another writer changed the
 * size in between: the two cannot be told apart), the position is set again with SEEK_SET
 * at the confirmed end, a result checked exactly; so the caller never gets a position fstat
 * did not confirm. Other types have ends fstat does not report (a block device's size, a
 * directory's hash cookie) and keep the kernel's answer.
 */
static off_t seek_end_confirm(int fd, off_t offset, off_t r) {
    struct stat s;
    int rc = eleos_sys_fstat(fd, &s);
    if (rc < 0)
        return rc;
    if (!S_ISREG(s.st_mode))
        return r;
    if (offset > 0 && s.st_size > LLONG_MAX - offset)
        return -EOVERFLOW;
    off_t end = s.st_size + offset;
    return r == end ? r : eleos_sys_lseek(fd, end, SEEK_SET);
}

off_t eleos_sys_lseek(int fd, off_t offset, int whence) {
    long r = check_err(SYS(0, SYS_lseek, fd, offset, whence, 0, 0, 0));
    if (r < 0)
        return r;
    if (whence == SEEK_SET && r != offset)
        return iago(&st_struct);
    if (whence == SEEK_END)
        return seek_end_confirm(fd, offset, r);
    return r;
}

int eleos_sys_fsync(int fd) {
    return (int)check_zero(SYS(ELEOS_RPC_F_MAYBLOCK, SYS_fsync, fd, 0, 0, 0, 0, 0));
}

int eleos_sys_ftruncate(int fd, off_t length) {
    return (int)check_zero(SYS(0, SYS_ftruncate, fd, length, 0, 0, 0, 0));
}

/* --- epoll, pipes, eventfd -------------------------------------------------------------- */

int eleos_sys_epoll_create1(int flags) {
    return (int)check_fd(SYS(0, SYS_epoll_create1, flags, 0, 0, 0, 0, 0));
}

int eleos_sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    if (event)
        copy_out(b.meta + META_HDR, event, sizeof *event);
    return (int)check_zero(SYS(0, SYS_epoll_ctl, epfd, op, fd,
                               event ? (uint64_t)(uintptr_t)(b.meta + META_HDR) : 0, 0, 0));
}

int eleos_sys_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
    if (maxevents <= 0 || !events)
        return -EINVAL;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    size_t n = min_sz((size_t)maxevents, b.data_size / sizeof(struct epoll_event));
    long r = check_err(SYS(timeout ? ELEOS_RPC_F_MAYBLOCK : 0, SYS_epoll_wait, epfd, b.data, n,
                           timeout, 0, 0));
    if (r > (long)n)
        return (int)iago(&st_events);
    if (r <= 0)
        return (int)r;
    copy_in(events, b.data, (size_t)r * sizeof(struct epoll_event)); /* once, then checked */
    /* Ready events carry poll bits only: the registration flags (edge-triggered, one-shot,
     * wakeup, exclusive) are never reported. A forged list is wiped, not half delivered. */
    const uint32_t input_only = EPOLLET | EPOLLONESHOT | EPOLLWAKEUP | EPOLLEXCLUSIVE;
    for (long i = 0; i < r; i++)
        if (events[i].events & input_only) {
            memset(events, 0, (size_t)r * sizeof(struct epoll_event));
            return (int)iago(&st_events);
        }
    return (int)r;
}

int eleos_sys_pipe2(int fds[2], int flags) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    long r = check_zero(SYS(0, SYS_pipe2, b.meta + META_HDR, flags, 0, 0, 0, 0));
    if (r < 0)
        return (int)r;
    int got[2];
    copy_in(got, b.meta + META_HDR, sizeof got);
    if (got[0] < 0 || got[1] < 0 || got[0] > ELEOS_SYS_FD_MAX || got[1] > ELEOS_SYS_FD_MAX ||
        got[0] == got[1])
        return (int)iago(&st_struct);
    fds[0] = got[0];
    fds[1] = got[1];
    return 0;
}

int eleos_sys_eventfd(unsigned int initval, int flags) {
    return (int)check_fd(SYS(0, SYS_eventfd2, initval, flags, 0, 0, 0, 0));
}

/* --- time ------------------------------------------------------------------------------- */

static bool valid_ts(const struct timespec *ts) {
    return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

int eleos_sys_nanosleep(const struct timespec *req, struct timespec *rem) {
    if (!req)
        return -EFAULT;
    if (!valid_ts(req))
        return -EINVAL;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    copy_out(b.meta + META_HDR, req, sizeof *req);
    char *urem = b.meta + META_HDR + sizeof(struct timespec);
    long r = check_zero(SYS(ELEOS_RPC_F_MAYBLOCK, SYS_nanosleep, b.meta + META_HDR,
                            rem ? (uint64_t)(uintptr_t)urem : 0, 0, 0, 0, 0));
    if (r == -EINTR && rem) {
        struct timespec got;
        copy_in(&got, urem, sizeof got);
        if (!valid_ts(&got) || got.tv_sec > req->tv_sec ||
            (got.tv_sec == req->tv_sec && got.tv_nsec > req->tv_nsec))
            return (int)iago(&st_struct);
        *rem = got;
    }
    return (int)r;
}

int eleos_sys_clock_gettime(clockid_t clk, struct timespec *ts) {
    struct timespec got;
    if (clk == CLOCK_REALTIME || clk == CLOCK_MONOTONIC || clk == CLOCK_MONOTONIC_RAW ||
        clk == CLOCK_REALTIME_COARSE || clk == CLOCK_MONOTONIC_COARSE || clk == CLOCK_BOOTTIME) {
        /* vDSO: reads the kernel's (untrusted) time page, no system call. */
        if (clock_gettime(clk, &got) != 0)
            return -EINVAL;
    } else {
        long r = struct_call(SYS_clock_gettime, clk, &got, sizeof got);
        if (r < 0)
            return (int)r;
    }
    if (!valid_ts(&got))
        return (int)iago(&st_struct);
    *ts = got;
    return 0;
}

/* getpid, getppid: a process id in [0, PID_MAX_LIMIT] (0: a parent outside the caller's
 * pid namespace) or an errno. */
static pid_t pid_call(long nr) {
    long r = check_err(SYS(0, nr, 0, 0, 0, 0, 0, 0));
    if (r > SYS_PID_MAX)
        return (pid_t)iago(&st_struct);
    return (pid_t)r;
}

pid_t eleos_sys_getpid(void) {
    return pid_call(SYS_getpid);
}

pid_t eleos_sys_getppid(void) {
    return pid_call(SYS_getppid);
}

/* --- descriptors: fcntl, dup ------------------------------------------------------------ */

/* The kernel's O_LARGEFILE on x86-64, which it forces on every 64-bit open (glibc's own
 * O_LARGEFILE is 0 there, so the name cannot be used). */
#define SYS_KERNEL_O_LARGEFILE 0100000
/* Every bit F_GETFL can honestly return: the kernel's VALID_OPEN_FLAGS (f_flags keeps what
 * open accepted, minus the creation flags it strips) and the two internal FMODE bits that
 * show through (__FMODE_EXEC, __FMODE_NONOTIFY on fanotify's descriptors). */
#define SYS_GETFL_BITS                                                                        \
    ((long)(O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK |       \
            O_DSYNC | O_ASYNC | O_DIRECT | SYS_KERNEL_O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | \
            O_NOATIME | O_CLOEXEC | O_SYNC | O_PATH | O_TMPFILE | 0x20 | 0x4000000))

/* A descriptor the kernel allocated as "the lowest free one >= min": in range, at least
 * min, and never fd itself (fd is open, so it is not free). */
static long check_new_fd(long r, int fd, long min) {
    r = check_fd(r);
    if (r >= 0 && (r < min || r == fd))
        return iago(&st_struct);
    return r;
}

int eleos_sys_fcntl(int fd, int cmd, long arg) {
    long r;
    switch (cmd) {
    case F_GETFD:
        r = check_err(SYS(0, SYS_fcntl, fd, cmd, 0, 0, 0, 0));
        return (int)(r > FD_CLOEXEC ? iago(&st_struct) : r);
    case F_GETFL:
        r = check_err(SYS(0, SYS_fcntl, fd, cmd, 0, 0, 0, 0));
        return (int)(r > 0 && (r & ~SYS_GETFL_BITS) ? iago(&st_struct) : r);
    case F_SETFD:
    case F_SETFL:
        return (int)check_zero(SYS(0, SYS_fcntl, fd, cmd, arg, 0, 0, 0));
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        if (arg < 0 || arg > ELEOS_SYS_FD_MAX)
            return -EINVAL;
        return (int)check_new_fd(SYS(0, SYS_fcntl, fd, cmd, arg, 0, 0, 0), fd, arg);
    default:
        return -EINVAL;
    }
}

int eleos_sys_dup(int fd) {
    return (int)check_new_fd(SYS(0, SYS_dup, fd, 0, 0, 0, 0, 0), fd, 0);
}

int eleos_sys_dup3(int oldfd, int newfd, int flags) {
    long r = check_err(SYS(0, SYS_dup3, oldfd, newfd, flags, 0, 0, 0));
    if (r >= 0 && r != newfd)
        return (int)iago(&st_struct);
    return (int)r;
}

int eleos_sys_dup2(int oldfd, int newfd) {
    if (oldfd != newfd)
        return eleos_sys_dup3(oldfd, newfd, 0);
    /* dup2 onto itself only checks that the descriptor is open (dup3 would refuse it). */
    int r = eleos_sys_fcntl(oldfd, F_GETFD, 0);
    return r < 0 ? r : oldfd;
}

/* --- poll ------------------------------------------------------------------------------- */

/* The host's revents for one entry, checked against what the enclave asked: the kernel
 * reports only requested events plus POLLERR/POLLHUP, POLLNVAL alone for a closed
 * descriptor, and nothing for a negative one (it is skipped). */
static bool valid_revents(const struct pollfd *asked, short got) {
    unsigned allowed = (unsigned short)asked->events | POLLERR | POLLHUP | POLLNVAL;
    if (asked->fd < 0)
        return got == 0;
    if ((unsigned short)got & ~allowed)
        return false;
    return !(got & POLLNVAL) || got == POLLNVAL;
}

int eleos_sys_poll(struct pollfd *fds, nfds_t nfds, int timeout) {
    if (nfds && !fds)
        return -EFAULT;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    if (nfds > b.data_size / sizeof(struct pollfd))
        return -EINVAL;
    if (nfds)
        copy_out(b.data, fds, (size_t)nfds * sizeof(struct pollfd));
    long r = check_err(SYS(timeout ? ELEOS_RPC_F_MAYBLOCK : 0, SYS_poll, b.data, nfds, timeout,
                           0, 0, 0));
    if (r < 0)
        return (int)r;
    if ((unsigned long)r > nfds)
        return (int)iago(&st_events);
    /* Only revents comes back, each read once, straight into the caller's entry (an output
     * field the kernel overwrites too); the count must match the entries that have one. A
     * forged answer is wiped, not half delivered: every revents ends 0. */
    long ready = 0;
    bool bad = false;
    for (nfds_t i = 0; i < nfds; i++) {
        short got;
        copy_in(&got, b.data + i * sizeof(struct pollfd) + offsetof(struct pollfd, revents),
                sizeof got);
        bad = bad || !valid_revents(&fds[i], got);
        fds[i].revents = got;
        ready += got != 0;
    }
    if (!bad && ready == r)
        return (int)r;
    for (nfds_t i = 0; i < nfds; i++)
        fds[i].revents = 0;
    return (int)iago(&st_events);
}

/* --- paths: fstatat, mkdirat, renameat -------------------------------------------------- */

int eleos_sys_fstatat(int dirfd, const char *path, struct stat *st, int flags) {
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT))
        return -EINVAL;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc || (rc = put_path(&b, path)))
        return rc;
    long r = check_zero(SYS(0, SYS_newfstatat, dirfd, b.data, b.meta + META_HDR, flags, 0, 0));
    if (r < 0)
        return (int)r;
    struct stat s;
    copy_in(&s, b.meta + META_HDR, sizeof s);
    /* A path the kernel resolved with symlinks followed never names a link. */
    bool followed = path[0] != '\0' && !(flags & AT_SYMLINK_NOFOLLOW);
    if (!valid_stat(&s) || (followed && S_ISLNK(s.st_mode)))
        return (int)iago(&st_struct);
    *st = s;
    return 0;
}

int eleos_sys_stat(const char *path, struct stat *st) {
    return eleos_sys_fstatat(AT_FDCWD, path, st, 0);
}

int eleos_sys_lstat(const char *path, struct stat *st) {
    return eleos_sys_fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

int eleos_sys_mkdirat(int dirfd, const char *path, mode_t mode) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc || (rc = put_path(&b, path)))
        return rc;
    return (int)check_zero(SYS(0, SYS_mkdirat, dirfd, b.data, mode, 0, 0, 0));
}

int eleos_sys_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc || (rc = put_path(&b, oldpath)))
        return rc;
    /* The second path follows the first in the data area (both below PATH_MAX). */
    size_t off = strnlen(oldpath, PATH_MAX) + 1; /* the enclave's string: put_path bounded it */
    struct bounce second = {b.meta, b.data + off, b.data_size - off};
    if ((rc = put_path(&second, newpath)))
        return rc;
    return (int)check_zero(
        SYS(0, SYS_renameat2, olddirfd, b.data, newdirfd, second.data, 0, 0));
}

/* --- randomness ------------------------------------------------------------------------- */

/* Whether the CPU has RDRAND (CPUID.1:ECX bit 30), the generator the host does not control
 * (on SGX it executes inside the enclave). Every SGX CPU has it; the question (CPUID is
 * illegal inside an SGX1 enclave) only serves the emulator on machines without. Asked once. */
static bool have_rdrand(void) {
    static _Atomic int have = -1; /* -1 unknown, 0 no, 1 yes */
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h < 0) {
        unsigned a, bx, c, d;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(bx), "=c"(c), "=d"(d) : "a"(1), "c"(0));
        h = (c >> 30) & 1;
        atomic_store_explicit(&have, h, memory_order_relaxed);
    }
    return h == 1;
}

/* 8 bytes of RDRAND; false if it failed 10 times in a row (Intel's advice for a transient
 * underflow: more than that means a broken generator). */
static bool rdrand64(uint64_t *v) {
    for (int i = 0; i < 10; i++) {
        unsigned char ok;
        __asm__ volatile("rdrand %0; setc %1" : "=r"(*v), "=qm"(ok) : : "cc");
        if (ok)
            return true;
    }
    return false;
}

ssize_t eleos_sys_getrandom(void *buf, size_t len, unsigned int flags) {
    if (flags & ~(unsigned)(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE))
        return -EINVAL;
    if (len && !buf)
        return -EFAULT;
    struct bounce b;
    int rc = get_bounce(&b);
    if (rc)
        return rc;
    size_t n = min_sz(len, b.data_size);
    long r = check_len(SYS((flags & GRND_NONBLOCK) ? 0 : ELEOS_RPC_F_MAYBLOCK, SYS_getrandom,
                           b.data, n, flags, 0, 0, 0),
                       n);
    if (r <= 0)
        return r;
    /* The host's bytes are XORed with the CPU's: the result is at least as unpredictable as
     * the better of the two, so a host returning bytes of its choice learns nothing. */
    bool cpu_rng = have_rdrand();
    unsigned char *out = buf;
    for (size_t off = 0; off < (size_t)r; off += 8) {
        uint64_t host = 0, cpu = 0;
        size_t k = min_sz(8, (size_t)r - off);
        copy_in(&host, b.data + off, k);
        if (cpu_rng && !rdrand64(&cpu)) {
            explicit_bzero(buf, off);
            return -EIO;
        }
        host ^= cpu;
        memcpy(out + off, &host, k);
    }
    return r;
}
