/* Small helpers shared by the benchmark programs: medians of repeated runs, CPU pinning. */
#ifndef ELEOS_BENCH_UTIL_H
#define ELEOS_BENCH_UTIL_H

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "eleos/enclave.h"

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (n >= 1); sorts v in place. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Pins the calling thread to one CPU (best effort: a failure leaves it unpinned). */
static inline void bench_pin_cpu(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

/* Lets the calling thread run on every online CPU again (threads it creates inherit this). */
static inline void bench_unpin_cpu(void) {
    cpu_set_t s;
    CPU_ZERO(&s);
    for (int i = 0; i < CPU_SETSIZE; i++)
        CPU_SET(i, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

/* Prints one line: the effective cost per event of enc's cost model (measured mechanism +
 * extra charged) against its target, so every figure is read against what this machine
 * actually charged (the calibration, docs/emulator.md). Nothing for a model that is off. */
static inline void bench_print_cost_calibration(const struct eleos_enclave *enc) {
    struct eleos_enclave_config c;
    eleos_enclave_get_config(enc, &c);
    const struct eleos_cost_model *m = &c.cost;
    if (!m->raw && !m->ecall_cycles && !m->ocall_cycles && !m->syscall_cycles &&
        !m->epc_fault_cycles)
        return;
    struct eleos_cost_calibration cal;
    char line[640];
    if (eleos_enclave_cost_calibration(enc, &cal) != 0)
        return;
    eleos_cost_calibration_format(&cal, line, sizeof line);
    printf("# %s\n", line);
}

#endif
