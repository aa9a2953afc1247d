/*
 * enclave_ossl.c — OpenSSL's allocator routed to the enclave heap (app_ossl.h). Its
 * functions run on whichever side OpenSSL is called from: they pick the heap by the calling
 * thread's mode (allocations) or by the pointer (frees, reallocs).
 */
#include <stdlib.h>

#include <openssl/crypto.h>

#include "app_ossl.h"
#include "eleos/enclave.h"

static void *ossl_malloc(size_t n, const char *file, int line) {
    (void)file, (void)line;
    struct eleos_enclave *e = eleos_enclave_current();
    return e ? eleos_enclave_malloc(e, n) : malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line) {
    if (!p)
        return ossl_malloc(n, file, line);
    struct eleos_enclave *e = eleos_enclave_containing(p);
    return e ? eleos_enclave_realloc(e, p, n) : realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line) {
    (void)file, (void)line;
    if (!p)
        return;
    struct eleos_enclave *e = eleos_enclave_containing(p);
    if (e)
        eleos_enclave_free(e, p);
    else
        free(p);
}

void app_ossl_mem_install(void) {
    /* Fails only once OpenSSL has allocated: then nothing of ours has run it yet. */
    (void)CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}
