/*
 * mimalloc, loaded privately: the enclave heaps' allocator without the process's malloc.
 *
 * Debian's libmimalloc.so is built to override malloc: an executable or library linked
 * against it hands the whole process's allocations to mimalloc. The emulator needs only
 * mimalloc's arena and heap API (sim_heap.c), so it loads the shared object itself with
 * RTLD_LOCAL: its definitions of malloc and free never enter the global symbol scope, and
 * the process keeps the allocator it had. Used by sim_heap.c only.
 */
#ifndef ELEOS_SIM_MIMALLOC_H
#define ELEOS_SIM_MIMALLOC_H

#include <mimalloc.h>

struct sim_mi {
    __typeof__(mi_heap_new_in_arena) *heap_new_in_arena;
    __typeof__(mi_heap_destroy) *heap_destroy;
    __typeof__(mi_heap_malloc) *heap_malloc;
    __typeof__(mi_heap_calloc) *heap_calloc;
    __typeof__(mi_heap_realloc) *heap_realloc;
    __typeof__(mi_heap_malloc_aligned) *heap_malloc_aligned;
    __typeof__(mi_free) *free;
    __typeof__(mi_manage_os_memory_ex) *manage_os_memory_ex;
    __typeof__(mi_option_disable) *option_disable;
    __typeof__(mi_option_set) *option_set;
};

/* The loaded API, or NULL (with one message on stderr) if the shared object or one of its
 * functions is missing. Loaded once per process; safe from any thread, in host mode. */
const struct sim_mi *sim_mi(void);

#endif
