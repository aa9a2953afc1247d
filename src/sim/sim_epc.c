/*
 * EPC paging, emulated with real work: the part of the SGX driver that runs EWB and ELDU.
 *
 * ELRANGE is a MAP_SHARED view of a memfd. Pages of the enclave's view are PROT_NONE unless
 * resident in the (emulated) EPC, so the first access to any other page raises SIGSEGV: an
 * asynchronous exit. The handler calls sim_epc_fault, which under the enclave's paging lock
 *   1. makes room: while the enclave is at its limit, evicts its oldest resident page (FIFO;
 *      the real driver ages pages with the accessed bit, which user space cannot see
 *      cheaply), then reserves a page of the platform EPC, which may reclaim pages of other
 *      enclaves when the platform is full (sim_platform.c). An eviction:
 *      the enclave's view of the victim goes PROT_NONE first, so no thread can touch it
 *      while it is sealed; the page is sealed with AES-GCM into private staging memory
 *      (from the emulator's alias mapping of the frame), the ciphertext and tag are then
 *      copied out to the untrusted swap, and the frame is released (fallocate punch hole);
 *   2. brings in the faulting page: a never-touched page is committed as a zero page; a
 *      swapped page's ciphertext and tag are first copied from the swap into private
 *      staging, then opened and verified from there into the frame through the alias, and
 *      only then does the enclave's view become read-write. No thread can ever observe a
 *      half-loaded or unverified page, because the enclave's view stays PROT_NONE until
 *      verification; and no racing host can get bytes accepted that the tag did not cover,
 *      because AES-GCM (which reads the ciphertext once for GHASH and again for CTR) never
 *      runs on host-writable memory.
 *
 * Sealing: IV = (version, page index); version comes from a per-enclave counter incremented
 * on every seal, so an IV is never used twice under the enclave's key. AAD = (page index,
 * version). The current version of every page stays in emulator ("hardware") memory, so a
 * replayed old copy or a copy moved to another slot fails the tag check: the fault then
 * reports the enclave lost instead of returning data.
 *
 * Lock: epc->lock, a spinlock (the handler may run while any other lock is held, and must
 * not syscall to wait). Every field below `lock` in struct sim_epc is protected by it.
 */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sim/sim_internal.h"

#define PAGE ((size_t)ELEOS_PAGE_SIZE)

/* Syscalls through the trampoline: the handler may run with the selector at BLOCK on other
 * paths (eleos_enclave_evict_page is host-only, but keep one way to call the kernel). */
static long k_mprotect(void *p, size_t n, int prot) {
    return eleos_sim_raw_syscall(SYS_mprotect, (long)p, (long)n, prot, 0, 0, 0);
}

static long k_punch(int fd, size_t off, size_t n) {
    return eleos_sim_raw_syscall(SYS_fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 (long)off, (long)n, 0, 0);
}

static void *map_noreserve(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int sim_epc_init(struct eleos_enclave *enc, size_t elrange_size, size_t epc_size) {
    struct sim_epc *epc = &enc->epc;
    struct sim_region *r = enc->region;
    epc->base = r->base;
    epc->alias = r->alias;
    epc->memfd = r->memfd;
    epc->npages = elrange_size / PAGE;
    epc->cap_pages = epc_size / PAGE;
    if (epc->cap_pages < 16 || epc->npages > UINT32_MAX)
        return -EINVAL;
    int err = sim_plat_attach(enc, &enc->cfg);
    if (err)
        return err;
    /* The limit can be raised at run time up to the platform's capacity. */
    size_t plat_cap = sim_plat_capacity(enc);
    epc->fifo_cap = epc->npages < plat_cap ? epc->npages : plat_cap;
    epc->lock = (struct eleos_spinlock)ELEOS_SPINLOCK_INIT;
    epc->state = map_noreserve(epc->npages);
    epc->swapped_ever = map_noreserve(epc->npages);
    epc->version = map_noreserve(epc->npages * sizeof(uint64_t));
    epc->fifo = map_noreserve(epc->fifo_cap * sizeof(uint32_t));
    epc->stage = map_noreserve(PAGE + GCM_TAG_SIZE);
    epc->swap = eleos_untrusted_alloc(epc->npages * PAGE);
    epc->tags = eleos_untrusted_alloc(epc->npages * GCM_TAG_SIZE);
    if (!epc->state || !epc->swapped_ever || !epc->version || !epc->fifo || !epc->swap ||
        !epc->tags || !epc->stage)
        goto fail;
    epc->fifo_head = epc->fifo_count = 0;
    epc->seal_counter = 1;
    uint8_t key[16];
    if (gcm_random_key(key, sizeof key) != 0 || gcm_init(&epc->gcm, key, sizeof key) != 0)
        goto fail;
    memset(key, 0, sizeof key);
    sim_plat_publish(enc);
    return 0;
fail:
    sim_epc_fini(enc);
    return -ENOMEM;
}

void sim_epc_fini(struct eleos_enclave *enc) {
    struct sim_epc *epc = &enc->epc;
    /* A forked child's copy: the slot is the parent's enclave's. */
    if (!enc->inherited)
        sim_plat_detach(enc);
    if (epc->state)
        munmap(epc->state, epc->npages);
    if (epc->swapped_ever)
        munmap(epc->swapped_ever, epc->npages);
    if (epc->version)
        munmap(epc->version, epc->npages * sizeof(uint64_t));
    if (epc->fifo)
        munmap(epc->fifo, epc->fifo_cap * sizeof(uint32_t));
    if (epc->stage)
        munmap(epc->stage, PAGE + GCM_TAG_SIZE);
    if (epc->swap)
        eleos_untrusted_free(epc->swap, epc->npages * PAGE);
    if (epc->tags)
        eleos_untrusted_free(epc->tags, epc->npages * GCM_TAG_SIZE);
    if (epc->gcm.enc)
        gcm_fini(&epc->gcm);
    memset(epc, 0, sizeof *epc);
}

/* Frees the EPC frames and returns the whole ELRANGE to the untouched state. */
void sim_epc_reset(struct eleos_enclave *enc) {
    struct sim_epc *epc = &enc->epc;
    sim_plat_unpublish(enc); /* no other thread may pick it as a victim from now on */
    k_mprotect(epc->base, epc->npages * PAGE, PROT_NONE);
    k_punch(epc->memfd, 0, epc->npages * PAGE);
}

static void iv_for(uint8_t iv[GCM_IV_SIZE], uint64_t version, uint32_t page) {
    memcpy(iv, &version, 8);
    memcpy(iv + 8, &page, 4);
}

struct aad {
    uint64_t page;
    uint64_t version;
};

/* Evicts the oldest resident page (EWB). Caller holds the lock and the FIFO is non-empty. */
static enum sim_fault evict_one_locked(struct eleos_enclave *enc) {
    struct sim_epc *epc = &enc->epc;
    uint32_t v = epc->fifo[epc->fifo_head];
    epc->fifo_head = (epc->fifo_head + 1) % epc->fifo_cap;
    epc->fifo_count--;

    uint8_t *view = epc->base + (size_t)v * PAGE;
    uint8_t *frame = epc->alias + (size_t)v * PAGE;
    /* Revoke the enclave's access first; mprotect returns after the TLB shootdown, so no
     * thread can write the page while it is sealed below. */
    if (k_mprotect(view, PAGE, PROT_NONE) != 0)
        return SIM_FAULT_FATAL;
    uint64_t version = epc->seal_counter++;
    uint8_t iv[GCM_IV_SIZE];
    struct aad aad = {v, version};
    iv_for(iv, version, v);
    if (gcm_seal(&epc->gcm, iv, &aad, sizeof aad, frame, epc->stage, PAGE, epc->stage + PAGE) !=
        0)
        return SIM_FAULT_FATAL;
    memcpy(epc->swap + (size_t)v * PAGE, epc->stage, PAGE);
    memcpy(epc->tags + (size_t)v * GCM_TAG_SIZE, epc->stage + PAGE, GCM_TAG_SIZE);
    epc->version[v] = version;
    epc->state[v] = SIM_PAGE_SWAPPED;
    epc->swapped_ever[v] = 1;
    if (k_punch(epc->memfd, (size_t)v * PAGE, PAGE) != 0)
        return SIM_FAULT_FATAL;
    sim_stat_add(&enc->stats.epc_evictions, 1);
    sim_stat_add(&enc->stats.pages_sealed, 1);
    atomic_fetch_sub_explicit(&enc->stats.epc_resident, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&enc->stats.epc_swapped, 1, memory_order_relaxed);
    sim_plat_release(enc, 1, true);
    /* The enclave whose page is written back pays the EWB, whoever asked for the room. */
    sim_charge(enc, enc->cfg.cost.epc_evict_cycles);
    return SIM_FAULT_OK;
}

long sim_epc_evict_batch_locked(struct eleos_enclave *enc, size_t n) {
    long done = 0;
    while ((size_t)done < n && enc->epc.fifo_count > 0) {
        if (evict_one_locked(enc) != SIM_FAULT_OK)
            return -1;
        done++;
    }
    return done;
}

/* Room for one more page in enc (lock held): its own limit first (the cgroup's max: the
 * enclave pages itself out, never dies), then a page of the platform. */
static enum sim_fault make_room_locked(struct eleos_enclave *enc) {
    struct sim_epc *epc = &enc->epc;
    if (sim_plat_service_locked(enc) < 0)
        return SIM_FAULT_FATAL;
    size_t max = sim_plat_max(enc);
    while (epc->fifo_count >= max) {
        enum sim_fault f = evict_one_locked(enc);
        if (f != SIM_FAULT_OK)
            return f;
    }
    return sim_plat_reserve(enc) ? SIM_FAULT_OK : sim_plat_make_room(enc);
}

enum sim_fault sim_epc_fault(struct eleos_enclave *enc, uintptr_t addr, bool aex) {
    struct sim_epc *epc = &enc->epc;
    uint32_t idx = (uint32_t)((addr - (uintptr_t)epc->base) / PAGE);
    uint8_t *view = epc->base + (size_t)idx * PAGE;
    uint8_t *frame = epc->alias + (size_t)idx * PAGE;
    enum sim_fault f = SIM_FAULT_OK;

    sim_spin_lock_yield(&epc->lock);
    uint8_t st = epc->state[idx];
    if (st == SIM_PAGE_RESIDENT)
        goto out; /* another thread brought it in while we waited for the lock */

    f = make_room_locked(enc);
    if (f != SIM_FAULT_OK)
        goto out;
    if (st == SIM_PAGE_SWAPPED) {
        uint8_t iv[GCM_IV_SIZE];
        struct aad aad = {idx, epc->version[idx]};
        iv_for(iv, aad.version, idx);
        /* The swap is host memory: one snapshot into private staging, then verify and
         * decrypt only that; a failed page is wiped in the frame. */
        memcpy(epc->stage, epc->swap + (size_t)idx * PAGE, PAGE);
        memcpy(epc->stage + PAGE, epc->tags + (size_t)idx * GCM_TAG_SIZE, GCM_TAG_SIZE);
        int r = gcm_open(&epc->gcm, iv, &aad, sizeof aad, epc->stage, frame, PAGE,
                         epc->stage + PAGE);
        if (r != 0) {
            k_punch(epc->memfd, (size_t)idx * PAGE, PAGE);
            sim_stat_add(&enc->stats.integrity_failures, 1);
            /* During destroy the heap's teardown may walk this page; no enclave code can
             * read it any more, so a zero page is safe there. Otherwise the enclave is lost. */
            if (!atomic_load_explicit(&enc->tearing_down, memory_order_acquire)) {
                sim_plat_unreserve(enc);
                f = SIM_FAULT_LOST;
                goto out;
            }
        } else {
            sim_stat_add(&enc->stats.epc_faults, 1);
            sim_stat_add(&enc->stats.pages_opened, 1);
            /* Only a swap-in is an AEX: a first touch stands for an SGX1 page EADDed at
             * build time and still resident, which costs no exit (docs/emulator.md). */
            if (aex)
                sim_stat_add(&enc->stats.aex, 1);
            sim_charge(enc, enc->extra[ELEOS_COST_EV_EPC_SWAP]);
        }
    } else {
        sim_stat_add(&enc->stats.epc_commits, 1);
    }
    if (k_mprotect(view, PAGE, PROT_READ | PROT_WRITE) != 0) {
        f = SIM_FAULT_FATAL;
        goto out;
    }
    epc->state[idx] = SIM_PAGE_RESIDENT;
    if (st == SIM_PAGE_SWAPPED)
        atomic_fetch_sub_explicit(&enc->stats.epc_swapped, 1, memory_order_relaxed);
    epc->fifo[(epc->fifo_head + epc->fifo_count) % epc->fifo_cap] = idx;
    epc->fifo_count++;
    sim_plat_commit(enc, st == SIM_PAGE_SWAPPED);
    uint64_t now = atomic_fetch_add_explicit(&enc->stats.epc_resident, 1,
                                             memory_order_relaxed) + 1;
    uint64_t max = atomic_load_explicit(&enc->stats.epc_resident_max, memory_order_relaxed);
    while (now > max && !atomic_compare_exchange_weak_explicit(&enc->stats.epc_resident_max,
                                                                &max, now, memory_order_relaxed,
                                                                memory_order_relaxed))
        ;
out:
    eleos_spin_unlock(&epc->lock);
    return f;
}

int sim_epc_evict_page(struct eleos_enclave *enc, uintptr_t addr) {
    struct sim_epc *epc = &enc->epc;
    if (enc->inherited)
        return -EBADMSG; /* forked child: its frames and memfd are the parent's */
    if (!eleos_enclave_within(enc, (const void *)addr, 1))
        return -EINVAL;
    uint32_t idx = (uint32_t)((addr - (uintptr_t)epc->base) / PAGE);
    int ret = -ENOENT;
    uint64_t mask = sim_block_async();
    sim_spin_lock_yield(&epc->lock);
    if (epc->state[idx] == SIM_PAGE_RESIDENT) {
        /* Rotate the FIFO until the page is at its head, then evict it. Rotation keeps the
         * relative order of the other pages. */
        for (size_t i = 0; i < epc->fifo_count; i++) {
            if (epc->fifo[epc->fifo_head] == idx) {
                ret = evict_one_locked(enc) == SIM_FAULT_OK ? 0 : -EIO;
                break;
            }
            uint32_t p = epc->fifo[epc->fifo_head];
            epc->fifo_head = (epc->fifo_head + 1) % epc->fifo_cap;
            epc->fifo[(epc->fifo_head + epc->fifo_count - 1) % epc->fifo_cap] = p;
        }
    }
    eleos_spin_unlock(&epc->lock);
    sim_restore_mask(mask);
    return ret;
}

int eleos_enclave_trim(struct eleos_enclave *enc, void *addr, size_t size) {
    struct sim_epc *epc = &enc->epc;
    if (enc->inherited)
        return -EBADMSG; /* forked child: punching the memfd would hit the parent's pages */
    if (size == 0)
        return 0;
    if (!eleos_enclave_within(enc, addr, size))
        return -EINVAL;
    /* Whole pages only: a partial page at either end keeps its contents. */
    uintptr_t start = ((uintptr_t)addr + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
    uintptr_t end = ((uintptr_t)addr + size) & ~(uintptr_t)(PAGE - 1);
    if (end <= start)
        return 0;
    size_t first = (start - (uintptr_t)epc->base) / PAGE, n = (end - start) / PAGE;
    size_t dropped = 0, trimmed = 0, unswapped = 0;
    int ret = 0;

    /* Signals wait while the lock is held (see sim_mode.c). */
    uint64_t mask = sim_block_async();
    sim_spin_lock_yield(&epc->lock);
    /* One protection change and one hole for the whole range: afterwards every page in it
     * is untouched, which is PROT_NONE with no frame. */
    if (k_mprotect((void *)start, end - start, PROT_NONE) != 0 ||
        k_punch(epc->memfd, first * PAGE, n * PAGE) != 0) {
        ret = -EIO;
        goto out;
    }
    for (size_t i = first; i < first + n; i++) {
        if (epc->state[i] == SIM_PAGE_RESIDENT)
            dropped++;
        if (epc->state[i] == SIM_PAGE_SWAPPED)
            unswapped++;
        if (epc->state[i] != SIM_PAGE_UNTOUCHED)
            trimmed++;
        epc->state[i] = SIM_PAGE_UNTOUCHED;
    }
    if (dropped) {
        /* Compact the FIFO once: keep the resident pages in their order. */
        size_t kept = 0, cap = epc->fifo_cap;
        for (size_t i = 0; i < epc->fifo_count; i++) {
            uint32_t p = epc->fifo[(epc->fifo_head + i) % cap];
            if (epc->state[p] == SIM_PAGE_RESIDENT)
                epc->fifo[(epc->fifo_head + kept++) % cap] = p;
        }
        epc->fifo_count = kept;
        atomic_fetch_sub_explicit(&enc->stats.epc_resident, dropped, memory_order_relaxed);
        sim_plat_release(enc, dropped, false);
    }
    sim_stat_add(&enc->stats.epc_trimmed, trimmed);
    atomic_fetch_sub_explicit(&enc->stats.epc_swapped, unswapped, memory_order_relaxed);
out:
    eleos_spin_unlock(&epc->lock);
    sim_restore_mask(mask);
    return ret;
}

void *eleos_enclave_swap_slot(struct eleos_enclave *enc, const void *addr, uint8_t **tag) {
    struct sim_epc *epc = &enc->epc;
    if (!eleos_enclave_within(enc, addr, 1))
        return NULL;
    size_t idx = ((uintptr_t)addr - (uintptr_t)epc->base) / PAGE;
    if (!epc->swapped_ever[idx])
        return NULL;
    if (tag)
        *tag = epc->tags + idx * GCM_TAG_SIZE;
    return epc->swap + idx * PAGE;
}

int eleos_enclave_evict_page(struct eleos_enclave *enc, const void *addr) {
    return sim_epc_evict_page(enc, (uintptr_t)addr);
}
