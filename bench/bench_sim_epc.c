/*
 * bench_sim_epc: EPC paging on the emulator. Random 8-byte touches (one read, one write)
 * of pages spread over a working set of 1×–5× the EPC, model off and on, side by side.
 *
 * Reports faults per second, page touches per second, and the cost of one swap (an EPC
 * fault that evicts one page and loads one): with the model on it should be close to the
 * 40,000 cycles of VAULT (ASPLOS'18).
 *
 *   bench_sim_epc [--quick] [--epc MiB] [--reps R] [--csv FILE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#include "eleos/enclave.h"

static int reps = 5;
static uint64_t epc_mib = 93;
static long touches = 200000;

struct job {
    struct eleos_enclave *enc;
    uint8_t *buf;
    size_t pages;
    uint64_t seed;
};

static long touch_random(void *arg) {
    struct job *j = arg;
    uint64_t x = j->seed;
    for (long i = 0; i < touches; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        volatile uint64_t *p = (volatile uint64_t *)(j->buf + (x % j->pages) * 4096 + (x >> 52) % 512 * 8);
        *p = *p + 1;
    }
    j->seed = x;
    return 0;
}

static long fill(void *arg) {
    struct job *j = arg;
    for (size_t i = 0; i < j->pages; i++)
        j->buf[i * 4096] = 1;
    return 0;
}

struct result {
    double cycles_per_touch;
    double faults_per_touch;
    double cycles_per_fault; /* of the whole run, divided by faults */
};

static struct result run(bool model, size_t mult) {
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    if (!model)
        eleos_cost_model_off(&cfg.cost);
    cfg.epc_size = epc_mib << 20;
    cfg.elrange_size = ((epc_mib * mult + 256) << 20);
    struct eleos_enclave *e;
    if (eleos_enclave_create(&cfg, &e) != 0)
        abort();
    struct job j = {e, NULL, (epc_mib << 20) * mult / 4096 - 64, 88172645463325252ull};
    j.buf = eleos_enclave_aligned_alloc(e, 4096, j.pages * 4096);
    long ret;
    if (!j.buf || eleos_enclave_ecall(e, fill, &j, &ret) != 0)
        abort();
    double v[3][32];
    int n = reps > 32 ? 32 : reps;
    for (int r = 0; r < n; r++) {
        struct eleos_enclave_stats s0, s1;
        eleos_enclave_stats(e, &s0);
        uint64_t t0 = eleos_tsc();
        if (eleos_enclave_ecall(e, touch_random, &j, &ret) != 0)
            abort();
        uint64_t t1 = eleos_tsc();
        eleos_enclave_stats(e, &s1);
        double faults = (double)(s1.epc_faults - s0.epc_faults);
        v[0][r] = (double)(t1 - t0) / (double)touches;
        v[1][r] = faults / (double)touches;
        v[2][r] = faults > 0 ? (double)(t1 - t0) / faults : 0;
    }
    for (int k = 0; k < 3; k++)
        qsort(v[k], (size_t)n, sizeof(double), bench_cmp_double);
    struct result res = {v[0][n / 2], v[1][n / 2], v[2][n / 2]};
    eleos_enclave_free(e, j.buf);
    eleos_enclave_destroy(e);
    return res;
}

int main(int argc, char **argv) {
    const char *csv = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            reps = 3;
            touches = 30000;
            epc_mib = 32;
        } else if (!strcmp(argv[i], "--epc") && i + 1 < argc) {
            epc_mib = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--epc MiB] [--reps R] [--csv FILE]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    double ghz = eleos_tsc_ghz();
    struct eleos_cost_model m;
    eleos_cost_model_default(&m);
    printf("# bench_sim_epc: EPC %llu MiB, %ld random page touches per rep, median of %d reps, "
           "TSC %.3f GHz\n",
           (unsigned long long)epc_mib, touches, reps, ghz);
    printf("# model on: epc swap target %llu cycles (extra = target - measured swap), "
           "epc_evict extra %llu\n",
           (unsigned long long)m.epc_fault_cycles, (unsigned long long)m.epc_evict_cycles);
    struct eleos_cost_calibration cal;
    char line[640];
    if (eleos_cost_calibration_get(&m, &cal) == 0) {
        eleos_cost_calibration_format(&cal, line, sizeof line);
        printf("# %s\n", line);
    }
    printf("| set/EPC | model | faults/touch | touches/s  | faults/s   | cycles/swap | us/swap |\n");
    printf("|---------|-------|--------------|------------|------------|-------------|---------|\n");
    FILE *f = csv ? fopen(csv, "w") : NULL;
    if (f)
        fprintf(f, "set_over_epc,model,faults_per_touch,touches_per_s,faults_per_s,cycles_per_swap\n");
    for (size_t mult = 1; mult <= 5; mult++) {
        for (int model = 0; model <= 1; model++) {
            struct result r = run(model, mult);
            double tps = ghz * 1e9 / r.cycles_per_touch;
            printf("| %6zux | %-5s | %12.3f | %10.0f | %10.0f | %11.0f | %7.2f |\n", mult,
                   model ? "on" : "off", r.faults_per_touch, tps, tps * r.faults_per_touch,
                   r.cycles_per_fault, r.cycles_per_fault / ghz / 1000);
            if (f)
                fprintf(f, "%zu,%s,%.4f,%.0f,%.0f,%.0f\n", mult, model ? "on" : "off",
                        r.faults_per_touch, tps, tps * r.faults_per_touch, r.cycles_per_fault);
        }
    }
    if (f)
        fclose(f);
    printf("\ncycles/swap = run time / faults, so it includes the touch itself; at 5x nearly every"
           " touch swaps. Target with the model on: about 40,000 cycles.\n");
    return 0;
}
