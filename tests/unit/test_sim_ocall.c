/*
 * test_sim_ocall — host functions with buffers (eleos_ocall_buffers): [in] bytes reach the
 * host as a copy in untrusted memory, [out] bytes come back bounded by the room given, and
 * the host function never sees an enclave address. Hostile host functions lie about the
 * length they wrote (one byte over, SIZE_MAX) or scribble on the [in] copy: the call fails
 * with -EIO and leaves the caller's buffer untouched, or the enclave's bytes stay intact.
 * Exit counts: the first call on a thread two (the scratch block, the OCALL), later ones one.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "eleos/enclave.h"
#include "harness.h"
#include "sim_testutil.h"

/* The TSan runtime makes system calls of its own inside enclave code (counted as exits). */
#if defined(__SANITIZE_THREAD__)
#define EXACT_EXITS 0
#else
#define EXACT_EXITS 1
#endif

static struct eleos_enclave *enc;
static bool saw_enclave_address;

static void note_addresses(const struct eleos_ocall_args *a) {
    if (eleos_enclave_containing(a) || (a->in_size && eleos_enclave_containing(a->in)) ||
        (a->out_size && eleos_enclave_containing(a->out)))
        saw_enclave_address = true;
}

/* Honest: upper-cases [in] into [out], returns 42 + the user integer. */
static long h_upper(struct eleos_ocall_args *a) {
    note_addresses(a);
    size_t n = a->in_size < a->out_size ? a->in_size : a->out_size;
    const char *in = a->in;
    char *out = a->out;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(in[i] >= 'a' && in[i] <= 'z' ? in[i] - 32 : in[i]);
    a->out_len = n;
    return 42 + (long)(uintptr_t)a->user;
}

/* Liars: claim more than the room given. */
static long h_over_by_one(struct eleos_ocall_args *a) {
    memset(a->out, 'X', a->out_size);
    a->out_len = a->out_size + 1;
    return 0;
}
static long h_huge(struct eleos_ocall_args *a) {
    a->out_len = SIZE_MAX;
    return 0;
}
/* Scribbles on its copy of the [in] bytes. */
static long h_scribble_in(struct eleos_ocall_args *a) {
    memset((void *)a->in, '!', a->in_size);
    a->out_len = 0;
    return 0;
}

struct res {
    int rc[8];
    long ret[8];
    size_t len[8];
    char out[8][16];
    uint64_t exits[8];
    char in_after[16];
};

static uint64_t exits(void) {
    static struct eleos_enclave_stats st;
    eleos_enclave_stats(enc, &st);
    return st.ocalls + st.syscall_exits;
}

static long e_calls(void *arg) {
    struct res *r = arg;
    char in[16] = "hello, world";
    for (int i = 0; i < 8; i++)
        memset(r->out[i], '.', sizeof r->out[i]);
    struct eleos_ocall_buf b = {.in = in, .in_size = 12, .out = r->out[0], .out_size = 16};
    uint64_t t = exits();
    r->rc[0] = eleos_ocall_buffers(h_upper, (void *)(uintptr_t)1, &b, &r->ret[0]);
    r->len[0] = b.out_len;
    r->exits[0] = exits() - t;
    /* [in, out] in one buffer; the second call reuses the scratch block. */
    char io[16] = "abc";
    b = (struct eleos_ocall_buf){.in = io, .in_size = 3, .out = io, .out_size = 3};
    t = exits();
    r->rc[1] = eleos_ocall_buffers(h_upper, NULL, &b, &r->ret[1]);
    r->exits[1] = exits() - t;
    memcpy(r->out[1], io, 3);
    /* Lying lengths: nothing copied, out_len left as it was. */
    b = (struct eleos_ocall_buf){.out = r->out[2], .out_size = 8, .out_len = 77};
    r->rc[2] = eleos_ocall_buffers(h_over_by_one, NULL, &b, &r->ret[2]);
    r->len[2] = b.out_len;
    b = (struct eleos_ocall_buf){.out = r->out[3], .out_size = 8, .out_len = 77};
    r->rc[3] = eleos_ocall_buffers(h_huge, NULL, &b, &r->ret[3]);
    r->len[3] = b.out_len;
    /* The host's copy of [in] is its own: the enclave's bytes stay. */
    b = (struct eleos_ocall_buf){.in = in, .in_size = 12};
    r->rc[4] = eleos_ocall_buffers(h_scribble_in, NULL, &b, &r->ret[4]);
    memcpy(r->in_after, in, sizeof in);
    /* Bad arguments. */
    b = (struct eleos_ocall_buf){.in = NULL, .in_size = 4};
    r->rc[5] = eleos_ocall_buffers(h_upper, NULL, &b, NULL);
    b = (struct eleos_ocall_buf){.out = r->out[6], .out_size = (1ull << 30) + 1};
    r->rc[6] = eleos_ocall_buffers(h_upper, NULL, &b, NULL);
    /* Larger than the block so far: it grows (one more exit) and the call works. */
    static char big_in[100000], big_out[100000];
    memset(big_in, 'q', sizeof big_in);
    b = (struct eleos_ocall_buf){big_in, sizeof big_in, big_out, sizeof big_out, 0};
    t = exits();
    r->rc[7] = eleos_ocall_buffers(h_upper, NULL, &b, &r->ret[7]);
    r->exits[7] = exits() - t;
    r->len[7] = b.out_len;
    if (r->rc[7] == 0 && (big_out[0] != 'Q' || big_out[sizeof big_out - 1] != 'Q'))
        r->rc[7] = -1000;
    eleos_ocall_buffers_release();
    return 0;
}

static void test_buffers_in_enclave(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 16 * MiB);
    enc = sim_test_create(&cfg);
    static struct res r;
    long rv;
    REQUIRE(eleos_enclave_ecall(enc, e_calls, &r, &rv) == 0);
    CHECK(!saw_enclave_address);
    CHECK_EQ(r.rc[0], 0);
    CHECK_EQ(r.ret[0], 43);
    CHECK_EQ(r.len[0], 12);
    CHECK(memcmp(r.out[0], "HELLO, WORLD....", 16) == 0);
    CHECK_EQ(r.rc[1], 0);
    CHECK(memcmp(r.out[1], "ABC", 3) == 0);
    CHECK_EQ(r.rc[2], -EIO);
    CHECK_EQ(r.len[2], 77);
    CHECK(memcmp(r.out[2], "................", 16) == 0); /* untouched */
    CHECK_EQ(r.rc[3], -EIO);
    CHECK_EQ(r.len[3], 77);
    CHECK(memcmp(r.out[3], "................", 16) == 0);
    CHECK_EQ(r.rc[4], 0);
    CHECK(memcmp(r.in_after, "hello, world", 12) == 0);
    CHECK_EQ(r.rc[5], -EINVAL);
    CHECK_EQ(r.rc[6], -EINVAL);
    CHECK_EQ(r.rc[7], 0);
    CHECK_EQ(r.len[7], 100000);
    if (EXACT_EXITS) {
        CHECK_EQ(r.exits[0], 2); /* the thread's scratch block (mmap), then the OCALL */
        CHECK_EQ(r.exits[1], 1); /* the OCALL only */
        CHECK_EQ(r.exits[7], 3); /* a larger block (mmap, munmap of the old), the OCALL */
    }
    eleos_enclave_destroy(enc);
}

static void test_buffers_in_host_mode(void) {
    char in[4] = "xyz", out[4] = {0};
    struct eleos_ocall_buf b = {in, 3, out, 4, 0};
    long ret = 0;
    CHECK_EQ(eleos_ocall_buffers(h_upper, NULL, &b, &ret), 0);
    CHECK(ret == 42 && b.out_len == 3 && memcmp(out, "XYZ", 3) == 0);
    b = (struct eleos_ocall_buf){.out = out, .out_size = 4};
    CHECK_EQ(eleos_ocall_buffers(h_over_by_one, NULL, &b, &ret), -EIO);
    eleos_ocall_buffers_release();
}

TEST_MAIN(TEST_CASE(test_buffers_in_enclave), TEST_CASE(test_buffers_in_host_mode))
