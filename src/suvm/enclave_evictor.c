/*
 * Starting and stopping the background evictor from inside the enclave, for an enclave that
 * does all its work in one ECALL and must not leave to start a thread. The thread is the
 * host's in any case (enclave code cannot create threads): the library makes the OCALL that
 * creates it, and the thread ECALLs back in with the instance's handle, exactly as one
 * started from host mode (host_evictor.c).
 *
 * What crosses: the handle (an integer the enclave resolves in its registry) and the enclave's
 * address, written into an untrusted record the host owns; the enclave never reads that
 * record back, and keeps its own copy of everything it needs (the handle, to stop) in a
 * struct on its heap. A host that lies about the thread (says it started one and did not,
 * or never joins) only denies service, which the threat model leaves to the host.
 */
#include <errno.h>

#include "suvm/suvm_internal.h"

int suvm_evictor_start_inside(struct eleos_suvm *s, struct eleos_suvm_evictor **out) {
    struct eleos_enclave *enc = eleos_enclave_current();
    long h = suvm_ecall_find(s); /* s must be a live instance of this enclave */
    if (h < 0)
        return (int)h;
    struct eleos_suvm_evictor *ev = eleos_enclave_calloc(enc, 1, sizeof *ev);
    if (!ev)
        return -ENOMEM;
    struct suvm_evictor_host rec = {.enc = enc, .handle = (uint64_t)h};
    struct suvm_evictor_host *host = eleos_untrusted_alloc(sizeof *host);
    long r = host ? eleos_copy_out(host, &rec, sizeof rec) : -ENOMEM;
    if (r == 0) {
        /* The host's word: 0 or an errno from pthread_create; anything else is a lie. */
        r = eleos_enclave_ocall(suvm_evictor_host_spawn, host);
        if (r > 0 || r < -4095)
            r = -EIO;
    }
    if (r) {
        if (host)
            eleos_untrusted_free(host, sizeof *host);
        eleos_enclave_free(enc, ev);
        return (int)r;
    }
    ev->enc = enc;
    ev->handle = (uint64_t)h;
    ev->from_enclave = true;
    ev->host = host;
    *out = ev;
    return 0;
}

void suvm_evictor_stop_inside(struct eleos_suvm_evictor *ev) {
    /* The halt is the ECALL body itself: we are inside the enclave already. */
    long r = eleos_suvm_evictor_halt((void *)(uintptr_t)ev->handle);
    (void)r; /* -ESRCH: the instance is gone, and its destroy stopped the evictor */
    (void)eleos_enclave_ocall(suvm_evictor_host_join, ev->host);
    eleos_untrusted_free(ev->host, sizeof *ev->host);
    eleos_enclave_free(ev->enc, ev);
}
