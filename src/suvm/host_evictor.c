/*
 * Host side of the SUVM background evictor. Enclave code cannot create threads, so a host
 * thread ("eleos-evict") ECALLs into the enclave and runs eleos_suvm_evictor_run there
 * until asked to stop; the request to stop is itself an ECALL, as the host may not write
 * enclave memory. Those ECALLs carry the instance's handle, which the enclave resolves in its
 * registry (enclave_ecall.c); the struct eleos_suvm * the caller passes to start is only
 * used to ask the enclave for that handle (it compares, never dereferences). For a
 * host-mode instance (enc NULL) the same functions run directly. Everything here runs in
 * host mode; start and stop called inside an ECALL go to enclave_evictor.c, which reaches
 * the thread functions below through OCALLs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "suvm/suvm_internal.h"

/* fn(arg) inside enc (directly for a host-mode instance); an ECALL failure is the result. */
static long in_enclave(struct eleos_enclave *enc, eleos_enclave_fn fn, void *arg) {
    if (!enc)
        return fn(arg);
    long ret = 0;
    int r = eleos_enclave_ecall(enc, fn, arg, &ret);
    return r ? r : ret;
}

static void *evictor_thread(void *arg) {
    struct suvm_evictor_host *h = arg;
    pthread_setname_np(pthread_self(), "eleos-evict");
    /* Ends with 0 when stopped, -EBUSY if another evictor serves this instance, or an
     * error of the enclave (lost): either way the thread is done. */
    long ret = in_enclave(h->enc, eleos_suvm_evictor_run, (void *)(uintptr_t)h->handle);
    (void)ret;
    return NULL;
}

long suvm_evictor_host_spawn(void *arg) {
    struct suvm_evictor_host *h = arg;
    return -pthread_create(&h->thread, NULL, evictor_thread, h);
}

long suvm_evictor_host_join(void *arg) {
    struct suvm_evictor_host *h = arg;
    pthread_join(h->thread, NULL);
    return 0;
}

int eleos_suvm_evictor_start(struct eleos_enclave *enc, struct eleos_suvm *s,
                             struct eleos_suvm_evictor **out) {
    if (eleos_enclave_in_enclave_mode())
        return enc == eleos_enclave_current() ? suvm_evictor_start_inside(s, out) : -ESRCH;
    long h = in_enclave(enc, suvm_ecall_find, s);
    if (h < 0)
        return (int)h;
    struct eleos_suvm_evictor *ev = calloc(1, sizeof *ev);
    struct suvm_evictor_host *host = calloc(1, sizeof *host);
    if (!ev || !host) {
        free(ev);
        free(host);
        return -ENOMEM;
    }
    ev->enc = host->enc = enc;
    ev->handle = host->handle = (uint64_t)h;
    ev->host = host;
    int r = (int)suvm_evictor_host_spawn(host);
    if (r) {
        free(host);
        free(ev);
        return r;
    }
    *out = ev;
    return 0;
}

void eleos_suvm_evictor_stop(struct eleos_suvm_evictor *ev) {
    if (!ev)
        return;
    if (eleos_enclave_in_enclave_mode()) {
        suvm_evictor_stop_inside(ev);
        return;
    }
    long r = in_enclave(ev->enc, eleos_suvm_evictor_halt, (void *)(uintptr_t)ev->handle);
    (void)r; /* -ESRCH: the instance is gone, and its destroy stopped the evictor */
    suvm_evictor_host_join(ev->host);
    free(ev->host);
    free(ev);
}
