/*
 * app_ossl.h — OpenSSL's allocator for servers that run libcrypto/libssl inside the enclave
 * (eleos-kvs's TLS, eleos-face's AES-GCM).
 *
 * An allocation made while the calling thread executes in an enclave comes from that
 * enclave's heap, so keys, key schedules and plaintext buffers OpenSSL allocates for enclave
 * code stay in enclave memory; a host-mode allocation (the library's tables, loaded before
 * any enclave is entered) comes from libc. A free or realloc goes to the heap the pointer
 * lives on, whichever mode frees it (per-thread error queues are freed by a host thread's
 * destructor after its ECALL returned).
 */
#ifndef ELEOS_APP_OSSL_H
#define ELEOS_APP_OSSL_H

/* Host side, first thing in main(): must precede any OpenSSL call (afterwards OpenSSL
 * refuses a new allocator, and nothing of ours has used it yet). */
void app_ossl_mem_install(void);

#endif
