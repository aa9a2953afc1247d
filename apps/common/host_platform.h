/*
 * host_platform.h — bringing up and tearing down what an Eleos server runs on, host side:
 * the emulated enclave with its cost model, the RPC worker pool with the system-call
 * executor, the SUVM evictor thread, and ECALLs that also work in native mode.
 */
#ifndef ELEOS_HOST_PLATFORM_H
#define ELEOS_HOST_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app_options.h"
#include "eleos/enclave.h"
#include "eleos/rpc.h"
#include "eleos/suvm.h"

struct app_platform {
    struct eleos_enclave *enc;        /* NULL in native mode                     */
    struct eleos_rpc_pool *pool;      /* NULL unless RPC is on                   */
    struct eleos_suvm_evictor *evictor;
    bool rpc_on, suvm_on;
    enum app_io_path io;              /* how the app's threads make system calls */
    int io_exec;                      /* APP_IO_QUEUE: enum eleos_ioq_exec       */
    int io_mod;                       /* APP_IO_QUEUE: enum eleos_ioq_moderation */
    bool ioq_service;                 /* the I/O service (workers, monitor) runs */
};

/*
 * Starts the platform for the options: nothing in native mode; else an enclave named name
 * (elrange 0 = the default), and with RPC on a pool with channels for app_threads plus a
 * few set-up threads, the system-call executor registered and the workers started; for
 * the I/O queue (APP_IO_QUEUE) the I/O service (eleos/ioq.h: --rpc-workers workers). On
 * failure prints why (naming prog), stops what was started and returns -errno.
 */
int app_platform_start(struct app_platform *p, const struct app_platform_opts *o,
                       const char *prog, const char *name, unsigned app_threads,
                       uint64_t elrange);
void app_platform_stop(struct app_platform *p);

/* Runs fn(arg) inside the enclave (an ECALL), or directly in native mode. fn's result, or
 * the ECALL's error. */
int app_ecall(const struct app_platform *p, eleos_enclave_fn fn, void *arg);

/* Starts the SUVM evictor for the instance the enclave handed back (an opaque token the
 * evictor's ECALL checks); a failure is reported and leaves faults evicting inline. */
void app_platform_start_evictor(struct app_platform *p, struct eleos_suvm *suvm,
                                const char *prog);

/* The shared area the enclave's RPC client attaches to (NULL without RPC). */
void *app_platform_rpc_area(const struct app_platform *p, size_t *size);

/* Prints the enclave's statistics table and the RPC workers' sleeps and wakes to stdout. */
void app_platform_print_stats(const struct app_platform *p);

#endif
