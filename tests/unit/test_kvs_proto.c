/*
 * Unit test of eleos-kvs's protocol and store without sockets: byte-exact replies (checked
 * against memcached 1.6.18's), expiry and flush with a made-up clock, eviction under the
 * memory limit, CAS uniqueness, and that a command stream gives the same replies whatever
 * way it is split into reads.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kvs_testutil.h"
#include "kvs_proto.h"
#include "kvs_store.h"

static void env_init(struct env *e, size_t mem_limit, size_t item_max) {
    kvs_env_init(e, NULL, mem_limit, item_max);
}

static void t_basic(void) {
    struct env e;
    env_init(&e, 0, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"));
    CHECK(expect(&e, "set a 5 0 2 noreply\r\nxy\r\nget a b\r\n", "VALUE a 5 2\r\nxy\r\nEND\r\n"));
    CHECK(expect(&e, "gets a\r\n", "VALUE a 5 2 2\r\nxy\r\nEND\r\n"));
    CHECK(expect(&e, "add a 0 0 1\r\nz\r\nadd b 0 0 1\r\nz\r\n", "NOT_STORED\r\nSTORED\r\n"));
    CHECK(expect(&e, "replace nope 0 0 1\r\nz\r\nreplace b 0 0 1\r\nq\r\n",
                 "NOT_STORED\r\nSTORED\r\n"));
    CHECK(expect(&e, "append b 0 0 2\r\nrs\r\nprepend b 0 0 2\r\nop\r\nget b\r\n",
                 "STORED\r\nSTORED\r\nVALUE b 0 5\r\nopqrs\r\nEND\r\n"));
    CHECK(expect(&e, "append nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n"));
    CHECK(expect(&e, "delete b\r\ndelete b\r\ndelete a 0\r\ndelete a 5\r\ndelete\r\n",
                 "DELETED\r\nNOT_FOUND\r\nDELETED\r\n"
                 "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
                 "ERROR\r\n"));
    CHECK(expect(&e, "version\r\n", "VERSION " KVS_MEMCACHED_VERSION "\r\n"));
    CHECK(expect(&e, "verbosity 1\r\nverbosity\r\nverbosity abc\r\nverbosity 1 noreply\r\n",
                 "OK\r\nERROR\r\nCLIENT_ERROR bad command line format\r\n"));
    CHECK(expect(&e, "foo\r\n\r\nx\r\nGET a\r\nmn\r\n", "ERROR\r\nERROR\r\nERROR\r\nERROR\r\nMN\r\n"));
    env_fini(&e);
}

static void t_errors(void) {
    struct env e;
    env_init(&e, 0, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nxy\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"));
    CHECK(expect(&e, "set a 0 0 1 noreply\r\nxy\r\n", "ERROR\r\n"));
    CHECK(expect(&e, "set a 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n"));
    CHECK(expect(&e, "set a abc 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"));
    CHECK(expect(&e, "set a 0 0 1 2 3\r\n", "ERROR\r\n"));
    CHECK(expect(&e, "set a 0 0 4294967296\r\nx\r\n",
                 "CLIENT_ERROR bad data chunk\r\nERROR\r\n")); /* int32 wrap, as memcached */
    CHECK(expect(&e, "set a 4294967296 0 1\r\nx\r\nget a\r\n",
                 "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"));
    char key[300];
    memset(key, 'k', sizeof key);
    char line[700];
    snprintf(line, sizeof line, "set %.250s 0 0 1\r\nx\r\nset %.251s 0 0 1\r\nx\r\n", key, key);
    CHECK(expect(&e, line, "STORED\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n"));
    snprintf(line, sizeof line, "get %.251s\r\n", key);
    CHECK(expect(&e, line, "CLIENT_ERROR bad command line format\r\n"));
    CHECK(expect(&e, "get\r\ngats\r\nincr\r\n", "ERROR\r\nERROR\r\nERROR\r\n"));
    CHECK(expect(&e, "cas a 0 0 1\r\nw\r\n", "ERROR\r\nERROR\r\n"));
    CHECK(expect(&e, "cas a 0 0 1 -1\r\nw\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"));
    CHECK(expect(&e, "touch a abc\r\ngat abc a\r\n",
                 "CLIENT_ERROR invalid exptime argument\r\nCLIENT_ERROR invalid exptime argument\r\n"));
    CHECK(expect(&e, "flush_all abc\r\nflush_all noreply\r\n", "CLIENT_ERROR invalid exptime argument\r\n"));
    CHECK(expect(&e, "stats nope\r\nstats detail\r\nshutdown\r\n",
                 "ERROR\r\nCLIENT_ERROR usage: stats detail on|off|dump\r\n"
                 "ERROR: shutdown not enabled\r\n"));
    env_fini(&e);
}

static void t_too_large(void) {
    struct env e;
    env_init(&e, 0, 0);
    /* Limit: 48 + (nkey+1) + flags?4:0 + vlen+2 + 8 <= 1 MiB. */
    size_t n = 1048516;
    char *buf = malloc(n + 64);
    REQUIRE(buf);
    int h = snprintf(buf, 64, "set a 0 0 %zu\r\n", n);
    memset(buf + h, 'x', n);
    memcpy(buf + h + n, "\r\n", 2);
    char *got = feed_n(&e, buf, (size_t)h + n + 2, 4096, NULL);
    CHECK(strcmp(got, "STORED\r\n") == 0);
    free(got);
    h = snprintf(buf, 64, "set a 0 0 %zu\r\n", n + 1);
    memset(buf + h, 'y', n + 1);
    memcpy(buf + h + n + 1, "\r\n", 2);
    got = feed_n(&e, buf, (size_t)h + n + 3, 1000, NULL);
    CHECK(strcmp(got, "SERVER_ERROR object too large for cache\r\n") == 0);
    free(got);
    /* the failed set removed the old value; the connection goes on */
    CHECK(expect(&e, "get a\r\n", "END\r\n"));
    free(buf);
    env_fini(&e);
}

static void t_incr(void) {
    struct env e;
    env_init(&e, 0, 0);
    CHECK(expect(&e, "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\nincr n 1\r\n",
                 "STORED\r\n15\r\n0\r\n18446744073709551615\r\n0\r\n"));
    CHECK(expect(&e, "set n 0 0 3\r\n100\r\ndecr n 1\r\nget n\r\n", "STORED\r\n99\r\nVALUE n 0 3\r\n99 \r\nEND\r\n"));
    CHECK(expect(&e, "set n 0 0 1\r\n9\r\nincr n 1\r\nget n\r\n", "STORED\r\n10\r\nVALUE n 0 2\r\n10\r\nEND\r\n"));
    CHECK(expect(&e, "set n 0 0 3\r\nabc\r\nincr n 1\r\n",
                 "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"));
    CHECK(expect(&e, "set n 0 0 0\r\n\r\nincr n 1\r\n",
                 "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"));
    CHECK(expect(&e, "incr nope 1\r\nincr n abc\r\nincr n -1\r\nincr n 18446744073709551616\r\n",
                 "NOT_FOUND\r\nCLIENT_ERROR invalid numeric delta argument\r\n"
                 "CLIENT_ERROR invalid numeric delta argument\r\n"
                 "CLIENT_ERROR invalid numeric delta argument\r\n"));
    CHECK(expect(&e, "set n 0 0 2\r\n-0\r\nincr n 3\r\nincr n 1 noreply\r\nget n\r\n",
                 "STORED\r\n3\r\nVALUE n 0 2\r\n4 \r\nEND\r\n"));
    env_fini(&e);
}

static void t_cas(void) {
    struct env e;
    env_init(&e, 0, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nx\r\ngets a\r\n", "STORED\r\nVALUE a 0 1 1\r\nx\r\nEND\r\n"));
    CHECK(expect(&e, "cas a 0 0 1 99\r\ny\r\ncas nope 0 0 1 1\r\ny\r\ncas a 0 0 1 0\r\ny\r\n",
                 "EXISTS\r\nNOT_FOUND\r\nEXISTS\r\n"));
    CHECK(expect(&e, "cas a 0 0 1 1\r\ny\r\ncas a 0 0 1 1\r\nz\r\ngets a\r\n",
                 "STORED\r\nEXISTS\r\nVALUE a 0 1 2\r\ny\r\nEND\r\n"));
    /* every modification gets a new unique */
    CHECK(expect(&e, "touch a 100\r\ngets a\r\n", "TOUCHED\r\nVALUE a 0 1 2\r\ny\r\nEND\r\n"));
    CHECK(expect(&e, "append a 0 0 1\r\nz\r\ngets a\r\n", "STORED\r\nVALUE a 0 2 3\r\nyz\r\nEND\r\n"));
    env_fini(&e);
}

static void t_expiry(void) {
    struct env e;
    env_init(&e, 0, 0);
    CHECK(expect(&e, "set r 0 10 1\r\nx\r\nset abs 0 1700000020 1\r\ny\r\n"
                     "set past 0 1600000000 1\r\nz\r\nset neg 0 -1 1\r\nw\r\n",
                 "STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\n"));
    CHECK(expect(&e, "get r abs past neg\r\n", "VALUE r 0 1\r\nx\r\nVALUE abs 0 1\r\ny\r\nEND\r\n"));
    kvs_store_clock_set(e.store, T0 + 10);
    CHECK(expect(&e, "get r abs\r\n", "VALUE abs 0 1\r\ny\r\nEND\r\n"));
    CHECK(expect(&e, "touch abs 100\r\n", "TOUCHED\r\n"));
    kvs_store_clock_set(e.store, T0 + 25);
    CHECK(expect(&e, "gat 0 abs\r\n", "VALUE abs 0 1\r\ny\r\nEND\r\n")); /* 0: never expires */
    kvs_store_clock_set(e.store, T0 + 1000);
    CHECK(expect(&e, "get abs\r\n", "VALUE abs 0 1\r\ny\r\nEND\r\n"));
    env_fini(&e);
}

static void t_flush(void) {
    struct env e;
    env_init(&e, 0, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\n", "STORED\r\nOK\r\nEND\r\n"));
    CHECK(expect(&e, "set b 0 0 1\r\nx\r\nget b\r\n", "STORED\r\nVALUE b 0 1\r\nx\r\nEND\r\n"));
    kvs_store_clock_set(e.store, T0 + 5);
    CHECK(expect(&e, "flush_all 10\r\nget b\r\n", "OK\r\nVALUE b 0 1\r\nx\r\nEND\r\n"));
    kvs_store_clock_set(e.store, T0 + 16);
    CHECK(expect(&e, "get b\r\n", "END\r\n"));
    kvs_store_clock_set(e.store, T0 + 17);
    CHECK(expect(&e, "set c 0 0 1\r\nx\r\nget c\r\n", "STORED\r\nVALUE c 0 1\r\nx\r\nEND\r\n"));
    CHECK(expect(&e, "flush_all noreply\r\nget c\r\n", "END\r\n"));
    env_fini(&e);
}

static void t_eviction(void) {
    struct env e;
    env_init(&e, 2u << 20, 0); /* -m 2 */
    char val[1000];
    memset(val, 'v', sizeof val);
    char cmd[1100];
    for (int i = 0; i < 10000; i++) {
        int h = snprintf(cmd, sizeof cmd, "set key%d 0 0 %zu noreply\r\n", i, sizeof val);
        memcpy(cmd + h, val, sizeof val);
        memcpy(cmd + h + sizeof val, "\r\n", 2);
        char *got = feed_n(&e, cmd, (size_t)h + sizeof val + 2, 0, NULL);
        CHECK(got[0] == '\0');
        free(got);
    }
    struct kvs_store_stats st;
    kvs_store_stats(e.store, &st);
    CHECK(st.evictions > 0);
    CHECK(st.curr_items < 10000);
    CHECK(st.malloced <= (3u << 20)); /* -m plus the first page a class may always take */
    /* the most recent item survives, the oldest was evicted */
    char *got = feed_n(&e, "get key9999 key0\r\n", 18, 0, NULL);
    CHECK(strncmp(got, "VALUE key9999 0 1000\r\n", 22) == 0);
    CHECK(strstr(got, "key0 ") == NULL);
    free(got);
    env_fini(&e);
}

static void t_close_rules(void) {
    struct env e;
    env_init(&e, 0, 0);
    CHECK(expect(&e, "get a\r\nquit\r\nget a\r\n", "END\r\n"));
    CHECK(e.p.close && !e.p.abort);
    env_fini(&e);

    env_init(&e, 0, 0);
    CHECK(expect(&e, "GET / HTTP/1.1\r\n", ""));
    CHECK(e.p.close && e.p.abort);
    env_fini(&e);

    env_init(&e, 0, 0);
    char big[3000];
    memset(big, 'z', sizeof big);
    char *got = feed_n(&e, big, sizeof big, 0, NULL);
    CHECK(e.p.close && e.p.abort); /* no newline within 2048 bytes and not a get */
    free(got);
    env_fini(&e);

    env_init(&e, 0, 0);
    memcpy(big, "get ", 4);
    got = feed_n(&e, big, sizeof big, 0, NULL);
    CHECK(!e.p.close); /* a long multiget is waited for */
    free(got);
    env_fini(&e);
}

static void t_multiget_binary(void) {
    struct env e;
    env_init(&e, 0, 0);
    /* binary value with NUL, CR and LF inside */
    static const char bin[] = "set b 7 0 6\r\n\0\r\n\x01\xff\n\r\nget b\r\n";
    char *got;
    size_t n;
    got = feed_n(&e, bin, sizeof bin - 1, 0, &n);
    static const char want[] = "STORED\r\nVALUE b 7 6\r\n\0\r\n\x01\xff\n\r\nEND\r\n";
    CHECK(n == sizeof want - 1 && memcmp(got, want, n) == 0);
    free(got);
    /* more keys than one tokenization holds (24 tokens) */
    char line[400] = "get";
    for (int i = 0; i < 40; i++)
        strcat(line, " b");
    strcat(line, "\r\n");
    got = feed_n(&e, line, strlen(line), 0, &n);
    CHECK(n == 40 * (sizeof "VALUE b 7 6\r\n" - 1 + 8) + 5);
    free(got);
    env_fini(&e);
}

/* The same stream must give the same bytes however it is split into reads. */
static void t_split_invariance(void) {
    static const char stream[] =
        "set a 0 0 5\r\nhello\r\nget a\r\nset b 1 0 3 noreply\r\nabc\r\ngets a b\r\n"
        "incr a 1\r\nset n 0 0 2\r\n41\r\nincr n 1\r\ndecr n 50\r\nappend a 0 0 1\r\n!\r\n"
        "touch a 10\r\ngat 20 a b\r\ndelete b\r\nget b\r\nset x 0 0 3\r\nxyzw\r\nflush_all\r\n"
        "get a\r\ncas a 0 0 1 1\r\nq\r\nbogus\r\nversion\r\n";
    char *ref = NULL;
    size_t refn = 0;
    for (size_t chunk = 0; chunk <= 17; chunk++) {
        struct env e;
        env_init(&e, 0, 0);
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
    free(ref);
}

/* A multiget whose replies reach out_limit is suspended between keys, keeps its line
 * unconsumed, and resumes once the caller drained the output: the bytes are those of one
 * unbounded run, and no call holds more than the limit plus one value. */
static void t_multiget_bounded(void) {
    struct env e;
    env_init(&e, 0, 0);
    char cmd[1100], line[4096];
    size_t n = (size_t)snprintf(line, sizeof line, "get");
    for (int i = 0; i < 40; i++) {
        snprintf(cmd, sizeof cmd, "set k%d 0 0 1000\r\n%01000d\r\n", i, i);
        char *r = feed_n(&e, cmd, strlen(cmd), 0, NULL);
        CHECK(strcmp(r, "STORED\r\n") == 0);
        free(r);
        n += (size_t)snprintf(line + n, sizeof line - n, " k%d", i);
    }
    n += (size_t)snprintf(line + n, sizeof line - n, " missing\r\nversion\r\n");
    size_t reflen;
    char *ref = feed_n(&e, line, n, 0, &reflen);
    /* Bounded: drain the output after every feed, as a socket would. */
    e.p.out_limit = 4096;
    struct kvs_buf all, in;
    kvs_buf_init(&all, &kvs_alloc_libc);
    kvs_buf_init(&in, &kvs_alloc_libc);
    REQUIRE(kvs_buf_append(&in, line, n) == 0);
    size_t max_out = 0, feeds = 0;
    while (in.len && feeds < 1000) {
        e.out.len = 0;
        size_t used = kvs_proto_feed(&e.p, in.data, in.len, &e.out);
        kvs_buf_consume(&in, used);
        max_out = e.out.len > max_out ? e.out.len : max_out;
        REQUIRE(kvs_buf_append(&all, e.out.data, e.out.len) == 0);
        feeds++;
    }
    CHECK(feeds > 5);
    CHECK(max_out < 4096 + 1100);
    CHECK_EQ(all.len, reflen);
    CHECK(all.len == reflen && memcmp(all.data, ref, reflen) == 0);
    free(ref);
    kvs_buf_fini(&all);
    kvs_buf_fini(&in);
    env_fini(&e);
}

static void t_stats(void) {
    struct env e;
    env_init(&e, 0, 0);
    static const char s1[] = "set a 0 0 1\r\nx\r\nget a b\r\nstats\r\n";
    char *got = feed_n(&e, s1, sizeof s1 - 1, 0, NULL);
    CHECK(strstr(got, "STAT cmd_get 2\r\n") != NULL);
    CHECK(strstr(got, "STAT get_hits 1\r\n") != NULL);
    CHECK(strstr(got, "STAT curr_items 1\r\n") != NULL);
    CHECK(strstr(got, "STAT eleos_version") != NULL);
    CHECK(strlen(got) > 5 && strcmp(got + strlen(got) - 5, "END\r\n") == 0);
    free(got);
    CHECK(expect(&e, "stats reset\r\n", "RESET\r\n"));
    static const char s2[] = "stats settings\r\nstats slabs\r\nstats items\r\nstats sizes\r\n";
    got = feed_n(&e, s2, sizeof s2 - 1, 0, NULL);
    CHECK(strstr(got, "STAT item_size_max 1048576\r\n") != NULL);
    CHECK(strstr(got, "STAT 1:chunk_size 96\r\n") != NULL);
    CHECK(strstr(got, "STAT items:1:number 1\r\n") != NULL);
    free(got);
    env_fini(&e);
}

/* refresh_certs: memcached's replies without TLS, and through the TLS layer's hook. */
static int fake_refresh(void *arg, struct kvs_buf *msg) {
    int *fail = arg;
    if (!*fail)
        return 0;
    int r = kvs_buf_printf(msg, "Error loading the key: k.pem : bad\r\n");
    REQUIRE(r == 0);
    return -1;
}

static void t_refresh_certs(void) {
    struct env e;
    env_init(&e, 0, 0);
    CHECK(expect(&e, "refresh_certs\r\nrefresh_certs noreply\r\nversion\r\n",
                 "Error TLS not enabled\r\nError TLS not enabled\r\nVERSION " KVS_MEMCACHED_VERSION
                 "\r\n"));
    int fail = 0;
    e.ctx.refresh_certs = fake_refresh;
    e.ctx.hook_arg = &fail;
    CHECK(expect(&e, "refresh_certs\r\nrefresh_certs noreply\r\nversion\r\n",
                 "OK\r\nVERSION " KVS_MEMCACHED_VERSION "\r\n"));
    fail = 1;
    CHECK(expect(&e, "refresh_certs noreply\r\nversion\r\n",
                 "Error loading the key: k.pem : bad\r\nVERSION " KVS_MEMCACHED_VERSION "\r\n"));
    env_fini(&e);
}

TEST_MAIN(TEST_CASE(t_basic), TEST_CASE(t_errors), TEST_CASE(t_too_large), TEST_CASE(t_incr),
          TEST_CASE(t_cas), TEST_CASE(t_expiry), TEST_CASE(t_flush), TEST_CASE(t_eviction),
          TEST_CASE(t_close_rules), TEST_CASE(t_multiget_binary), TEST_CASE(t_split_invariance), TEST_CASE(t_multiget_bounded),
          TEST_CASE(t_stats), TEST_CASE(t_refresh_certs))
