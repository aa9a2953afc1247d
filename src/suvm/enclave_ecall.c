/*
 * SUVM's ECALL entry points and the registry behind them (docs/design.md §5, rule 1).
 *
 * The host runs the background evictor by ECALLing into the enclave, so whatever argument
 * those ECALLs carry is the host's choice. They take the instance's handle, an integer
 * resolved in an enclave-side registry of live instances (common/enclave_registry.h), never
 * a struct eleos_suvm *: a host that builds a fake instance — its frames pointing at the
 * real instance's struct, its crypto under a host key — and passed its address would
 * otherwise have the evictor seal the real key out to the host, and the stop request was a
 * store at an address of the host's choosing. A handle that names no live instance of the
 * calling enclave (made up, stale, another enclave's, used from host mode) is refused with
 * -ESRCH and counted (eleos_suvm_bad_handles).
 *
 * Every function here runs inside the enclave (or directly, for a host-mode instance).
 */
#include <errno.h>

#include "common/enclave_registry.h"
#include "suvm/suvm_internal.h"

/* Live instances of every enclave in the process (the owner check keeps them apart). An
 * enclave global: trusted state. */
static struct enclave_registry instances;

int suvm_register(struct eleos_suvm *s) {
    uint64_t h = enclave_registry_add(&instances, s, s->enc);
    if (!h)
        return -ENOMEM;
    s->handle = h;
    return 0;
}

void suvm_unregister(struct eleos_suvm *s) {
    if (!s->handle || !enclave_registry_retire(&instances, s->handle))
        return;
    /* No new ECALL resolves s now. One already inside may be the evictor, which returns
     * within a nap once asked to stop; the wait covers it and any stop request. */
    eleos_suvm_evictor_request_stop(s);
    enclave_registry_drain(&instances, s->handle);
    s->handle = 0;
}

uint64_t eleos_suvm_handle(const struct eleos_suvm *s) {
    return s->handle;
}

uint64_t eleos_suvm_bad_handles(void) {
    return enclave_registry_refused(&instances);
}

/* The instance the ECALL argument names in the calling enclave, referenced; NULL if none. */
static struct eleos_suvm *resolve(void *arg) {
    return enclave_registry_get(&instances, (uint64_t)(uintptr_t)arg, eleos_enclave_current());
}

long eleos_suvm_evictor_run(void *arg) {
    struct eleos_suvm *s = resolve(arg);
    if (!s)
        return -ESRCH;
    long r = suvm_evictor_loop(s, suvm_coord_evictor_pass);
    enclave_registry_put(&instances, (uint64_t)(uintptr_t)arg);
    return r;
}

long eleos_suvm_evictor_halt(void *arg) {
    struct eleos_suvm *s = resolve(arg);
    if (!s)
        return -ESRCH;
    eleos_suvm_evictor_request_stop(s);
    enclave_registry_put(&instances, (uint64_t)(uintptr_t)arg);
    return 0;
}

long suvm_ecall_find(void *arg) {
    uint64_t h = enclave_registry_find(&instances, arg, eleos_enclave_current());
    return h ? (long)h : -ESRCH;
}
