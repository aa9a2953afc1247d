/*
 * suvm_array: a 256 MiB array, larger than the 93 MiB EPC, kept in SUVM and walked with
 * spointers. SUVM pages inside the enclave (a page cache in enclave memory, sealed pages in
 * untrusted memory), so the walk causes no EPC faults and no exits; the statistics show it.
 *
 * Pass 1 writes every element sequentially through one spointer (deref_w: the fast path is
 * a compare and an add; crossing a page links the next one). Pass 2 reads one element per
 * page in a scattered order, hinting the page 8 steps ahead with eleos_suvm_prefetch so its
 * sealed copy is on the way when the spointer gets there. Exits 0 if every value read back
 * is the one written and the EPC was never paged.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <eleos/enclave.h>
#include <eleos/suvm.h>

#define ARRAY_BYTES (256ull << 20)
#define N (ARRAY_BYTES / sizeof(uint64_t))
#define PER_PAGE (ELEOS_SUVM_PAGE_SIZE / sizeof(uint64_t))
#define NPAGES (ARRAY_BYTES / ELEOS_SUVM_PAGE_SIZE)
#define AHEAD 8

static uint64_t value_of(uint64_t i) { return i * 0x9e3779b97f4a7c15ull; }
/* Page k of pass 2: a stride coprime with NPAGES visits every page once, out of order. */
static uint64_t page_of(uint64_t k) { return (k * 7919) % NPAGES; }

struct result {
    long rc;
    uint64_t mismatches;
    struct eleos_suvm_stats suvm;
};

static long walk(struct eleos_suvm *s, uint64_t base, uint64_t *mismatches) {
    struct eleos_suvm_ptr p;
    eleos_suvm_ptr_init(&p, s, base);
    for (uint64_t i = 0; i < N; i++, eleos_suvm_ptr_add(&p, sizeof(uint64_t))) {
        void *w;
        int rc = eleos_suvm_ptr_deref_w(&p, &w);
        if (rc)
            return rc;
        *(uint64_t *)w = value_of(i);
    }
    for (uint64_t k = 0; k < NPAGES; k++) {
        if (k + AHEAD < NPAGES)
            eleos_suvm_prefetch(s, base + page_of(k + AHEAD) * ELEOS_SUVM_PAGE_SIZE);
        uint64_t i = page_of(k) * PER_PAGE + k % PER_PAGE;
        eleos_suvm_ptr_set(&p, base + i * sizeof(uint64_t));
        void *r;
        int rc = eleos_suvm_ptr_deref(&p, &r);
        if (rc)
            return rc;
        *mismatches += *(const uint64_t *)r != value_of(i);
    }
    eleos_suvm_ptr_fini(&p); /* unpins the last page */
    return 0;
}

/* The ECALL: everything SUVM keeps (cache, page table, keys) is made inside the enclave. */
static long run(void *host_result) {
    struct result res = {0};
    struct eleos_suvm_config cfg;
    eleos_suvm_config_default(&cfg); /* a 60 MiB page cache, within the EPC */
    struct eleos_suvm *s;
    uint64_t base = 0;
    res.rc = eleos_suvm_create(&cfg, &s);
    if (res.rc == 0) {
        res.rc = eleos_suvm_alloc(s, ARRAY_BYTES, &base);
        if (res.rc == 0)
            res.rc = walk(s, base, &res.mismatches);
        eleos_suvm_stats(s, &res.suvm);
        if (base && eleos_suvm_free(s, base) != 0 && res.rc == 0)
            res.rc = -EIO;
        eleos_suvm_destroy(s);
    }
    return eleos_copy_out(host_result, &res, sizeof res);
}

int main(void) {
    struct eleos_enclave_config ec;
    eleos_enclave_config_default(&ec);
    struct eleos_enclave *enc;
    int rc = eleos_enclave_create(&ec, &enc);
    if (rc != 0) {
        fprintf(stderr, "suvm_array: eleos_enclave_create: %s\n", strerror(-rc));
        return 1;
    }
    struct result res;
    long ret = -1;
    rc = eleos_enclave_ecall(enc, run, &res, &ret);
    struct eleos_enclave_stats st;
    eleos_enclave_stats(enc, &st);
    eleos_enclave_destroy(enc);
    if (rc != 0 || ret != 0 || res.rc != 0) {
        fprintf(stderr, "suvm_array: failed: ecall %d, copy %ld, suvm %s\n", rc, ret,
                strerror((int)-res.rc));
        return 1;
    }
    printf("suvm_array: %llu MiB through a %llu MiB cache: %llu SUVM faults (%llu evictions), "
           "%llu EPC faults, %llu syscall exits, %llu mismatches\n",
           ARRAY_BYTES >> 20, (unsigned long long)(res.suvm.cache_frames * 4096 >> 20),
           (unsigned long long)(res.suvm.minor_faults + res.suvm.major_faults),
           (unsigned long long)res.suvm.evictions, (unsigned long long)st.epc_faults,
           (unsigned long long)st.syscall_exits, (unsigned long long)res.mismatches);
    bool ok = res.mismatches == 0 && res.suvm.major_faults > 0 && st.epc_faults == 0;
    printf("suvm_array: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
