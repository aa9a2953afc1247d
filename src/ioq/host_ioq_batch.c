/*
 * host_ioq_batch.c — the batch executor (for kernels without io_uring, or where it is
 * disabled) and the fault injector of the adversarial tests. Host side.
 *
 * The batch executor gives completion semantics on top of readiness: in one exit it runs
 * every queued operation that can complete now (sockets with MSG_DONTWAIT, others after a
 * zero-timeout poll) and keeps the rest pending in host memory; asked to wait, it polls the
 * pending descriptors until enough have completed or the time is up.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "host_ioq.h"

static size_t round_page(size_t v) {
    return (v + 4095) & ~(size_t)4095;
}

int ioq_batch_init(struct ioq_batch *b, uint32_t entries) {
    memset(b, 0, sizeof *b);
    b->sq_entries = entries;
    b->cq_entries = entries * 2;
    size_t off_array = round_page(sizeof *b->hdr);
    size_t off_sqes = round_page(off_array + 4ull * entries);
    size_t off_cqes = off_sqes + sizeof(struct io_uring_sqe) * entries;
    b->size = round_page(off_cqes + sizeof(struct io_uring_cqe) * b->cq_entries);
    b->mem = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b->pending = calloc(entries, sizeof *b->pending);
    if (b->mem == MAP_FAILED || !b->pending) {
        if (b->mem != MAP_FAILED)
            munmap(b->mem, b->size);
        free(b->pending);
        return -ENOMEM;
    }
    b->hdr = b->mem;
    b->array = (uint32_t *)((char *)b->mem + off_array);
    b->sqes = (struct io_uring_sqe *)((char *)b->mem + off_sqes);
    b->cqes = (struct io_uring_cqe *)((char *)b->mem + off_cqes);
    return 0;
}

void ioq_batch_fini(struct ioq_batch *b) {
    if (b->mem)
        munmap(b->mem, b->size);
    free(b->pending);
    memset(b, 0, sizeof *b);
}

static void post(struct ioq_batch *b, uint64_t ud, int32_t res) {
    uint32_t tail = atomic_load_explicit(&b->hdr->cq_ktail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&b->hdr->cq_khead, memory_order_acquire);
    if (tail - head >= b->cq_entries)
        return; /* only a lying enclave head gets here; the completion is lost */
    struct io_uring_cqe *c = &b->cqes[tail & (b->cq_entries - 1)];
    c->user_data = ud;
    c->res = res;
    c->flags = 0;
    atomic_store_explicit(&b->hdr->cq_ktail, tail + 1, memory_order_release);
}

static int ready(int fd, short ev) {
    struct pollfd p = {.fd = fd, .events = ev};
    return poll(&p, 1, 0) > 0 ? p.revents : 0;
}

static long neg(long r) {
    return r < 0 ? -errno : r;
}

/* Runs one operation if it can complete without blocking: 1 done (*res set), 0 not yet
 * (*ev: what to wait for). */
static int try_op(struct ioq_batch *b, const struct io_uring_sqe *s, long *res, short *ev) {
    void *addr = (void *)(uintptr_t)s->addr;
    int fd = s->fd;
    switch (s->opcode) {
    case IORING_OP_NOP: *res = 0; return 1;
    case IORING_OP_RECV: case IORING_OP_RECVMSG:
        *res = neg(s->opcode == IORING_OP_RECV
                       ? recv(fd, addr, s->len, (int)s->msg_flags | MSG_DONTWAIT)
                       : recvmsg(fd, addr, (int)s->msg_flags | MSG_DONTWAIT));
        *ev = POLLIN;
        /* MSG_DONTWAIT asked for: the caller wants -EAGAIN, not a wait (as io_uring). */
        return *res != -EAGAIN || (s->msg_flags & MSG_DONTWAIT);
    case IORING_OP_SEND: case IORING_OP_SENDMSG:
        *res = neg(s->opcode == IORING_OP_SEND
                       ? send(fd, addr, s->len, (int)s->msg_flags | MSG_DONTWAIT)
                       : sendmsg(fd, addr, (int)s->msg_flags | MSG_DONTWAIT));
        *ev = POLLOUT;
        return *res != -EAGAIN || (s->msg_flags & MSG_DONTWAIT);
    case IORING_OP_READ: case IORING_OP_READV: case IORING_OP_ACCEPT: case IORING_OP_POLL_ADD:
        *ev = s->opcode == IORING_OP_POLL_ADD ? (short)s->poll32_events : POLLIN;
        break;
    case IORING_OP_WRITE: case IORING_OP_WRITEV:
        *ev = POLLOUT;
        break;
    case IORING_OP_CLOSE: *res = neg(close(fd)); return 1;
    case IORING_OP_FSYNC:
        *res = neg(s->fsync_flags & IORING_FSYNC_DATASYNC ? fdatasync(fd) : fsync(fd));
        return 1;
    case IORING_OP_ASYNC_CANCEL: {
        long n = 0;
        for (uint32_t i = 0; i < b->npending;) {
            const struct io_uring_sqe *ps = &b->pending[i].sqe;
            bool match = (s->cancel_flags & IORING_ASYNC_CANCEL_ANY) ||
                         ((s->cancel_flags & IORING_ASYNC_CANCEL_FD) ? ps->fd == fd
                                                                    : ps->user_data == s->addr);
            if (match) {
                post(b, b->pending[i].sqe.user_data, -ECANCELED);
                b->pending[i] = b->pending[--b->npending];
                n++;
            } else {
                i++;
            }
        }
        *res = n ? n : -ENOENT;
        return 1;
    }
    default: *res = -EINVAL; return 1;
    }
    int rev = ready(fd, *ev);
    if (!rev)
        return 0;
    bool pos = s->off != UINT64_MAX && s->off != (uint64_t)-1;
    switch (s->opcode) {
    case IORING_OP_POLL_ADD: *res = rev; break;
    case IORING_OP_ACCEPT:
        *res = neg(accept4(fd, addr, (socklen_t *)(uintptr_t)s->addr2, (int)s->accept_flags));
        if (*res == -EAGAIN)
            return 0;
        break;
    case IORING_OP_READ:
        *res = neg(pos ? pread(fd, addr, s->len, (off_t)s->off) : read(fd, addr, s->len));
        break;
    case IORING_OP_WRITE:
        *res = neg(pos ? pwrite(fd, addr, s->len, (off_t)s->off) : write(fd, addr, s->len));
        break;
    case IORING_OP_READV:
        *res = neg(pos ? preadv(fd, addr, (int)s->len, (off_t)s->off) : readv(fd, addr, (int)s->len));
        break;
    default:
        *res = neg(pos ? pwritev(fd, addr, (int)s->len, (off_t)s->off)
                       : writev(fd, addr, (int)s->len));
        break;
    }
    return *res != -EAGAIN;
}

static void run_new(struct ioq_batch *b, unsigned fault) {
    uint32_t head = atomic_load_explicit(&b->hdr->sq_khead, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&b->hdr->sq_ktail, memory_order_acquire);
    if (tail - head > b->sq_entries)
        tail = head; /* a tail that never was: nothing to run */
    for (; head != tail; head++) {
        uint32_t idx = b->array[head & (b->sq_entries - 1)] & (b->sq_entries - 1);
        struct io_uring_sqe s = b->sqes[idx];
        long res = 0;
        short ev = 0;
        if (try_op(b, &s, &res, &ev)) {
            if (!((fault & ELEOS_IOQ_FAULT_DROP) && s.opcode == IORING_OP_NOP && (head & 3) == 0))
                post(b, s.user_data, (int32_t)res);
        } else if (b->npending < b->sq_entries) {
            b->pending[b->npending].sqe = s;
            b->pending[b->npending++].events = ev;
        } else {
            post(b, s.user_data, -EBUSY);
        }
    }
    atomic_store_explicit(&b->hdr->sq_khead, head, memory_order_release);
}

/* Retries the pending operations whose descriptors poll says are ready. */
static void run_pending(struct ioq_batch *b, int timeout_ms) {
    if (!b->npending)
        return;
    struct pollfd *p = calloc(b->npending, sizeof *p);
    if (!p)
        return;
    for (uint32_t i = 0; i < b->npending; i++) {
        p[i].fd = b->pending[i].sqe.fd;
        p[i].events = b->pending[i].events;
    }
    int n = poll(p, b->npending, timeout_ms);
    uint32_t keep = 0;
    for (uint32_t i = 0; i < b->npending; i++) {
        long res = 0;
        short ev = 0;
        if (n > 0 && p[i].revents && try_op(b, &b->pending[i].sqe, &res, &ev))
            post(b, b->pending[i].sqe.user_data, (int32_t)res);
        else
            b->pending[keep++] = b->pending[i];
    }
    b->npending = keep;
    free(p);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t cq_ready(struct ioq_batch *b) {
    return atomic_load(&b->hdr->cq_ktail) - atomic_load(&b->hdr->cq_khead);
}

void ioq_batch_enter(struct ioq_batch *b, uint32_t min, uint64_t ns, unsigned fault,
                     uint64_t *rng) {
    (void)rng;
    run_new(b, fault);
    run_pending(b, 0);
    uint64_t end = ns == UINT64_MAX ? UINT64_MAX : mono_ns() + ns;
    if (cq_ready(b) < min && !b->npending && ns) {
        /* Nothing here can complete (completions lost, or asked for more than is in
         * flight): the honest answer to a wait is to wait, not to return at once and be
         * asked again in a loop. At most 100 ms per call. */
        uint64_t nap = ns > 100000000ull ? 100000000ull : ns;
        struct timespec ts = {(time_t)(nap / 1000000000ull), (long)(nap % 1000000000ull)};
        nanosleep(&ts, NULL);
        return;
    }
    while (cq_ready(b) < min && b->npending) {
        uint64_t now = mono_ns();
        if (now >= end)
            break;
        uint64_t left = end - now;
        int ms = end == UINT64_MAX || left > 100000000ull ? 100 : (int)((left + 999999) / 1000000);
        run_pending(b, ms);
    }
}

/* --- fault injection ------------------------------------------------------------------------ */

uint64_t ioq_rand(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

struct cq_view {
    _Atomic uint32_t *khead, *ktail;
    struct io_uring_cqe *cqes;
    uint32_t mask;
    _Atomic uint32_t *sq_khead;
};

static void view_of(struct ioq_host_lane *hl, struct cq_view *v) {
    if (hl->exec == ELEOS_IOQ_EXEC_BATCH) {
        struct ioq_batch *b = &hl->batch;
        *v = (struct cq_view){&b->hdr->cq_khead, &b->hdr->cq_ktail, b->cqes,
                              b->cq_entries - 1, &b->hdr->sq_khead};
    } else {
        struct io_uring *r = &hl->ring;
        *v = (struct cq_view){(_Atomic uint32_t *)r->cq.khead, (_Atomic uint32_t *)r->cq.ktail,
                              r->cq.cqes, r->cq.ring_mask, (_Atomic uint32_t *)r->sq.khead};
    }
}

static struct io_uring_cqe *at(struct cq_view *v, uint32_t i) {
    return &v->cqes[i & v->mask];
}

static void fault_in_place(struct ioq_host_lane *hl, struct cq_view *v, unsigned fault) {
    uint32_t head = atomic_load(v->khead), tail = atomic_load(v->ktail);
    uint32_t n = tail - head;
    if (!n || n > v->mask + 1)
        return;
    for (uint32_t i = head; i != tail; i++) {
        struct io_uring_cqe *c = at(v, i);
        uint64_t r = ioq_rand(&hl->fault_rng);
        if ((fault & ELEOS_IOQ_FAULT_RESULT) && r % 3 == 0)
            c->res = r & 8 ? (int32_t)(1u << 30) : -100000;
        if ((fault & ELEOS_IOQ_FAULT_FORGE) && r % 7 == 1)
            c->user_data = ioq_rand(&hl->fault_rng);
        if (hl->nreplay < 4)
            hl->replay[hl->nreplay++] = *c;
        else
            hl->replay[r % 4] = *c;
    }
    if ((fault & ELEOS_IOQ_FAULT_REPLAY) && n >= 2 && hl->nreplay)
        *at(v, tail - 1) = hl->replay[ioq_rand(&hl->fault_rng) % hl->nreplay];
    if (fault & ELEOS_IOQ_FAULT_REORDER)
        for (uint32_t a = head, z = tail - 1; a != z && a != z + 1; a++, z--) {
            struct io_uring_cqe t = *at(v, a);
            *at(v, a) = *at(v, z);
            *at(v, z) = t;
        }
}

/* The batch executor's rings and buffers are the host's own: it can also append to the CQ
 * and rewrite what it received into. */
static void fault_append(struct ioq_host_lane *hl, unsigned fault) {
    struct ioq_batch *b = &hl->batch;
    uint32_t r = (uint32_t)ioq_rand(&hl->fault_rng);
    if (fault & ELEOS_IOQ_FAULT_FORGE)
        post(b, (uint64_t)(r % 7) << 32 | (r % 64), (int32_t)(r % 100));
    if ((fault & ELEOS_IOQ_FAULT_REPLAY) && hl->nreplay)
        post(b, hl->replay[r % hl->nreplay].user_data, hl->replay[r % hl->nreplay].res);
    if ((fault & ELEOS_IOQ_FAULT_BOUNCE))
        for (uint32_t i = 0; i < b->sq_entries && i < 64; i++) {
            struct io_uring_sqe *s = &b->sqes[i];
            if ((s->opcode == IORING_OP_RECV || s->opcode == IORING_OP_READ) && s->addr &&
                s->len)
                memset((void *)(uintptr_t)s->addr, (int)(r & 0xff), s->len < 64 ? s->len : 64);
        }
}

/* Moves the CQ tail, sometimes the SQ head too, where no enclave may believe them, until
 * the lane's next enter puts them back. Kernel rings included: the URING lane's kernel
 * consumes SQEs and posts completions only inside io_uring_enter (single issuer, deferred
 * task work) and publishes both indices from copies of its own. */
static void fault_index(struct ioq_host_lane *hl, struct cq_view *v) {
    uint64_t r = ioq_rand(&hl->fault_rng);
    if (r % 5)
        return;
    hl->true_tail = atomic_load(v->ktail);
    hl->true_head = atomic_load(v->sq_khead);
    hl->lied = true;
    atomic_store(v->ktail, atomic_load(v->khead) + 0x80000000u);
    if (r & 8)
        atomic_store(v->sq_khead, hl->true_head + 0x40000000u);
}

void ioq_fault_apply(struct ioq_host_lane *hl, unsigned fault) {
    struct cq_view v;
    view_of(hl, &v);
    fault_in_place(hl, &v, fault);
    if (hl->exec == ELEOS_IOQ_EXEC_BATCH)
        fault_append(hl, fault);
    if (fault & ELEOS_IOQ_FAULT_INDEX)
        fault_index(hl, &v);
}

void ioq_fault_undo(struct ioq_host_lane *hl) {
    if (!hl->lied)
        return;
    struct cq_view v;
    view_of(hl, &v);
    atomic_store(v.ktail, hl->true_tail);
    atomic_store(v.sq_khead, hl->true_head);
    hl->lied = false;
}
