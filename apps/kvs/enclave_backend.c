/*
 * kvs_backend.c — enclave heap and SUVM adapters for the store (see kvs_backend.h).
 *
 * Trust: both are enclave-side. The enclave heap is trusted memory subject to emulated EPC
 * paging; SUVM keeps values sealed in untrusted memory and reports tampering as -EBADMSG,
 * which the store counts and the protocol turns into a SERVER_ERROR (never wrong data).
 */
#include "kvs_backend.h"

#include <errno.h>

static void *enc_malloc(void *ctx, size_t size) {
    return eleos_enclave_malloc(ctx, size);
}
static void *enc_realloc(void *ctx, void *p, size_t size) {
    return eleos_enclave_realloc(ctx, p, size);
}
static void enc_free(void *ctx, void *p) {
    eleos_enclave_free(ctx, p);
}

void kvs_alloc_enclave(struct kvs_alloc *a, struct eleos_enclave *enc) {
    a->malloc = enc_malloc;
    a->realloc = enc_realloc;
    a->free = enc_free;
    a->ctx = enc;
}

static int suvm_page_alloc(void *ctx, size_t size, uint64_t *addr) {
    return eleos_suvm_alloc(ctx, size, addr);
}
static void suvm_page_free(void *ctx, uint64_t addr, size_t size) {
    (void)size;
    /* Pages are freed at shutdown only, with no spointer linked: -EBUSY/-EINVAL would be
     * our bug, and the whole instance is destroyed right after anyway. */
    int r = eleos_suvm_free(ctx, addr);
    (void)r;
}
static int suvm_read(void *ctx, uint64_t addr, void *buf, size_t size) {
    return size ? eleos_suvm_read(ctx, addr, buf, size) : 0;
}
static int suvm_write(void *ctx, uint64_t addr, const void *buf, size_t size) {
    return size ? eleos_suvm_write(ctx, addr, buf, size) : 0;
}

const struct kvs_mem_ops kvs_mem_suvm_ops = {"suvm", suvm_page_alloc, suvm_page_free, suvm_read,
                                             suvm_write};
