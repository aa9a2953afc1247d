/*
 * pserver_server.h — the interface between eleos-pserver's two halves (docs/design.md §4-5).
 *
 *   host_main.c       host side: options, the enclave and the RPC worker pool, the listening
 *                     socket, one thread per connection, the final statistics. Holds no
 *                     state the enclave relies on.
 *   enclave_server.c  enclave side: the ECALL entry points below, the trusted server state
 *                     (table, its ops, the I/O ops, the RPC client, counters), the request
 *                     loop and the flat table of native and sgx modes.
 *   enclave_suvm.c    enclave side: eleos mode's SUVM table and exitless I/O.
 *   enclave_queue.c   enclave side: the connection loop on the I/O queue (eleos/ioq.h),
 *                     for the APP_IO_QUEUE path (--rpc auto in eleos mode, or an executor).
 *
 * The host hands the enclave plain values only: a connection is its descriptor, passed as
 * an integer, and set-up is one host struct the enclave copies once and validates. The
 * enclave never dereferences a pointer the host chose, except untrusted memory it checked
 * to lie outside the enclave (the RPC area, the host's own argument structs). Globals of
 * enclave_*.c files are the enclave image's data (the EPC in real SGX); host_*.c code never
 * names them. In native mode the same functions run on the host, called directly.
 */
#ifndef ELEOS_PSERVER_SERVER_H
#define ELEOS_PSERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app_io.h"
#include "eleos/enclave.h"
#include "eleos/ioq.h"
#include "pserver.h"

/* The same values as enum app_mode (apps/common), which the host parses. */
enum ps_mode { PS_MODE_NATIVE, PS_MODE_SGX, PS_MODE_ELEOS };

/* Bounds the enclave enforces on the host's set-up values (and the host's options). */
#define PS_TABLE_MAX_BYTES (1ull << 40)
#define PS_CACHE_MAX_BYTES (1ull << 40)
#define PS_NAME_MAX 48u

/* Set-up values, host -> enclave (copied once by ps_enclave_setup, then validated). */
struct ps_setup {
    enum ps_mode mode;
    bool rpc_on;             /* exitless recv/send (needs rpc_area)                       */
    bool suvm_on;            /* the table in SUVM, else on the enclave heap               */
    uint64_t table_bytes;    /* a non-zero multiple of 8, at most PS_TABLE_MAX_BYTES      */
    uint64_t cache_bytes;    /* SUVM's page cache, 0 = SUVM's default                     */
    void *rpc_area;          /* rpc_on: the RPC pool's shared area (untrusted)            */
    size_t rpc_area_size;
    bool ioq_on;             /* each connection on its own I/O queue (needs an enclave)   */
    uint32_t ioq_exec;       /* ioq_on: its executor (enum eleos_ioq_exec); else 0         */
    /* written back by the enclave, for the host's start-up line: */
    char out_table[PS_NAME_MAX];
    char out_io[PS_NAME_MAX];
};

/* Statistics, enclave -> host (filled in enclave memory, then copied out). */
struct ps_stats {
    uint64_t keys, batches, host_faults;
    bool rpc, suvm;
    uint64_t rpc_calls, rpc_exitless, rpc_fallbacks, rpc_no_worker, rpc_ocalls;
    uint64_t suvm_hits, suvm_major_faults, suvm_subpage_reads, suvm_subpage_writes;
    uint64_t suvm_integrity_failures, table_errors;
    /* The I/O queue path: eleos_ioq_stats summed over connections as they close. */
    bool ioq;
    uint32_t ioq_exec;                             /* the executor asked for           */
    uint64_t ioq_conns, ioq_failures;              /* served; queue set-up failed      */
    uint64_t ioq_ops, ioq_completions, ioq_exits, ioq_enters, ioq_wakes, ioq_spins;
    uint64_t ioq_polled;                           /* waits the server's own polling met */
    uint64_t ioq_host_faults, ioq_bad_results, ioq_switches, ioq_trials, ioq_trials_won;
    uint64_t ioq_by_exec[ELEOS_IOQ_NEXEC];         /* operations submitted per executor */
    uint64_t ioq_final_exec[ELEOS_IOQ_NEXEC];      /* connections by executor at close  */
};

/* ECALL bodies (eleos_enclave_fn). Native mode calls them directly. */
long ps_enclave_setup(void *setup);   /* struct ps_setup *: 0 or -errno                  */
long ps_enclave_serve(void *fd);      /* (uintptr_t) connection fd: serves it, closes it */
long ps_enclave_stats(void *stats);   /* struct ps_stats *: 0 or -errno                  */

/* --- enclave side internals (enclave_server.c <-> enclave_suvm.c) ---------------------- */

/* Creates eleos mode's table in SUVM inside enc: 0 or -errno. */
int ps_suvm_table_create(struct eleos_enclave *enc, uint64_t table_bytes,
                         uint64_t cache_bytes, const struct ps_table_ops **ops, void **table);
/* Adds the SUVM table's statistics to *st. */
void ps_suvm_table_stats(void *table, struct ps_stats *st);

/* --- enclave side internals (enclave_server.c <-> enclave_queue.c) --------------------- */

/* The queue path's counters, summed over connections as they close (trusted state). */
struct ps_ioq_totals {
    _Atomic uint64_t conns, failures, ops, completions, exits, enters, wakes, spins, polled;
    _Atomic uint64_t host_faults, bad_results, switches, trials, trials_won;
    _Atomic uint64_t by_exec[ELEOS_IOQ_NEXEC], final_exec[ELEOS_IOQ_NEXEC];
    _Atomic unsigned serving; /* connections on the queue path right now */
};

/* What the queue path's connection loop uses of the trusted server state: copied from it
 * on the serving thread's stack, never from the host. */
struct ps_queue_env {
    struct eleos_enclave *enc;
    const struct ps_table_ops *table_ops;
    void *table;
    _Atomic uint64_t *keys, *batches;
    enum eleos_ioq_exec exec;
    struct ps_ioq_totals *tot;
};

/* Checks at set-up that a queue on exec can be created here: 0 or -errno (-ENOSYS: the
 * executor is not available). */
int ps_queue_probe(struct eleos_enclave *enc, enum eleos_ioq_exec exec);
/* Serves fd with a queue of its own until the client leaves, as the blocking loop does:
 * 0, -EPROTO (malformed request), the table's error, or the queue's (-ENOMEM...). Does
 * not close fd. */
long ps_queue_serve(const struct ps_queue_env *env, int fd);
/* Copies the totals into *st. */
void ps_queue_stats(struct ps_ioq_totals *tot, struct ps_stats *st);

#endif
