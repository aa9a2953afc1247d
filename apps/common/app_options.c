/*
 * app_options.c — the shared flags of Eleos servers (see app_options.h). Host side only:
 * options are parsed before any enclave exists.
 */
#include "app_options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eleos/enclave.h"
#include "eleos/ioq.h"
#include "eleos/rpc.h"

bool app_parse_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return false;
    *out = v;
    return true;
}

bool app_parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return false;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    if (*end || v > (1ull << 40) >> shift)
        return false;
    *out = (size_t)(v << shift);
    return true;
}

static bool parse_onoff(const char *s, int *out) {
    if (strcmp(s, "on") == 0)
        *out = 1;
    else if (strcmp(s, "off") == 0)
        *out = 0;
    else
        return false;
    return true;
}

static bool parse_mode(const char *s, enum app_mode *out) {
    if (strcmp(s, "native") == 0)
        *out = APP_MODE_NATIVE;
    else if (strcmp(s, "sgx") == 0)
        *out = APP_MODE_SGX;
    else if (strcmp(s, "eleos") == 0)
        *out = APP_MODE_ELEOS;
    else
        return false;
    return true;
}

const char *app_mode_name(enum app_mode m) {
    return m == APP_MODE_NATIVE ? "native" : m == APP_MODE_SGX ? "sgx" : "eleos";
}

void app_platform_opts_default(struct app_platform_opts *o, enum app_mode mode,
                               size_t cache_mib, uint64_t spin_us) {
    *o = (struct app_platform_opts){
        .mode = mode, .rpc = -1, .io_exec = ELEOS_IOQ_EXEC_AUTO, .suvm = -1, .epc_mib = ELEOS_ENCLAVE_DEFAULT_EPC_SIZE >> 20,
        .cost = true, .suvm_cache_mib = cache_mib, .rpc_workers = 1, .rpc_spin_us = spin_us};
}

/* --rpc: off | sync | on | auto | an executor's name. */
static bool parse_rpc(struct app_platform_opts *o, const char *arg) {
    enum eleos_ioq_exec e;
    if (!strcmp(arg, "off") || !strcmp(arg, "sync")) {
        o->rpc = arg[0] == 's';
        o->io_exec = -1;
        return true;
    }
    if (!strcmp(arg, "on"))
        arg = "worker";
    if (eleos_ioq_exec_parse(arg, &e))
        return false;
    o->rpc = e == ELEOS_IOQ_EXEC_AUTO ? -1 : 1;
    o->io_exec = (int)e;
    return true;
}

/* Applies one shared flag whose code is known; false on a bad value. */
static bool apply(struct app_platform_opts *o, int opt, const char *arg) {
    uint64_t v;
    switch (opt) {
    case APP_OPT_MODE: return parse_mode(arg, &o->mode);
    case APP_OPT_RPC: return parse_rpc(o, arg);
    case APP_OPT_SUVM: return parse_onoff(arg, &o->suvm);
    case APP_OPT_COST: {
        int on;
        if (!parse_onoff(arg, &on))
            return false;
        o->cost = on;
        return true;
    }
    case APP_OPT_EPC:
        if (!app_parse_u64(arg, 1u << 20, &v) || v == 0)
            return false;
        o->epc_mib = (size_t)v;
        return true;
    case APP_OPT_POLLUTE:
        if (!app_parse_u64(arg, 1u << 20, &v))
            return false;
        o->pollute_kib = (uint32_t)v;
        return true;
    case APP_OPT_SUVM_CACHE:
        if (!app_parse_u64(arg, 1u << 20, &v) || v == 0)
            return false;
        o->suvm_cache_mib = (size_t)v;
        o->suvm_cache_set = true;
        return true;
    case APP_OPT_RPC_WORKERS:
        if (!app_parse_u64(arg, ELEOS_RPC_MAX_WORKERS, &v) || v == 0)
            return false;
        o->rpc_workers = (unsigned)v;
        return true;
    case APP_OPT_RPC_SPIN:
        if (!app_parse_u64(arg, 10u * 1000 * 1000, &v) || v == 0)
            return false;
        o->rpc_spin_us = v;
        return true;
    case APP_OPT_MODERATION:
        if (!strcmp(arg, "auto"))
            o->io_mod = ELEOS_IOQ_MOD_AUTO;
        else if (!strcmp(arg, "on"))
            o->io_mod = ELEOS_IOQ_MOD_ON;
        else if (!strcmp(arg, "off"))
            o->io_mod = ELEOS_IOQ_MOD_OFF;
        else
            return false;
        return true;
    default: return false;
    }
}

static const char *opt_name(int opt) {
    static const char *const names[] = {"mode", "rpc", "suvm", "epc", "cost", "pollute",
                                        "suvm-cache", "rpc-workers", "rpc-spin-us",
                                        "moderation"};
    return names[opt - APP_OPT_MODE];
}

int app_platform_opt(struct app_platform_opts *o, int opt, const char *arg, const char *prog) {
    if (opt < APP_OPT_MODE || opt > APP_OPT_MODERATION)
        return 0;
    if (apply(o, opt, arg))
        return 1;
    fprintf(stderr, "%s: bad value for option --%s: '%s'\n", prog, opt_name(opt), arg);
    return -1;
}

int app_platform_opts_check(const struct app_platform_opts *o, const char *prog) {
    if (o->mode == APP_MODE_NATIVE && (o->rpc == 1 || o->suvm == 1)) {
        fprintf(stderr, "%s: --rpc and --suvm need an enclave (--mode sgx or eleos)\n", prog);
        return -1;
    }
    return 0;
}

enum app_io_path app_io_resolve(const struct app_platform_opts *o) {
    if (o->mode == APP_MODE_NATIVE)
        return APP_IO_HOST;
    if (o->rpc == 0 || (o->rpc < 0 && o->mode != APP_MODE_ELEOS))
        return APP_IO_EXIT;
    return o->io_exec < 0 ? APP_IO_SYNC : APP_IO_QUEUE;
}

const char *app_io_path_name(enum app_io_path path) {
    static const char *const names[] = {"host", "exit", "sync", "queue"};
    return (unsigned)path < sizeof names / sizeof names[0] ? names[path] : "?";
}

bool app_rpc_resolve(const struct app_platform_opts *o, unsigned app_threads) {
    (void)app_threads;
    return app_io_resolve(o) == APP_IO_SYNC;
}

bool app_suvm_resolve(const struct app_platform_opts *o) {
    if (o->mode == APP_MODE_NATIVE)
        return false;
    return o->suvm >= 0 ? o->suvm : o->mode == APP_MODE_ELEOS;
}

void app_platform_usage(FILE *f, const struct app_platform_opts *d) {
    fprintf(f,
            "      --mode=M           native | sgx | eleos (default %s)\n"
            "      --rpc=M            system calls: auto (eleos mode's default: batched, the\n"
            "                         executor chosen at run time), on (= worker), uring,\n"
            "                         worker, sqpoll, batch (force one), sync (exitless RPC,\n"
            "                         one call at a time), off (every call an exit)\n"
            "      --suvm=on|off      data in SUVM (default: on in eleos mode)\n"
            "      --epc=MB           emulated EPC size (default %zu)\n"
            "      --cost=on|off      SGX cost model (default on; ELEOS_COST_* tune it)\n"
            "      --pollute=KB       cost model: cache pollution per exit (default 0, or\n"
            "                         ELEOS_COST_POLLUTE_KIB)\n"
            "      --suvm-cache=MB    SUVM page cache (default %zu)\n"
            "      --rpc-workers=N    host RPC or I/O worker threads (default %u)\n"
            "      --rpc-spin-us=N    idle spin of an RPC worker before it sleeps (default %llu)\n"
            "      --moderation=M     batched I/O: a wait holds out (at most 200 us) for a\n"
            "                         round of completions: auto (while the CPUs are busy;\n"
            "                         default), on, off\n",
            app_mode_name(d->mode), d->epc_mib, d->suvm_cache_mib, d->rpc_workers,
            (unsigned long long)d->rpc_spin_us);
}
