/*
 * Enclave lifetime and statistics: the top of the emulator, calling down into the heap
 * (sim_heap.c), paging (sim_epc.c), enclave mode (sim_mode.c) and the leaves (sim_ranges.c:
 * the registry, range checks, untrusted memory; sim_base.c: threads, locks, signals). The
 * main design comment of the emulator is in sim_mode.c (enclave mode and signals) and
 * sim_epc.c (paging).
 *
 * Lifetime: create (host mode) takes an ELRANGE reservation from the pool, sets up EPC
 * bookkeeping and the heap, then publishes the enclave in the registry. destroy unpublishes
 * it, destroys the heap, releases every EPC frame and returns the reservation to the pool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/tsc.h"
#include "sim/sim_internal.h"

int sim_install_handlers(void);
struct sim_region *sim_region_get(size_t size);
void sim_region_put(struct sim_region *r);

/* --- config ----------------------------------------------------------------------------- */

void eleos_enclave_config_default(struct eleos_enclave_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->elrange_size = ELEOS_ENCLAVE_DEFAULT_ELRANGE_SIZE;
    cfg->epc_size = ELEOS_ENCLAVE_DEFAULT_EPC_SIZE;
    cfg->enforce = true;
    const char *e = getenv("ELEOS_ENFORCE");
    if (e && strcmp(e, "0") == 0)
        cfg->enforce = false;
    cfg->integrity_policy = ELEOS_INTEGRITY_LOSE_ENCLAVE;
    eleos_cost_model_default(&cfg->cost);
    cfg->name = "enclave";
}

#define SIZE_ALIGN (64ull << 20)
/* Upper bound on ELRANGE: 1 TiB of address space is plenty and keeps page indices 32-bit. */
#define ELRANGE_MAX (1ull << 40)

int eleos_enclave_create(const struct eleos_enclave_config *cfg_in,
                         struct eleos_enclave **out) {
    struct eleos_enclave_config cfg;
    if (!out)
        return -EINVAL;
    *out = NULL;
    sim_hostalloc_init();
    if (cfg_in)
        cfg = *cfg_in;
    else
        eleos_enclave_config_default(&cfg);
    if (!cfg.elrange_size)
        cfg.elrange_size = ELEOS_ENCLAVE_DEFAULT_ELRANGE_SIZE;
    if (!cfg.epc_size)
        cfg.epc_size = ELEOS_ENCLAVE_DEFAULT_EPC_SIZE;
    if (cfg.elrange_size > ELRANGE_MAX)
        return -EINVAL;
    cfg.elrange_size = (cfg.elrange_size + SIZE_ALIGN - 1) & ~(SIZE_ALIGN - 1);
    cfg.epc_size &= ~(uint64_t)(ELEOS_PAGE_SIZE - 1);
    if (cfg.epc_size < 16 * ELEOS_PAGE_SIZE || cfg.epc_size > cfg.elrange_size)
        return -EINVAL;
    if (cfg.integrity_policy != ELEOS_INTEGRITY_LOSE_ENCLAVE &&
        cfg.integrity_policy != ELEOS_INTEGRITY_ABORT)
        return -EINVAL;

    int r = sim_install_handlers();
    if (r)
        return r;
    /* Before this enclave exists: the measurement runs in a scratch enclave of its own. */
    if (sim_cost_needs_calibration(&cfg.cost)) {
        r = eleos_cost_calibrate();
        if (r)
            return r;
    }
    struct eleos_enclave *enc = calloc(1, sizeof *enc);
    if (!enc)
        return -ENOMEM;
    sim_cost_extras(&cfg.cost, enc->extra);
    snprintf(enc->name, sizeof enc->name, "%s", cfg.name ? cfg.name : "enclave");
    enc->cfg = cfg;
    enc->cfg.name = enc->name;
    enc->region = sim_region_get(cfg.elrange_size);
    if (!enc->region) {
        free(enc);
        return -ENOMEM;
    }
    r = sim_epc_init(enc, cfg.elrange_size, cfg.epc_size);
    if (r)
        goto fail_region;
    atomic_store_explicit(&enc->stats.epc_resident, 0, memory_order_relaxed);
    atomic_store_explicit(&enc->stats.epc_swapped, 0, memory_order_relaxed);
    /* Publish before the heap exists: creating the heap touches ELRANGE (segment headers),
     * which faults into the handler, which must find the enclave. */
    r = sim_registry_add(enc);
    if (r)
        goto fail_epc;
    r = sim_heap_init(enc);
    if (r)
        goto fail_registry;
    (void)tsc_ghz(); /* measure once now, not in the middle of a benchmark */
    *out = enc;
    return 0;
fail_registry:
    sim_registry_remove(enc);
fail_epc:
    sim_epc_reset(enc);
    sim_epc_fini(enc);
fail_region:
    sim_region_put(enc->region);
    free(enc);
    return r;
}

/* Frees a forked child's copy of an inherited enclave, touching nothing the parent owns
 * (its ELRANGE views are not mapped here; its heap, frames and memfd are the parent's). */
static void forget_inherited(struct eleos_enclave *enc) {
    sim_epc_fini(enc);
    close(enc->region->memfd);
    free(enc->region);
    free(enc);
}

void eleos_enclave_destroy(struct eleos_enclave *enc) {
    if (!enc)
        return;
    if (enc->inherited) {
        forget_inherited(enc);
        return;
    }
    if (atomic_load_explicit(&enc->threads_inside, memory_order_relaxed) != 0)
        sim_die("eleos_enclave_destroy: a thread is still inside the enclave");
    if (enc->cfg.print_stats)
        eleos_enclave_stats_print(enc, STDERR_FILENO);
    /* The heap teardown touches ELRANGE (mimalloc's segment headers), so it runs while the
     * enclave is still registered and its pages still fault in. mimalloc's per-thread
     * queues are shared by all heaps of heapd, so even a lost enclave's heap must be torn
     * down; pages that fail verification now read as zeros (see sim_epc_fault). */
    atomic_store_explicit(&enc->tearing_down, true, memory_order_release);
    sim_heap_fini(enc);
    sim_registry_remove(enc);
    sim_epc_reset(enc);
    sim_epc_fini(enc);
    sim_region_put(enc->region);
    free(enc);
}

bool eleos_enclave_is_lost(const struct eleos_enclave *enc) {
    return atomic_load_explicit(&enc->lost, memory_order_acquire);
}

void eleos_enclave_get_config(const struct eleos_enclave *enc, struct eleos_enclave_config *out) {
    *out = enc->cfg;
}

/* --- statistics -------------------------------------------------------------------------- */

#define LOAD(x) atomic_load_explicit(&enc->stats.x, memory_order_relaxed)

void eleos_enclave_stats(const struct eleos_enclave *enc, struct eleos_enclave_stats *o) {
    memset(o, 0, sizeof *o);
    o->ecalls = LOAD(ecalls);
    o->ocalls = LOAD(ocalls);
    o->syscall_exits = LOAD(syscall_exits);
    o->syscalls_denied = LOAD(syscalls_denied);
    o->aex = LOAD(aex);
    o->epc_commits = LOAD(epc_commits);
    o->epc_faults = LOAD(epc_faults);
    o->epc_evictions = LOAD(epc_evictions);
    o->epc_trimmed = LOAD(epc_trimmed);
    o->pages_sealed = LOAD(pages_sealed);
    o->pages_opened = LOAD(pages_opened);
    o->integrity_failures = LOAD(integrity_failures);
    o->epc_resident = LOAD(epc_resident);
    o->epc_resident_max = LOAD(epc_resident_max);
    o->epc_capacity = enc->inherited ? enc->epc.cap_pages : sim_plat_max(enc);
    o->cycles_charged = LOAD(cycles_charged);
    o->host_allocs = LOAD(host_allocs);
    o->epc_swapped = LOAD(epc_swapped);
    for (int i = 0; i < ELEOS_ENCLAVE_NSYSCALLS; i++)
        o->syscalls[i] = LOAD(syscalls[i]);
}

void eleos_enclave_stats_reset(struct eleos_enclave *enc) {
    _Atomic uint64_t *all[] = {
        &enc->stats.ecalls, &enc->stats.ocalls, &enc->stats.syscall_exits,
        &enc->stats.syscalls_denied, &enc->stats.aex, &enc->stats.epc_commits,
        &enc->stats.epc_faults, &enc->stats.epc_evictions, &enc->stats.epc_trimmed,
        &enc->stats.pages_sealed,
        &enc->stats.pages_opened, &enc->stats.integrity_failures, &enc->stats.cycles_charged,
        &enc->stats.host_allocs,
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        atomic_store_explicit(all[i], 0, memory_order_relaxed);
    for (int i = 0; i < ELEOS_ENCLAVE_NSYSCALLS; i++)
        atomic_store_explicit(&enc->stats.syscalls[i], 0, memory_order_relaxed);
    atomic_store_explicit(&enc->stats.epc_resident_max, LOAD(epc_resident),
                          memory_order_relaxed);
}

const char *sim_syscall_name(long nr);

void eleos_enclave_stats_print(const struct eleos_enclave *enc, int fd) {
    /* The table goes straight to fd; output the program left in stdio's buffers (a printf
     * to a redirected stdout) would otherwise land after it. */
    fflush(NULL);
    struct eleos_enclave_stats *s = calloc(1, sizeof *s);
    if (!s)
        return;
    eleos_enclave_stats(enc, s);
    const struct eleos_cost_model *m = &enc->cfg.cost;
    double ghz = tsc_ghz();
    dprintf(fd, "+---------------------------------------------------------------+\n");
    int pad = 41 - (int)strlen(enc->name);
    dprintf(fd, "| enclave \"%s\" statistics%*s|\n", enc->name, pad > 1 ? pad : 1, "");
    dprintf(fd, "+-------------------------------+-------------------------------+\n");
#define ROW(label, val) dprintf(fd, "| %-29s | %29llu |\n", label, (unsigned long long)(val))
    ROW("ECALLs", s->ecalls);
    ROW("OCALLs", s->ocalls);
    ROW("syscall exits", s->syscall_exits);
    ROW("  of which denied", s->syscalls_denied);
    ROW("asynchronous exits (AEX)", s->aex);
    ROW("EPC pages committed", s->epc_commits);
    ROW("EPC faults (swap-ins)", s->epc_faults);
    ROW("EPC evictions (EWB)", s->epc_evictions);
    ROW("EPC pages trimmed", s->epc_trimmed);
    ROW("pages sealed", s->pages_sealed);
    ROW("pages opened", s->pages_opened);
    ROW("integrity failures", s->integrity_failures);
    ROW("host allocs in enclave mode", s->host_allocs);
    ROW("EPC resident (pages)", s->epc_resident);
    ROW("EPC resident max (pages)", s->epc_resident_max);
    ROW("EPC swapped out now (pages)", s->epc_swapped);
    ROW("EPC capacity (pages)", s->epc_capacity);
    ROW("modeled cycles charged", s->cycles_charged);
    dprintf(fd, "| %-29s | %27.1f ms |\n", "  = busy-wait time",
            (double)s->cycles_charged / ghz / 1e6);
    dprintf(fd, "+-------------------------------+-------------------------------+\n");
    int shown = 0;
    for (int i = 0; i < ELEOS_ENCLAVE_NSYSCALLS; i++) {
        if (!s->syscalls[i])
            continue;
        if (!shown++)
            dprintf(fd, "| syscall exits by number       |                               |\n");
        char label[40];
        snprintf(label, sizeof label, "  %s (%d)", sim_syscall_name(i), i);
        ROW(label, s->syscalls[i]);
    }
#undef ROW
    if (shown)
        dprintf(fd, "+-------------------------------+-------------------------------+\n");
    dprintf(fd,
            "cost model (%s): ecall=%llu ocall=%llu syscall=%llu epc_swap=%llu; charged extra: "
            "%llu %llu %llu %llu; epc_evict extra=%llu pollute=%u KiB; TSC %.3f GHz; "
            "enforcement %s\n",
            m->raw ? "raw extras" : "targets", (unsigned long long)m->ecall_cycles,
            (unsigned long long)m->ocall_cycles, (unsigned long long)m->syscall_cycles,
            (unsigned long long)m->epc_fault_cycles,
            (unsigned long long)enc->extra[ELEOS_COST_EV_ECALL],
            (unsigned long long)enc->extra[ELEOS_COST_EV_OCALL],
            (unsigned long long)enc->extra[ELEOS_COST_EV_SYSCALL],
            (unsigned long long)enc->extra[ELEOS_COST_EV_EPC_SWAP],
            (unsigned long long)m->epc_evict_cycles, m->pollute_kib, ghz,
            enc->cfg.enforce ? "on" : "off");
    free(s);
}
