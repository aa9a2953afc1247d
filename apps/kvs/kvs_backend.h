/*
 * kvs_backend.h — the enclave-side heaps and value stores of eleos-kvs:
 *
 *   kvs_alloc_enclave()   the enclave heap as a struct kvs_alloc (trusted metadata, and the
 *                         sgx-mode value store through kvs_mem_heap_ops);
 *   kvs_mem_suvm_ops      values in SUVM (eleos mode): ctx is the struct eleos_suvm *.
 */
#ifndef ELEOS_KVS_BACKEND_H
#define ELEOS_KVS_BACKEND_H

#include "eleos/enclave.h"
#include "eleos/suvm.h"
#include "kvs_common.h"
#include "kvs_store.h"

/* Fills *a with enc's heap. a must outlive its users. */
void kvs_alloc_enclave(struct kvs_alloc *a, struct eleos_enclave *enc);

extern const struct kvs_mem_ops kvs_mem_suvm_ops;

#endif
