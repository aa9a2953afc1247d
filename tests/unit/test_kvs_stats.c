/*
 * Unit test of eleos-kvs's `stats` groups, ASCII authentication (-Y), the options that
 * change the text protocol (-F, -C, -X, -M, -D) and a get line longer than any buffer,
 * without sockets. Field names and replies are memcached 1.6.18's (recorded from
 * /usr/bin/memcached; tests/integration/test_kvs_stats.py diffs against it live).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kvs_testutil.h"
#include "kvs_auth.h"
#include "kvs_proto.h"
#include "kvs_store.h"


/* memcached 1.6.18 (Debian build) field names, in its order. */
static const char *const general_names[] = {
    "pid", "uptime", "time", "version", "libevent", "pointer_size", "rusage_user",
    "rusage_system", "max_connections", "curr_connections", "total_connections",
    "rejected_connections", "connection_structures", "response_obj_oom", "response_obj_count",
    "response_obj_bytes", "read_buf_count", "read_buf_bytes", "read_buf_bytes_free",
    "read_buf_oom", "reserved_fds", "cmd_get", "cmd_set", "cmd_flush", "cmd_touch", "cmd_meta",
    "get_hits", "get_misses", "get_expired", "get_flushed", "delete_misses", "delete_hits",
    "incr_misses", "incr_hits", "decr_misses", "decr_hits", "cas_misses", "cas_hits",
    "cas_badval", "touch_hits", "touch_misses", "store_too_large", "store_no_memory",
    "auth_cmds", "auth_errors", "bytes_read", "bytes_written", "limit_maxbytes",
    "accepting_conns", "listen_disabled_num", "time_in_listen_disabled_us", "threads",
    "conn_yields", "hash_power_level", "hash_bytes", "hash_is_expanding",
    "slab_reassign_rescues", "slab_reassign_chunk_rescues", "slab_reassign_evictions_nomem",
    "slab_reassign_inline_reclaim", "slab_reassign_busy_items", "slab_reassign_busy_deletes",
    "slab_reassign_running", "slabs_moved", "lru_crawler_running", "lru_crawler_starts",
    "lru_maintainer_juggles", "malloc_fails", "log_worker_dropped", "log_worker_written",
    "log_watcher_skipped", "log_watcher_sent", "log_watchers", "unexpected_napi_ids",
    "round_robin_fallback", "bytes", "curr_items", "total_items", "slab_global_page_pool",
    "expired_unfetched", "evicted_unfetched", "evicted_active", "evictions", "reclaimed",
    "crawler_reclaimed", "crawler_items_checked", "lrutail_reflocked", "moves_to_cold",
    "moves_to_warm", "moves_within_lru", "direct_reclaims", "lru_bumps_dropped",
};
static const char *const settings_names[] = {
    "maxbytes", "maxconns", "tcpport", "udpport", "inter", "verbosity", "oldest", "evictions",
    "domain_socket", "umask", "shutdown_command", "growth_factor", "chunk_size", "num_threads",
    "num_threads_per_udp", "stat_key_prefix", "detail_enabled", "reqs_per_event",
    "cas_enabled", "tcp_backlog", "binding_protocol", "auth_enabled_sasl",
    "auth_enabled_ascii", "item_size_max", "maxconns_fast", "hashpower_init", "slab_reassign",
    "slab_automove", "slab_automove_ratio", "slab_automove_window", "slab_chunk_max",
    "lru_crawler", "lru_crawler_sleep", "lru_crawler_tocrawl", "tail_repair_time",
    "flush_enabled", "dump_enabled", "hash_algorithm", "lru_maintainer_thread",
    "lru_segmented", "hot_lru_pct", "warm_lru_pct", "hot_max_factor", "warm_max_factor",
    "temp_lru", "temporary_ttl", "idle_timeout", "watcher_logbuf_size", "worker_logbuf_size",
    "read_buf_mem_limit", "track_sizes", "inline_ascii_response", "ext_item_size",
    "ext_item_age", "ext_low_ttl", "ext_recache_rate", "ext_wbuf_size", "ext_compact_under",
    "ext_drop_under", "ext_max_sleep", "ext_max_frag", "slab_automove_freeratio",
    "ext_drop_unread", "ssl_enabled", "ssl_chain_cert", "ssl_key", "ssl_verify_mode",
    "ssl_keyformat", "ssl_ciphers", "ssl_ca_cert", "ssl_wbuf_size", "ssl_session_cache",
    "ssl_kernel_tls", "ssl_min_version", "num_napi_ids", "memory_file",
};
static const char *const items_names[] = {
    "number", "number_hot", "number_warm", "number_cold", "age_hot", "age_warm", "age",
    "mem_requested", "evicted", "evicted_nonzero", "evicted_time", "outofmemory",
    "tailrepairs", "reclaimed", "expired_unfetched", "evicted_unfetched", "evicted_active",
    "crawler_reclaimed", "crawler_items_checked", "lrutail_reflocked", "moves_to_cold",
    "moves_to_warm", "moves_within_lru", "direct_reclaims", "hits_to_hot", "hits_to_warm",
    "hits_to_cold", "hits_to_temp",
};
static const char *const slabs_names[] = {
    "chunk_size", "chunks_per_page", "total_pages", "total_chunks", "used_chunks",
    "free_chunks", "free_chunks_end", "get_hits", "cmd_set", "delete_hits", "incr_hits",
    "decr_hits", "cas_hits", "cas_badval", "touch_hits",
};

/* set: settings to use (NULL: memcached's defaults); store options from them (-M, -C). */
static void env_init(struct env *e, const struct kvs_settings *set, size_t mem_limit) {
    kvs_env_init(e, set, mem_limit, 0);
}

static char *feed(struct env *e, const char *s) {
    return feed_n(e, s, strlen(s), 0, NULL);
}

/* The names of the "STAT <name> ..." lines of a reply, with an optional prefix cut off
 * (prefix "items:1:" keeps that class's lines only). Checks the order against want. */
static int names_match(const char *reply, const char *prefix, const char *const *want,
                       size_t nwant) {
    size_t i = 0, plen = strlen(prefix);
    for (const char *l = reply; (l = strstr(l, "STAT ")) != NULL; l += 5) {
        const char *name = l + 5;
        if (strncmp(name, prefix, plen) != 0)
            continue;
        name += plen;
        size_t n = strcspn(name, " ");
        if (plen == 0 && strncmp(name, "eleos_", 6) == 0)
            continue; /* ours, after memcached's */
        if (i >= nwant || strlen(want[i]) != n || strncmp(want[i], name, n) != 0) {
            fprintf(stderr, "  field %zu: want %s, got %.*s\n", i, i < nwant ? want[i] : "-",
                    (int)n, name);
            return 0;
        }
        i++;
    }
    if (i != nwant)
        fprintf(stderr, "  %zu fields, want %zu\n", i, nwant);
    return i == nwant;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void t_field_names(void) {
    struct env e;
    env_init(&e, NULL, 0);
    char *got = feed(&e, "set a 0 0 1\r\nx\r\nstats\r\n");
    CHECK(names_match(got, "", general_names, N(general_names)));
    CHECK(strstr(got, "STAT eleos_version") != NULL);
    free(got);
    got = feed(&e, "stats settings\r\n");
    CHECK(names_match(got, "", settings_names, N(settings_names)));
    CHECK(strstr(got, "STAT ssl_chain_cert (null)\r\n") && strstr(got, "STAT umask 700\r\n"));
    CHECK(strstr(got, "STAT slab_automove_ratio 0.80\r\n") != NULL);
    free(got);
    got = feed(&e, "stats items\r\n");
    CHECK(names_match(got, "items:1:", items_names, N(items_names)));
    free(got);
    got = feed(&e, "stats slabs\r\n");
    CHECK(names_match(got, "1:", slabs_names, N(slabs_names)));
    CHECK(strstr(got, "STAT 1:cmd_set 1\r\nSTAT 1:delete_hits 0\r\n") != NULL);
    CHECK(strstr(got, "STAT active_slabs 1\r\nSTAT total_malloced 1048576\r\nEND\r\n") != NULL);
    free(got);
    env_fini(&e);
}

/* Fields memcached prints only under a setting. */
static void t_conditional_fields(void) {
    struct kvs_settings s;
    kvs_settings_default(&s);
    s.idle_timeout = 10;
    s.ssl_enabled = true;
    s.ssl_session_cache = true;
    s.lru_maintainer_thread = false;
    struct env e;
    env_init(&e, &s, 0);
    char *got = feed(&e, "set a 0 0 1\r\nx\r\nstats\r\n");
    CHECK(strstr(got, "STAT auth_errors 0\r\nSTAT idle_kicks 0\r\nSTAT bytes_read") != NULL);
    CHECK(strstr(got, "STAT log_watchers 0\r\nSTAT ssl_new_sessions 0\r\n"
                      "STAT ssl_handshake_errors 0\r\nSTAT time_since_server_cert_refresh 0\r\n"
                      "STAT unexpected_napi_ids") != NULL);
    CHECK(strstr(got, "lru_maintainer_juggles") == NULL && strstr(got, "moves_to_cold") == NULL);
    free(got);
    got = feed(&e, "stats items\r\n");
    CHECK(strstr(got, "number_hot") == NULL && strstr(got, "STAT items:1:age 0\r\n") != NULL);
    free(got);
    env_fini(&e);
}

static void t_cachedump(void) {
    struct env e;
    env_init(&e, NULL, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nx\r\nset bb 0 100 3\r\nxyz\r\n", "STORED\r\nSTORED\r\n"));
    /* most recent first; exptime as a Unix time (the clock origin is T0 - 62) */
    char want[128];
    snprintf(want, sizeof want, "ITEM bb [3 b; %d s]\r\nITEM a [1 b; 0 s]\r\nEND\r\n", T0 + 100);
    CHECK(expect(&e, "stats cachedump 1 0\r\n", want));
    snprintf(want, sizeof want, "ITEM bb [3 b; %d s]\r\nEND\r\n", T0 + 100);
    CHECK(expect(&e, "stats cachedump 1 1\r\n", want));
    CHECK(expect(&e, "stats cachedump 2 0\r\nstats cachedump 63 5\r\n", "END\r\nEND\r\n"));
    CHECK(expect(&e, "stats cachedump\r\nstats cachedump 1\r\n",
                 "CLIENT_ERROR bad command line\r\nCLIENT_ERROR bad command line\r\n"));
    CHECK(expect(&e, "stats cachedump x 1\r\nstats cachedump 64 1\r\n",
                 "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR Illegal slab id\r\n"));
    env_fini(&e);

    struct kvs_settings s; /* -X */
    kvs_settings_default(&s);
    s.dump_enabled = false;
    env_init(&e, &s, 0);
    CHECK(expect(&e, "stats cachedump 1 0\r\nstats cachedump\r\n",
                 "CLIENT_ERROR stats cachedump not allowed\r\n"
                 "CLIENT_ERROR stats cachedump not allowed\r\n"));
    env_fini(&e);
}

/* flush_all: the items' accounting drops at the next stats, as memcached's crawler drops it. */
static void t_flush_reclaim(void) {
    struct env e;
    env_init(&e, NULL, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\nflush_all\r\n",
                 "STORED\r\nSTORED\r\nOK\r\n"));
    char *got = feed(&e, "stats\r\n");
    CHECK(strstr(got, "STAT bytes 0\r\nSTAT curr_items 0\r\nSTAT total_items 2\r\n") != NULL);
    free(got);
    CHECK(expect(&e, "stats items\r\n", "END\r\n"));
    CHECK(expect(&e, "stats cachedump 1 0\r\n", "END\r\n"));
    /* stored after the flush: still there; a delayed flush waits for its deadline */
    CHECK(expect(&e, "set c 0 0 1\r\nz\r\nflush_all 10\r\n", "STORED\r\nOK\r\n"));
    got = feed(&e, "stats\r\n");
    CHECK(strstr(got, "STAT curr_items 1\r\n") != NULL);
    free(got);
    kvs_store_clock_set(e.store, T0 + 11);
    got = feed(&e, "stats\r\n");
    CHECK(strstr(got, "STAT curr_items 0\r\n") != NULL);
    free(got);
    env_fini(&e);
}

static void t_stats_reset(void) {
    struct env e;
    env_init(&e, NULL, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nx\r\nget a\r\nstats reset\r\n",
                 "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nRESET\r\n"));
    char *got = feed(&e, "stats\r\n");
    CHECK(strstr(got, "STAT curr_items 1\r\nSTAT total_items 0\r\n") != NULL);
    CHECK(strstr(got, "STAT cmd_get 0\r\n") != NULL);
    free(got);
    got = feed(&e, "stats slabs\r\n");
    CHECK(strstr(got, "STAT 1:get_hits 0\r\nSTAT 1:cmd_set 0\r\n") != NULL);
    free(got);
    env_fini(&e);
}

static void t_sizes(void) {
    struct env e;
    env_init(&e, NULL, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nx\r\nstats sizes\r\n",
                 "STORED\r\nSTAT sizes_status disabled\r\nEND\r\n"));
    /* memcached ends neither sizes_enable nor sizes_disable with END */
    CHECK(expect(&e, "stats sizes_enable\r\n", "STAT sizes_status enabled\r\n"));
    char *got = feed(&e, "stats settings\r\n");
    CHECK(strstr(got, "STAT track_sizes yes\r\n") != NULL);
    free(got);
    /* items stored before enabling are not counted; 1 + 48 + 2 + 1 + 2 + 8 = 62 -> 64 */
    CHECK(expect(&e, "set b 0 0 1\r\nx\r\nstats sizes\r\n", "STORED\r\nSTAT 64 1\r\nEND\r\n"));
    CHECK(expect(&e, "stats sizes_disable\r\nstats sizes\r\n",
                 "STAT sizes_status disabled\r\nSTAT sizes_status disabled\r\nEND\r\n"));
    env_fini(&e);
}

static void t_detail(void) {
    struct env e;
    env_init(&e, NULL, 0);
    CHECK(expect(&e, "stats detail dump\r\n", "END\r\n"));
    CHECK(expect(&e, "stats detail on\r\nset a:1 0 0 1\r\nx\r\nget a:1 a:2 nodelim\r\n"
                     "delete a:1\r\nset b:x 0 0 1\r\ny\r\n",
                 "OK\r\nSTORED\r\nVALUE a:1 0 1\r\nx\r\nEND\r\nDELETED\r\nSTORED\r\n"));
    CHECK(expect(&e, "stats detail dump\r\n", "PREFIX a get 2 hit 1 set 1 del 1\r\n"
                                              "PREFIX b get 0 hit 0 set 1 del 0\r\nEND\r\n"));
    char *got = feed(&e, "stats settings\r\n");
    CHECK(strstr(got, "STAT detail_enabled yes\r\n") != NULL);
    free(got);
    CHECK(expect(&e, "stats detail off\r\nget a:1\r\nstats detail dump\r\n",
                 "OK\r\nEND\r\nPREFIX a get 2 hit 1 set 1 del 1\r\n"
                 "PREFIX b get 0 hit 0 set 1 del 0\r\nEND\r\n"));
    CHECK(expect(&e, "stats detail\r\nstats detail x\r\n",
                 "CLIENT_ERROR usage: stats detail on|off|dump\r\n"
                 "CLIENT_ERROR usage: stats detail on|off|dump\r\n"));
    CHECK(expect(&e, "stats reset\r\nstats detail dump\r\n", "RESET\r\nEND\r\n"));
    env_fini(&e);

    struct kvs_settings s; /* -D '#': on from the start, with that delimiter */
    kvs_settings_default(&s);
    s.detail_enabled = true;
    s.prefix_delimiter = '#';
    env_init(&e, &s, 0);
    CHECK(expect(&e, "get x#1 a:1\r\nstats detail dump\r\n",
                 "END\r\nPREFIX x get 1 hit 0 set 0 del 0\r\nEND\r\n"));
    env_fini(&e);
}

static bool fake_conns(void *arg, size_t *cursor, struct kvs_conn_stat *out) {
    struct kvs_conn_info *info = arg;
    memset(out, 0, sizeof *out);
    if (*cursor >= 3)
        return false;
    out->id = 20 + (int)*cursor;
    out->listening = *cursor == 0;
    strcpy(out->addr, "tcp:127.0.0.1:1");
    strcpy(out->listen_addr, "tcp:127.0.0.1:2");
    out->info = *cursor ? &info[*cursor - 1] : NULL;
    (*cursor)++;
    return true;
}

static void t_conns(void) {
    struct env e;
    env_init(&e, NULL, 0);
    struct kvs_conn_info info[2];
    atomic_init(&info[0].last_cmd, 0);
    atomic_init(&info[0].state, KVS_CS_NEW);
    atomic_init(&info[1].last_cmd, 0);
    atomic_init(&info[1].state, KVS_CS_NREAD);
    e.p.info = &info[0]; /* the connection asking */
    e.ctx.conn_stat = fake_conns;
    e.ctx.hook_arg = info;
    kvs_store_clock_set(e.store, T0 + 5);
    char *got = feed(&e, "stats conns\r\n");
    static const char want[] =
        "STAT 20:addr tcp:127.0.0.1:1\r\nSTAT 20:state conn_listening\r\n"
        "STAT 20:secs_since_last_cmd 5\r\n"
        "STAT 21:addr tcp:127.0.0.1:1\r\nSTAT 21:listen_addr tcp:127.0.0.1:2\r\n"
        "STAT 21:state conn_parse_cmd\r\nSTAT 21:secs_since_last_cmd 0\r\n"
        "STAT 22:addr tcp:127.0.0.1:1\r\nSTAT 22:listen_addr tcp:127.0.0.1:2\r\n"
        "STAT 22:state conn_nread\r\nSTAT 22:secs_since_last_cmd 67\r\nEND\r\n";
    CHECK(strcmp(got, want) == 0);
    if (strcmp(got, want))
        fprintf(stderr, "%s", got);
    free(got);
    env_fini(&e);
}

/* 20,000 keys of 60 bytes on one line (1.2 MiB), arriving in 16 KiB reads: every key is
 * answered, and the parser never keeps more than one read plus a key unconsumed. */
static void t_long_multiget(void) {
    enum { NKEYS = 20000, KLEN = 60, CHUNK = 16384 };
    struct env e;
    env_init(&e, NULL, 0);
    size_t cap = 8 + (size_t)NKEYS * (KLEN + 1);
    char *line = malloc(cap);
    REQUIRE(line);
    size_t n = (size_t)sprintf(line, "get");
    for (int i = 0; i < NKEYS; i++)
        n += (size_t)sprintf(line + n, " %0*d", KLEN, i);
    n += (size_t)sprintf(line + n, "\r\n");
    CHECK(expect(&e, "set 000000000000000000000000000000000000000000000000000000000007 0 0 1"
                     "\r\nx\r\n", "STORED\r\n"));
    char *got = feed_n(&e, line, n, CHUNK, NULL);
    CHECK(!e.p.close);
    CHECK(strcmp(got, "VALUE 000000000000000000000000000000000000000000000000000000000007 0 1"
                      "\r\nx\r\nEND\r\n") == 0);
    CHECK(e.max_in <= CHUNK + KVS_KEY_MAX + 1);
    free(got);
    got = feed(&e, "stats\r\n");
    CHECK(strstr(got, "STAT cmd_get 20000\r\nSTAT cmd_set 1\r\n") != NULL);
    free(got);
    /* a key over 250 bytes mid-line: memcached's error once, the rest of the line dropped */
    memset(line, 'k', 3000);
    memcpy(line, "get a ", 6);
    memcpy(line + 3000, "\r\nget a\r\n", 9);
    got = feed_n(&e, line, 3009, 2500, NULL);
    CHECK(strcmp(got, "CLIENT_ERROR bad command line format\r\nEND\r\n") == 0);
    free(got);
    /* a long line of blanks with no key: ERROR, as memcached's get without a key */
    memset(line, ' ', 3000);
    memcpy(line, "gets", 4);
    memcpy(line + 3000, "\r\n", 2);
    got = feed_n(&e, line, 3002, 1000, NULL);
    CHECK(strcmp(got, "ERROR\r\n") == 0);
    free(got);
    free(line);
    env_fini(&e);
}

/* A streamed get suspends when the output limit is reached and resumes when fed again. */
static void t_long_multiget_limit(void) {
    struct env e;
    env_init(&e, NULL, 0);
    char set[64];
    for (int i = 0; i < 100; i++) {
        snprintf(set, sizeof set, "set k%03d 0 0 1000\r\n", i);
        char *r = feed(&e, set);
        free(r);
        char v[1003];
        memset(v, 'v', 1000);
        memcpy(v + 1000, "\r\n", 3);
        r = feed(&e, v);
        CHECK(strcmp(r, "STORED\r\n") == 0);
        free(r);
    }
    char line[3100] = "get";
    for (int i = 0; i < 100; i++)
        sprintf(line + strlen(line), " k%03d", i);
    size_t used0 = strlen(line);
    memset(line + used0, ' ', 3000 - used0); /* past 2048 bytes: streamed */
    line[3000] = '\0';
    e.p.out_limit = 8000;
    e.out.len = 0;
    REQUIRE(kvs_buf_append(&e.in, line, strlen(line)) == 0);
    size_t used = kvs_proto_feed(&e.p, e.in.data, e.in.len, &e.out);
    CHECK(e.p.state == KVS_PS_GETSTREAM && used < e.in.len && e.out.len < 8000 + 1100);
    kvs_buf_consume(&e.in, used);
    size_t total = e.out.len;
    for (int round = 0; round < 100 && e.in.len; round++) {
        e.out.len = 0;
        used = kvs_proto_feed(&e.p, e.in.data, e.in.len, &e.out);
        kvs_buf_consume(&e.in, used);
        total += e.out.len;
    }
    char *r = feed(&e, "\r\n");
    CHECK(strcmp(r, "END\r\n") == 0);
    free(r);
    CHECK(total == 100 * (strlen("VALUE k000 0 1000\r\n") + 1002));
    env_fini(&e);
}

/* -Y: memcached 1.6.18's replies, recorded from memcached -Y with the same table. */
static void t_auth(void) {
    static const char table[] = "alice:secret\nbob:pw2\n";
    struct kvs_auth *t;
    unsigned bad;
    REQUIRE(kvs_auth_parse(&kvs_alloc_libc, table, sizeof table - 1, &t, &bad) == 0);
    struct kvs_settings s;
    kvs_settings_default(&s);
    s.auth_ascii = true;
    strcpy(s.auth_file, "/etc/auth");
    struct env e;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"get a\r\n", "CLIENT_ERROR unauthenticated\r\n"},
        {"stats\r\n", "CLIENT_ERROR unauthenticated\r\n"},
        {"set x\r\n", "CLIENT_ERROR unauthenticated\r\n"},
        {"set x 0 0 abc\r\n", "CLIENT_ERROR unauthenticated\r\n"},
        {"set x 0 0 12\r\nalice secret\r\n", "STORED\r\n"},
        {"set x 0 0 5\r\nalice\r\n", "CLIENT_ERROR bad authentication token format\r\n"},
        {"set x 0 0 11\r\nalice wrong\r\n", "CLIENT_ERROR authentication failure\r\n"},
        {"set x 0 0 12\r\nalice secretXX", "CLIENT_ERROR bad command line termination\r\n"},
        {"set x 0 0 16\r\nalice secret bob\r\n", "STORED\r\n"},
        {"set x 0 0 6\r\n a  b \r\n", "CLIENT_ERROR authentication failure\r\n"},
        /* one read: each unauthenticated reply overwrites the previous (memcached) */
        {"garbage\r\nget a\r\nget c\r\n", "CLIENT_ERROR unauthenticated\r\n"},
        {"get a\r\nset x 0 0 12\r\nalice secret\r\nget a\r\n", "STORED\r\nEND\r\n"},
        {"set x 0 0 11\r\nalice wrong\r\nget a\r\n", "CLIENT_ERROR unauthenticated\r\n"},
        {"set x 0 0 7\r\nbob pw2\r\nset b 0 0 1\r\nz\r\nget b\r\n",
         "STORED\r\nSTORED\r\nVALUE b 0 1\r\nz\r\nEND\r\n"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        env_init(&e, &s, 0);
        e.ctx.auth_ascii = t;
        CHECK(expect(&e, cases[i].in, cases[i].out));
        CHECK(!e.p.close);
        env_fini(&e);
    }
    /* counted; the auth value may arrive in pieces; authenticated, stats work */
    env_init(&e, &s, 0);
    e.ctx.auth_ascii = t;
    static const char seq[] = "set x 0 0 11\r\nalice wrong\r\n";
    char *got = feed_n(&e, seq, sizeof seq - 1, 3, NULL);
    CHECK(strcmp(got, "CLIENT_ERROR authentication failure\r\n") == 0);
    free(got);
    static const char ok[] = "set x 0 0 12\r\nalice secret\r\n";
    got = feed_n(&e, ok, sizeof ok - 1, 5, NULL);
    CHECK(strcmp(got, "STORED\r\n") == 0);
    free(got);
    got = feed(&e, "stats\r\n");
    CHECK(strstr(got, "STAT auth_cmds 2\r\nSTAT auth_errors 1\r\n") != NULL);
    free(got);
    got = feed(&e, "stats settings\r\n");
    CHECK(strstr(got, "STAT auth_enabled_ascii /etc/auth\r\n") != NULL);
    free(got);
    env_fini(&e);
    /* 2048 bytes without a newline close an unauthenticated connection */
    env_init(&e, &s, 0);
    e.ctx.auth_ascii = t;
    char junk[2100];
    memset(junk, 'j', sizeof junk);
    got = feed_n(&e, junk, sizeof junk, 0, NULL);
    CHECK(e.p.close && e.p.abort && got[0] == '\0');
    free(got);
    env_fini(&e);
    kvs_auth_free(t);
}

/* -F, -C, -M: memcached's replies (recorded from memcached -C -F -X and -M). */
static void t_options(void) {
    struct kvs_settings s;
    kvs_settings_default(&s);
    s.flush_enabled = false;
    s.use_cas = false;
    struct env e;
    env_init(&e, &s, 0);
    CHECK(expect(&e, "set a 0 0 1\r\nx\r\ngets a\r\n", "STORED\r\nVALUE a 0 1 0\r\nx\r\nEND\r\n"));
    CHECK(expect(&e, "cas a 0 0 1 0\r\ny\r\ncas a 0 0 1 1\r\ny\r\ncas nokey 0 0 1 0\r\ny\r\n",
                 "EXISTS\r\nEXISTS\r\nNOT_FOUND\r\n"));
    CHECK(expect(&e, "set n 0 0 1\r\n5\r\nincr n 1\r\ngets n\r\n",
                 "STORED\r\n6\r\nVALUE n 0 1 0\r\n6\r\nEND\r\n"));
    CHECK(expect(&e, "flush_all\r\nflush_all noreply\r\nflush_all 10\r\n",
                 "CLIENT_ERROR flush_all not allowed\r\nCLIENT_ERROR flush_all not allowed\r\n"));
    CHECK(expect(&e, "get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n"));
    CHECK(expect(&e, "stats sizes_enable\r\n",
                 "STAT sizes_status error\r\nSTAT sizes_error cas_support_disabled\r\n"));
    char *got = feed(&e, "stats\r\n");
    CHECK(strstr(got, "STAT cmd_flush 3\r\n") != NULL);
    free(got);
    got = feed(&e, "stats settings\r\n");
    CHECK(strstr(got, "STAT cas_enabled no\r\n") && strstr(got, "STAT flush_enabled no\r\n"));
    free(got);
    env_fini(&e);

    /* -C flush_all: by access time alone, so an item stored in the same second goes too */
    kvs_settings_default(&s);
    s.use_cas = false;
    env_init(&e, &s, 0);
    CHECK(expect(&e, "flush_all\r\nset a 0 0 1\r\nx\r\nget a\r\n", "OK\r\nSTORED\r\nEND\r\n"));
    env_fini(&e);

    /* -M: out of memory instead of evicting */
    kvs_settings_default(&s);
    s.evict_to_free = false;
    env_init(&e, &s, 2u << 20);
    static char cmd[64 + 100000 + 2];
    int stored = 0, oom = 0;
    for (int i = 0; i < 40; i++) {
        int n = snprintf(cmd, 64, "set k%d 0 0 100000\r\n", i);
        memset(cmd + n, 'a', 100000);
        memcpy(cmd + n + 100000, "\r\n", 2);
        char *r = feed_n(&e, cmd, (size_t)n + 100002, 0, NULL);
        stored += strcmp(r, "STORED\r\n") == 0;
        oom += strcmp(r, "SERVER_ERROR out of memory storing object\r\n") == 0;
        free(r);
    }
    CHECK(stored > 0 && oom > 0 && stored + oom == 40);
    if (!(stored > 0 && oom > 0 && stored + oom == 40))
        fprintf(stderr, "  stored %d, out of memory %d\n", stored, oom);
    got = feed(&e, "get k0\r\nstats\r\n");
    CHECK(strncmp(got, "VALUE k0 0 100000\r\n", 19) == 0); /* nothing was evicted */
    CHECK(strstr(got, "STAT evictions 0\r\n") != NULL);
    free(got);
    got = feed(&e, "stats settings\r\n");
    CHECK(strstr(got, "STAT evictions off\r\n") != NULL);
    free(got);
    env_fini(&e);
}

TEST_MAIN(TEST_CASE(t_field_names), TEST_CASE(t_conditional_fields), TEST_CASE(t_cachedump),
          TEST_CASE(t_flush_reclaim), TEST_CASE(t_stats_reset), TEST_CASE(t_sizes),
          TEST_CASE(t_detail), TEST_CASE(t_conns), TEST_CASE(t_long_multiget),
          TEST_CASE(t_long_multiget_limit), TEST_CASE(t_auth), TEST_CASE(t_options))
