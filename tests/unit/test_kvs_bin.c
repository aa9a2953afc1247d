/*
 * Unit test of eleos-kvs's binary protocol (kvs_bin.c) without sockets: every opcode and
 * its quiet form, CAS, the options that change replies (-C, -F, -S, -B), malformed headers
 * (each answered as memcached 1.6.18 answers it, or closed), a value holding text commands
 * stored as data, and that a request stream gives the same replies whatever way it is
 * split into reads (down to one byte at a time).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kvs_auth.h"
#include "kvs_proto.h"
#include "kvs_settings.h"
#include "kvs_store.h"

#define T0 1700000000

struct env {
    struct kvs_store *store;
    struct kvs_settings set;
    struct kvs_ctx ctx;
    struct kvs_thread_stats stats;
    struct kvs_proto p;
    struct kvs_buf out, in;
    struct kvs_auth *auth;
};

static void env_init(struct env *e) {
    memset(e, 0, sizeof *e);
    struct kvs_store_config c;
    kvs_store_config_default(&c);
    c.now = T0;
    REQUIRE(kvs_store_create(&c, &e->store) == 0);
    kvs_store_clock_set(e->store, T0);
    kvs_settings_default(&e->set);
    e->ctx.store = e->store;
    e->ctx.alloc = &kvs_alloc_libc;
    e->ctx.settings = &e->set;
    kvs_proto_init(&e->p, &e->ctx, &e->stats);
    kvs_buf_init(&e->out, &kvs_alloc_libc);
    kvs_buf_init(&e->in, &kvs_alloc_libc);
}

/* A fresh connection on the same store and settings. */
static void env_reconnect(struct env *e) {
    kvs_proto_fini(&e->p);
    kvs_proto_init(&e->p, &e->ctx, &e->stats);
    e->in.len = 0;
}

static void env_fini(struct env *e) {
    kvs_proto_fini(&e->p);
    kvs_buf_fini(&e->out);
    kvs_buf_fini(&e->in);
    kvs_store_destroy(e->store);
    kvs_auth_free(e->auth);
}

/* Appends a request to b. */
static void rq(struct kvs_buf *b, uint8_t op, const char *key, const void *ext, uint8_t elen,
               const void *val, uint32_t vlen, uint64_t cas) {
    size_t klen = key ? strlen(key) : 0;
    unsigned char h[24] = {0x80, op, (unsigned char)(klen >> 8), (unsigned char)klen, elen};
    uint32_t bl = (uint32_t)(elen + klen + vlen);
    for (int i = 0; i < 4; i++)
        h[8 + i] = (unsigned char)(bl >> (24 - 8 * i));
    for (int i = 0; i < 4; i++)
        h[12 + i] = (unsigned char)(0xA0 + op + i); /* opaque: per opcode, echoed */
    for (int i = 0; i < 8; i++)
        h[16 + i] = (unsigned char)(cas >> (56 - 8 * i));
    REQUIRE(kvs_buf_append(b, h, 24) == 0);
    REQUIRE(kvs_buf_append(b, ext, elen) == 0);
    REQUIRE(kvs_buf_append(b, key, klen) == 0);
    REQUIRE(kvs_buf_append(b, val, vlen) == 0);
}

static void set_ext(unsigned char *x, uint32_t flags, uint32_t exp) {
    for (int i = 0; i < 4; i++) {
        x[i] = (unsigned char)(flags >> (24 - 8 * i));
        x[4 + i] = (unsigned char)(exp >> (24 - 8 * i));
    }
}

static void rq_set(struct kvs_buf *b, uint8_t op, const char *key, const char *val, uint64_t cas) {
    unsigned char x[8];
    set_ext(x, 0x01020304, 0);
    rq(b, op, key, x, 8, val, (uint32_t)strlen(val), cas);
}

static void rq_delta(struct kvs_buf *b, uint8_t op, const char *key, uint64_t delta,
                     uint64_t initial, uint32_t exp) {
    unsigned char x[20];
    for (int i = 0; i < 8; i++) {
        x[i] = (unsigned char)(delta >> (56 - 8 * i));
        x[8 + i] = (unsigned char)(initial >> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++)
        x[16 + i] = (unsigned char)(exp >> (24 - 8 * i));
    rq(b, op, key, x, 20, NULL, 0, 0);
}

/* Feeds b in chunks of at most chunk bytes (0 = at once); e->out holds the replies. */
static void feed(struct env *e, const struct kvs_buf *b, size_t chunk) {
    e->out.len = 0;
    for (size_t off = 0; off < b->len && !e->p.close;) {
        size_t k = chunk && b->len - off > chunk ? chunk : b->len - off;
        REQUIRE(kvs_buf_append(&e->in, b->data + off, k) == 0);
        off += k;
        size_t used = kvs_proto_feed(&e->p, e->in.data, e->in.len, &e->out);
        kvs_buf_consume(&e->in, used);
    }
}

struct resp {
    uint8_t magic, op, extlen;
    uint16_t keylen, status;
    uint32_t bodylen, opaque;
    uint64_t cas;
    const char *body;
};

static uint32_t be(const unsigned char *p, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Splits e->out into replies; returns how many (a truncated one is not counted). */
static size_t parse(const struct env *e, struct resp *r, size_t max) {
    size_t n = 0, off = 0;
    while (n < max && e->out.len - off >= 24) {
        const unsigned char *h = (const unsigned char *)e->out.data + off;
        struct resp x = {h[0], h[1], h[4], (uint16_t)be(h + 2, 2), (uint16_t)be(h + 6, 2),
                         be(h + 8, 4), be(h + 12, 4),
                         (uint64_t)be(h + 16, 4) << 32 | be(h + 20, 4),
                         e->out.data + off + 24};
        if (e->out.len - off - 24 < x.bodylen)
            break;
        r[n++] = x;
        off += 24 + x.bodylen;
    }
    return n;
}

static bool body_is(const struct resp *r, const char *s) {
    return r->bodylen == strlen(s) && memcmp(r->body, s, r->bodylen) == 0;
}

static void t_opcodes(void) {
    struct env e;
    env_init(&e);
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    rq_set(&b, 0x01, "k", "hello", 0);      /* set                  */
    rq(&b, 0x00, "k", NULL, 0, NULL, 0, 0); /* get                  */
    rq(&b, 0x0c, "k", NULL, 0, NULL, 0, 0); /* getk                 */
    rq_set(&b, 0x02, "k", "x", 0);          /* add: exists          */
    rq_set(&b, 0x03, "k", "world", 0);      /* replace              */
    rq(&b, 0x0e, "k", NULL, 0, "!", 1, 0);  /* append               */
    rq(&b, 0x0f, "k", NULL, 0, "<", 1, 0);  /* prepend              */
    rq(&b, 0x00, "k", NULL, 0, NULL, 0, 0); /* get: "<world!"       */
    rq(&b, 0x04, "k", NULL, 0, NULL, 0, 0); /* delete               */
    rq(&b, 0x04, "k", NULL, 0, NULL, 0, 0); /* delete: not found    */
    rq(&b, 0x0b, NULL, NULL, 0, NULL, 0, 0);/* version              */
    rq(&b, 0x0a, NULL, NULL, 0, NULL, 0, 0);/* noop                 */
    feed(&e, &b, 0);
    struct resp r[32];
    size_t n = parse(&e, r, 32);
    CHECK_EQ(n, 12);
    CHECK(r[0].magic == 0x81 && r[0].op == 0x01 && r[0].status == 0 && r[0].cas != 0);
    CHECK(r[0].opaque == 0xA1A2A3A4);
    CHECK(r[1].status == 0 && r[1].extlen == 4 && r[1].bodylen == 9 && r[1].cas == r[0].cas);
    CHECK(be((const unsigned char *)r[1].body, 4) == 0x01020304 && memcmp(r[1].body + 4, "hello", 5) == 0);
    CHECK(r[2].keylen == 1 && r[2].bodylen == 10 && memcmp(r[2].body + 4, "khello", 6) == 0);
    CHECK(r[3].status == 0x02 && body_is(&r[3], "Data exists for key."));
    CHECK(r[4].status == 0 && r[4].cas > r[0].cas);
    CHECK(r[5].status == 0 && r[6].status == 0);
    CHECK(r[7].bodylen == 11 && memcmp(r[7].body + 4, "<world!", 7) == 0);
    CHECK(be((const unsigned char *)r[7].body, 4) == 0x01020304); /* append keeps flags */
    CHECK(r[8].status == 0 && r[8].cas == 0);
    CHECK(r[9].status == 0x01 && body_is(&r[9], "Not found"));
    CHECK(body_is(&r[10], "1.6.18"));
    CHECK(r[11].op == 0x0a && r[11].status == 0 && r[11].bodylen == 0);
    CHECK(!e.p.close);
    CHECK_EQ(atomic_load(&e.stats.get_hits), 3);
    CHECK_EQ(atomic_load(&e.stats.set_cmds), 5);
    CHECK_EQ(atomic_load(&e.stats.delete_hits), 1);
    CHECK_EQ(atomic_load(&e.stats.delete_misses), 1);
    kvs_buf_fini(&b);
    env_fini(&e);
}

static void t_delta_touch_flush(void) {
    struct env e;
    env_init(&e);
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    rq_delta(&b, 0x05, "n", 1, 10, 0);          /* missing: created with 10  */
    rq_delta(&b, 0x05, "n", 5, 0, 0);           /* 15                        */
    rq_delta(&b, 0x06, "n", 100, 0, 0);         /* floors at 0               */
    rq_delta(&b, 0x05, "m", 1, 0, 0xffffffff);  /* missing, no create        */
    rq_set(&b, 0x01, "s", "abc", 0);
    rq_delta(&b, 0x05, "s", 1, 0, 0);           /* non-numeric               */
    unsigned char t[4] = {0, 0, 0, 100};
    rq(&b, 0x1c, "s", t, 4, NULL, 0, 0);        /* touch: flags, no value    */
    rq(&b, 0x1d, "s", t, 4, NULL, 0, 0);        /* gat                       */
    rq(&b, 0x23, "s", t, 4, NULL, 0, 0);        /* gatk                      */
    rq(&b, 0x1c, "zz", t, 4, NULL, 0, 0);       /* touch miss                */
    rq(&b, 0x08, NULL, NULL, 0, NULL, 0, 0);    /* flush                     */
    rq(&b, 0x00, "s", NULL, 0, NULL, 0, 0);     /* gone                      */
    feed(&e, &b, 0);
    struct resp r[32];
    size_t n = parse(&e, r, 32);
    CHECK_EQ(n, 12);
    CHECK(r[0].status == 0 && r[0].bodylen == 8 && be((const unsigned char *)r[0].body + 4, 4) == 10);
    CHECK(r[0].cas != 0);
    CHECK(be((const unsigned char *)r[1].body + 4, 4) == 15 && r[1].cas > r[0].cas);
    CHECK(be((const unsigned char *)r[2].body + 4, 4) == 0);
    CHECK(r[3].status == 0x01);
    CHECK(r[5].status == 0x06);
    CHECK(r[6].status == 0 && r[6].bodylen == 4 && r[6].cas == r[4].cas);
    CHECK(r[7].bodylen == 7 && memcmp(r[7].body + 4, "abc", 3) == 0);
    CHECK(r[8].keylen == 1 && r[8].bodylen == 8 && memcmp(r[8].body + 4, "sabc", 4) == 0);
    CHECK(r[9].status == 0x01);
    CHECK(r[10].status == 0 && r[11].status == 0x01);
    CHECK_EQ(atomic_load(&e.stats.incr_hits), 1);
    CHECK_EQ(atomic_load(&e.stats.incr_misses), 1);
    CHECK_EQ(atomic_load(&e.stats.touch_cmds), 4);
    CHECK_EQ(atomic_load(&e.stats.touch_hits), 3);
    CHECK_EQ(atomic_load(&e.stats.flush_cmds), 1);
    kvs_buf_fini(&b);
    env_fini(&e);
}

/* Quiet forms: success replies and GETQ/GETKQ misses vanish; errors and hits remain. */
static void t_quiet(void) {
    struct env e;
    env_init(&e);
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    rq_set(&b, 0x11, "q", "1", 0);          /* setq: silent              */
    rq_set(&b, 0x12, "q", "1", 0);          /* addq: exists, sent        */
    rq(&b, 0x09, "q", NULL, 0, NULL, 0, 0); /* getq hit: sent            */
    rq(&b, 0x09, "x", NULL, 0, NULL, 0, 0); /* getq miss: silent         */
    rq(&b, 0x0d, "x", NULL, 0, NULL, 0, 0); /* getkq miss: silent        */
    rq_delta(&b, 0x15, "q", 1, 0, 0);       /* incrq: silent             */
    rq(&b, 0x19, "q", NULL, 0, "a", 1, 0);  /* appendq: silent           */
    rq(&b, 0x14, "q", NULL, 0, NULL, 0, 0); /* deleteq: silent           */
    rq(&b, 0x14, "q", NULL, 0, NULL, 0, 0); /* deleteq miss: sent        */
    rq(&b, 0x18, NULL, NULL, 0, NULL, 0, 0);/* flushq: silent            */
    rq(&b, 0x0a, NULL, NULL, 0, NULL, 0, 0);
    rq(&b, 0x17, NULL, NULL, 0, NULL, 0, 0);/* quitq: silent, closes     */
    feed(&e, &b, 0);
    struct resp r[16];
    size_t n = parse(&e, r, 16);
    CHECK_EQ(n, 4);
    CHECK(r[0].op == 0x12 && r[0].status == 0x02);
    CHECK(r[1].op == 0x09 && r[1].status == 0 && r[1].bodylen == 5);
    CHECK(r[2].op == 0x14 && r[2].status == 0x01);
    CHECK(r[3].op == 0x0a);
    CHECK(e.p.close && !e.p.abort);
    kvs_buf_fini(&b);
    env_fini(&e);
}

/* A pipeline gives the same bytes fed at once, 1 byte and 7 bytes at a time. */
static void t_split(void) {
    struct kvs_buf b, first;
    kvs_buf_init(&b, &kvs_alloc_libc);
    kvs_buf_init(&first, &kvs_alloc_libc);
    char big[3000];
    memset(big, 'v', sizeof big);
    big[sizeof big - 1] = '\0';
    rq_set(&b, 0x01, "a", big, 0);
    rq(&b, 0x0d, "a", NULL, 0, NULL, 0, 0);
    rq(&b, 0x00, "none", NULL, 0, NULL, 0, 0);
    rq_delta(&b, 0x05, "c", 1, 7, 0);
    rq(&b, 0x50, "unk", NULL, 0, "xy", 2, 0); /* unknown: swallows 5 more bytes */
    REQUIRE(kvs_buf_append(&b, "\0\0\0", 3) == 0);
    rq(&b, 0x10, "items", NULL, 0, NULL, 0, 0);
    rq(&b, 0x0e, "a", NULL, 0, "", 0, 0);
    rq(&b, 0x0a, NULL, NULL, 0, NULL, 0, 0);
    size_t chunks[] = {0, 1, 7, 24};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct env e;
        env_init(&e);
        feed(&e, &b, chunks[i]);
        CHECK(!e.p.close && e.in.len == 0);
        if (i == 0)
            REQUIRE(kvs_buf_append(&first, e.out.data, e.out.len) == 0);
        else
            CHECK(e.out.len == first.len && memcmp(e.out.data, first.data, first.len) == 0);
        env_fini(&e);
    }
    struct resp r[256];
    struct env e0 = {.out = first};
    size_t n = parse(&e0, r, 256);
    CHECK(n > 7 && r[n - 1].op == 0x0a);
    CHECK(r[4].op == 0x50 && r[4].status == 0x81);
    kvs_buf_fini(&first);
    kvs_buf_fini(&b);
}

/* memcached's byte counts at the time of the bug: a value holding text commands. */
static void t_injection(void) {
    struct env e;
    env_init(&e);
    static const char evil[] = "x\r\nflush_all\r\nset evil 0 0 4\r\npwnd\r\n";
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    rq_set(&b, 0x01, "keep", "1", 0);
    rq_set(&b, 0x01, "inj", evil, 0);
    rq(&b, 0x00, "inj", NULL, 0, NULL, 0, 0);
    rq(&b, 0x00, "evil", NULL, 0, NULL, 0, 0);
    rq(&b, 0x00, "keep", NULL, 0, NULL, 0, 0);
    feed(&e, &b, 0);
    struct resp r[8];
    CHECK_EQ(parse(&e, r, 8), 5);
    CHECK(r[2].bodylen == 4 + sizeof evil - 1 && memcmp(r[2].body + 4, evil, sizeof evil - 1) == 0);
    CHECK(r[3].status == 0x01);
    CHECK(r[4].status == 0);
    CHECK_EQ(atomic_load(&e.stats.flush_cmds), 0);
    kvs_buf_fini(&b);
    env_fini(&e);
}

/* One malformed request on a fresh connection: its replies' statuses and the close. */
static void malformed(const struct kvs_buf *b, const uint16_t *want, size_t nwant, bool closed) {
    struct env e;
    env_init(&e);
    struct kvs_buf pre;
    kvs_buf_init(&pre, &kvs_alloc_libc);
    rq(&pre, 0x0a, NULL, NULL, 0, NULL, 0, 0); /* negotiate binary first */
    REQUIRE(kvs_buf_append(&pre, b->data, b->len) == 0);
    rq(&pre, 0x0a, NULL, NULL, 0, NULL, 0, 0);
    feed(&e, &pre, 0);
    struct resp r[8];
    size_t n = parse(&e, r, 8);
    CHECK_EQ(n, nwant);
    for (size_t i = 0; i < n && i < nwant; i++)
        CHECK_EQ(r[i].status, want[i]);
    CHECK_EQ(e.p.close, closed);
    kvs_buf_fini(&pre);
    env_fini(&e);
}

static void t_malformed(void) {
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    unsigned char h[24] = {0x81};
    REQUIRE(kvs_buf_append(&b, h, 24) == 0); /* bad magic: closed, nothing after */
    malformed(&b, (uint16_t[]){0}, 1, true);
    b.len = 0;
    rq(&b, 0x00, "abc", NULL, 0, NULL, 0, 0);
    b.data[11] = 1; /* bodylen 1 < keylen 3: unknown command, closed */
    malformed(&b, (uint16_t[]){0, 0x81}, 2, true);
    b.len = 0;
    char key[252];
    memset(key, 'k', 251);
    key[251] = '\0';
    rq(&b, 0x00, key, NULL, 0, NULL, 0, 0); /* key over 250: invalid arguments, closed */
    malformed(&b, (uint16_t[]){0, 0x04}, 2, true);
    b.len = 0;
    rq_set(&b, 0x01, "h", "", 0);
    memset(b.data + 8, 0xff, 4); /* bodylen 0xffffffff: too large, nothing swallowed */
    malformed(&b, (uint16_t[]){0, 0x03, 0}, 3, false);
    b.len = 0;
    rq(&b, 0x00, "k", NULL, 0, NULL, 0, 0);
    memset(b.data + 8, 0xff, 4); /* get with a body: invalid arguments, closed */
    malformed(&b, (uint16_t[]){0, 0x04}, 2, true);
    b.len = 0;
    rq(&b, 0x00, NULL, NULL, 0, NULL, 0, 0); /* get without key */
    malformed(&b, (uint16_t[]){0, 0x04}, 2, true);
    b.len = 0;
    unsigned char v[4] = {0, 0, 0, 1};
    rq(&b, 0x1b, NULL, v, 4, NULL, 0, 0); /* verbosity: unknown in 1.6.18, swallows 4 */
    REQUIRE(kvs_buf_append(&b, "\0\0\0\0", 4) == 0);
    malformed(&b, (uint16_t[]){0, 0x81, 0}, 3, false);
    b.len = 0;
    rq_set(&b, 0x01, "big", "", 0);
    uint32_t bl = 8 + 3 + (2u << 20); /* 2 MiB value: too large, swallowed */
    for (int i = 0; i < 4; i++)
        b.data[8 + i] = (char)(bl >> (24 - 8 * i));
    for (size_t i = 0; i < (2u << 20); i++)
        REQUIRE(kvs_buf_append(&b, "\r", 1) == 0);
    malformed(&b, (uint16_t[]){0, 0x03, 0}, 3, false);
    kvs_buf_fini(&b);
}

/* -C: CAS 0 everywhere, a set's CAS ignored, delete/incr with a CAS mismatch; -F. */
static void t_options(void) {
    struct env e;
    env_init(&e);
    e.set.use_cas = false;
    e.set.flush_enabled = false;
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    rq_set(&b, 0x01, "c", "1", 0);
    rq_set(&b, 0x01, "c", "2", 77);
    rq(&b, 0x00, "c", NULL, 0, NULL, 0, 0);
    rq(&b, 0x04, "c", NULL, 0, NULL, 0, 77);
    rq(&b, 0x08, NULL, NULL, 0, NULL, 0, 0);
    rq(&b, 0x18, NULL, NULL, 0, NULL, 0, 0);
    feed(&e, &b, 0);
    struct resp r[8];
    CHECK_EQ(parse(&e, r, 8), 6);
    CHECK(r[0].status == 0 && r[0].cas == 0 && r[1].status == 0 && r[1].cas == 0);
    CHECK(r[2].cas == 0 && memcmp(r[2].body + 4, "2", 1) == 0);
    CHECK(r[3].status == 0x02);
    CHECK(r[4].status == 0x20 && body_is(&r[4], "Auth failure.") && r[5].status == 0x20);
    CHECK_EQ(atomic_load(&e.stats.flush_cmds), 0);
    /* with CAS: a stale unique fails, the right one succeeds */
    e.set.use_cas = true;
    env_reconnect(&e);
    b.len = 0;
    rq_set(&b, 0x01, "d", "1", 0);
    feed(&e, &b, 0);
    CHECK_EQ(parse(&e, r, 8), 1);
    uint64_t cas = r[0].cas;
    b.len = 0;
    rq_set(&b, 0x01, "d", "2", cas + 1);
    rq_set(&b, 0x01, "d", "3", cas);
    rq(&b, 0x0e, "d", NULL, 0, "x", 1, cas);
    rq_set(&b, 0x01, "nx", "3", cas);
    feed(&e, &b, 0);
    CHECK_EQ(parse(&e, r, 8), 4);
    CHECK(r[0].status == 0x02 && r[1].status == 0 && r[2].status == 0x02 && r[3].status == 0x01);
    CHECK_EQ(atomic_load(&e.stats.cas_badval), 1);
    CHECK_EQ(atomic_load(&e.stats.cas_hits), 1);
    CHECK_EQ(atomic_load(&e.stats.cas_misses), 1);
    kvs_buf_fini(&b);
    env_fini(&e);
}

/* -B and -S decide the protocol; -B auto looks at the first byte. */
static void t_negotiate(void) {
    struct env e;
    env_init(&e);
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    REQUIRE(kvs_buf_append(&b, "version\r\n", 9) == 0);
    feed(&e, &b, 0);
    CHECK(e.p.wire == KVS_WIRE_TEXT && e.out.len == 16 && memcmp(e.out.data, "VERSION 1.6.18\r\n", 16) == 0);
    e.set.binding = KVS_BIND_BINARY;
    env_reconnect(&e);
    REQUIRE(kvs_buf_append(&b, "                    ", 20) == 0);
    feed(&e, &b, 0);
    CHECK(e.p.wire == KVS_WIRE_BINARY && e.p.close && e.out.len == 0);
    e.set.binding = KVS_BIND_ASCII;
    env_reconnect(&e);
    b.len = 0;
    rq(&b, 0x0b, NULL, NULL, 0, NULL, 0, 0);
    feed(&e, &b, 0);
    CHECK(e.p.wire == KVS_WIRE_TEXT && e.out.len == 0 && !e.p.close); /* a text line, waiting */
    e.set.binding = KVS_BIND_AUTO;
    e.set.auth_ascii = true;
    env_reconnect(&e);
    feed(&e, &b, 0);
    CHECK(e.p.wire == KVS_WIRE_TEXT);
    e.set.auth_ascii = false;
    env_reconnect(&e);
    feed(&e, &b, 0);
    CHECK(e.p.wire == KVS_WIRE_BINARY && e.out.len == 30);
    kvs_buf_fini(&b);
    env_fini(&e);
}

static void t_sasl(void) {
    struct env e;
    env_init(&e);
    static const char db[] = "alice:s3cret\nbob:pw\n";
    unsigned bad = 0;
    REQUIRE(kvs_auth_parse(&kvs_alloc_libc, db, sizeof db - 1, &e.auth, &bad) == 0);
    e.ctx.auth_sasl = e.auth;
    e.set.sasl = true;
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    struct resp r[8];
    rq(&b, 0x0b, NULL, NULL, 0, NULL, 0, 0);
    rq(&b, 0x20, NULL, NULL, 0, NULL, 0, 0);
    rq(&b, 0x21, "PLAIN", NULL, 0, "\0alice\0wrong", 12, 0);
    rq(&b, 0x00, "k", NULL, 0, NULL, 0, 0);
    feed(&e, &b, 1);
    CHECK_EQ(parse(&e, r, 8), 4);
    CHECK(body_is(&r[0], "1.6.18") && body_is(&r[1], "PLAIN"));
    CHECK(r[2].status == 0x20 && r[3].status == 0x20 && e.p.close);
    env_reconnect(&e);
    b.len = 0;
    rq(&b, 0x21, "PLAIN", NULL, 0, "\0alice\0s3cret", 13, 0);
    rq_set(&b, 0x01, "k", "v", 0);
    rq(&b, 0x21, "PLAIN", NULL, 0, "bob\0bob\0pw", 10, 0); /* authzid = user */
    rq(&b, 0x21, "PLAIN", NULL, 0, "x\0bob\0pw", 8, 0);    /* another authzid */
    rq(&b, 0x21, "PLAIN", NULL, 0, NULL, 0, 0);            /* continue ...   */
    rq(&b, 0x22, "PLAIN", NULL, 0, "\0bob\0pw", 7, 0);     /* ... step       */
    rq(&b, 0x00, "k", NULL, 0, NULL, 0, 0);
    feed(&e, &b, 0);
    CHECK_EQ(parse(&e, r, 8), 7);
    CHECK(r[0].status == 0 && body_is(&r[0], "Authenticated"));
    CHECK(r[1].status == 0 && r[2].status == 0 && r[3].status == 0x20);
    CHECK(r[4].status == 0x21 && r[4].bodylen == 0);
    CHECK(r[5].status == 0 && r[6].status == 0 && !e.p.close);
    CHECK_EQ(atomic_load(&e.stats.auth_cmds), 5);
    CHECK_EQ(atomic_load(&e.stats.auth_errors), 2);
    kvs_buf_fini(&b);
    env_fini(&e);
}

/* STAT: one packet per text STAT line, then the terminator; unknown groups: not found. */
static void t_stat(void) {
    struct env e;
    env_init(&e);
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    rq(&b, 0x10, NULL, NULL, 0, NULL, 0, 0);
    feed(&e, &b, 0);
    struct resp r[200];
    size_t n = parse(&e, r, 200);
    CHECK(n > 20 && r[n - 1].keylen == 0 && r[n - 1].bodylen == 0);
    CHECK(r[0].keylen == 3 && memcmp(r[0].body, "pid", 3) == 0);
    bool ver = false;
    for (size_t i = 0; i < n; i++)
        ver |= r[i].keylen == 7 && memcmp(r[i].body, "version1.6.18", 13) == 0;
    CHECK(ver);
    b.len = 0;
    rq(&b, 0x10, "bogus", NULL, 0, NULL, 0, 0);
    rq(&b, 0x10, "reset", NULL, 0, NULL, 0, 0);
    rq(&b, 0x10, "detail dump", NULL, 0, NULL, 0, 0);
    feed(&e, &b, 0);
    n = parse(&e, r, 200);
    CHECK_EQ(n, 4);
    CHECK(r[0].status == 0x01 && r[1].status == 0 && r[1].bodylen == 0);
    CHECK(r[2].keylen == 8 && memcmp(r[2].body, "detailed", 8) == 0);
    kvs_buf_fini(&b);
    env_fini(&e);
}

/* out_limit: requests stop being taken once the output holds that much. */
static void t_out_limit(void) {
    struct env e;
    env_init(&e);
    struct kvs_buf b;
    kvs_buf_init(&b, &kvs_alloc_libc);
    for (int i = 0; i < 10; i++)
        rq(&b, 0x0b, NULL, NULL, 0, NULL, 0, 0);
    REQUIRE(kvs_buf_append(&e.in, b.data, b.len) == 0);
    e.p.out_limit = 60;
    size_t used = kvs_proto_feed(&e.p, e.in.data, e.in.len, &e.out);
    CHECK_EQ(used, 2 * 24);
    CHECK_EQ(e.out.len, 60);
    kvs_buf_fini(&b);
    env_fini(&e);
}

TEST_MAIN(TEST_CASE(t_opcodes), TEST_CASE(t_delta_touch_flush), TEST_CASE(t_quiet),
          TEST_CASE(t_split), TEST_CASE(t_injection), TEST_CASE(t_malformed),
          TEST_CASE(t_options), TEST_CASE(t_negotiate), TEST_CASE(t_sasl), TEST_CASE(t_stat),
          TEST_CASE(t_out_limit))
