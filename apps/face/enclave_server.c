/*
 * enclave_server.c — eleos-face inside the enclave: the ECALLs of face_server.h, the trusted
 * state, enrolment and the request loop.
 *
 * Where state lives: the set-up ECALL allocates everything the workers rely on — the client
 * keys, each client's replay window and its lock, the threshold, the database handle, the
 * I/O ops, the counters — on the enclave heap and keeps the one pointer to it in a global of
 * this file (the enclave image's data). The key file and the enrolment images are read by
 * the enclave itself into enclave memory and parsed there: the host only names the paths.
 *
 * A request is read whole into the worker's enclave buffer before anything is decrypted
 * (design rule 4: crypto never runs on host-writable bytes), its tag is verified before its
 * sequence number enters the replay window, and its claimed identity is checked against the
 * enrolled count before the database is read. Each worker owns its buffers and its cipher
 * context, so the request path takes one lock: the client's window, for a few instructions.
 *
 * System calls: on the I/O queue (eleos mode's default) the workers run enclave_queue.c's
 * loop; otherwise their calls (epoll_wait, recv, send, epoll_ctl) go through app_io.h:
 * exitless RPC (--rpc sync), an exit each (sgx mode), plain calls natively.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <openssl/crypto.h>

#include "app_io.h"
#include "eleos/ioq.h"
#include "eleos/rpc.h"
#include "eleos/sys.h"
#include "face_server.h"

/* An image file: a 512 x 512 PGM and a header with room for comments. */
#define PGM_FILE_MAX ((size_t)FACE_SIDE * FACE_SIDE + 4096u)
/* How long a worker waits for an event before it looks at the stop flag. */
#define POLL_MS 100

struct face_enclave {
    struct face_setup set;          /* the validated copy of the host's values        */
    struct eleos_enclave *enc;      /* NULL in native mode                            */
    const struct app_io_ops *io;
    struct eleos_rpc_client *rpc;
    struct face_db *db;
    struct face_keys *keys;
    struct face_window *windows;    /* FACE_CLIENTS_MAX                               */
    atomic_flag *locks;             /* FACE_CLIENTS_MAX: each window's                 */
    uint32_t identities;
    int epfd;
    atomic_bool stop;
    _Atomic uint64_t requests, status[FACE_NSTATUS], accepted, rejected, host_faults, closed;
    struct face_queue_totals qtot;  /* the queue path's workers                        */
};

static struct face_enclave *fs;

static void *heap_calloc(struct eleos_enclave *enc, size_t n, size_t size) {
    return enc ? eleos_enclave_calloc(enc, n, size) : calloc(n, size);
}

static void heap_free(struct eleos_enclave *enc, void *p) {
    if (enc)
        eleos_enclave_free(enc, p);
    else
        free(p);
}

static void count(_Atomic uint64_t *c) {
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* --- set-up ------------------------------------------------------------------------------- */

static bool terminated(const char *s, size_t size) {
    return memchr(s, '\0', size) != NULL;
}

static int setup_check(struct eleos_enclave *enc, const struct face_setup *s) {
    /* The mode is the host's word: it must agree with whether we really are in an enclave. */
    if ((unsigned)s->mode > FACE_MODE_ELEOS || (s->mode == FACE_MODE_NATIVE) != !enc)
        return -EINVAL;
    if ((s->rpc_on || s->suvm_on || s->queue_on) && !enc)
        return -EINVAL;
    /* The queue path accepts on the host's listening socket: at least a descriptor. */
    if (s->queue_on && (s->rpc_on || s->io_exec < 0 || s->io_exec >= (int)ELEOS_IOQ_NEXEC ||
                        s->listen_fd < 0 || s->listen_fd >= (1 << 30)))
        return -EINVAL;
    if (s->rpc_on && (s->rpc_area_size == 0 || !s->rpc_area ||
                      !eleos_enclave_outside(enc, s->rpc_area, s->rpc_area_size)))
        return -EINVAL;
    if (!terminated(s->db_dir, sizeof s->db_dir) || !s->db_dir[0] ||
        !terminated(s->key_file, sizeof s->key_file) || !s->key_file[0])
        return -EINVAL;
    if (s->identities > FACE_IDENTITIES_MAX || s->workers == 0 ||
        s->workers > FACE_WORKERS_MAX || !isfinite(s->threshold) || !(s->threshold > 0) ||
        (unsigned)s->access > FACE_ACCESS_DIRECT || s->cache_bytes > FACE_CACHE_MAX)
        return -EINVAL;
    return 0;
}

__attribute__((format(printf, 2, 3))) static void set_error(struct face_enclave *p,
                                                           const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->set.out_error, sizeof p->set.out_error, fmt, ap);
    va_end(ap);
}

static int load_keys(struct face_enclave *p) {
    uint8_t *buf = heap_calloc(p->enc, 1, FACE_KEYFILE_MAX + 1);
    p->keys = heap_calloc(p->enc, 1, sizeof *p->keys);
    if (!buf || !p->keys) {
        heap_free(p->enc, buf);
        return -ENOMEM;
    }
    size_t len = 0;
    int r = face_read_file(p->rpc != NULL, p->set.key_file, buf, FACE_KEYFILE_MAX, &len);
    unsigned line = 0;
    if (r) {
        set_error(p, "key file %s: %s", p->set.key_file, strerror(-r));
    } else if (face_keys_parse((const char *)buf, len, p->keys, &line)) {
        r = -EINVAL;
        set_error(p, "key file %s: %s %u", p->set.key_file,
                  line ? "malformed line" : "no key in it", line);
    }
    OPENSSL_cleanse(buf, FACE_KEYFILE_MAX + 1); /* key material leaves no copy behind */
    heap_free(p->enc, buf);
    return r;
}

static void image_path(const struct face_enclave *p, uint32_t id, char capture, char *out) {
    snprintf(out, FACE_PATH_MAX + 32, "%s/%05u_%c.pgm", p->set.db_dir, id, capture);
}

/* Identities present: the set-up's count, or the run of consecutive ones found. */
static int count_identities(struct face_enclave *p, uint32_t *n) {
    char path[FACE_PATH_MAX + 32];
    if (p->set.identities) {
        *n = p->set.identities;
        return 0;
    }
    uint32_t i = 0;
    for (; i < FACE_IDENTITIES_MAX; i++) {
        image_path(p, i, 'a', path);
        int fd = face_open_file(p->rpc != NULL, path);
        if (fd < 0)
            break;
        face_close_file(p->rpc != NULL, fd);
    }
    *n = i;
    if (i == 0) {
        set_error(p, "no images in %s (expected 00000_a.pgm ...)", p->set.db_dir);
        return -ENOENT;
    }
    return 0;
}

/* Reads, checks and enrols one capture: 0 or -errno (with out_error set). */
static int enrol_one(struct face_enclave *p, uint32_t id, unsigned capture, uint8_t *file,
                     uint32_t *hist) {
    char path[FACE_PATH_MAX + 32];
    image_path(p, id, (char)('a' + capture), path);
    size_t len;
    int r = face_read_file(p->rpc != NULL, path, file, PGM_FILE_MAX, &len);
    uint32_t w, h;
    const uint8_t *pix;
    if (r) {
        set_error(p, "%s: %s", path, strerror(-r));
        return r;
    }
    if (face_pgm_parse(file, len, &w, &h, &pix) || w != FACE_SIDE || h != FACE_SIDE) {
        set_error(p, "%s: not a %u x %u 8-bit PGM", path, FACE_SIDE, FACE_SIDE);
        return -EINVAL;
    }
    (void)face_lbp_hist(pix, w, h, hist);
    r = face_db_put(p->db, 2ull * id + capture, hist);
    if (r)
        set_error(p, "storing %s: %s", path, strerror(-r));
    return r;
}

static int enrol(struct face_enclave *p) {
    uint8_t *file = heap_calloc(p->enc, 1, PGM_FILE_MAX + 1);
    uint32_t *hist = heap_calloc(p->enc, 1, FACE_HIST_BYTES);
    int r = file && hist ? 0 : -ENOMEM;
    for (uint32_t i = 0; !r && i < p->identities; i++)
        for (unsigned c = 0; !r && c < 2; c++)
            r = enrol_one(p, i, c, file, hist);
    heap_free(p->enc, file);
    heap_free(p->enc, hist);
    if (!r)
        face_db_enrolled(p->db);
    return r;
}

static int server_create(struct face_enclave *p) {
    p->io = app_io_for(p->enc != NULL, p->set.rpc_on, true);
    if (p->set.rpc_on) {
        int r = eleos_rpc_client_create(p->enc, p->set.rpc_area, p->set.rpc_area_size,
                                        &p->rpc);
        if (r)
            return r;
        eleos_sys_init(p->rpc);
    }
    p->windows = heap_calloc(p->enc, FACE_CLIENTS_MAX, sizeof *p->windows);
    p->locks = heap_calloc(p->enc, FACE_CLIENTS_MAX, sizeof *p->locks);
    if (!p->windows || !p->locks)
        return -ENOMEM;
    for (unsigned i = 0; i < FACE_CLIENTS_MAX; i++)
        atomic_flag_clear(&p->locks[i]);
    int r = load_keys(p);
    if (!r)
        r = count_identities(p, &p->identities);
    if (!r && (r = face_db_create(p->enc, &p->set, p->identities, &p->db)))
        set_error(p, "database of %u identities: %s", p->identities, strerror(-r));
    if (!r)
        r = enrol(p);
    if (r)
        return r;
    if (p->set.queue_on) {
        p->epfd = -1; /* each worker accepts and waits on its own queue */
        return 0;
    }
    struct app_io_ctx ctx = {NULL, 0}; /* epoll_create carries no buffer */
    p->epfd = p->io->epoll_create(&ctx);
    return p->epfd < 0 ? p->epfd : 0;
}

/* Runs once, before the workers. A failure leaves the enclave's memory to die with it: the
 * server exits. */
long face_enclave_setup(void *arg) {
    struct eleos_enclave *enc = eleos_enclave_current();
    if (fs)
        return -EBUSY;
    struct face_enclave *p = heap_calloc(enc, 1, sizeof *p);
    if (!p)
        return -ENOMEM;
    if (!arg || eleos_copy_in(&p->set, arg, sizeof p->set)) { /* the one read */
        heap_free(enc, p);
        return -EINVAL;
    }
    p->enc = enc;
    p->set.out_error[0] = '\0';
    int r = setup_check(enc, &p->set);
    if (!r)
        r = server_create(p);
    struct face_setup *out = arg;
    if (r) {
        /* The message is all the host gets; the enclave's memory dies with the server. */
        if (eleos_copy_out(out->out_error, p->set.out_error, sizeof out->out_error))
            return -EINVAL;
        return r;
    }
    if (p->rpc)
        eleos_rpc_thread_detach(p->rpc);
    struct face_setup res = p->set;
    res.out_epfd = p->epfd;
    res.out_identities = p->identities;
    res.out_db_bytes = 2ull * p->identities * FACE_HIST_BYTES;
    snprintf(res.out_db, sizeof res.out_db, "%s", face_db_name(p->db));
    if (p->set.queue_on)
        snprintf(res.out_io, sizeof res.out_io, "i/o queue, %s executor",
                 eleos_ioq_exec_name((enum eleos_ioq_exec)p->set.io_exec));
    else
        snprintf(res.out_io, sizeof res.out_io, "%s", p->io->name);
    fs = p;
    return eleos_copy_out(arg, &res, sizeof res) ? -EINVAL : 0;
}

/* --- the request loop ---------------------------------------------------------------------- */

/* Reads len bytes: 0, or -1 if the connection ended (*got bytes had arrived), stalled past
 * its receive timeout or failed. */
static int recv_all(struct face_worker *w, int fd, uint8_t *buf, size_t len, size_t *got) {
    *got = 0;
    while (*got < len) {
        ssize_t r = w->p->io->recv(&w->ctx, fd, buf + *got, len - *got);
        if (r == -EINTR)
            continue;
        /* More than asked is a lying host: the wrappers refuse it, this is belt and braces. */
        if (r <= 0 || (size_t)r > len - *got)
            return -1;
        *got += (size_t)r;
    }
    return 0;
}

static int send_all(struct face_worker *w, int fd, const uint8_t *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t r = w->p->io->send(&w->ctx, fd, buf + done, len - done);
        if (r == -EINTR)
            continue;
        if (r <= 0 || (size_t)r > len - done)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

/* Accepts seq into the client's window if it is still fresh: true on success. */
static bool window_take(struct face_enclave *p, uint32_t client, uint64_t seq, bool commit) {
    atomic_flag *l = &p->locks[client];
    while (atomic_flag_test_and_set_explicit(l, memory_order_acquire))
        __builtin_ia32_pause();
    bool ok = face_window_check(&p->windows[client], seq);
    if (ok && commit)
        face_window_commit(&p->windows[client], seq);
    atomic_flag_clear_explicit(l, memory_order_release);
    return ok;
}

/* Decides an authentic-looking request: the status, and *res for a sealed answer. */
static enum face_status decide(struct face_worker *w, const struct face_req *h,
                               struct face_result *res) {
    struct face_enclave *p = w->p;
    if (h->client >= FACE_CLIENTS_MAX || !p->keys->present[h->client])
        return FACE_E_CLIENT;
    /* A cheap refusal of stale seqs first; the authoritative one follows the tag. */
    if (!window_take(p, h->client, h->seq, false))
        return FACE_E_REPLAY;
    const uint8_t *ct = w->frame + sizeof *h;
    if (face_open(w->gcm, p->keys->key[h->client], 0, h->seq, h, sizeof *h, ct, w->probe,
                  FACE_PROBE_BYTES, ct + FACE_PROBE_BYTES))
        return FACE_E_AUTH;
    if (!window_take(p, h->client, h->seq, true))
        return FACE_E_REPLAY;
    uint32_t id = w->probe->identity;
    *res = (struct face_result){.identity = id};
    if (id >= p->identities)
        return FACE_E_IDENTITY;
    if (face_db_get(p->db, 2ull * id + face_capture_for(h->seq), w->stored))
        return FACE_E_INTERNAL;
    res->distance = face_chi2(w->probe->hist, w->stored, FACE_HIST_WORDS);
    res->accept = res->distance < p->set.threshold;
    count(res->accept ? &p->accepted : &p->rejected);
    return FACE_OK;
}

enum face_status face_frame_header(struct face_worker *w, struct face_req *h) {
    memcpy(h, w->frame, sizeof *h); /* read once, from enclave memory */
    return face_req_check(h);
}

size_t face_reply(struct face_worker *w, const struct face_req *h, enum face_status st,
                  uint8_t ans[FACE_ANS_MAX], bool *keep) {
    struct face_enclave *p = w->p;
    struct face_result res = {0};
    if (st == FACE_OK) {
        count(&p->requests);
        st = decide(w, h, &res);
    }
    count(&p->status[st]);
    bool sealed = st == FACE_OK || st == FACE_E_IDENTITY;
    size_t n = face_ans_build(w->gcm, sealed ? p->keys->key[h->client] : NULL, h->client,
                              st == FACE_E_FRAME || st == FACE_E_TRUNCATED ? 0 : h->seq, st,
                              sealed ? &res : NULL, ans);
    OPENSSL_cleanse(w->probe, sizeof *w->probe);
    /* After a bad frame or a cut request the stream cannot be resynchronised. */
    *keep = n && st != FACE_E_FRAME && st != FACE_E_TRUNCATED;
    return n;
}

/* Serves one request from fd with one call at a time (RPC or exits): true to keep the
 * connection, false to close it. */
static bool serve_one(struct face_worker *w, int fd) {
    struct face_req h = {0};
    enum face_status st;
    size_t got;
    int r = recv_all(w, fd, w->frame, sizeof h, &got);
    if (r && got == 0)
        return false; /* the client left between requests */
    st = r ? FACE_E_TRUNCATED : face_frame_header(w, &h);
    if (st == FACE_OK &&
        recv_all(w, fd, w->frame + sizeof h, FACE_REQ_BYTES - sizeof h, &got))
        st = FACE_E_TRUNCATED;
    uint8_t ans[FACE_ANS_MAX];
    bool keep;
    size_t n = face_reply(w, &h, st, ans, &keep);
    return n && send_all(w, fd, ans, n) == 0 && keep;
}

static int worker_init(struct face_worker *w, struct face_enclave *p) {
    *w = (struct face_worker){.p = p};
    w->frame = heap_calloc(p->enc, 1, FACE_REQ_BYTES);
    w->probe = heap_calloc(p->enc, 1, sizeof *w->probe);
    w->stored = heap_calloc(p->enc, 1, FACE_HIST_BYTES);
    w->gcm = face_gcm_new();
    if (!w->frame || !w->probe || !w->stored || !w->gcm)
        return -ENOMEM;
    return app_io_ctx_init(&w->ctx, p->io);
}

void face_worker_close(struct face_worker *w, int fd) {
    (void)w->p->io->close(&w->ctx, fd);
}

static void worker_fini(struct face_worker *w) {
    app_io_ctx_fini(&w->ctx);
    face_gcm_free(w->gcm);
    heap_free(w->p->enc, w->frame);
    heap_free(w->p->enc, w->probe);
    heap_free(w->p->enc, w->stored);
    if (w->p->rpc)
        eleos_rpc_thread_detach(w->p->rpc);
}

/* A worker, for its whole life, on the calling thread: takes one ready connection at a
 * time from the epoll instance (one-shot, so no two workers read one connection), serves
 * one request and re-arms it. */
long face_enclave_work(void *arg) {
    struct face_enclave *p = fs;
    if (!p || (uintptr_t)arg >= p->set.workers)
        return -EINVAL;
    struct face_worker w;
    long err = worker_init(&w, p);
    if (!err && p->set.queue_on) {
        err = face_queue_serve(&w, p->set.listen_fd, p->set.io_exec, &p->stop, &p->qtot);
        worker_fini(&w);
        return err;
    }
    while (!err && !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        struct epoll_event ev;
        int n = p->io->epoll_wait(&w.ctx, p->epfd, &ev, 1, POLL_MS);
        if (n == -EBADF || n == -EINVAL)
            err = n; /* the instance is gone: nothing more will come */
        if (n != 1)
            continue;
        /* The event's data is the host's word: it must at least be a descriptor. */
        if (ev.data.u64 > INT_MAX) {
            count(&p->host_faults);
            continue;
        }
        int fd = (int)ev.data.u64;
        if (serve_one(&w, fd) &&
            p->io->epoll_ctl(&w.ctx, p->epfd, EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLONESHOT,
                             (uint64_t)fd) == 0)
            continue;
        (void)p->io->close(&w.ctx, fd);
        count(&p->closed);
    }
    worker_fini(&w);
    return err;
}

long face_enclave_stop(void *arg) {
    (void)arg;
    if (!fs)
        return -EINVAL;
    atomic_store_explicit(&fs->stop, true, memory_order_relaxed);
    return 0;
}

/* --- statistics ------------------------------------------------------------------------- */

long face_enclave_stats(void *arg) {
    struct face_enclave *p = fs;
    if (!p || !arg)
        return -EINVAL;
    struct face_stats st;
    memset(&st, 0, sizeof st);
    st.requests = atomic_load_explicit(&p->requests, memory_order_relaxed);
    for (unsigned i = 0; i < FACE_NSTATUS; i++)
        st.status[i] = atomic_load_explicit(&p->status[i], memory_order_relaxed);
    st.accepted = atomic_load_explicit(&p->accepted, memory_order_relaxed);
    st.rejected = atomic_load_explicit(&p->rejected, memory_order_relaxed);
    st.host_faults = atomic_load_explicit(&p->host_faults, memory_order_relaxed);
    st.conns_closed = atomic_load_explicit(&p->closed, memory_order_relaxed);
    if (p->rpc) {
        struct eleos_rpc_client_stats cs;
        eleos_rpc_client_stats(p->rpc, &cs);
        st.rpc = true;
        st.rpc_calls = cs.calls;
        st.rpc_exitless = cs.exitless;
        st.rpc_fallbacks = cs.fallbacks;
        st.rpc_ocalls = cs.ocalls;
    }
    if (p->set.queue_on) {
        struct face_queue_totals *t = &p->qtot;
        st.ioq = true;
        st.ioq_ops = atomic_load_explicit(&t->ops, memory_order_relaxed);
        st.ioq_exits = atomic_load_explicit(&t->exits, memory_order_relaxed);
        st.ioq_host_faults = atomic_load_explicit(&t->host_faults, memory_order_relaxed);
        st.ioq_timeouts = atomic_load_explicit(&t->timeouts, memory_order_relaxed);
        st.conns_closed += atomic_load_explicit(&t->closed, memory_order_relaxed);
        for (unsigned e = 0; e < 8; e++)
            st.ioq_final_exec[e] = atomic_load_explicit(&t->final_exec[e], memory_order_relaxed);
    }
    face_db_stats(p->db, &st);
    return eleos_copy_out(arg, &st, sizeof st) ? -EINVAL : 0;
}
