/*
 * ioq_batch: batched, completion-based I/O from the enclave (eleos/ioq.h).
 *
 * The enclave queues 32 writes of 4 KiB at different offsets of a file, submits them as one
 * batch and waits for their 32 completions; then the same for 32 reads into enclave buffers,
 * which are filled only after each completion was checked (a byte count never above the
 * request). With io_uring one exit carries a whole batch; with a worker executor, none. The
 * file is opened by the host and only its descriptor (an integer) enters the enclave.
 * The program runs the round twice on one queue: the first maps the queue's untrusted
 * bounce buffers (exits, once), the second reuses them, and its exits are the batches'.
 * Exits 0 if every block reads back as written, both times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <eleos/enclave.h>
#include <eleos/ioq.h>

#define BLOCKS 32
#define BLOCK 4096

static void fill(unsigned char *b, unsigned i) {
    for (unsigned j = 0; j < BLOCK; j++)
        b[j] = (unsigned char)(i * 31 + j);
}

/* Queues BLOCKS operations (write or read), submits them at once, reaps them all. */
static int batch(struct eleos_ioq *q, int fd, unsigned char (*blocks)[BLOCK], bool write) {
    for (unsigned i = 0; i < BLOCKS; i++) {
        int rc = write ? eleos_ioq_write(q, fd, blocks[i], BLOCK, (int64_t)i * BLOCK, i)
                       : eleos_ioq_read(q, fd, blocks[i], BLOCK, (int64_t)i * BLOCK, i);
        if (rc)
            return rc;
    }
    struct eleos_ioq_cqe cqes[BLOCKS];
    for (unsigned done = 0; done < BLOCKS;) {
        int n = eleos_ioq_wait(q, cqes, BLOCKS, BLOCKS - done, UINT64_MAX);
        if (n < 0)
            return n;
        for (int k = 0; k < n; k++)
            if (cqes[k].user_data >= BLOCKS || cqes[k].res != BLOCK)
                return cqes[k].res < 0 ? cqes[k].res : -EIO;
        done += (unsigned)n;
    }
    return 0;
}

/* The executor the queue ran on (an enclave global; main reads it after the ECALL). */
static char executor[16] = "none";

/* The queue belongs to the thread that made it; main's thread makes every ECALL. */
static struct eleos_ioq *queue;

/* ECALL: drops the queue. */
static long enclave_done(void *unused) {
    (void)unused;
    if (queue)
        eleos_ioq_destroy(queue);
    queue = NULL;
    return 0;
}

/* ECALL: argument is the descriptor, an integer the enclave needs no pointer for. */
static long enclave_io(void *fd_as_ptr) {
    int fd = (int)(intptr_t)fd_as_ptr;
    struct eleos_enclave *self = eleos_enclave_current();
    unsigned char(*out)[BLOCK] = eleos_enclave_malloc(self, BLOCKS * BLOCK);
    unsigned char(*in)[BLOCK] = eleos_enclave_calloc(self, BLOCKS, BLOCK);
    struct eleos_ioq_config cfg;
    eleos_ioq_config_default(&cfg); /* the executor is chosen at run time */
    int rc = !out || !in ? -ENOMEM : 0;
    if (rc == 0 && !queue)
        rc = eleos_ioq_create(self, &cfg, &queue);
    struct eleos_ioq *q = queue;
    for (unsigned i = 0; rc == 0 && i < BLOCKS; i++)
        fill(out[i], i);
    if (rc == 0)
        rc = batch(q, fd, out, true);
    if (rc == 0)
        rc = batch(q, fd, in, false);
    if (rc == 0 && memcmp(in, out, BLOCKS * BLOCK) != 0)
        rc = -EIO;
    if (q)
        snprintf(executor, sizeof executor, "%s", eleos_ioq_exec_name(eleos_ioq_executor(q)));
    eleos_enclave_free(self, out);
    eleos_enclave_free(self, in);
    return rc;
}

int main(void) {
    struct eleos_enclave *enc;
    int rc = eleos_enclave_create(NULL, &enc);
    if (rc != 0) {
        fprintf(stderr, "ioq_batch: eleos_enclave_create: %s\n", strerror(-rc));
        return 1;
    }
    char path[] = "/tmp/eleos-ioq-batch-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("ioq_batch: mkstemp");
        return 1;
    }
    unlink(path); /* gone when closed */
    long ret = -1, ret2 = -1, unused;
    rc = eleos_enclave_ecall(enc, enclave_io, (void *)(intptr_t)fd, &ret);
    eleos_enclave_stats_reset(enc);
    if (rc == 0 && ret == 0)
        rc = eleos_enclave_ecall(enc, enclave_io, (void *)(intptr_t)fd, &ret2);
    struct eleos_enclave_stats st;
    eleos_enclave_stats(enc, &st);
    if (eleos_enclave_ecall(enc, enclave_done, NULL, &unused) != 0)
        rc = -1;
    close(fd);
    eleos_enclave_destroy(enc);
    ret = ret ? ret : ret2;
    bool ok = rc == 0 && ret == 0;
    printf("ioq_batch: %d writes and %d reads of %d bytes in two batches on the %s executor, "
           "%llu exits (syscalls + OCALLs) the second time: %s%s%s\n", BLOCKS, BLOCKS, BLOCK, executor,
           (unsigned long long)(st.syscall_exits + st.ocalls),
           ok ? "ok" : "FAILED (", ok ? "" : strerror((int)-ret), ok ? "" : ")");
    return ok ? 0 : 1;
}
