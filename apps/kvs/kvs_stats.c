/*
 * kvs_stats.c — memcached 1.6.18's `stats` command and its groups, for every protocol.
 */
#include <stdio.h>
#include <string.h>

#include "kvs_proto.h"
#include "kvs_proto_internal.h"

/* --- stats -------------------------------------------------------------------------------- */

#define STAT_U(name, v) kvs_out_printf(p, out, "STAT %s %llu\r\n", name, (unsigned long long)(v))

static void stats_general(struct kvs_proto *p, struct kvs_buf *out) {
    struct kvs_ctx *c = p->ctx;
    struct kvs_server_info si;
    memset(&si, 0, sizeof si);
    if (c->server_info)
        c->server_info(c->hook_arg, &si);
    if (!si.have_totals)
        kvs_thread_stats_sum(p->stats, &si.totals);
    struct kvs_store_stats ss;
    kvs_store_stats(c->store, &ss);
    uint32_t now = kvs_store_current_time(c->store);
    const struct kvs_thread_totals *t = &si.totals;

    STAT_U("pid", si.pid);
    STAT_U("uptime", now - KVS_CLOCK_ORIGIN_SLACK);
    STAT_U("time", (uint64_t)(kvs_store_process_started(c->store) + now));
    kvs_out_printf(p, out, "STAT version %s\r\n", KVS_MEMCACHED_VERSION);
    STAT_U("pointer_size", sizeof(void *) * 8);
    kvs_out_printf(p, out, "STAT rusage_user %.6f\r\n", si.rusage_user);
    kvs_out_printf(p, out, "STAT rusage_system %.6f\r\n", si.rusage_system);
    STAT_U("max_connections", si.max_connections);
    STAT_U("curr_connections", si.curr_connections);
    STAT_U("total_connections", si.total_connections);
    STAT_U("rejected_connections", si.rejected_connections);
    STAT_U("connection_structures", si.connection_structures);
    STAT_U("reserved_fds", si.reserved_fds);
    STAT_U("cmd_get", t->get_cmds);
    STAT_U("cmd_set", t->set_cmds);
    STAT_U("cmd_flush", t->flush_cmds);
    STAT_U("cmd_touch", t->touch_cmds);
    STAT_U("cmd_meta", 0);
    STAT_U("get_hits", t->get_hits);
    STAT_U("get_misses", t->get_misses);
    STAT_U("get_expired", ss.get_expired);
    STAT_U("get_flushed", ss.get_flushed);
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
    STAT_U("auth_cmds", 0);
    STAT_U("auth_errors", 0);
    STAT_U("bytes_read", t->bytes_read);
    STAT_U("bytes_written", t->bytes_written);
    STAT_U("limit_maxbytes", ss.limit_maxbytes);
    STAT_U("accepting_conns", 1);
    STAT_U("listen_disabled_num", 0);
    STAT_U("threads", si.threads);
    STAT_U("conn_yields", t->conn_yields);
    STAT_U("hash_power_level", ss.hash_power_level);
    STAT_U("hash_bytes", ss.hash_bytes);
    STAT_U("hash_is_expanding", 0);
    STAT_U("malloc_fails", 0);
    STAT_U("bytes", ss.bytes);
    STAT_U("curr_items", ss.curr_items);
    STAT_U("total_items", ss.total_items);
    STAT_U("expired_unfetched", ss.expired_unfetched);
    STAT_U("evicted_unfetched", ss.evicted_unfetched);
    STAT_U("evictions", ss.evictions);
    STAT_U("reclaimed", ss.reclaimed);
    /* The eleos group: our own fields, after memcached's. */
    kvs_out_printf(p, out, "STAT eleos_version %s\r\n", KVS_ELEOS_VERSION);
    STAT_U("eleos_slab_bytes_malloced", ss.malloced);
    STAT_U("eleos_metadata_bytes", ss.metadata_bytes);
    STAT_U("eleos_store_outofmemory", ss.outofmemory);
    STAT_U("eleos_backend_errors", ss.backend_errors);
    STAT_U("eleos_protocol_errors", t->protocol_errors);
    if (c->eleos_stats && c->eleos_stats(c->hook_arg, out))
        p->close = p->abort = true;
}

static void stats_settings(struct kvs_proto *p, struct kvs_buf *out) {
    struct kvs_ctx *c = p->ctx;
    STAT_U("maxbytes", c->maxbytes);
    STAT_U("maxconns", c->maxconns);
    STAT_U("tcpport", c->port);
    STAT_U("udpport", 0);
    kvs_out_printf(p, out, "STAT inter %s\r\n", c->interface ? c->interface : "NULL");
    STAT_U("verbosity", atomic_load_explicit(&c->verbosity, memory_order_relaxed));
    STAT_U("oldest", 0);
    kvs_out_printf(p, out, "STAT evictions on\r\n");
    kvs_out_printf(p, out, "STAT growth_factor %.2f\r\n", KVS_SLAB_FACTOR);
    STAT_U("chunk_size", KVS_SLAB_CHUNK_MIN - KVS_ITEM_HEADER_SIZE);
    STAT_U("num_threads", c->threads);
    STAT_U("cas_enabled", 1);
    STAT_U("item_size_max", kvs_store_item_size_max(c->store));
}

static void stats_slabs(struct kvs_proto *p, struct kvs_buf *out, bool items) {
    struct kvs_slab_stats st;
    uint64_t active = 0;
    for (unsigned i = 1; kvs_store_slab_stats(p->ctx->store, i, &st); i++) {
        if (st.total_pages == 0)
            continue;
        active++;
        if (items) {
            if (st.items == 0)
                continue;
            kvs_out_printf(p, out, "STAT items:%u:number %llu\r\n", i, (unsigned long long)st.items);
            kvs_out_printf(p, out, "STAT items:%u:age %u\r\n", i, st.age);
            kvs_out_printf(p, out, "STAT items:%u:mem_requested %llu\r\n", i,
                       (unsigned long long)st.requested);
            kvs_out_printf(p, out, "STAT items:%u:evicted %llu\r\n", i,
                       (unsigned long long)st.evicted);
            kvs_out_printf(p, out, "STAT items:%u:outofmemory %llu\r\n", i,
                       (unsigned long long)st.outofmemory);
            kvs_out_printf(p, out, "STAT items:%u:reclaimed %llu\r\n", i,
                       (unsigned long long)st.reclaimed);
            continue;
        }
        kvs_out_printf(p, out, "STAT %u:chunk_size %u\r\n", i, st.chunk_size);
        kvs_out_printf(p, out, "STAT %u:chunks_per_page %u\r\n", i, st.chunks_per_page);
        kvs_out_printf(p, out, "STAT %u:total_pages %llu\r\n", i, (unsigned long long)st.total_pages);
        kvs_out_printf(p, out, "STAT %u:total_chunks %llu\r\n", i,
                   (unsigned long long)st.total_pages * st.chunks_per_page);
        kvs_out_printf(p, out, "STAT %u:used_chunks %llu\r\n", i, (unsigned long long)st.used_chunks);
        kvs_out_printf(p, out, "STAT %u:free_chunks %llu\r\n", i, (unsigned long long)st.free_chunks);
        kvs_out_printf(p, out, "STAT %u:free_chunks_end %llu\r\n", i,
                   (unsigned long long)st.free_chunks_end);
    }
    if (!items) {
        struct kvs_store_stats ss;
        kvs_store_stats(p->ctx->store, &ss);
        STAT_U("active_slabs", active);
        STAT_U("total_malloced", ss.malloced);
    }
}

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
        if (c->stats_reset)
            c->stats_reset(c->hook_arg);
        kvs_out_string(p, out, "RESET");
        return;
    }
    if (strcmp(sub, "detail") == 0) {
        /* We keep no per-prefix statistics (memcached's "stats detail" is off by default). */
        if (ntokens < 4)
            kvs_out_error(p, out, "CLIENT_ERROR usage: stats detail on|off|dump");
        else if (strcmp(tokens[2].value, "on") == 0 || strcmp(tokens[2].value, "off") == 0)
            kvs_out_string(p, out, "OK");
        else if (strcmp(tokens[2].value, "dump") == 0)
            kvs_out_raw(p, out, "END\r\n", 5);
        else
            kvs_out_error(p, out, "CLIENT_ERROR usage: stats detail on|off|dump");
        return;
    }
    if (strcmp(sub, "settings") == 0)
        stats_settings(p, out);
    else if (strcmp(sub, "slabs") == 0)
        stats_slabs(p, out, false);
    else if (strcmp(sub, "items") == 0)
        stats_slabs(p, out, true);
    else if (strcmp(sub, "sizes") == 0)
        kvs_out_raw(p, out, "STAT sizes_status disabled\r\n", 28);
    else if (strcmp(sub, "conns") == 0)
        ; /* connection listing is not kept; an empty list is a valid answer */
    else if (strcmp(sub, "eleos") == 0) {
        if (c->eleos_stats && c->eleos_stats(c->hook_arg, out))
            p->close = p->abort = true;
    } else {
        kvs_out_error(p, out, "ERROR");
        return;
    }
    kvs_out_raw(p, out, "END\r\n", 5);
}

