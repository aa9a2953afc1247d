/*
 * kvs_watch.c — memcached's watchers and their log lines (see kvs_watch.h). Pure code.
 */
#include "kvs_watch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* memcached's KEY_MAX_URI_ENCODED_LENGTH: 250 bytes * 3 + 1. */
#define KEY_URI_MAX (250 * 3 + 1)

void kvs_watch_init(struct kvs_watch *wt, const struct kvs_alloc *a, _Atomic uint32_t *wake,
                    size_t buf_max, void (*clock)(int64_t *, int32_t *)) {
    memset(wt, 0, sizeof *wt);
    kvs_lock_init(&wt->lock, wake);
    wt->buf_max = buf_max;
    wt->clock = clock;
    for (int i = 0; i < KVS_WATCH_MAX; i++)
        kvs_buf_init(&wt->w[i].pending, a);
}

void kvs_watch_fini(struct kvs_watch *wt) {
    for (int i = 0; i < KVS_WATCH_MAX; i++)
        kvs_buf_fini(&wt->w[i].pending);
}

static void mask_update_locked(struct kvs_watch *wt) {
    unsigned m = 0, n = 0;
    for (int i = 0; i < KVS_WATCH_MAX; i++)
        if (wt->w[i].used) {
            m |= wt->w[i].flags;
            n++;
        }
    atomic_store_explicit(&wt->mask, m, memory_order_relaxed);
    atomic_store_explicit(&wt->count, n, memory_order_relaxed);
}

int kvs_watch_add(struct kvs_watch *wt, uint8_t flags) {
    int slot = -1;
    kvs_lock_acquire(&wt->lock);
    for (int i = 0; i < KVS_WATCH_MAX && slot < 0; i++)
        if (!wt->w[i].used) {
            wt->w[i].used = true;
            wt->w[i].flags = flags;
            wt->w[i].skipped = 0;
            wt->w[i].pending.len = 0;
            slot = i;
        }
    mask_update_locked(wt);
    kvs_lock_release(&wt->lock);
    return slot;
}

void kvs_watch_remove(struct kvs_watch *wt, int slot) {
    if (slot < 0 || slot >= KVS_WATCH_MAX)
        return;
    kvs_lock_acquire(&wt->lock);
    wt->w[slot].used = false;
    wt->w[slot].pending.len = 0;
    kvs_buf_shrink(&wt->w[slot].pending, 0);
    mask_update_locked(wt);
    kvs_lock_release(&wt->lock);
}

bool kvs_watch_pending(struct kvs_watch *wt, int slot) {
    kvs_lock_acquire(&wt->lock);
    bool p = wt->w[slot].pending.len || wt->w[slot].skipped;
    kvs_lock_release(&wt->lock);
    return p;
}

int kvs_watch_take(struct kvs_watch *wt, int slot, struct kvs_buf *out) {
    int r = 0;
    kvs_lock_acquire(&wt->lock);
    struct kvs_watcher *w = &wt->w[slot];
    if (w->skipped) /* memcached reports dropped lines before the next ones */
        r = kvs_buf_printf(out, "skipped=%llu\n", (unsigned long long)w->skipped);
    if (!r && w->pending.len)
        r = kvs_buf_append(out, w->pending.data, w->pending.len);
    if (!r) {
        w->skipped = 0;
        w->pending.len = 0;
        kvs_buf_shrink(&w->pending, 4096);
    }
    kvs_lock_release(&wt->lock);
    return r;
}

/* memcached's uriencode: unreserved characters as they are, the rest %XX. */
static void uriencode(const char *src, size_t n, char *dst) {
    static const char hex[] = "0123456789ABCDEF";
    size_t d = 0;
    for (size_t i = 0; i < n && i < 250; i++) {
        unsigned char ch = (unsigned char)src[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            dst[d++] = (char)ch;
        } else {
            dst[d++] = '%';
            dst[d++] = hex[ch >> 4];
            dst[d++] = hex[ch & 15];
        }
    }
    dst[d] = '\0';
}

/* One line to every watcher of type: "ts=... gid=... " + the formatted rest. */
static void watch_emit(struct kvs_watch *wt, unsigned type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void watch_emit(struct kvs_watch *wt, unsigned type, const char *fmt, ...) {
    char rest[KEY_URI_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    int64_t sec = 0;
    int32_t usec = 0;
    if (wt->clock)
        wt->clock(&sec, &usec);
    kvs_lock_acquire(&wt->lock);
    unsigned long long gid = ++wt->gid;
    for (int i = 0; i < KVS_WATCH_MAX; i++) {
        struct kvs_watcher *w = &wt->w[i];
        if (!w->used || !(w->flags & type))
            continue;
        if (w->pending.len >= wt->buf_max ||
            kvs_buf_printf(&w->pending, "ts=%lld.%d gid=%llu %s", (long long)sec, (int)usec,
                           gid, rest))
            w->skipped++;
    }
    kvs_lock_release(&wt->lock);
}

void kvs_watch_item_get(struct kvs_watch *wt, const char *key, size_t nkey, bool found,
                        unsigned clsid, int cfd, size_t size) {
    char k[KEY_URI_MAX];
    uriencode(key, nkey, k);
    watch_emit(wt, KVS_LOG_FETCHERS, "type=item_get key=%s status=%s clsid=%u cfd=%d size=%zu\n",
               k, found ? "found" : "not_found", found ? clsid : 0u, cfd, found ? size : 0);
}

void kvs_watch_item_store(struct kvs_watch *wt, const char *key, size_t nkey,
                          const char *status, const char *cmd, uint32_t ttl, unsigned clsid,
                          int cfd, size_t size) {
    char k[KEY_URI_MAX];
    uriencode(key, nkey, k);
    watch_emit(wt, KVS_LOG_MUTATIONS,
               "type=item_store key=%s status=%s cmd=%s ttl=%u clsid=%u cfd=%d size=%zu\n", k,
               status, cmd, ttl, clsid, cfd, size);
}
