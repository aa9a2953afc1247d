/*
 * The exit path's marshalling: what the SGX SDK's syscall proxy does with an OCALL's [in]
 * and [out] buffers, for the system calls a trapped enclave thread makes with pointers into
 * enclave memory. Untrusted code cannot touch enclave memory (and the kernel answers EFAULT
 * for an evicted EPC page), so the handler copies every pointed-to argument into emulator
 * memory, performs the call there, and copies the results back; the copies may fault on
 * evicted enclave pages, which the SIGSEGV handler brings in.
 *
 * Covered: the data calls (read, write, pread64, pwrite64, recvfrom, sendto), their socket
 * addresses, the calls that only pass addresses (accept, accept4, getsockname, getpeername,
 * connect, bind), and sendmsg/recvmsg with their msghdr, iovecs, name and control data.
 *
 * Lengths are the kernel's, not ours: a transfer moves whole, through the thread's bounce
 * buffer or, when larger, a temporary mapping of its size (up to the kernel's own per-call
 * cap), so a datagram is never split or cut here and a message too large for its socket
 * gets the kernel's EMSGSIZE.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>

#include "sim/sim_internal.h"

#define BOUNCE_SIZE (256u << 10)
#define MAX_RW ((size_t)0x7ffff000)          /* the kernel's MAX_RW_COUNT            */
#define ADDR_MAX sizeof(struct sockaddr_storage)
#define CTRL_MAX (64u << 10)
#define IOV_MAX_ 1024u
#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

/* Emulator memory for one call: the thread's bounce buffer, or a temporary mapping. */
struct scratch {
    uint8_t *p;
    size_t size, used;
    bool temp;
};

static long k_mmap(size_t n) {
    return eleos_sim_raw_syscall(SYS_mmap, 0, (long)n, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static bool scratch_get(struct sim_thread *t, struct scratch *s, size_t need) {
    s->used = 0;
    s->temp = need > BOUNCE_SIZE;
    if (!s->temp && !t->bounce) {
        long p = k_mmap(BOUNCE_SIZE);
        if (p < 0 && p > -4096)
            return false;
        t->bounce = (uint8_t *)p;
        t->bounce_size = BOUNCE_SIZE;
    }
    if (!s->temp) {
        s->p = t->bounce;
        s->size = BOUNCE_SIZE;
        return true;
    }
    long p = k_mmap(need);
    if (p < 0 && p > -4096)
        return false;
    s->p = (uint8_t *)p;
    s->size = need;
    return true;
}

static void scratch_put(struct scratch *s) {
    if (s->temp)
        eleos_sim_raw_syscall(SYS_munmap, (long)s->p, (long)s->size, 0, 0, 0, 0);
}

static void *take(struct scratch *s, size_t n) {
    void *p = s->p + s->used;
    s->used += ALIGN16(n);
    return p;
}

static bool in_elrange(long p) {
    return p && sim_registry_find((uintptr_t)p) != NULL;
}

/* --- socket addresses --------------------------------------------------------------------- */

/* An [out] address with its [in,out] length, as accept/recvfrom/getsockname take them. */
struct addr_out {
    void *uaddr;
    socklen_t *ulen;
    void *baddr;
    socklen_t *blen;
    socklen_t cap;
};

static long addr_out_prep(struct scratch *s, struct addr_out *a, long addr, long lenp) {
    memset(a, 0, sizeof *a);
    if (!lenp)
        return 0;
    a->uaddr = (void *)addr;
    a->ulen = (socklen_t *)lenp;
    memcpy(&a->cap, a->ulen, sizeof a->cap);
    if ((int)a->cap < 0)
        return -EINVAL;
    a->blen = take(s, sizeof *a->blen);
    *a->blen = a->cap < ADDR_MAX ? a->cap : (socklen_t)ADDR_MAX;
    a->baddr = addr ? take(s, ADDR_MAX) : NULL;
    return 0;
}

/* The kernel reports the address's real length and copies at most the caller's room. */
static void addr_out_done(struct addr_out *a, long r) {
    if (r < 0 || !a->ulen)
        return;
    socklen_t real = *a->blen;
    if (a->uaddr)
        memcpy(a->uaddr, a->baddr, real < a->cap ? real : a->cap);
    memcpy(a->ulen, &real, sizeof real);
}

/* An [in] address of len bytes. */
static long addr_in(struct scratch *s, long addr, long len, void **out) {
    *out = NULL;
    if (!addr)
        return 0;
    if ((unsigned long)len > ADDR_MAX)
        return -EINVAL;
    *out = take(s, (size_t)len);
    memcpy(*out, (const void *)addr, (size_t)len);
    return 0;
}

/* --- the calls ---------------------------------------------------------------------------- */

static bool data_call(long nr) {
    return nr == SYS_read || nr == SYS_write || nr == SYS_pread64 || nr == SYS_pwrite64 ||
           nr == SYS_recvfrom || nr == SYS_sendto;
}

static bool addr_call(long nr) {
    return nr == SYS_accept || nr == SYS_accept4 || nr == SYS_getsockname ||
           nr == SYS_getpeername || nr == SYS_connect || nr == SYS_bind;
}

/* read … sendto: a data buffer, and for recvfrom/sendto an address. */
static long marshal_data(struct sim_thread *t, long nr, const greg_t *g) {
    uint8_t *buf = (uint8_t *)g[REG_RSI];
    size_t len = (size_t)g[REG_RDX] < MAX_RW ? (size_t)g[REG_RDX] : MAX_RW;
    bool out = nr == SYS_write || nr == SYS_pwrite64 || nr == SYS_sendto;
    bool sock = nr == SYS_recvfrom || nr == SYS_sendto;
    struct scratch s;
    if (!scratch_get(t, &s, ALIGN16(len) + (sock ? 2 * ALIGN16(ADDR_MAX) : 0)))
        return -ENOMEM;
    uint8_t *b = take(&s, len);
    struct addr_out ao;
    void *ai = NULL;
    long r = 0, a5 = g[REG_R8], a6 = g[REG_R9];
    if (nr == SYS_recvfrom) {
        r = addr_out_prep(&s, &ao, g[REG_R8], g[REG_R9]);
        a5 = (long)ao.baddr;
        a6 = (long)ao.blen;
    } else if (nr == SYS_sendto) {
        r = addr_in(&s, g[REG_R8], g[REG_R9], &ai);
        a5 = (long)ai;
    }
    if (r == 0 && out && len)
        memcpy(b, buf, len);
    if (r == 0)
        r = eleos_sim_raw_syscall(nr, g[REG_RDI], (long)b, (long)len, g[REG_R10], a5, a6);
    if (!out && r > 0)
        memcpy(buf, b, (size_t)r <= len ? (size_t)r : len);
    if (nr == SYS_recvfrom)
        addr_out_done(&ao, r);
    scratch_put(&s);
    return r;
}

/* accept, accept4, getsockname, getpeername ([out] address); connect, bind ([in]). */
static long marshal_addr(struct sim_thread *t, long nr, const greg_t *g) {
    struct scratch s;
    if (!scratch_get(t, &s, 2 * ALIGN16(ADDR_MAX)))
        return -ENOMEM;
    long r;
    if (nr == SYS_connect || nr == SYS_bind) {
        void *ai;
        r = addr_in(&s, g[REG_RSI], g[REG_RDX], &ai);
        if (r == 0)
            r = eleos_sim_raw_syscall(nr, g[REG_RDI], (long)ai, g[REG_RDX], 0, 0, 0);
    } else {
        struct addr_out ao;
        r = addr_out_prep(&s, &ao, g[REG_RSI], g[REG_RDX]);
        if (r == 0)
            r = eleos_sim_raw_syscall(nr, g[REG_RDI], (long)ao.baddr, (long)ao.blen,
                                      g[REG_R10], 0, 0);
        addr_out_done(&ao, r);
    }
    scratch_put(&s);
    return r;
}

/* The caller's msghdr, read once, with its total data length. */
static long msg_read(const greg_t *g, struct msghdr *m, size_t *total) {
    memcpy(m, (const void *)g[REG_RSI], sizeof *m);
    if (m->msg_iovlen > IOV_MAX_)
        return -EMSGSIZE;
    if (m->msg_controllen > CTRL_MAX)
        return -ENOBUFS;
    size_t sum = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++) {
        struct iovec v;
        memcpy(&v, &m->msg_iov[i], sizeof v);
        if (v.iov_len > MAX_RW - sum)
            return -EINVAL;
        sum += v.iov_len;
    }
    *total = sum;
    return 0;
}

/* Copies between the caller's iovecs and one flat buffer (to_flat: gather, else scatter). */
static void iov_copy(const struct msghdr *m, uint8_t *flat, size_t n, bool to_flat) {
    for (size_t i = 0; i < m->msg_iovlen && n; i++) {
        struct iovec v;
        memcpy(&v, &m->msg_iov[i], sizeof v);
        size_t k = v.iov_len < n ? v.iov_len : n;
        if (to_flat)
            memcpy(flat, v.iov_base, k);
        else
            memcpy(v.iov_base, flat, k);
        flat += k;
        n -= k;
    }
}

/* sendmsg/recvmsg: the msghdr becomes one in emulator memory with one iovec. */
static long marshal_msg(struct sim_thread *t, long nr, const greg_t *g) {
    struct msghdr m;
    size_t total = 0;
    long r = msg_read(g, &m, &total);
    if (r)
        return r;
    bool send = nr == SYS_sendmsg;
    if (send && m.msg_name && m.msg_namelen > ADDR_MAX)
        return -EINVAL;
    struct scratch s;
    size_t need = ALIGN16(sizeof m) + ALIGN16(sizeof(struct iovec)) + ALIGN16(total) +
                  ALIGN16(ADDR_MAX) + ALIGN16(m.msg_controllen);
    if (!scratch_get(t, &s, need))
        return -ENOMEM;
    struct msghdr *bm = take(&s, sizeof *bm);
    struct iovec *bv = take(&s, sizeof *bv);
    *bm = m;
    bv->iov_base = take(&s, total);
    bv->iov_len = total;
    bm->msg_iov = bv;
    bm->msg_iovlen = 1;
    socklen_t namecap = m.msg_namelen < ADDR_MAX ? m.msg_namelen : (socklen_t)ADDR_MAX;
    bm->msg_name = m.msg_name ? take(&s, ADDR_MAX) : NULL;
    bm->msg_namelen = m.msg_name ? namecap : 0;
    bm->msg_control = m.msg_controllen ? take(&s, m.msg_controllen) : NULL;
    if (send) {
        iov_copy(&m, bv->iov_base, total, true);
        if (bm->msg_name)
            memcpy(bm->msg_name, m.msg_name, namecap);
        if (bm->msg_control)
            memcpy(bm->msg_control, m.msg_control, m.msg_controllen);
    }
    r = eleos_sim_raw_syscall(nr, g[REG_RDI], (long)bm, g[REG_RDX], 0, 0, 0);
    if (!send && r >= 0) {
        struct msghdr *um = (struct msghdr *)g[REG_RSI];
        iov_copy(&m, bv->iov_base, (size_t)r < total ? (size_t)r : total, false);
        if (m.msg_name)
            memcpy(m.msg_name, bm->msg_name, bm->msg_namelen < namecap ? bm->msg_namelen
                                                                        : namecap);
        if (bm->msg_controllen && m.msg_control)
            memcpy(m.msg_control, bm->msg_control, bm->msg_controllen);
        um->msg_namelen = bm->msg_namelen;
        um->msg_controllen = bm->msg_controllen;
        um->msg_flags = bm->msg_flags;
    }
    scratch_put(&s);
    return r;
}

/* True if any pointer argument of msghdr-taking call nr lies in an ELRANGE. */
static bool msg_in_elrange(const greg_t *g) {
    if (in_elrange(g[REG_RSI]))
        return true;
    const struct msghdr *m = (const struct msghdr *)g[REG_RSI];
    if (!m || m->msg_iovlen > IOV_MAX_)
        return false;
    if (in_elrange((long)m->msg_name) || in_elrange((long)m->msg_control) ||
        in_elrange((long)m->msg_iov))
        return true;
    for (size_t i = 0; i < m->msg_iovlen; i++)
        if (in_elrange((long)m->msg_iov[i].iov_base))
            return true;
    return false;
}

bool sim_marshal_wanted(long nr, const greg_t *g) {
    if (data_call(nr))
        return (g[REG_RDX] != 0 && in_elrange(g[REG_RSI])) ||
               ((nr == SYS_recvfrom || nr == SYS_sendto) &&
                (in_elrange(g[REG_R8]) || in_elrange(g[REG_R9])));
    if (addr_call(nr))
        return in_elrange(g[REG_RSI]) ||
               (nr != SYS_connect && nr != SYS_bind && in_elrange(g[REG_RDX]));
    if (nr == SYS_sendmsg || nr == SYS_recvmsg)
        return g[REG_RSI] && msg_in_elrange(g);
    return false;
}

long sim_marshal_call(struct sim_thread *t, long nr, const greg_t *g) {
    if (data_call(nr))
        return marshal_data(t, nr, g);
    if (addr_call(nr))
        return marshal_addr(t, nr, g);
    return marshal_msg(t, nr, g);
}
