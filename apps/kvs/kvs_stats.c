/*
 * kvs_stats.c — memcached 1.6.18's `stats` command and its groups, for every protocol.
 *
 * Every group memcached answers, with its fields in its order (its Debian build: extstore
 * compiled in, so `stats settings` has the ext_* fields; TLS too). A field whose mechanism
 * eleos-kvs has (counters, settings) carries our value; one whose mechanism we lack (the
 * LRU crawler and maintainer, the slab mover, the logger, extstore, libevent's response
 * objects and read buffers) carries what an idle memcached prints, usually 0 (docs/kvs.md
 * lists them). Fields memcached prints only under a setting are printed under the same
 * setting (kvs_ctx_settings). Our own eleos_* fields follow memcached's.
 *
 * Items a flush_all made invisible are reclaimed before any group that counts items is
 * printed (kvs_store_reclaim_flushed), so curr_items drops at once, as memcached's LRU
 * crawler makes it drop within a second.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kvs_proto.h"
#include "kvs_proto_internal.h"

/* memcached's item_cachedump: replies stop at 2 MiB. */
#define CACHEDUMP_MAX (2u << 20)
/* memcached's MAX_NUMBER_OF_SLAB_CLASSES (63 + 1): cachedump's class id bound. */
#define MC_MAX_SLAB_CLASSES 64u
/* memcached's settings that have no counterpart here, at their defaults (extstore). */
#define EXT_ITEM_SIZE 512u
#define EXT_WBUF_SIZE (4u << 20)
#define EXT_RECACHE_RATE 2000u
#define EXT_MAX_SLEEP 1000000u

#define STAT_U(name, v) kvs_out_printf(p, out, "STAT %s %llu\r\n", name, (unsigned long long)(v))
#define STAT_S(name, v) kvs_out_printf(p, out, "STAT %s %s\r\n", name, v)
#define STAT_YN(name, v) STAT_S(name, (v) ? "yes" : "no")

bool kvs_detail_on(const struct kvs_ctx *c) {
    int d = atomic_load_explicit(&c->detail, memory_order_relaxed);
    return d == 0 ? kvs_ctx_settings(c)->detail_enabled : d == 1;
}

void kvs_detail_record(struct kvs_proto *p, const char *key, size_t nkey, int op, bool hit) {
    if (kvs_detail_on(p->ctx))
        kvs_store_prefix_record(p->ctx->store, kvs_ctx_settings(p->ctx)->prefix_delimiter, key,
                                nkey, (enum kvs_prefix_op)op, hit);
}

/* --- stats (general) ------------------------------------------------------------------- */

/* pid .. reserved_fds */
static void general_process(struct kvs_proto *p, struct kvs_buf *out,
                            const struct kvs_server_info *si, uint32_t now) {
    const struct kvs_settings *set = kvs_ctx_settings(p->ctx);
    STAT_U("pid", si->pid);
    STAT_U("uptime", now - KVS_CLOCK_ORIGIN_SLACK);
    STAT_U("time", (uint64_t)(kvs_store_process_started(p->ctx->store) + now));
    STAT_S("version", KVS_MEMCACHED_VERSION);
    STAT_S("libevent", "none"); /* no libevent here */
    STAT_U("pointer_size", sizeof(void *) * 8);
    kvs_out_printf(p, out, "STAT rusage_user %.6f\r\n", si->rusage_user);
    kvs_out_printf(p, out, "STAT rusage_system %.6f\r\n", si->rusage_system);
    STAT_U("max_connections", si->max_connections);
    STAT_U("curr_connections", si->curr_connections);
    STAT_U("total_connections", si->total_connections);
    if (set->maxconns_fast)
        STAT_U("rejected_connections", si->rejected_connections);
    STAT_U("connection_structures", si->connection_structures);
    /* memcached's response objects and read buffers: libevent-loop internals we lack */
    static const char *const bufs[] = {"response_obj_oom", "response_obj_count",
                                       "response_obj_bytes", "read_buf_count",
                                       "read_buf_bytes", "read_buf_bytes_free", "read_buf_oom"};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        STAT_U(bufs[i], 0);
    STAT_U("reserved_fds", si->reserved_fds);
}

/* cmd_get .. bytes_written */
static void general_commands(struct kvs_proto *p, struct kvs_buf *out,
                             const struct kvs_server_info *si,
                             const struct kvs_store_stats *ss) {
    const struct kvs_thread_totals *t = &si->totals;
    STAT_U("cmd_get", t->get_cmds);
    STAT_U("cmd_set", t->set_cmds);
    STAT_U("cmd_flush", t->flush_cmds);
    STAT_U("cmd_touch", t->touch_cmds);
    STAT_U("cmd_meta", t->meta_cmds);
    STAT_U("get_hits", t->get_hits);
    STAT_U("get_misses", t->get_misses);
    STAT_U("get_expired", ss->get_expired);
    STAT_U("get_flushed", ss->get_flushed);
    STAT_U("delete_misses", t->delete_misses);
    STAT_U("delete_hits", t->delete_hits);
    STAT_U("incr_misses", t->incr_misses);
    STAT_U("incr_hits", t->incr_hits);
    STAT_U("decr_misses", t->decr_misses);
    STAT_U("decr_hits", t->decr_hits);
    STAT_U("cas_misses", t->cas_misses);
    STAT_U("cas_hits", t->cas_hits);
    STAT_U("cas_badval", t->cas_badval);
    STAT_U("touch_hits", t->touch_hits);
    STAT_U("touch_misses", t->touch_misses);
    STAT_U("store_too_large", t->store_too_large);
    STAT_U("store_no_memory", t->store_no_memory);
    STAT_U("auth_cmds", t->auth_cmds);
    STAT_U("auth_errors", t->auth_errors);
    if (kvs_ctx_settings(p->ctx)->idle_timeout)
        STAT_U("idle_kicks", si->idle_kicks);
    STAT_U("bytes_read", t->bytes_read);
    STAT_U("bytes_written", t->bytes_written);
}

/* limit_maxbytes .. round_robin_fallback */
static void general_server(struct kvs_proto *p, struct kvs_buf *out,
                           const struct kvs_server_info *si, const struct kvs_store_stats *ss,
                           uint32_t now) {
    const struct kvs_settings *set = kvs_ctx_settings(p->ctx);
    STAT_U("limit_maxbytes", ss->limit_maxbytes);
    STAT_U("accepting_conns", 1);
    STAT_U("listen_disabled_num", 0);
    STAT_U("time_in_listen_disabled_us", 0);
    STAT_U("threads", si->threads);
    STAT_U("conn_yields", si->totals.conn_yields);
    STAT_U("hash_power_level", ss->hash_power_level);
    STAT_U("hash_bytes", ss->hash_bytes);
    STAT_U("hash_is_expanding", 0);
    if (set->slab_reassign) {
        static const char *const mover[] = {
            "slab_reassign_rescues", "slab_reassign_chunk_rescues",
            "slab_reassign_evictions_nomem", "slab_reassign_inline_reclaim",
            "slab_reassign_busy_items", "slab_reassign_busy_deletes",
            "slab_reassign_running", "slabs_moved"};
        for (size_t i = 0; i < sizeof mover / sizeof mover[0]; i++)
            STAT_U(mover[i], 0);
    }
    if (set->lru_crawler) {
        STAT_U("lru_crawler_running", 0);
        STAT_U("lru_crawler_starts", 0);
    }
    if (set->lru_maintainer_thread)
        STAT_U("lru_maintainer_juggles", 0);
    STAT_U("malloc_fails", 0);
    static const char *const logger[] = {"log_worker_dropped", "log_worker_written",
                                         "log_watcher_skipped", "log_watcher_sent",
                                         "log_watchers"};
    for (size_t i = 0; i < sizeof logger / sizeof logger[0]; i++)
        STAT_U(logger[i], 0);
    if (set->ssl_enabled) {
        if (set->ssl_session_cache)
            STAT_U("ssl_new_sessions", si->ssl_new_sessions);
        STAT_U("ssl_handshake_errors", si->ssl_handshake_errors);
        int64_t unix_now = kvs_store_process_started(p->ctx->store) + now;
        int64_t since = si->ssl_cert_refreshed ? unix_now - si->ssl_cert_refreshed : 0;
        STAT_U("time_since_server_cert_refresh", since > 0 ? since : 0);
    }
    STAT_U("unexpected_napi_ids", 0);
    STAT_U("round_robin_fallback", 0);
}

/* bytes .. lru_bumps_dropped */
static void general_items(struct kvs_proto *p, struct kvs_buf *out,
                          const struct kvs_store_stats *ss) {
    bool maint = kvs_ctx_settings(p->ctx)->lru_maintainer_thread;
    STAT_U("bytes", ss->bytes);
    STAT_U("curr_items", ss->curr_items);
    STAT_U("total_items", ss->total_items);
    STAT_U("slab_global_page_pool", 0);
    STAT_U("expired_unfetched", ss->expired_unfetched);
    STAT_U("evicted_unfetched", ss->evicted_unfetched);
    if (maint)
        STAT_U("evicted_active", 0);
    STAT_U("evictions", ss->evictions);
    STAT_U("reclaimed", ss->reclaimed);
    STAT_U("crawler_reclaimed", 0);
    STAT_U("crawler_items_checked", 0);
    STAT_U("lrutail_reflocked", 0);
    if (maint) {
        STAT_U("moves_to_cold", 0);
        STAT_U("moves_to_warm", 0);
        STAT_U("moves_within_lru", 0);
        STAT_U("direct_reclaims", 0);
        STAT_U("lru_bumps_dropped", 0);
    }
}

static void stats_general(struct kvs_proto *p, struct kvs_buf *out) {
    struct kvs_ctx *c = p->ctx;
    struct kvs_server_info si;
    memset(&si, 0, sizeof si);
    if (c->server_info)
        c->server_info(c->hook_arg, &si);
    if (!si.have_totals)
        kvs_thread_stats_sum(p->stats, &si.totals);
    kvs_store_reclaim_flushed(c->store);
    struct kvs_store_stats ss;
    kvs_store_stats(c->store, &ss);
    uint32_t now = kvs_store_current_time(c->store);

    general_process(p, out, &si, now);
    general_commands(p, out, &si, &ss);
    general_server(p, out, &si, &ss, now);
    general_items(p, out, &ss);
    /* The eleos group: our own fields, after memcached's. */
    STAT_S("eleos_version", KVS_ELEOS_VERSION);
    STAT_U("eleos_slab_bytes_malloced", ss.malloced);
    STAT_U("eleos_metadata_bytes", ss.metadata_bytes);
    STAT_U("eleos_store_outofmemory", ss.outofmemory);
    STAT_U("eleos_backend_errors", ss.backend_errors);
    STAT_U("eleos_protocol_errors", si.totals.protocol_errors);
    if (c->eleos_stats && c->eleos_stats(c->hook_arg, out))
        p->close = p->abort = true;
}

/* --- stats settings ------------------------------------------------------------------------ */

static const char *binding_text(enum kvs_binding b) {
    return b == KVS_BIND_ASCII ? "ascii" : b == KVS_BIND_BINARY ? "binary" : "auto-negotiate";
}

/* maxbytes .. auth_enabled_ascii */
static void settings_first(struct kvs_proto *p, struct kvs_buf *out,
                           const struct kvs_settings *s) {
    STAT_U("maxbytes", s->maxbytes);
    STAT_U("maxconns", s->maxconns);
    STAT_U("tcpport", s->port);
    STAT_U("udpport", s->udpport);
    STAT_S("inter", s->inter[0] ? s->inter : "NULL");
    STAT_U("verbosity", atomic_load_explicit(&p->ctx->verbosity, memory_order_relaxed));
    STAT_U("oldest", kvs_store_oldest_live(p->ctx->store));
    STAT_S("evictions", s->evict_to_free ? "on" : "off");
    STAT_S("domain_socket", s->socketpath[0] ? s->socketpath : "NULL");
    kvs_out_printf(p, out, "STAT umask %o\r\n", s->access);
    STAT_YN("shutdown_command", s->shutdown_command);
    kvs_out_printf(p, out, "STAT growth_factor %.2f\r\n", s->factor);
    STAT_U("chunk_size", s->chunk_size);
    STAT_U("num_threads", s->num_threads);
    STAT_U("num_threads_per_udp", s->num_threads_per_udp);
    kvs_out_printf(p, out, "STAT stat_key_prefix %c\r\n", s->prefix_delimiter);
    STAT_YN("detail_enabled", kvs_detail_on(p->ctx));
    STAT_U("reqs_per_event", s->reqs_per_event);
    STAT_YN("cas_enabled", s->use_cas);
    STAT_U("tcp_backlog", s->backlog);
    STAT_S("binding_protocol", binding_text(s->binding));
    STAT_YN("auth_enabled_sasl", s->sasl);
    STAT_S("auth_enabled_ascii", s->auth_ascii ? s->auth_file : "no");
}

/* item_size_max .. inline_ascii_response */
static void settings_middle(struct kvs_proto *p, struct kvs_buf *out,
                            const struct kvs_settings *s) {
    STAT_U("item_size_max", s->item_size_max);
    STAT_YN("maxconns_fast", s->maxconns_fast);
    STAT_U("hashpower_init", s->hashpower_init);
    STAT_YN("slab_reassign", s->slab_reassign);
    kvs_out_printf(p, out, "STAT slab_automove %d\r\n", s->slab_automove);
    kvs_out_printf(p, out, "STAT slab_automove_ratio %.2f\r\n", s->slab_automove_ratio);
    STAT_U("slab_automove_window", s->slab_automove_window);
    STAT_U("slab_chunk_max", s->slab_chunk_max);
    STAT_YN("lru_crawler", s->lru_crawler);
    STAT_U("lru_crawler_sleep", s->lru_crawler_sleep);
    STAT_U("lru_crawler_tocrawl", s->lru_crawler_tocrawl);
    STAT_U("tail_repair_time", s->tail_repair_time);
    STAT_YN("flush_enabled", s->flush_enabled);
    STAT_YN("dump_enabled", s->dump_enabled);
    STAT_S("hash_algorithm", s->hash_algorithm);
    STAT_YN("lru_maintainer_thread", s->lru_maintainer_thread);
    STAT_YN("lru_segmented", s->lru_segmented);
    STAT_U("hot_lru_pct", s->hot_lru_pct);
    STAT_U("warm_lru_pct", s->warm_lru_pct);
    kvs_out_printf(p, out, "STAT hot_max_factor %.2f\r\n", s->hot_max_factor);
    kvs_out_printf(p, out, "STAT warm_max_factor %.2f\r\n", s->warm_max_factor);
    STAT_YN("temp_lru", s->temp_lru);
    STAT_U("temporary_ttl", s->temporary_ttl);
    STAT_U("idle_timeout", s->idle_timeout);
    STAT_U("watcher_logbuf_size", s->watcher_logbuf_size);
    STAT_U("worker_logbuf_size", s->worker_logbuf_size);
    STAT_U("read_buf_mem_limit", s->read_buf_mem_limit);
    STAT_YN("track_sizes", kvs_store_sizes_enabled(p->ctx->store));
    STAT_S("inline_ascii_response", "no"); /* dead in memcached too */
}

/* ext_* (memcached's extstore defaults: we have no extstore) .. memory_file */
static void settings_last(struct kvs_proto *p, struct kvs_buf *out,
                          const struct kvs_settings *s) {
    STAT_U("ext_item_size", EXT_ITEM_SIZE);
    STAT_U("ext_item_age", UINT32_MAX);
    STAT_U("ext_low_ttl", 0);
    STAT_U("ext_recache_rate", EXT_RECACHE_RATE);
    STAT_U("ext_wbuf_size", EXT_WBUF_SIZE);
    STAT_U("ext_compact_under", 0);
    STAT_U("ext_drop_under", 0);
    STAT_U("ext_max_sleep", EXT_MAX_SLEEP);
    STAT_S("ext_max_frag", "0.80");
    STAT_S("slab_automove_freeratio", "0.010");
    STAT_S("ext_drop_unread", "no");
    STAT_YN("ssl_enabled", s->ssl_enabled);
    /* memcached prints these NULL strings with %s: glibc's "(null)" */
    STAT_S("ssl_chain_cert", s->ssl_chain_cert[0] ? s->ssl_chain_cert : "(null)");
    STAT_S("ssl_key", s->ssl_key[0] ? s->ssl_key : "(null)");
    kvs_out_printf(p, out, "STAT ssl_verify_mode %d\r\n", s->ssl_verify_mode);
    kvs_out_printf(p, out, "STAT ssl_keyformat %d\r\n", s->ssl_keyformat);
    STAT_S("ssl_ciphers", s->ssl_ciphers[0] ? s->ssl_ciphers : "NULL");
    STAT_S("ssl_ca_cert", s->ssl_ca_cert[0] ? s->ssl_ca_cert : "NULL");
    STAT_U("ssl_wbuf_size", s->ssl_wbuf_size);
    STAT_YN("ssl_session_cache", s->ssl_session_cache);
    STAT_YN("ssl_kernel_tls", s->ssl_kernel_tls);
    STAT_S("ssl_min_version", s->ssl_min_version);
    STAT_S("num_napi_ids", "(null)");
    STAT_S("memory_file", "(null)");
}

static void stats_settings(struct kvs_proto *p, struct kvs_buf *out) {
    const struct kvs_settings *s = kvs_ctx_settings(p->ctx);
    settings_first(p, out, s);
    settings_middle(p, out, s);
    settings_last(p, out, s);
}

/* --- stats items / slabs --------------------------------------------------------------- */

#define ITEM_U(cls, name, v)                                                                \
    kvs_out_printf(p, out, "STAT items:%u:%s %llu\r\n", cls, name, (unsigned long long)(v))

/* One class of `stats items`. Our LRU is one list per class: memcached's COLD (where its
 * items end up; cachedump shows it), so number_cold is every item and hot/warm are empty. */
static void items_class(struct kvs_proto *p, struct kvs_buf *out, unsigned i,
                        const struct kvs_slab_stats *st) {
    const struct kvs_settings *set = kvs_ctx_settings(p->ctx);
    bool maint = set->lru_maintainer_thread;
    ITEM_U(i, "number", st->items);
    if (maint) {
        ITEM_U(i, "number_hot", 0);
        ITEM_U(i, "number_warm", 0);
        ITEM_U(i, "number_cold", st->items);
        if (set->temp_lru)
            ITEM_U(i, "number_temp", 0);
        ITEM_U(i, "age_hot", 0);
        ITEM_U(i, "age_warm", 0);
    }
    ITEM_U(i, "age", st->age);
    ITEM_U(i, "mem_requested", st->requested);
    ITEM_U(i, "evicted", st->evicted);
    ITEM_U(i, "evicted_nonzero", st->evicted_nonzero);
    ITEM_U(i, "evicted_time", st->evicted_time);
    ITEM_U(i, "outofmemory", st->outofmemory);
    ITEM_U(i, "tailrepairs", 0);
    ITEM_U(i, "reclaimed", st->reclaimed);
    ITEM_U(i, "expired_unfetched", st->expired_unfetched);
    ITEM_U(i, "evicted_unfetched", st->evicted_unfetched);
    if (maint)
        ITEM_U(i, "evicted_active", 0);
    ITEM_U(i, "crawler_reclaimed", 0);
    ITEM_U(i, "crawler_items_checked", 0);
    ITEM_U(i, "lrutail_reflocked", 0);
    if (maint) {
        static const char *const lru[] = {"moves_to_cold", "moves_to_warm", "moves_within_lru",
                                          "direct_reclaims", "hits_to_hot", "hits_to_warm"};
        for (size_t k = 0; k < sizeof lru / sizeof lru[0]; k++)
            ITEM_U(i, lru[k], 0);
        ITEM_U(i, "hits_to_cold", st->cnt.get_hits);
        ITEM_U(i, "hits_to_temp", 0);
    }
}

#define SLAB_U(cls, name, v)                                                                \
    kvs_out_printf(p, out, "STAT %u:%s %llu\r\n", cls, name, (unsigned long long)(v))

static void slabs_class(struct kvs_proto *p, struct kvs_buf *out, unsigned i,
                        const struct kvs_slab_stats *st) {
    uint64_t total = st->total_pages * st->chunks_per_page;
    /* memcached carves a page at once: its free chunks include our uncarved end. */
    uint64_t free_chunks = st->free_chunks + st->free_chunks_end;
    SLAB_U(i, "chunk_size", st->chunk_size);
    SLAB_U(i, "chunks_per_page", st->chunks_per_page);
    SLAB_U(i, "total_pages", st->total_pages);
    SLAB_U(i, "total_chunks", total);
    SLAB_U(i, "used_chunks", total - free_chunks);
    SLAB_U(i, "free_chunks", free_chunks);
    SLAB_U(i, "free_chunks_end", 0); /* "dead" in memcached: always 0 */
    SLAB_U(i, "get_hits", st->cnt.get_hits);
    SLAB_U(i, "cmd_set", st->cnt.set_cmds);
    SLAB_U(i, "delete_hits", st->cnt.delete_hits);
    SLAB_U(i, "incr_hits", st->cnt.incr_hits);
    SLAB_U(i, "decr_hits", st->cnt.decr_hits);
    SLAB_U(i, "cas_hits", st->cnt.cas_hits);
    SLAB_U(i, "cas_badval", st->cnt.cas_badval);
    SLAB_U(i, "touch_hits", st->cnt.touch_hits);
}

static void stats_slabs(struct kvs_proto *p, struct kvs_buf *out, bool items) {
    struct kvs_slab_stats st;
    uint64_t active = 0;
    kvs_store_reclaim_flushed(p->ctx->store);
    for (unsigned i = 1; kvs_store_slab_stats(p->ctx->store, i, &st); i++) {
        if (items && st.items)
            items_class(p, out, i, &st);
        if (!items && st.total_pages) {
            slabs_class(p, out, i, &st);
            active++;
        }
    }
    if (!items) {
        struct kvs_store_stats ss;
        kvs_store_stats(p->ctx->store, &ss);
        STAT_U("active_slabs", active);
        STAT_U("total_malloced", ss.malloced);
    }
}

/* --- stats sizes, conns, cachedump, detail ------------------------------------------- */

struct emit {
    struct kvs_proto *p;
    struct kvs_buf *out;
    size_t start;
};

static void sizes_line(void *arg, size_t size, uint64_t n) {
    struct emit *e = arg;
    kvs_out_printf(e->p, e->out, "STAT %zu %llu\r\n", size, (unsigned long long)n);
}

/* `stats sizes[_enable|_disable]`; memcached ends only `stats sizes` with END. */
static void stats_sizes(struct kvs_proto *p, struct kvs_buf *out, const char *sub) {
    struct kvs_store *s = p->ctx->store;
    if (strcmp(sub, "sizes_enable") == 0) {
        int r = kvs_store_sizes_enable(s);
        static const char no_cas[] = "STAT sizes_status error\r\n"
                                     "STAT sizes_error cas_support_disabled\r\n";
        static const char on[] = "STAT sizes_status enabled\r\n";
        if (r == -EPERM)
            kvs_out_raw(p, out, no_cas, sizeof no_cas - 1);
        else
            kvs_out_raw(p, out, on, sizeof on - 1);
        return;
    }
    if (strcmp(sub, "sizes_disable") == 0) {
        kvs_store_sizes_disable(s);
        kvs_out_raw(p, out, "STAT sizes_status disabled\r\n", 28);
        return;
    }
    struct emit e = {p, out, out->len};
    if (!kvs_store_sizes_enabled(s))
        kvs_out_raw(p, out, "STAT sizes_status disabled\r\n", 28);
    else if (kvs_store_sizes(s, sizes_line, &e)) {
        out->len = e.start;
        kvs_out_error(p, out, "SERVER_ERROR out of memory writing stats");
        return;
    }
    kvs_out_raw(p, out, "END\r\n", 5);
}

static const char *conn_state_name(const struct kvs_proto *p, const struct kvs_conn_stat *st) {
    if (st->listening)
        return "conn_listening";
    if (st->info == p->info)
        return "conn_parse_cmd"; /* the connection asking */
    switch (atomic_load_explicit(&st->info->state, memory_order_relaxed)) {
    case KVS_CS_READ: return "conn_read";
    case KVS_CS_NREAD: return "conn_nread";
    case KVS_CS_SWALLOW: return "conn_swallow";
    case KVS_CS_MWRITE: return "conn_mwrite";
    case KVS_CS_CLOSING: return "conn_closing";
    default: return "conn_new_cmd";
    }
}

static void stats_conns(struct kvs_proto *p, struct kvs_buf *out) {
    struct kvs_ctx *c = p->ctx;
    struct kvs_conn_stat st;
    uint32_t now = kvs_store_current_time(c->store);
    size_t cursor = 0;
    while (c->conn_stat && c->conn_stat(c->hook_arg, &cursor, &st)) {
        st.addr[sizeof st.addr - 1] = st.listen_addr[sizeof st.listen_addr - 1] = '\0';
        kvs_out_printf(p, out, "STAT %d:addr %s\r\n", st.id, st.addr);
        if (!st.listening)
            kvs_out_printf(p, out, "STAT %d:listen_addr %s\r\n", st.id, st.listen_addr);
        kvs_out_printf(p, out, "STAT %d:state %s\r\n", st.id, conn_state_name(p, &st));
        uint32_t last = st.info ? atomic_load_explicit(&st.info->last_cmd, memory_order_relaxed)
                                : KVS_CLOCK_ORIGIN_SLACK;
        kvs_out_printf(p, out, "STAT %d:secs_since_last_cmd %d\r\n", st.id,
                       (int)(now >= last ? now - last : 0));
    }
}

static bool dump_line(void *arg, const char *key, size_t nkey, uint32_t nbytes,
                      int64_t exptime) {
    struct emit *e = arg;
    char line[KVS_KEY_MAX + 64];
    int n = snprintf(line, sizeof line, "ITEM %.*s [%u b; %lld s]\r\n", (int)nkey, key, nbytes,
                     (long long)exptime);
    if (n < 0 || e->out->len - e->start + (size_t)n + 5 > CACHEDUMP_MAX)
        return false;
    kvs_out_raw(e->p, e->out, line, (size_t)n);
    return true;
}

static void stats_cachedump(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                            struct kvs_buf *out) {
    uint32_t id, limit;
    if (!kvs_ctx_settings(p->ctx)->dump_enabled) {
        kvs_out_error(p, out, "CLIENT_ERROR stats cachedump not allowed");
        return;
    }
    if (ntokens < 5) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line");
        return;
    }
    if (!kvs_safe_strtoul(tokens[2].value, &id) || !kvs_safe_strtoul(tokens[3].value, &limit)) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    if (id >= MC_MAX_SLAB_CLASSES) {
        kvs_out_error(p, out, "CLIENT_ERROR Illegal slab id");
        return;
    }
    kvs_store_reclaim_flushed(p->ctx->store);
    struct emit e = {p, out, out->len};
    kvs_store_cachedump(p->ctx->store, id, limit, dump_line, &e);
    kvs_out_raw(p, out, "END\r\n", 5);
}

static bool prefix_line(void *arg, const char *prefix, size_t len, const uint64_t n[4]) {
    struct emit *e = arg;
    kvs_out_printf(e->p, e->out, "PREFIX %.*s get %llu hit %llu set %llu del %llu\r\n",
                   (int)len, prefix, (unsigned long long)n[0], (unsigned long long)n[1],
                   (unsigned long long)n[2], (unsigned long long)n[3]);
    return !e->p->abort;
}

static void stats_detail(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                         struct kvs_buf *out) {
    const char *arg = ntokens < 4 ? "" : tokens[2].value;
    if (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0) {
        atomic_store_explicit(&p->ctx->detail, arg[1] == 'n' ? 1 : 2, memory_order_relaxed);
        kvs_out_string(p, out, "OK");
    } else if (strcmp(arg, "dump") == 0) {
        struct emit e = {p, out, out->len};
        kvs_store_prefix_dump(p->ctx->store, prefix_line, &e);
        kvs_out_raw(p, out, "END\r\n", 5);
    } else {
        kvs_out_error(p, out, "CLIENT_ERROR usage: stats detail on|off|dump");
    }
}

/* --- dispatch ------------------------------------------------------------------------------ */

void kvs_process_stats(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                       struct kvs_buf *out) {
    struct kvs_ctx *c = p->ctx;
    if (ntokens == 2) {
        stats_general(p, out);
        kvs_out_raw(p, out, "END\r\n", 5);
        return;
    }
    const char *sub = tokens[1].value;
    if (strcmp(sub, "reset") == 0) {
        kvs_thread_stats_reset(p->stats);
        kvs_store_stats_reset(c->store);
        if (c->stats_reset)
            c->stats_reset(c->hook_arg);
        kvs_out_string(p, out, "RESET");
        return;
    }
    if (strcmp(sub, "detail") == 0) {
        stats_detail(p, tokens, ntokens, out);
        return;
    }
    if (strcmp(sub, "cachedump") == 0) {
        stats_cachedump(p, tokens, ntokens, out);
        return;
    }
    if (strncmp(sub, "sizes", 5) == 0 &&
        (!sub[5] || !strcmp(sub + 5, "_enable") || !strcmp(sub + 5, "_disable"))) {
        stats_sizes(p, out, sub);
        return;
    }
    if (strcmp(sub, "settings") == 0)
        stats_settings(p, out);
    else if (strcmp(sub, "slabs") == 0)
        stats_slabs(p, out, false);
    else if (strcmp(sub, "items") == 0)
        stats_slabs(p, out, true);
    else if (strcmp(sub, "conns") == 0)
        stats_conns(p, out);
    else if (strcmp(sub, "eleos") == 0) {
        if (c->eleos_stats && c->eleos_stats(c->hook_arg, out))
            p->close = p->abort = true;
    } else {
        kvs_out_error(p, out, "ERROR");
        return;
    }
    kvs_out_raw(p, out, "END\r\n", 5);
}
