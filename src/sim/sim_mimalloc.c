/*
 * Loads mimalloc for the enclave heaps (see sim_mimalloc.h for why privately).
 *
 * RTLD_LOCAL keeps mimalloc's malloc/free out of the global scope; its own calls to its
 * mi_* functions resolve inside it. RTLD_NOW: a missing symbol shows here, once, rather
 * than as a crash in the middle of an allocation.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "sim/sim_mimalloc.h"

#ifndef ELEOS_MIMALLOC_SONAME
#define ELEOS_MIMALLOC_SONAME "libmimalloc.so.2"
#endif

static struct sim_mi mi;
static const struct sim_mi *mi_loaded;
static pthread_once_t mi_once = PTHREAD_ONCE_INIT;

/* dlsym returns void *; converting it to a function pointer is what POSIX guarantees. */
#define LOAD(field, name)                                                                     \
    do {                                                                                      \
        void *sym = dlsym(h, name);                                                           \
        if (!sym) {                                                                           \
            fprintf(stderr, "eleos: %s has no %s (mimalloc 2.0 or later needed)\n",          \
                    ELEOS_MIMALLOC_SONAME, name);                                             \
            return;                                                                           \
        }                                                                                     \
        *(void **)&mi.field = sym;                                                            \
    } while (0)

static void mi_load(void) {
    void *h = dlopen(ELEOS_MIMALLOC_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "eleos: cannot load the enclave heap's allocator: %s\n", dlerror());
        return;
    }
    LOAD(heap_new_in_arena, "mi_heap_new_in_arena");
    LOAD(heap_destroy, "mi_heap_destroy");
    LOAD(heap_malloc, "mi_heap_malloc");
    LOAD(heap_calloc, "mi_heap_calloc");
    LOAD(heap_realloc, "mi_heap_realloc");
    LOAD(heap_malloc_aligned, "mi_heap_malloc_aligned");
    LOAD(free, "mi_free");
    LOAD(manage_os_memory_ex, "mi_manage_os_memory_ex");
    LOAD(option_disable, "mi_option_disable");
    LOAD(option_set, "mi_option_set");
    mi_loaded = &mi; /* the handle stays open for the life of the process */
}

const struct sim_mi *sim_mi(void) {
    pthread_once(&mi_once, mi_load);
    return mi_loaded;
}
