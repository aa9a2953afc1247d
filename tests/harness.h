/*
 * A tiny test harness: each test program is a set of functions run by TEST_MAIN; CHECK
 * records a failure with its location and goes on; the program exits 1 if anything failed,
 * 77 if it asked to be skipped (ctest's skip code), 0 otherwise.
 */
#ifndef ELEOS_TEST_HARNESS_H
#define ELEOS_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_failures;
static int harness_checks;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        harness_checks++;                                                                   \
        if (!(cond)) {                                                                      \
            harness_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                                   \
    } while (0)

#define CHECK_EQ(a, b)                                                                      \
    do {                                                                                    \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                     \
        harness_checks++;                                                                   \
        if (check_a_ != check_b_) {                                                         \
            harness_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n", __FILE__,  \
                    __LINE__, #a, #b, check_a_, check_b_);                                  \
        }                                                                                   \
    } while (0)

/* Stops the test program when continuing makes no sense (setup failed). */
#define REQUIRE(cond)                                                                       \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);      \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

#define SKIP(why)                                                                           \
    do {                                                                                    \
        fprintf(stderr, "SKIP: %s\n", why);                                                 \
        exit(77);                                                                           \
    } while (0)

typedef void (*harness_fn)(void);
struct harness_case {
    const char *name;
    harness_fn fn;
};

static inline int harness_run(const char *prog, const struct harness_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int before = harness_failures;
        cases[i].fn();
        fprintf(stderr, "%s %s: %s\n", harness_failures == before ? "ok  " : "FAIL", prog,
                cases[i].name);
    }
    fprintf(stderr, "%s: %d checks, %d failed\n", prog, harness_checks, harness_failures);
    return harness_failures ? 1 : 0;
}

#define TEST_CASE(fn) {#fn, fn}
#define TEST_MAIN(...)                                                                      \
    int main(void) {                                                                        \
        static const struct harness_case cases_[] = {__VA_ARGS__};                          \
        return harness_run(__FILE__, cases_, sizeof cases_ / sizeof cases_[0]);             \
    }

#endif
