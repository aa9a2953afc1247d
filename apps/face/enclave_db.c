/*
 * enclave_db.c — eleos-face's database of enrolled histograms, enclave side.
 *
 * Entry e (identity e / 2, capture e % 2) is FACE_HIST_BYTES, 58 pages, at e * 58 pages:
 *   native  anonymous host memory;
 *   sgx     one allocation on the enclave heap: beyond the EPC, the emulator pages it
 *           (each miss an asynchronous exit, a page sealed out and one opened in);
 *   eleos   one SUVM allocation: its page cache stays within the EPC, and a request copies
 *           its histogram into the worker's enclave buffer with one bulk call. Bulk access
 *           (eleos_suvm_read, page mode) when the database fits the cache; otherwise direct
 *           access (eleos_suvm_read_direct, 1 KiB sub-pages): a histogram read once per
 *           request gains nothing from a frame, so its sealed sub-pages are opened straight
 *           into the buffer and nothing is evicted or written back.
 * Every mode copies the entry into the caller's buffer, so the comparison code is the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "eleos/suvm.h"
#include "eleos/sys.h"
#include "face_server.h"

#define DIRECT_SUBPAGE 1024u

struct face_db {
    struct eleos_enclave *enc;
    uint64_t entries;
    uint8_t *mem;            /* native and sgx                   */
    size_t mem_bytes;
    struct eleos_suvm *suvm; /* eleos                            */
    uint64_t base;
    bool direct;
    char name[FACE_NAME_MAX];
};

static int suvm_create(struct face_db *db, const struct face_setup *s, size_t bytes) {
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    if (s->cache_bytes)
        cfg.cache_size = s->cache_bytes;
    db->direct = s->access == FACE_ACCESS_DIRECT ||
                 (s->access == FACE_ACCESS_AUTO && bytes > cfg.cache_size);
    if (db->direct)
        cfg.subpage_size = DIRECT_SUBPAGE;
    /* SUVM reserves its address space's first page. */
    cfg.backing_size = bytes + 2 * ELEOS_SUVM_PAGE_SIZE;
    int r = eleos_suvm_create(&cfg, &db->suvm);
    if (r)
        return r;
    r = eleos_suvm_alloc(db->suvm, bytes, &db->base);
    if (r) {
        eleos_suvm_destroy(db->suvm);
        db->suvm = NULL;
        return r;
    }
    snprintf(db->name, sizeof db->name, "suvm, %s access",
             db->direct ? "direct (1 KiB sub-pages)" : "bulk (page cache)");
    return 0;
}

int face_db_create(struct eleos_enclave *enc, const struct face_setup *s, uint32_t n,
                   struct face_db **out) {
    struct face_db *db = enc ? eleos_enclave_calloc(enc, 1, sizeof *db) : calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    db->enc = enc;
    db->entries = 2ull * n;
    size_t bytes = (size_t)db->entries * FACE_HIST_BYTES;
    int r = 0;
    if (s->suvm_on) {
        r = suvm_create(db, s, bytes);
    } else if (enc) {
        db->mem = eleos_enclave_malloc(enc, bytes);
        r = db->mem ? 0 : -ENOMEM;
        snprintf(db->name, sizeof db->name, "enclave heap");
    } else {
        db->mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        r = db->mem == MAP_FAILED ? -ENOMEM : 0;
        db->mem_bytes = bytes;
        snprintf(db->name, sizeof db->name, "host memory");
    }
    if (r) {
        if (enc)
            eleos_enclave_free(enc, db);
        else
            free(db);
        return r;
    }
    *out = db;
    return 0;
}

int face_db_put(struct face_db *db, uint64_t e, const uint32_t *hist) {
    if (e >= db->entries)
        return -EINVAL;
    if (db->suvm)
        return eleos_suvm_write(db->suvm, db->base + e * FACE_HIST_BYTES, hist,
                                FACE_HIST_BYTES);
    memcpy(db->mem + e * FACE_HIST_BYTES, hist, FACE_HIST_BYTES);
    return 0;
}

int face_db_get(struct face_db *db, uint64_t e, uint32_t *hist) {
    if (e >= db->entries)
        return -EINVAL;
    if (!db->suvm) {
        memcpy(hist, db->mem + e * FACE_HIST_BYTES, FACE_HIST_BYTES);
        return 0;
    }
    uint64_t addr = db->base + e * FACE_HIST_BYTES;
    if (db->direct)
        return eleos_suvm_read_direct(db->suvm, addr, hist, FACE_HIST_BYTES);
    return eleos_suvm_read(db->suvm, addr, hist, FACE_HIST_BYTES);
}

void face_db_enrolled(struct face_db *db) {
    if (db->suvm)
        eleos_suvm_stats_reset(db->suvm);
}

const char *face_db_name(const struct face_db *db) {
    return db->name;
}

void face_db_stats(struct face_db *db, struct face_stats *st) {
    if (!db->suvm)
        return;
    struct eleos_suvm_stats ss;
    eleos_suvm_stats(db->suvm, &ss);
    st->suvm = true;
    st->suvm_hits = ss.hits;
    st->suvm_major_faults = ss.major_faults;
    st->suvm_subpage_reads = ss.subpage_reads;
    st->suvm_evictions = ss.evictions;
    st->suvm_integrity_failures = ss.integrity_failures;
}

/* The enclave's own file calls: exitless through the RPC client (eleos mode), else libc's,
 * each an exit in enclave mode (sgx) or a plain call (native). What the host returns is
 * checked either way: a count above the request is an error. */
int face_open_file(bool exitless, const char *path) {
    if (exitless)
        return eleos_sys_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

void face_close_file(bool exitless, int fd) {
    if (exitless)
        (void)eleos_sys_close(fd);
    else
        close(fd);
}

static ssize_t read_some(bool exitless, int fd, uint8_t *buf, size_t n) {
    if (exitless)
        return eleos_sys_read(fd, buf, n);
    ssize_t r = read(fd, buf, n);
    return r < 0 ? -errno : (size_t)r > n ? -EIO : r;
}

int face_read_file(bool exitless, const char *path, uint8_t *buf, size_t max, size_t *len) {
    int fd = face_open_file(exitless, path);
    if (fd < 0)
        return fd;
    size_t n = 0;
    ssize_t r = 1;
    /* One byte past max tells a file that is too large from one that fits exactly. */
    while (n <= max && r > 0) {
        r = read_some(exitless, fd, buf + n, max + 1 - n);
        if (r > 0)
            n += (size_t)r;
    }
    face_close_file(exitless, fd);
    if (r < 0)
        return (int)r;
    if (n > max)
        return -EFBIG;
    *len = n;
    return 0;
}
