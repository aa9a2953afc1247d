/*
 * enclave_server.c — eleos-pserver inside the enclave: the ECALL entry points of
 * pserver_server.h, the trusted server state, the request loop and the flat table.
 *
 * Where state lives (docs/design.md §5, rule 2): everything the request loop relies on — the table, the
 * table's and the I/O's function tables, the RPC client, the counters — is allocated on the
 * enclave heap by the setup ECALL, and the one pointer to it is a global of this file (the
 * enclave image's data). The host used to pass a host-allocated struct per connection whose
 * function pointers and table pointer the enclave then followed: a host that rewrote it got
 * the enclave to call or write wherever it liked. Now a connection is just its descriptor.
 *
 * In native mode the same functions run on the host without an enclave: "enclave heap" is
 * libc's, the table is anonymous host memory, and the checks against ELRANGE are skipped.
 *
 * Two request loops: the blocking one below (native, exit and --rpc sync paths: a recv or
 * send at a time through struct app_io_ops) and the I/O queue's (enclave_queue.c: a queue
 * per serving thread, batched sends and receives), which the set-up's ioq_on selects.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eleos/rpc.h"
#include "eleos/sys.h"
#include "pserver_server.h"

struct ps_enclave {
    struct ps_setup set;               /* the validated copy of the host's set-up values */
    struct eleos_enclave *enc;         /* NULL in native mode                             */
    const struct ps_table_ops *table_ops;
    void *table;
    const struct app_io_ops *io;
    struct eleos_rpc_client *rpc;      /* eleos mode                                      */
    _Atomic uint64_t keys, batches, host_faults;
    struct ps_ioq_totals ioq;          /* the queue path's counters                       */
};

static struct ps_enclave *ps;

/* --- the flat table (native: host memory; sgx: enclave heap) and libc I/O --------------- */

struct flat_table {
    uint64_t *v;
    uint64_t entries;
};

static int flat_inc(void *t, const uint64_t *keys, uint32_t n) {
    struct flat_table *ft = t;
    /* Connections are served by concurrent threads: increments must not be lost. */
    for (uint32_t i = 0; i < n; i++)
        __atomic_fetch_add(&ft->v[keys[i] % ft->entries], 1, __ATOMIC_RELAXED);
    return 0;
}

static int flat_get(void *t, const uint64_t *keys, uint32_t n, uint64_t *out) {
    struct flat_table *ft = t;
    for (uint32_t i = 0; i < n; i++)
        out[i] = __atomic_load_n(&ft->v[keys[i] % ft->entries], __ATOMIC_RELAXED);
    return 0;
}

static const struct ps_table_ops flat_ops = {"flat", flat_inc, flat_get};

/* --- heap: the enclave's in enclave modes, libc's in native mode -------------------------- */

static void *heap_calloc(struct eleos_enclave *enc, size_t n, size_t size) {
    return enc ? eleos_enclave_calloc(enc, n, size) : calloc(n, size);
}

static void heap_free(struct eleos_enclave *enc, void *p) {
    if (enc)
        eleos_enclave_free(enc, p);
    else
        free(p);
}

/* --- set-up ------------------------------------------------------------------------------ */

/* Untrusted memory the host names must really be outside the enclave (else the host could
 * make us use trusted memory as its shared area or write our replies over our own state). */
static bool host_range(struct eleos_enclave *enc, const void *p, size_t size) {
    return p && (!enc || eleos_enclave_outside(enc, p, size));
}

static int setup_check(struct eleos_enclave *enc, const struct ps_setup *s) {
    /* The mode is the host's word: it must agree with whether we really are in an enclave. */
    if ((unsigned)s->mode > PS_MODE_ELEOS || (s->mode == PS_MODE_NATIVE) != !enc)
        return -EINVAL;
    if (s->table_bytes == 0 || s->table_bytes % 8 || s->table_bytes > PS_TABLE_MAX_BYTES ||
        s->cache_bytes > PS_CACHE_MAX_BYTES)
        return -EINVAL;
    if ((s->rpc_on || s->suvm_on) && !enc)
        return -EINVAL;
    if (s->rpc_on && (s->rpc_area_size == 0 || !host_range(enc, s->rpc_area, s->rpc_area_size)))
        return -EINVAL;
    /* The queue: an enclave's, instead of the RPC client (not with it), on an executor
     * that exists; and no executor named without it. */
    if (s->ioq_on ? !enc || s->rpc_on || s->ioq_exec >= ELEOS_IOQ_NEXEC : s->ioq_exec != 0)
        return -EINVAL;
    return 0;
}

static int flat_create(struct ps_enclave *p) {
    struct flat_table *ft = heap_calloc(p->enc, 1, sizeof *ft);
    if (!ft)
        return -ENOMEM;
    ft->entries = p->set.table_bytes / 8;
    if (p->enc) {
        ft->v = eleos_enclave_calloc(p->enc, ft->entries, 8);
    } else {
        /* Lazily zeroed pages: a large native table costs only what is touched. */
        ft->v = mmap(NULL, p->set.table_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ft->v == MAP_FAILED)
            ft->v = NULL;
    }
    if (!ft->v) {
        heap_free(p->enc, ft);
        return -ENOMEM;
    }
    p->table_ops = &flat_ops;
    p->table = ft;
    return 0;
}

static int rpc_attach(struct ps_enclave *p) {
    int r = eleos_rpc_client_create(p->enc, p->set.rpc_area, p->set.rpc_area_size, &p->rpc);
    if (r)
        return r;
    eleos_sys_init(p->rpc);
    return 0;
}

static void rpc_detach(struct ps_enclave *p) {
    if (!p->rpc)
        return;
    eleos_sys_init(NULL);
    eleos_rpc_client_destroy(p->rpc);
    p->rpc = NULL;
}

/* The I/O path and the table the set-up asks for. */
static int server_create(struct ps_enclave *p) {
    p->io = app_io_for(p->enc != NULL, p->set.rpc_on, true);
    int r = p->set.rpc_on ? rpc_attach(p) : 0;
    /* A queue per connection later; one now tells whether the executor exists here, so
     * that a server asked for one it cannot have fails at start-up, not per connection. */
    if (!r && p->set.ioq_on)
        r = ps_queue_probe(p->enc, (enum eleos_ioq_exec)p->set.ioq_exec);
    if (r)
        return r;
    if (p->set.suvm_on)
        r = ps_suvm_table_create(p->enc, p->set.table_bytes, p->set.cache_bytes,
                                 &p->table_ops, &p->table);
    else
        r = flat_create(p);
    if (r)
        rpc_detach(p);
    return r;
}

/* Runs once, before any connection. In enclave modes it runs inside the enclave, so the
 * table (sgx) and the SUVM instance and RPC client (eleos) are created by enclave code. */
long ps_enclave_setup(void *arg) {
    struct eleos_enclave *enc = eleos_enclave_current();
    if (ps)
        return -EBUSY;
    struct ps_setup set;
    if (!arg || eleos_copy_in(&set, arg, sizeof set)) /* the one read of the host's values */
        return -EINVAL;
    struct ps_enclave *p = heap_calloc(enc, 1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->enc = enc;
    p->set = set;
    int r = setup_check(enc, &p->set);
    if (!r)
        r = server_create(p);
    if (r) {
        heap_free(enc, p);
        return r;
    }
    /* Copies of our names, not pointers into the enclave: the host only prints them. */
    char names[2][PS_NAME_MAX];
    snprintf(names[0], sizeof names[0], "%s", p->table_ops->name);
    if (p->set.ioq_on)
        snprintf(names[1], sizeof names[1], "ioq %s",
                 eleos_ioq_exec_name((enum eleos_ioq_exec)p->set.ioq_exec));
    else
        snprintf(names[1], sizeof names[1], "%s", p->io->name);
    ps = p;
    struct ps_setup *out = arg;
    r = eleos_copy_out(out->out_table, names[0], PS_NAME_MAX);
    return r ? r : eleos_copy_out(out->out_io, names[1], PS_NAME_MAX);
}

/* --- the request loop -------------------------------------------------------------------- */

struct conn_io {
    const struct app_io_ops *ops;
    struct app_io_ctx ctx;
    int fd;
};

static int recv_all(struct conn_io *c, void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t r = c->ops->recv(&c->ctx, c->fd, (char *)buf + got, len - got);
        if (r == -EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -ECONNRESET : (int)r;
        /* A result above what was asked is a lying host (exitless path): stop here. */
        if ((size_t)r > len - got)
            return -EIO;
        got += (size_t)r;
    }
    return 0;
}

static int send_all(struct conn_io *c, const void *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t r = c->ops->send(&c->ctx, c->fd, (const char *)buf + done, len - done);
        if (r == -EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -EPIPE : (int)r;
        if ((size_t)r > len - done)
            return -EIO;
        done += (size_t)r;
    }
    return 0;
}

/* Serves requests on fd until the client leaves: 0, -EPROTO (malformed request) or the
 * table's error. keys and vals are PS_MAX_KEYS entries of trusted memory. */
static long serve_loop(struct ps_enclave *p, struct conn_io *io, uint64_t *keys,
                       uint64_t *vals) {
    for (;;) {
        struct ps_header h;
        if (recv_all(io, &h, sizeof h))
            return 0; /* client gone */
        /* Read once, validate, then use: the count sizes the next receive. */
        uint32_t op = h.op, n = h.count;
        if (n == 0 || n > PS_MAX_KEYS || (op != PS_OP_INC && op != PS_OP_GET))
            return -EPROTO;
        if (recv_all(io, keys, (size_t)n * 8))
            return 0;
        if (op == PS_OP_INC) {
            int r = p->table_ops->inc(p->table, keys, n);
            uint64_t ack = r ? 0 : n;
            if (send_all(io, &ack, sizeof ack))
                return 0;
            atomic_fetch_add_explicit(&p->keys, n, memory_order_relaxed);
        } else {
            int r = p->table_ops->get(p->table, keys, n, vals);
            if (r)
                return r;
            if (send_all(io, vals, (size_t)n * 8))
                return 0;
        }
        atomic_fetch_add_explicit(&p->batches, 1, memory_order_relaxed);
    }
}

/* The queue path: the loop of enclave_queue.c, then the descriptor closed as the blocking
 * loop's is. */
static long serve_queue(struct ps_enclave *p, int fd) {
    struct ps_queue_env env = {p->enc, p->table_ops, p->table, &p->keys, &p->batches,
                               (enum eleos_ioq_exec)p->set.ioq_exec, &p->ioq};
    long err = ps_queue_serve(&env, fd);
    struct app_io_ctx ctx = {NULL, 0}; /* close carries no buffer: no bounce needed */
    p->io->close(&ctx, fd);
    return err;
}

/* One connection, for its whole life, on the calling thread. The argument is the
 * descriptor as an integer: nothing the host wrote is dereferenced. */
long ps_enclave_serve(void *arg) {
    struct ps_enclave *p = ps;
    uintptr_t v = (uintptr_t)arg;
    if (!p)
        return -EINVAL;
    if (v > INT_MAX) { /* a negative int, or not a descriptor at all */
        atomic_fetch_add_explicit(&p->host_faults, 1, memory_order_relaxed);
        return -EBADF;
    }
    if (p->set.ioq_on)
        return serve_queue(p, (int)v);
    struct conn_io io = {p->io, {NULL, 0}, (int)v};
    size_t bufsize = (size_t)PS_MAX_KEYS * 8;
    /* Trusted buffers in enclave modes: requests are copied into the enclave. */
    uint64_t *keys = heap_calloc(p->enc, 1, bufsize);
    uint64_t *vals = heap_calloc(p->enc, 1, bufsize);
    long err = keys && vals ? app_io_ctx_init(&io.ctx, io.ops) : -ENOMEM;
    if (!err)
        err = serve_loop(p, &io, keys, vals);
    io.ops->close(&io.ctx, io.fd);
    app_io_ctx_fini(&io.ctx);
    heap_free(p->enc, keys);
    heap_free(p->enc, vals);
    /* The thread's RPC channel goes back to the pool with its connection. */
    if (p->rpc)
        eleos_rpc_thread_detach(p->rpc);
    return err;
}

/* --- statistics -------------------------------------------------------------------------- */

/* Filled in enclave memory, then copied out to the host's struct (checked to be outside). */
long ps_enclave_stats(void *arg) {
    struct ps_enclave *p = ps;
    if (!p || !arg)
        return -EINVAL;
    struct ps_stats st;
    memset(&st, 0, sizeof st);
    st.keys = atomic_load_explicit(&p->keys, memory_order_relaxed);
    st.batches = atomic_load_explicit(&p->batches, memory_order_relaxed);
    st.host_faults = atomic_load_explicit(&p->host_faults, memory_order_relaxed);
    if (p->rpc) {
        struct eleos_rpc_client_stats cs;
        eleos_rpc_client_stats(p->rpc, &cs);
        st.rpc = true;
        st.rpc_calls = cs.calls;
        st.rpc_exitless = cs.exitless;
        st.rpc_fallbacks = cs.fallbacks;
        st.rpc_no_worker = cs.no_worker;
        st.rpc_ocalls = cs.ocalls;
    }
    if (p->set.suvm_on)
        ps_suvm_table_stats(p->table, &st);
    if (p->set.ioq_on) {
        ps_queue_stats(&p->ioq, &st);
        st.ioq_exec = p->set.ioq_exec;
    }
    return eleos_copy_out(arg, &st, sizeof st) ? -EINVAL : 0;
}
