/*
 * exit_steps.h — what each call of a public header costs in exits (OCALLs plus trapped
 * system calls), recorded step by step inside the enclave and checked afterwards against
 * the count the header documents. Shared by the rpc, suvm and ioq exit-count tests.
 */
#ifndef ELEOS_TEST_EXIT_STEPS_H
#define ELEOS_TEST_EXIT_STEPS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "eleos/enclave.h"
#include "harness.h"

#define EXIT_STEPS_MAX 80

struct exit_steps {
    struct eleos_enclave *enc; /* whose exits are counted                               */
    int n, failed;             /* failed: the first step whose call failed, 1-based     */
    const char *name[EXIT_STEPS_MAX];
    uint64_t documented[EXIT_STEPS_MAX];
    uint64_t exits[EXIT_STEPS_MAX];
};

static inline uint64_t exit_steps_now(struct eleos_enclave *e) {
    static struct eleos_enclave_stats st; /* large: not on the enclave stack */
    eleos_enclave_stats(e, &st);
    return st.ocalls + st.syscall_exits;
}

/* Runs stmt (0 on success) and records the exits it cost against doc, the documented
 * count. Recording needs no exit (no printing inside the enclave). */
#define EXIT_STEP(r, nm, doc, stmt)                                                         \
    do {                                                                                    \
        uint64_t t_ = exit_steps_now((r)->enc);                                             \
        int ok_ = (stmt) == 0;                                                              \
        uint64_t n_ = exit_steps_now((r)->enc);                                             \
        if ((r)->n < EXIT_STEPS_MAX) {                                                      \
            (r)->name[(r)->n] = (nm);                                                       \
            (r)->documented[(r)->n] = (doc);                                                \
            (r)->exits[(r)->n] = n_ - t_;                                                   \
            (r)->n++;                                                                       \
        }                                                                                   \
        if (!ok_ && !(r)->failed)                                                           \
            (r)->failed = (r)->n;                                                           \
    } while (0)

/* Back in host mode: every call succeeded, every step is printed (after prefix), and each
 * cost what its header says unless compare is false (a sanitizer's runtime adds exits). */
static inline void exit_steps_check(const struct exit_steps *r, const char *prefix,
                                    bool compare) {
    if (r->failed)
        fprintf(stderr, "  %sstep %s: the call failed\n", prefix, r->name[r->failed - 1]);
    CHECK_EQ(r->failed, 0);
    CHECK(r->n < EXIT_STEPS_MAX);
    for (int i = 0; i < r->n; i++) {
        fprintf(stderr, "  %s%-28s %llu exits\n", prefix, r->name[i],
                (unsigned long long)r->exits[i]);
        if (compare && r->exits[i] != r->documented[i]) {
            fprintf(stderr, "  %s: documented %llu exits\n", r->name[i],
                    (unsigned long long)r->documented[i]);
            CHECK(false);
        }
    }
}

#endif
