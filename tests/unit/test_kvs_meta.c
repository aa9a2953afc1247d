/*
 * Unit test of eleos-kvs's meta protocol (kvs_meta.c) without sockets: every command and
 * flag with replies checked byte for byte (the expected bytes are memcached 1.6.18's, as
 * recorded by tests/integration/test_kvs_meta.py), TTLs and access times with a made-up
 * clock, the W/X/Z recache flow, quiet mode, base64 keys, errors (and which of them swallow
 * the value), the counters, and split-invariance of a meta stream.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kvs_testutil.h"
#include "kvs_meta.h"
#include "kvs_proto.h"
#include "kvs_store.h"


static void env_init(struct env *e) {
    kvs_env_init(e, NULL, 8u << 20, 0);
}

static void t_mn_me(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "mn\r\nmn extra\r\nmx a\r\nmgx a\r\nm\r\n",
                 "MN\r\nMN\r\nERROR\r\nERROR\r\nERROR\r\n"));
    CHECK(expect(&e, "me\r\nme nope\r\n", "CLIENT_ERROR bad command line format\r\nEN\r\n"));
    CHECK(expect(&e, "ms dbg 5 F3\r\nhello\r\nme dbg\r\n",
                 "HD\r\nME dbg exp=-1 la=0 cas=1 fetch=no cls=1 size=71\r\n"));
    /* exp as memcached prints it: now - exptime, negative while the item lives */
    CHECK(expect(&e, "ms t 1 T100\r\nx\r\n", "HD\r\n"));
    kvs_store_clock_set(e.store, T0 + 10);
    CHECK(expect(&e, "mg dbg\r\nme dbg\r\nme t\r\n",
                 "HD\r\nME dbg exp=-1 la=10 cas=1 fetch=yes cls=1 size=71\r\n"
                 "ME t exp=-90 la=10 cas=2 fetch=no cls=1 size=61\r\n"));
    CHECK(expect(&e, "me Zm9v b\r\nme ab!c b\r\n",
                 "EN\r\nCLIENT_ERROR bad command line format\r\n"));
    CHECK_EQ(e.stats.meta_cmds, 5); /* me only, errors excluded */
    env_fini(&e);
}

static void t_mg(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "set foo 7 0 3\r\nbar\r\n", "STORED\r\n"));
    CHECK(expect(&e, "mg foo\r\nmg foo v\r\n", "HD\r\nVA 3\r\nbar\r\n"));
    CHECK(expect(&e, "mg foo s v f t c k O77\r\n", "VA 3 s3 f7 t-1 c1 kfoo O77\r\nbar\r\n"));
    CHECK(expect(&e, "mg foo k v q\r\n", "VA 3 kfoo\r\nbar\r\n"));
    CHECK(expect(&e, "mg nope\r\nmg nope O5 k\r\nmg nope q O5\r\nmg nope v q k\r\n",
                 "EN\r\nEN O5 knope\r\n"));
    CHECK(expect(&e, "mg foo P L\r\n", "HD\r\n"));
    /* h and l report the state before this request's fetch; u leaves it alone */
    CHECK(expect(&e, "ms h 2\r\nhi\r\nmg h u h\r\nmg h h l\r\nmg h h l\r\n",
                 "HD\r\nHD h0\r\nHD h0 l0\r\nHD h1 l0\r\n"));
    kvs_store_clock_set(e.store, T0 + 100);
    CHECK(expect(&e, "mg h l\r\nmg h l\r\n", "HD l100\r\nHD l0\r\n"));
    env_fini(&e);
}

static void t_ttl(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "ms ttl 2 T100\r\nhi\r\nmg ttl t\r\n", "HD\r\nHD t100\r\n"));
    kvs_store_clock_set(e.store, T0 + 40);
    CHECK(expect(&e, "mg ttl t\r\nmg ttl t T300\r\nmg ttl T200 t\r\nmg ttl T0 t\r\n",
                 "HD t60\r\nHD t60\r\nHD t200\r\nHD t-1\r\n"));
    CHECK_EQ(e.stats.touch_cmds, 3);
    CHECK_EQ(e.stats.touch_hits, 3);
    CHECK(expect(&e, "mg ttl T-1\r\nmg ttl\r\n", "HD\r\nEN\r\n"));
    /* N vivifies with its TTL; T and N apply in request order */
    CHECK(expect(&e, "mg v1 t N30 c\r\nmg v2 N30 T40 t\r\nmg v3 T40 N30 t\r\n",
                 "HD t-1 c2 W\r\nHD t40 W\r\nHD t30 W\r\n"));
    CHECK(expect(&e, "mg v1 N30 s v t\r\n", "VA 0 s0 t30 Z\r\n\r\n"));
    kvs_store_clock_set(e.store, T0 + 80);
    CHECK(expect(&e, "mg v1 v\r\n", "EN\r\n")); /* the vivified item expires like any */
    env_fini(&e);
}

static void t_stale_recache(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "ms r 2 T100\r\nhi\r\nmg r R30 c\r\nmg r R200 c\r\nmg r R200 c\r\n",
                 "HD\r\nHD c1\r\nHD c1 W\r\nHD c1 Z\r\n"));
    CHECK(expect(&e, "ms r 2 T100\r\nho\r\nmg r R200\r\n", "HD\r\nHD W\r\n"));
    CHECK(expect(&e, "ms st 5 T100\r\nvalue\r\nmd st I T30\r\n", "HD\r\nHD\r\n"));
    CHECK(expect(&e, "mg st t c v\r\nmg st c\r\n",
                 "VA 5 t30 c4 X W\r\nvalue\r\nHD c4 Z X\r\n"));
    /* ms I with an older CAS stores the value but keeps it stale, with TTL and token */
    CHECK(expect(&e, "ms st 3 C1 I\r\nold\r\nmg st c v t\r\n",
                 "HD\r\nVA 3 c5 t30 Z X\r\nold\r\n"));
    CHECK(expect(&e, "ms st 3 C99 I\r\nnew\r\nms st 3 C5 I c\r\nnew\r\nmg st c\r\n",
                 "EX\r\nHD c6\r\nHD c6\r\n"));
    CHECK(expect(&e, "md st I q\r\nmg st c\r\nmd st I C1\r\n", "HD c7 X W\r\nEX\r\n"));
    env_fini(&e);
}

static void t_ms(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "ms foo 3 T0 F5 c k O123\r\nbaz\r\nms foo 3 O9 c k\r\nbaz\r\n",
                 "HD c1 kfoo O123\r\nHD O9 c2 kfoo\r\n"));
    CHECK(expect(&e, "ms foo 3 q\r\nqqq\r\nms nokey 3 q MR\r\nabc\r\n", "NS\r\n"));
    CHECK(expect(&e, "ms m 1 ME\r\na\r\nms m 1 ME\r\nb\r\nms m 1 MA\r\nc\r\nms m 1 MP c\r\nd\r\n",
                 "HD\r\nNS\r\nHD\r\nHD c6\r\n"));
    CHECK(expect(&e, "mg m v\r\nms m 1 MA C1\r\ne\r\nms m 1 MA C6\r\ne\r\nmg m v\r\n",
                 "VA 3\r\ndac\r\nEX\r\nHD\r\nVA 4\r\ndace\r\n"));
    CHECK(expect(&e, "ms none 1 MR\r\nf\r\nms none 1 MA\r\nf\r\nms none 1 C5\r\nf\r\n",
                 "NS\r\nNS\r\nNF\r\n"));
    CHECK(expect(&e, "ms m 1 C1 c\r\ng\r\nms m 1 C0\r\ng\r\nms m 1 MS k\r\nh\r\n",
                 "EX c0\r\nEX\r\nHD km\r\n"));
    CHECK(expect(&e, "ms m 1 ME C5\r\nh\r\nms m2 1 ME C5 c\r\nh\r\nms m 1 MR C1\r\nh\r\n",
                 "NS\r\nHD c9\r\nEX\r\n"));
    CHECK(expect(&e, "ms crlf 4\r\n\r\n\r\n\r\nmg crlf v\r\n", "HD\r\nVA 4\r\n\r\n\r\n\r\n"));
    CHECK(expect(&e, "ms e 0\r\n\r\nmg e v s\r\n", "HD\r\nVA 0 s0\r\n\r\n"));
    CHECK(expect(&e, "ms foo 3 P1 L2 I\r\nbar\r\n", "HD\r\n"));
    CHECK_EQ(e.stats.set_cmds, 22);
    CHECK_EQ(e.stats.cas_misses, 1);
    CHECK_EQ(e.stats.cas_badval, 3);
    env_fini(&e);
}

/* Which errors swallow the value: those found once the length is known. */
static void t_ms_errors(void) {
    struct env e;
    env_init(&e);
    char k251[252];
    memset(k251, 'k', 251);
    k251[251] = '\0';
    char line[400];
    snprintf(line, sizeof line, "ms %s 3\r\nabc\r\n", k251);
    CHECK(expect(&e, line, "CLIENT_ERROR bad command line format\r\nERROR\r\n"));
    CHECK(expect(&e, "ms foo\r\nms foo -1\r\n",
                 "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n"));
    CHECK(expect(&e, "ms foo x\r\nabc\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"));
    CHECK(expect(&e, "ms foo 3\r\nabcd\r\nms foo 3 q\r\nabcd\r\n",
                 "CLIENT_ERROR bad data chunk\r\nERROR\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\n"));
    CHECK(expect(&e, "ms foo 2 Z\r\nxy\r\nms foo 2 T1 T2\r\nxy\r\nms foo 2 MX\r\nxy\r\n",
                 "CLIENT_ERROR invalid flag\r\nCLIENT_ERROR duplicate flag\r\n"
                 "CLIENT_ERROR invalid mode for ms M token\r\n"));
    CHECK(expect(&e, "ms foo 2 MEE\r\nxy\r\nms foo 2 Fx\r\nxy\r\nms foo 2 Tx q\r\nxy\r\n",
                 "CLIENT_ERROR incorrect length for M token\r\n"
                 "CLIENT_ERROR bad command line format\r\n"
                 "CLIENT_ERROR bad token in command line format\r\n"));
    CHECK(expect(&e, "ms foo 2 Ooooooooooooooooooooooooooooooooo\r\nxy\r\n"
                     "ms foo 2 Ooooooooooooooooooooooooooooooooo MX\r\nxy\r\n",
                 "CLIENT_ERROR opaque token too long\r\n"
                 "CLIENT_ERROR invalid mode for ms M token\r\n"));
    CHECK(expect(&e, "ms foo 2 O0 O1 O2 O3 O4 O5 O6 O7 O8 O9 Oa Ob Oc Od Oe Of Og\r\nxy\r\n",
                 "CLIENT_ERROR options flags too long\r\nERROR\r\n"));
    CHECK(expect(&e, "ms foo 2 S2\r\nxy\r\nms foo 2 E2\r\nxy\r\n",
                 "CLIENT_ERROR invalid flag\r\nCLIENT_ERROR invalid flag\r\n"));
    /* too large: reported at once, the value swallowed, the old value gone */
    CHECK(expect(&e, "ms big 1\r\nx\r\n", "HD\r\n"));
    static char big[1100000];
    int n = snprintf(big, sizeof big, "ms big 1048577 q\r\n");
    memset(big + n, 'x', 1048577);
    memcpy(big + n + 1048577, "\r\nmg big\r\n", 10);
    char *got = feed_n(&e, big, (size_t)n + 1048577 + 10, 4096, NULL);
    CHECK(strcmp(got, "SERVER_ERROR object too large for cache\r\nEN\r\n") == 0);
    free(got);
    CHECK_EQ(e.stats.store_too_large, 1);
    env_fini(&e);
}

static void t_md(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "ms foo 3\r\nbar\r\nmd foo\r\nmd foo\r\nmd foo q\r\n", "HD\r\nHD\r\nNF\r\nNF\r\n"));
    CHECK(expect(&e, "ms foo 3\r\nbar\r\nmd foo q O1 k\r\nmd foo O1 k\r\n", "HD\r\nNF O1 kfoo\r\n"));
    CHECK(expect(&e, "ms foo 3\r\nbar\r\nmd foo C1\r\nmd foo C0\r\nmd foo C3 k\r\n",
                 "HD\r\nEX\r\nEX\r\nHD kfoo\r\n"));
    CHECK(expect(&e, "md foo x\r\nmd foo Cx\r\nmd foo q q\r\nmd\r\n",
                 "CLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\n"
                 "CLIENT_ERROR invalid or duplicate flag\r\nERROR\r\n"));
    CHECK(expect(&e, "md foo Ooooooooooooooooooooooooooooooooo\r\n",
                 "CLIENT_ERROR opaque token too long\r\n"));
    CHECK_EQ(e.stats.delete_hits, 3);
    CHECK_EQ(e.stats.delete_misses, 5);
    env_fini(&e);
}

static void t_ma(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "ma cnt\r\nma cnt q O1 k\r\nma cnt N0 J10 v\r\nma cnt v\r\n",
                 "NF\r\nNF O1 kcnt\r\nVA 2\r\n10\r\nVA 2\r\n11\r\n"));
    CHECK(expect(&e, "ma cnt D5 v c t\r\nma cnt MD D3 v\r\nma cnt M- D100 v\r\n",
                 "VA 2 c3 t-1\r\n16\r\nVA 2\r\n13\r\nVA 1\r\n0\r\n"));
    CHECK(expect(&e, "ma cnt M+ D7 v\r\nma cnt MI v\r\nma cnt q\r\nma cnt q v\r\nma cnt C1 v\r\n",
                 "VA 1\r\n7\r\nVA 1\r\n8\r\nEX\r\n"));
    CHECK(expect(&e, "ma cnt D18446744073709551615 v\r\n", "VA 1\r\n9\r\n"));
    /* growing the number replaces the item: T shows in t but does not stick */
    CHECK(expect(&e, "ma cnt D123456789012 v T100 t\r\nma cnt t\r\n",
                 "VA 12 t100\r\n123456789021\r\nHD t-1\r\n"));
    CHECK(expect(&e, "ma cnt D1 T100 t\r\nma cnt t T50\r\nma cnt t\r\n",
                 "HD t100\r\nHD t100\r\nHD t50\r\n"));
    CHECK(expect(&e, "ma cnt Ooooooooooooooooooooooooooooooooo\r\nmg cnt v\r\n",
                 "CLIENT_ERROR opaque token too long\r\nVA 12\r\n123456789026\r\n"));
    CHECK(expect(&e, "ma c2 N100 J5 t v k O3\r\nma c3 q N0\r\n",
                 "VA 1 t100 kc2 O3\r\n5\r\nHD\r\n"));
    CHECK(expect(&e, "ms nn 3\r\nabc\r\nma nn\r\nms e 0\r\n\r\nma e C1\r\n",
                 "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
                 "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"));
    CHECK(expect(&e, "ma cnt MX\r\nma cnt MII\r\nma cnt Dx\r\nma cnt Jx N0\r\n",
                 "CLIENT_ERROR invalid mode for ma M token\r\n"
                 "CLIENT_ERROR invalid or duplicate flag\r\n"
                 "CLIENT_ERROR invalid or duplicate flag\r\n"
                 "CLIENT_ERROR invalid or duplicate flag\r\n"));
    CHECK_EQ(e.stats.incr_hits, 13);
    CHECK_EQ(e.stats.decr_hits, 2);
    CHECK_EQ(e.stats.incr_misses, 2);
    env_fini(&e);
}

static void t_base64(void) {
    char buf[64];
    CHECK_EQ(kvs_base64_encode("foo", 3, buf, sizeof buf), 4);
    CHECK(strcmp(buf, "Zm9v") == 0);
    CHECK_EQ(kvs_base64_encode("\x00\x01\x02\xff", 4, buf, sizeof buf), 8);
    CHECK(strcmp(buf, "AAEC/w==") == 0);
    CHECK_EQ(kvs_base64_encode("ab", 2, buf, 5), 0); /* memcached's output bound */
    CHECK_EQ(kvs_base64_decode("Zm9v", 4, buf, sizeof buf), 3);
    CHECK(memcmp(buf, "foo", 3) == 0);
    CHECK_EQ(kvs_base64_decode("Zm!9v", 5, buf, sizeof buf), 3); /* junk skipped */
    CHECK_EQ(kvs_base64_decode("AA==", 4, buf, sizeof buf), 1);
    CHECK_EQ(kvs_base64_decode("A===", 4, buf, sizeof buf), 0);
    CHECK_EQ(kvs_base64_decode("ab!c", 4, buf, sizeof buf), 0);
    CHECK_EQ(kvs_base64_decode("", 0, buf, sizeof buf), 0);
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "ms Zm9v 3 b k\r\nb64\r\nmg foo v k\r\nmg Zm9v b v k\r\n",
                 "HD kZm9v b\r\nVA 3 kZm9v b\r\nb64\r\nVA 3 kZm9v b\r\nb64\r\n"));
    CHECK(expect(&e, "ms AAEC/w== 2 b c k\r\nbn\r\nmg AAEC/w== b k s\r\n",
                 "HD c2 kAAEC/w== b\r\nHD kAAEC/w== b s2\r\n"));
    /* a vivified item was not stored with a base64 key: k prints it raw, as memcached */
    CHECK(expect(&e, "mg YSBi b k\r\nmg YSBi b N0 k\r\nme YSBi b\r\n",
                 "EN kYSBi b\r\nHD ka b W\r\nME a b exp=-1 la=0 cas=3 fetch=yes cls=1 size=62\r\n"));
    CHECK(expect(&e, "mg ab!c b\r\nms ab!c 2 b\r\nxy\r\nmd ab!c b\r\nma Y250 b k N0 v\r\n",
                 "CLIENT_ERROR error decoding key\r\nCLIENT_ERROR error decoding key\r\n"
                 "CLIENT_ERROR invalid or duplicate flag\r\nVA 1 kY250 b\r\n0\r\n"));
    CHECK(expect(&e, "md AAEC/w== b k\r\nme Zm9v b\r\n",
                 "HD kAAEC/w== b\r\nME Zm9v exp=-1 la=0 cas=1 fetch=yes cls=1 size=65\r\n"));
    env_fini(&e);
}

static void t_errors(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "mg\r\nms\r\nmd\r\nma\r\n", "ERROR\r\nERROR\r\nERROR\r\nERROR\r\n"));
    CHECK(expect(&e, "mg foo Z\r\nmg foo v v\r\nmg foo \xff\r\nmg foo E5\r\n",
                 "CLIENT_ERROR invalid flag\r\nCLIENT_ERROR duplicate flag\r\n"
                 "CLIENT_ERROR duplicate flag\r\nCLIENT_ERROR invalid flag\r\n"));
    CHECK(expect(&e, "mg foo Tx\r\nmg foo N\r\nmg foo Rx\r\n",
                 "CLIENT_ERROR bad token in command line format\r\n"
                 "CLIENT_ERROR bad token in command line format\r\n"
                 "CLIENT_ERROR bad token in command line format\r\n"));
    CHECK(expect(&e, "mg nope q Ooooooooooooooooooooooooooooooooo\r\n",
                 "CLIENT_ERROR opaque token too long\r\n"));
    CHECK(expect(&e, "mg foo O0 O1 O2 O3 O4 O5 O6 O7 O8 O9 Oa Ob Oc Od Oe Of Og Oh\r\n"
                     "md foo O0 O1 O2 O3 O4 O5 O6 O7 O8 O9 Oa Ob Oc Od Oe Of Og Oh\r\n"
                     "ma foo O0 O1 O2 O3 O4 O5 O6 O7 O8 O9 Oa Ob Oc Od Oe Of Og Oh\r\n",
                 "CLIENT_ERROR options flags are too long\r\n"
                 "CLIENT_ERROR options flags too long\r\n"
                 "CLIENT_ERROR options flags too long\r\n"));
    char k[260], line[1400];
    memset(k, 'k', sizeof k);
    snprintf(line, sizeof line, "mg %.251s v\r\nmd %.251s\r\nma %.251s\r\nme %.251s\r\n", k, k,
             k, k);
    CHECK(expect(&e, line, "CLIENT_ERROR bad command line format\r\n"
                           "CLIENT_ERROR bad command line format\r\n"
                           "CLIENT_ERROR bad command line format\r\n"
                           "CLIENT_ERROR bad command line format\r\n"));
    snprintf(line, sizeof line, "ms %.250s 1 k\r\nx\r\nmg %.250s s\r\n", k, k);
    char want[1400];
    snprintf(want, sizeof want, "HD k%.250s\r\nHD s1\r\n", k);
    CHECK(expect(&e, line, want));
    env_fini(&e);
}

/* Quiet requests answer nothing on success; mn, and any reply, come in request order. */
static void t_quiet_pipeline(void) {
    struct env e;
    env_init(&e);
    CHECK(expect(&e, "ms p1 1 q\r\na\r\nms p2 1 q\r\nb\r\nmg p1 v q\r\nmg p3 v q\r\n"
                     "mg p2 v k q\r\nmd p1 q\r\nmd p1 q\r\nmn\r\n",
                 "VA 1\r\na\r\nVA 1 kp2\r\nb\r\nNF\r\nMN\r\n"));
    CHECK(expect(&e, "mg p2 v\r\nget p2\r\nmg p1\r\n", "VA 1\r\nb\r\nVALUE p2 0 1\r\nb\r\nEND\r\nEN\r\n"));
    CHECK_EQ(e.stats.get_cmds, 6);
    CHECK_EQ(e.stats.get_hits, 4);
    CHECK_EQ(e.stats.get_misses, 2);
    env_fini(&e);
}

/* The same meta stream gives the same bytes however it is split into reads. */
static void t_split_invariance(void) {
    static const char stream[] =
        "ms a 5 T100 c\r\nhello\r\nmg a v t c k\r\nms b 3 q MA\r\nabc\r\nms b 3 ME\r\nabc\r\n"
        "mg b v q\r\nmd a I\r\nmg a v c\r\nma n N0 J41 v\r\nma n MD D2 v\r\nms Zm9v 2 b\r\nhi\r\n"
        "mg foo v k\r\nms x 3\r\nxyzw\r\nms y 2 Z\r\nzz\r\nmd b q\r\nme foo\r\nmn\r\n";
    char *ref = NULL;
    size_t refn = 0;
    for (size_t chunk = 0; chunk <= 23; chunk++) {
        struct env e;
        env_init(&e);
        size_t n;
        char *got = feed_n(&e, stream, sizeof stream - 1, chunk, &n);
        if (!ref) {
            ref = got;
            refn = n;
        } else {
            CHECK(n == refn && memcmp(got, ref, n) == 0);
            free(got);
        }
        env_fini(&e);
    }
    CHECK(refn > 0 && strstr(ref, "ME Zm9v exp=-1") != NULL);
    free(ref);
}

/* Meta commands are atomic on their item (the store lock spans lookup, update and reply):
 * concurrent ma lose no count, and of many clients racing for a recache token exactly one
 * per invalidation wins it. */
#define RACE_THREADS 4
#define RACE_ROUNDS 500

struct racer {
    struct env *e;
    struct kvs_thread_stats stats;
    unsigned wins;
};

static void *race_main(void *arg) {
    struct racer *r = arg;
    struct kvs_proto p;
    struct kvs_buf out;
    kvs_proto_init(&p, &r->e->ctx, &r->stats);
    kvs_buf_init(&out, &kvs_alloc_libc);
    char line[64];
    for (int i = 0; i < RACE_ROUNDS; i++) {
        /* a private copy: the parser tokenizes its input in place */
        size_t n = (size_t)snprintf(line, sizeof line, "ma ctr N0 J0\r\nmg tok%d N30\r\n", i);
        out.len = 0;
        REQUIRE(kvs_proto_feed(&p, line, n, &out) == n);
        if (out.len >= 5 && memmem(out.data, out.len, " W\r\n", 4))
            r->wins++;
    }
    kvs_proto_fini(&p);
    kvs_buf_fini(&out);
    return NULL;
}

static void t_concurrent(void) {
    struct env e;
    env_init(&e);
    struct racer r[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].e = &e;
        REQUIRE(pthread_create(&th[i], NULL, race_main, &r[i]) == 0);
    }
    unsigned wins = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        wins += r[i].wins;
    }
    /* the first ma of all vivifies 0; every other one adds 1 */
    char want[64];
    snprintf(want, sizeof want, "VA 4\r\n%d\r\n", RACE_THREADS * RACE_ROUNDS - 1);
    CHECK(expect(&e, "mg ctr v\r\n", want));
    CHECK_EQ(wins, RACE_ROUNDS); /* one W per vivified key */
    env_fini(&e);
}

TEST_MAIN(TEST_CASE(t_mn_me), TEST_CASE(t_mg), TEST_CASE(t_ttl), TEST_CASE(t_stale_recache),
          TEST_CASE(t_ms), TEST_CASE(t_ms_errors), TEST_CASE(t_md), TEST_CASE(t_ma),
          TEST_CASE(t_base64), TEST_CASE(t_errors), TEST_CASE(t_quiet_pipeline),
          TEST_CASE(t_split_invariance), TEST_CASE(t_concurrent))
