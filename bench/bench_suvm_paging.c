/*
 * bench_suvm_paging — the paper's SUVM experiment on the emulator.
 *
 * 4 KiB items read or written at random over data sets of 200 MB, 500 MB, 1 GB and 1.5 GB,
 * EPC 93 MiB, SUVM page cache 60 MiB, 1 and 2 threads, three back ends side by side:
 *   suvm  — items in SUVM inside the enclave (software paging, no exits);
 *   sgx   — items in the enclave heap, paged by the emulated SGX driver (EPC faults);
 *   host  — items in plain host memory (no enclave): the ceiling.
 * with the cost model on and off. Ablations: clean drop off; small items (256 B, 1 KiB) read
 * with sub-page direct access versus whole-page faults. Plus the fault-cost check: an SUVM
 * major fault against one 4 KiB AES-GCM open plus seal.
 *
 * Every figure is the median of REPEAT runs of OPS operations per thread, after a warm-up
 * run. Usage: bench_suvm_paging [--quick] [--sizes MB,MB,...] [--ops N]
 *   --quick: 64 MB and 128 MB data, EPC 24 MiB, cache 16 MiB, fewer operations.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/gcm.h"
#include "eleos/enclave.h"
#include "eleos/suvm.h"
#include "suvm/suvm_testutil.h"

#define MiB SUVM_T_MIB
#define MB  1000000ull
#define REPEAT 3

enum backend { B_SUVM, B_SGX, B_HOST };
static const char *const backend_name[] = {"suvm", "sgx", "host"};

static uint64_t epc_size = 93 * MiB, cache_size = 60 * MiB;
static uint64_t ops_per_thread = 20000;
static bool quick;

struct job {
    enum backend b;
    struct eleos_suvm *s;
    uint64_t base;  /* SUVM address of the data */
    uint8_t *mem;   /* sgx / host: the data     */
    uint64_t size;  /* data bytes               */
    size_t item;    /* item bytes               */
    bool write, direct;
    uint64_t ops, seed;
    long errors;
    pthread_t th;
    struct eleos_enclave *enc;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long run_ops(void *arg) {
    struct job *j = arg;
    static _Thread_local uint8_t buf[4096];
    uint64_t rng = j->seed, nitems = j->size / j->item;
    long errors = 0;
    for (uint64_t k = 0; k < j->ops; k++) {
        uint64_t off = (suvm_t_rand(&rng) % nitems) * j->item;
        if (j->b == B_SUVM) {
            int r;
            if (j->write)
                r = j->direct ? eleos_suvm_write_direct(j->s, j->base + off, buf, j->item)
                              : eleos_suvm_write(j->s, j->base + off, buf, j->item);
            else
                r = j->direct ? eleos_suvm_read_direct(j->s, j->base + off, buf, j->item)
                              : eleos_suvm_read(j->s, j->base + off, buf, j->item);
            errors += r != 0;
        } else if (j->write) {
            buf[0] = (uint8_t)k;
            memcpy(j->mem + off, buf, j->item);
        } else {
            memcpy(buf, j->mem + off, j->item);
            errors += buf[0] == 0xff && buf[1] == 0xfe; /* keeps the copy */
        }
    }
    return errors;
}

static void *thread_main(void *arg) {
    struct job *j = arg;
    j->errors = j->enc ? suvm_t_run(j->enc, run_ops, j) : run_ops(j);
    return NULL;
}

/* Runs nthreads copies of proto; returns seconds. */
static double timed(struct job *proto, int nthreads) {
    struct job jobs[2];
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++) {
        jobs[i] = *proto;
        jobs[i].seed = proto->seed * 7 + (uint64_t)i;
        if (pthread_create(&jobs[i].th, NULL, thread_main, &jobs[i]))
            abort();
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(jobs[i].th, NULL);
        if (jobs[i].errors)
            fprintf(stderr, "warning: %ld errors in %s run\n", jobs[i].errors,
                    backend_name[proto->b]);
    }
    return now_s() - t0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median µs per operation (per thread) over REPEAT runs after one warm-up. */
static double measure(struct job *proto, int nthreads) {
    double t[REPEAT];
    proto->seed = 1;
    timed(proto, nthreads);
    for (int r = 0; r < REPEAT; r++) {
        proto->seed = (uint64_t)r + 2;
        t[r] = timed(proto, nthreads);
    }
    qsort(t, REPEAT, sizeof t[0], cmp_d);
    return t[REPEAT / 2] * 1e6 / (double)proto->ops;
}

/* --- setup inside the enclave ----------------------------------------------------------- */

struct setup {
    uint64_t size;
    size_t subpage;
    bool clean_drop;
    struct eleos_suvm *s;
    uint64_t base;
    uint8_t *mem;
    struct eleos_enclave *enc;
};

static long setup_suvm(void *arg) {
    struct setup *st = arg;
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = cache_size;
    cfg.backing_size = st->size + 2 * MiB;
    cfg.subpage_size = st->subpage;
    cfg.clean_drop = st->clean_drop;
    int r = eleos_suvm_create(&cfg, &st->s);
    if (r)
        return r;
    r = eleos_suvm_alloc(st->s, st->size, &st->base);
    if (r)
        return r;
    static uint8_t page[4096];
    for (uint64_t off = 0; off < st->size; off += 4096) {
        memset(page, (int)(off >> 12), sizeof page);
        r = eleos_suvm_write(st->s, st->base + off, page, 4096);
        if (r)
            return r;
    }
    return 0;
}

static long teardown_suvm(void *arg) {
    struct setup *st = arg;
    eleos_suvm_destroy(st->s);
    return 0;
}

static long setup_sgx(void *arg) {
    struct setup *st = arg;
    st->mem = eleos_enclave_malloc(st->enc, st->size);
    if (!st->mem)
        return -ENOMEM;
    for (uint64_t off = 0; off < st->size; off += 4096)
        memset(st->mem + off, (int)(off >> 12), 4096);
    return 0;
}

static long teardown_sgx(void *arg) {
    struct setup *st = arg;
    eleos_enclave_free(st->enc, st->mem);
    return 0;
}

static struct eleos_enclave *make_enclave(uint64_t data, bool model) {
    uint64_t elrange = ((data + cache_size + 512 * MiB) + (64 * MiB - 1)) & ~(64 * MiB - 1);
    return suvm_t_enclave(elrange, epc_size, model);
}

static void print_model(struct eleos_enclave *e) {
    struct eleos_enclave_config c;
    eleos_enclave_get_config(e, &c);
    printf("# cost model: ecall %llu ocall %llu syscall %llu epc_fault %llu epc_evict %llu "
           "cycles extra; TSC %.2f GHz\n",
           (unsigned long long)c.cost.ecall_cycles, (unsigned long long)c.cost.ocall_cycles,
           (unsigned long long)c.cost.syscall_cycles,
           (unsigned long long)c.cost.epc_fault_cycles,
           (unsigned long long)c.cost.epc_evict_cycles, eleos_tsc_ghz());
}

static void row(uint64_t size, const char *what, int threads, bool write, int model,
                double us) {
    printf("%6llu MB  %-16s %d thr  %-5s model=%-3s  %9.2f us/op  %10.0f ops/s\n",
           (unsigned long long)(size / MB), what, threads, write ? "write" : "read",
           model < 0 ? "n/a" : model ? "on" : "off", us, threads * 1e6 / us);
    fflush(stdout);
}

/* Results kept for the summary: [model][backend][threads-1][write] at the "key" size. */
static double key_us[2][3][2][2];
static uint64_t key_size;

static void run_size(uint64_t size) {
    struct job proto = {.size = size, .item = 4096, .ops = ops_per_thread};
    for (int model = 1; model >= 0; model--) {
        /* SUVM. */
        struct eleos_enclave *e = make_enclave(size, model);
        if (size == key_size || key_size == 0)
            print_model(e);
        struct setup st = {.size = size, .clean_drop = true, .enc = e};
        if (suvm_t_run(e, setup_suvm, &st)) {
            fprintf(stderr, "suvm setup failed at %llu MB\n", (unsigned long long)(size / MB));
            exit(1);
        }
        proto.b = B_SUVM;
        proto.s = st.s;
        proto.base = st.base;
        proto.enc = e;
        eleos_enclave_stats_reset(e); /* count only the measured work, not the setup */
        for (int thr = 1; thr <= 2; thr++) {
            for (int w = 0; w <= 1; w++) {
                proto.write = w;
                double us = measure(&proto, thr);
                row(size, "suvm", thr, w, model, us);
                if (size == key_size)
                    key_us[model][B_SUVM][thr - 1][w] = us;
            }
        }
        struct eleos_enclave_stats es;
        eleos_enclave_stats(e, &es);
        printf("#   suvm enclave: syscall_exits %llu epc_faults %llu\n",
               (unsigned long long)es.syscall_exits, (unsigned long long)es.epc_faults);
        (void)suvm_t_run(e, teardown_suvm, &st);
        eleos_enclave_destroy(e);

        /* Emulated SGX paging. */
        e = make_enclave(size, model);
        st = (struct setup){.size = size, .enc = e};
        if (suvm_t_run(e, setup_sgx, &st)) {
            fprintf(stderr, "sgx setup failed\n");
            exit(1);
        }
        proto.b = B_SGX;
        proto.mem = st.mem;
        for (int thr = 1; thr <= 2; thr++) {
            for (int w = 0; w <= 1; w++) {
                proto.write = w;
                double us = measure(&proto, thr);
                row(size, "sgx", thr, w, model, us);
                if (size == key_size)
                    key_us[model][B_SGX][thr - 1][w] = us;
            }
        }
        (void)suvm_t_run(e, teardown_sgx, &st);
        eleos_enclave_destroy(e);
    }
    /* Host memory (no enclave, no model). */
    uint8_t *mem = malloc(size);
    if (!mem)
        exit(1);
    memset(mem, 1, size);
    proto.b = B_HOST;
    proto.mem = mem;
    proto.enc = NULL;
    for (int thr = 1; thr <= 2; thr++) {
        for (int w = 0; w <= 1; w++) {
            proto.write = w;
            double us = measure(&proto, thr);
            row(size, "host", thr, w, -1, us);
            if (size == key_size)
                key_us[0][B_HOST][thr - 1][w] = key_us[1][B_HOST][thr - 1][w] = us;
        }
    }
    free(mem);
}

/* Ablations at one size, model on: clean drop off; sub-page direct access. */
static void ablations(uint64_t size) {
    printf("\n# ablations at %llu MB, model on, 1 thread\n", (unsigned long long)(size / MB));
    struct job proto = {.size = size, .item = 4096, .ops = ops_per_thread, .b = B_SUVM};
    struct eleos_enclave *e = make_enclave(size, true);
    struct setup st = {.size = size, .clean_drop = false, .enc = e};
    if (suvm_t_run(e, setup_suvm, &st))
        exit(1);
    proto.s = st.s;
    proto.base = st.base;
    proto.enc = e;
    proto.write = false;
    row(size, "suvm no-clean-drop", 1, false, 1, measure(&proto, 1));
    (void)suvm_t_run(e, teardown_suvm, &st);
    eleos_enclave_destroy(e);

    static const size_t items[] = {256, 1024};
    for (int k = 0; k < 2; k++) {
        char what[64];
        for (int mode = 0; mode < 2; mode++) { /* 0: page mode faults, 1: sub-page direct */
            e = make_enclave(size, true);
            st = (struct setup){.size = size, .clean_drop = true, .enc = e,
                                .subpage = mode ? items[k] : 0};
            if (suvm_t_run(e, setup_suvm, &st))
                exit(1);
            proto.s = st.s;
            proto.base = st.base;
            proto.enc = e;
            proto.item = items[k];
            proto.direct = mode;
            for (int w = 0; w <= 1; w++) {
                proto.write = w;
                snprintf(what, sizeof what, "suvm %s %zuB", mode ? "direct" : "page", items[k]);
                row(size, what, 1, w, 1, measure(&proto, 1));
            }
            (void)suvm_t_run(e, teardown_suvm, &st);
            eleos_enclave_destroy(e);
        }
        e = make_enclave(size, true);
        st = (struct setup){.size = size, .enc = e};
        if (suvm_t_run(e, setup_sgx, &st))
            exit(1);
        proto.b = B_SGX;
        proto.mem = st.mem;
        for (int w = 0; w <= 1; w++) {
            proto.write = w;
            snprintf(what, sizeof what, "sgx %zuB", items[k]);
            row(size, what, 1, w, 1, measure(&proto, 1));
        }
        (void)suvm_t_run(e, teardown_sgx, &st);
        eleos_enclave_destroy(e);
        proto.b = B_SUVM;
        proto.direct = false;
    }
}

/* --- fault cost: a major fault against one 4 KiB AES-GCM open + seal -------------------- */

struct fault_job {
    struct eleos_suvm *s;
    uint64_t base, size, ops;
    bool dirty;
    double us;
};

static long fault_ops(void *arg) {
    struct fault_job *f = arg;
    uint64_t rng = 99, n = f->size / 4096;
    uint64_t t0 = eleos_tsc();
    for (uint64_t k = 0; k < f->ops; k++) {
        struct eleos_suvm_ptr p;
        void *v;
        eleos_suvm_ptr_init(&p, f->s, f->base + (suvm_t_rand(&rng) % n) * 4096);
        if (f->dirty) {
            if (eleos_suvm_ptr_deref_w(&p, &v) == 0)
                (*(uint8_t *)v)++;
        } else if (eleos_suvm_ptr_deref(&p, &v) == 0 && *(uint8_t *)v == 0xfe) {
            f->ops++;
        }
        eleos_suvm_ptr_fini(&p);
    }
    f->us = (double)(eleos_tsc() - t0) / eleos_tsc_ghz() / 1e3 / (double)f->ops;
    return 0;
}

static void fault_cost(void) {
    /* AES-GCM reference. */
    struct gcm g;
    uint8_t key[16] = {1}, iv[12] = {0}, tag[16];
    static uint8_t a[4096], b[4096];
    if (gcm_init(&g, key, 16))
        exit(1);
    double best_seal = 1e9, best_open = 1e9;
    for (int r = 0; r < 5; r++) {
        uint64_t t0 = eleos_tsc();
        for (int i = 0; i < 20000; i++) {
            iv[0] = (uint8_t)i;
            if (gcm_seal(&g, iv, iv, 12, a, b, 4096, tag))
                exit(1);
        }
        uint64_t t1 = eleos_tsc();
        for (int i = 0; i < 20000; i++)
            if (gcm_open(&g, iv, iv, 12, b, a, 4096, tag))
                exit(1);
        uint64_t t2 = eleos_tsc();
        double s = (double)(t1 - t0) / eleos_tsc_ghz() / 1e3 / 20000;
        double o = (double)(t2 - t1) / eleos_tsc_ghz() / 1e3 / 20000;
        best_seal = s < best_seal ? s : best_seal;
        best_open = o < best_open ? o : best_open;
    }
    gcm_fini(&g);
    uint64_t size = quick ? 64 * MiB : 512 * MiB;
    struct eleos_enclave *e = make_enclave(size, true);
    struct setup st = {.size = size, .clean_drop = true, .enc = e};
    if (suvm_t_run(e, setup_suvm, &st))
        exit(1);
    struct fault_job fj = {.s = st.s, .base = st.base, .size = size, .ops = 50000};
    /* Per major fault: time per access divided by the share of accesses that faulted
     * (a hit costs tens of ns, so this slightly overstates the fault). */
    double clean[REPEAT], dirty[REPEAT];
    struct eleos_suvm_stats ss;
    for (int r = 0; r < REPEAT; r++) {
        fj.dirty = false;
        eleos_suvm_stats_reset(st.s);
        (void)suvm_t_run(e, fault_ops, &fj);
        eleos_suvm_stats(st.s, &ss);
        clean[r] = fj.us * (double)fj.ops / (double)ss.major_faults;
        fj.dirty = true;
        eleos_suvm_stats_reset(st.s);
        (void)suvm_t_run(e, fault_ops, &fj);
        eleos_suvm_stats(st.s, &ss);
        dirty[r] = fj.us * (double)fj.ops / (double)ss.major_faults;
    }
    qsort(clean, REPEAT, sizeof clean[0], cmp_d);
    qsort(dirty, REPEAT, sizeof dirty[0], cmp_d);
    double hit = (double)ss.hits / (double)(ss.hits + ss.major_faults + ss.minor_faults);
    printf("\n# fault cost (1 thread, %llu MB data, %llu MiB cache, hit rate %.3f)\n",
           (unsigned long long)(size / MB), (unsigned long long)(cache_size / MiB), hit);
    printf("aes-gcm-128 4 KiB: seal %.2f us, open %.2f us, open+seal %.2f us\n", best_seal,
           best_open, best_seal + best_open);
    printf("suvm major fault, clean victim (open + drop): %.2f us\n", clean[REPEAT / 2]);
    printf("suvm major fault, dirty victim (open + seal): %.2f us = %.2fx (open+seal)\n",
           dirty[REPEAT / 2], dirty[REPEAT / 2] / (best_seal + best_open));
    (void)suvm_t_run(e, teardown_suvm, &st);
    eleos_enclave_destroy(e);
}

int main(int argc, char **argv) {
    uint64_t sizes[8] = {200 * MB, 500 * MB, 1000 * MB, 1500 * MB};
    int nsizes = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
            epc_size = 24 * MiB;
            cache_size = 16 * MiB;
            ops_per_thread = 5000;
            sizes[0] = 64 * MB;
            sizes[1] = 128 * MB;
            nsizes = 2;
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *t = strtok(argv[++i], ","); t && nsizes < 8; t = strtok(NULL, ","))
                sizes[nsizes++] = strtoull(t, NULL, 10) * MB;
        } else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
            ops_per_thread = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--quick] [--sizes MB,...] [--ops N]\n", argv[0]);
            return 2;
        }
    }
    key_size = nsizes >= 3 ? sizes[2] : sizes[nsizes - 1];
    printf("# bench_suvm_paging: EPC %llu MiB, SUVM cache %llu MiB, %llu ops/thread, "
           "median of %d\n",
           (unsigned long long)(epc_size / MiB), (unsigned long long)(cache_size / MiB),
           (unsigned long long)ops_per_thread, REPEAT);
    fault_cost();
    printf("\n# random 4 KiB items\n");
    for (int i = 0; i < nsizes; i++)
        run_size(sizes[i]);
    ablations(key_size);
    printf("\n# summary at %llu MB (SUVM speed-up over emulated SGX paging)\n",
           (unsigned long long)(key_size / MB));
    for (int model = 1; model >= 0; model--)
        for (int thr = 0; thr < 2; thr++)
            for (int w = 0; w < 2; w++)
                printf("model %-3s %d thr %-5s: suvm %.2f us, sgx %.2f us, host %.2f us -> "
                       "%.2fx\n",
                       model ? "on" : "off", thr + 1, w ? "write" : "read",
                       key_us[model][B_SUVM][thr][w], key_us[model][B_SGX][thr][w],
                       key_us[model][B_HOST][thr][w],
                       key_us[model][B_SGX][thr][w] / key_us[model][B_SUVM][thr][w]);
    return 0;
}
