/*
 * test_face_lbp.c — eleos-face's features against a straightforward reference: the LBP
 * histograms of small images (random, smooth, constant, odd block counts) pixel by pixel
 * from the definition, the chi-square distance summed the obvious way, and the PGM reader on
 * good and malformed files.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "face_lbp.h"
#include "harness.h"

/* --- the reference: the definitions, written out ----------------------------------------- */

static unsigned ref_pixel(const uint8_t *img, int w, int h, int x, int y, int dx, int dy) {
    int nx = x + dx, ny = y + dy;
    if (nx < 0) nx = 0;
    if (ny < 0) ny = 0;
    if (nx >= w) nx = w - 1;
    if (ny >= h) ny = h - 1;
    return img[ny * w + nx];
}

/* Bits clockwise from the top-left neighbour. */
static unsigned ref_code(const uint8_t *img, int w, int h, int x, int y) {
    static const int d[8][2] = {{-1, -1}, {0, -1}, {1, -1}, {1, 0},
                                {1, 1},   {0, 1},  {-1, 1}, {-1, 0}};
    unsigned c = img[y * w + x], code = 0;
    for (int k = 0; k < 8; k++)
        if (ref_pixel(img, w, h, x, y, d[k][0], d[k][1]) >= c)
            code |= 1u << k;
    return code;
}

static int transitions(unsigned code) {
    int t = 0;
    for (int k = 0; k < 8; k++)
        t += ((code >> k) & 1) != ((code >> ((k + 1) % 8)) & 1);
    return t;
}

static int ref_bin(unsigned code) {
    if (transitions(code) > 2)
        return -1;
    int b = 0;
    for (unsigned c = 0; c < code; c++)
        b += transitions(c) <= 2;
    return b;
}

static void ref_hist(const uint8_t *img, int w, int h, uint32_t *hist) {
    memset(hist, 0, face_hist_words((uint32_t)w, (uint32_t)h) * 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int b = ref_bin(ref_code(img, w, h, x, y));
            int block = (y / 16) * (w / 16) + x / 16;
            if (b >= 0)
                hist[block * 58 + b]++;
        }
}

/* --- the tests ------------------------------------------------------------------------------ */

static void test_bins(void) {
    int uniform = 0;
    for (unsigned c = 0; c < 256; c++) {
        CHECK_EQ(face_lbp_bin(c), ref_bin(c));
        uniform += ref_bin(c) >= 0;
    }
    CHECK_EQ(uniform, 58);
    CHECK_EQ(face_lbp_bin(0), 0);
    CHECK_EQ(face_lbp_bin(255), 57);
    CHECK_EQ(face_lbp_bin(0x55), -1); /* 8 transitions */
    CHECK_EQ(face_lbp_bin(256), -1);
}

static void fill(uint8_t *img, int w, int h, int kind, unsigned seed) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            seed = seed * 1103515245u + 12345u;
            int v = kind == 0   ? (int)(seed >> 16) & 255                      /* noise    */
                    : kind == 1 ? (int)(128 + 100 * sin(x * 0.3) * cos(y * 0.2)) /* smooth */
                                : 77;                                        /* constant */
            img[y * w + x] = (uint8_t)v;
        }
}

static void test_hist_matches_reference(void) {
    static const int sizes[][2] = {{16, 16}, {32, 48}, {64, 32}, {80, 16}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int kind = 0; kind < 3; kind++) {
            int w = sizes[s][0], h = sizes[s][1];
            size_t n = face_hist_words((uint32_t)w, (uint32_t)h);
            uint8_t *img = malloc((size_t)w * h);
            uint32_t *a = malloc(n * 4), *b = malloc(n * 4);
            REQUIRE(img && a && b);
            fill(img, w, h, kind, (unsigned)(s * 7 + (size_t)kind));
            CHECK_EQ(face_lbp_hist(img, (uint32_t)w, (uint32_t)h, a), 0);
            ref_hist(img, w, h, b);
            CHECK(memcmp(a, b, n * 4) == 0);
            if (kind == 2) /* every neighbour equals the centre: code 0xff, the last bin */
                CHECK_EQ(a[57], 256);
            free(img), free(a), free(b);
        }
}

static void test_hist_rejects_bad_sizes(void) {
    uint8_t img[32 * 32] = {0};
    uint32_t hist[4 * 58];
    CHECK_EQ(face_lbp_hist(img, 0, 16, hist), -1);
    CHECK_EQ(face_lbp_hist(img, 17, 16, hist), -1);
    CHECK_EQ(face_lbp_hist(img, 16, 8, hist), -1);
    CHECK_EQ(face_lbp_hist(img, 32, 32, hist), 0);
}

static double ref_chi2(const uint32_t *a, const uint32_t *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] + b[i] > 0)
            d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]) / ((double)a[i] + b[i]);
    return d;
}

static void test_chi2(void) {
    uint32_t a[3] = {1, 0, 2}, b[3] = {0, 0, 2};
    CHECK(face_chi2(a, b, 3) == 1.0);
    CHECK(face_chi2(a, a, 3) == 0.0);
    uint32_t x[500], y[500];
    unsigned s = 99;
    for (int i = 0; i < 500; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (s >> 16) % 300;
        y[i] = (s >> 8) % 7 == 0 ? 0 : (s >> 20) % 300;
    }
    double d = face_chi2(x, y, 500), r = ref_chi2(x, y, 500);
    CHECK(fabs(d - r) <= 1e-9 * r);
    CHECK(face_chi2(x, y, 500) == face_chi2(y, x, 500)); /* symmetric, bit for bit */
    uint32_t big[2] = {UINT32_MAX, UINT32_MAX}, zero[2] = {0, 0};
    /* No overflow in a + b. */
    CHECK(fabs(face_chi2(big, zero, 2) - 2.0 * UINT32_MAX) <= 1e-6 * UINT32_MAX);
}

static int parse(const char *s, size_t len, uint32_t *w, uint32_t *h) {
    const uint8_t *pix;
    return face_pgm_parse((const uint8_t *)s, len, w, h, &pix);
}

static void test_pgm(void) {
    uint8_t file[64 + 16 * 32];
    int hl = snprintf((char *)file, 64, "P5\n# a comment\n16 32\n255\n");
    memset(file + hl, 7, 16 * 32);
    uint32_t w = 0, h = 0;
    const uint8_t *pix;
    CHECK_EQ(face_pgm_parse(file, (size_t)hl + 512, &w, &h, &pix), 0);
    CHECK_EQ(w, 16);
    CHECK_EQ(h, 32);
    CHECK(pix == file + hl && pix[0] == 7);
    CHECK_EQ(face_pgm_parse(file, (size_t)hl + 511, &w, &h, &pix), -1); /* short */
    CHECK_EQ(face_pgm_parse(file, (size_t)hl + 513, &w, &h, &pix), -1); /* trailing */
    CHECK_EQ(parse("P6\n16 16\n255\n", 13, &w, &h), -1);
    CHECK_EQ(parse("P5\n16 16\n256\n", 13, &w, &h), -1);
    CHECK_EQ(parse("P5\n16 16\n0\n", 11, &w, &h), -1);
    CHECK_EQ(parse("P5\n15 16\n255\n", 13, &w, &h), -1);
    CHECK_EQ(parse("P5\n99999999999999999999 16\n255\n", 31, &w, &h), -1);
    CHECK_EQ(parse("P5\n8192 16\n255\n", 15, &w, &h), -1);
    CHECK_EQ(parse("P5\n16", 5, &w, &h), -1);
    CHECK_EQ(parse("P5\n-16 16\n255\n", 14, &w, &h), -1);
    CHECK_EQ(parse("P", 1, &w, &h), -1);
    CHECK_EQ(parse("", 0, &w, &h), -1);
}

TEST_MAIN(TEST_CASE(test_bins), TEST_CASE(test_hist_matches_reference),
          TEST_CASE(test_hist_rejects_bad_sizes), TEST_CASE(test_chi2), TEST_CASE(test_pgm))
