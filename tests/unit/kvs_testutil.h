/*
 * kvs_testutil.h — one protocol connection on a fresh store, for the unit tests of
 * eleos-kvs's pure core (test_kvs_proto, test_kvs_meta, test_kvs_stats): no sockets, a
 * made-up clock, and a feed that splits input into reads as a server loop does.
 */
#ifndef ELEOS_KVS_TESTUTIL_H
#define ELEOS_KVS_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kvs_proto.h"
#include "kvs_settings.h"
#include "kvs_store.h"

/* A fixed "now" so expiry is deterministic; the store's clock origin is 62 s before it. */
#define T0 1700000000

struct env {
    struct kvs_store *store;
    struct kvs_settings set;  /* what ctx.settings points to */
    struct kvs_ctx ctx;
    struct kvs_thread_stats stats;
    struct kvs_proto p;
    struct kvs_buf out;
    struct kvs_buf in;        /* unconsumed input carried between feeds */
    size_t max_in;            /* the most input ever left unconsumed    */
};

/* set: the settings (NULL: memcached's defaults); the store follows their -M and -C.
 * mem_limit, item_max: the store's limits (0: its defaults). */
static inline void kvs_env_init(struct env *e, const struct kvs_settings *set, size_t mem_limit,
                                size_t item_max) {
    memset(e, 0, sizeof *e);
    if (set)
        e->set = *set;
    else
        kvs_settings_default(&e->set);
    struct kvs_store_config c;
    kvs_store_config_default(&c);
    c.now = T0;
    c.evictions = e->set.evict_to_free;
    c.no_cas = !e->set.use_cas;
    if (mem_limit)
        c.mem_limit = mem_limit;
    if (item_max)
        c.item_size_max = item_max;
    REQUIRE(kvs_store_create(&c, &e->store) == 0);
    kvs_store_clock_set(e->store, T0);
    e->ctx.store = e->store;
    e->ctx.alloc = &kvs_alloc_libc;
    e->ctx.settings = &e->set;
    kvs_proto_init(&e->p, &e->ctx, &e->stats);
    kvs_buf_init(&e->out, &kvs_alloc_libc);
    kvs_buf_init(&e->in, &kvs_alloc_libc);
}

static inline void env_fini(struct env *e) {
    kvs_proto_fini(&e->p);
    kvs_buf_fini(&e->out);
    kvs_buf_fini(&e->in);
    kvs_store_destroy(e->store);
}

/* Feeds n bytes in reads of at most chunk bytes (0 = all at once), as a server loop does:
 * what the parser leaves stays for the next read. Returns the output produced by this
 * call (a NUL-terminated copy the caller frees); *outlen (may be NULL) its length. */
static inline char *feed_n(struct env *e, const char *data, size_t n, size_t chunk,
                           size_t *outlen) {
    e->out.len = 0;
    for (size_t off = 0; off < n;) {
        size_t k = chunk && n - off > chunk ? chunk : n - off;
        REQUIRE(kvs_buf_append(&e->in, data + off, k) == 0);
        off += k;
        size_t used = kvs_proto_feed(&e->p, e->in.data, e->in.len, &e->out);
        kvs_buf_consume(&e->in, used);
        if (e->in.len > e->max_in)
            e->max_in = e->in.len;
        if (e->p.close)
            break;
    }
    char *r = malloc(e->out.len + 1);
    REQUIRE(r);
    if (e->out.len)
        memcpy(r, e->out.data, e->out.len);
    r[e->out.len] = '\0';
    if (outlen)
        *outlen = e->out.len;
    return r;
}

/* Feeds in at once; true if the output is want, else prints input, want and output. */
static inline int expect(struct env *e, const char *in, const char *want) {
    char *got = feed_n(e, in, strlen(in), 0, NULL);
    int ok = strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "  input  %.300s\n  want   %.300s\n  got    %.300s\n", in, want, got);
    free(got);
    return ok;
}

#endif
