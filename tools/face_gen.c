/*
 * face_gen.c — eleos-face-gen: the synthetic face set of eleos-face (docs/face.md).
 *
 * Real face sets cannot be installed here (FERET needs a signed licence), so each identity
 * is a procedural 512 x 512 grey image: value noise at five scales (64 down to 4 pixels)
 * plus a few large ellipses, the structure LBP histograms pick up at every block. Each
 * capture of an identity is that image seen again with a small shift and rotation, a
 * gamma change and Gaussian noise. Everything derives from --seed: the same arguments
 * write the same bytes on any machine with IEEE doubles and this libm.
 *
 *   eleos-face-gen --out DIR [--seed S] [--identities N] [--clients K] [--jobs J]
 *
 * Writes DIR/NNNNN_a.pgm and DIR/NNNNN_b.pgm (the two enrolled captures), DIR/NNNNN_p.pgm
 * (a third capture, the probe) for N identities (default 994, the original's database of
 * about 470 MB once enrolled), and DIR/keys: K client keys (default 128) in the format
 * eleos-face reads, derived from the seed (test keys, not secrets).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIDE 512
#define OCTAVES 5
#define ELLIPSES 8

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s) {
    return (double)(splitmix(s) >> 11) / 9007199254740992.0;
}

static double gauss(uint64_t *s) {
    double u = unit(s), v = unit(s);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

struct job {
    const char *out;
    uint64_t seed;
    unsigned n;
    atomic_uint next;
    atomic_int failed;
};

static double smooth(double t) {
    return t * t * (3 - 2 * t);
}

/* Value noise with lattice spacing cell: bilinear with a smoothstep between random nodes. */
static void add_octave(double *img, unsigned cell, double amp, uint64_t *rng) {
    unsigned g = SIDE / cell + 2;
    double *node = malloc(sizeof *node * g * g);
    for (unsigned i = 0; i < g * g; i++)
        node[i] = unit(rng) * 2 - 1;
    for (unsigned y = 0; y < SIDE; y++)
        for (unsigned x = 0; x < SIDE; x++) {
            unsigned gx = x / cell, gy = y / cell;
            double fx = smooth((double)(x % cell) / cell), fy = smooth((double)(y % cell) / cell);
            double a = node[gy * g + gx], b = node[gy * g + gx + 1];
            double c = node[(gy + 1) * g + gx], d = node[(gy + 1) * g + gx + 1];
            img[y * SIDE + x] += amp * ((a * (1 - fx) + b * fx) * (1 - fy) +
                                        (c * (1 - fx) + d * fx) * fy);
        }
    free(node);
}

static void add_ellipses(double *img, uint64_t *rng) {
    for (unsigned e = 0; e < ELLIPSES; e++) {
        double cx = unit(rng) * SIDE, cy = unit(rng) * SIDE;
        double rx = 30 + unit(rng) * 120, ry = 30 + unit(rng) * 120;
        double amp = unit(rng) * 1.6 - 0.8;
        for (unsigned y = 0; y < SIDE; y++)
            for (unsigned x = 0; x < SIDE; x++) {
                double u = (x - cx) / rx, v = (y - cy) / ry;
                if (u * u + v * v < 1)
                    img[y * SIDE + x] += amp;
            }
    }
}

/* The identity's image, scaled to 0..1. */
static void identity_image(uint64_t seed, unsigned id, double *img) {
    static const unsigned cells[OCTAVES] = {64, 32, 16, 8, 4};
    static const double amps[OCTAVES] = {1.0, 0.8, 0.7, 0.6, 0.5};
    uint64_t rng = seed * 0x100000001b3ull + id;
    memset(img, 0, sizeof *img * SIDE * SIDE);
    for (unsigned o = 0; o < OCTAVES; o++)
        add_octave(img, cells[o], amps[o], &rng);
    add_ellipses(img, &rng);
    double lo = img[0], hi = img[0];
    for (unsigned i = 0; i < SIDE * SIDE; i++) {
        lo = img[i] < lo ? img[i] : lo;
        hi = img[i] > hi ? img[i] : hi;
    }
    for (unsigned i = 0; i < SIDE * SIDE; i++)
        img[i] = 0.06 + 0.88 * (img[i] - lo) / (hi - lo + 1e-12);
}

static double sample(const double *img, double x, double y) {
    x = x < 0 ? 0 : x > SIDE - 1.001 ? SIDE - 1.001 : x;
    y = y < 0 ? 0 : y > SIDE - 1.001 ? SIDE - 1.001 : y;
    unsigned ix = (unsigned)x, iy = (unsigned)y;
    double fx = x - ix, fy = y - iy;
    const double *p = img + (size_t)iy * SIDE + ix;
    return (p[0] * (1 - fx) + p[1] * fx) * (1 - fy) + (p[SIDE] * (1 - fx) + p[SIDE + 1] * fx) * fy;
}

/* One capture: shift up to 1.5 px, rotation up to 1.5 degrees, gamma 0.9..1.1, noise 2.0. */
static void capture(const double *img, uint64_t seed, unsigned id, unsigned c, uint8_t *out) {
    uint64_t rng = (seed * 0x100000001b3ull + id) * 4 + c + 0x5bd1e995ull;
    double dx = unit(&rng) * 3 - 1.5, dy = unit(&rng) * 3 - 1.5;
    double th = (unit(&rng) * 3 - 1.5) * M_PI / 180, gamma = 0.9 + unit(&rng) * 0.2;
    double cs = cos(th), sn = sin(th), m = SIDE / 2.0;
    for (unsigned y = 0; y < SIDE; y++)
        for (unsigned x = 0; x < SIDE; x++) {
            double sx = cs * (x - m) - sn * (y - m) + m + dx;
            double sy = sn * (x - m) + cs * (y - m) + m + dy;
            double v = 255 * pow(sample(img, sx, sy), gamma) + 2.0 * gauss(&rng);
            out[y * SIDE + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
}

static int write_pgm(const char *dir, unsigned id, char c, const uint8_t *pix) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%05u_%c.pgm", dir, id, c);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    fprintf(f, "P5\n%d %d\n255\n", SIDE, SIDE);
    size_t w = fwrite(pix, 1, (size_t)SIDE * SIDE, f);
    /* Renamed only when whole: an interrupted run leaves no short image behind. */
    if (fclose(f) || w != (size_t)SIDE * SIDE || rename(tmp, path))
        return -1;
    return 0;
}

static void *gen_thread(void *arg) {
    struct job *j = arg;
    double *img = malloc(sizeof *img * SIDE * SIDE);
    uint8_t *pix = malloc((size_t)SIDE * SIDE);
    for (unsigned id; img && pix && (id = atomic_fetch_add(&j->next, 1)) < j->n;) {
        identity_image(j->seed, id, img);
        for (unsigned c = 0; c < 3; c++) {
            capture(img, j->seed, id, c, pix);
            if (write_pgm(j->out, id, "abp"[c], pix)) {
                fprintf(stderr, "eleos-face-gen: %s/%05u_%c.pgm: %s\n", j->out, id, "abp"[c],
                        strerror(errno));
                atomic_store(&j->failed, 1);
                atomic_store(&j->next, j->n);
            }
        }
    }
    if (!img || !pix)
        atomic_store(&j->failed, 1);
    free(img);
    free(pix);
    return NULL;
}

static int write_keys(const char *dir, uint64_t seed, unsigned clients) {
    char path[4096];
    snprintf(path, sizeof path, "%s/keys", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    uint64_t rng = seed ^ 0x6b6579736b657973ull;
    fprintf(f, "# eleos-face client keys: <id> <AES-256 key, hex> (test keys from seed %llu)\n",
            (unsigned long long)seed);
    for (unsigned i = 0; i < clients; i++) {
        fprintf(f, "%u ", i);
        for (unsigned k = 0; k < 4; k++)
            fprintf(f, "%016llx", (unsigned long long)splitmix(&rng));
        fputc('\n', f);
    }
    return fclose(f) ? -1 : 0;
}

static int parse_u(const char *s, unsigned long long max, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v > max || *s == '-')
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"out", required_argument, NULL, 'o'},   {"seed", required_argument, NULL, 's'},
        {"identities", required_argument, NULL, 'n'}, {"clients", required_argument, NULL, 'k'},
        {"jobs", required_argument, NULL, 'j'},  {NULL, 0, NULL, 0}};
    const char *out = NULL;
    unsigned long long seed = 1, n = 994, clients = 128, jobs = 2;
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "o:s:n:k:j:", lo, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 's')
            bad |= parse_u(optarg, UINT64_MAX, &seed);
        else if (c == 'n')
            bad |= parse_u(optarg, 100000, &n) || n == 0;
        else if (c == 'k')
            bad |= parse_u(optarg, 4096, &clients) || clients == 0;
        else if (c == 'j')
            bad |= parse_u(optarg, 64, &jobs) || jobs == 0;
        else
            bad = 1;
    }
    if (bad || !out || optind < argc) {
        fprintf(stderr, "usage: eleos-face-gen --out DIR [--seed S] [--identities N (994)] "
                        "[--clients K (128)] [--jobs J (2)]\n");
        return 2;
    }
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "eleos-face-gen: %s: %s\n", out, strerror(errno));
        return 1;
    }
    struct job j = {.out = out, .seed = seed, .n = (unsigned)n};
    pthread_t th[64];
    for (unsigned i = 0; i < jobs; i++)
        pthread_create(&th[i], NULL, gen_thread, &j);
    for (unsigned i = 0; i < jobs; i++)
        pthread_join(th[i], NULL);
    if (atomic_load(&j.failed) || write_keys(out, seed, (unsigned)clients)) {
        fprintf(stderr, "eleos-face-gen: writing %s failed\n", out);
        return 1;
    }
    printf("eleos-face-gen: %llu identities, 3 captures each, %llu client keys in %s\n", n,
           clients, out);
    return 0;
}
