/* eleos-pserver's mode glue when the RPC and SUVM libraries are not built: native and sgx
 * modes work; eleos mode reports that it is unavailable. */
#include <errno.h>

#include "pserver_modes.h"

int pserver_mode_thread_enter(struct eleos_enclave *enc, eleos_enclave_fn fn, void *arg,
                              long *ret) {
    return eleos_enclave_ecall(enc, fn, arg, ret);
}

int pserver_eleos_setup(struct eleos_enclave *enc, uint64_t table_mib, unsigned workers,
                        const struct ps_table_ops **table_ops, void **table,
                        const struct ps_io_ops **io) {
    (void)enc, (void)table_mib, (void)workers, (void)table_ops, (void)table, (void)io;
    return -ENOTSUP;
}

void pserver_mode_print_stats(int fd) {
    (void)fd;
}
