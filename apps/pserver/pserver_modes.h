/* Mode-specific parts of eleos-pserver: entering the enclave per connection thread, and the
 * eleos mode's exitless I/O and SUVM table. */
#ifndef ELEOS_PSERVER_MODES_H
#define ELEOS_PSERVER_MODES_H

#include "eleos/enclave.h"
#include "pserver.h"

/* Runs fn(arg) inside enc on the calling (connection) thread. In eleos mode the thread also
 * gets its RPC channel for the call's duration. 0 or -errno; fn's result in *ret. */
int pserver_mode_thread_enter(struct eleos_enclave *enc, eleos_enclave_fn fn, void *arg,
                              long *ret);

/* Sets up eleos mode: worker pool, exitless I/O, SUVM table of table_mib with a page cache
 * of cache_mib (0 = SUVM's default, 60 MiB), RPC workers spinning spin_ns before they sleep.
 * 0 or -errno. */
int pserver_eleos_setup(struct eleos_enclave *enc, uint64_t table_mib, uint64_t cache_mib,
                        unsigned workers, uint64_t spin_ns,
                        const struct ps_table_ops **table_ops, void **table,
                        const struct ps_io_ops **io);

/* Prints the RPC and SUVM statistics of eleos mode (nothing in other modes). */
void pserver_mode_print_stats(int fd);

#endif
