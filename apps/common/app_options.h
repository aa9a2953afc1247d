/*
 * app_options.h — the command-line flags every Eleos server shares, parsed one way: the
 * mode, the exitless-RPC and SUVM switches, the emulated platform (EPC size, cost model)
 * and the RPC workers. Each app adds APP_PLATFORM_LONGOPTS to its getopt_long table and
 * hands unknown option codes to app_platform_opt; values are checked the same way in every
 * app, and a bad one gets the same message.
 */
#ifndef ELEOS_APP_OPTIONS_H
#define ELEOS_APP_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum app_mode { APP_MODE_NATIVE, APP_MODE_SGX, APP_MODE_ELEOS };

struct app_platform_opts {
    enum app_mode mode;
    int rpc;                  /* 1 on, 0 off, -1 auto (the I/O queue, adaptive)         */
    int io_exec;              /* the I/O queue's executor (enum eleos_ioq_exec), or -1:
                                 one call at a time (--rpc sync) or exits (--rpc off)   */
    int suvm;                 /* 1 on, 0 off, -1 the mode's default (on in eleos mode)  */
    size_t epc_mib;
    bool cost;                /* the SGX cost model                                     */
    uint32_t pollute_kib;     /* the cost model's per-exit cache pollution              */
    size_t suvm_cache_mib;
    bool suvm_cache_set;      /* given on the command line                              */
    unsigned rpc_workers;
    uint64_t rpc_spin_us;
    int io_mod;               /* the I/O queue's completion moderation (enum
                                 eleos_ioq_moderation)                                  */
};

/* getopt_long codes of the shared flags (above any single-character option). */
enum {
    APP_OPT_MODE = 0x1000, APP_OPT_RPC, APP_OPT_SUVM, APP_OPT_EPC, APP_OPT_COST,
    APP_OPT_POLLUTE, APP_OPT_SUVM_CACHE, APP_OPT_RPC_WORKERS, APP_OPT_RPC_SPIN,
    APP_OPT_MODERATION,
};

#define APP_PLATFORM_LONGOPTS                                                               \
    {"mode", required_argument, NULL, APP_OPT_MODE},                                        \
    {"rpc", required_argument, NULL, APP_OPT_RPC},                                          \
    {"suvm", required_argument, NULL, APP_OPT_SUVM},                                        \
    {"epc", required_argument, NULL, APP_OPT_EPC},                                          \
    {"cost", required_argument, NULL, APP_OPT_COST},                                        \
    {"pollute", required_argument, NULL, APP_OPT_POLLUTE},                                  \
    {"suvm-cache", required_argument, NULL, APP_OPT_SUVM_CACHE},                            \
    {"rpc-workers", required_argument, NULL, APP_OPT_RPC_WORKERS},                          \
    {"rpc-spin-us", required_argument, NULL, APP_OPT_RPC_SPIN},                             \
    {"moderation", required_argument, NULL, APP_OPT_MODERATION}

/* Defaults: the given mode, RPC auto, SUVM by mode, 93 MiB EPC, cost model on, one RPC
 * worker spinning spin_us, a SUVM cache of cache_mib. */
void app_platform_opts_default(struct app_platform_opts *o, enum app_mode mode,
                               size_t cache_mib, uint64_t spin_us);

/* Handles option code opt with argument arg: 1 if it is a shared flag (applied), 0 if not
 * one of them, -1 if its value is bad (a message naming prog was printed). */
int app_platform_opt(struct app_platform_opts *o, int opt, const char *arg, const char *prog);

/* Checks the combination (RPC and SUVM need an enclave). 0, or -1 with a message. */
int app_platform_opts_check(const struct app_platform_opts *o, const char *prog);

/* The shared flags' lines for an app's --help. */
void app_platform_usage(FILE *f, const struct app_platform_opts *defaults);

/* How an app's threads make their system calls. */
enum app_io_path {
    APP_IO_HOST,   /* native mode: plain system calls                                    */
    APP_IO_EXIT,   /* every call an exit (--rpc off; sgx mode's default)                 */
    APP_IO_SYNC,   /* exitless RPC, one call at a time (--rpc sync)                      */
    APP_IO_QUEUE,  /* batched, completion-based (eleos/ioq.h): --rpc auto (eleos mode's
                      default) picks the executor at run time, on = the worker executor,
                      uring | worker | sqpoll | batch force one                          */
};
enum app_io_path app_io_resolve(const struct app_platform_opts *o);
/* "host", "exit", "sync" or "queue", for start-up lines. */
const char *app_io_path_name(enum app_io_path path);
/* The RPC pool is needed (the one-call-at-a-time path). */
bool app_rpc_resolve(const struct app_platform_opts *o, unsigned app_threads);
/* SUVM on for this mode and flags. */
bool app_suvm_resolve(const struct app_platform_opts *o);

const char *app_mode_name(enum app_mode m);

/* Checked number parsers: decimal, no sign, no trailing bytes, at most max. */
bool app_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* A size with an optional k/K/m/M suffix, at most 1 TiB. */
bool app_parse_size(const char *s, size_t *out);

#endif
