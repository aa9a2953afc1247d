/*
 * One enclave of the multi-enclave experiment (bench/bench_multi.py, docs/results.md): the
 * SUVM random-access microbenchmark (random 4 KiB item reads, as bench_suvm_paging's read
 * rows) in an enclave on a named platform EPC, so that several processes running this
 * program compete for one EPC as enclaves of one machine do.
 *
 * usage: bench_suvm_multi --platform NAME --mode sgx|fixed|coord --mib N [--seconds S]
 *                         [--capacity MIB] [--cost on|off] [--seed N]
 *
 *   sgx    the data on the enclave heap: the emulated driver pages it
 *   fixed  the data in SUVM, its cache sized once as if the enclave were alone on the
 *          platform (ELEOS_SUVM_SIZING_FIXED with an auto size): uncoordinated
 *   coord  the data in SUVM, the cache coordinated with the platform (the default for an
 *          auto size): it follows the enclave's share as enclaves come and go
 *
 * It loads the data (every page written), prints "ready" and waits for a line on stdin (the
 * driver starts every enclave at once), reads random items for S seconds and prints one
 * line of key=value results (ops, ops_per_s, the enclave's EPC faults and SUVM major faults
 * during the run, the cache size at the end, wrong items). Exit 0, 1 on an error, 2 on bad
 * usage, 77 when the kernel cannot run enclaves.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "eleos/enclave.h"
#include "eleos/suvm.h"

#define PAGE 4096u
#define MiB (1ull << 20)

enum mode { M_SGX, M_FIXED, M_COORD };

struct job {
    enum mode mode;
    uint64_t bytes;
    uint64_t seconds_cycles;
    uint64_t seed;
    uint8_t *heap;               /* sgx                                                  */
    struct eleos_suvm *s;        /* fixed, coord                                         */
    uint64_t base;
    uint64_t ops, bad, cycles;
};

static uint64_t rnd(uint64_t *st) {
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Item i's first word (the rest of the page is filler). */
static uint64_t tag(uint64_t i) {
    return i * 0x9e3779b97f4a7c15ull + 1;
}

static long setup(void *arg) {
    struct job *j = arg;
    static uint8_t page[PAGE];
    memset(page, 0xa5, sizeof page);
    if (j->mode == M_SGX) {
        j->heap = eleos_enclave_malloc(eleos_enclave_current(), j->bytes);
        if (!j->heap)
            return -ENOMEM;
        for (uint64_t i = 0; i < j->bytes / PAGE; i++) {
            memcpy(j->heap + i * PAGE, page, PAGE);
            memcpy(j->heap + i * PAGE, &(uint64_t){tag(i)}, 8);
        }
        return 0;
    }
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = ELEOS_SUVM_CACHE_AUTO;
    cfg.sizing = j->mode == M_FIXED ? ELEOS_SUVM_SIZING_FIXED : ELEOS_SUVM_SIZING_COORDINATED;
    cfg.backing_size = j->bytes + 2 * MiB;
    int r = eleos_suvm_create(&cfg, &j->s);
    if (r)
        return r;
    r = eleos_suvm_alloc(j->s, j->bytes, &j->base);
    for (uint64_t i = 0; !r && i < j->bytes / PAGE; i++) {
        memcpy(page, &(uint64_t){tag(i)}, 8);
        r = eleos_suvm_write(j->s, j->base + i * PAGE, page, PAGE);
    }
    return r;
}

/* Random whole-item reads until the time is up (the clock read every 64 items). */
static long run(void *arg) {
    struct job *j = arg;
    static uint8_t buf[PAGE];
    uint64_t n = j->bytes / PAGE, t0 = eleos_tsc(), ops = 0, bad = 0;
    while ((ops & 63) || eleos_tsc() - t0 < j->seconds_cycles) {
        uint64_t i = rnd(&j->seed) % n;
        if (j->mode == M_SGX) {
            memcpy(buf, j->heap + i * PAGE, PAGE);
        } else {
            int r = eleos_suvm_read(j->s, j->base + i * PAGE, buf, PAGE);
            if (r)
                return r;
        }
        uint64_t w;
        memcpy(&w, buf, 8);
        bad += w != tag(i);
        ops++;
    }
    j->cycles = eleos_tsc() - t0;
    j->ops = ops;
    j->bad = bad;
    return 0;
}

static long teardown(void *arg) {
    struct job *j = arg;
    if (j->s)
        eleos_suvm_destroy(j->s);
    if (j->heap)
        eleos_enclave_free(eleos_enclave_current(), j->heap);
    return 0;
}

static long suvm_stats(void *arg) {
    struct job *j = arg;
    struct eleos_suvm_stats *st = (struct eleos_suvm_stats *)&j[1];
    eleos_suvm_stats(j->s, st);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_suvm_multi --platform NAME --mode sgx|fixed|coord --mib N "
                    "[--seconds S] [--capacity MIB] [--cost on|off] [--seed N]\n");
    exit(2);
}

struct opts {
    const char *platform;
    enum mode mode;
    uint64_t mib, capacity_mib, seed;
    double seconds;
    bool cost;
};

static void parse(int argc, char **argv, struct opts *o) {
    static const struct option lo[] = {
        {"platform", 1, 0, 'p'}, {"mode", 1, 0, 'm'}, {"mib", 1, 0, 'n'},
        {"seconds", 1, 0, 's'},  {"capacity", 1, 0, 'c'}, {"cost", 1, 0, 'C'},
        {"seed", 1, 0, 'S'},     {0, 0, 0, 0}};
    *o = (struct opts){NULL, M_SGX, 0, 93, 1, 5.0, true};
    int c;
    bool mode_set = false;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'p': o->platform = optarg; break;
        case 'm':
            mode_set = true;
            if (!strcmp(optarg, "sgx")) o->mode = M_SGX;
            else if (!strcmp(optarg, "fixed")) o->mode = M_FIXED;
            else if (!strcmp(optarg, "coord")) o->mode = M_COORD;
            else usage();
            break;
        case 'n': o->mib = strtoull(optarg, NULL, 10); break;
        case 's': o->seconds = atof(optarg); break;
        case 'c': o->capacity_mib = strtoull(optarg, NULL, 10); break;
        case 'C': o->cost = strcmp(optarg, "off") != 0; break;
        case 'S': o->seed = strtoull(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (!o->platform || !mode_set || o->mib == 0 || o->mib > (64ull << 10) ||
        !(o->seconds > 0 && o->seconds < 3600) || o->capacity_mib < 1 || optind != argc)
        usage();
}

static struct eleos_enclave *make_enclave(const struct opts *o) {
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    if (!o->cost)
        eleos_cost_model_off(&cfg.cost);
    cfg.elrange_size = (o->mib * MiB + 512 * MiB + (64 * MiB - 1)) & ~(64 * MiB - 1);
    if (cfg.elrange_size < (4ull << 30))
        cfg.elrange_size = 4ull << 30;
    cfg.epc_size = 0; /* no limit of its own: the platform's capacity */
    cfg.epc_platform = o->platform;
    cfg.epc_platform_capacity = o->capacity_mib * MiB;
    cfg.name = o->mode == M_SGX ? "multi-sgx" : o->mode == M_FIXED ? "multi-fixed" : "multi-coord";
    struct eleos_enclave *e = NULL;
    int r = eleos_enclave_create(&cfg, &e);
    if (r == -ENOSYS)
        exit(77);
    if (r) {
        fprintf(stderr, "bench_suvm_multi: eleos_enclave_create: %s\n", strerror(-r));
        exit(1);
    }
    return e;
}

static int ecall(struct eleos_enclave *e, eleos_enclave_fn fn, void *arg, const char *what) {
    long ret = 0;
    int r = eleos_enclave_ecall(e, fn, arg, &ret);
    if (r || ret) {
        fprintf(stderr, "bench_suvm_multi: %s: %s\n", what, strerror(-(int)(r ? r : ret)));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct opts o;
    parse(argc, argv, &o);
    struct eleos_enclave *e = make_enclave(&o);
    struct {
        struct job j;
        struct eleos_suvm_stats st;
    } x;
    memset(&x, 0, sizeof x);
    struct job *j = &x.j;
    j->mode = o.mode;
    j->bytes = o.mib * MiB;
    j->seed = o.seed;
    j->seconds_cycles = (uint64_t)(o.seconds * eleos_tsc_ghz() * 1e9);
    if (ecall(e, setup, j, "load"))
        return 1;
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    struct eleos_enclave_stats before, after;
    uint64_t major0 = 0;
    if (j->s && ecall(e, suvm_stats, j, "stats") == 0)
        major0 = x.st.major_faults;
    eleos_enclave_stats(e, &before);
    if (ecall(e, run, j, "run"))
        return 1;
    eleos_enclave_stats(e, &after);
    uint64_t frames = 0, major = 0, shrinks = 0, grows = 0;
    if (j->s && ecall(e, suvm_stats, j, "stats") == 0) {
        frames = x.st.cache_frames;
        major = x.st.major_faults - major0;
        shrinks = x.st.resize_shrinks;
        grows = x.st.resize_grows;
    }
    double secs = (double)j->cycles / (eleos_tsc_ghz() * 1e9);
    printf("ops=%llu secs=%.3f ops_per_s=%.0f epc_faults=%llu suvm_major=%llu cache_mib=%.1f "
           "resize_shrinks=%llu resize_grows=%llu bad=%llu\n",
           (unsigned long long)j->ops, secs, (double)j->ops / secs,
           (unsigned long long)(after.epc_faults - before.epc_faults),
           (unsigned long long)major, (double)frames * PAGE / MiB,
           (unsigned long long)shrinks, (unsigned long long)grows, (unsigned long long)j->bad);
    fflush(stdout);
    int rc = ecall(e, teardown, j, "teardown");
    eleos_enclave_destroy(e);
    return rc || j->bad ? 1 : 0;
}
