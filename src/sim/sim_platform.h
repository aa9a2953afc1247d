/*
 * The platform EPC's shared table: one small file in /dev/shm per named platform, mapped by
 * every process with an enclave on that platform, and read by tools/eleos-epc.
 *
 * Trust: the file is host memory that any process of the user may rewrite. The emulator keeps
 * what it relies on (the capacity, its own slot index, its enclaves' page lists) in its own
 * memory, validates the header on every attach, and clamps every word it reads from a slot.
 * A corrupted table can make reclaim decisions bad (as a hostile driver could), never make the
 * emulator index out of bounds or lose an enclave's data.
 */
#ifndef ELEOS_SIM_PLATFORM_H
#define ELEOS_SIM_PLATFORM_H

#include <stdatomic.h>
#include <stdint.h>

#define PLAT_MAGIC 0x3143504553454c45ull /* "ELESEPC1" */
#define PLAT_VERSION 1u
#define PLAT_SLOTS 128u
#define PLAT_NAME_MAX 64
/* Slot owner word: 0 = free, a pid = live (or dead, not yet reaped), or this marker while a
 * survivor gives a dead owner's pages back. */
#define PLAT_OWNER_REAPING 0xffffffffu
/* Largest pid Linux hands out (PID_MAX_LIMIT on 64-bit). */
#define PLAT_PID_MAX 4194304u
/* Capacity bounds in pages: the emulator's minimum EPC, and 64 GiB. */
#define PLAT_MIN_PAGES 16u
#define PLAT_MAX_PAGES (1ull << 24)

/* One enclave. 128 bytes, so that two enclaves' counters do not share a cache line pair. */
struct plat_slot {
    _Atomic uint32_t owner;    /* pid of the owning process (see above)                 */
    uint32_t reserved0;
    _Atomic uint64_t start;    /* the owner's start time (/proc/pid/stat field 22)      */
    _Atomic uint64_t id;       /* platform-unique enclave id                            */
    _Atomic uint64_t current;  /* pages resident (misc.current)                         */
    _Atomic uint64_t max;      /* page limit (misc.max); written by the owner and tools */
    _Atomic uint64_t want;     /* pages another enclave asks this one to evict          */
    _Atomic uint64_t commits, faults, evictions;
    char name[56];             /* the enclave's name, for the status tool               */
};

struct plat_shared {
    uint64_t magic;
    uint32_t version;
    uint32_t nslots;
    uint64_t slot_size;
    uint64_t capacity;           /* pages; fixed by the creator                        */
    _Atomic uint64_t used;       /* pages reserved on the platform                      */
    _Atomic uint64_t generation; /* bumped whenever an enclave's share may have changed */
    _Atomic uint64_t next_id;
    _Atomic uint64_t overcommits;/* reservations granted over capacity (see sim_platform.c) */
    _Atomic uint32_t kick;       /* futex: reclaim requests for the reclaimer threads   */
    _Atomic uint32_t freed;      /* futex: pages were given back                         */
    _Atomic uint32_t waiters;    /* threads sleeping on `freed`                          */
    uint32_t reserved1;
    uint8_t pad[176];
    struct plat_slot slots[PLAT_SLOTS];
};

_Static_assert(sizeof(struct plat_slot) == 128, "slot layout");
_Static_assert(sizeof(struct plat_shared) == 256 + 128 * PLAT_SLOTS, "table layout");

#endif
