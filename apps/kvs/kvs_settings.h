/*
 * kvs_settings.h — memcached 1.6.18's settings, as eleos-kvs keeps them.
 *
 * One plain struct, no pointers: the host fills it from the command line (memcached's
 * options, host_main.c), hands it to the enclave inside struct kvs_setup, and the enclave
 * keeps its own validated copy (kvs_settings_check). The protocol reads it through
 * kvs_ctx.settings: `stats settings` prints it in memcached's order, and the options that
 * change protocol behaviour (-C, -F, -X, -W, -A, -B, -S, -Y, -R, -M, idle_timeout, TLS)
 * are looked up here. Strings are fixed arrays so the struct copies by value.
 */
#ifndef ELEOS_KVS_SETTINGS_H
#define ELEOS_KVS_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVS_SETTINGS_PATH_MAX 1024u
#define KVS_SETTINGS_STR_MAX 128u
/* -l may name several listeners (comma separated, each optionally "notls:"). */
#define KVS_MAX_LISTENERS 8u

/* -B: memcached's binding_protocol. */
enum kvs_binding { KVS_BIND_AUTO, KVS_BIND_ASCII, KVS_BIND_BINARY };

struct kvs_listener_conf {
    char addr[KVS_SETTINGS_STR_MAX]; /* as given, without "notls:" and ":port"          */
    unsigned port;                   /* the port of this listener (-p if not given)      */
    bool notls;                      /* "notls:" prefix: plain text even with -Z          */
};

struct kvs_settings {
    /* memcached's `stats settings`, in its order */
    uint64_t maxbytes;               /* -m, bytes                                         */
    unsigned maxconns;               /* -c                                                */
    unsigned port;                   /* -p                                                */
    unsigned udpport;                /* -U (0 = off)                                      */
    char inter[KVS_SETTINGS_STR_MAX];/* -l as given ("NULL" when absent)                  */
    unsigned verbose;                /* -v count                                          */
    bool evict_to_free;              /* false with -M                                     */
    char socketpath[KVS_SETTINGS_PATH_MAX]; /* -s ("" = none)                            */
    unsigned access;                 /* -a, octal umask of the unix socket                */
    bool shutdown_command;           /* -A                                                */
    double factor;                   /* -f                                                */
    unsigned chunk_size;             /* -n                                                */
    unsigned num_threads;            /* -t                                                */
    unsigned num_threads_per_udp;
    char prefix_delimiter;           /* -D                                                */
    bool detail_enabled;             /* -D given, or `stats detail on`                    */
    unsigned reqs_per_event;         /* -R                                                */
    bool use_cas;                    /* false with -C                                     */
    unsigned backlog;                /* -b                                                */
    enum kvs_binding binding;        /* -B                                                */
    bool sasl;                       /* -S                                                */
    bool auth_ascii;                 /* -Y given                                          */
    char auth_file[KVS_SETTINGS_PATH_MAX]; /* -Y path (the enclave reads it)              */
    char sasl_pwdb[KVS_SETTINGS_PATH_MAX]; /* -S: $MEMCACHED_SASL_PWDB (the enclave reads it)*/
    uint64_t item_size_max;          /* -I                                                */
    bool maxconns_fast;
    unsigned hashpower_init;
    bool slab_reassign;
    int slab_automove;
    double slab_automove_ratio;
    unsigned slab_automove_window;
    unsigned slab_chunk_max;
    bool lru_crawler;
    unsigned lru_crawler_sleep;
    unsigned lru_crawler_tocrawl;
    unsigned tail_repair_time;
    bool flush_enabled;              /* false with -F                                     */
    bool dump_enabled;               /* false with -X                                     */
    char hash_algorithm[16];
    bool lru_maintainer_thread;
    bool lru_segmented;
    unsigned hot_lru_pct, warm_lru_pct;
    double hot_max_factor, warm_max_factor;
    bool temp_lru;
    unsigned temporary_ttl;
    unsigned idle_timeout;           /* -o idle_timeout, seconds (0 = none)               */
    unsigned watcher_logbuf_size;    /* bytes                                             */
    unsigned worker_logbuf_size;     /* bytes                                             */
    unsigned read_buf_mem_limit;     /* MiB                                               */
    bool track_sizes;
    bool inline_ascii_response;
    bool watch_enabled;              /* false with -W                                     */
    /* TLS (-Z, -o ssl_*) */
    bool ssl_enabled;
    char ssl_chain_cert[KVS_SETTINGS_PATH_MAX];
    char ssl_key[KVS_SETTINGS_PATH_MAX];
    int ssl_verify_mode;             /* 0 none, 1 request, 2 require, 3 once             */
    int ssl_keyformat;               /* 1 = PEM (SSL_FILETYPE_PEM), 2 = ASN1/DER         */
    char ssl_ciphers[KVS_SETTINGS_STR_MAX]; /* "" = library default ("NULL" in stats)   */
    char ssl_ca_cert[KVS_SETTINGS_PATH_MAX];
    unsigned ssl_wbuf_size;          /* bytes                                             */
    bool ssl_session_cache;
    bool ssl_kernel_tls;
    char ssl_min_version[16];        /* "tlsv1.2" ...                                     */
    /* listeners parsed from -l (nlisteners 0 = the default address on -p) */
    unsigned nlisteners;
    struct kvs_listener_conf listeners[KVS_MAX_LISTENERS];
};

/* memcached 1.6.18's defaults (what `memcached` with no options prints in stats settings),
 * with eleos-kvs's default address. */
void kvs_settings_default(struct kvs_settings *s);

/* Checks a copy the enclave received: terminates every string, refuses values out of the
 * ranges the options allow. 0 or -EINVAL. */
int kvs_settings_check(struct kvs_settings *s);

#endif
