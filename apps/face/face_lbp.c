/*
 * face_lbp.c — LBP histograms, chi-square and the PGM reader (face_lbp.h).
 */
#include "face_lbp.h"

#include <stdbool.h>
#include <string.h>

int face_lbp_bin(unsigned code) {
    if (code > 255)
        return -1;
    /* Rank among uniform codes in increasing order: computed, not tabled, so that the
     * mapping is visibly the definition (a code is uniform when it has at most two
     * transitions around the circle). */
    int bin = 0;
    for (unsigned c = 0; c <= code; c++) {
        unsigned rot = ((c >> 1) | (c << 7)) & 0xffu;
        int uniform = __builtin_popcount(c ^ rot) <= 2;
        if (c == code)
            return uniform ? bin : -1;
        bin += uniform;
    }
    return -1;
}

/* Neighbour order: clockwise from the top-left, so that bit k and bit k+1 are adjacent. */
static const int8_t NDX[8] = {-1, 0, 1, 1, 1, 0, -1, -1};
static const int8_t NDY[8] = {-1, -1, -1, 0, 1, 1, 1, 0};

static unsigned code_at_edge(const uint8_t *img, uint32_t w, uint32_t h, uint32_t x,
                             uint32_t y) {
    uint8_t c = img[(size_t)y * w + x];
    unsigned code = 0;
    for (unsigned k = 0; k < 8; k++) {
        int64_t nx = (int64_t)x + NDX[k], ny = (int64_t)y + NDY[k];
        nx = nx < 0 ? 0 : nx >= (int64_t)w ? (int64_t)w - 1 : nx;
        ny = ny < 0 ? 0 : ny >= (int64_t)h ? (int64_t)h - 1 : ny;
        code |= (unsigned)(img[(size_t)ny * w + (size_t)nx] >= c) << k;
    }
    return code;
}

/* The interior row y (1 <= y < h-1), pixels 1..w-2, without bounds checks. */
static void row_codes(const uint8_t *img, uint32_t w, uint32_t y, uint8_t *codes) {
    const uint8_t *up = img + (size_t)(y - 1) * w, *mid = up + w, *dn = mid + w;
    for (uint32_t x = 1; x + 1 < w; x++) {
        uint8_t c = mid[x];
        codes[x] = (uint8_t)((up[x - 1] >= c) | (up[x] >= c) << 1 | (up[x + 1] >= c) << 2 |
                             (mid[x + 1] >= c) << 3 | (dn[x + 1] >= c) << 4 |
                             (dn[x] >= c) << 5 | (dn[x - 1] >= c) << 6 |
                             (mid[x - 1] >= c) << 7);
    }
}

int face_lbp_hist(const uint8_t *img, uint32_t w, uint32_t h, uint32_t *hist) {
    if (!w || !h || w % FACE_BLOCK || h % FACE_BLOCK || w > FACE_PGM_MAX_SIDE ||
        h > FACE_PGM_MAX_SIDE)
        return -1;
    int8_t bins[256];
    for (unsigned c = 0; c < 256; c++)
        bins[c] = (int8_t)face_lbp_bin(c);
    memset(hist, 0, face_hist_words(w, h) * sizeof *hist);
    uint8_t codes[FACE_PGM_MAX_SIDE];
    uint32_t bw = w / FACE_BLOCK;
    for (uint32_t y = 0; y < h; y++) {
        if (y > 0 && y + 1 < h)
            row_codes(img, w, y, codes);
        for (uint32_t x = 0; x < w; x++) {
            bool edge = y == 0 || y + 1 == h || x == 0 || x + 1 == w;
            unsigned code = edge ? code_at_edge(img, w, h, x, y) : codes[x];
            int b = bins[code];
            if (b >= 0)
                hist[((size_t)(y / FACE_BLOCK) * bw + x / FACE_BLOCK) * FACE_BINS + (size_t)b]++;
        }
    }
    return 0;
}

double face_chi2(const uint32_t *a, const uint32_t *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = (uint64_t)a[i] + b[i];
        if (s) {
            double diff = (double)a[i] - (double)b[i];
            d += diff * diff / (double)s;
        }
    }
    return d;
}

/* --- PGM ------------------------------------------------------------------------------- */

static int is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and comments, then reads a decimal number up to max: 0 or -1. */
static int pgm_number(const uint8_t *buf, size_t len, size_t *pos, uint32_t max,
                      uint32_t *out) {
    size_t p = *pos;
    for (;;) {
        while (p < len && is_ws(buf[p]))
            p++;
        if (p < len && buf[p] == '#') {
            while (p < len && buf[p] != '\n')
                p++;
            continue;
        }
        break;
    }
    uint64_t v = 0;
    size_t start = p;
    while (p < len && buf[p] >= '0' && buf[p] <= '9' && p - start < 10)
        v = v * 10 + (uint64_t)(buf[p++] - '0');
    if (p == start || v > max || (p < len && buf[p] >= '0' && buf[p] <= '9'))
        return -1;
    *pos = p;
    *out = (uint32_t)v;
    return 0;
}

int face_pgm_parse(const uint8_t *buf, size_t len, uint32_t *w, uint32_t *h,
                   const uint8_t **pix) {
    size_t p = 2;
    uint32_t ww, hh, maxval;
    if (len < 2 || buf[0] != 'P' || buf[1] != '5')
        return -1;
    if (pgm_number(buf, len, &p, FACE_PGM_MAX_SIDE, &ww) ||
        pgm_number(buf, len, &p, FACE_PGM_MAX_SIDE, &hh) ||
        pgm_number(buf, len, &p, 255, &maxval))
        return -1;
    /* Exactly one whitespace byte ends the header; the pixels fill the rest exactly. */
    if (maxval == 0 || p >= len || !is_ws(buf[p]))
        return -1;
    p++;
    if (!ww || !hh || ww % FACE_BLOCK || hh % FACE_BLOCK || len - p != (size_t)ww * hh)
        return -1;
    *w = ww;
    *h = hh;
    *pix = buf + p;
    return 0;
}
