/*
 * A registry of live enclave objects, for ECALL arguments (docs/design.md §5, rule 1).
 *
 * The rule: no value that came from the host becomes an enclave pointer. An ECALL that
 * works on an object takes an integer handle — a slot index and that slot's generation —
 * and resolves it here; the object pointer only ever comes out of the registry, never out
 * of the argument. A handle the host made up, one of a destroyed object (its slot's
 * generation has moved on), and one used from an enclave (or host mode) the object does not
 * belong to all resolve to nothing and are counted. Checking that a pointer lies inside the
 * enclave would not do: enclave memory can hold bytes the host chose (anything the enclave
 * copied in), so a fake object can sit there too.
 *
 * The registry itself must be trusted state: a static object of the enclave-side library
 * (an enclave global: in SGX part of the enclave image; in the emulator process memory that
 * stands for it, as docs/emulator.md says of enclave globals), never host memory.
 *
 * Lifetime: a resolved object is referenced until put, and removing an object (retire, then
 * drain) waits for those references, so an ECALL never uses an object that is being freed.
 * A retired slot is reused only after its drain. Generations are 47 bits; a handle can only
 * be confused with a later object of the same slot after 2^47 reuses of that slot.
 *
 * Every function is MT-safe and makes no system call (waiting is spinning), so it can run
 * in enclave mode on any path.
 */
#ifndef ELEOS_COMMON_ENCLAVE_REGISTRY_H
#define ELEOS_COMMON_ENCLAVE_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Live objects per registry. */
#define ENCLAVE_REGISTRY_SLOTS 256u

struct enclave_registry_slot {
    /* generation (47 bits) | BUSY (claimed by add, or retired and not drained yet) | LIVE |
     * references (15 bits). */
    _Atomic uint64_t word;
    void *obj;          /* written by add while BUSY, read only under a reference */
    const void *owner;  /* the enclave obj belongs to (NULL: host mode); likewise  */
};

/* Zero-initialised (a static object) it is empty and ready. */
struct enclave_registry {
    struct enclave_registry_slot slot[ENCLAVE_REGISTRY_SLOTS];
    _Atomic uint64_t refused; /* lookups that resolved to nothing */
};

/* Registers obj of owner and returns its handle (never 0, always < 2^63, so it fits a
 * positive long), or 0 if every slot is taken. */
uint64_t enclave_registry_add(struct enclave_registry *r, void *obj, const void *owner);

/* The object h names if it is live and belongs to owner (the caller passes the enclave it
 * runs in), with a reference taken; NULL (counted) otherwise. h may be any value. */
void *enclave_registry_get(struct enclave_registry *r, uint64_t h, const void *owner);

/* Drops a reference taken by enclave_registry_get. */
void enclave_registry_put(struct enclave_registry *r, uint64_t h);

/* The handle of the live object of owner whose address is obj, or 0 (counted). obj is only
 * compared, never dereferenced, so it may be any value. */
uint64_t enclave_registry_find(struct enclave_registry *r, const void *obj, const void *owner);

/* Makes h resolve to nothing from now on. True for the one caller that retired it (who must
 * then call enclave_registry_drain); false if h was not live. */
bool enclave_registry_retire(struct enclave_registry *r, uint64_t h);

/* Waits until no reference to the object retired under h remains, then frees its slot. */
void enclave_registry_drain(struct enclave_registry *r, uint64_t h);

/* Lookups (get, find) that resolved to nothing since the start. */
uint64_t enclave_registry_refused(const struct enclave_registry *r);

#endif
