/*
 * test_suvm_safety — SUVM refuses unsafe placement: create in host mode needs the explicit
 * host_mode flag (-EPERM without), host_mode inside an enclave is -EINVAL, and a host-mode
 * instance (page cache in host memory) used inside an ECALL is refused with -EPERM on every
 * way in, while it keeps working in host mode. A cache larger than the enclave's EPC is
 * clamped to fit, so SUVM work over more data than the EPC causes no EPC fault (no double
 * paging).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "eleos/suvm.h"
#include "harness.h"
#include "suvm/suvm_testutil.h"

#define MiB SUVM_T_MIB
#define PAGE 4096u

static struct eleos_suvm_config small_config(void) {
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = 1 * MiB;
    cfg.backing_size = 8 * MiB;
    return cfg;
}

static long c_create_host_mode_flag(void *arg) {
    (void)arg;
    struct eleos_suvm_config cfg = small_config();
    cfg.host_mode = true;
    struct eleos_suvm *s = NULL;
    return eleos_suvm_create(&cfg, &s);
}

static void test_host_mode_must_be_explicit(void) {
    struct eleos_suvm_config cfg = small_config();
    struct eleos_suvm *s = NULL;
    CHECK_EQ(eleos_suvm_create(&cfg, &s), -EPERM);
    CHECK(s == NULL);
    cfg.host_mode = true;
    CHECK_EQ(eleos_suvm_create(&cfg, &s), 0);
    eleos_suvm_destroy(s);
    struct eleos_enclave *e = suvm_t_enclave(256 * MiB, 32 * MiB, false);
    CHECK_EQ(suvm_t_run(e, c_create_host_mode_flag, NULL), -EINVAL);
    eleos_enclave_destroy(e);
}

struct misuse {
    struct eleos_suvm *s;
    uint64_t addr;
    int alloc, free_, read, write, memset_, memcmp_, rdirect, wdirect, flush, resize, deref;
};

static long c_misuse(void *arg) {
    struct misuse *m = arg;
    uint64_t a = 0;
    uint8_t buf[64] = {0};
    int cmp;
    m->alloc = eleos_suvm_alloc(m->s, 64, &a);
    m->free_ = eleos_suvm_free(m->s, m->addr);
    m->read = eleos_suvm_read(m->s, m->addr, buf, sizeof buf);
    m->write = eleos_suvm_write(m->s, m->addr, buf, sizeof buf);
    m->memset_ = eleos_suvm_memset(m->s, m->addr, 0, sizeof buf);
    m->memcmp_ = eleos_suvm_memcmp(m->s, m->addr, buf, sizeof buf, &cmp);
    m->rdirect = eleos_suvm_read_direct(m->s, m->addr, buf, sizeof buf);
    m->wdirect = eleos_suvm_write_direct(m->s, m->addr, buf, sizeof buf);
    m->flush = eleos_suvm_flush(m->s);
    m->resize = eleos_suvm_resize(m->s, 2 * MiB);
    struct eleos_suvm_ptr p;
    eleos_suvm_ptr_init(&p, m->s, m->addr);
    void *q = NULL;
    m->deref = eleos_suvm_ptr_deref(&p, &q);
    eleos_suvm_ptr_fini(&p);
    return 0;
}

static void test_host_instance_refused_in_enclave(void) {
    struct eleos_suvm_config cfg = small_config();
    cfg.host_mode = true;
    struct eleos_suvm *s = NULL;
    REQUIRE(eleos_suvm_create(&cfg, &s) == 0);
    uint64_t addr;
    REQUIRE(eleos_suvm_alloc(s, 64, &addr) == 0);
    static const uint8_t secret[16] = "host-side value";
    REQUIRE(eleos_suvm_write(s, addr, secret, sizeof secret) == 0);
    struct eleos_enclave *e = suvm_t_enclave(256 * MiB, 32 * MiB, false);
    struct misuse m = {.s = s, .addr = addr};
    CHECK_EQ(suvm_t_run(e, c_misuse, &m), 0);
    CHECK_EQ(m.alloc, -EPERM);
    CHECK_EQ(m.free_, -EPERM);
    CHECK_EQ(m.read, -EPERM);
    CHECK_EQ(m.write, -EPERM);
    CHECK_EQ(m.memset_, -EPERM);
    CHECK_EQ(m.memcmp_, -EPERM);
    CHECK_EQ(m.rdirect, -EPERM);
    CHECK_EQ(m.wdirect, -EPERM);
    CHECK_EQ(m.flush, -EPERM);
    CHECK_EQ(m.resize, -EPERM);
    CHECK_EQ(m.deref, -EPERM);
    eleos_enclave_destroy(e);
    /* Nothing was changed, and host mode still works. */
    uint8_t back[16];
    CHECK_EQ(eleos_suvm_read(s, addr, back, sizeof back), 0);
    CHECK(memcmp(back, secret, sizeof back) == 0);
    CHECK_EQ(eleos_suvm_free(s, addr), 0);
    eleos_suvm_destroy(s);
}

struct clamp {
    struct eleos_suvm *s;
    size_t asked, granted, max_granted;
    uint64_t data;
};

static long c_clamp(void *arg) {
    struct clamp *c = arg;
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg);
    cfg.cache_size = c->asked;
    cfg.backing_size = 64 * MiB;
    int r = eleos_suvm_create(&cfg, &c->s);
    if (r)
        return r;
    struct eleos_suvm_stats st;
    eleos_suvm_stats(c->s, &st);
    c->granted = (size_t)st.cache_frames * PAGE;
    /* Growing past the clamp is refused: the upper bound was clamped too. */
    if (eleos_suvm_resize(c->s, c->asked) != -EINVAL)
        return -1000;
    uint64_t base;
    if ((r = eleos_suvm_alloc(c->s, c->data, &base)))
        return r;
    static uint8_t page[PAGE];
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t off = 0; off < c->data; off += PAGE) {
            memset(page, (int)(off / PAGE + (uint64_t)pass), 8);
            if ((r = pass ? eleos_suvm_read(c->s, base + off, page, 8)
                          : eleos_suvm_write(c->s, base + off, page, PAGE)))
                return r;
            if (pass && page[0] != (uint8_t)(off / PAGE))
                return -1001;
        }
    eleos_suvm_destroy(c->s);
    return 0;
}

static void test_cache_clamped_to_epc(void) {
    struct eleos_enclave *e = suvm_t_enclave(512 * MiB, 16 * MiB, false);
    struct clamp c = {.asked = 200 * MiB, .data = 40 * MiB};
    CHECK_EQ(suvm_t_run(e, c_clamp, &c), 0);
    CHECK(c.granted >= 256 * 1024);
    CHECK(c.granted <= 14 * MiB); /* 16 MiB less an eighth, less the page table */
    struct eleos_enclave_stats es;
    eleos_enclave_stats(e, &es);
    CHECK_EQ(es.epc_faults, 0); /* SUVM paged 40 MiB itself; the driver paged nothing */
    eleos_enclave_destroy(e);
    /* An EPC too small for one chunk next to the rest: refused. */
    e = suvm_t_enclave(256 * MiB, 256 * 1024, false);
    c = (struct clamp){.asked = 1 * MiB, .data = 1 * MiB};
    CHECK_EQ(suvm_t_run(e, c_clamp, &c), -ENOMEM);
    eleos_enclave_destroy(e);
}

TEST_MAIN(TEST_CASE(test_host_mode_must_be_explicit),
          TEST_CASE(test_host_instance_refused_in_enclave), TEST_CASE(test_cache_clamped_to_epc))
