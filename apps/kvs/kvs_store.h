/*
 * kvs_store.h — eleos-kvs item store: hash table, slab classes, LRU, expiry, CAS, flush.
 *
 * Trusted metadata (hash table, item headers with the key, slab bookkeeping) lives on the
 * struct kvs_alloc heap given at creation: the enclave heap in sgx/eleos modes. Item values
 * live in slab pages obtained from a memory backend (struct kvs_mem_ops): host memory
 * (native), the enclave heap (sgx: suffers emulated EPC paging) or SUVM (eleos). A value is
 * only ever reached through the backend's read/write, so SUVM can page it.
 *
 * Thread safety: every kvs_store_* function is MT-safe (one store lock); an item returned by
 * kvs_store_item_alloc is owned by the caller until kvs_store_item_link/kvs_store_item_free.
 */
#ifndef ELEOS_KVS_STORE_H
#define ELEOS_KVS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvs_common.h"

/* memcached's limits and constants (1.6.18), kept so replies and limits match it. */
#define KVS_KEY_MAX 250u
/* memcached's sizeof(item) on 64-bit: part of its item-size formula (see kvs_store_item_total). */
#define KVS_ITEM_HEADER_SIZE 48u
#define KVS_CAS_SIZE 8u
#define KVS_ITEM_SIZE_MAX_DEFAULT (1u << 20)
#define KVS_ITEM_SIZE_MIN (1u << 10) /* memcached refuses -I below 1 KiB */
#define KVS_SLAB_PAGE_SIZE (1u << 20)
#define KVS_SLAB_FACTOR 1.25
#define KVS_SLAB_CHUNK_MIN 96u       /* sizeof(item) + memcached's default -n 48 */
#define KVS_SLAB_ALIGN 8u
#define KVS_MAX_SLAB_CLASSES 64
/* Relative expiry up to 30 days; larger values are absolute Unix times (memcached rule). */
#define KVS_REALTIME_MAXDELTA (60 * 60 * 24 * 30)
/* memcached starts its relative clock this far in the past (ITEM_UPDATE_INTERVAL + 2). */
#define KVS_CLOCK_ORIGIN_SLACK 62

/* A memory backend for item values. addr is the backend's address of a slab page (never 0);
 * read/write take a byte offset from such an address. Functions return 0 or -errno. */
struct kvs_mem_ops {
    const char *name;
    int (*page_alloc)(void *ctx, size_t size, uint64_t *addr);
    void (*page_free)(void *ctx, uint64_t addr, size_t size);
    int (*read)(void *ctx, uint64_t addr, void *buf, size_t size);
    int (*write)(void *ctx, uint64_t addr, const void *buf, size_t size);
};

/* Host memory through a struct kvs_alloc (native: libc; sgx: the enclave heap). ctx is the
 * struct kvs_alloc *. */
extern const struct kvs_mem_ops kvs_mem_heap_ops;

struct kvs_store_config {
    size_t mem_limit;             /* -m: bytes of slab pages (memcached's limit_maxbytes)  */
    size_t item_size_max;         /* -I                                                     */
    double factor;                /* slab growth factor                                    */
    unsigned hashpower;           /* initial log2 of the bucket count                      */
    bool evictions;               /* evict LRU items when full (memcached -M turns off)     */
    bool no_cas;                  /* memcached -C: CAS uniques are 0, flush_all by time     */
    const struct kvs_alloc *meta; /* trusted heap for metadata                             */
    const struct kvs_mem_ops *mem;/* value backend                                         */
    void *mem_ctx;
    int64_t now;                  /* Unix time at creation (the clock origin)               */
    _Atomic uint32_t *lock_wake;  /* the store lock's wake word: untrusted memory in enclave
                                   * modes (see struct kvs_lock); NULL = inside the store   */
};

void kvs_store_config_default(struct kvs_store_config *cfg);

struct kvs_store;
struct kvs_item;

ELEOS_MUST_CHECK int kvs_store_create(const struct kvs_store_config *cfg, struct kvs_store **out);
/* Frees every item, page and the store. No other thread may use it. */
void kvs_store_destroy(struct kvs_store *s);

/* The clock: sets the current Unix time (seconds). Called by the event loop; tests call it
 * with made-up times. Time never goes backwards. */
void kvs_store_clock_set(struct kvs_store *s, int64_t now);
/* memcached's rel_time: seconds since the clock origin. */
uint32_t kvs_store_current_time(const struct kvs_store *s);
int64_t kvs_store_process_started(const struct kvs_store *s);
/* memcached's realtime(): client exptime (already clamped to non-negative) to rel_time. */
uint32_t kvs_store_realtime(const struct kvs_store *s, int64_t exptime);

/* memcached's item size formula: header + key + NUL + flags suffix + value + CRLF + CAS. */
size_t kvs_store_item_total(size_t nkey, uint32_t flags, size_t vlen);
/* True if a value of vlen bytes with this key and flags fits the -I limit. */
bool kvs_store_item_size_ok(const struct kvs_store *s, size_t nkey, uint32_t flags, size_t vlen);

/* Allocates an unlinked item for a value of vlen bytes (without CRLF); the value is
 * written with kvs_store_item_write. May evict. Errors: -E2BIG (over -I), -ENOMEM. */
ELEOS_MUST_CHECK int kvs_store_item_alloc(struct kvs_store *s, const char *key, size_t nkey,
                                        uint32_t flags, uint32_t exptime, size_t vlen,
                                        struct kvs_item **out);
/* Writes value bytes into an unlinked item the caller owns. */
ELEOS_MUST_CHECK int kvs_store_item_write(struct kvs_store *s, struct kvs_item *it, size_t off,
                                        const void *buf, size_t size);
/* What `watch` prints of an unlinked item the caller owns (key valid while it is). */
struct kvs_item_view {
    const char *key;
    size_t nkey;
    uint32_t exptime, nbytes;
    unsigned clsid;
};
void kvs_store_item_view(const struct kvs_item *it, struct kvs_item_view *v);
/* Frees an unlinked item (e.g. a bad data chunk). */
void kvs_store_item_free(struct kvs_store *s, struct kvs_item *it);

enum kvs_store_cmd {
    KVS_CMD_SET, KVS_CMD_ADD, KVS_CMD_REPLACE, KVS_CMD_APPEND, KVS_CMD_PREPEND, KVS_CMD_CAS,
};
enum kvs_store_result {
    KVS_STORED, KVS_NOT_STORED, KVS_EXISTS, KVS_NOT_FOUND, KVS_DELETED, KVS_TOUCHED,
    KVS_NON_NUMERIC, KVS_NO_MEMORY, KVS_STORE_ERROR,
};

/* Stores it under cmd's rules (memcached's do_store_item). Takes ownership of it in every
 * case: linked, or freed. cas_in: the client's unique for KVS_CMD_CAS. */
enum kvs_store_result kvs_store_item_link(struct kvs_store *s, struct kvs_item *it,
                                          enum kvs_store_cmd cmd, uint64_t cas_in);

/* Removes any item under key (memcached does so when a set fails for lack of memory). */
void kvs_store_unlink_key(struct kvs_store *s, const char *key, size_t nkey);

struct kvs_get_info {
    uint32_t flags;
    uint32_t nbytes;
    uint64_t cas;
    unsigned clsid;               /* its slab class (memcached's watch lines print it)       */
};
/* Where a found value goes: called under the store lock with the item's info; returns a
 * buffer of info->nbytes bytes to copy the value into, or NULL (-ENOMEM from get). */
typedef void *(*kvs_get_sink)(void *arg, const struct kvs_get_info *info);

/*
 * get/gets/gat/gats for one key. touch: also set the expiry to exptime (rel_time).
 * Returns 1 (hit, value delivered to the sink), 0 (miss), -ENOMEM (sink failed) or -EIO
 * (backend read failed, e.g. an SUVM integrity failure).
 */
ELEOS_MUST_CHECK int kvs_store_get(struct kvs_store *s, const char *key, size_t nkey, bool touch,
                                 uint32_t exptime, kvs_get_sink sink, void *arg);

enum kvs_store_result kvs_store_delete(struct kvs_store *s, const char *key, size_t nkey);
enum kvs_store_result kvs_store_touch(struct kvs_store *s, const char *key, size_t nkey,
                                      uint32_t exptime);
/* incr/decr with memcached's 64-bit rules. buf (>= 24 bytes) receives the decimal result. */
enum kvs_store_result kvs_store_delta(struct kvs_store *s, const char *key, size_t nkey,
                                      bool incr, uint64_t delta, char *buf, size_t bufsize);
/* flush_all [delay]: delay <= 0 means now. */
void kvs_store_flush(struct kvs_store *s, int64_t delay);

/*
 * The meta protocol (kvs_meta.c). mg/md/ma work on one item under the store lock, as
 * memcached holds the item lock across them: kvs_store_meta_lock() takes the lock and looks
 * the key up (a dead item is reaped as by any lookup; NULL = miss), the kvs_store_meta_*
 * calls below that take an item need that lock held, and kvs_store_meta_unlock() releases
 * it (after a miss too). No other kvs_store_* call may be made in between (the lock is not
 * recursive). An item pointer is valid only until the unlock.
 */
struct kvs_item *kvs_store_meta_lock(struct kvs_store *s, const char *key, size_t nkey);
void kvs_store_meta_unlock(struct kvs_store *s);

/* What meta commands report about an item (key points into the item). */
struct kvs_meta_info {
    const char *key;
    size_t nkey;
    uint32_t flags, nbytes;
    uint32_t exptime;           /* rel_time, 0 = never                                   */
    uint32_t atime;             /* last access, rel_time                                  */
    uint64_t cas;
    bool fetched;               /* memcached's ITEM_FETCHED                               */
    bool stale;                 /* invalidated by md I (ITEM_STALE)                       */
    bool token_sent;            /* a client holds the recache token (ITEM_TOKEN_SENT)     */
    bool key_binary;            /* stored by ms with a base64 key (ITEM_KEY_BINARY)       */
    unsigned clsid;             /* slab class                                             */
    size_t total;               /* memcached's ITEM_ntotal                                */
};
/* Locked item, or an unlinked item the caller owns (kvs_store_item_alloc). */
void kvs_store_meta_info(const struct kvs_store *s, const struct kvs_item *it,
                         struct kvs_meta_info *out);
void kvs_store_meta_set_exptime(struct kvs_item *it, uint32_t exptime);
void kvs_store_meta_set_token_sent(struct kvs_item *it);
/* For an unlinked item the caller owns: its key was base64 on the wire (ms b). */
void kvs_store_meta_set_key_binary(struct kvs_item *it);
/* A fetch: sets "fetched" and bumps the item in its LRU (memcached's do_item_bump). */
void kvs_store_meta_bump(struct kvs_store *s, struct kvs_item *it);
/* Copies the item's nbytes value bytes to dst: 0, or -EIO (backend/integrity failure). */
ELEOS_MUST_CHECK int kvs_store_meta_read(struct kvs_store *s, const struct kvs_item *it,
                                         void *dst);
/* Allocates and links key with vlen bytes of val, client flags 0, no expiry (mg N and ma N
 * vivify a miss; the lock is held, so nothing can store the key in between). 0 or -errno. */
ELEOS_MUST_CHECK int kvs_store_meta_create(struct kvs_store *s, const char *key, size_t nkey,
                                           const char *val, size_t vlen,
                                           struct kvs_item **out);
/* md I: marks the item stale, clears its token bit and gives it a new CAS. */
void kvs_store_meta_invalidate(struct kvs_store *s, struct kvs_item *it);
/* md: removes the item (freed: the pointer is dead afterwards). */
void kvs_store_meta_unlink(struct kvs_store *s, struct kvs_item *it);
/* ma on a live item: KVS_NON_NUMERIC (empty or not a number), KVS_EXISTS (cas_cmp != 0 and
 * differs), KVS_STORED (buf holds the decimal result; *res_it the item now holding it: it,
 * or a new item when the number outgrew the value, as memcached replaces the item),
 * KVS_NO_MEMORY, KVS_STORE_ERROR (backend failure). */
enum kvs_store_result kvs_store_meta_delta(struct kvs_store *s, struct kvs_item *it, bool incr,
                                           uint64_t delta, uint64_t cas_cmp, char *buf,
                                           size_t bufsize, struct kvs_item **res_it);
/* ms: kvs_store_item_link with memcached's meta rules: cas_in (the C flag) is compared for
 * every mode (append/prepend: KVS_EXISTS on a mismatch; set/replace arrive as KVS_CMD_CAS);
 * set_stale (I flag, KVS_CMD_CAS) stores an older CAS's value as stale instead of failing.
 * Takes ownership of it; *cas_out receives the stored item's CAS (0 if not stored). Own
 * locking. */
enum kvs_store_result kvs_store_item_link_meta(struct kvs_store *s, struct kvs_item *it,
                                               enum kvs_store_cmd cmd, uint64_t cas_in,
                                               bool set_stale, uint64_t *cas_out);


struct kvs_store_stats {
    uint64_t curr_items;
    uint64_t total_items;
    uint64_t bytes;             /* sum of item totals (memcached's "bytes")              */
    uint64_t limit_maxbytes;
    uint64_t malloced;          /* slab page bytes allocated                             */
    uint64_t evictions;
    uint64_t evicted_unfetched;
    uint64_t reclaimed;         /* expired items whose memory was reused                  */
    uint64_t expired_unfetched;
    uint64_t outofmemory;
    uint64_t hash_power_level;
    uint64_t hash_bytes;
    uint64_t metadata_bytes;    /* trusted bytes for headers + hash table (approximate)   */
    uint64_t backend_errors;    /* backend read/write failures                           */
    uint64_t get_expired;       /* lookups that found an expired item                    */
    uint64_t get_flushed;       /* lookups that found a flushed item                     */
    unsigned slab_classes;
};
void kvs_store_stats(struct kvs_store *s, struct kvs_store_stats *out);

/* memcached's per-class counters (`stats slabs`), kept by the store. */
struct kvs_class_counters {
    uint64_t get_hits, set_cmds, delete_hits, incr_hits, decr_hits, cas_hits, cas_badval,
        touch_hits;
};

struct kvs_slab_stats {
    uint32_t chunk_size;
    uint32_t chunks_per_page;
    uint64_t total_pages;
    uint64_t used_chunks;
    uint64_t free_chunks;
    uint64_t free_chunks_end;
    uint64_t items;
    uint64_t evicted;
    uint64_t requested;
    uint64_t outofmemory;
    uint64_t reclaimed;
    uint32_t age;               /* seconds since the LRU tail was touched                */
    uint64_t expired_unfetched, evicted_unfetched, evicted_nonzero;
    uint32_t evicted_time;      /* idle seconds of the last item evicted                 */
    struct kvs_class_counters cnt;
};
/* Per-class stats; returns false when cls is out of range. cls counts from 1. */
bool kvs_store_slab_stats(struct kvs_store *s, unsigned cls, struct kvs_slab_stats *out);
size_t kvs_store_item_size_max(const struct kvs_store *s);

/* CAS-aware variants, for the binary protocol (memcached 1.6.18 proto_bin.c semantics).
 * cas_in: the request's CAS, 0 = none; an item's CAS compares as 0 when !use_cas (-C).
 * cas_out (may be NULL): the CAS of the item stored or updated. */
/* kvs_store_item_link, and for append/prepend with cas_in: KVS_EXISTS on a mismatch. */
enum kvs_store_result kvs_store_item_link_cas(struct kvs_store *s, struct kvs_item *it,
                                              enum kvs_store_cmd cmd, uint64_t cas_in,
                                              bool use_cas, uint64_t *cas_out);
/* KVS_DELETED, KVS_EXISTS (CAS mismatch) or KVS_NOT_FOUND. */
enum kvs_store_result kvs_store_delete_cas(struct kvs_store *s, const char *key, size_t nkey,
                                           uint64_t cas_in, bool use_cas);
/* kvs_store_delta, plus KVS_EXISTS on a CAS mismatch. */
enum kvs_store_result kvs_store_delta_cas(struct kvs_store *s, const char *key, size_t nkey,
                                          bool incr, uint64_t delta, uint64_t cas_in,
                                          bool use_cas, uint64_t *cas_out, char *buf,
                                          size_t bufsize);

/* --- statistics support (`stats` groups; kvs_stats.c) ------------------------------------ */

/* Unlinks every item a flush_all made invisible, so curr_items, bytes and `stats items`
 * drop as memcached's LRU crawler makes them drop. Walks the LRUs once per flush_all (after
 * its deadline), under the store lock; a no-op otherwise. */
void kvs_store_reclaim_flushed(struct kvs_store *s);
/* memcached's settings.oldest_live (`stats settings` "oldest"): rel_time of the last flush. */
uint32_t kvs_store_oldest_live(struct kvs_store *s);
/* memcached's `stats reset` of item statistics: total_items, per-class eviction and
 * reclaim counters, the per-class hit counters, get_expired/get_flushed, prefix stats. */
void kvs_store_stats_reset(struct kvs_store *s);

/* `stats cachedump <cls> <limit>`: calls fn for the live items of class cls, most recent
 * first, until fn returns false or limit items (0 = all) were shown. exptime is the Unix
 * time it expires, or 0. */
typedef bool (*kvs_dump_fn)(void *arg, const char *key, size_t nkey, uint32_t nbytes,
                            int64_t exptime);
void kvs_store_cachedump(struct kvs_store *s, unsigned cls, unsigned limit, kvs_dump_fn fn,
                         void *arg);

/* `stats sizes`: memcached's histogram of item sizes in 32-byte buckets, for items stored
 * since `stats sizes_enable`. enable: -EPERM without CAS, -ENOMEM; fn gets each non-empty
 * bucket in ascending order. */
int kvs_store_sizes_enable(struct kvs_store *s);
void kvs_store_sizes_disable(struct kvs_store *s);
bool kvs_store_sizes_enabled(struct kvs_store *s);
/* 0, or -ENOMEM (the histogram could not be built) */
int kvs_store_sizes(struct kvs_store *s, void (*fn)(void *arg, size_t size, uint64_t n),
                    void *arg);

/* `stats detail`: per key prefix (up to the delimiter) counts of gets, hits, sets and
 * deletes. Keys without the delimiter are not counted, as in memcached. */
enum kvs_prefix_op { KVS_PREFIX_GET, KVS_PREFIX_SET, KVS_PREFIX_DELETE };
void kvs_store_prefix_record(struct kvs_store *s, char delim, const char *key, size_t nkey,
                             enum kvs_prefix_op op, bool hit);
/* fn for each prefix (in the order first seen); ends early if fn returns false. */
void kvs_store_prefix_dump(struct kvs_store *s,
                           bool (*fn)(void *arg, const char *prefix, size_t len,
                                      const uint64_t counts[4]),
                           void *arg);

#endif
