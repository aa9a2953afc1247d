/*
 * host_options.h — eleos-kvs's command line: memcached 1.6.18's options (short and long
 * forms, its defaults, its refusals with its messages and exit statuses) plus the eleos
 * platform flags (--mode, --rpc, ... : app_options.h). Host side only.
 */
#ifndef ELEOS_KVS_HOST_OPTIONS_H
#define ELEOS_KVS_HOST_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "app_options.h"
#include "kvs_server.h"
#include "kvs_settings.h"

/* memcached's exit statuses (sysexits.h). */
#define KVS_EX_USAGE 64
#define KVS_EX_NOUSER 67
#define KVS_EX_OSERR 71

/* eleos-kvs's default address: loopback, where memcached's is every interface. */
#define KVS_DEFAULT_ADDR "127.0.0.1"
/* The SUVM page cache and the RPC spin (host_main.c says why these values). */
#define KVS_DEFAULT_SUVM_CACHE_MIB 56u
#define KVS_DEFAULT_RPC_SPIN_US 2000u

struct options {
    unsigned port;            /* -p (0 = any free port, not "no TCP" as in memcached)   */
    const char *addr;         /* the first listener's address, for the banner         */
    size_t mem_mib;           /* -m                                                     */
    unsigned threads;         /* -t                                                     */
    unsigned maxconns;        /* -c                                                     */
    size_t item_size_max;     /* -I                                                     */
    unsigned verbose;         /* -v count                                               */
    struct kvs_settings set;  /* memcached's settings, as `stats settings` shows them   */
    struct app_platform_opts plat;
    /* the process, not the server */
    const char *user;         /* -u: the identity to take when started as root          */
    const char *pidfile;      /* -P                                                     */
    bool daemonize;           /* -d                                                     */
    bool lock_memory;         /* -k                                                     */
    bool maxcore;             /* -r                                                     */
    bool udp_on;              /* -U given non-zero: a UDP socket on udpport             */
    int gather;               /* --consolidate (enum kvs_gather_mode)                   */
};

/* Parses argv into o. Returns 0 to go on, or the status to exit with (after printing
 * memcached's message); -h, -i and -V print and exit(0) here, as memcached does. */
int kvs_options_parse(int argc, char **argv, struct options *o);

#endif

/* --- host_listen.c: the sockets and the process (memcached's start-up order) ------------ */

struct kvs_listen_set {
    unsigned n;
    int fd[KVS_MAX_LISTEN_FDS];
    uint8_t conf[KVS_MAX_LISTEN_FDS];     /* settings.listeners[] index, or KVS_LISTENER_* */
    char desc[KVS_MAX_LISTEN_FDS][96];    /* "ADDR:PORT" or "unix:PATH", for the banner     */
    int udp_fd;                           /* -1: no UDP                                     */
    char udp_desc[96];
};

/* -r, then -u (memcached refuses root without it), -d, -k. 0 or the status to exit with. */
int kvs_process_setup(const struct options *o);
/* The unix socket (-s), else the TCP listeners (-l/-p) and the UDP socket (-U). 0 or the
 * status to exit with (memcached's EX_OSERR on a socket it cannot open). */
int kvs_listeners_open(const struct options *o, struct kvs_listen_set *ls);
void kvs_listeners_close(struct kvs_listen_set *ls);
/* -P: written as memcached writes it (a temporary name, then renamed). */
void kvs_pidfile_save(const char *path);
void kvs_pidfile_remove(const char *path);
