/*
 * The cost model: what the emulator cannot make real, it charges as a TSC busy-wait.
 *
 * SGX transitions (EENTER/EEXIT/AEX/ERESUME) and the driver's EWB/ELDU have costs a Linux
 * process does not pay. The model's fields are targets, the published totals (about 8,200
 * cycles per OCALL/ECALL round trip, HotCalls ISCA'17; about 40,000 per page swap, VAULT
 * ASPLOS'18); each charge point busy-waits the extra computed at enclave creation from the
 * measured cost of the real mechanism the emulator runs (sim_calib.c, docs/emulator.md).
 *
 * The pollution knob models the indirect cost of an exit (TLB flush, LLC pollution by the
 * untrusted side): each exit streams through N KiB of per-thread untrusted scratch.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/tsc.h"
#include "sim/sim_internal.h"

static void env_u64(const char *name, uint64_t *v) {
    const char *s = getenv(name);
    if (!s || !*s)
        return;
    char *end;
    unsigned long long x = strtoull(s, &end, 0);
    if (*end == '\0')
        *v = x;
}

void eleos_cost_model_off(struct eleos_cost_model *m) {
    memset(m, 0, sizeof *m);
}

void eleos_cost_model_default(struct eleos_cost_model *m) {
    m->ecall_cycles = ELEOS_COST_DEFAULT_ECALL;
    m->ocall_cycles = ELEOS_COST_DEFAULT_OCALL;
    m->syscall_cycles = ELEOS_COST_DEFAULT_SYSCALL;
    m->epc_fault_cycles = ELEOS_COST_DEFAULT_EPC_FAULT;
    m->epc_evict_cycles = ELEOS_COST_DEFAULT_EPC_EVICT;
    m->pollute_kib = 0;
    uint64_t off = 1;
    env_u64("ELEOS_COST", &off);
    if (off == 0)
        eleos_cost_model_off(m);
    env_u64("ELEOS_COST_ECALL", &m->ecall_cycles);
    env_u64("ELEOS_COST_OCALL", &m->ocall_cycles);
    env_u64("ELEOS_COST_SYSCALL", &m->syscall_cycles);
    env_u64("ELEOS_COST_EPC_FAULT", &m->epc_fault_cycles);
    env_u64("ELEOS_COST_EPC_EVICT", &m->epc_evict_cycles);
    uint64_t raw = 0;
    env_u64("ELEOS_COST_RAW", &raw);
    m->raw = raw != 0;
    uint64_t kib = m->pollute_kib;
    env_u64("ELEOS_COST_POLLUTE_KIB", &kib);
    m->pollute_kib = (uint32_t)(kib > (1u << 20) ? (1u << 20) : kib);
}

void sim_charge(struct eleos_enclave *enc, uint64_t cycles) {
    if (!cycles)
        return;
    tsc_spin(cycles);
    sim_stat_add(&enc->stats.cycles_charged, cycles);
}

void sim_pollute(struct eleos_enclave *enc, struct sim_thread *t) {
    size_t want = (size_t)enc->cfg.cost.pollute_kib << 10;
    if (!want)
        return;
    if (t->pollute_size < want) {
        /* Allocated on first use in host mode paths (ECALL entry); an exit in enclave mode
         * reaches here only after the selector was switched to ALLOW. */
        if (t->pollute_buf)
            munmap(t->pollute_buf, t->pollute_size);
        void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            t->pollute_buf = NULL;
            t->pollute_size = 0;
            return;
        }
        t->pollute_buf = p;
        t->pollute_size = want;
    }
    /* One write per cache line: evicts the enclave's lines and its TLB entries. */
    for (size_t i = 0; i < want; i += 64)
        t->pollute_buf[i]++;
}
