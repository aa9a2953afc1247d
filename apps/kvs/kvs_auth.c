/*
 * kvs_auth.c — the credential table (see kvs_auth.h).
 */
#include "kvs_auth.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

struct kvs_cred {
    char *user, *pass;
    size_t ulen, plen;
};

struct kvs_auth {
    const struct kvs_alloc *alloc;
    unsigned n;
    struct kvs_cred *cred;
    char *text;                 /* a private copy the entries point into */
};

static unsigned count_lines(const char *text, size_t len) {
    unsigned n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

/* Splits the copy in place; 0 or the 1-based number of the first bad line. */
static unsigned split(struct kvs_auth *t, char *s, size_t len) {
    unsigned line = 0;
    size_t i = 0;
    while (i < len) {
        line++;
        char *nl = memchr(s + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - s) : len;
        size_t e = end;
        if (e > i && s[e - 1] == '\r')
            e--;
        if (e > i) {
            char *colon = memchr(s + i, ':', e - i);
            if (!colon || colon == s + i)
                return line;
            struct kvs_cred *c = &t->cred[t->n++];
            c->user = s + i;
            c->ulen = (size_t)(colon - (s + i));
            c->pass = colon + 1;
            c->plen = (size_t)(s + e - (colon + 1));
        }
        i = end + 1;
    }
    return 0;
}

int kvs_auth_parse(const struct kvs_alloc *a, const char *text, size_t len,
                   struct kvs_auth **out, unsigned *bad_line) {
    *out = NULL;
    *bad_line = 0;
    if (len > KVS_AUTH_FILE_MAX)
        return -EINVAL;
    struct kvs_auth *t = kvs_malloc(a, sizeof *t);
    if (!t)
        return -ENOMEM;
    memset(t, 0, sizeof *t);
    t->alloc = a;
    t->text = kvs_malloc(a, len ? len : 1);
    t->cred = kvs_malloc(a, count_lines(text, len) * sizeof *t->cred);
    if (!t->text || !t->cred) {
        kvs_auth_free(t);
        return -ENOMEM;
    }
    memcpy(t->text, text, len);
    unsigned bad = split(t, t->text, len);
    if (bad) {
        *bad_line = bad;
        kvs_auth_free(t);
        return -EINVAL;
    }
    *out = t;
    return 0;
}

/* Equal lengths and bytes, reading every byte of the longer candidate whatever differs. */
static bool same(const char *a, size_t alen, const char *b, size_t blen) {
    uint8_t diff = alen != blen;
    for (size_t i = 0; i < blen; i++)
        diff |= (uint8_t)(b[i] ^ (i < alen ? a[i] : 0));
    return diff == 0;
}

bool kvs_auth_check(const struct kvs_auth *t, const char *user, size_t ulen, const char *pass,
                    size_t plen) {
    bool ok = false;
    for (unsigned i = 0; t && i < t->n; i++) {
        const struct kvs_cred *c = &t->cred[i];
        bool u = same(c->user, c->ulen, user, ulen);
        bool p = same(c->pass, c->plen, pass, plen);
        ok |= u & p;
    }
    return ok;
}

unsigned kvs_auth_count(const struct kvs_auth *t) {
    return t ? t->n : 0;
}

void kvs_auth_free(struct kvs_auth *t) {
    if (!t)
        return;
    kvs_free(t->alloc, t->text);
    kvs_free(t->alloc, t->cred);
    kvs_free(t->alloc, t);
}
