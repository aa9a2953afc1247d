/*
 * kvs_watch.h — memcached's `watch` (its logger, for the text protocol's watchers).
 *
 * A connection that sends `watch [fetchers] [mutations] [evictions] [connevents] ...` gets
 * OK and from then on only log lines, in memcached 1.6.18's logger.c format:
 *   ts=SEC.USEC gid=N type=item_get key=K status=found clsid=C cfd=FD size=S
 *   ts=SEC.USEC gid=N type=item_store key=K status=stored cmd=set ttl=T clsid=C cfd=FD size=S
 * Any worker's commands log into every matching watcher's buffer (under one lock); the
 * worker owning a watcher connection moves that text to its output (kvs_watch_take) on
 * each pass of its loop. A buffer over watcher_logbuf_size drops lines and reports
 * "skipped=N" as memcached does. Pure code: the clock comes through a hook.
 */
#ifndef ELEOS_KVS_WATCH_H
#define ELEOS_KVS_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvs_common.h"

/* memcached's limit on concurrent watchers. */
#define KVS_WATCH_MAX 8
enum {
    KVS_LOG_FETCHERS = 1u << 0,
    KVS_LOG_MUTATIONS = 1u << 1,
    KVS_LOG_EVICTIONS = 1u << 2,
    KVS_LOG_CONNEVENTS = 1u << 3,
    KVS_LOG_OTHER = 1u << 4,      /* rawcmds, sysevents, proxy*: accepted, never emitted */
};

struct kvs_watcher {
    bool used;
    uint8_t flags;
    uint64_t skipped;
    struct kvs_buf pending;
};

struct kvs_watch {
    struct kvs_lock lock;
    _Atomic unsigned mask;            /* OR of the watchers' flags: 0 = nobody listens    */
    _Atomic unsigned count;
    uint64_t gid;                     /* memcached's global log id (under lock)            */
    size_t buf_max;                   /* watcher_logbuf_size                               */
    void (*clock)(int64_t *sec, int32_t *usec);
    struct kvs_watcher w[KVS_WATCH_MAX];
};

void kvs_watch_init(struct kvs_watch *wt, const struct kvs_alloc *a, _Atomic uint32_t *wake,
                    size_t buf_max, void (*clock)(int64_t *, int32_t *));
void kvs_watch_fini(struct kvs_watch *wt);
/* A watcher slot, or -1 when KVS_WATCH_MAX are in use. */
int kvs_watch_add(struct kvs_watch *wt, uint8_t flags);
void kvs_watch_remove(struct kvs_watch *wt, int slot);
/* Appends what slot has pending to out. 0, or -ENOMEM. */
int kvs_watch_take(struct kvs_watch *wt, int slot, struct kvs_buf *out);
bool kvs_watch_pending(struct kvs_watch *wt, int slot);

static inline bool kvs_watch_on(const struct kvs_watch *wt, unsigned type) {
    return wt && (atomic_load_explicit(&wt->mask, memory_order_relaxed) & type);
}
void kvs_watch_item_get(struct kvs_watch *wt, const char *key, size_t nkey, bool found,
                        unsigned clsid, int cfd, size_t size);
void kvs_watch_item_store(struct kvs_watch *wt, const char *key, size_t nkey,
                          const char *status, const char *cmd, uint32_t ttl, unsigned clsid,
                          int cfd, size_t size);

#endif
