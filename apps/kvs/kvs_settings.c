/*
 * kvs_settings.c — memcached 1.6.18's defaults and the enclave's check of a settings copy
 * (see kvs_settings.h). Pure code: no system calls.
 */
#include "kvs_settings.h"

#include <errno.h>
#include <string.h>

#include "kvs_store.h"

void kvs_settings_default(struct kvs_settings *s) {
    memset(s, 0, sizeof *s);
    s->maxbytes = 64ull << 20;
    s->maxconns = 1024;
    s->port = 11211;
    s->udpport = 0;
    strcpy(s->inter, "NULL");
    s->evict_to_free = true;
    s->access = 0700;
    s->factor = KVS_SLAB_FACTOR;
    s->chunk_size = 48;
    s->num_threads = 4;
    s->num_threads_per_udp = 4;
    s->prefix_delimiter = ':';
    s->reqs_per_event = 20;
    s->use_cas = true;
    s->backlog = 1024;
    s->binding = KVS_BIND_AUTO;
    s->item_size_max = KVS_ITEM_SIZE_MAX_DEFAULT;
    s->maxconns_fast = true;
    s->slab_reassign = true;
    s->slab_automove = 1;
    s->slab_automove_ratio = 0.8;
    s->slab_automove_window = 30;
    s->slab_chunk_max = 524288;
    s->lru_crawler = true;
    s->lru_crawler_sleep = 100;
    s->flush_enabled = true;
    s->dump_enabled = true;
    strcpy(s->hash_algorithm, "murmur3");
    s->lru_maintainer_thread = true;
    s->lru_segmented = true;
    s->hot_lru_pct = 20;
    s->warm_lru_pct = 40;
    s->hot_max_factor = 0.2;
    s->warm_max_factor = 2.0;
    s->temporary_ttl = 61;
    s->watcher_logbuf_size = 256u << 10;
    s->worker_logbuf_size = 64u << 10;
    s->watch_enabled = true;
    s->ssl_verify_mode = 0;
    s->ssl_keyformat = 1;
    s->ssl_wbuf_size = 16u << 10;
    strcpy(s->ssl_min_version, "tlsv1.2");
}

static void terminate(char *str, size_t size) {
    str[size - 1] = '\0';
}

int kvs_settings_check(struct kvs_settings *s) {
    terminate(s->inter, sizeof s->inter);
    terminate(s->socketpath, sizeof s->socketpath);
    terminate(s->auth_file, sizeof s->auth_file);
    terminate(s->sasl_pwdb, sizeof s->sasl_pwdb);
    terminate(s->hash_algorithm, sizeof s->hash_algorithm);
    terminate(s->ssl_chain_cert, sizeof s->ssl_chain_cert);
    terminate(s->ssl_key, sizeof s->ssl_key);
    terminate(s->ssl_ciphers, sizeof s->ssl_ciphers);
    terminate(s->ssl_ca_cert, sizeof s->ssl_ca_cert);
    terminate(s->ssl_min_version, sizeof s->ssl_min_version);
    if (s->nlisteners > KVS_MAX_LISTENERS)
        return -EINVAL;
    for (unsigned i = 0; i < s->nlisteners; i++) {
        terminate(s->listeners[i].addr, sizeof s->listeners[i].addr);
        if (s->listeners[i].port > 65535)
            return -EINVAL;
    }
    if (s->port > 65535 || s->udpport > 65535 || s->binding > KVS_BIND_BINARY ||
        s->item_size_max < KVS_ITEM_SIZE_MIN || s->item_size_max > (1u << 30) ||
        !(s->factor > 1.0) || s->factor > 100.0 || s->reqs_per_event == 0 ||
        s->ssl_verify_mode < 0 || s->ssl_verify_mode > 3 || s->hot_lru_pct > 80 ||
        s->warm_lru_pct > 80 || s->maxconns == 0 || s->num_threads == 0)
        return -EINVAL;
    return 0;
}
