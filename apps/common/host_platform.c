/*
 * host_platform.c — the host side of every Eleos server's platform (see host_platform.h).
 */
#include "host_platform.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "eleos/ioq.h"
#include "eleos/sys.h"

/* Channels beyond the app's threads: set-up, teardown and statistics ECALLs. */
#define SETUP_CHANNELS 4u

static int start_pool(struct app_platform *p, const struct app_platform_opts *o,
                      unsigned app_threads) {
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc);
    pc.workers = o->rpc_workers;
    pc.spin_ns = o->rpc_spin_us * 1000;
    pc.channels = app_threads + SETUP_CHANNELS;
    int r = eleos_rpc_pool_create(p->enc, &pc, &p->pool);
    if (!r)
        r = eleos_sys_host_register(p->pool);
    if (!r)
        r = eleos_rpc_pool_start(p->pool);
    return r;
}

/* The worker executor's threads and the idle-CPU monitor the adaptive choice reads. */
static int start_service(struct app_platform *p, const struct app_platform_opts *o) {
    struct eleos_ioq_service_config sc;
    eleos_ioq_service_config_default(&sc);
    sc.workers = o->rpc_workers;
    int r = eleos_ioq_service_start(&sc);
    p->ioq_service = r == 0;
    return r;
}

int app_platform_start(struct app_platform *p, const struct app_platform_opts *o,
                       const char *prog, const char *name, unsigned app_threads,
                       uint64_t elrange) {
    memset(p, 0, sizeof *p);
    p->rpc_on = app_rpc_resolve(o, app_threads);
    p->io = app_io_resolve(o);
    p->io_exec = o->io_exec;
    p->io_mod = o->io_mod;
    p->suvm_on = app_suvm_resolve(o);
    if (o->mode == APP_MODE_NATIVE)
        return 0;
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    cfg.epc_size = (uint64_t)o->epc_mib << 20;
    cfg.name = name;
    if (elrange)
        cfg.elrange_size = elrange;
    if (!o->cost)
        eleos_cost_model_off(&cfg.cost);
    if (o->pollute_kib) /* else ELEOS_COST_POLLUTE_KIB's, as the other ELEOS_COST_* */
        cfg.cost.pollute_kib = o->pollute_kib;
    int r = eleos_enclave_create(&cfg, &p->enc);
    if (r) {
        fprintf(stderr, "%s: cannot create the enclave: %s\n", prog, strerror(-r));
        return r;
    }
    if (p->rpc_on && (r = start_pool(p, o, app_threads)) != 0) {
        fprintf(stderr, "%s: cannot start the RPC pool: %s\n", prog, strerror(-r));
        app_platform_stop(p);
        return r;
    }
    if (p->io == APP_IO_QUEUE && (r = start_service(p, o)) != 0) {
        fprintf(stderr, "%s: cannot start the I/O service: %s\n", prog, strerror(-r));
        app_platform_stop(p);
        return r;
    }
    return 0;
}

void app_platform_stop(struct app_platform *p) {
    if (p->ioq_service)
        eleos_ioq_service_stop();
    p->ioq_service = false;
    if (p->evictor)
        eleos_suvm_evictor_stop(p->evictor);
    if (p->pool)
        eleos_rpc_pool_destroy(p->pool);
    if (p->enc)
        eleos_enclave_destroy(p->enc);
    p->evictor = NULL;
    p->pool = NULL;
    p->enc = NULL;
}

int app_ecall(const struct app_platform *p, eleos_enclave_fn fn, void *arg) {
    if (!p->enc)
        return (int)fn(arg);
    long ret = 0;
    int r = eleos_enclave_ecall(p->enc, fn, arg, &ret);
    return r ? r : (int)ret;
}

void app_platform_start_evictor(struct app_platform *p, struct eleos_suvm *suvm,
                                const char *prog) {
    if (!p->enc || !suvm)
        return;
    int r = eleos_suvm_evictor_start(p->enc, suvm, &p->evictor);
    if (r)
        fprintf(stderr, "%s: SUVM evictor not started (%s); faults evict inline\n", prog,
                strerror(-r));
}

void *app_platform_rpc_area(const struct app_platform *p, size_t *size) {
    *size = 0;
    return p->pool ? eleos_rpc_pool_shared(p->pool, size) : NULL;
}

void app_platform_print_stats(const struct app_platform *p) {
    if (p->enc) {
        printf("\n== enclave statistics ==\n");
        fflush(stdout);
        eleos_enclave_stats_print(p->enc, STDOUT_FILENO);
    }
    if (p->pool) {
        struct eleos_rpc_pool_stats ps;
        eleos_rpc_pool_stats(p->pool, &ps);
        printf("RPC workers: %llu sleeps, %llu wakes\n", (unsigned long long)ps.sleeps,
               (unsigned long long)ps.wakes);
    }
    fflush(stdout);
}
