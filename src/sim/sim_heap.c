/*
 * The enclave heap: mimalloc running inside ELRANGE, plus the ELRANGE reservations.
 *
 * Each ELRANGE is registered as an exclusive mimalloc arena, and the enclave's heap is a
 * mimalloc heap bound to that arena (mi_heap_new_in_arena), so every byte it hands out lies
 * in ELRANGE, counts against the EPC and is paged by the emulated driver.
 *
 * mimalloc heaps belong to the thread that created them and die with it, while an enclave
 * heap must serve every thread that enters the enclave. So:
 *   - heaps are created and destroyed by one internal thread, "eleos-heapd", that lives as
 *     long as the process (no heap is torn down because some creating thread exited);
 *   - every mimalloc call on an enclave heap, from any thread, runs under heap_lock, which
 *     serialises all access to the heaps' shared thread-local data (heapd's tld). heap_lock
 *     is a spinlock because callers may be in enclave mode, where a futex would be an exit.
 * mimalloc's decommit and reset are turned off: inside an enclave the heap must not call
 * mmap/madvise (each would be an exit); the emulated EPC releases frames itself.
 *
 * mimalloc 2.0 cannot unregister an arena, so ELRANGE reservations are pooled: a destroyed
 * enclave's heap is destroyed (all its blocks freed), its frames are released and the
 * reservation with its arena is handed to the next enclave of the same size.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sim/sim_internal.h"
#include "sim/sim_mimalloc.h"

/* mimalloc's arenas must start at a multiple of its segment size; 64 MiB covers it. */
#define ARENA_ALIGN (64ull << 20)

static struct eleos_spinlock heap_lock = ELEOS_SPINLOCK_INIT;

/* The per-thread flag lets the fault handler see that an integrity failure hit mimalloc's
 * own state, where jumping out would leave the heap inconsistent (and the lock held). */
static void heap_lock_take(void) {
    eleos_spin_lock(&heap_lock);
    sim_thread_self()->holds_heap_lock = true;
}

static void heap_lock_drop(void) {
    sim_thread_self()->holds_heap_lock = false;
    eleos_spin_unlock(&heap_lock);
}

/* --- heapd: the owner thread of all enclave heaps ---------------------------------------- */

enum heapd_op { HEAPD_NONE, HEAPD_NEW, HEAPD_DESTROY };

static pthread_mutex_t heapd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t heapd_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t heapd_call_mu = PTHREAD_MUTEX_INITIALIZER; /* one request at a time */
/* The process whose heapd runs: a forked child has no heapd thread (and no ELRANGE, see
 * MADV_DONTFORK below), so it starts its own. Protected by heapd_call_mu. */
static pid_t heapd_pid;
/* Request/response, protected by heapd_mu. */
static enum heapd_op heapd_req;
static int heapd_arena;
static mi_heap_t *heapd_heap;
static bool heapd_done;
/* mimalloc's API, loaded before heapd starts (sim_mimalloc.c); never NULL once heapd runs. */
static const struct sim_mi *mi;

static void *heapd_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&heapd_mu);
    for (;;) {
        while (heapd_req == HEAPD_NONE)
            pthread_cond_wait(&heapd_cv, &heapd_mu);
        heap_lock_take();
        if (heapd_req == HEAPD_NEW)
            heapd_heap = mi->heap_new_in_arena(heapd_arena);
        else
            mi->heap_destroy(heapd_heap);
        heap_lock_drop();
        heapd_req = HEAPD_NONE;
        heapd_done = true;
        pthread_cond_broadcast(&heapd_cv);
    }
    return NULL;
}

/* Caller holds heapd_call_mu. */
static bool heapd_start_locked(void) {
    if (heapd_pid == getpid())
        return true;
    if (heapd_pid != 0) {
        /* Forked child: the condition variable still counts the parent's heapd among its
         * waiters, and that thread does not exist here. Start from fresh objects. */
        pthread_mutex_init(&heapd_mu, NULL);
        pthread_cond_init(&heapd_cv, NULL);
        heapd_req = HEAPD_NONE;
    }
    /* Global mimalloc options, set before any heap exists; nothing else in the process uses
     * this mimalloc (it is loaded privately, not the system allocator: sim_mimalloc.h). */
    mi->option_disable(mi_option_allow_decommit);
    mi->option_disable(mi_option_page_reset);
    mi->option_disable(mi_option_abandoned_page_decommit);
    mi->option_set(mi_option_show_errors, 1);
    /* Warnings (e.g. the backing heap falling back to over-allocation under ASan) are
     * mimalloc's business and would interleave with the application's output. */
    mi->option_set(mi_option_max_warnings, 0);
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &a, heapd_main, NULL) == 0) {
        pthread_setname_np(th, "eleos-heapd");
        heapd_pid = getpid();
    }
    pthread_attr_destroy(&a);
    return heapd_pid == getpid();
}

static mi_heap_t *heapd_call(enum heapd_op op, int arena, mi_heap_t *heap) {
    pthread_mutex_lock(&heapd_call_mu);
    if (!heapd_start_locked()) {
        pthread_mutex_unlock(&heapd_call_mu);
        return NULL;
    }
    pthread_mutex_lock(&heapd_mu);
    heapd_req = op;
    heapd_arena = arena;
    heapd_heap = heap;
    heapd_done = false;
    pthread_cond_broadcast(&heapd_cv);
    while (!heapd_done)
        pthread_cond_wait(&heapd_cv, &heapd_mu);
    mi_heap_t *r = heapd_heap;
    pthread_mutex_unlock(&heapd_mu);
    pthread_mutex_unlock(&heapd_call_mu);
    return r;
}

/* --- ELRANGE reservations ---------------------------------------------------------------- */

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sim_region *pool; /* free reservations, protected by pool_mu */
static pid_t pool_pid;          /* the process they belong to, protected by pool_mu */

static struct sim_region *region_new(size_t size) {
    struct sim_region *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->memfd = memfd_create("eleos-elrange", MFD_CLOEXEC);
    if (r->memfd < 0 || ftruncate(r->memfd, (off_t)size) != 0)
        goto fail;
    /* Reserve size + alignment of address space, then place the memfd view at the aligned
     * start and give back the slack. */
    uint8_t *res = mmap(NULL, size + ARENA_ALIGN, PROT_NONE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED)
        goto fail;
    uintptr_t a = ((uintptr_t)res + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
    uint8_t *base = mmap((void *)a, size, PROT_NONE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
                         r->memfd, 0);
    if (base == MAP_FAILED) {
        munmap(res, size + ARENA_ALIGN);
        goto fail;
    }
    if ((uintptr_t)base > (uintptr_t)res)
        munmap(res, (uintptr_t)base - (uintptr_t)res);
    size_t tail = (uintptr_t)res + size + ARENA_ALIGN - ((uintptr_t)base + size);
    if (tail)
        munmap(base + size, tail);
    r->alias = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, r->memfd, 0);
    if (r->alias == MAP_FAILED) {
        munmap(base, size);
        goto fail;
    }
    /* Enclaves are not inherited across fork (as in SGX); above all the child must not share
     * the parent's enclave memory through these MAP_SHARED views. */
    madvise(base, size, MADV_DONTFORK);
    madvise(r->alias, size, MADV_DONTFORK);
    r->base = base;
    r->size = size;
    r->arena_id = -1;
    return r;
fail:
    if (r->memfd >= 0)
        close(r->memfd);
    free(r);
    return NULL;
}

struct sim_region *sim_region_get(size_t size);
struct sim_region *sim_region_get(size_t size) {
    pthread_mutex_lock(&pool_mu);
    if (pool_pid != getpid()) {
        /* After fork the pooled reservations are not mapped here (MADV_DONTFORK): forget
         * them, their memory belongs to the parent. */
        pool = NULL;
        pool_pid = getpid();
    }
    for (struct sim_region **pp = &pool; *pp; pp = &(*pp)->next) {
        if ((*pp)->size == size) {
            struct sim_region *r = *pp;
            *pp = r->next;
            pthread_mutex_unlock(&pool_mu);
            r->next = NULL;
            return r;
        }
    }
    pthread_mutex_unlock(&pool_mu);
    return region_new(size);
}

void sim_region_put(struct sim_region *r);
void sim_region_put(struct sim_region *r) {
    pthread_mutex_lock(&pool_mu);
    r->next = pool;
    pool = r;
    pthread_mutex_unlock(&pool_mu);
}

/* --- heap lifecycle ---------------------------------------------------------------------- */

/* --- fork ------------------------------------------------------------------------------- */

/*
 * A child of fork() has only the forking thread. Had another thread held one of these locks
 * at that instant, the child would wait for it forever the first time it created an enclave
 * (19 of 20 children did, with a second thread allocating on an enclave heap). So fork takes
 * them all first, in the order the rest of the emulator nests them (an in-flight heapd
 * request, then the heap lock, which an EPC fault may nest inside), and releases them on
 * both sides. The parent's enclaves stay the parent's: their ELRANGEs are not mapped in the
 * child (MADV_DONTFORK), and the child starts its own heapd and region pool.
 */
static void fork_prepare(void) {
    sim_plat_lock();
    pthread_mutex_lock(&heapd_call_mu);
    pthread_mutex_lock(&heapd_mu);
    pthread_mutex_lock(&pool_mu);
    sim_spin_lock_yield(&heap_lock);
    sim_registry_lock();
}

static void fork_release(void) {
    sim_registry_unlock();
    eleos_spin_unlock(&heap_lock);
    pthread_mutex_unlock(&pool_mu);
    pthread_mutex_unlock(&heapd_mu);
    pthread_mutex_unlock(&heapd_call_mu);
    sim_plat_unlock();
}

static void fork_child(void) {
    sim_registry_fork_child();
    sim_thread_fork_child();
    sim_plat_fork_child();
    fork_release();
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Once per process: the fork handlers, and mimalloc's API (written here only, so every
 * thread that got past sim_heap_init sees it). */
static void atfork_install(void) {
    pthread_atfork(fork_prepare, fork_release, fork_child);
    mi = sim_mi();
}

int sim_heap_init(struct eleos_enclave *enc) {
    pthread_once(&atfork_once, atfork_install);
    if (!mi)
        return -ENOMEM;
    struct sim_region *r = enc->region;
    if (r->arena_id < 0) {
        mi_arena_id_t id;
        /* is_committed: mimalloc may use every byte without asking the OS (the EPC
         * emulation commits pages on first touch); is_zero: the memfd starts zeroed. */
        if (!mi->manage_os_memory_ex(r->base, r->size, true, false, true, -1, true, &id))
            return -ENOMEM;
        r->arena_id = id;
    }
    enc->arena_id = r->arena_id;
    enc->heap = heapd_call(HEAPD_NEW, r->arena_id, NULL);
    return enc->heap ? 0 : -ENOMEM;
}

void sim_heap_fini(struct eleos_enclave *enc) {
    if (enc->heap)
        heapd_call(HEAPD_DESTROY, enc->arena_id, enc->heap);
    enc->heap = NULL;
}

/* --- allocation -------------------------------------------------------------------------- */

/* mimalloc falls back to OS memory when an arena is exhausted; such a block would lie
 * outside ELRANGE, so it is refused here and the caller sees exhaustion. */
static void *in_elrange(struct eleos_enclave *enc, void *p) {
    if (p && !eleos_enclave_within(enc, p, 1)) {
        heap_lock_take();
        mi->free(p);
        heap_lock_drop();
        return NULL;
    }
    return p;
}

void *eleos_enclave_malloc(struct eleos_enclave *enc, size_t size) {
    if (enc->inherited) /* a forked child's copy: no memory behind it */
        return NULL;
    heap_lock_take();
    void *p = mi->heap_malloc(enc->heap, size);
    heap_lock_drop();
    return in_elrange(enc, p);
}

void *eleos_enclave_calloc(struct eleos_enclave *enc, size_t count, size_t size) {
    if (enc->inherited) /* a forked child's copy: no memory behind it */
        return NULL;
    heap_lock_take();
    void *p = mi->heap_calloc(enc->heap, count, size);
    heap_lock_drop();
    return in_elrange(enc, p);
}

static void check_ours(struct eleos_enclave *enc, void *p) {
    if (!eleos_enclave_within(enc, p, 1))
        sim_die("eleos_enclave_free/realloc: pointer not from this enclave's heap");
}

void *eleos_enclave_realloc(struct eleos_enclave *enc, void *p, size_t size) {
    if (enc->inherited) /* a forked child's copy: no memory behind it */
        return NULL;
    if (p)
        check_ours(enc, p);
    heap_lock_take();
    void *q = mi->heap_realloc(enc->heap, p, size);
    heap_lock_drop();
    return in_elrange(enc, q);
}

void *eleos_enclave_aligned_alloc(struct eleos_enclave *enc, size_t alignment, size_t size) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || enc->inherited)
        return NULL;
    heap_lock_take();
    void *p = mi->heap_malloc_aligned(enc->heap, size, alignment);
    heap_lock_drop();
    return in_elrange(enc, p);
}

void eleos_enclave_free(struct eleos_enclave *enc, void *p) {
    if (!p || enc->inherited)
        return;
    check_ours(enc, p);
    heap_lock_take();
    mi->free(p);
    heap_lock_drop();
}
