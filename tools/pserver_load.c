/*
 * eleos-pserver-load: the parameter server's load generator.
 *
 * C client threads each send N batches of B bytes of random keys (B/8 keys, uniformly drawn
 * from [0, K)) as PS_OP_INC requests, one outstanding request per client, and wait for each
 * acknowledgement. It prints keys/s and batches/s over the whole run.
 *
 * --verify counts every key sent (atomic counters, so keep K moderate), then reads the whole
 * key range back with PS_OP_GET and compares: the exit status is 0 only if the table holds
 * exactly what was sent (the table must start at zero, i.e. a fresh server).
 *
 *   eleos-pserver-load [-h ADDR] [-p PORT] [-c CLIENTS] [-b BATCH_BYTES] [-n BATCHES]
 *                      [-k KEYS] [--seed S] [--verify]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pserver.h"

static const char *host = "127.0.0.1";
static int port = 7000;
static unsigned clients = 1, batch_bytes = 4096;
static unsigned long batches = 1000;
static uint64_t nkeys = 1u << 20, seed = 1;
static bool verify;
static _Atomic uint32_t *expected;

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int io_all(int fd, void *buf, size_t len, bool out) {
    size_t done = 0;
    while (done < len) {
        ssize_t r = out ? send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL)
                        : recv(fd, (char *)buf + done, len - done, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

struct client {
    unsigned id;
    int failed;
    bool started;
};

static void *client_main(void *arg) {
    struct client *c = arg;
    uint32_t n = batch_bytes / 8;
    uint64_t *msg = malloc(sizeof(struct ps_header) + (size_t)n * 8);
    int fd = dial();
    if (fd < 0 || !msg) {
        c->failed = 1;
        free(msg);
        return NULL;
    }
    struct ps_header *h = (struct ps_header *)msg;
    uint64_t *keys = msg + 1;
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + c->id + 1;
    for (unsigned long b = 0; b < batches; b++) {
        h->op = PS_OP_INC;
        h->count = n;
        for (uint32_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            keys[i] = x % nkeys;
            if (verify)
                atomic_fetch_add_explicit(&expected[keys[i]], 1, memory_order_relaxed);
        }
        uint64_t ack = 0;
        if (io_all(fd, msg, sizeof *h + (size_t)n * 8, true) ||
            io_all(fd, &ack, sizeof ack, false) || ack != n) {
            c->failed = 1;
            break;
        }
    }
    close(fd);
    free(msg);
    return NULL;
}

static long check_table(void) {
    int fd = dial();
    if (fd < 0)
        return -1;
    long bad = 0;
    uint64_t *msg = malloc(sizeof(struct ps_header) + PS_MAX_KEYS * 8);
    uint64_t *vals = malloc(PS_MAX_KEYS * 8);
    for (uint64_t k = 0; k < nkeys && msg && vals; k += PS_MAX_KEYS) {
        uint32_t n = (uint32_t)(nkeys - k < PS_MAX_KEYS ? nkeys - k : PS_MAX_KEYS);
        struct ps_header *h = (struct ps_header *)msg;
        h->op = PS_OP_GET;
        h->count = n;
        for (uint32_t i = 0; i < n; i++)
            msg[1 + i] = k + i;
        if (io_all(fd, msg, sizeof *h + (size_t)n * 8, true) ||
            io_all(fd, vals, (size_t)n * 8, false)) {
            bad = -1;
            break;
        }
        for (uint32_t i = 0; i < n; i++)
            if (vals[i] != atomic_load_explicit(&expected[k + i], memory_order_relaxed)) {
                if (bad < 5)
                    fprintf(stderr, "key %llu: table %llu, sent %u\n",
                            (unsigned long long)(k + i), (unsigned long long)vals[i],
                            atomic_load(&expected[k + i]));
                bad++;
            }
    }
    free(msg);
    free(vals);
    close(fd);
    return bad;
}

static void usage(void) {
    fprintf(stderr, "usage: eleos-pserver-load [-h ADDR] [-p PORT] [-c CLIENTS] [-b BATCH_BYTES]"
                    " [-n BATCHES] [-k KEYS] [--seed S] [--verify]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--verify")) {
            verify = true;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "-h"))
            host = v;
        else if (!strcmp(a, "-p"))
            port = atoi(v);
        else if (!strcmp(a, "-c"))
            clients = (unsigned)atoi(v);
        else if (!strcmp(a, "-b"))
            batch_bytes = (unsigned)atoi(v);
        else if (!strcmp(a, "-n"))
            batches = strtoul(v, NULL, 10);
        else if (!strcmp(a, "-k"))
            nkeys = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else
            usage();
    }
    if (clients == 0 || clients > 1024 || batch_bytes < 8 || batch_bytes > PS_MAX_KEYS * 8 ||
        nkeys == 0)
        usage();
    if (verify) {
        expected = calloc(nkeys, sizeof *expected);
        if (!expected) {
            fprintf(stderr, "eleos-pserver-load: -k too large for --verify\n");
            return 2;
        }
    }
    struct client *cs = calloc(clients, sizeof *cs);
    pthread_t *th = calloc(clients, sizeof *th);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < clients; i++) {
        cs[i].id = i;
        cs[i].started = pthread_create(&th[i], NULL, client_main, &cs[i]) == 0;
        if (!cs[i].started)
            cs[i].failed = 1;
    }
    int failed = 0;
    for (unsigned i = 0; i < clients; i++) {
        if (cs[i].started)
            pthread_join(th[i], NULL);
        failed += cs[i].failed;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    double total_batches = (double)clients * (double)batches;
    printf("result: clients=%u batch_bytes=%u batches_per_s=%.0f keys_per_s=%.0f "
           "mbytes_per_s=%.2f seconds=%.3f failed_clients=%d\n",
           clients, batch_bytes, total_batches / secs, total_batches * (batch_bytes / 8) / secs,
           total_batches * batch_bytes / secs / 1e6, secs, failed);
    int rc = failed ? 1 : 0;
    if (verify && !failed) {
        long bad = check_table();
        printf("verify: %s (%llu keys checked, %ld mismatches)\n", bad == 0 ? "OK" : "FAILED",
               (unsigned long long)nkeys, bad);
        rc = bad == 0 ? 0 : 1;
    }
    free(cs);
    free(th);
    free(expected);
    return rc;
}
