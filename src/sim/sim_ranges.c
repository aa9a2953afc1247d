/*
 * Where enclave memory is: the registry of live ELRANGEs that the fault handler and the
 * exit path search, the range checks of enclave.h, and untrusted memory. A leaf under
 * sim_enclave.c (which publishes and unpublishes enclaves) and the handlers.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sim/sim_internal.h"

#define REGISTRY_MAX 64
/* Written under registry_mu by create/destroy; read lock-free by the SIGSEGV handler. A
 * release store publishes a fully built enclave, paired with the acquire load in find. */
static struct eleos_enclave *_Atomic registry[REGISTRY_MAX];
static struct eleos_spinlock registry_mu = ELEOS_SPINLOCK_INIT;

struct eleos_enclave *sim_registry_find(uintptr_t addr) {
    for (int i = 0; i < REGISTRY_MAX; i++) {
        struct eleos_enclave *e = atomic_load_explicit(&registry[i], memory_order_acquire);
        if (e && addr - (uintptr_t)e->epc.base < e->epc.npages * (uintptr_t)ELEOS_PAGE_SIZE)
            return e;
    }
    return NULL;
}

static pid_t registry_pid; /* protected by registry_mu */

/* For fork (sim_heap.c): no create or destroy is half-way through the registry. */
/* A child of fork has none of its parent's enclaves (their ELRANGE views are MADV_DONTFORK,
 * as SGX does not copy EPC pages): each becomes lost (ECALLs return -EBADMSG, as the SDK's
 * SGX_ERROR_ENCLAVE_LOST), hands out no memory, refuses trim and evict (they would punch the
 * memfd the parent's enclave lives in), and leaves the registry, so a touch of its unmapped
 * range is an ordinary SIGSEGV. Single-threaded here: plain stores suffice. */
void sim_registry_fork_child(void) {
    for (int i = 0; i < REGISTRY_MAX; i++) {
        struct eleos_enclave *e = atomic_load_explicit(&registry[i], memory_order_relaxed);
        if (!e)
            continue;
        e->inherited = true;
        atomic_store_explicit(&e->lost, true, memory_order_relaxed);
        atomic_store_explicit(&registry[i], NULL, memory_order_relaxed);
    }
}

void sim_registry_lock(void) {
    sim_spin_lock_yield(&registry_mu);
}

void sim_registry_unlock(void) {
    eleos_spin_unlock(&registry_mu);
}

int sim_registry_add(struct eleos_enclave *enc) {
    int r = -EMFILE;
    eleos_spin_lock(&registry_mu);
    if (registry_pid != getpid()) {
        /* A forked child inherits the parent's entries but not their ELRANGEs. */
        for (int i = 0; i < REGISTRY_MAX; i++)
            atomic_store_explicit(&registry[i], NULL, memory_order_relaxed);
        registry_pid = getpid();
    }
    for (int i = 0; i < REGISTRY_MAX; i++) {
        if (!atomic_load_explicit(&registry[i], memory_order_relaxed)) {
            atomic_store_explicit(&registry[i], enc, memory_order_release);
            r = 0;
            break;
        }
    }
    eleos_spin_unlock(&registry_mu);
    return r;
}

void sim_registry_remove(struct eleos_enclave *enc) {
    eleos_spin_lock(&registry_mu);
    for (int i = 0; i < REGISTRY_MAX; i++)
        if (atomic_load_explicit(&registry[i], memory_order_relaxed) == enc)
            atomic_store_explicit(&registry[i], NULL, memory_order_release);
    eleos_spin_unlock(&registry_mu);
}

/* --- memory ------------------------------------------------------------------------------ */

void *eleos_untrusted_alloc(size_t size) {
    if (size == 0)
        return NULL;
    /* mmap: page-aligned, zeroed, never inside an ELRANGE (those ranges are mapped). In
     * enclave mode this mmap traps and is counted as an exit, as an OCALL would be. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void eleos_untrusted_free(void *p, size_t size) {
    if (p && size)
        munmap(p, size);
}

bool eleos_enclave_within(const struct eleos_enclave *enc, const void *p, size_t size) {
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)enc->epc.base;
    size_t n = enc->epc.npages * (size_t)ELEOS_PAGE_SIZE;
    if (size == 0)
        size = 1;
    if (a + size < a)
        return false;
    return a >= b && a - b <= n && size <= n - (a - b);
}

bool eleos_enclave_outside(const struct eleos_enclave *enc, const void *p, size_t size) {
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)enc->epc.base;
    uintptr_t e = b + enc->epc.npages * (size_t)ELEOS_PAGE_SIZE;
    if (size == 0)
        size = 1;
    if (a + size < a)
        return false; /* wraps: treat as overlapping */
    return a + size <= b || a >= e;
}

struct eleos_enclave *eleos_enclave_containing(const void *p) {
    return sim_registry_find((uintptr_t)p);
}

void eleos_enclave_elrange(const struct eleos_enclave *enc, void **base, size_t *size) {
    if (base)
        *base = enc->epc.base;
    if (size)
        *size = enc->epc.npages * (size_t)ELEOS_PAGE_SIZE;
}

/* The check an ECALL argument or a host result needs: outside the enclave we run in. */
static bool untrusted_range(const void *p, size_t size) {
    if (size == 0)
        return true;
    if (!p)
        return false;
    struct eleos_enclave *enc = sim_self.in_enclave ? sim_self.enc : NULL;
    return !enc || eleos_enclave_outside(enc, p, size);
}

int eleos_copy_in(void *dst, const void *untrusted_src, size_t size) {
    if (!untrusted_range(untrusted_src, size))
        return -EFAULT;
    if (size)
        memcpy(dst, untrusted_src, size);
    return 0;
}

int eleos_copy_out(void *untrusted_dst, const void *src, size_t size) {
    if (!untrusted_range(untrusted_dst, size))
        return -EFAULT;
    if (size)
        memcpy(untrusted_dst, src, size);
    return 0;
}
