/*
 * Catches host allocations made in enclave mode.
 *
 * A plain malloc() inside an ECALL returns host memory: untrusted, outside ELRANGE, and on a
 * real machine the host libc is not even reachable from the enclave. The SGX SDK's trusted
 * libc would allocate on the enclave heap; here the process has one libc, shared by both
 * modes, whose own state (stdio buffers, locale, resolver) outlives any enclave, so
 * redirecting its allocations onto an enclave heap would leave it pointing into a destroyed
 * ELRANGE. So the library does not redirect: it counts every such allocation in the
 * enclave's statistics (host_allocs, shown by eleos_enclave_stats_print) and, with
 * ELEOS_HOST_ALLOC=abort, stops the process at the first one so a debugger shows the caller.
 * Enclave code allocates with eleos_enclave_malloc (docs/emulator.md, "Memory").
 *
 * How it sees them without taking over the allocator:
 *   - normally by defining the allocation entry points (malloc, calloc, realloc and the
 *     aligned ones) as thin wrappers that note the call and forward it, unchanged, to the
 *     next definition (dlsym RTLD_NEXT: glibc's, or whatever allocator the process chose).
 *     free is not wrapped: every block still belongs to the allocator that made it;
 *   - under ASan/TSan, which own malloc themselves, through the sanitizer allocator's
 *     malloc hook instead (ELEOS_SANITIZER_HOOKS): same count, no interposition.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "sim/sim_internal.h"

/* -1 not read yet, 0 count, 1 abort. getenv does not allocate, so this is safe in malloc. */
static atomic_int abort_policy = -1;

static bool host_alloc_aborts(void) {
    int p = atomic_load_explicit(&abort_policy, memory_order_relaxed);
    if (p < 0) {
        const char *v = getenv("ELEOS_HOST_ALLOC");
        p = v && strcmp(v, "abort") == 0;
        atomic_store_explicit(&abort_policy, p, memory_order_relaxed);
    }
    return p == 1;
}

/*
 * ELEOS_HOST_ALLOC=abort. Not abort(3): it runs inside the allocator (under a sanitizer,
 * inside its hook, with the allocator's locks held), and abort's own locking and the
 * sanitizer's reports can come back here and wait for ever. Raw system calls through the
 * trampoline (never trapped): the message, then SIGABRT with its default action, unblocked,
 * to this thread, so the process dies with the caller on the stack for a debugger.
 */
static void host_alloc_abort(void) {
    static const char msg[] = "eleos: malloc in enclave mode returns untrusted host memory; "
                              "use eleos_enclave_malloc (ELEOS_HOST_ALLOC=abort)\n";
    eleos_sim_raw_syscall(SYS_write, 2, (long)msg, sizeof msg - 1, 0, 0, 0);
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } dfl = {SIG_DFL, 0, NULL, 0}; /* the kernel's struct sigaction */
    uint64_t abrt = 1ull << (SIGABRT - 1);
    eleos_sim_raw_syscall(SYS_rt_sigaction, SIGABRT, (long)&dfl, 0, 8, 0, 0);
    eleos_sim_raw_syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&abrt, 0, 8, 0, 0);
    long pid = eleos_sim_raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0);
    long tid = eleos_sim_raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
    eleos_sim_raw_syscall(SYS_tgkill, pid, tid, SIGABRT, 0, 0, 0);
    eleos_sim_raw_syscall(SYS_exit_group, 134, 0, 0, 0, 0, 0); /* not reached */
}

/* Called on every allocation: cheap in host mode (one thread-local load). */
static void host_alloc_note(void) {
    struct sim_thread *t = &sim_self;
    if (!t->in_enclave || !t->enc)
        return;
    atomic_fetch_add_explicit(&t->enc->stats.host_allocs, 1, memory_order_relaxed);
    if (host_alloc_aborts())
        host_alloc_abort();
}

#ifdef ELEOS_SANITIZER_HOOKS

/* The sanitizer runtimes' interface (sanitizer/allocator_interface.h, which gcc does not
 * always ship). */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void hook_malloc(const volatile void *p, size_t size) {
    (void)p;
    (void)size;
    host_alloc_note();
}

static void hook_free(const volatile void *p) {
    (void)p;
}

static void hooks_install(void) {
    __sanitizer_install_malloc_and_free_hooks(hook_malloc, hook_free);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

void sim_hostalloc_init(void) {
    pthread_once(&hooks_once, hooks_install);
}

#else /* the wrappers */

/* glibc's own entry points: used only until the constructor has found the next allocator
 * (a constructor of another library may allocate before ours runs). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
} next;

#define NEXT(field) (*(void **)&next.field = dlsym(RTLD_NEXT, #field))

__attribute__((constructor)) static void next_resolve(void);
static void next_resolve(void) {
    if (next.malloc)
        return;
    NEXT(calloc);
    NEXT(realloc);
    NEXT(memalign);
    NEXT(aligned_alloc);
    NEXT(posix_memalign);
    NEXT(valloc);
    NEXT(pvalloc);
    NEXT(malloc); /* last: it marks the table complete */
}

void sim_hostalloc_init(void) {
    /* The constructor has run (this is called after main started); nothing to do. */
}

void *malloc(size_t size) {
    host_alloc_note();
    return next.malloc ? next.malloc(size) : __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    host_alloc_note();
    return next.malloc ? next.calloc(n, size) : __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    if (size)
        host_alloc_note();
    return next.malloc ? next.realloc(p, size) : __libc_realloc(p, size);
}

void *memalign(size_t alignment, size_t size) {
    host_alloc_note();
    return next.malloc ? next.memalign(alignment, size) : __libc_memalign(alignment, size);
}

/* glibc has no __libc_ names for these: before our constructor ran, find the table now
 * (dlsym's own allocations, if any, take the fallbacks above). */
void *aligned_alloc(size_t alignment, size_t size) {
    host_alloc_note();
    if (!next.malloc)
        next_resolve();
    return next.aligned_alloc(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    host_alloc_note();
    if (!next.malloc)
        next_resolve();
    return next.posix_memalign(out, alignment, size);
}

void *valloc(size_t size) {
    host_alloc_note();
    if (!next.malloc)
        next_resolve();
    return next.valloc(size);
}

void *pvalloc(size_t size) {
    host_alloc_note();
    if (!next.malloc)
        next_resolve();
    return next.pvalloc(size);
}

#endif
