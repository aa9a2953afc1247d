/*
 * hello: the smallest Eleos program. It creates an enclave, runs one ECALL that allocates
 * on the enclave heap and makes one system call (which, inside an enclave, is an exit), and
 * prints the enclave's statistics. Exits 0 if the statistics show exactly that.
 *
 *   cc hello.c $(pkg-config --cflags --libs eleos) -o hello && ./hello
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <eleos/enclave.h>

/* Runs in enclave mode. Its argument is host memory: the enclave writes to it only through
 * eleos_copy_out, which refuses a range that is not wholly outside the enclave. */
static long hello(void *host_buf) {
    struct eleos_enclave *self = eleos_enclave_current();
    char *msg = eleos_enclave_malloc(self, 64); /* enclave memory (ELRANGE) */
    if (!msg)
        return -ENOMEM;
    /* getpid() is a system call: the emulator traps it and counts one exit. */
    int n = snprintf(msg, 64, "hello from the enclave of process %d", (int)getpid());
    int rc = eleos_copy_out(host_buf, msg, (size_t)n + 1);
    eleos_enclave_free(self, msg);
    return rc;
}

int main(void) {
    struct eleos_enclave_config cfg;
    eleos_enclave_config_default(&cfg); /* 93 MiB EPC, the SGX cost model */
    struct eleos_enclave *enc;
    int rc = eleos_enclave_create(&cfg, &enc);
    if (rc != 0) {
        fprintf(stderr, "hello: eleos_enclave_create: %s%s\n", strerror(-rc),
                rc == -ENOSYS ? " (Linux 5.11 or later with Syscall User Dispatch needed)" : "");
        return 1;
    }
    char greeting[64] = "";
    long ret = -1;
    rc = eleos_enclave_ecall(enc, hello, greeting, &ret);
    printf("%s\n", greeting);
    fflush(stdout); /* the table below is written straight to the descriptor */

    struct eleos_enclave_stats st;
    eleos_enclave_stats(enc, &st);
    eleos_enclave_stats_print(enc, STDOUT_FILENO);
    bool ok = rc == 0 && ret == 0 && st.ecalls == 1 && st.syscall_exits >= 1 &&
              st.host_allocs == 0 && strstr(greeting, "hello from the enclave") != NULL;
    eleos_enclave_destroy(enc);
    printf("hello: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
