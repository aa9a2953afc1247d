/*
 * face_lbp.h — eleos-face's features: local binary patterns over blocks, the chi-square
 * distance between two histograms, and the PGM reader. Pure code (no system call, no
 * allocation): linked by the server (in every mode, inside the enclave in enclave modes),
 * the client, the generator and the unit tests.
 *
 * The feature of an image: each pixel's 8-neighbour LBP code (radius 1, bit k set when
 * neighbour k is at least the centre; neighbours beyond the border repeat the edge pixel);
 * the 58 uniform codes (at most two 0/1 transitions around the circle) each get a bin, the
 * 198 non-uniform codes none (the original's 58 x 1,024 x 4 B layout has no room for one);
 * one 58-bin histogram per 16 x 16-pixel block, blocks in row order. A 512 x 512 image gives
 * 1,024 blocks: 59,392 uint32 counts, 237,568 bytes.
 */
#ifndef ELEOS_FACE_LBP_H
#define ELEOS_FACE_LBP_H

#include <stddef.h>
#include <stdint.h>

#define FACE_BINS  58u
#define FACE_BLOCK 16u
/* The server's images (the original's). */
#define FACE_SIDE       512u
#define FACE_HIST_WORDS ((FACE_SIDE / FACE_BLOCK) * (FACE_SIDE / FACE_BLOCK) * FACE_BINS)
#define FACE_HIST_BYTES (FACE_HIST_WORDS * 4u)
/* Largest side the PGM reader accepts. */
#define FACE_PGM_MAX_SIDE 4096u

/* The bin of an 8-bit LBP code: 0..57, or -1 for a non-uniform code. */
int face_lbp_bin(unsigned code);

/* Words of the histogram of a w x h image (both multiples of FACE_BLOCK). */
static inline size_t face_hist_words(uint32_t w, uint32_t h) {
    return (size_t)(w / FACE_BLOCK) * (h / FACE_BLOCK) * FACE_BINS;
}

/* Fills hist (face_hist_words(w, h) words) from the w x h 8-bit image img (row-major).
 * w and h must be non-zero multiples of FACE_BLOCK: -1 otherwise, else 0. */
int face_lbp_hist(const uint8_t *img, uint32_t w, uint32_t h, uint32_t *hist);

/* The chi-square distance sum((a-b)^2 / (a+b)) over the n bins where a+b > 0. The same
 * order of operations everywhere, so every mode, the client's --verify and the tests get
 * bit-identical results. */
double face_chi2(const uint32_t *a, const uint32_t *b, size_t n);

/*
 * Parses a binary PGM (P5) from len bytes of buf: header "P5", width, height, maxval
 * (decimal, separated by whitespace, '#' comments to the end of a line allowed between
 * them), one whitespace byte, then exactly width*height bytes. Accepts maxval 1..255 only
 * and sides that are non-zero multiples of FACE_BLOCK up to FACE_PGM_MAX_SIDE. On success
 * sets *w, *h and *pix (pointing into buf) and returns 0; else -1. buf is host-controlled
 * input in the server: every field is checked before use.
 */
int face_pgm_parse(const uint8_t *buf, size_t len, uint32_t *w, uint32_t *h,
                   const uint8_t **pix);

#endif
