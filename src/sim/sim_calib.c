/*
 * Calibration of the cost model: the emulator measures what its own mechanism costs on the
 * machine it runs on, and the model charges only what is missing to reach the targets.
 *
 * Why: the real mechanism (a SIGSYS round trip, a SIGSEGV plus AES-GCM and mprotects) costs
 * very different amounts on different CPUs and hypervisors (a SIGSYS trap is ~2,000 cycles on
 * one Xeon VM and ~5,700 on an EPYC VM). Fixed extras tuned on one machine overshoot on
 * another, silently. So the targets (totals per event) are the configuration, and the extra
 * per event is max(0, target - measured mechanism).
 *
 * How: once per process (mutex + flag; lazily from the first eleos_enclave_create whose model
 * needs it, or explicitly via eleos_cost_calibrate), a scratch enclave with the model in raw
 * mode (extras 0, or the test hook's slowdown) runs each mechanism many times, each sample
 * timed on its own with the TSC, and the median is kept (robust to the preemptions and
 * interrupts of a shared machine, unlike the mean):
 *   - ECALL: a null ECALL round trip;
 *   - OCALL: a null OCALL round trip from inside an ECALL;
 *   - syscall exit: getppid trapped in enclave mode minus getppid in host mode (the
 *     syscall's own work is not part of the exit);
 *   - EPC swap: a touch of a swapped-out page with the scratch EPC full, so that it faults,
 *     evicts the oldest page (mprotect, seal, punch) and opens the faulting one (open,
 *     mprotect): the fault including the eviction that made room.
 * It takes a few milliseconds (most of it the scratch enclave's creation).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/tsc.h"
#include "sim/sim_internal.h"

#define CAL_SAMPLES 201     /* per transition kind; odd so the median is one sample  */
#define CAL_SWAP_SAMPLES 61 /* swaps are ~10x dearer: fewer keep the total small      */
#define CAL_EPC_PAGES 256   /* the scratch EPC (1 MiB)                               */
#define CAL_TOUCH_PAGES 384 /* > EPC, touched in a fixed shuffled cycle (see below)   */

static pthread_mutex_t cal_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool cal_done;
static uint64_t cal_mech[ELEOS_COST_NEVENTS];
static double cal_ms;
static _Atomic uint64_t cal_slowdown; /* test hook: extra cycles in every mechanism */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t median(uint64_t *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_u64);
    return v[n / 2];
}

static long cal_nothing(void *arg) {
    return (long)arg;
}

/* In enclave mode: times n null OCALLs, one sample each. */
static long cal_ocalls(void *arg) {
    uint64_t *v = arg;
    for (size_t i = 0; i < CAL_SAMPLES; i++) {
        uint64_t t0 = tsc_now();
        eleos_enclave_ocall(cal_nothing, NULL);
        v[i] = tsc_now() - t0;
    }
    return 0;
}

/* Times n getppid calls (trapped when called in enclave mode). syscall(): libc may cache
 * other ids, never this one, but be explicit. */
static long cal_getppids(void *arg) {
    uint64_t *v = arg;
    for (size_t i = 0; i < CAL_SAMPLES; i++) {
        uint64_t t0 = tsc_now();
        syscall(SYS_getppid);
        v[i] = tsc_now() - t0;
    }
    return 0;
}

static int measure_transitions(struct eleos_enclave *e, uint64_t *v, uint64_t *mech) {
    long ret;
    for (int warm = 0; warm < 2; warm++) /* first pass: SUD set-up, cold caches */
        for (size_t i = 0; i < CAL_SAMPLES; i++) {
            uint64_t t0 = tsc_now();
            int r = eleos_enclave_ecall(e, cal_nothing, NULL, &ret);
            if (r != 0)
                return r; /* -ENOSYS: no Syscall User Dispatch (see measure_all) */
            v[i] = tsc_now() - t0;
        }
    mech[ELEOS_COST_EV_ECALL] = median(v, CAL_SAMPLES);
    if (eleos_enclave_ecall(e, cal_ocalls, v, &ret) != 0)
        return -EIO;
    mech[ELEOS_COST_EV_OCALL] = median(v, CAL_SAMPLES);
    cal_getppids(v);
    uint64_t native = median(v, CAL_SAMPLES);
    if (eleos_enclave_ecall(e, cal_getppids, v, &ret) != 0)
        return -EIO;
    uint64_t trapped = median(v, CAL_SAMPLES);
    mech[ELEOS_COST_EV_SYSCALL] = trapped > native ? trapped - native : 0;
    return 0;
}

/* Host mode: a touch of a non-resident page faults like an enclave access would (the same
 * handler, the same driver work; only the AEX counter differs). */
static int measure_swap(struct eleos_enclave *e, uint64_t *v, uint64_t *mech) {
    size_t size = (size_t)CAL_TOUCH_PAGES * ELEOS_PAGE_SIZE;
    volatile uint8_t *p = eleos_enclave_aligned_alloc(e, ELEOS_PAGE_SIZE, size);
    uint16_t *perm = malloc(CAL_TOUCH_PAGES * sizeof *perm);
    if (!p || !perm) {
        free(perm);
        return -ENOMEM;
    }
    /* A fixed shuffled cycle: FIFO misses on every touch after the first pass (each page
     * comes back only after more than EPC-many others), and the resident pages are scattered
     * as in a real enclave, so the mprotects work on a fragmented mapping (many VMAs), not
     * on a tidy window: a contiguous window measured ~40 % cheaper than real paging. */
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < CAL_TOUCH_PAGES; i++)
        perm[i] = (uint16_t)i;
    for (size_t i = CAL_TOUCH_PAGES - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = x % (i + 1);
        uint16_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < CAL_TOUCH_PAGES; i++) /* commits, then evicts the first ones */
        p[(size_t)perm[i] * ELEOS_PAGE_SIZE]++;
    for (size_t i = 0; i < CAL_SWAP_SAMPLES; i++) {
        volatile uint8_t *q = p + (size_t)perm[i % CAL_TOUCH_PAGES] * ELEOS_PAGE_SIZE;
        uint64_t t0 = tsc_now();
        (*q)++;
        v[i] = tsc_now() - t0;
    }
    mech[ELEOS_COST_EV_EPC_SWAP] = median(v, CAL_SWAP_SAMPLES);
    free(perm);
    eleos_enclave_free(e, (void *)p);
    return 0;
}

/* The scratch enclave: raw model (no calibration of its own, so no recursion), a small EPC,
 * and the test hook's slowdown as its only charge. */
static int measure_in(uint64_t *mech, bool enforce) {
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    uint64_t slow = atomic_load(&cal_slowdown);
    memset(&cfg.cost, 0, sizeof cfg.cost);
    cfg.cost.raw = true;
    cfg.cost.ecall_cycles = cfg.cost.ocall_cycles = cfg.cost.syscall_cycles = slow;
    cfg.cost.epc_fault_cycles = slow;
    cfg.enforce = enforce;
    cfg.elrange_size = 64ull << 20;
    cfg.epc_size = (uint64_t)CAL_EPC_PAGES * ELEOS_PAGE_SIZE;
    cfg.name = "calibration";
    /* An EPC of its own: the measurement must not depend on (or disturb) other enclaves. */
    cfg.epc_platform = "private";
    struct eleos_enclave *e;
    int r = eleos_enclave_create(&cfg, &e);
    if (r)
        return r;
    uint64_t *v = malloc(CAL_SAMPLES * sizeof *v);
    if (!v) {
        eleos_enclave_destroy(e);
        return -ENOMEM;
    }
    r = measure_transitions(e, v, mech);
    if (r == 0)
        r = measure_swap(e, v, mech);
    free(v);
    eleos_enclave_destroy(e);
    return r;
}

/* A kernel without Syscall User Dispatch cannot trap syscalls: enclaves there run with
 * enforcement off (ELEOS_ENFORCE=0), where a syscall is no exit. Measure without it rather
 * than failing every enclave creation; the syscall mechanism then measures ~0. */
static int measure_all(uint64_t *mech) {
    int r = measure_in(mech, true);
    return r == -ENOSYS ? measure_in(mech, false) : r;
}

int eleos_cost_calibrate(void) {
    if (atomic_load_explicit(&cal_done, memory_order_acquire))
        return 0;
    if (eleos_enclave_in_enclave_mode())
        return -EPERM; /* the measurement makes ECALLs of its own */
    pthread_mutex_lock(&cal_lock);
    int r = 0;
    if (!atomic_load_explicit(&cal_done, memory_order_relaxed)) {
        /* The TSC frequency is measured once per process against the clock (tens of ms of
         * waiting, not of calibration): the scratch enclave's creation would do it. */
        (void)tsc_ghz();
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        uint64_t mech[ELEOS_COST_NEVENTS] = {0};
        r = measure_all(mech);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (r == 0) {
            memcpy(cal_mech, mech, sizeof mech);
            cal_ms =
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
            atomic_store_explicit(&cal_done, true, memory_order_release);
        }
    }
    pthread_mutex_unlock(&cal_lock);
    return r;
}

void sim_calib_test_slowdown(uint64_t cycles) {
    atomic_store(&cal_slowdown, cycles);
}

void sim_calib_forget(void) {
    pthread_mutex_lock(&cal_lock);
    atomic_store_explicit(&cal_done, false, memory_order_release);
    pthread_mutex_unlock(&cal_lock);
}

/* Targets (or raw extras) of a model, by event kind. */
static void model_values(const struct eleos_cost_model *m, uint64_t *t) {
    t[ELEOS_COST_EV_ECALL] = m->ecall_cycles;
    t[ELEOS_COST_EV_OCALL] = m->ocall_cycles;
    t[ELEOS_COST_EV_SYSCALL] = m->syscall_cycles;
    t[ELEOS_COST_EV_EPC_SWAP] = m->epc_fault_cycles;
}

bool sim_cost_needs_calibration(const struct eleos_cost_model *m) {
    if (m->raw)
        return false;
    return m->ecall_cycles || m->ocall_cycles || m->syscall_cycles || m->epc_fault_cycles;
}

void sim_cost_extras(const struct eleos_cost_model *m, uint64_t *extra) {
    uint64_t t[ELEOS_COST_NEVENTS];
    model_values(m, t);
    bool have = atomic_load_explicit(&cal_done, memory_order_acquire);
    for (int k = 0; k < ELEOS_COST_NEVENTS; k++) {
        if (m->raw)
            extra[k] = t[k];
        else
            extra[k] = !have ? t[k] : t[k] > cal_mech[k] ? t[k] - cal_mech[k] : 0;
    }
}

int eleos_cost_calibration_get(const struct eleos_cost_model *m, struct eleos_cost_calibration *o) {
    memset(o, 0, sizeof *o);
    int r = eleos_cost_calibrate();
    if (r)
        return r;
    uint64_t t[ELEOS_COST_NEVENTS], x[ELEOS_COST_NEVENTS];
    model_values(m, t);
    sim_cost_extras(m, x);
    o->raw = m->raw;
    o->elapsed_ms = cal_ms;
    for (int k = 0; k < ELEOS_COST_NEVENTS; k++) {
        struct eleos_cost_event_calibration *ev = &o->ev[k];
        ev->mechanism = cal_mech[k];
        ev->target = m->raw ? 0 : t[k];
        ev->extra = x[k];
        ev->effective = ev->mechanism + ev->extra;
        ev->over_target = !m->raw && t[k] && ev->mechanism > t[k];
    }
    return 0;
}

int eleos_enclave_cost_calibration(const struct eleos_enclave *enc,
                                   struct eleos_cost_calibration *out) {
    return eleos_cost_calibration_get(&enc->cfg.cost, out);
}

const char *eleos_cost_event_name(enum eleos_cost_event ev) {
    static const char *const names[ELEOS_COST_NEVENTS] = {"ecall", "ocall", "syscall-exit",
                                                          "epc-swap"};
    return (unsigned)ev < ELEOS_COST_NEVENTS ? names[ev] : "?";
}

int eleos_cost_calibration_format(const struct eleos_cost_calibration *c, char *buf, size_t size) {
    size_t n = 0;
    int w = snprintf(buf, size, "cost model %s:", c->raw ? "(raw extras)" : "effective/target");
    for (int k = 0; k < ELEOS_COST_NEVENTS && w >= 0; k++) {
        n += (size_t)w;
        const struct eleos_cost_event_calibration *ev = &c->ev[k];
        char tgt[48] = "";
        if (!c->raw)
            snprintf(tgt, sizeof tgt, "/%llu%s", (unsigned long long)ev->target,
                     ev->over_target ? " OVER TARGET" : "");
        w = snprintf(buf + (n < size ? n : size), n < size ? size - n : 0,
                     " %s %llu%s (mech %llu + extra %llu)%s", eleos_cost_event_name(k),
                     (unsigned long long)ev->effective, tgt, (unsigned long long)ev->mechanism,
                     (unsigned long long)ev->extra, k + 1 < ELEOS_COST_NEVENTS ? ";" : "");
    }
    if (w >= 0) {
        n += (size_t)w;
        w = snprintf(buf + (n < size ? n : size), n < size ? size - n : 0,
                     "; cycles, calibrated in %.1f ms", c->elapsed_ms);
    }
    return w < 0 ? w : (int)(n + (size_t)w);
}
