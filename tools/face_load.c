/*
 * face_load.c — eleos-face-load: the face-verification server's client and load generator.
 *
 * N threads, each on its own connection with a client key from the key file, send R
 * requests in all: a claimed identity drawn at random and the probe histogram of that
 * identity (genuine) or of another one (impostor, --impostors of them). Probe histograms
 * are computed here from the generator's third captures (DIR/NNNNN_p.pgm), before the clock
 * starts. Reports requests/s, latency p50/p99 and the true/false-positive rates; --verify
 * recomputes every answer from the enrolment images and compares the accept bit and the
 * distance bit for bit. Exit status: 0, or 1 if any answer was an error, failed to verify
 * or did not match.
 *
 * --attack MODE sends one bad request (tamper, wrong-key, unknown-client,
 * unknown-identity, replay, truncate, bad-frame) and checks the server refuses it with the
 * expected status and still serves a good request afterwards (exit 0 if so).
 *
 * Sequence numbers start at the wall clock in microseconds, so successive runs with the
 * same keys stay above the server's replay windows.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "face_proto.h"

#define PROG "eleos-face-load"
#define MAX_THREADS 1024u

struct cfg {
    const char *host, *dir, *keyfile, *attack;
    unsigned port, threads, identities;
    uint64_t requests, seed;
    double impostors, threshold;
    bool verify;
};

static struct cfg C = {"127.0.0.1", NULL, NULL, NULL, 7100, 4, 0, 1000, 1, 0.5, 95000.0, false};
static struct face_keys *keys;
static uint32_t key_ids[FACE_CLIENTS_MAX];
static uint32_t nkeys;
static uint32_t **probes;            /* per identity                                 */
static _Atomic uint64_t next_req;
static _Atomic uint64_t seqs[FACE_CLIENTS_MAX];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* --- images and histograms ------------------------------------------------------------- */

static int image_hist(unsigned id, char capture, uint32_t *hist) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%05u_%c.pgm", C.dir, id, capture);
    FILE *f = fopen(path, "rb");
    size_t max = (size_t)FACE_SIDE * FACE_SIDE + 4096, n = 0;
    uint8_t *buf = malloc(max + 1);
    if (f && buf)
        n = fread(buf, 1, max + 1, f);
    if (f)
        fclose(f);
    uint32_t w, h;
    const uint8_t *pix;
    int r = !buf || n > max || face_pgm_parse(buf, n, &w, &h, &pix) || w != FACE_SIDE ||
            h != FACE_SIDE;
    if (!r)
        (void)face_lbp_hist(pix, w, h, hist);
    else
        fprintf(stderr, PROG ": %s: missing or not a %u x %u PGM\n", path, FACE_SIDE, FACE_SIDE);
    free(buf);
    return r ? -1 : 0;
}

static _Atomic unsigned next_probe;
static atomic_int probe_failed;

static void *probe_thread(void *arg) {
    (void)arg;
    for (unsigned id; (id = atomic_fetch_add(&next_probe, 1)) < C.identities;) {
        probes[id] = malloc(FACE_HIST_BYTES);
        if (!probes[id] || image_hist(id, 'p', probes[id]))
            atomic_store(&probe_failed, 1);
    }
    return NULL;
}

static int load_probes(void) {
    probes = calloc(C.identities, sizeof *probes);
    pthread_t th[8];
    unsigned n = 0;
    for (; probes && n < 2; n++)
        if (pthread_create(&th[n], NULL, probe_thread, NULL))
            break;
    if (n == 0)
        probe_thread(NULL);
    for (unsigned i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    return probes && !atomic_load(&probe_failed) ? 0 : -1;
}

static int load_keys(void) {
    FILE *f = fopen(C.keyfile, "rb");
    char *buf = malloc(FACE_KEYFILE_MAX + 1);
    size_t n = f && buf ? fread(buf, 1, FACE_KEYFILE_MAX + 1, f) : 0;
    if (f)
        fclose(f);
    unsigned line;
    keys = calloc(1, sizeof *keys);
    int r = !keys || !f || n > FACE_KEYFILE_MAX || face_keys_parse(buf, n, keys, &line);
    free(buf);
    if (r) {
        fprintf(stderr, PROG ": key file %s: unreadable or malformed\n", C.keyfile);
        return -1;
    }
    for (uint32_t i = 0; i < FACE_CLIENTS_MAX; i++)
        if (keys->present[i])
            key_ids[nkeys++] = i;
    return 0;
}

/* --- one connection -------------------------------------------------------------------- */

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)C.port)};
    struct timeval tv = {30, 0};
    if (fd < 0 || inet_pton(AF_INET, C.host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int send_all(int fd, const uint8_t *b, size_t n) {
    for (size_t d = 0; d < n;) {
        ssize_t r = send(fd, b + d, n - d, MSG_NOSIGNAL);
        if (r <= 0 && errno != EINTR)
            return -1;
        d += r > 0 ? (size_t)r : 0;
    }
    return 0;
}

/* Reads one answer (header, then its sealed part if any): its length, or 0. */
static size_t recv_answer(int fd, uint8_t *buf) {
    size_t got = 0, want = sizeof(struct face_ans);
    while (got < want) {
        ssize_t r = recv(fd, buf + got, want - got, 0);
        if (r <= 0 && !(r < 0 && errno == EINTR))
            return 0;
        got += r > 0 ? (size_t)r : 0;
        if (got == sizeof(struct face_ans)) {
            struct face_ans h;
            memcpy(&h, buf, sizeof h);
            if (h.len > FACE_ANS_MAX - sizeof h - FACE_TAG_BYTES)
                return 0;
            want += h.len ? h.len + FACE_TAG_BYTES : 0;
        }
    }
    return got;
}

struct conn {
    int fd;
    uint32_t client;
    void *gcm;
    uint8_t *req;
    struct face_probe *probe;
};

/* Sends probe as claimed identity id with seq; opens the answer: 0 or -1. */
static int exchange(struct conn *c, uint64_t seq, enum face_status *st,
                    struct face_result *res) {
    uint8_t ans[FACE_ANS_MAX];
    if (face_req_build(c->gcm, keys->key[c->client], c->client, seq, c->probe, c->req) ||
        send_all(c->fd, c->req, FACE_REQ_BYTES))
        return -1;
    size_t n = recv_answer(c->fd, ans);
    return n ? face_ans_open(c->gcm, keys->key[c->client], c->client, seq, ans, n, st, res)
             : -1;
}

static int conn_open(struct conn *c, unsigned t) {
    c->client = key_ids[t % nkeys];
    c->gcm = face_gcm_new();
    c->req = malloc(FACE_REQ_BYTES);
    c->probe = malloc(sizeof *c->probe);
    c->fd = dial();
    return c->gcm && c->req && c->probe && c->fd >= 0 ? 0 : -1;
}

static void conn_close(struct conn *c) {
    if (c->fd >= 0)
        close(c->fd);
    face_gcm_free(c->gcm);
    free(c->req);
    free(c->probe);
}

/* --- the load ---------------------------------------------------------------------------- */

struct tstats {
    uint64_t n, errors, genuine, genuine_acc, impostor, impostor_acc, verified, mismatches;
    uint64_t *lat;   /* ns per request                                  */
    size_t nlat, cap;
    unsigned index;  /* the thread's: picks its key                       */
};

/* The server's answer recomputed here: the enrolled capture the seq selects. */
static int check_answer(unsigned id, uint64_t seq, const struct face_probe *p,
                        const struct face_result *res, uint32_t *scratch) {
    if (image_hist(id, (char)('a' + face_capture_for(seq)), scratch))
        return -1;
    double d = face_chi2(p->hist, scratch, FACE_HIST_WORDS);
    uint32_t acc = d < C.threshold;
    return res->identity == id && res->accept == acc &&
                   memcmp(&d, &res->distance, sizeof d) == 0
               ? 0
               : -1;
}

static void one_request(struct conn *c, uint64_t k, struct tstats *s, uint32_t *scratch) {
    uint64_t r = mix(C.seed * 0x9e3779b97f4a7c15ull + k);
    unsigned id = (unsigned)(r % C.identities), src = id;
    bool impostor = C.identities > 1 && (double)(mix(r) >> 11) / 9007199254740992.0 < C.impostors;
    if (impostor)
        src = (id + 1 + (unsigned)(mix(r + 1) % (C.identities - 1))) % C.identities;
    c->probe->identity = id;
    c->probe->reserved = 0;
    memcpy(c->probe->hist, probes[src], FACE_HIST_BYTES);
    uint64_t seq = atomic_fetch_add(&seqs[c->client], 1);
    enum face_status st;
    struct face_result res;
    uint64_t t0 = now_ns();
    int e = exchange(c, seq, &st, &res);
    if (s->nlat < s->cap)
        s->lat[s->nlat++] = now_ns() - t0;
    s->n++;
    if (e || st != FACE_OK) {
        s->errors++;
        return;
    }
    s->impostor += impostor;
    s->genuine += !impostor;
    s->impostor_acc += impostor && res.accept;
    s->genuine_acc += !impostor && res.accept;
    if (C.verify) {
        s->verified++;
        s->mismatches += check_answer(id, seq, c->probe, &res, scratch) != 0;
    }
}

static void *load_thread(void *arg) {
    struct tstats *s = arg;
    struct conn c = {.fd = -1};
    uint32_t *scratch = malloc(FACE_HIST_BYTES);
    s->cap = C.requests;
    s->lat = malloc(sizeof *s->lat * s->cap);
    if (!scratch || !s->lat || conn_open(&c, s->index)) {
        s->errors++;
    } else {
        for (uint64_t k; (k = atomic_fetch_add(&next_req, 1)) < C.requests;)
            one_request(&c, k, s, scratch);
    }
    conn_close(&c);
    free(scratch);
    return NULL;
}

/* --- attacks ------------------------------------------------------------------------------ */

static const char *const status_name[FACE_NSTATUS] = {
    "ok", "bad frame", "unknown client", "authentication", "replay", "unknown identity",
    "truncated", "internal"};

/* Sends the bad request mode asks for on c; *want is the status it must get. 0 or -1. */
static int attack_send(struct conn *c, const char *mode, uint64_t seq, enum face_status *want) {
    struct face_req h;
    if (!strcmp(mode, "unknown-identity")) {
        c->probe->identity = C.identities + 5;
        *want = FACE_E_IDENTITY;
    }
    if (face_req_build(c->gcm, keys->key[c->client], c->client, seq, c->probe, c->req))
        return -1;
    memcpy(&h, c->req, sizeof h);
    if (!strcmp(mode, "tamper")) {
        c->req[sizeof h + 1000] ^= 1;
        *want = FACE_E_AUTH;
    } else if (!strcmp(mode, "wrong-key")) {
        uint8_t k[FACE_KEY_BYTES];
        memcpy(k, keys->key[c->client], sizeof k);
        k[0] ^= 0x80;
        if (face_req_build(c->gcm, k, c->client, seq, c->probe, c->req))
            return -1;
        *want = FACE_E_AUTH;
    } else if (!strcmp(mode, "unknown-client")) {
        h.client = FACE_CLIENTS_MAX - 1; /* the tests' key files never name it */
        memcpy(c->req, &h, sizeof h);
        *want = FACE_E_CLIENT;
    } else if (!strcmp(mode, "bad-frame")) {
        h.len = 12;
        memcpy(c->req, &h, sizeof h);
        *want = FACE_E_FRAME;
        return send_all(c->fd, c->req, sizeof h + 12);
    } else if (!strcmp(mode, "truncate")) {
        *want = FACE_E_TRUNCATED;
        if (send_all(c->fd, c->req, FACE_REQ_BYTES / 2))
            return -1;
        return shutdown(c->fd, SHUT_WR);
    } else if (strcmp(mode, "unknown-identity") && strcmp(mode, "replay")) {
        fprintf(stderr, PROG ": unknown attack '%s'\n", mode);
        return -1;
    }
    return send_all(c->fd, c->req, FACE_REQ_BYTES);
}

/* One good request on a fresh connection: the server must still answer. */
static int still_serving(unsigned id) {
    struct conn c = {.fd = -1};
    enum face_status st;
    struct face_result res;
    int r = conn_open(&c, 0);
    if (!r) {
        c.probe->identity = id;
        c.probe->reserved = 0;
        memcpy(c.probe->hist, probes[id], FACE_HIST_BYTES);
        r = exchange(&c, atomic_fetch_add(&seqs[c.client], 1), &st, &res) || st != FACE_OK;
    }
    conn_close(&c);
    return r ? -1 : 0;
}

static int run_attack(void) {
    struct conn c = {.fd = -1};
    enum face_status want = FACE_E_REPLAY, got = FACE_OK;
    struct face_result res;
    uint8_t ans[FACE_ANS_MAX];
    if (conn_open(&c, 0))
        return -1;
    c.probe->identity = 0;
    c.probe->reserved = 0;
    memcpy(c.probe->hist, probes[0], FACE_HIST_BYTES);
    uint64_t seq = atomic_fetch_add(&seqs[c.client], 1);
    int r = 0;
    if (!strcmp(C.attack, "replay")) /* first the genuine one, then its copy */
        r = exchange(&c, seq, &got, &res) || got != FACE_OK;
    r = r || attack_send(&c, C.attack, seq, &want);
    size_t n = r ? 0 : recv_answer(c.fd, ans);
    /* A sealed refusal must open under our key; one in clear only parses. */
    r = !n || face_ans_open(c.gcm, keys->key[c.client], c.client, seq, ans, n, &got, &res);
    conn_close(&c);
    printf(PROG ": attack %s: answer %s (expected %s)\n", C.attack,
           r ? "missing or malformed" : status_name[got], status_name[want]);
    if (r || got != want)
        return -1;
    if (still_serving(0)) {
        printf(PROG ": the server no longer serves a good request\n");
        return -1;
    }
    printf(PROG ": a good request afterwards: served\n");
    return 0;
}

/* --- main -------------------------------------------------------------------------------- */

static void free_data(void) {
    for (unsigned i = 0; probes && i < C.identities; i++)
        free(probes[i]);
    free(probes);
    free(keys);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int report(struct tstats *ts, double secs) {
    struct tstats t = {0};
    size_t nl = 0;
    for (unsigned i = 0; i < C.threads; i++)
        nl += ts[i].nlat;
    uint64_t *all = malloc(sizeof *all * (nl + 1));
    nl = 0;
    for (unsigned i = 0; i < C.threads; i++) {
        t.n += ts[i].n, t.errors += ts[i].errors, t.genuine += ts[i].genuine;
        t.genuine_acc += ts[i].genuine_acc, t.impostor += ts[i].impostor;
        t.impostor_acc += ts[i].impostor_acc, t.verified += ts[i].verified;
        t.mismatches += ts[i].mismatches;
        if (all)
            memcpy(all + nl, ts[i].lat, sizeof *all * ts[i].nlat), nl += ts[i].nlat;
    }
    if (all && nl)
        qsort(all, nl, sizeof *all, cmp_u64);
    double p50 = all && nl ? (double)all[nl / 2] / 1e3 : 0;
    double p99 = all && nl ? (double)all[nl * 99 / 100] / 1e3 : 0;
    free(all);
    printf(PROG ": %llu requests in %.3f s: %.1f requests/s; latency p50 %.0f us, p99 %.0f us\n",
           (unsigned long long)t.n, secs, secs > 0 ? (double)t.n / secs : 0, p50, p99);
    printf(PROG ": genuine %llu, accepted %llu (TPR %.4f); impostors %llu, accepted %llu "
           "(FPR %.4f); errors %llu\n",
           (unsigned long long)t.genuine, (unsigned long long)t.genuine_acc,
           t.genuine ? (double)t.genuine_acc / (double)t.genuine : 0,
           (unsigned long long)t.impostor, (unsigned long long)t.impostor_acc,
           t.impostor ? (double)t.impostor_acc / (double)t.impostor : 0,
           (unsigned long long)t.errors);
    if (C.verify)
        printf(PROG ": verified %llu answers, %llu mismatches\n",
               (unsigned long long)t.verified, (unsigned long long)t.mismatches);
    return t.errors || t.mismatches || t.n != C.requests ? 1 : 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: " PROG " --data DIR [--keys FILE] [--identities N] [-s HOST] [-p PORT]\n"
               "       [--threads N (4)] [--requests R (1000)] [--impostors F (0.5)]\n"
               "       [--threshold T (95000)] [--seed S] [--verify] [--attack MODE]\n"
               "  MODE: tamper wrong-key unknown-client unknown-identity replay truncate "
               "bad-frame\n");
}

static int parse(int argc, char **argv) {
    static const struct option lo[] = {
        {"data", 1, NULL, 'd'},     {"keys", 1, NULL, 'k'},    {"identities", 1, NULL, 'n'},
        {"threads", 1, NULL, 't'},  {"requests", 1, NULL, 'r'}, {"impostors", 1, NULL, 'i'},
        {"threshold", 1, NULL, 'T'}, {"seed", 1, NULL, 'S'},   {"verify", 0, NULL, 'v'},
        {"attack", 1, NULL, 'a'},   {"help", 0, NULL, 'h'},    {NULL, 0, NULL, 0}};
    int c;
    char *end = NULL;
    while ((c = getopt_long(argc, argv, "s:p:h", lo, NULL)) != -1) {
        unsigned long long v = 0;
        if (strchr("pntrS", c)) {
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno || *optarg == '-')
                return -1;
        }
        switch (c) {
        case 's': C.host = optarg; break;
        case 'p': if (!v || v > 65535) return -1; C.port = (unsigned)v; break;
        case 'd': C.dir = optarg; break;
        case 'k': C.keyfile = optarg; break;
        case 'n': if (v > 100000) return -1; C.identities = (unsigned)v; break;
        case 't': if (!v || v > MAX_THREADS) return -1; C.threads = (unsigned)v; break;
        case 'r': if (!v) return -1; C.requests = v; break;
        case 'S': C.seed = v; break;
        case 'i':
            C.impostors = strtod(optarg, &end);
            if (*end || !(C.impostors >= 0 && C.impostors <= 1))
                return -1;
            break;
        case 'T':
            C.threshold = strtod(optarg, &end);
            if (*end || !(C.threshold > 0))
                return -1;
            break;
        case 'v': C.verify = true; break;
        case 'a': C.attack = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    return optind < argc || !C.dir ? -1 : 0;
}

int main(int argc, char **argv) {
    if (parse(argc, argv)) {
        usage(stderr);
        return 2;
    }
    static char keypath[4096];
    if (!C.keyfile) {
        snprintf(keypath, sizeof keypath, "%s/keys", C.dir);
        C.keyfile = keypath;
    }
    if (!C.identities) {
        char path[4200];
        unsigned n = 0;
        for (FILE *f; snprintf(path, sizeof path, "%s/%05u_p.pgm", C.dir, n),
                      (f = fopen(path, "rb")) != NULL;
             n++)
            fclose(f);
        C.identities = n;
    }
    if (!C.identities || load_keys() || load_probes()) {
        fprintf(stderr, PROG ": no usable data set in %s\n", C.dir);
        return 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t base = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    for (unsigned i = 0; i < FACE_CLIENTS_MAX; i++)
        atomic_store(&seqs[i], base);
    if (C.attack) {
        int rc = run_attack() ? 1 : 0;
        free_data();
        return rc;
    }
    struct tstats *st = calloc(C.threads, sizeof *st);
    pthread_t *th = calloc(C.threads, sizeof *th);
    unsigned started = 0;
    uint64_t t0 = now_ns();
    for (; st && th && started < C.threads; started++) {
        st[started].index = started;
        if (pthread_create(&th[started], NULL, load_thread, &st[started]))
            break;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    C.threads = started;
    int rc = st && th && started ? report(st, secs) : 1;
    for (unsigned i = 0; st && i < started; i++)
        free(st[i].lat);
    free(st);
    free(th);
    free_data();
    return rc;
}
