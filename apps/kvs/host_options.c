/*
 * host_options.c — memcached 1.6.18's command line for eleos-kvs (host side).
 *
 * Every option memcached accepts is accepted here, in its short and long forms, parsed the
 * way memcached parses it (atoi/atof where memcached uses them, its safe_strto* where it
 * uses those), into struct kvs_settings. A value memcached refuses is refused here with
 * memcached's message and exit status (1 from the option loop, 64 = EX_USAGE from the checks
 * after it), so a service file or script that checks for failure sees the same thing.
 * Options that mean nothing for an enclave server (large pages, extstore, the restartable
 * memory file, NAPI ids ...) are accepted with one line on stderr saying so. The eleos
 * platform flags (--mode, --rpc, ...) go to app_platform_opt as before.
 *
 * Where eleos-kvs differs on purpose (docs/kvs.md, "Command line"): -p 0 means "any free
 * port" (memcached: no TCP), the default address is 127.0.0.1, and a value memcached would
 * crash on (-o slab_chunk_max without a value) is refused instead.
 */
#include "host_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs_proto.h"
#include "kvs_proto_internal.h"
#include "kvs_server.h"

#define DEFAULT_PORT 11211
#define DEFAULT_MEM_MIB 64u


#define SLAB_PAGE_SIZE (1u << 20)
#define ITEM_SIZE_MAX_LOWER (1u << 10)
#define ITEM_SIZE_MAX_UPPER (1u << 30)
/* -m beyond this (1 TiB) is more than the enclave accepts. */
#define MEM_MIB_MAX (1u << 20)
/* -l's whole list, as memcached keeps it (comma separated). */
#define INTER_MAX 1024

/* What the option loop remembers for the checks after it (memcached's locals in main). */
struct parse {
    struct options *o;
    bool tcp_specified, udp_specified, protocol_specified;
    bool lru_maintainer, slab_chunk_changed;
    long mem_mib;             /* as atoi gave it: checked after the loop                 */
    long item_size_max;
    long port, udpport;
    int napi_ids;
    char inter[INTER_MAX];
};

static void usage(void) {
    printf("memcached %s (eleos-kvs %s: memcached's options, plus the eleos ones below)\n",
           KVS_MEMCACHED_VERSION, KVS_ELEOS_VERSION);
    printf("-p, --port=<num>          TCP port to listen on (default: 11211; 0: any free port)\n"
           "-U, --udp-port=<num>      UDP port to listen on (default: 0, off)\n"
           "-s, --unix-socket=<file>  UNIX socket to listen on (disables network support)\n"
           "-a, --unix-mask=<mask>    access mask for UNIX socket, in octal (default: 700)\n"
           "-A, --enable-shutdown     enable ascii \"shutdown\" command\n"
           "-l, --listen=<addr>       interface to listen on (default: " KVS_DEFAULT_ADDR ")\n"
           "                          several: comma separated, or -l again; 'notls:' prefix\n"
           "-d, --daemon              run as a daemon\n"
           "-r, --enable-coredumps    maximize core file limit\n"
           "-u, --user=<user>         assume identity of <username> (only when run as root)\n"
           "-m, --memory-limit=<num>  item memory in megabytes (default: 64)\n"
           "-M, --disable-evictions   return error on memory exhausted instead of evicting\n"
           "-c, --conn-limit=<num>    max simultaneous connections (default: 1024)\n"
           "-k, --lock-memory         lock down all paged memory\n"
           "-v, --verbose             verbose (-vv: every connection)\n"
           "-h, --help                print this help and exit\n"
           "-i, --license             print the license and exit\n"
           "-V, --version             print version and exit\n"
           "-P, --pidfile=<file>      save PID in <file>\n"
           "-f, --slab-growth-factor=<num> chunk size growth factor (default: 1.25)\n"
           "-n, --slab-min-size=<bytes> min space used for key+value+flags (default: 48)\n"
           "-L, --enable-largepages   (no effect here)\n"
           "-D <char>                 delimiter between key prefixes and IDs (stats detail)\n"
           "-t, --threads=<num>       number of threads to use (default: 4)\n"
           "-R, --max-reqs-per-event  requests per connection per event (default: 20)\n"
           "-C, --disable-cas         disable use of CAS\n"
           "-b, --listen-backlog=<num> set the backlog queue limit (default: 1024)\n"
           "-B, --protocol=<name>     protocol - one of ascii, binary, or auto (default: auto)\n"
           "-I, --max-item-size=<num> adjusts max item size (default: 1m, min: 1k, max: 1024m)\n"
           "-S, --enable-sasl         turn on Sasl authentication\n"
           "-F, --disable-flush-all   disable flush_all command\n"
           "-X, --disable-dumping     disable stats cachedump and lru_crawler metadump\n"
           "-W  --disable-watch       disable watch commands (live logging)\n"
           "-Y, --auth-file=<file>    enable ASCII protocol authentication (user:pass lines)\n"
           "-e, --memory-file=<file>  (no effect here)\n"
           "-Z, --enable-ssl          enable TLS/SSL\n"
           "-N, --napi-ids=<num>      (no effect here)\n"
           "-o, --extended            comma separated list of extended options (memcached's;\n"
           "                          idle_timeout=N closes connections idle N seconds)\n");
    struct app_platform_opts d;
    app_platform_opts_default(&d, APP_MODE_ELEOS, KVS_DEFAULT_SUVM_CACHE_MIB,
                              KVS_DEFAULT_RPC_SPIN_US);
    app_platform_usage(stdout, &d);
    printf("      --consolidate=M    batched I/O: gather connections on fewer worker\n"
           "                         threads while they carry the load, so one exit serves\n"
           "                         more of them: auto (while no core is idle; default),\n"
           "                         on, off\n");
}

static void license(void) {
    printf("memcached %s\n\n"
           "eleos-kvs %s is a memcached-compatible server of the Eleos-C project; it is not\n"
           "derived from memcached's code. memcached is Copyright (c) 2003, Danga Interactive,\n"
           "Inc., BSD licensed.\n",
           KVS_MEMCACHED_VERSION, KVS_ELEOS_VERSION);
}

static void no_effect(const char *what) {
    fprintf(stderr, "eleos-kvs: %s has no effect here (accepted for memcached compatibility)\n",
            what);
}

static bool copy_str(char *dst, size_t size, const char *arg) {
    size_t n = strlen(arg);
    if (n >= size)
        return false;
    memcpy(dst, arg, n + 1);
    return true;
}

static int too_long(const char *what) {
    fprintf(stderr, "eleos-kvs: %s is too long\n", what);
    return KVS_EX_USAGE;
}

/* --- -o: memcached's extended options ------------------------------------------------- */

/* memcached's message for a key given without its value; status 1. */
static int missing(const char *msg) {
    fprintf(stderr, "%s\n", msg);
    return 1;
}

static int unparsable(const char *key) {
    fprintf(stderr, "could not parse argument to %s\n", key);
    return 1;
}

/* The TLS keys (the TLS layer reads them; memcached's messages and ranges). */
static int ext_ssl(struct kvs_settings *s, const char *key, const char *val) {
    int32_t v;
    uint32_t u;
    static const char *const vers[] = {"tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
    char msg[64];
    snprintf(msg, sizeof msg, "Missing %s argument", key);
    if (strcmp(key, "ssl_session_cache") == 0)
        return s->ssl_session_cache = true, 0;
    if (strcmp(key, "ssl_kernel_tls") == 0)
        return s->ssl_kernel_tls = true, 0;
    if (!val)
        return missing(msg);
    if (strcmp(key, "ssl_chain_cert") == 0)
        return copy_str(s->ssl_chain_cert, sizeof s->ssl_chain_cert, val) ? 0 : too_long(key);
    if (strcmp(key, "ssl_key") == 0)
        return copy_str(s->ssl_key, sizeof s->ssl_key, val) ? 0 : too_long(key);
    if (strcmp(key, "ssl_ca_cert") == 0)
        return copy_str(s->ssl_ca_cert, sizeof s->ssl_ca_cert, val) ? 0 : too_long(key);
    if (strcmp(key, "ssl_ciphers") == 0)
        return copy_str(s->ssl_ciphers, sizeof s->ssl_ciphers, val) ? 0 : too_long(key);
    if (strcmp(key, "ssl_keyformat") == 0)
        return kvs_safe_strtol(val, &v) ? (s->ssl_keyformat = v, 0) : unparsable(key);
    if (strcmp(key, "ssl_wbuf_size") == 0)
        return kvs_safe_strtoul(val, &u) && u <= (1u << 20) ? (s->ssl_wbuf_size = u * 1024, 0)
                                                            : unparsable(key);
    if (!kvs_safe_strtol(val, &v))
        return unparsable(key);
    if (strcmp(key, "ssl_verify_mode") == 0) {
        if (v < 0 || v > 3)
            return missing("Invalid ssl_verify_mode. Use help to see valid options.");
        s->ssl_verify_mode = v;
        return 0;
    }
    /* ssl_min_version */
    if (v < 0 || v > 3)
        return missing("Invalid ssl_min_version. Use help to see valid options.");
    snprintf(s->ssl_min_version, sizeof s->ssl_min_version, "%s", vers[v]);
    return 0;
}

/* extstore's keys: accepted (ext_path checked as memcached checks it), no effect here. */
static int ext_store(const char *key, const char *val) {
    static const char *const keys[] = {
        "ext_page_size", "ext_wbuf_size", "ext_threads", "ext_io_depth", "ext_item_size",
        "ext_item_age", "ext_low_ttl", "ext_recache_rate", "ext_compact_under",
        "ext_drop_under", "ext_max_sleep", "ext_max_frag", "slab_automove_freeratio"};
    if (strcmp(key, "ext_drop_unread") == 0)
        return no_effect("-o ext_drop_unread"), 0;
    if (strcmp(key, "ext_path") == 0) {
        if (!val || !strchr(val, ':'))
            return missing("must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P "
                           "supported)\nfailed to parse ext_path argument");
        return no_effect("-o ext_path (extstore)"), 0;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(key, keys[i]) != 0)
            continue;
        char *end;
        if (!val || (strtod(val, &end), end == val))
            return unparsable(key);
        fprintf(stderr, "eleos-kvs: -o %s has no effect here (no extstore)\n", key);
        return 0;
    }
    return -1;
}

/* Keys without a value, or whose value memcached ignores. */
static int ext_flag(struct parse *ps, const char *key) {
    struct kvs_settings *s = &ps->o->set;
    if (strcmp(key, "maxconns_fast") == 0) s->maxconns_fast = true;
    else if (strcmp(key, "no_maxconns_fast") == 0) s->maxconns_fast = false;
    else if (strcmp(key, "slab_reassign") == 0) s->slab_reassign = true;
    else if (strcmp(key, "no_slab_reassign") == 0) s->slab_reassign = false;
    else if (strcmp(key, "no_slab_automove") == 0) s->slab_automove = 0;
    else if (strcmp(key, "lru_crawler") == 0) s->lru_crawler = true;
    else if (strcmp(key, "no_lru_crawler") == 0) s->lru_crawler = false;
    else if (strcmp(key, "lru_maintainer") == 0)
        ps->lru_maintainer = s->lru_maintainer_thread = s->lru_segmented = true;
    else if (strcmp(key, "no_lru_maintainer") == 0)
        ps->lru_maintainer = s->lru_maintainer_thread = s->lru_segmented = false;
    else if (strcmp(key, "track_sizes") == 0) s->track_sizes = true;
    else if (strcmp(key, "no_chunked_items") == 0) s->slab_chunk_max = SLAB_PAGE_SIZE;
    else if (strcmp(key, "no_modern") == 0) {
        if (!ps->slab_chunk_changed)
            s->slab_chunk_max = SLAB_PAGE_SIZE;
        s->slab_reassign = s->maxconns_fast = s->lru_segmented = false;
        s->lru_crawler = s->lru_maintainer_thread = ps->lru_maintainer = false;
        s->slab_automove = 0;
        strcpy(s->hash_algorithm, "jenkins");
    } else if (strcmp(key, "modern") == 0 || strcmp(key, "inline_ascii_resp") == 0 ||
               strcmp(key, "no_inline_ascii_resp") == 0) {
        /* memcached ignores these too */
    } else if (strcmp(key, "resp_obj_mem_limit") == 0)
        fprintf(stderr, "DEPRECATED: resp_obj_mem_limit no longer used. See "
                        "read_buf_mem_limit,\n");
    else if (strcmp(key, "no_hashexpand") == 0 || strcmp(key, "drop_privileges") == 0 ||
             strcmp(key, "no_drop_privileges") == 0 || strcmp(key, "sock_cookie_id") == 0) {
        fprintf(stderr, "eleos-kvs: -o %s has no effect here\n", key);
    } else
        return -1;
    return 0;
}

/* Integer keys with memcached's ranges and messages. */
static int ext_int(struct parse *ps, const char *key, const char *val) {
    struct kvs_settings *s = &ps->o->set;
    long v = val ? atol(val) : 0;
    if (strcmp(key, "hashpower") == 0) {
        if (!val)
            return missing("Missing numeric argument for hashpower");
        if (v < 12 || v > 32) {
            fprintf(stderr, "Initial hashtable multiplier of %ld is too %s\n%s", v,
                    v < 12 ? "low" : "high",
                    v < 12 ? "" : "Choose a value based on \"STAT hash_power_level\" from a "
                                  "running instance\n");
            return 1;
        }
        s->hashpower_init = (unsigned)v;
    } else if (strcmp(key, "slab_automove") == 0) {
        if (val && (v < 0 || v > 2))
            return missing("slab_automove must be between 0 and 2");
        s->slab_automove = val ? (int)v : 1;
    } else if (strcmp(key, "slab_automove_window") == 0) {
        if (!val)
            return missing("Missing slab_automove_window argument");
        if (v < 3)
            return missing("slab_automove_window must be > 2");
        s->slab_automove_window = (unsigned)v;
    } else if (strcmp(key, "tail_repair_time") == 0) {
        if (!val)
            return missing("Missing numeric argument for tail_repair_time");
        if (v < 10)
            return missing("Cannot set tail_repair_time to less than 10 seconds");
        s->tail_repair_time = (unsigned)v;
    } else if (strcmp(key, "lru_crawler_sleep") == 0) {
        if (!val)
            return missing("Missing lru_crawler_sleep value");
        if (v < 0 || v > 1000000)
            return missing("LRU crawler sleep must be between 0 and 1 second");
        s->lru_crawler_sleep = (unsigned)v;
    } else if (strcmp(key, "hot_lru_pct") == 0 || strcmp(key, "warm_lru_pct") == 0) {
        bool hot = key[0] == 'h';
        if (!val)
            return missing(hot ? "Missing hot_lru_pct argument" : "Missing warm_lru_pct argument");
        if (v < 1 || v >= 80)
            return missing(hot ? "hot_lru_pct must be > 1 and < 80"
                               : "warm_lru_pct must be > 1 and < 80");
        *(hot ? &s->hot_lru_pct : &s->warm_lru_pct) = (unsigned)v;
    } else if (strcmp(key, "temporary_ttl") == 0) {
        if (!val)
            return missing("Missing temporary_ttl argument");
        s->temp_lru = true;
        s->temporary_ttl = (unsigned)v;
    } else if (strcmp(key, "idle_timeout") == 0) {
        if (!val)
            return missing("Missing numeric argument for idle_timeout");
        if (v < 0 || v > 100000000)
            return missing("eleos-kvs: idle_timeout must be between 0 and 100000000 seconds");
        s->idle_timeout = (unsigned)v;
    } else
        return -1;
    return 0;
}

/* Keys whose value memcached reads with safe_strtoul / atof / its own parsers. */
static int ext_value(struct parse *ps, const char *key, const char *val) {
    struct kvs_settings *s = &ps->o->set;
    uint32_t u;
    int32_t v;
    char msg[64];
    snprintf(msg, sizeof msg, "Missing %s argument", key);
    bool kib = strcmp(key, "watcher_logbuf_size") == 0 || strcmp(key, "worker_logbuf_size") == 0;
    if (kib || strcmp(key, "read_buf_mem_limit") == 0) {
        if (!val)
            return missing(msg);
        if (!kvs_safe_strtoul(val, &u) || u > (kib ? 1u << 20 : 1u << 20))
            return unparsable(key);
        if (strcmp(key, "read_buf_mem_limit") == 0)
            s->read_buf_mem_limit = u;
        else
            *(key[1] == 'a' ? &s->watcher_logbuf_size : &s->worker_logbuf_size) = u * 1024;
    } else if (strcmp(key, "lru_crawler_tocrawl") == 0) {
        if (!val)
            return missing("Missing lru_crawler_tocrawl value");
        if (!kvs_safe_strtoul(val, &u))
            return missing("lru_crawler_tocrawl takes a numeric 32bit value");
        s->lru_crawler_tocrawl = u;
    } else if (strcmp(key, "slab_chunk_max") == 0) {
        if (!val) /* memcached goes on and crashes: refused here */
            return missing("Missing slab_chunk_max argument");
        if (!kvs_safe_strtol(val, &v) || v <= 0)
            return unparsable(key);
        s->slab_chunk_max = (unsigned)v;
        ps->slab_chunk_changed = true;
    } else if (strcmp(key, "hash_algorithm") == 0) {
        if (!val)
            return missing("Missing hash_algorithm argument");
        if (strcmp(val, "jenkins") && strcmp(val, "murmur3") && strcmp(val, "xxh3"))
            return missing("Unknown hash_algorithm option (jenkins, murmur3, xxh3)");
        snprintf(s->hash_algorithm, sizeof s->hash_algorithm, "%s", val);
        no_effect("-o hash_algorithm (the store has one hash)");
    } else if (strcmp(key, "slab_sizes") == 0) {
        if (!val) /* memcached crashes */
            return missing("Missing slab_sizes argument");
        no_effect("-o slab_sizes");
    } else
        return -1;
    return 0;
}

static int ext_factor(struct parse *ps, const char *key, const char *val) {
    struct kvs_settings *s = &ps->o->set;
    char msg[64];
    snprintf(msg, sizeof msg, "Missing %s argument", key);
    double d = val ? atof(val) : 0;
    if (strcmp(key, "slab_automove_ratio") == 0) {
        if (!val)
            return missing(msg);
        if (d <= 0 || d > 1)
            return missing("slab_automove_ratio must be > 0 and < 1");
        s->slab_automove_ratio = d;
    } else if (strcmp(key, "hot_max_factor") == 0 || strcmp(key, "warm_max_factor") == 0) {
        if (!val)
            return missing(msg);
        if (d <= 0)
            return missing(key[0] == 'h' ? "hot_max_factor must be > 0"
                                         : "warm_max_factor must be > 0");
        *(key[0] == 'h' ? &s->hot_max_factor : &s->warm_max_factor) = d;
    } else
        return -1;
    return 0;
}

/* One key[=value]; token is the whole of it (for the message). */
static int extended_opt(struct parse *ps, const char *key, const char *val, const char *token) {
    int r;
    if (strncmp(key, "ssl_", 4) == 0 &&
        (strcmp(key, "ssl_chain_cert") == 0 || strcmp(key, "ssl_key") == 0 ||
         strcmp(key, "ssl_verify_mode") == 0 || strcmp(key, "ssl_keyformat") == 0 ||
         strcmp(key, "ssl_ciphers") == 0 || strcmp(key, "ssl_ca_cert") == 0 ||
         strcmp(key, "ssl_wbuf_size") == 0 || strcmp(key, "ssl_session_cache") == 0 ||
         strcmp(key, "ssl_kernel_tls") == 0 || strcmp(key, "ssl_min_version") == 0))
        return ext_ssl(&ps->o->set, key, val);
    if ((r = ext_flag(ps, key)) >= 0 || (r = ext_int(ps, key, val)) >= 0 ||
        (r = ext_value(ps, key, val)) >= 0 || (r = ext_factor(ps, key, val)) >= 0 ||
        (r = ext_store(key, val)) >= 0)
        return r;
    fprintf(stderr, "Illegal suboption \"%s\"\n", token);
    return 1;
}

/* -o a=b,c,d=e, split as getsubopt splits it (an empty key is illegal). */
static int extended_opts(struct parse *ps, const char *arg) {
    char buf[4096];
    if (!copy_str(buf, sizeof buf, arg))
        return too_long("-o");
    char *p = buf;
    while (*p) {
        char *comma = strchr(p, ',');
        char *next = comma ? comma + 1 : p + strlen(p);
        if (comma)
            *comma = '\0';
        char token[4096]; /* key[=value], for memcached's "Illegal suboption" message */
        memcpy(token, p, strlen(p) + 1);
        char *eq = strchr(p, '=');
        if (eq)
            *eq++ = '\0';
        int r = extended_opt(ps, p, eq, token);
        if (r)
            return r;
        p = next;
    }
    return 0;
}

/* -S: memcached's pwdb build takes its password database from $MEMCACHED_SASL_PWDB. */
static int sasl_opt(struct kvs_settings *s) {
    const char *db = getenv("MEMCACHED_SASL_PWDB");
    s->sasl = true;
    if (db && !copy_str(s->sasl_pwdb, sizeof s->sasl_pwdb, db))
        return too_long("MEMCACHED_SASL_PWDB");
    return 0;
}

static int binding_opt(struct parse *ps, const char *arg) {
    struct kvs_settings *s = &ps->o->set;
    ps->protocol_specified = true;
    if (strcmp(arg, "auto") == 0)
        s->binding = KVS_BIND_AUTO;
    else if (strcmp(arg, "binary") == 0)
        s->binding = KVS_BIND_BINARY;
    else if (strcmp(arg, "ascii") == 0)
        s->binding = KVS_BIND_ASCII;
    else {
        fprintf(stderr, "Invalid value for binding protocol: %s\n"
                        " -- should be one of auto, binary, or ascii\n", arg);
        return KVS_EX_USAGE;
    }
    return 0;
}

/* -I: a number with an optional k/m suffix, as memcached reads it (atoi). */
static long item_size_arg(const char *arg) {
    size_t n = strlen(arg);
    char unit = n ? arg[n - 1] : '\0';
    long v = atol(arg);
    if (unit == 'k' || unit == 'K')
        v *= 1024;
    else if (unit == 'm' || unit == 'M')
        v *= 1024 * 1024;
    return v;
}

/* -l: memcached appends to its list, unless the list already holds the text. */
static int listen_opt(struct parse *ps, const char *arg) {
    if (ps->inter[0] && strstr(ps->inter, arg))
        return 0;
    size_t have = strlen(ps->inter);
    if (have + strlen(arg) + 2 > sizeof ps->inter)
        return too_long("-l");
    snprintf(ps->inter + have, sizeof ps->inter - have, "%s%s", have ? "," : "", arg);
    return 0;
}

/* Options that only count, or fail with memcached's message and status 1. */
static int number_opt(struct parse *ps, int c, const char *arg) {
    struct options *o = ps->o;
    struct kvs_settings *s = &o->set;
    long v = atol(arg);
    switch (c) {
    case 'c':
        if (v <= 0) { fprintf(stderr, "Maximum connections must be greater than 0\n"); return 1; }
        if (v > (1l << 20)) { fprintf(stderr, "eleos-kvs: -c above 1048576\n"); return 1; }
        o->maxconns = (unsigned)v;
        return 0;
    case 'R':
        if (v <= 0) {
            fprintf(stderr, "Number of requests per event must be greater than 0\n");
            return 1;
        }
        s->reqs_per_event = v > 1000000 ? 1000000u : (unsigned)v;
        return 0;
    case 'n':
        if (v == 0 || v < 0) { fprintf(stderr, "Chunk size must be greater than 0\n"); return 1; }
        s->chunk_size = (unsigned)v;
        return 0;
    case 't':
        if (v <= 0) { fprintf(stderr, "Number of threads must be greater than 0\n"); return 1; }
        if (v > 64)
            fprintf(stderr, "WARNING: Setting a high number of worker threads is not "
                            "recommended.\n Set this value to the number of cores in your "
                            "machine or less.\n");
        if (v > (long)KVS_MAX_THREADS) {
            fprintf(stderr, "eleos-kvs: at most %u threads\n", KVS_MAX_THREADS);
            return 1;
        }
        o->threads = (unsigned)v;
        return 0;
    case 'N':
        if (v <= 0) {
            fprintf(stderr, "Maximum number of NAPI IDs must be greater than 0\n");
            return 1;
        }
        ps->napi_ids = (int)v;
        no_effect("-N (napi_ids)");
        return 0;
    case 'f':
        s->factor = atof(arg);
        if (s->factor <= 1.0) { fprintf(stderr, "Factor must be greater than 1\n"); return 1; }
        if (s->factor > 100.0) { fprintf(stderr, "eleos-kvs: -f above 100\n"); return 1; }
        return 0;
    default:
        return 1;
    }
}

/* One of memcached's options. 0, or the status to exit with. */
static int mc_opt(struct parse *ps, int c, const char *arg) {
    struct options *o = ps->o;
    struct kvs_settings *s = &o->set;
    switch (c) {
    case 'A': s->shutdown_command = true; return 0;
    case 'Z': s->ssl_enabled = true; return 0;
    case 'a': s->access = (unsigned)strtol(arg, NULL, 8) & 07777u; return 0;
    case 'U': ps->udpport = atol(arg); ps->udp_specified = true; return 0;
    case 'p': ps->port = atol(arg); ps->tcp_specified = true; return 0;
    case 's':
        return copy_str(s->socketpath, sizeof s->socketpath, arg) ? 0 : too_long("-s");
    case 'm': ps->mem_mib = atol(arg); return 0;
    case 'M': s->evict_to_free = false; return 0;
    case 'k': o->lock_memory = true; return 0;
    case 'v': o->verbose++; return 0;
    case 'l': return listen_opt(ps, arg);
    case 'd': o->daemonize = true; return 0;
    case 'r': o->maxcore = true; return 0;
    case 'u': o->user = arg; return 0;
    case 'P': o->pidfile = arg; return 0;
    case 'e': no_effect("-e (memory_file)"); return 0;
    case 'L': no_effect("-L (large pages)"); return 0;
    case 'D':
        if (!arg || !arg[0]) { fprintf(stderr, "No delimiter specified\n"); return 1; }
        s->prefix_delimiter = arg[0];
        s->detail_enabled = true;
        return 0;
    case 'C': s->use_cas = false; return 0;
    case 'b': s->backlog = (unsigned)atoi(arg); return 0;
    case 'B': return binding_opt(ps, arg);
    case 'I': ps->item_size_max = item_size_arg(arg); return 0;
    case 'S': return sasl_opt(s);
    case 'F': s->flush_enabled = false; return 0;
    case 'X': s->dump_enabled = false; return 0;
    case 'W': s->watch_enabled = false; return 0;
    case 'Y':
        s->auth_ascii = true;
        return copy_str(s->auth_file, sizeof s->auth_file, arg) ? 0 : too_long("-Y");
    case 'o': return extended_opts(ps, arg);
    default: return number_opt(ps, c, arg);
    }
}

/* One listener of -l: [notls:][proto[..]:][tag[..]:](host | [ipv6] | host:port). */
static int listener_parse(struct parse *ps, char *p) {
    struct kvs_settings *s = &ps->o->set;
    struct kvs_listener_conf *l = &s->listeners[s->nlisteners];
    memset(l, 0, sizeof *l);
    l->port = (unsigned)ps->port;
    if (strncmp(p, "notls", 5) == 0) {
        if (!s->ssl_enabled) {
            fprintf(stderr, "'notls' option is valid only when SSL is enabled\n");
            return KVS_EX_OSERR;
        }
        l->notls = true;
        p += 6;
    }
    for (int k = 0; k < 2; k++) { /* proto[...] and tag[...]: accepted, not used here */
        const char *word = k ? "tag[" : "proto[";
        if (strncmp(p, word, strlen(word)) == 0) {
            char *e = strchr(p, ']');
            if (!e) {
                fprintf(stderr, "Invalid %s spec: \"%s\"\n", k ? "tag" : "protocol", p);
                return KVS_EX_OSERR;
            }
            p = e + 2;
            no_effect(k ? "a listener tag" : "a listener protocol");
        }
    }
    char *h = p;
    if (*p == '[') {
        char *e = strchr(p, ']');
        if (!e) {
            fprintf(stderr, "Invalid IPV6 address: \"%s\"", p);
            return KVS_EX_OSERR;
        }
        h = p + 1;
        *e = '\0';
        p = e + 1;
    }
    char *colon = strchr(p, ':');
    if (colon && (!strchr(colon + 1, ':') || h != p)) {
        int32_t port;
        *colon = '\0';
        if (!kvs_safe_strtol(colon + 1, &port) || port < 0 || port > 65535) {
            fprintf(stderr, "Invalid port number: \"%s\"\n", colon + 1);
            return KVS_EX_OSERR;
        }
        l->port = (unsigned)port;
    }
    if (!copy_str(l->addr, sizeof l->addr, h))
        return too_long("a -l address");
    s->nlisteners++;
    return 0;
}

static int listeners_parse(struct parse *ps) {
    struct kvs_settings *s = &ps->o->set;
    if (!ps->inter[0]) {
        s->nlisteners = 0;
        ps->o->addr = KVS_DEFAULT_ADDR;
        return 0;
    }
    if (!copy_str(s->inter, sizeof s->inter, ps->inter))
        return too_long("-l");
    char list[INTER_MAX], *save = NULL;
    memcpy(list, ps->inter, sizeof list);
    for (char *p = strtok_r(list, ";,", &save); p; p = strtok_r(NULL, ";,", &save)) {
        if (s->nlisteners == KVS_MAX_LISTENERS) {
            fprintf(stderr, "eleos-kvs: at most %u listeners (-l)\n", KVS_MAX_LISTENERS);
            return KVS_EX_USAGE;
        }
        int r = listener_parse(ps, p);
        if (r)
            return r;
    }
    ps->o->addr = s->nlisteners ? s->listeners[0].addr : KVS_DEFAULT_ADDR;
    return 0;
}

/* --- after the loop: memcached's checks, in its order --------------------------------- */

static int item_size_check(struct parse *ps) {
    struct kvs_settings *s = &ps->o->set;
    long isz = ps->item_size_max;
    long long maxbytes = (long long)ps->mem_mib * 1024 * 1024;
    if (ps->mem_mib < 0 || ps->mem_mib > (long)MEM_MIB_MAX) {
        fprintf(stderr, "eleos-kvs: -m must be between 0 and %u\n", MEM_MIB_MAX);
        return KVS_EX_USAGE;
    }
    if (isz < (long)ITEM_SIZE_MAX_LOWER) {
        fprintf(stderr, "Item max size cannot be less than 1024 bytes.\n");
        return KVS_EX_USAGE;
    }
    if (isz > maxbytes / 2) {
        fprintf(stderr, "Cannot set item size limit higher than 1/2 of memory max.\n");
        return KVS_EX_USAGE;
    }
    if (isz > (long)ITEM_SIZE_MAX_UPPER) {
        fprintf(stderr, "Cannot set item size limit higher than a gigabyte.\n");
        return KVS_EX_USAGE;
    }
    if (isz > (long)SLAB_PAGE_SIZE && !ps->slab_chunk_changed)
        s->slab_chunk_max = SLAB_PAGE_SIZE / 2;
    if ((long)s->slab_chunk_max > isz) {
        fprintf(stderr, "slab_chunk_max (bytes: %u) cannot be larger than -I (item_size_max "
                        "%ld)\n", s->slab_chunk_max, isz);
        return KVS_EX_USAGE;
    }
    if (isz % s->slab_chunk_max) {
        fprintf(stderr, "-I (item_size_max: %ld) must be evenly divisible by slab_chunk_max "
                        "(bytes: %u)\n", isz, s->slab_chunk_max);
        return KVS_EX_USAGE;
    }
    if (SLAB_PAGE_SIZE % s->slab_chunk_max) {
        fprintf(stderr, "slab_chunk_max (bytes: %u) must divide evenly into %u "
                        "(slab_page_size)\n", s->slab_chunk_max, SLAB_PAGE_SIZE);
        return KVS_EX_USAGE;
    }
    ps->o->mem_mib = (size_t)ps->mem_mib;
    ps->o->item_size_max = (size_t)isz;
    return 0;
}

/* -S and -Y pick the protocol, and refuse the other one and UDP. */
static int auth_check(struct parse *ps) {
    struct kvs_settings *s = &ps->o->set;
    if (s->sasl) {
        if (!ps->protocol_specified)
            s->binding = KVS_BIND_BINARY;
        else if (s->binding != KVS_BIND_BINARY) {
            fprintf(stderr, "ERROR: You cannot allow the ASCII protocol while using SASL.\n");
            return KVS_EX_USAGE;
        }
        if (ps->udpport) {
            fprintf(stderr, "ERROR: Cannot enable UDP while using binary SASL "
                            "authentication.\n");
            return KVS_EX_USAGE;
        }
    }
    if (s->auth_ascii) {
        if (!ps->protocol_specified)
            s->binding = KVS_BIND_ASCII;
        else if (s->binding != KVS_BIND_ASCII) {
            fprintf(stderr, "ERROR: You cannot allow the BINARY protocol while using ascii "
                            "authentication tokens.\n");
            return KVS_EX_USAGE;
        }
    }
    return 0;
}

static int ports_check(struct parse *ps) {
    struct options *o = ps->o;
    if (ps->udp_specified && ps->udpport != 0 && !ps->tcp_specified)
        ps->port = ps->udpport;
    if (ps->port > 65535 || ps->port < 0) {
        fprintf(stderr, "ERROR: Invalid port number %ld.\n", ps->port);
        return KVS_EX_USAGE;
    }
    if (ps->udpport > 65535 || ps->udpport < 0) {
        fprintf(stderr, "ERROR: Invalid port number %ld.\n", ps->udpport);
        return KVS_EX_USAGE;
    }
    o->port = o->set.port = (unsigned)ps->port;
    o->set.udpport = (unsigned)ps->udpport;
    o->udp_on = ps->udpport != 0 && !o->set.socketpath[0];
    /* memcached refuses -Y with UDP after daemonizing; the message and status are the same */
    if (o->set.auth_ascii && o->udp_on) {
        fprintf(stderr, "Cannot use UDP with ascii authentication enabled (-U 0 to disable)\n");
        return KVS_EX_USAGE;
    }
    return 0;
}

static int options_check(struct parse *ps) {
    struct options *o = ps->o;
    struct kvs_settings *s = &o->set;
    if (ps->napi_ids > (int)o->threads) {
        fprintf(stderr, "Number of napi_ids(%d) cannot be greater than number of threads(%u)\n",
                ps->napi_ids, o->threads);
        return KVS_EX_USAGE;
    }
    int r = item_size_check(ps);
    if (r)
        return r;
    if (s->hot_lru_pct + s->warm_lru_pct > 80) {
        fprintf(stderr, "hot_lru_pct + warm_lru_pct cannot be more than 80%% combined\n");
        return KVS_EX_USAGE;
    }
    if (s->temp_lru && !ps->lru_maintainer) {
        fprintf(stderr, "temporary_ttl requires lru_maintainer to be enabled\n");
        return KVS_EX_USAGE;
    }
    s->num_threads_per_udp = strchr(ps->inter, ',') ? 1 : o->threads;
    if ((r = auth_check(ps)) || (r = ports_check(ps)) || (r = listeners_parse(ps)))
        return r;
    s->verbose = o->verbose;
    s->num_threads = o->threads;
    s->maxconns = o->maxconns;
    s->maxbytes = (uint64_t)o->mem_mib << 20;
    s->item_size_max = o->item_size_max;
    return app_platform_opts_check(&o->plat, "eleos-kvs") ? 2 : 0;
}

/* eleos-kvs's own long options (beside the platform's and memcached's). */
enum { OPT_CONSOLIDATE = 0x300 };

static const struct option longopts[] = {
    {"consolidate", required_argument, NULL, OPT_CONSOLIDATE},
    {"unix-mask", required_argument, NULL, 'a'},
    {"enable-shutdown", no_argument, NULL, 'A'},
    {"enable-ssl", no_argument, NULL, 'Z'},
    {"port", required_argument, NULL, 'p'},
    {"unix-socket", required_argument, NULL, 's'},
    {"udp-port", required_argument, NULL, 'U'},
    {"memory-limit", required_argument, NULL, 'm'},
    {"disable-evictions", no_argument, NULL, 'M'},
    {"conn-limit", required_argument, NULL, 'c'},
    {"lock-memory", no_argument, NULL, 'k'},
    {"help", no_argument, NULL, 'h'},
    {"license", no_argument, NULL, 'i'},
    {"version", no_argument, NULL, 'V'},
    {"enable-coredumps", no_argument, NULL, 'r'},
    {"verbose", optional_argument, NULL, 'v'},
    {"daemon", no_argument, NULL, 'd'},
    {"listen", required_argument, NULL, 'l'},
    {"user", required_argument, NULL, 'u'},
    {"pidfile", required_argument, NULL, 'P'},
    {"slab-growth-factor", required_argument, NULL, 'f'},
    {"slab-min-size", required_argument, NULL, 'n'},
    {"threads", required_argument, NULL, 't'},
    {"enable-largepages", no_argument, NULL, 'L'},
    {"max-reqs-per-event", required_argument, NULL, 'R'},
    {"disable-cas", no_argument, NULL, 'C'},
    {"listen-backlog", required_argument, NULL, 'b'},
    {"protocol", required_argument, NULL, 'B'},
    {"max-item-size", required_argument, NULL, 'I'},
    {"enable-sasl", no_argument, NULL, 'S'},
    {"disable-flush-all", no_argument, NULL, 'F'},
    {"disable-dumping", no_argument, NULL, 'X'},
    {"disable-watch", no_argument, NULL, 'W'},
    {"auth-file", required_argument, NULL, 'Y'},
    {"memory-file", required_argument, NULL, 'e'},
    {"extended", required_argument, NULL, 'o'},
    {"napi-ids", required_argument, NULL, 'N'},
    APP_PLATFORM_LONGOPTS,
    {NULL, 0, NULL, 0},
};

static const char shortopts[] = "a:AZp:s:U:m:Mc:khiVrvdl:u:P:f:n:t:D:LR:Cb:B:I:SFXWY:e:o:N:";

static void defaults(struct parse *ps, struct options *o) {
    memset(o, 0, sizeof *o);
    memset(ps, 0, sizeof *ps);
    ps->o = o;
    kvs_settings_default(&o->set);
    o->threads = o->set.num_threads;
    o->maxconns = o->set.maxconns;
    o->addr = KVS_DEFAULT_ADDR;
    ps->port = DEFAULT_PORT;
    ps->mem_mib = DEFAULT_MEM_MIB;
    ps->item_size_max = (long)o->set.item_size_max;
    ps->lru_maintainer = true;
    o->gather = KVS_GATHER_AUTO;
    app_platform_opts_default(&o->plat, APP_MODE_ELEOS, KVS_DEFAULT_SUVM_CACHE_MIB,
                              KVS_DEFAULT_RPC_SPIN_US);
}

int kvs_options_parse(int argc, char **argv, struct options *o) {
    struct parse ps;
    defaults(&ps, o);
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int r = app_platform_opt(&o->plat, c, optarg, "eleos-kvs");
        if (r < 0)
            return 2; /* the eleos flags keep their status */
        if (r > 0)
            continue;
        if (c == OPT_CONSOLIDATE) {
            int m = 0;
            while (kvs_gather_mode_name(m) && strcmp(kvs_gather_mode_name(m), optarg))
                m++;
            if (!kvs_gather_mode_name(m)) {
                fprintf(stderr, "eleos-kvs: --consolidate: auto, on or off, not '%s'\n", optarg);
                return 2;
            }
            o->gather = m;
            continue;
        }
        if (c == 'h' || c == 'i' || c == 'V') {
            if (c == 'h')
                usage();
            else if (c == 'i')
                license();
            else
                printf("memcached %s\n", KVS_MEMCACHED_VERSION);
            exit(0);
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "Illegal argument \"%c\"\n", '?');
            return 1;
        }
        r = mc_opt(&ps, c, optarg);
        if (r)
            return r;
    }
    if (optind < argc) {
        fprintf(stderr, "eleos-kvs: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    return options_check(&ps);
}
