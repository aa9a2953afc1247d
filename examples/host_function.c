/*
 * host_function: a host function of one's own, called from the enclave with buffers.
 *
 * The enclave cannot hand the host a pointer into enclave memory (the host must never read
 * or write it), and must not trust what the host writes back. The pattern, as the SGX SDK's
 * [in]/[out] buffers: the enclave stages its data in an untrusted buffer
 * (eleos_untrusted_alloc + eleos_copy_out), calls the host function through an OCALL
 * (eleos_enclave_ocall) with that buffer, then copies the result back in
 * (eleos_copy_in) and checks it before use. Here the host function upper-cases a string
 * and returns its length; the enclave checks the length against what it sent.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <eleos/enclave.h>

struct upper_call {
    char *buf;  /* untrusted memory, both ways */
    size_t len; /* bytes in buf */
};

/* Host side: runs in host mode, on untrusted memory only. */
static long host_upper(void *arg) {
    struct upper_call *c = arg;
    for (size_t i = 0; i < c->len; i++)
        c->buf[i] = (char)toupper((unsigned char)c->buf[i]);
    return (long)c->len;
}

/* Enclave side. */
static long enclave_shout(void *unused) {
    (void)unused;
    struct eleos_enclave *self = eleos_enclave_current();
    static const char secret_free_text[] = "exitless and paged in the enclave";
    size_t len = sizeof secret_free_text - 1;
    char *mine = eleos_enclave_malloc(self, len + 1);
    /* The call's arguments and its buffer live in untrusted memory the host may rewrite. */
    struct upper_call *c = eleos_untrusted_alloc(sizeof *c + len);
    if (!mine || !c)
        return -ENOMEM;
    c->buf = (char *)(c + 1);
    c->len = len;
    long rc = eleos_copy_out(c->buf, secret_free_text, len);          /* [in]  */
    long n = rc ? rc : eleos_enclave_ocall(host_upper, c);            /* one exit */
    /* Check the result against the request before using it: never more than was sent. */
    if (n >= 0 && (size_t)n != len)
        n = -EIO;
    if (n >= 0)
        n = eleos_copy_in(mine, c->buf, len);                         /* [out] */
    mine[len] = '\0';
    int good = n == 0 && strcmp(mine, "EXITLESS AND PAGED IN THE ENCLAVE") == 0;
    eleos_untrusted_free(c, sizeof *c + len);
    eleos_enclave_free(self, mine);
    return good ? 0 : (n < 0 ? n : -EIO);
}

int main(void) {
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg);
    struct eleos_enclave *enc;
    int rc = eleos_enclave_create(&cfg, &enc);
    if (rc != 0) {
        fprintf(stderr, "host_function: eleos_enclave_create: %s\n", strerror(-rc));
        return 1;
    }
    long ret = -1;
    rc = eleos_enclave_ecall(enc, enclave_shout, NULL, &ret);
    struct eleos_enclave_stats st;
    eleos_enclave_stats(enc, &st);
    eleos_enclave_destroy(enc);
    printf("host_function: ecall %d, result %ld, OCALLs %llu: %s\n", rc, ret,
           (unsigned long long)st.ocalls, rc == 0 && ret == 0 && st.ocalls == 1 ? "ok" : "FAILED");
    return rc == 0 && ret == 0 && st.ocalls == 1 ? 0 : 1;
}
