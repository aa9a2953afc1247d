/*
 * test_face_proto.c — eleos-face's wire protocol: sealed requests and answers round-trip and
 * refuse a flipped byte, a wrong key, a wrong seq or a wrong direction; header checks; the
 * replay window (fresh, duplicate, overtaken, below the window, large jumps); the key file
 * parser on good and malformed files.
 */
#include <stdlib.h>
#include <string.h>

#include "face_proto.h"
#include "harness.h"

static uint8_t key1[FACE_KEY_BYTES], key2[FACE_KEY_BYTES];

static struct face_probe *probe_new(uint32_t id) {
    struct face_probe *p = calloc(1, sizeof *p);
    REQUIRE(p);
    p->identity = id;
    for (uint32_t i = 0; i < FACE_HIST_WORDS; i++)
        p->hist[i] = i * 2654435761u;
    return p;
}

/* The server's side of a request in buf: 0 and the plaintext, or -1. */
static int server_open(void *g, const uint8_t *key, const uint8_t *buf, struct face_probe *out) {
    struct face_req h;
    memcpy(&h, buf, sizeof h);
    if (face_req_check(&h) != FACE_OK)
        return -1;
    const uint8_t *ct = buf + sizeof h;
    return face_open(g, key, 0, h.seq, &h, sizeof h, ct, out, FACE_PROBE_BYTES,
                     ct + FACE_PROBE_BYTES);
}

static void test_request_roundtrip_and_tamper(void) {
    void *g = face_gcm_new();
    struct face_probe *p = probe_new(42), *q = calloc(1, sizeof *q);
    uint8_t *buf = malloc(FACE_REQ_BYTES);
    REQUIRE(g && q && buf);
    CHECK_EQ(face_req_build(g, key1, 7, 1000, p, buf), 0);
    CHECK_EQ(server_open(g, key1, buf, q), 0);
    CHECK(memcmp(p, q, sizeof *p) == 0);
    /* The ciphertext is not the plaintext. */
    CHECK(memcmp(buf + sizeof(struct face_req) + 8, p->hist, 64) != 0);
    CHECK_EQ(server_open(g, key2, buf, q), -1);                 /* wrong key */
    CHECK_EQ(q->identity, 0);                                   /* wiped     */
    size_t spots[] = {sizeof(struct face_req) + 3, FACE_REQ_BYTES / 2, FACE_REQ_BYTES - 1};
    for (size_t i = 0; i < 3; i++) {
        buf[spots[i]] ^= 0x20;
        CHECK_EQ(server_open(g, key1, buf, q), -1);
        buf[spots[i]] ^= 0x20;
    }
    struct face_req h;
    memcpy(&h, buf, sizeof h);
    h.seq++; /* the header is authenticated: a new seq on old bytes fails */
    memcpy(buf, &h, sizeof h);
    CHECK_EQ(server_open(g, key1, buf, q), -1);
    h.seq--;
    h.len = 100;
    CHECK_EQ(face_req_check(&h), FACE_E_FRAME);
    h.len = FACE_PROBE_BYTES;
    h.magic ^= 1;
    CHECK_EQ(face_req_check(&h), FACE_E_FRAME);
    h.magic ^= 1;
    h.reserved = 1;
    CHECK_EQ(face_req_check(&h), FACE_E_FRAME);
    free(p), free(q), free(buf);
    face_gcm_free(g);
}

static void test_answers(void) {
    void *g = face_gcm_new();
    uint8_t buf[FACE_ANS_MAX];
    struct face_result r = {3, 1, 1234.5}, out;
    enum face_status st;
    size_t n = face_ans_build(g, key1, 9, 77, FACE_OK, &r, buf);
    CHECK_EQ(n, FACE_ANS_MAX);
    CHECK_EQ(face_ans_open(g, key1, 9, 77, buf, n, &st, &out), 0);
    CHECK_EQ(st, FACE_OK);
    CHECK(out.identity == 3 && out.accept == 1 && out.distance == 1234.5);
    CHECK_EQ(face_ans_open(g, key2, 9, 77, buf, n, &st, &out), -1);  /* wrong key      */
    CHECK_EQ(face_ans_open(g, key1, 9, 78, buf, n, &st, &out), -1);  /* another seq    */
    CHECK_EQ(face_ans_open(g, key1, 8, 77, buf, n, &st, &out), -1);  /* another client */
    CHECK_EQ(face_ans_open(g, key1, 9, 77, buf, n - 1, &st, &out), -1);
    buf[n - 20] ^= 1;
    CHECK_EQ(face_ans_open(g, key1, 9, 77, buf, n, &st, &out), -1);
    /* An answer sealed as a request (direction 0) does not open as an answer. */
    struct face_ans h = {FACE_ANS_MAGIC, FACE_OK, 77, sizeof r, 9};
    memcpy(buf, &h, sizeof h);
    CHECK_EQ(face_seal(g, key1, 0, 77, &h, sizeof h, &r, buf + sizeof h, sizeof r,
                       buf + sizeof h + sizeof r), 0);
    CHECK_EQ(face_ans_open(g, key1, 9, 77, buf, FACE_ANS_MAX, &st, &out), -1);
    /* A refusal in clear. */
    n = face_ans_build(g, NULL, 9, 77, FACE_E_REPLAY, NULL, buf);
    CHECK_EQ(n, sizeof(struct face_ans));
    CHECK_EQ(face_ans_open(g, key1, 9, 77, buf, n, &st, &out), 0);
    CHECK_EQ(st, FACE_E_REPLAY);
    /* A sealed-looking OK claimed in clear is refused. */
    h = (struct face_ans){FACE_ANS_MAGIC, FACE_NSTATUS, 77, 0, 9};
    memcpy(buf, &h, sizeof h);
    CHECK_EQ(face_ans_open(g, key1, 9, 77, buf, sizeof h, &st, &out), -1);
    face_gcm_free(g);
}

static void test_window(void) {
    struct face_window w;
    memset(&w, 0, sizeof w);
    CHECK(!face_window_check(&w, 0));
    CHECK(face_window_check(&w, 5));
    face_window_commit(&w, 5);
    CHECK(!face_window_check(&w, 5));                /* replay                  */
    CHECK(face_window_check(&w, 3));                 /* overtaken, still fresh  */
    face_window_commit(&w, 3);
    CHECK(!face_window_check(&w, 3));
    face_window_commit(&w, 5000);
    CHECK(!face_window_check(&w, 5000));
    CHECK(!face_window_check(&w, 5000 - FACE_WINDOW)); /* below the window     */
    CHECK(face_window_check(&w, 5000 - FACE_WINDOW + 1));
    CHECK(face_window_check(&w, 4999));
    /* Slots reused by the slide are fresh, those of accepted seqs are not. */
    face_window_commit(&w, 4000);
    face_window_commit(&w, 5001);
    CHECK(!face_window_check(&w, 4000));
    CHECK(face_window_check(&w, 4001));
    face_window_commit(&w, 5000 + FACE_WINDOW);      /* slides over 4000's slot  */
    CHECK(!face_window_check(&w, 4000));             /* now below the window    */
    CHECK(face_window_check(&w, 5000 + FACE_WINDOW - 1));
    CHECK(!face_window_check(&w, 5000 + FACE_WINDOW));
    face_window_commit(&w, UINT64_MAX - 1);
    CHECK(!face_window_check(&w, 5000 + FACE_WINDOW - 1));
    CHECK(face_window_check(&w, UINT64_MAX));
}

static int keys_parse(const char *s, struct face_keys *k, unsigned *line) {
    return face_keys_parse(s, strlen(s), k, line);
}

static void test_keys(void) {
    struct face_keys *k = malloc(sizeof *k);
    unsigned line;
    REQUIRE(k);
    const char *good = "# comment\n\n3 000102030405060708090a0b0c0d0e0f"
                       "101112131415161718191a1b1c1d1e1f\n"
                       "  4095\tFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\n";
    CHECK_EQ(keys_parse(good, k, &line), 0);
    CHECK_EQ(k->count, 2);
    CHECK(k->present[3] && k->present[4095] && !k->present[0]);
    CHECK(k->key[3][0] == 0 && k->key[3][31] == 0x1f && k->key[4095][5] == 0xff);
    const char *bad[] = {
        "",                                              /* no key     */
        "# only a comment\n",
        "3 0001\n",                                      /* short key  */
        "3 zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "4096 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "3 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00\n",
        "x 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "3 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
        "3 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(keys_parse(bad[i], k, &line), -1);
        CHECK_EQ(k->count, 0); /* nothing half-parsed survives */
    }
    CHECK_EQ(keys_parse(bad[7], k, &line), -1);
    CHECK_EQ(line, 2); /* the duplicate's line */
    free(k);
}

int main(void) {
    for (unsigned i = 0; i < FACE_KEY_BYTES; i++)
        key1[i] = (uint8_t)i, key2[i] = (uint8_t)(i + 1);
    static const struct harness_case cases[] = {
        TEST_CASE(test_request_roundtrip_and_tamper), TEST_CASE(test_answers),
        TEST_CASE(test_window), TEST_CASE(test_keys)};
    return harness_run(__FILE__, cases, sizeof cases / sizeof cases[0]);
}
