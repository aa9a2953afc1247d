/*
 * eleos-kvs-load's request encoders and reply decoders (see kvs_load_proto.h).
 *
 *   text    get <key>                     -> VALUE <key> <flags> <bytes>\r\n<data>\r\nEND | END
 *           set <key> <flags> 0 <bytes>   -> STORED
 *   binary  GET (0x00), SET (0x01): the plain opcodes, never the quiet ones, so every
 *           request has exactly one reply; opaque = the caller's tag, checked on the reply.
 *           GET -> status 0 + 4-byte flags extra + value | status 1 (not found)
 *           SET (8-byte extras: flags, exptime 0) -> status 0
 *   meta    mg <key> v f                  -> VA <bytes> f<flags>\r\n<data>\r\n | EN
 *           ms <key> <bytes> F<flags>     -> HD
 * Anything else is KL_UNEXPECTED when it can still be framed (an error line, a binary reply
 * with an error status), else KL_FATAL.
 */
#include "kvs_load_proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define BIN_REQ 0x80u
#define BIN_RES 0x81u
#define BIN_GET 0x00u
#define BIN_SET 0x01u
#define BIN_HDR 24u
#define BIN_ENOENT 0x0001u

static const char *const names[] = {[KL_TEXT] = "text", [KL_BINARY] = "binary", [KL_META] = "meta"};

const char *kl_proto_name(enum kl_proto p) { return names[p]; }

bool kl_proto_parse_name(const char *s, enum kl_proto *out) {
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum kl_proto)i;
            return true;
        }
    return false;
}

const char *kl_excerpt(const char *p, size_t n, char *buf, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < cap; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 32 && ch < 127)
            buf[k++] = (char)ch;
        else
            k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", ch);
    }
    if (n > 0 && k + 5 >= cap)
        memcpy(buf + cap - 4, "...", 3), k = cap - 1;
    buf[k] = 0;
    return buf;
}

/* --- encoders ----------------------------------------------------------------------------- */

static void put16(unsigned char *d, uint32_t v) { d[0] = (unsigned char)(v >> 8), d[1] = (unsigned char)v; }
static void put32(unsigned char *d, uint32_t v) { put16(d, v >> 16), put16(d + 2, v & 0xffffu); }
static uint32_t get16(const unsigned char *s) { return (uint32_t)s[0] << 8 | s[1]; }
static uint32_t get32(const unsigned char *s) { return get16(s) << 16 | get16(s + 2); }

/* A binary request header; the body (extras, key, value) follows. */
static void bin_header(char *dst, unsigned op, size_t klen, unsigned extlen, size_t bodylen,
                       uint32_t opaque) {
    unsigned char *h = (unsigned char *)dst;
    memset(h, 0, BIN_HDR);
    h[0] = BIN_REQ;
    h[1] = (unsigned char)op;
    put16(h + 2, (uint32_t)klen);
    h[4] = (unsigned char)extlen;
    put32(h + 8, (uint32_t)bodylen);
    memcpy(h + 12, &opaque, 4); /* opaque: echoed byte for byte, so no byte order */
}

static size_t line_cmd(char *dst, const char *verb, const char *key, size_t klen) {
    size_t n = strlen(verb);
    memcpy(dst, verb, n);
    memcpy(dst + n, key, klen);
    return n + klen;
}

size_t kl_encode_get(enum kl_proto p, char *dst, const char *key, size_t klen, uint32_t opaque) {
    size_t n;
    switch (p) {
    case KL_BINARY:
        bin_header(dst, BIN_GET, klen, 0, klen, opaque);
        memcpy(dst + BIN_HDR, key, klen);
        return BIN_HDR + klen;
    case KL_META:
        n = line_cmd(dst, "mg ", key, klen);
        memcpy(dst + n, " v f\r\n", 6);
        return n + 6;
    case KL_TEXT:
    default:
        n = line_cmd(dst, "get ", key, klen);
        memcpy(dst + n, "\r\n", 2);
        return n + 2;
    }
}

size_t kl_encode_set_head(enum kl_proto p, char *dst, const char *key, size_t klen,
                          uint32_t flags, size_t vlen, uint32_t opaque) {
    size_t n;
    switch (p) {
    case KL_BINARY: {
        bin_header(dst, BIN_SET, klen, 8, 8 + klen + vlen, opaque);
        unsigned char *x = (unsigned char *)dst + BIN_HDR;
        put32(x, flags);
        put32(x + 4, 0); /* exptime: never */
        memcpy(dst + BIN_HDR + 8, key, klen);
        return BIN_HDR + 8 + klen;
    }
    case KL_META:
        n = line_cmd(dst, "ms ", key, klen);
        return n + (size_t)snprintf(dst + n, 48, " %zu F%" PRIu32 "\r\n", vlen, flags);
    case KL_TEXT:
    default:
        n = line_cmd(dst, "set ", key, klen);
        return n + (size_t)snprintf(dst + n, 48, " %" PRIu32 " 0 %zu\r\n", flags, vlen);
    }
}

size_t kl_encode_set_tail(enum kl_proto p, char *dst) {
    if (p == KL_BINARY)
        return 0;
    memcpy(dst, "\r\n", 2);
    return 2;
}

/* --- decoders ----------------------------------------------------------------------------- */

static bool parse_u64(const char **p, const char *end, uint64_t *out) {
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    *p = s;
    *out = v;
    return true;
}

static enum kl_reply fatal(struct kl_parsed *r, const char *why, const char *p, size_t n) {
    char ex[120];
    snprintf(r->what, sizeof r->what, "protocol error: %s \"%s\"", why, kl_excerpt(p, n, ex, sizeof ex));
    return KL_FATAL;
}

static enum kl_reply unexpected_line(struct kl_parsed *r, const char *p, size_t ll) {
    char ex[160];
    snprintf(r->what, sizeof r->what, "reply \"%s\"", kl_excerpt(p, ll, ex, sizeof ex));
    r->len = ll + 2;
    return KL_UNEXPECTED;
}

/* A value reply's data block: bytes of data, CRLF, then trailer (e.g. "END\r\n"). */
static enum kl_reply value_block(struct kl_parsed *r, const char *buf, size_t avail, size_t ll,
                                 const char *trailer) {
    size_t tl = strlen(trailer);
    if (r->bytes > KL_VALUE_MAX)
        return fatal(r, "value length out of range in", buf, ll);
    size_t total = ll + 2 + (size_t)r->bytes + 2 + tl;
    if (avail < total) {
        r->len = total;
        return KL_NEED;
    }
    r->data = buf + ll + 2;
    if (memcmp(r->data + r->bytes, "\r\n", 2) != 0 || memcmp(r->data + r->bytes + 2, trailer, tl) != 0)
        return fatal(r, "value not followed by CRLF and the reply's end after", buf, ll);
    r->len = total;
    return KL_HIT;
}

/* VALUE <key> <flags> <bytes>[ <cas>] */
static enum kl_reply text_value(const char *buf, size_t avail, size_t ll, struct kl_parsed *r) {
    const char *s = buf + 6, *end = buf + ll;
    r->key = s;
    while (s < end && *s != ' ')
        s++;
    r->klen = (size_t)(s - r->key);
    bool ok = s < end && *s++ == ' ' && parse_u64(&s, end, &r->flags) && s < end &&
              *s++ == ' ' && parse_u64(&s, end, &r->bytes) && (s == end || *s == ' ');
    if (!ok)
        return fatal(r, "bad VALUE line", buf, ll);
    return value_block(r, buf, avail, ll, "END\r\n");
}

/* VA <bytes> <flags>*: the f flag carries the client flags. */
static enum kl_reply meta_value(const char *buf, size_t avail, size_t ll, struct kl_parsed *r) {
    const char *s = buf + 3, *end = buf + ll;
    if (!parse_u64(&s, end, &r->bytes) || (s < end && *s != ' '))
        return fatal(r, "bad VA line", buf, ll);
    bool have_flags = false;
    while (s < end) {
        s++; /* the space */
        if (s < end && *s == 'f') {
            s++;
            if (!parse_u64(&s, end, &r->flags))
                return fatal(r, "bad f flag in", buf, ll);
            have_flags = true;
        }
        while (s < end && *s != ' ')
            s++;
    }
    if (!have_flags)
        return fatal(r, "VA line without the f flag asked for", buf, ll);
    return value_block(r, buf, avail, ll, "");
}

static enum kl_reply parse_line(enum kl_proto p, bool is_get, const char *buf, size_t avail,
                                struct kl_parsed *r) {
    const char *nl = avail >= 2 ? memmem(buf, avail, "\r\n", 2) : NULL;
    if (!nl) {
        if (avail > KL_LINE_MAX)
            return fatal(r, "reply line without CRLF", buf, 60);
        r->len = 0;
        return KL_NEED;
    }
    size_t ll = (size_t)(nl - buf);
#define IS(lit) (ll == sizeof(lit) - 1 && memcmp(buf, lit, sizeof(lit) - 1) == 0)
    if (!is_get) {
        if (p == KL_META ? IS("HD") : IS("STORED")) {
            r->len = ll + 2;
            return KL_STORED;
        }
        return unexpected_line(r, buf, ll);
    }
    if (p == KL_META ? IS("EN") : IS("END")) {
        r->len = ll + 2;
        return KL_MISS;
    }
#undef IS
    if (p == KL_TEXT && ll > 6 && memcmp(buf, "VALUE ", 6) == 0)
        return text_value(buf, avail, ll, r);
    if (p == KL_META && ll > 3 && memcmp(buf, "VA ", 3) == 0)
        return meta_value(buf, avail, ll, r);
    return unexpected_line(r, buf, ll);
}

static enum kl_reply parse_binary(bool is_get, const char *buf, size_t avail, struct kl_parsed *r) {
    const unsigned char *h = (const unsigned char *)buf;
    if (avail >= 1 && h[0] != BIN_RES)
        return fatal(r, "reply does not start with the binary response magic 0x81:", buf,
                     avail < 60 ? avail : 60);
    if (avail < BIN_HDR) {
        r->len = BIN_HDR;
        return KL_NEED;
    }
    uint32_t klen = get16(h + 2), extlen = h[4], status = get16(h + 6), body = get32(h + 8);
    if ((uint64_t)klen + extlen > body || body > KL_VALUE_MAX + 1024u)
        return fatal(r, "bad binary header (key + extras > body, or body too long):", buf, BIN_HDR);
    r->len = BIN_HDR + (size_t)body;
    if (avail < r->len)
        return KL_NEED;
    r->has_opaque = true;
    memcpy(&r->opaque, h + 12, 4);
    unsigned want_op = is_get ? BIN_GET : BIN_SET;
    const char *b = buf + BIN_HDR;
    char ex[120];
    if (h[1] != want_op || (status != 0 && !(is_get && status == BIN_ENOENT))) {
        size_t n = body - extlen - klen;
        snprintf(r->what, sizeof r->what, "binary reply opcode 0x%02x status 0x%04" PRIx32 " \"%s\"",
                 h[1], status, kl_excerpt(b + extlen + klen, n, ex, sizeof ex));
        return KL_UNEXPECTED;
    }
    if (!is_get)
        return KL_STORED;
    if (status == BIN_ENOENT)
        return KL_MISS;
    if (extlen != 4)
        return fatal(r, "binary GET reply without its 4-byte flags extra:", buf, BIN_HDR);
    r->flags = get32((const unsigned char *)b);
    if (klen) { /* only GETK echoes the key; accept it if a server sends it anyway */
        r->key = b + 4;
        r->klen = klen;
    }
    r->data = b + 4 + klen;
    r->bytes = body - 4 - klen;
    return KL_HIT;
}

enum kl_reply kl_parse_reply(enum kl_proto p, bool is_get, const char *buf, size_t avail,
                             struct kl_parsed *r) {
    memset(r, 0, offsetof(struct kl_parsed, what));
    r->what[0] = 0;
    if (p == KL_BINARY)
        return parse_binary(is_get, buf, avail, r);
    return parse_line(p, is_get, buf, avail, r);
}
