/*
 * enclave_ioq.c — I/O queues, enclave side: the operation table, bounce buffers, queueing
 * each kind of operation and accepting its completion.
 *
 * Every operation owns a slot of the table (enclave memory) whose tag, gen << 32 | slot,
 * travels as the SQE's user_data. A completion is accepted only while its slot is in flight
 * on the lane it came from with that generation; the generation moves on as soon as it is
 * accepted, so a replay names a dead tag. Data crosses in one copy each way: out when the
 * operation is queued, in when its (validated) completion is reaped, from the bounce buffer
 * to the caller's buffer, never more than the result says and never more than was asked.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "eleos/sys.h"
#include "ioq/ioq_internal.h"

static const uint32_t class_size[IOQ_NCLASS] = {2u << 10, 4u << 10, 16u << 10, 64u << 10,
                                                256u << 10};
/* The small class is cut from slabs: a page per buffer would double what an idle
 * connection's posted receive costs. */
#define SLAB_SIZE (64u << 10)
/* Bytes of freed bounce buffers kept per class; beyond them they go back to the host (a
 * burst of big transfers must not leave its buffers resident). */
#define CLASS_CACHE_BYTES (1u << 20)

void *ioq_mem_alloc(struct eleos_ioq *q, size_t size) {
    return q->enc ? eleos_enclave_malloc(q->enc, size) : malloc(size);
}

void ioq_mem_free(struct eleos_ioq *q, void *p) {
    if (q->enc)
        eleos_enclave_free(q->enc, p);
    else
        free(p);
}

/* --- bounce buffers ----------------------------------------------------------------------- */

static int class_for(size_t len) {
    for (unsigned c = 0; c < IOQ_NCLASS; c++)
        if (len <= class_size[c])
            return (int)c;
    return -1;
}

/* Makes *arr (used entries in use) hold more than n. */
static bool grow(struct eleos_ioq *q, void ***arr, uint32_t *cap, uint32_t used, uint32_t n) {
    if (n < *cap)
        return true;
    uint32_t nc = *cap ? *cap * 2 : 16;
    while (nc <= n)
        nc *= 2;
    void **na = ioq_mem_alloc(q, nc * sizeof *na);
    if (!na)
        return false;
    if (used)
        memcpy(na, *arr, used * sizeof *na);
    ioq_mem_free(q, *arr);
    *arr = na;
    *cap = nc;
    return true;
}

/* Cuts a new slab into small buffers; false if out of memory. */
static bool slab_refill(struct eleos_ioq *q) {
    struct ioq_class *k = &q->cls[0];
    uint32_t per = SLAB_SIZE / class_size[0];
    if (!grow(q, &q->slabs, &q->slabs_cap, q->nslabs, q->nslabs) ||
        !grow(q, &k->free, &k->cap, k->nfree, (q->nslabs + 1) * per)) /* every piece fits */
        return false;
    char *slab = eleos_untrusted_alloc(SLAB_SIZE);
    if (!slab)
        return false;
    q->slabs[q->nslabs++] = slab;
    for (uint32_t i = 0; i < per; i++)
        k->free[k->nfree++] = slab + (size_t)i * class_size[0];
    return true;
}

static void *bounce_get(struct eleos_ioq *q, uint8_t cls) {
    struct ioq_class *k = &q->cls[cls];
    if (cls == 0 && !k->nfree && !slab_refill(q))
        return NULL;
    if (k->nfree)
        return k->free[--k->nfree];
    return eleos_untrusted_alloc(class_size[cls]);
}

static void bounce_put(struct eleos_ioq *q, uint8_t cls, void *p) {
    struct ioq_class *k = &q->cls[cls];
    if (cls == 0) { /* room was made when the slab was cut */
        k->free[k->nfree++] = p;
        return;
    }
    uint32_t keep = CLASS_CACHE_BYTES / class_size[cls] < 4 ? 4 : CLASS_CACHE_BYTES / class_size[cls];
    if (k->nfree >= keep) {
        eleos_untrusted_free(p, class_size[cls]);
        return;
    }
    if (k->nfree == k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 16;
        void **nf = ioq_mem_alloc(q, cap * sizeof *nf);
        if (nf) {
            if (k->nfree)
                memcpy(nf, k->free, k->nfree * sizeof *nf);
            ioq_mem_free(q, k->free);
            k->free = nf;
            k->cap = cap;
        }
    }
    if (k->nfree < k->cap)
        k->free[k->nfree++] = p;
    else
        eleos_untrusted_free(p, class_size[cls]);
}

/* --- the operation table -------------------------------------------------------------------- */

static struct ioq_op *op_take(struct eleos_ioq *q, uint8_t kind, uint64_t user_data,
                              uint32_t *slot) {
    if (!q->nfree)
        return NULL;
    *slot = q->free_ops[--q->nfree];
    struct ioq_op *op = &q->ops[*slot];
    uint32_t gen = op->gen;
    memset(op, 0, sizeof *op);
    op->gen = gen;
    op->kind = kind;
    op->cls = 0xff;
    op->user_data = user_data;
    return op;
}

void ioq_op_release(struct eleos_ioq *q, uint32_t slot) {
    struct ioq_op *op = &q->ops[slot];
    if (op->cls != 0xff)
        bounce_put(q, op->cls, op->data);
    if (op->iov)
        ioq_mem_free(q, op->iov);
    if (op->state != OP_FREE) /* queued, not only taken: the moderation counted it */
        ioq_mod_released(&q->mod, op->mod_wave);
    op->data = NULL;
    op->iov = NULL;
    op->cls = 0xff;
    op->state = OP_FREE;
    op->gen = op->gen + 1 == 0 ? 1 : op->gen + 1;
    q->free_ops[q->nfree++] = slot;
    q->outstanding--;
}

/* Gives op a data bounce of len bytes (capped); 0 or -ENOMEM. */
static int op_bounce(struct eleos_ioq *q, struct ioq_op *op, size_t len) {
    if (len > ELEOS_IOQ_MAX_XFER)
        len = ELEOS_IOQ_MAX_XFER;
    op->len = (uint32_t)len;
    if (!len)
        return 0;
    int c = class_for(len);
    op->data = bounce_get(q, (uint8_t)c);
    if (!op->data)
        return -ENOMEM;
    op->cls = (uint8_t)c;
    return 0;
}

/* Writes op's SQE into the current lane and marks it queued. On failure the slot is free
 * again and nothing reached the ring. */
static int op_queue(struct eleos_ioq *q, struct ioq_op *op, uint32_t slot,
                    void (*prep)(struct io_uring_sqe *, const void *), const void *arg) {
    struct ioq_lane *l = &q->lanes[q->cur];
    struct io_uring_sqe *sqe = ioq_sqe_get(q, l);
    if (!sqe) {
        q->outstanding++;
        ioq_op_release(q, slot);
        return -EAGAIN;
    }
    prep(sqe, arg);
    sqe->user_data = (uint64_t)op->gen << 32 | slot;
    op->sqe = *sqe;
    op->lane = (uint8_t)q->cur;
    op->state = OP_QUEUED;
    op->mod_wave = ioq_mod_queued(&q->mod);
    l->inflight++;
    q->outstanding++;
    q->st.ops++;
    return 0;
}

/* --- queueing, one function per kind ---------------------------------------------------------- */

struct prep_args {
    int fd;
    const void *addr;
    uint32_t len;
    int flags;
    uint64_t off;
    const void *addr2;
};

static void prep_nop(struct io_uring_sqe *s, const void *a) {
    (void)a;
    io_uring_prep_nop(s);
}
static void prep_recv(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_recv(s, a->fd, (void *)a->addr, a->len, a->flags);
}
static void prep_send(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_send(s, a->fd, a->addr, a->len, a->flags);
}
static void prep_recvmsg(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_recvmsg(s, a->fd, (struct msghdr *)a->addr, (unsigned)a->flags);
}
static void prep_sendmsg(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_sendmsg(s, a->fd, a->addr, (unsigned)a->flags);
}
static void prep_read(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_read(s, a->fd, (void *)a->addr, a->len, a->off);
}
static void prep_write(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_write(s, a->fd, a->addr, a->len, a->off);
}
static void prep_readv(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_readv(s, a->fd, a->addr, a->len, a->off);
}
static void prep_writev(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_writev(s, a->fd, a->addr, a->len, a->off);
}
static void prep_accept(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_accept(s, a->fd, (struct sockaddr *)a->addr, (socklen_t *)a->addr2,
                         a->flags);
}
static void prep_close(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_close(s, a->fd);
}
static void prep_fsync(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_fsync(s, a->fd, (unsigned)a->flags);
}
static void prep_poll(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_poll_add(s, a->fd, (unsigned)a->flags);
}
static void prep_cancel(struct io_uring_sqe *s, const void *v) {
    const struct prep_args *a = v;
    io_uring_prep_cancel_fd(s, a->fd, IORING_ASYNC_CANCEL_ALL);
}
static void prep_cancel_any(struct io_uring_sqe *s, const void *v) {
    (void)v;
    io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY);
}

static bool fd_ok(int fd) {
    return fd >= 0;
}

static int64_t file_off(int64_t off) {
    return off < 0 ? -1 : off;
}

int eleos_ioq_nop(struct eleos_ioq *q, uint64_t user_data) {
    uint32_t slot;
    struct ioq_op *op = op_take(q, K_NOP, user_data, &slot);
    return op ? op_queue(q, op, slot, prep_nop, NULL) : -EAGAIN;
}

/* The common path of recv, read (in: the caller's buffer is kept for the copy in) and of
 * send, write (out: the data is copied out now). */
static int queue_data(struct eleos_ioq *q, uint8_t kind, int fd, const void *buf, size_t len,
                      int flags, int64_t off, uint64_t ud, bool in,
                      void (*prep)(struct io_uring_sqe *, const void *)) {
    if (!fd_ok(fd) || (!buf && len && kind != K_RECV))
        return -EINVAL;
    uint32_t slot;
    struct ioq_op *op = op_take(q, kind, ud, &slot);
    if (!op)
        return -EAGAIN;
    if (op_bounce(q, op, len)) {
        q->outstanding++;
        ioq_op_release(q, slot);
        return -ENOMEM;
    }
    if (in)
        op->dst = (void *)buf;
    else if (op->len)
        memcpy(op->data, buf, op->len);
    struct prep_args a = {fd, op->data, op->len, flags, (uint64_t)file_off(off), NULL};
    return op_queue(q, op, slot, prep, &a);
}

int eleos_ioq_recv(struct eleos_ioq *q, int fd, void *buf, size_t len, int flags,
                   uint64_t user_data) {
    return queue_data(q, K_RECV, fd, buf, len, flags, -1, user_data, true, prep_recv);
}

int eleos_ioq_send(struct eleos_ioq *q, int fd, const void *buf, size_t len, int flags,
                   uint64_t user_data) {
    return queue_data(q, K_SEND, fd, buf, len, flags | MSG_NOSIGNAL, -1, user_data, false,
                      prep_send);
}

int eleos_ioq_read(struct eleos_ioq *q, int fd, void *buf, size_t len, int64_t off,
                   uint64_t user_data) {
    return queue_data(q, K_READ, fd, buf, len, 0, off, user_data, true, prep_read);
}

int eleos_ioq_write(struct eleos_ioq *q, int fd, const void *buf, size_t len, int64_t off,
                    uint64_t user_data) {
    return queue_data(q, K_WRITE, fd, buf, len, 0, off, user_data, false, prep_write);
}

int eleos_ioq_close(struct eleos_ioq *q, int fd, uint64_t user_data) {
    if (!fd_ok(fd))
        return -EINVAL;
    uint32_t slot;
    struct ioq_op *op = op_take(q, K_CLOSE, user_data, &slot);
    struct prep_args a = {.fd = fd};
    return op ? op_queue(q, op, slot, prep_close, &a) : -EAGAIN;
}

int eleos_ioq_fsync(struct eleos_ioq *q, int fd, bool datasync, uint64_t user_data) {
    if (!fd_ok(fd))
        return -EINVAL;
    uint32_t slot;
    struct ioq_op *op = op_take(q, K_FSYNC, user_data, &slot);
    struct prep_args a = {.fd = fd, .flags = datasync ? IORING_FSYNC_DATASYNC : 0};
    return op ? op_queue(q, op, slot, prep_fsync, &a) : -EAGAIN;
}

int eleos_ioq_poll(struct eleos_ioq *q, int fd, short events, uint64_t user_data) {
    if (!fd_ok(fd) || !events)
        return -EINVAL;
    uint32_t slot;
    struct ioq_op *op = op_take(q, K_POLL, user_data, &slot);
    if (!op)
        return -EAGAIN;
    op->events = (uint16_t)events;
    struct prep_args a = {.fd = fd, .flags = (uint16_t)events};
    return op_queue(q, op, slot, prep_poll, &a);
}

int eleos_ioq_cancel_fd(struct eleos_ioq *q, int fd, uint64_t user_data) {
    if (!fd_ok(fd))
        return -EINVAL;
    uint32_t slot;
    struct ioq_op *op = op_take(q, K_CANCEL, user_data, &slot);
    struct prep_args a = {.fd = fd};
    return op ? op_queue(q, op, slot, prep_cancel, &a) : -EAGAIN;
}

/* Cancels everything in flight on every lane (for destroy): one cancel per lane that has
 * operations, queued on that lane, then handed over. */
void ioq_cancel_all(struct eleos_ioq *q) {
    enum eleos_ioq_exec cur = q->cur;
    for (unsigned e = 1; e < ELEOS_IOQ_NEXEC; e++) {
        if (!q->lanes[e].live || !q->lanes[e].inflight)
            continue;
        q->cur = (enum eleos_ioq_exec)e;
        uint32_t slot;
        struct ioq_op *op = op_take(q, K_CANCEL, UINT64_MAX, &slot);
        if (op && op_queue(q, op, slot, prep_cancel_any, NULL) == 0) {
            int r = eleos_ioq_submit(q);
            (void)r;
        }
    }
    q->cur = cur;
}

/* The untrusted header area of a slot. */
static char *op_hdr(struct eleos_ioq *q, uint32_t slot) {
    return q->hdr + (size_t)slot * IOQ_HDR_SIZE;
}

int eleos_ioq_accept(struct eleos_ioq *q, int fd, struct sockaddr *addr, socklen_t *addrlen,
                     int flags, uint64_t user_data) {
    if (!fd_ok(fd) || (addr && !addrlen) || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
        return -EINVAL;
    uint32_t slot;
    struct ioq_op *op = op_take(q, K_ACCEPT, user_data, &slot);
    if (!op)
        return -EAGAIN;
    char *h = op_hdr(q, slot);
    socklen_t *hlen = (socklen_t *)h;
    struct sockaddr *haddr = (struct sockaddr *)(h + 16);
    op->addr = addr;
    op->addrlen = addrlen;
    op->addrcap = addr ? *addrlen : 0;
    if (addr) /* the header's page is touched only when an address is wanted */
        *hlen = ELEOS_IOQ_MAX_NAME;
    struct prep_args a = {.fd = fd, .flags = flags, .addr = addr ? haddr : NULL,
                          .addr2 = addr ? hlen : NULL};
    return op_queue(q, op, slot, prep_accept, &a);
}

/* --- vectored and message operations ---------------------------------------------------------- */

/* Total length of iov (capped at ELEOS_IOQ_MAX_XFER), or -EINVAL. */
static int64_t iov_total(const struct iovec *iov, int iovcnt) {
    if (iovcnt < 0 || (unsigned)iovcnt > ELEOS_IOQ_MAX_IOV || (iovcnt && !iov))
        return -EINVAL;
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        total += iov[i].iov_len;
        if (total > ELEOS_IOQ_MAX_XFER)
            total = ELEOS_IOQ_MAX_XFER;
    }
    return (int64_t)total;
}

/* The kernel always gets one iovec over the operation's contiguous bounce, in the slot's
 * header; the caller's iovecs stay in enclave memory. */
static struct iovec *hdr_iov(struct eleos_ioq *q, uint32_t slot, const struct ioq_op *op) {
    struct iovec *hv = (struct iovec *)(op_hdr(q, slot) + 64);
    hv->iov_base = op->data;
    hv->iov_len = op->len;
    return hv;
}

/* Takes a slot with a bounce for iov's bytes; for an input operation keeps a copy of the
 * iovecs to scatter into, for an output one gathers the data now. */
static struct ioq_op *vec_take(struct eleos_ioq *q, uint8_t kind, const struct iovec *iov,
                               int iovcnt, bool in, uint64_t ud, uint32_t *slot, int *err) {
    int64_t total = iov_total(iov, iovcnt);
    *err = total < 0 ? (int)total : 0;
    if (total < 0)
        return NULL;
    struct ioq_op *op = op_take(q, kind, ud, slot);
    *err = -EAGAIN;
    if (!op)
        return NULL;
    *err = op_bounce(q, op, (size_t)total);
    if (!*err && in && iovcnt) {
        op->iov = ioq_mem_alloc(q, (size_t)iovcnt * sizeof *iov);
        if (op->iov)
            memcpy(op->iov, iov, (size_t)iovcnt * sizeof *iov);
        else
            *err = -ENOMEM;
        op->iovcnt = iovcnt;
    }
    for (int i = 0, done = 0; !*err && !in && i < iovcnt && (uint32_t)done < op->len; i++) {
        size_t n = iov[i].iov_len < op->len - (uint32_t)done ? iov[i].iov_len
                                                              : op->len - (uint32_t)done;
        memcpy((char *)op->data + done, iov[i].iov_base, n);
        done += (int)n;
    }
    if (*err) {
        q->outstanding++;
        ioq_op_release(q, *slot);
        return NULL;
    }
    return op;
}

static int queue_vec(struct eleos_ioq *q, uint8_t kind, int fd, const struct iovec *iov,
                     int iovcnt, int64_t off, uint64_t ud, bool in) {
    if (!fd_ok(fd))
        return -EINVAL;
    uint32_t slot;
    int err;
    struct ioq_op *op = vec_take(q, kind, iov, iovcnt, in, ud, &slot, &err);
    if (!op)
        return err;
    struct prep_args a = {fd, hdr_iov(q, slot, op), 1, 0, (uint64_t)file_off(off), NULL};
    return op_queue(q, op, slot, in ? prep_readv : prep_writev, &a);
}

int eleos_ioq_readv(struct eleos_ioq *q, int fd, const struct iovec *iov, int iovcnt,
                    int64_t off, uint64_t user_data) {
    return queue_vec(q, K_READV, fd, iov, iovcnt, off, user_data, true);
}

int eleos_ioq_writev(struct eleos_ioq *q, int fd, const struct iovec *iov, int iovcnt,
                     int64_t off, uint64_t user_data) {
    return queue_vec(q, K_WRITEV, fd, iov, iovcnt, off, user_data, false);
}

/* Builds the untrusted msghdr of a message operation in the slot's header. */
static struct msghdr *hdr_msg(struct eleos_ioq *q, uint32_t slot, const struct ioq_op *op,
                              const struct msghdr *msg, bool in) {
    char *h = op_hdr(q, slot);
    struct msghdr *hm = (struct msghdr *)h;
    char *name = h + 128;
    memset(hm, 0, sizeof *hm);
    hm->msg_iov = hdr_iov(q, slot, op);
    hm->msg_iovlen = 1;
    if (msg->msg_name && msg->msg_namelen) {
        socklen_t n = msg->msg_namelen < ELEOS_IOQ_MAX_NAME ? msg->msg_namelen
                                                             : ELEOS_IOQ_MAX_NAME;
        if (!in)
            memcpy(name, msg->msg_name, n);
        hm->msg_name = name;
        hm->msg_namelen = in ? ELEOS_IOQ_MAX_NAME : n;
    }
    return hm;
}

static int queue_msg(struct eleos_ioq *q, uint8_t kind, int fd, const struct msghdr *msg,
                     int flags, uint64_t ud, bool in) {
    if (!fd_ok(fd) || !msg || msg->msg_control || msg->msg_controllen)
        return -EINVAL;
    if (!in && msg->msg_name && msg->msg_namelen > ELEOS_IOQ_MAX_NAME)
        return -EINVAL;
    uint32_t slot;
    int err;
    struct ioq_op *op = vec_take(q, kind, msg->msg_iov, (int)msg->msg_iovlen, in, ud, &slot,
                                 &err);
    if (!op)
        return err;
    if (in) {
        op->msg = (struct msghdr *)msg;
        op->addr = msg->msg_name;
        op->addrcap = msg->msg_name ? msg->msg_namelen : 0;
    }
    struct prep_args a = {.fd = fd, .addr = hdr_msg(q, slot, op, msg, in), .flags = flags};
    return op_queue(q, op, slot, in ? prep_recvmsg : prep_sendmsg, &a);
}

int eleos_ioq_recvmsg(struct eleos_ioq *q, int fd, struct msghdr *msg, int flags,
                      uint64_t user_data) {
    return queue_msg(q, K_RECVMSG, fd, msg, flags, user_data, true);
}

int eleos_ioq_sendmsg(struct eleos_ioq *q, int fd, const struct msghdr *msg, int flags,
                      uint64_t user_data) {
    return queue_msg(q, K_SENDMSG, fd, msg, flags | MSG_NOSIGNAL, user_data, false);
}

/* --- accepting a completion ----------------------------------------------------------------- */

/* The result op can have: an errno in range, or what its kind allows. */
static bool result_ok(const struct eleos_ioq *q, const struct ioq_op *op, int32_t res) {
    if (res < 0)
        return res >= -ELEOS_SYS_ERRNO_MAX;
    switch (op->kind) {
    case K_RECV: case K_SEND: case K_RECVMSG: case K_SENDMSG:
    case K_READ: case K_WRITE: case K_READV: case K_WRITEV:
        return (uint32_t)res <= op->len;
    case K_ACCEPT:
        return true;
    case K_POLL:
        return res && !((uint32_t)res & ~(op->events | POLLERR | POLLHUP | POLLNVAL));
    case K_CANCEL:
        return (uint32_t)res <= q->entries;
    default: /* K_NOP, K_CLOSE, K_FSYNC */
        return res == 0;
    }
}

/* Copies a socket address the host reports into the caller's buffer: never more than the
 * caller's room; the reported length must be one a socket address can have. */
static bool name_in(const struct ioq_op *op, const void *src, socklen_t reported,
                    socklen_t *len_out) {
    if (reported > ELEOS_IOQ_MAX_NAME)
        return false;
    if (op->addr && op->addrcap)
        memcpy(op->addr, src, reported < op->addrcap ? reported : op->addrcap);
    if (len_out)
        *len_out = reported;
    return true;
}

/* Moves the received bytes in: res has been checked against op->len. */
static bool data_in(struct eleos_ioq *q, struct ioq_op *op, uint32_t slot, int32_t res) {
    char *h = op_hdr(q, slot);
    switch (op->kind) {
    case K_RECV: case K_READ:
        if (res && op->dst)
            memcpy(op->dst, op->data, (size_t)res);
        return true;
    case K_RECVMSG: {
        socklen_t nl = ((volatile struct msghdr *)h)->msg_namelen;
        int mf = ((volatile struct msghdr *)h)->msg_flags;
        if (op->addr && !name_in(op, h + 128, nl, &op->msg->msg_namelen))
            return false;
        op->msg->msg_flags = mf;
    }
        __attribute__((fallthrough)); /* then scatter, as readv */
    case K_READV:
        for (int i = 0, done = 0; i < op->iovcnt && done < res; i++) {
            size_t n = op->iov[i].iov_len < (size_t)(res - done) ? op->iov[i].iov_len
                                                                   : (size_t)(res - done);
            memcpy(op->iov[i].iov_base, (char *)op->data + done, n);
            done += (int)n;
        }
        return true;
    case K_ACCEPT:
        if (op->addr) {
            socklen_t nl = *(volatile socklen_t *)h;
            return name_in(op, h + 16, nl, op->addrlen);
        }
        return true;
    default:
        return true;
    }
}

/* Room for n received bytes in the reap area, and the copy (enclave memory). */
void *ioq_rx_copy(struct eleos_ioq *q, const void *src, size_t n) {
    for (; q->rx_cur < q->nrx; q->rx_cur++) {
        struct ioq_rx_chunk *c = &q->rx[q->rx_cur];
        if (c->size - c->used >= n) {
            void *p = c->p + c->used;
            memcpy(p, src, n);
            c->used += n;
            return p;
        }
    }
    struct ioq_rx_chunk *nr = ioq_mem_alloc(q, (q->nrx + 1) * sizeof *nr);
    size_t size = n > (64u << 10) ? n : (64u << 10);
    char *p = nr ? ioq_mem_alloc(q, size) : NULL;
    if (!p) {
        ioq_mem_free(q, nr);
        return NULL;
    }
    if (q->nrx)
        memcpy(nr, q->rx, q->nrx * sizeof *nr);
    ioq_mem_free(q, q->rx);
    q->rx = nr;
    q->rx[q->nrx] = (struct ioq_rx_chunk){p, size, n};
    q->rx_cur = q->nrx++;
    memcpy(p, src, n);
    return p;
}

void ioq_rx_rewind(struct eleos_ioq *q) {
    for (uint32_t i = 0; i < q->nrx; i++)
        q->rx[i].used = 0;
    q->rx_cur = 0;
}

/* Accepts the completion of op (in flight, tag verified) with result res: range check,
 * copy in, release. out gets what the caller sees. */
void ioq_op_complete(struct eleos_ioq *q, struct ioq_op *op, int32_t res,
                     struct eleos_ioq_cqe *out) {
    uint32_t slot = (uint32_t)(op - q->ops);
    if (!result_ok(q, op, res) || (res > 0 && !data_in(q, op, slot, res))) {
        q->st.bad_results++;
        res = -EIO;
    }
    out->user_data = op->user_data;
    out->res = res;
    out->flags = 0;
    out->data = NULL;
    if (op->kind == K_RECV && !op->dst && res > 0) {
        out->data = ioq_rx_copy(q, op->data, (size_t)res);
        if (!out->data)
            out->res = -ENOMEM; /* the bytes are lost: the stream is broken, say so */
    }
    q->lanes[op->lane].inflight--;
    q->st.completions++;
    ioq_op_release(q, slot);
}

/* --- the queue -------------------------------------------------------------------------------- */

void eleos_ioq_config_default(struct eleos_ioq_config *cfg) {
    cfg->entries = ELEOS_IOQ_DEFAULT_ENTRIES;
    cfg->exec = ELEOS_IOQ_EXEC_AUTO;
    cfg->moderation = ELEOS_IOQ_MOD_AUTO;
    cfg->moderation_ns = ELEOS_IOQ_DEFAULT_MODERATION_NS;
}

static int queue_alloc(struct eleos_ioq *q, uint32_t n) {
    q->entries = n;
    q->ops = ioq_mem_alloc(q, n * sizeof *q->ops);
    q->free_ops = ioq_mem_alloc(q, n * sizeof *q->free_ops);
    q->hdr = eleos_untrusted_alloc((size_t)n * IOQ_HDR_SIZE);
    q->call = eleos_untrusted_alloc(sizeof *q->call);
    if (!q->ops || !q->free_ops || !q->hdr || !q->call)
        return -ENOMEM;
    memset(q->ops, 0, n * sizeof *q->ops);
    for (uint32_t i = 0; i < n; i++) {
        q->ops[i].gen = 1;
        q->free_ops[i] = n - 1 - i;
    }
    q->nfree = n;
    return 0;
}

static void queue_free(struct eleos_ioq *q) {
    for (unsigned c = 0; c < IOQ_NCLASS; c++) {
        for (uint32_t i = 0; c && i < q->cls[c].nfree; i++)
            eleos_untrusted_free(q->cls[c].free[i], class_size[c]);
        ioq_mem_free(q, q->cls[c].free);
    }
    for (uint32_t i = 0; i < q->nslabs; i++)
        eleos_untrusted_free(q->slabs[i], SLAB_SIZE);
    ioq_mem_free(q, q->slabs);
    for (uint32_t i = 0; i < q->nrx; i++)
        ioq_mem_free(q, q->rx[i].p);
    ioq_mem_free(q, q->rx);
    if (q->hdr)
        eleos_untrusted_free(q->hdr, (size_t)q->entries * IOQ_HDR_SIZE);
    if (q->call)
        eleos_untrusted_free(q->call, sizeof *q->call);
    ioq_mem_free(q, q->ops);
    ioq_mem_free(q, q->free_ops);
    ioq_mem_free(q, q);
}

int eleos_ioq_create(struct eleos_enclave *enc, const struct eleos_ioq_config *cfg,
                     struct eleos_ioq **out) {
    struct eleos_ioq_config def;
    eleos_ioq_config_default(&def);
    if (!cfg)
        cfg = &def;
    uint32_t n = cfg->entries ? cfg->entries : def.entries;
    if (!out || n > ELEOS_IOQ_MAX_ENTRIES || (n & (n - 1)) || n < 8 ||
        (unsigned)cfg->exec >= ELEOS_IOQ_NEXEC || (unsigned)cfg->moderation > ELEOS_IOQ_MOD_ON ||
        (!enc && eleos_enclave_in_enclave_mode()))
        return -EINVAL;
    struct eleos_ioq *q = enc ? eleos_enclave_malloc(enc, sizeof *q) : malloc(sizeof *q);
    if (!q)
        return -ENOMEM;
    memset(q, 0, sizeof *q);
    q->enc = enc;
    q->forced = cfg->exec;
    q->mod_mode = cfg->moderation;
    q->mod_ns = cfg->moderation_ns ? cfg->moderation_ns : def.moderation_ns;
    ioq_mod_init(&q->mod);
    int r = queue_alloc(q, n);
    if (!r)
        r = ioq_lanes_init(q);
    if (r) {
        queue_free(q);
        return r;
    }
    *out = q;
    return 0;
}

void eleos_ioq_destroy(struct eleos_ioq *q) {
    if (!q)
        return;
    /* Cancel what is in flight and take the completions (bounded: a host that never
     * completes cannot keep us here); closing the rings then ends whatever is left. */
    struct eleos_ioq_cqe cqes[64];
    q->closing = true;
    ioq_cancel_all(q);
    for (int i = 0; q->outstanding && i < 100; i++)
        if (eleos_ioq_wait(q, cqes, 64, 1, 2000000) < 0)
            break;
    for (unsigned e = 0; e < ELEOS_IOQ_NEXEC; e++)
        if (q->lanes[e].live)
            ioq_lane_close(q, &q->lanes[e]);
    for (uint32_t i = 0; i < q->entries; i++)
        if (q->ops[i].state != OP_FREE)
            ioq_op_release(q, i);
    queue_free(q);
}

unsigned eleos_ioq_outstanding(const struct eleos_ioq *q) {
    return q->outstanding;
}

void eleos_ioq_stats(const struct eleos_ioq *q, struct eleos_ioq_stats *out) {
    *out = q->st;
    out->trials = q->trial.trials; /* kept by the trial itself, read here */
    out->trials_won = q->trial.won;
}

static const char *const exec_names[ELEOS_IOQ_NEXEC] = {"auto", "uring", "worker", "sqpoll",
                                                        "batch"};

const char *eleos_ioq_exec_name(enum eleos_ioq_exec exec) {
    return (unsigned)exec < ELEOS_IOQ_NEXEC ? exec_names[exec] : "?";
}

int eleos_ioq_exec_parse(const char *s, enum eleos_ioq_exec *out) {
    for (unsigned e = 0; e < ELEOS_IOQ_NEXEC; e++)
        if (s && !strcmp(s, exec_names[e])) {
            *out = (enum eleos_ioq_exec)e;
            return 0;
        }
    return -EINVAL;
}
