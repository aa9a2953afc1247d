/*
 * eleos-demo: what the SGX platform emulator does, in one run.
 *
 * Creates an enclave (93 MiB EPC by default), then inside it:
 *   1. makes ordinary system calls (getppid, write, clock_gettime …): each one traps and is
 *      counted as an exit, as in SGX, where the SDK would run it as an OCALL;
 *   2. fills and re-reads a buffer twice the size of the EPC on the enclave heap, so the
 *      emulated driver pages it in and out through sealed swap;
 * and prints the statistics table with the time each phase took.
 *
 *   eleos-demo [--epc MiB] [--data MiB] [--cost on|off]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eleos/enclave.h"

struct job {
    struct eleos_enclave *enc;
    size_t data_size;
    long bad;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long syscalls_in_enclave(void *arg) {
    (void)arg;
    long sum = 0;
    for (int i = 0; i < 1000; i++)
        sum += getppid() > 0;
    static const char msg[] = "  (this line was written from enclave mode: one trapped write)\n";
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0)
        return -1;
    return sum;
}

static long page_through(void *arg) {
    struct job *j = arg;
    size_t n = j->data_size / sizeof(uint64_t);
    uint64_t *p = eleos_enclave_malloc(j->enc, j->data_size);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        p[i] = i * 2654435761u;
    for (size_t i = 0; i < n; i++)
        j->bad += p[i] != i * 2654435761u;
    eleos_enclave_free(j->enc, p);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: eleos-demo [--epc MiB] [--data MiB] [--cost on|off]\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    cfg.name = "demo";
    size_t data_mib = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--epc") == 0)
            cfg.epc_size = strtoull(argv[++i], NULL, 10) << 20;
        else if (strcmp(argv[i], "--data") == 0)
            data_mib = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--cost") == 0) {
            if (strcmp(argv[++i], "off") == 0)
                eleos_cost_model_off(&cfg.cost);
        } else
            usage();
    }
    if (!data_mib)
        data_mib = 2 * (cfg.epc_size >> 20);
    struct eleos_enclave *enc;
    int r = eleos_enclave_create(&cfg, &enc);
    if (r) {
        fprintf(stderr, "eleos-demo: cannot create the enclave: %s\n", strerror(-r));
        return 1;
    }
    printf("Eleos-C SGX platform emulator demo\n");
    printf("  enclave: ELRANGE %llu MiB, EPC %llu MiB, enforcement on\n",
           (unsigned long long)(cfg.elrange_size >> 20), (unsigned long long)(cfg.epc_size >> 20));

    printf("\n[1] 1000 getppid() + 1 write() from enclave mode\n");
    fflush(stdout);
    long ret = 0;
    double t0 = now_s();
    r = eleos_enclave_ecall(enc, syscalls_in_enclave, NULL, &ret);
    double t1 = now_s();
    fflush(stdout);
    printf("  %.1f us per trapped syscall (an exit each)\n", (t1 - t0) * 1e6 / 1001);

    printf("\n[2] write and read back %zu MiB on the enclave heap (EPC holds %llu MiB)\n",
           data_mib, (unsigned long long)(cfg.epc_size >> 20));
    struct job j = {enc, data_mib << 20, 0};
    t0 = now_s();
    r = r ? r : eleos_enclave_ecall(enc, page_through, &j, &ret);
    t1 = now_s();
    if (r || ret) {
        fprintf(stderr, "eleos-demo: ECALL failed: %s\n", strerror(-(r ? r : (int)ret)));
        eleos_enclave_destroy(enc);
        return 1;
    }
    printf("  %.2f s, %ld wrong words (must be 0)\n\n", t1 - t0, j.bad);
    fflush(stdout);
    eleos_enclave_stats_print(enc, STDOUT_FILENO);
    eleos_enclave_destroy(enc);
    return j.bad ? 1 : 0;
}
