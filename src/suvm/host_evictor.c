/*
 * Host side of the SUVM background evictor. Enclave code cannot create threads, so a host
 * thread ("eleos-evict") ECALLs into the enclave and runs eleos_suvm_evictor_run there
 * until asked to stop; the request to stop is itself an ECALL, as the host may not write
 * enclave memory. For a host-mode instance (enc NULL) the same functions run directly.
 * Everything here runs in host mode.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "suvm/suvm_internal.h"

struct eleos_suvm_evictor {
    struct eleos_enclave *enc;
    struct eleos_suvm *s;
    pthread_t thread;
};

static void *evictor_thread(void *arg) {
    struct eleos_suvm_evictor *ev = arg;
    pthread_setname_np(pthread_self(), "eleos-evict");
    long ret = 0;
    if (ev->enc) {
        int r = eleos_enclave_ecall(ev->enc, eleos_suvm_evictor_run, ev->s, &ret);
        (void)r; /* a lost enclave just ends the evictor */
    } else {
        ret = eleos_suvm_evictor_run(ev->s);
    }
    (void)ret; /* -EBUSY: another evictor already serves this instance */
    return NULL;
}

static long request_stop(void *arg) {
    eleos_suvm_evictor_request_stop(arg);
    return 0;
}

int eleos_suvm_evictor_start(struct eleos_enclave *enc, struct eleos_suvm *s,
                             struct eleos_suvm_evictor **out) {
    struct eleos_suvm_evictor *ev = calloc(1, sizeof *ev);
    if (!ev)
        return -ENOMEM;
    ev->enc = enc;
    ev->s = s;
    int r = pthread_create(&ev->thread, NULL, evictor_thread, ev);
    if (r) {
        free(ev);
        return -r;
    }
    *out = ev;
    return 0;
}

void eleos_suvm_evictor_stop(struct eleos_suvm_evictor *ev) {
    if (!ev)
        return;
    if (ev->enc) {
        long ret;
        int r = eleos_enclave_ecall(ev->enc, request_stop, ev->s, &ret);
        (void)r;
    } else {
        request_stop(ev->s);
    }
    pthread_join(ev->thread, NULL);
    free(ev);
}
