/*
 * test_ioq_hostile — an I/O queue against a lying host. For the URING and BATCH executors
 * (forced), with each ELEOS_IOQ_FAULT_* flag alone and all of them together, enclave code
 * drives real I/O (messages over a socket pair and a pipe, NOPs, file preads) for a fixed
 * number of rounds while the host forges, replays, reorders, garbles and drops completions,
 * rewrites bounce buffers and moves ring indices. Then the faults go off and the same queue
 * must do fresh I/O exactly right, and destroy must return.
 *
 * What is checked, for every completion the queue hands back: it names an operation the test
 * has outstanding, it comes once, its result is one the operation can have (at most the
 * bytes asked for, an errno in range, -EIO for what the queue rejected). Where the faults
 * leave data alone, data and results are exact (messages carry their sequence number, each
 * may arrive once). The queue's counters must show the lies that can be detected (forged,
 * replayed, out-of-range results, impossible ring indices) and show none without faults.
 * Every wait has a timeout and the rounds are counted: a lost completion costs one timeout.
 * The injector can neither append to nor drop from the kernel's CQ, and rewrites bounce
 * buffers only behind its own executor: DROP and BOUNCE touch BATCH lanes alone, and on URING
 * those runs check that nothing is counted.
 *
 * Not labelled "concurrent": the host rewrites untrusted memory the enclave reads, on
 * purpose.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eleos/ioq.h"
#include "eleos/sys.h"
#include "harness.h"
#include "rpc_testutil.h"

static struct eleos_enclave *enc;

#define QENTRIES 512u          /* room for every operation the lies can strand          */
#define ROUNDS 24u
#define HONEST_ROUNDS 2u
#define NREC 1024u             /* operations per run, at most                           */
#define WAIT_NS 20000000ull    /* every wait gives up after 20 ms                       */
#define PAIR_WAIT_NS 5000000ull
#define ROUND_WAITS 8u         /* waits per round                                       */
#define FINAL_WAITS 250u       /* waits to drain, or to finish the honest phase         */
#define MSG_MAX 200u           /* socket messages: 12..MSG_MAX bytes, received whole    */
#define PIPE_MSG 48u           /* pipe messages: atomic writes, read whole              */
#define FILE_SIZE 65536u
#define MAGIC_SOCK 0x534f434bu
#define MAGIC_PIPE 0x50495045u
#define UD_BASE 0x5eed000000000000ull

#define DETECTED (ELEOS_IOQ_FAULT_FORGE | ELEOS_IOQ_FAULT_REPLAY | ELEOS_IOQ_FAULT_RESULT | \
                  ELEOS_IOQ_FAULT_INDEX)
/* Faults that make the host lose completions: those operations may stay outstanding. */
#define LOSSY (ELEOS_IOQ_FAULT_FORGE | ELEOS_IOQ_FAULT_REPLAY | ELEOS_IOQ_FAULT_DROP)
#define ALL_FAULTS 0x7fu

enum rec_kind { RK_NOP, RK_SEND, RK_RECV, RK_PIPE_W, RK_PIPE_R, RK_PREAD };
enum rec_state { RS_FREE, RS_OUT, RS_DONE };

struct rec {
    uint8_t state, kind;
    bool honest;       /* queued with the faults off                             */
    uint32_t len;      /* bytes asked for (0: NOP)                               */
    uint64_t off;      /* RK_PREAD                                               */
    char *buf;         /* exact-size enclave heap block: what was sent, or room  */
};

struct run {
    enum eleos_ioq_exec exec;
    unsigned fault;
    int sp[2], pp[2];   /* the faulty phase's socket pair (SOCK_SEQPACKET) and pipe  */
    int sp2[2], pp2[2]; /* the honest phase's: operations stranded by lies stay on    */
    int file;           /* the old ones and can take nothing from these              */
    struct eleos_ioq *q;
    struct rec rec[NREC];
    unsigned nrec, out, queued, honest_left;
    uint32_t sock_seq, pipe_seq;
    uint8_t sock_seen[NREC], pipe_seen[NREC];
    uint64_t reaped;
    unsigned eio;
    struct eleos_ioq_stats fst, st; /* after the faulty phase, before destroy */
    unsigned fout;                  /* outstanding after the faulty phase     */
};

static struct run R;

/* --- payloads ------------------------------------------------------------------------ */

static uint8_t file_byte(uint64_t off) {
    return (uint8_t)(off * 167u + (off >> 8) * 13u + 5u);
}

static uint8_t msg_byte(uint32_t seq, uint32_t i) {
    return (uint8_t)(seq * 31u + i * 7u + 1u);
}

static void msg_fill(char *b, uint32_t magic, uint32_t seq, uint32_t len) {
    uint32_t h[3] = {magic, seq, len};
    memcpy(b, h, sizeof h);
    for (uint32_t i = sizeof h; i < len; i++)
        b[i] = (char)msg_byte(seq, i);
}

/* A whole message of res bytes that was sent and not received before. */
static bool msg_ok(const char *b, int32_t res, uint32_t magic, uint8_t *seen, uint32_t sent) {
    uint32_t h[3];
    if (res < (int32_t)sizeof h)
        return false;
    memcpy(h, b, sizeof h);
    if (h[0] != magic || h[2] != (uint32_t)res || h[1] >= sent || seen[h[1]])
        return false;
    for (uint32_t i = sizeof h; i < (uint32_t)res; i++)
        if ((uint8_t)b[i] != msg_byte(h[1], i))
            return false;
    seen[h[1]] = 1;
    return true;
}

/* --- operations ------------------------------------------------------------------------ */

static struct rec *rec_new(struct run *r, uint8_t kind, uint32_t len, uint32_t *idx) {
    if (r->nrec >= NREC)
        return NULL;
    struct rec *k = &r->rec[r->nrec];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->len = len;
    if (len && !(k->buf = eleos_enclave_malloc(enc, len)))
        return NULL;
    *idx = r->nrec++;
    return k;
}

static int enqueue(struct run *r, const struct rec *k, const int *fds, uint64_t ud) {
    switch (k->kind) {
    case RK_NOP: return eleos_ioq_nop(r->q, ud);
    case RK_SEND: return eleos_ioq_send(r->q, fds[0], k->buf, k->len, 0, ud);
    case RK_RECV: return eleos_ioq_recv(r->q, fds[1], k->buf, k->len, 0, ud);
    case RK_PIPE_W: return eleos_ioq_write(r->q, fds[1], k->buf, k->len, -1, ud);
    case RK_PIPE_R: return eleos_ioq_read(r->q, fds[0], k->buf, k->len, -1, ud);
    case RK_PREAD: return eleos_ioq_read(r->q, fds[0], k->buf, k->len, (int64_t)k->off, ud);
    default: return -EINVAL;
    }
}

/* Queues one operation of kind on fds (socket pair, pipe, or the file). */
static void queue_op(struct run *r, uint8_t kind, const int *fds, uint64_t off, uint32_t len,
                     bool honest) {
    uint32_t idx;
    struct rec *k = rec_new(r, kind, len, &idx);
    E_CHECK(k != NULL);
    if (!k)
        return;
    k->honest = honest;
    k->off = off;
    if (kind == RK_SEND)
        msg_fill(k->buf, MAGIC_SOCK, r->sock_seq++, len);
    if (kind == RK_PIPE_W)
        msg_fill(k->buf, MAGIC_PIPE, r->pipe_seq++, len);
    int rc = enqueue(r, k, fds, UD_BASE | idx);
    /* A lying SQ head refuses operations (-EAGAIN) until an enter puts it right. */
    for (int t = 0; rc == -EAGAIN && !honest && (r->fault & ELEOS_IOQ_FAULT_INDEX) && t < 8;
         t++)
        rc = enqueue(r, k, fds, UD_BASE | idx);
    E_CHECK(rc == 0);
    if (rc == 0) {
        k->state = RS_OUT;
        r->out++;
        r->queued++;
        r->honest_left += honest;
    }
}

/* Data and results are exact unless the host may have written the bounce buffers (BOUNCE,
 * or, on BATCH, a forged completion with a live tag, which frees a bounce the host still
 * uses). */
static bool exact(const struct run *r, const struct rec *k) {
    if (k->honest)
        return true;
    if (r->fault & ELEOS_IOQ_FAULT_BOUNCE)
        return false;
    return !(r->exec == ELEOS_IOQ_EXEC_BATCH && (r->fault & ELEOS_IOQ_FAULT_FORGE));
}

/* The result and data an honest host gives for k. */
static bool result_exact(struct run *r, const struct rec *k, int32_t res) {
    switch (k->kind) {
    case RK_NOP: return res == 0;
    case RK_SEND: case RK_PIPE_W: return res == (int32_t)k->len;
    case RK_RECV: return msg_ok(k->buf, res, MAGIC_SOCK, r->sock_seen, r->sock_seq);
    case RK_PIPE_R:
        return res == (int32_t)PIPE_MSG &&
               msg_ok(k->buf, res, MAGIC_PIPE, r->pipe_seen, r->pipe_seq);
    case RK_PREAD:
        if (res != (int32_t)k->len)
            return false;
        for (uint32_t i = 0; i < k->len; i++)
            if ((uint8_t)k->buf[i] != file_byte(k->off + i))
                return false;
        return true;
    default: return false;
    }
}

static void on_cqe(struct run *r, const struct eleos_ioq_cqe *c) {
    uint64_t idx = c->user_data - UD_BASE;
    /* Names an operation that is outstanding: never one unknown, never one twice. */
    E_CHECK(idx < r->nrec && r->rec[idx].state == RS_OUT);
    if (idx >= r->nrec || r->rec[idx].state != RS_OUT)
        return;
    struct rec *k = &r->rec[idx];
    k->state = RS_DONE;
    r->out--;
    r->reaped++;
    r->honest_left -= k->honest;
    E_CHECK(c->flags == 0);
    E_CHECK(c->res >= -ELEOS_SYS_ERRNO_MAX && (c->res < 0 || (uint32_t)c->res <= k->len));
    if (c->res == -EIO)
        r->eio++;
    if (!exact(r, k))
        return;
    bool rejected = c->res == -EIO && !k->honest && (r->fault & ELEOS_IOQ_FAULT_RESULT);
    E_CHECK(rejected || result_exact(r, k, c->res));
}

/* One bounded wait for at least min completions; the number reaped. */
static unsigned reap_ns(struct run *r, unsigned min, uint64_t ns) {
    struct eleos_ioq_cqe c[64];
    int n = eleos_ioq_wait(r->q, c, 64, min ? min : 1, ns);
    E_CHECK(n >= 0);
    for (int i = 0; i < n; i++)
        on_cqe(r, &c[i]);
    E_CHECK(eleos_ioq_outstanding(r->q) == r->out);
    return n > 0 ? (unsigned)n : 0;
}

static unsigned reap(struct run *r, unsigned min) {
    return reap_ns(r, min, WAIT_NS);
}

static unsigned outstanding_since(const struct run *r, unsigned first) {
    unsigned n = 0;
    for (unsigned i = first; i < r->nrec; i++)
        n += r->rec[i].state == RS_OUT;
    return n;
}

/* Batches of two, a pread and a NOP: a replayed completion then often names a slot an
 * earlier pair used and this one uses again, which only the tag's generation tells apart
 * (lengths differ, so a result taken for another operation shows). */
static void pairs(struct run *r, bool honest) {
    int file[1] = {r->file};
    for (unsigned p = 0; p < 3; p++) {
        unsigned first = r->nrec;
        queue_op(r, RK_PREAD, file, (r->nrec * 331u) % (FILE_SIZE - 256),
                 16 + (r->nrec * 7u) % 160, honest);
        queue_op(r, RK_NOP, NULL, 0, 0, honest);
        reap_ns(r, outstanding_since(r, first), PAIR_WAIT_NS);
    }
}

/* One round: messages both ways, a pipe message, NOPs, preads; then bounded waits. */
static void round_io(struct run *r, unsigned i, const int *sp, const int *pp, bool honest) {
    unsigned first = r->nrec;
    int file[1] = {r->file};
    bool recv_first = i & 1;
    for (unsigned m = 0; m < 4; m++) {
        uint32_t len = 12 + (i * 37 + m * 53) % (MSG_MAX - 12);
        queue_op(r, recv_first ? RK_RECV : RK_SEND, sp, 0, recv_first ? MSG_MAX : len, honest);
    }
    if (i % 3 == 0)
        E_CHECK(eleos_ioq_submit(r->q) >= 0); /* a batch split in two */
    for (unsigned m = 0; m < 4; m++) {
        uint32_t len = 12 + (i * 37 + m * 53) % (MSG_MAX - 12);
        queue_op(r, recv_first ? RK_SEND : RK_RECV, sp, 0, recv_first ? len : MSG_MAX, honest);
    }
    queue_op(r, RK_PIPE_R, pp, 0, PIPE_MSG, honest);
    queue_op(r, RK_PIPE_W, pp, 0, PIPE_MSG, honest);
    for (unsigned m = 0; m < 4; m++)
        queue_op(r, RK_NOP, NULL, 0, 0, honest);
    for (unsigned m = 0; m < 2; m++)
        queue_op(r, RK_PREAD, file, (i * 977u + m * 4099u) % (FILE_SIZE - 256),
                 64 + (i * 13 + m * 29) % 128, honest);
    bool lossy = !honest && (r->fault & LOSSY);
    for (unsigned w = 0; w < ROUND_WAITS; w++) {
        unsigned left = outstanding_since(r, first);
        if (!left || (!reap(r, left) && lossy))
            break;
    }
    pairs(r, honest);
}

/* --- the two phases, each one ECALL ----------------------------------------------------- */

static long e_faulty(void *arg) {
    struct run *r = arg;
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg);
    cfg.entries = QENTRIES;
    cfg.exec = r->exec;
    int rc = eleos_ioq_create(enc, &cfg, &r->q);
    if (rc)
        return rc;
    E_CHECK(eleos_ioq_executor(r->q) == r->exec);
    for (unsigned i = 0; i < ROUNDS; i++)
        round_io(r, i, r->sp, r->pp, r->fault == 0);
    /* Drain: where no completion can be lost, every one must come. */
    bool lossy = (r->fault & LOSSY) != 0;
    for (unsigned w = 0; w < FINAL_WAITS && r->out; w++)
        if (!reap(r, r->out) && lossy)
            break;
    if (!lossy)
        E_CHECK(r->out == 0);
    eleos_ioq_stats(r->q, &r->fst);
    r->fout = r->out;
    return 0;
}

static long e_honest(void *arg) {
    struct run *r = arg;
    /* Whatever the lies left in the rings is reaped (and judged) first. */
    for (unsigned w = 0; w < 5 && r->out; w++)
        if (!reap(r, 1))
            break;
    for (unsigned i = 0; i < HONEST_ROUNDS; i++)
        round_io(r, ROUNDS + i, r->sp2, r->pp2, true);
    for (unsigned w = 0; w < FINAL_WAITS && r->honest_left; w++)
        reap(r, r->honest_left);
    E_CHECK(r->honest_left == 0);
    eleos_ioq_stats(r->q, &r->st);
    eleos_ioq_destroy(r->q); /* must return, whatever is still outstanding */
    r->q = NULL;
    for (unsigned i = 0; i < r->nrec; i++)
        eleos_enclave_free(enc, r->rec[i].buf);
    return 0;
}

/* --- host side ------------------------------------------------------------------------- */

static void fds_open(struct run *r) {
    REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, r->sp) == 0);
    REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, r->sp2) == 0);
    REQUIRE(pipe(r->pp) == 0 && pipe(r->pp2) == 0);
    char path[] = "/tmp/test_ioq_hostile_XXXXXX";
    r->file = mkstemp(path);
    REQUIRE(r->file >= 0);
    unlink(path);
    static char data[FILE_SIZE];
    for (uint32_t i = 0; i < FILE_SIZE; i++)
        data[i] = (char)file_byte(i);
    REQUIRE(pwrite(r->file, data, sizeof data, 0) == (ssize_t)sizeof data);
}

static void fds_close(struct run *r) {
    int fds[] = {r->sp[0], r->sp[1], r->sp2[0], r->sp2[1], r->pp[0], r->pp[1],
                 r->pp2[0], r->pp2[1], r->file};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

/* The counters a fault must move, and the ones no fault may. */
static void check_counters(const struct run *r) {
    unsigned f = r->fault;
    if (f & (ELEOS_IOQ_FAULT_FORGE | ELEOS_IOQ_FAULT_REPLAY | ELEOS_IOQ_FAULT_INDEX))
        CHECK(r->fst.host_faults > 0);
    if (f & ELEOS_IOQ_FAULT_RESULT)
        CHECK(r->fst.bad_results > 0);
    if (!(f & DETECTED)) {
        CHECK_EQ(r->st.host_faults, 0);
        CHECK_EQ(r->st.bad_results, 0);
        CHECK_EQ(r->eio, 0);
    }
    if (!(f & LOSSY)) {
        CHECK_EQ(r->fout, 0);
        CHECK_EQ(r->out, 0);
    }
    CHECK_EQ(r->st.ops, r->queued);
    CHECK_EQ(r->st.completions, r->reaped);
}

static void run_one(enum eleos_ioq_exec exec, unsigned fault) {
    struct run *r = &R;
    memset(r, 0, sizeof *r);
    r->exec = exec;
    r->fault = fault;
    fds_open(r);
    e_fails = e_fail_line = 0;
    eleos_ioq_service_set_fault(fault);
    long rv = -1;
    REQUIRE(eleos_enclave_ecall(enc, e_faulty, r, &rv) == 0);
    eleos_ioq_service_set_fault(0);
    if (rv == -ENOSYS && exec == ELEOS_IOQ_EXEC_URING) {
        fprintf(stderr, "uring not available here\n");
        fds_close(r);
        return;
    }
    CHECK_EQ(rv, 0);
    if (rv == 0)
        REQUIRE(eleos_enclave_ecall(enc, e_honest, r, &rv) == 0);
    fprintf(stderr,
            "%s fault 0x%02x: %u ops, %llu reaped, %u -EIO, %u lost; host_faults %llu, "
            "bad_results %llu, exits %llu\n",
            eleos_ioq_exec_name(exec), fault, r->queued, (unsigned long long)r->reaped, r->eio,
            r->out, (unsigned long long)r->st.host_faults,
            (unsigned long long)r->st.bad_results, (unsigned long long)r->st.exits);
    if (e_fails)
        fprintf(stderr, "  %d enclave failures, first at line %d\n", e_fails, e_fail_line);
    CHECK_EQ(e_fails, 0);
    check_counters(r);
    fds_close(r);
}

static void run_exec(enum eleos_ioq_exec exec) {
    run_one(exec, 0);
    for (unsigned f = 1; f <= ELEOS_IOQ_FAULT_DROP; f <<= 1)
        run_one(exec, f);
    run_one(exec, ALL_FAULTS);
    run_one(exec, 0); /* and a fresh queue behaves after all that */
}

static void test_uring(void) { run_exec(ELEOS_IOQ_EXEC_URING); }
static void test_batch(void) { run_exec(ELEOS_IOQ_EXEC_BATCH); }

int main(void) {
    enc = rpc_test_enclave(0);
    const struct harness_case cases[] = {TEST_CASE(test_uring), TEST_CASE(test_batch)};
    int r = harness_run("test_ioq_hostile", cases, sizeof cases / sizeof cases[0]);
    eleos_enclave_destroy(enc);
    return r;
}
