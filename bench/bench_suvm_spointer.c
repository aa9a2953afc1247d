/*
 * bench_suvm_spointer — spointer overhead against raw pointers when the data fits in the
 * page cache (no faults after warm-up), inside an enclave, model off (no exits happen).
 *
 *   seq-word:  sum every 64-bit word in order; spointer: deref + add(8) per word (worst
 *              case: the check cannot be hoisted out of the loop; the spointer is a local
 *              variable, so it lives in registers: per word one compare, one address add,
 *              one move add);
 *   seq-span:  same scan, spointer dereferenced once per page and the page scanned raw
 *              (how bulk code uses spointers);
 *   random:    64-bit reads at random word indices; spointer: set + deref per read (a new
 *              page almost every time: one slow-path call that unpins the old page, looks
 *              up and pins the new one and counts a hit, two atomic RMWs, which also keep
 *              the loop's cache misses from overlapping);
 *   random+hint: the same reads, the spointer loop calling eleos_suvm_prefetch for the
 *              address HINT_AHEAD reads ahead (the raw loop is the plain one again, run next
 *              to it).
 *
 * The raw seq-word loop is auto-vectorised at -O3 (several words per instruction), which no
 * per-word spointer loop can be; a second raw baseline compiled without vectorisation
 * ("seq-word-scalar") shows the overhead against one scalar load per word. Both are printed;
 * the spointer loop is the same in both rows.
 *
 * Medians of 7 runs (each row's overhead is the median of the per-run ratios, raw and
 * spointer measured back to back). Usage: bench_suvm_spointer [--quick] [--mib N] [--csv FILE]
 *   --quick: 8 MiB instead of 32 MiB (about a second).
 *   --mib N: N MiB of data. At 32 MiB the scans stream from memory, which hides part of
 *            any per-word work; with data that fits in the L2 (--mib 1) the loops are
 *            compute-bound and show the per-word instruction cost itself. Small sizes are
 *            scanned 32 MiB / N times per measurement.
 *   --csv FILE: one row per configuration (test, raw ns, spointer ns, overhead).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#include "eleos/enclave.h"
#include "eleos/suvm.h"
#include "suvm/suvm_testutil.h"

#define MiB SUVM_T_MIB
#define RUNS 7
#define HINT_AHEAD 16

static uint64_t data_size = 32 * MiB;
/* Passes over the data per measurement: several when the data is small, so that the
 * caches are warm and a run lasts long enough to time. */
static uint64_t passes = 1;

struct ctx {
    struct eleos_enclave *enc;
    struct eleos_suvm *s;
    uint64_t base;
    uint64_t *raw;
    uint64_t sink;
    double ns[10][RUNS]; /* raw/suvm x seq-word, seq-span, random, seq-word-scalar,
                            random+hint */
};

static long setup(void *arg) {
    struct ctx *c = arg;
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = data_size + 8 * MiB;
    cfg.backing_size = data_size + 4 * MiB;
    cfg.host_mode = !eleos_enclave_in_enclave_mode(); /* a host-mode baseline, explicitly */
    int r = eleos_suvm_create(&cfg, &c->s);
    if (r)
        return r;
    if ((r = eleos_suvm_alloc(c->s, data_size, &c->base)))
        return r;
    c->raw = eleos_enclave_aligned_alloc(c->enc, 4096, data_size);
    if (!c->raw)
        return -1;
    uint64_t n = data_size / 8, rng = 5;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = suvm_t_rand(&rng);
        c->raw[i] = v;
        if ((r = eleos_suvm_write(c->s, c->base + i * 8, &v, 8)))
            return r;
    }
    return 0;
}

/* The scalar raw baseline: one load per word, as a per-word spointer loop does. noipa: the
 * repeated calls of small-data runs must not be merged into one. */
__attribute__((noinline, noipa, optimize("no-tree-vectorize"))) static uint64_t
raw_scalar_sum(const uint64_t *w, uint64_t n) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += w[i];
    return sum;
}

/* The raw array, hidden from the optimiser once per pass, so that repeated passes over small
 * data are really made. */
static const uint64_t *opaque(const uint64_t *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static double ns_per(uint64_t t0, uint64_t n) {
    return (double)(eleos_tsc() - t0) / eleos_tsc_ghz() / (double)n;
}

/* The per-word spointer scan (np passes of n words), measured twice in run(): once after the
 * vectorised raw loop and once after the scalar one. Always inlined, so each measurement
 * gets the same code as if it were written out in place. */
static inline __attribute__((always_inline)) int spointer_scan(struct ctx *c, uint64_t n,
                                                               uint64_t np, uint64_t *sum) {
    for (uint64_t ps = 0; ps < np; ps++) {
        struct eleos_suvm_ptr p;
        void *v;
        eleos_suvm_ptr_init(&p, c->s, c->base);
        for (uint64_t i = 0; i < n; i++) {
            if (eleos_suvm_ptr_deref(&p, &v))
                return -1;
            *sum += *(uint64_t *)v;
            eleos_suvm_ptr_add(&p, 8);
        }
        eleos_suvm_ptr_fini(&p);
    }
    return 0;
}

/* m reads of random words (indices from seed) through the raw pointer. */
static inline __attribute__((always_inline)) uint64_t raw_random(const uint64_t *raw, uint64_t n,
                                                                 uint64_t m, uint64_t seed) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < m; i++)
        sum += raw[suvm_t_rand(&seed) % n];
    return sum;
}

/* The same reads through one spointer (set + deref each); with hint, each read first hints
 * the address HINT_AHEAD reads later. Always inlined with a constant hint, so the plain loop
 * has no trace of the hinted one. */
static inline __attribute__((always_inline)) int spointer_random(struct ctx *c, uint64_t n,
                                                                 uint64_t m, uint64_t seed,
                                                                 bool hint, uint64_t *sum) {
    struct eleos_suvm_ptr p;
    void *v;
    uint64_t ahead = seed;
    if (hint)
        for (int i = 0; i < HINT_AHEAD; i++)
            eleos_suvm_prefetch(c->s, c->base + (suvm_t_rand(&ahead) % n) * 8);
    eleos_suvm_ptr_init(&p, c->s, c->base);
    for (uint64_t i = 0; i < m; i++) {
        if (hint)
            eleos_suvm_prefetch(c->s, c->base + (suvm_t_rand(&ahead) % n) * 8);
        eleos_suvm_ptr_set(&p, c->base + (suvm_t_rand(&seed) % n) * 8);
        if (eleos_suvm_ptr_deref(&p, &v))
            return -1;
        *sum += *(uint64_t *)v;
    }
    eleos_suvm_ptr_fini(&p);
    return 0;
}

static long run(void *arg) {
    struct ctx *c = arg;
    uint64_t n = data_size / 8, np = passes;
    for (int k = 0; k < RUNS; k++) {
        uint64_t sum = 0, t0;
        struct eleos_suvm_ptr p;
        void *v;
        /* seq-word raw */
        t0 = eleos_tsc();
        for (uint64_t ps = 0; ps < np; ps++) {
            const uint64_t *raw = opaque(c->raw);
            for (uint64_t i = 0; i < n; i++)
                sum += raw[i];
        }
        c->ns[0][k] = ns_per(t0, n * np);
        /* seq-word spointer */
        t0 = eleos_tsc();
        if (spointer_scan(c, n, np, &sum))
            return -1;
        c->ns[1][k] = ns_per(t0, n * np);
        /* seq-span raw = seq-word raw; spointer once per page */
        t0 = eleos_tsc();
        for (uint64_t ps = 0; ps < np; ps++) {
            const uint64_t *raw = opaque(c->raw);
            for (uint64_t i = 0; i < n; i++)
                sum += raw[i];
        }
        c->ns[2][k] = ns_per(t0, n * np);
        t0 = eleos_tsc();
        for (uint64_t ps = 0; ps < np; ps++) {
            eleos_suvm_ptr_init(&p, c->s, c->base);
            for (uint64_t pg = 0; pg < data_size / 4096; pg++) {
                if (eleos_suvm_ptr_deref(&p, &v))
                    return -1;
                const uint64_t *w = v;
                for (unsigned i = 0; i < 512; i++)
                    sum += w[i];
                eleos_suvm_ptr_add(&p, 4096);
            }
            eleos_suvm_ptr_fini(&p);
        }
        c->ns[3][k] = ns_per(t0, n * np);
        /* random */
        uint64_t m = n / 4 * np;
        t0 = eleos_tsc();
        sum += raw_random(c->raw, n, m, 11);
        c->ns[4][k] = ns_per(t0, m);
        t0 = eleos_tsc();
        if (spointer_random(c, n, m, 11, false, &sum))
            return -1;
        c->ns[5][k] = ns_per(t0, m);
        /* seq-word against the scalar raw loop; the spointer loop is run again, next to
         * it, so both rows see the same machine state. */
        t0 = eleos_tsc();
        for (uint64_t ps = 0; ps < np; ps++)
            sum += raw_scalar_sum(opaque(c->raw), n);
        c->ns[6][k] = ns_per(t0, n * np);
        t0 = eleos_tsc();
        if (spointer_scan(c, n, np, &sum))
            return -1;
        c->ns[7][k] = ns_per(t0, n * np);
        /* random+hint */
        t0 = eleos_tsc();
        sum += raw_random(c->raw, n, m, 13);
        c->ns[8][k] = ns_per(t0, m);
        t0 = eleos_tsc();
        if (spointer_random(c, n, m, 13, true, &sum))
            return -1;
        c->ns[9][k] = ns_per(t0, m);
        c->sink += sum;
    }
    return 0;
}

static long teardown(void *arg) {
    struct ctx *c = arg;
    eleos_enclave_free(c->enc, c->raw);
    eleos_suvm_destroy(c->s);
    return 0;
}

int main(int argc, char **argv) {
    const char *csv_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            data_size = 8 * MiB;
        } else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
            data_size = strtoull(argv[++i], NULL, 0) * MiB;
            if (data_size < MiB || data_size > 1024 * MiB) {
                fprintf(stderr, "--mib: 1 to 1024\n");
                return 2;
            }
            passes = data_size < 32 * MiB ? 32 * MiB / data_size : 1;
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--mib N] [--csv FILE]\n", argv[0]);
            return 2;
        }
    }
    FILE *csv = NULL;
    if (csv_path && !(csv = fopen(csv_path, "w"))) {
        perror(csv_path);
        return 1;
    }
    struct ctx c = {0};
    c.enc = suvm_t_enclave(1ull << 30, 93 * MiB, false);
    if (suvm_t_run(c.enc, setup, &c) || suvm_t_run(c.enc, run, &c)) {
        fprintf(stderr, "failed\n");
        return 1;
    }
    struct eleos_enclave_config ec;
    eleos_enclave_get_config(c.enc, &ec);
    static const char *const names[] = {"seq-word", "seq-span", "random", "seq-word-scalar",
                                        "random+hint"};
    printf("# bench_suvm_spointer: %llu MiB resident in the page cache (%llu passes per run), "
           "in enclave, median of %d\n",
           (unsigned long long)(data_size / MiB), (unsigned long long)passes, RUNS);
    printf("# cost model: ecall %llu ocall %llu syscall %llu epc_fault %llu target cycles, "
           "epc_evict %llu extra (no exits or faults happen here); TSC %.2f GHz\n",
           (unsigned long long)ec.cost.ecall_cycles, (unsigned long long)ec.cost.ocall_cycles,
           (unsigned long long)ec.cost.syscall_cycles,
           (unsigned long long)ec.cost.epc_fault_cycles,
           (unsigned long long)ec.cost.epc_evict_cycles, eleos_tsc_ghz());
    if (csv)
        fprintf(csv, "test,data_mib,raw_ns_per_word,spointer_ns_per_word,overhead_pct\n");
    /* Overhead: the median of the per-run ratios (raw and spointer run back to back in
     * each run, so drift on a shared VM affects both alike), next to the median times. */
    for (int t = 0; t < 5; t++) {
        double ratio[RUNS];
        for (int k = 0; k < RUNS; k++)
            ratio[k] = c.ns[2 * t + 1][k] / c.ns[2 * t][k];
        qsort(ratio, RUNS, sizeof(double), bench_cmp_double);
        qsort(c.ns[2 * t], RUNS, sizeof(double), bench_cmp_double);
        qsort(c.ns[2 * t + 1], RUNS, sizeof(double), bench_cmp_double);
        double raw = c.ns[2 * t][RUNS / 2], sp = c.ns[2 * t + 1][RUNS / 2];
        double ovh = (ratio[RUNS / 2] - 1) * 100;
        printf("%-15s raw %6.3f ns/word  spointer %6.3f ns/word  overhead %+6.1f %%\n",
               names[t], raw, sp, ovh);
        if (csv)
            fprintf(csv, "%s,%llu,%.4f,%.4f,%.2f\n", names[t],
                    (unsigned long long)(data_size / MiB), raw, sp, ovh);
    }
    struct eleos_enclave_stats es;
    eleos_enclave_stats(c.enc, &es);
    printf("# enclave: epc_faults %llu (sink %llu)\n", (unsigned long long)es.epc_faults,
           (unsigned long long)(c.sink & 1));
    if (csv)
        fclose(csv);
    (void)suvm_t_run(c.enc, teardown, &c);
    eleos_enclave_destroy(c.enc);
    return 0;
}
