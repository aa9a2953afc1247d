/*
 * face_server.h — the interface between eleos-face's two halves.
 *
 *   host_main.c       host side: options, the platform (enclave, RPC pool, evictor), the
 *                     listening socket and its accept loop, the worker threads (each enters
 *                     the enclave once, for its life), the final statistics. Holds no state
 *                     the enclave relies on.
 *   enclave_server.c  enclave side: the ECALLs below, the trusted state (client keys,
 *                     replay windows, threshold, counters), enrolment and the request loop.
 *   enclave_db.c      enclave side: the database of histograms (native: host memory; sgx:
 *                     the enclave heap; eleos: SUVM) and the enrolment's file reads.
 *
 * The host passes the enclave integers (a worker index) and one set-up struct the enclave
 * copies once and validates. Connections reach the workers through an epoll instance the
 * enclave creates at set-up: the host adds each accepted descriptor with its own number as
 * the event's data (EPOLLONESHOT); a worker reads one request, answers it and re-arms the
 * descriptor. The enclave checks every descriptor it is handed to be one.
 */
#ifndef ELEOS_FACE_SERVER_H
#define ELEOS_FACE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "app_io.h"
#include "eleos/enclave.h"
#include "face_proto.h"

/* The same values as enum app_mode (apps/common), which the host parses. */
enum face_mode { FACE_MODE_NATIVE, FACE_MODE_SGX, FACE_MODE_ELEOS };
/* How eleos mode reads a histogram out of SUVM. */
enum face_access {
    FACE_ACCESS_AUTO,   /* bulk when the database fits SUVM's cache, else direct         */
    FACE_ACCESS_BULK,   /* eleos_suvm_read through the page cache (page mode)            */
    FACE_ACCESS_DIRECT, /* eleos_suvm_read_direct, sub-page mode: sealed sub-pages are
                           opened straight into the buffer, no frame taken or evicted    */
};

#define FACE_PATH_MAX       256u
#define FACE_NAME_MAX       64u
#define FACE_IDENTITIES_MAX 100000u
#define FACE_WORKERS_MAX    64u
#define FACE_CACHE_MAX      (1ull << 40)

struct face_setup {
    enum face_mode mode;
    bool rpc_on;             /* exitless system calls (needs rpc_area)                   */
    bool suvm_on;            /* the database in SUVM                                     */
    enum face_access access;
    char db_dir[FACE_PATH_MAX];   /* NUL-terminated                                      */
    char key_file[FACE_PATH_MAX]; /* NUL-terminated                                      */
    uint32_t identities;     /* 0: every identity found in db_dir, else exactly these    */
    uint32_t workers;        /* 1 .. FACE_WORKERS_MAX                                    */
    double threshold;        /* accept below it: finite, > 0                             */
    uint64_t cache_bytes;    /* SUVM's page cache, 0 = SUVM's default                    */
    bool queue_on;           /* the workers' I/O on the batched queue (eleos/ioq.h)      */
    int io_exec;             /* queue_on: its executor (enum eleos_ioq_exec)             */
    int listen_fd;           /* queue_on: the workers accept on it themselves            */
    void *rpc_area;          /* rpc_on: the RPC pool's shared area (untrusted)           */
    size_t rpc_area_size;
    /* written back by the enclave: */
    int out_epfd;            /* the workers' epoll instance                              */
    uint32_t out_identities; /* enrolled                                                 */
    uint64_t out_db_bytes;
    char out_db[FACE_NAME_MAX];
    char out_io[FACE_NAME_MAX];
    char out_error[FACE_PATH_MAX + 64]; /* why set-up failed (the file, the line)        */
};

struct face_stats {
    uint64_t requests;                  /* complete requests read                        */
    uint64_t status[FACE_NSTATUS];      /* answers by status                             */
    uint64_t accepted, rejected;        /* of FACE_OK: distance below / not below        */
    uint64_t host_faults;               /* events that named no descriptor               */
    uint64_t conns_closed;
    bool rpc, suvm;
    uint64_t rpc_calls, rpc_exitless, rpc_fallbacks, rpc_ocalls;
    uint64_t suvm_hits, suvm_major_faults, suvm_subpage_reads, suvm_evictions;
    uint64_t suvm_integrity_failures;
    bool ioq;                           /* the workers used the I/O queue:               */
    uint64_t ioq_ops, ioq_exits, ioq_host_faults, ioq_timeouts;
    uint64_t ioq_final_exec[8];         /* workers by their executor at the end          */
};

/* ECALL bodies (eleos_enclave_fn). Native mode calls them directly. */
long face_enclave_setup(void *setup);  /* struct face_setup *: 0 or -errno              */
long face_enclave_work(void *index);   /* (uintptr_t) worker index: serves until stopped */
long face_enclave_stop(void *unused);  /* the workers return within one poll interval   */
long face_enclave_stats(void *stats);  /* struct face_stats *: 0 or -errno              */

/* --- enclave side internals (enclave_server.c <-> enclave_db.c) -------------------------- */

struct face_db;

/* Creates the database for n identities (2 histograms each) in the set-up's memory. */
int face_db_create(struct eleos_enclave *enc, const struct face_setup *s, uint32_t n,
                   struct face_db **out);
/* Stores histogram (FACE_HIST_BYTES) as entry e. 0 or -errno. */
int face_db_put(struct face_db *db, uint64_t e, const uint32_t *hist);
/* Copies entry e into hist (FACE_HIST_BYTES of enclave memory). 0 or -errno (-EBADMSG: the
 * sealed copy was tampered with). */
int face_db_get(struct face_db *db, uint64_t e, uint32_t *hist);
/* After enrolment: counters start from here (faults per request count requests only). */
void face_db_enrolled(struct face_db *db);
const char *face_db_name(const struct face_db *db);
void face_db_stats(struct face_db *db, struct face_stats *st);

/* A worker's own state, enclave memory (enclave_server.c). */
struct face_enclave;
struct face_worker {
    struct face_enclave *p;
    struct app_io_ctx ctx;
    void *gcm;
    uint8_t *frame;             /* FACE_REQ_BYTES: the request as received    */
    struct face_probe *probe;   /* its plaintext                              */
    uint32_t *stored;           /* the enrolled histogram                     */
};

/* A request's header has arrived at the start of w->frame: copies it to *h (read once) and
 * checks it. FACE_OK if the rest of the frame may follow, else the refusal. */
enum face_status face_frame_header(struct face_worker *w, struct face_req *h);
/* Decides the request whose whole frame is in w->frame (st FACE_OK), or refuses it with st
 * (FACE_E_FRAME, FACE_E_TRUNCATED), counts it and builds the answer in ans: its length, 0
 * if none could be built. *keep: the stream is still in step (else close it after). */
size_t face_reply(struct face_worker *w, const struct face_req *h, enum face_status st,
                  uint8_t ans[FACE_ANS_MAX], bool *keep);

/* Closes fd through the worker's one-call path (at teardown). */
void face_worker_close(struct face_worker *w, int fd);

/* --- enclave side: the request loop on the I/O queue (enclave_queue.c) ---------------- */

struct face_queue_totals {
    _Atomic uint64_t ops, exits, host_faults, timeouts, closed, final_exec[8];
};
/* Serves connections accepted on lfd with one queue of the given executor until *stop:
 * 0 or -errno (the queue could not be created). */
long face_queue_serve(struct face_worker *w, int lfd, int exec, const _Atomic bool *stop,
                      struct face_queue_totals *tot);

/* Reads the file at path (at most max bytes) into buf (max + 1 bytes: one more tells a file
 * too large) through the enclave's system-call path (exitless: the RPC client, else libc):
 * *len set. 0, -errno, or -EFBIG. */
int face_read_file(bool exitless, const char *path, uint8_t *buf, size_t max, size_t *len);
/* The same path's open (a descriptor or -errno) and close. */
int face_open_file(bool exitless, const char *path);
void face_close_file(bool exitless, int fd);

#endif
