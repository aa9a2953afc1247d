/*
 * kvs_meta.c — memcached 1.6.18's meta protocol: mg, ms, md, ma, mn, me.
 *
 * Written from memcached's doc/protocol.txt and the behaviour of its proto_text.c (replies
 * are compared byte for byte against a real memcached by tests/integration/test_kvs_meta.py).
 * The rules that shape this file:
 *
 * - Flags are single characters, the first of each token after the key (ms: after the data
 *   length). A first pass (meta_preparse) rejects duplicates and unknown flags and parses
 *   the numeric ones; a second pass walks the tokens in request order and builds the reply
 *   line, so the order of the returned flags is the request's, and a flag that changes the
 *   item (T, N) affects only the flags after it (t before T shows the old TTL).
 * - mg/md/ma hold the store lock across lookup, update and reply (memcached holds the item
 *   lock), through kvs_store_meta_lock(); nothing in between may call another store function.
 * - q suppresses only the nominal reply: EN for mg, HD for ms/md, HD/VA of a successful ma;
 *   errors are always sent (memcached's out_errstring).
 * - W/X/Z: an item marked stale by "md I" answers X, and the first client to see it also
 *   gets W (the right to recache; the item remembers a token was sent and later clients get
 *   Z). R<ttl> hands out W once when the remaining TTL drops below ttl; N<ttl> vivifies a
 *   miss as an empty item and hands its creator W.
 * - cmd_meta counts `me` only, as memcached 1.6.18 does; mg counts get or touch
 *   (with T) hits and misses, ms set_cmds and cas_*, md delete_*, ma incr/decr_*.
 */
#include "kvs_meta.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "kvs_store.h"

/* memcached's MFLAG_MAX_OPT_LENGTH (a limit on tokens) and MFLAG_MAX_OPAQUE_LENGTH. */
#define META_MAX_TOKENS 20u
#define META_MAX_OPAQUE 32u
/* memcached builds a meta reply line in its 1 KiB write buffer; ours is bounded likewise. */
#define META_LINE_MAX 1024u
/* A 64-bit decimal and its NUL (ma's result). */
#define META_NUM_MAX 24u

static const char BAD_FORMAT[] = "CLIENT_ERROR bad command line format";
static const char BAD_TOKEN[] = "CLIENT_ERROR bad token in command line format";
static const char OPAQUE_LONG[] = "CLIENT_ERROR opaque token too long";

/* --- base64 (memcached's alphabet and rules) ------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for the alphabet, 0 for '=', -1 for anything else (skipped). */
static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    if (c == '=')
        return 0;
    return -1;
}

size_t kvs_base64_decode(const char *src, size_t len, char *dst, size_t cap) {
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        if (b64_value((unsigned char)src[i]) >= 0)
            count++;
    if (count == 0 || count % 4 || count / 4 * 3 > cap)
        return 0;
    unsigned char block[4];
    size_t n = 0, pos = 0;
    int pad = 0;
    /* Output never overtakes input (3 bytes per 4 read), so src == dst is fine. */
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)src[i]);
        if (v < 0)
            continue;
        if (src[i] == '=')
            pad++;
        block[n++] = (unsigned char)v;
        if (n < 4)
            continue;
        dst[pos++] = (char)((block[0] << 2) | (block[1] >> 4));
        dst[pos++] = (char)((block[1] << 4) | (block[2] >> 2));
        dst[pos++] = (char)((block[2] << 6) | block[3]);
        n = 0;
        if (pad) {
            if (pad > 2)
                return 0; /* invalid padding */
            pos -= (size_t)pad;
            break;        /* padding ends the data */
        }
    }
    return pos;
}

size_t kvs_base64_encode(const char *src, size_t len, char *dst, size_t cap) {
    size_t olen = len * 4 / 3 + 4;
    olen += olen / 72 + 1; /* memcached's bound: line feeds (never written) and a NUL */
    if (olen < len || olen > cap)
        return 0;
    const unsigned char *in = (const unsigned char *)src;
    size_t pos = 0, i = 0;
    for (; len - i >= 3; i += 3) {
        dst[pos++] = B64[in[i] >> 2];
        dst[pos++] = B64[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        dst[pos++] = B64[((in[i + 1] & 0x0f) << 2) | (in[i + 2] >> 6)];
        dst[pos++] = B64[in[i + 2] & 0x3f];
    }
    if (len - i == 1) {
        dst[pos++] = B64[in[i] >> 2];
        dst[pos++] = B64[(in[i] & 0x03) << 4];
        dst[pos++] = '=';
        dst[pos++] = '=';
    } else if (len - i == 2) {
        dst[pos++] = B64[in[i] >> 2];
        dst[pos++] = B64[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        dst[pos++] = B64[(in[i + 1] & 0x0f) << 2];
        dst[pos++] = '=';
    }
    dst[pos] = '\0';
    return pos;
}

/* --- reply line ------------------------------------------------------------------------- */

struct mline {
    size_t n;
    char b[META_LINE_MAX];
};

/* Bounded appends: every reply fits (one key, one opaque of <= 32 bytes, numbers); the
 * bound only guards against a mistake. */
static void ml_raw(struct mline *l, const char *s, size_t n) {
    if (n > sizeof l->b - 2 - l->n)
        n = sizeof l->b - 2 - l->n;
    memcpy(l->b + l->n, s, n);
    l->n += n;
}

static void ml_u64(struct mline *l, uint64_t v) {
    char tmp[24];
    int k = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    ml_raw(l, tmp, (size_t)k);
}

/* " <c>" — memcached's META_CHAR. */
static void ml_flag(struct mline *l, char c) {
    char f[2] = {' ', c};
    ml_raw(l, f, 2);
}

static void ml_flag_u64(struct mline *l, char c, uint64_t v) {
    ml_flag(l, c);
    ml_u64(l, v);
}

/* " k<key>", or " k<base64> b" for a binary key (memcached's META_KEY). */
static void ml_key(struct mline *l, const char *key, size_t nkey, bool binary) {
    ml_flag(l, 'k');
    if (!binary) {
        ml_raw(l, key, nkey);
        return;
    }
    char enc[META_LINE_MAX / 2];
    ml_raw(l, enc, kvs_base64_encode(key, nkey, enc, sizeof enc));
    ml_raw(l, " b", 2);
}

/* " <token>" for O; false when the opaque is too long. */
static bool ml_opaque(struct mline *l, const struct token *t) {
    if (t->length > META_MAX_OPAQUE)
        return false;
    ml_raw(l, " ", 1);
    ml_raw(l, t->value, t->length);
    return true;
}

/* t: remaining TTL as memcached prints it, -1 for none (unsigned wrap included). */
static void ml_ttl(struct mline *l, uint32_t exptime, uint32_t now) {
    ml_flag(l, 't');
    if (exptime == 0)
        ml_raw(l, "-1", 2);
    else
        ml_u64(l, (uint32_t)(exptime - now));
}

/* ml_raw always leaves room for the CRLF. */
static void ml_send(struct kvs_proto *p, struct kvs_buf *out, struct mline *l) {
    l->b[l->n++] = '\r';
    l->b[l->n++] = '\n';
    kvs_out_raw(p, out, l->b, l->n);
}

/* memcached's out_errstring: errors are sent whatever q said. */
static void meta_error(struct kvs_proto *p, struct kvs_buf *out, const char *msg) {
    p->noreply = false;
    kvs_out_error(p, out, msg);
}

/* --- flags ------------------------------------------------------------------------------ */

struct meta_flags {
    bool has_error, no_update, vivify, value, set_stale, no_reply, has_cas, new_ttl;
    bool key_binary;
    char mode;                 /* ms: E A P R S; ma: I + D -                             */
    uint32_t exptime;          /* T, rel_time                                            */
    uint32_t autoviv_exptime;  /* N                                                      */
    uint32_t recache_time;     /* R                                                      */
    uint32_t client_flags;     /* F                                                      */
    uint64_t req_cas_id;       /* C                                                      */
    uint64_t delta, initial;   /* ma: D, J                                               */
};

/* A relative/absolute TTL token (N T R): memcached's realtime(EXPTIME_TO_POSITIVE_TIME). */
static bool parse_ttl(struct kvs_proto *p, const struct token *t, uint32_t *out) {
    int32_t v;
    if (!kvs_safe_strtol(t->value + 1, &v))
        return false;
    *out = kvs_exptime_rel(p, v);
    return true;
}

/* Parses one flag token into of; sets *err and of->has_error on a bad value. */
static void parse_flag(struct kvs_proto *p, struct token *tokens, size_t i,
                       struct meta_flags *of, const char **err) {
    struct token *t = &tokens[i];
    bool ok = true;
    switch (t->value[0]) {
    case 'b': {
        /* Decoded in place: binary is never longer than its base64. */
        size_t n = kvs_base64_decode(tokens[1].value, tokens[1].length, tokens[1].value,
                                     tokens[1].length);
        if (n == 0) {
            *err = "CLIENT_ERROR error decoding key";
            of->has_error = true;
        }
        tokens[1].length = n;
        of->key_binary = true;
        return;
    }
    case 'N':
        of->vivify = true;
        ok = parse_ttl(p, t, &of->autoviv_exptime);
        break;
    case 'T':
        ok = of->new_ttl = parse_ttl(p, t, &of->exptime);
        break;
    case 'R':
        ok = parse_ttl(p, t, &of->recache_time);
        break;
    case 'v': of->value = true; return;
    case 'u': of->no_update = true; return;
    case 'q': of->no_reply = true; return;
    case 'I': of->set_stale = true; return;
    case 'F':
        /* memcached leaves the generic message for a bad F. */
        if (!kvs_safe_strtoul(t->value + 1, &of->client_flags))
            of->has_error = true;
        return;
    case 'C':
        ok = of->has_cas = kvs_safe_strtoull(t->value + 1, &of->req_cas_id);
        break;
    case 'M':
        if (t->length != 2) {
            *err = "CLIENT_ERROR incorrect length for M token";
            of->has_error = true;
        } else {
            of->mode = t->value[1];
        }
        return;
    case 'J':
        if (!kvs_safe_strtoull(t->value + 1, &of->initial)) {
            *err = "CLIENT_ERROR invalid numeric initial value";
            of->has_error = true;
        }
        return;
    case 'D':
        if (!kvs_safe_strtoull(t->value + 1, &of->delta)) {
            *err = "CLIENT_ERROR invalid numeric delta value";
            of->has_error = true;
        }
        return;
    default: /* O P L k s t c f l h: nothing to parse */
        return;
    }
    if (!ok) {
        *err = BAD_TOKEN;
        of->has_error = true;
    }
}

/* memcached's _meta_flag_preparse: 0, or -1 with *err set. Duplicates and unknown flags
 * stop at once; bad values are all parsed and the last message wins. */
static int meta_preparse(struct kvs_proto *p, struct token *tokens, size_t start,
                         struct meta_flags *of, const char **err) {
    static const char known[] = "bNTRlOPLkstcfvhuqFCMJDI";
    bool seen[128] = {false};
    for (size_t i = start; tokens[i].length != 0; i++) {
        unsigned char o = (unsigned char)tokens[i].value[0];
        if (o >= 127 || seen[o]) {
            *err = "CLIENT_ERROR duplicate flag";
            return -1;
        }
        seen[o] = true;
        if (o == 0 || !strchr(known, o)) {
            *err = "CLIENT_ERROR invalid flag";
            return -1;
        }
        parse_flag(p, tokens, i, of, err);
    }
    return of->has_error ? -1 : 0;
}

/* The checks every meta command but me starts with; false when it already replied. */
static bool meta_start(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                       struct kvs_buf *out, const char *too_many) {
    if (ntokens < 3) {
        kvs_out_error(p, out, "ERROR");
        return false;
    }
    if (tokens[1].length > KVS_KEY_MAX) {
        meta_error(p, out, BAD_FORMAT);
        return false;
    }
    if (too_many && ntokens > META_MAX_TOKENS) {
        meta_error(p, out, too_many);
        return false;
    }
    return true;
}

/* Appends O and k for a reply without an item (misses, EX, NF); false: opaque too long. */
static bool ml_opaque_key(struct mline *l, struct token *tokens, size_t ntokens,
                          const struct meta_flags *of) {
    for (size_t i = 2; i < ntokens - 1; i++) {
        if (tokens[i].value[0] == 'O' && !ml_opaque(l, &tokens[i]))
            return false;
        if (tokens[i].value[0] == 'k')
            ml_key(l, tokens[1].value, tokens[1].length, of->key_binary);
    }
    return true;
}

/* --- mg ---------------------------------------------------------------------------------- */

/* The reply line of an mg hit, flags in request order; applies T and N to the item. Returns
 * false (nothing applied beyond T/N so far) when an opaque is too long. */
static bool mg_hit_line(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                        const struct meta_flags *of, struct kvs_item *it, bool created,
                        struct mline *l, bool *ttl_set) {
    struct kvs_store *s = p->ctx->store;
    struct kvs_meta_info in;
    kvs_store_meta_info(s, it, &in);
    uint32_t now = kvs_store_current_time(s), exptime = in.exptime;
    bool won = false;
    if (of->value) {
        ml_raw(l, "VA ", 3);
        ml_u64(l, in.nbytes);
    } else {
        ml_raw(l, "HD", 2);
    }
    for (size_t i = 2; i < ntokens - 1; i++) {
        switch (tokens[i].value[0]) {
        case 'T':
            *ttl_set = true;
            exptime = of->exptime;
            kvs_store_meta_set_exptime(it, exptime);
            break;
        case 'N':
            if (created) {
                exptime = of->autoviv_exptime;
                kvs_store_meta_set_exptime(it, exptime);
                won = true;
            }
            break;
        case 'R':
            /* A win when the TTL left (as of now in this request) is below the token's. */
            if (!in.token_sent && !created && exptime != 0 && exptime < of->recache_time)
                won = true;
            break;
        case 's': ml_flag_u64(l, 's', in.nbytes); break;
        case 't': ml_ttl(l, exptime, now); break;
        case 'c': ml_flag_u64(l, 'c', in.cas); break;
        case 'f': ml_flag_u64(l, 'f', in.flags); break;
        case 'l': ml_flag_u64(l, 'l', (uint32_t)(now - in.atime)); break;
        case 'h': ml_flag_u64(l, 'h', in.fetched ? 1 : 0); break;
        case 'O':
            if (!ml_opaque(l, &tokens[i]))
                return false;
            break;
        case 'k': ml_key(l, in.key, in.nkey, in.key_binary); break;
        default: break;
        }
    }
    /* Z before W, so a client never sees both (memcached's order). */
    if (in.token_sent)
        ml_flag(l, 'Z');
    if (in.stale) {
        ml_flag(l, 'X');
        if (!in.token_sent)
            won = true;
    }
    if (won) {
        ml_flag(l, 'W');
        kvs_store_meta_set_token_sent(it);
    }
    return true;
}

/* Sends the header and (v) the value of a hit; false on a backend failure. */
static bool mg_send_hit(struct kvs_proto *p, struct kvs_item *it, struct mline *l,
                        bool value, struct kvs_buf *out) {
    size_t before = out->len;
    ml_send(p, out, l);
    if (!value)
        return true;
    struct kvs_meta_info in;
    kvs_store_meta_info(p->ctx->store, it, &in);
    if (kvs_buf_reserve(out, (size_t)in.nbytes + 2)) {
        p->close = p->abort = true;
        return true;
    }
    if (kvs_store_meta_read(p->ctx->store, it, out->data + out->len)) {
        out->len = before;
        return false;
    }
    out->len += in.nbytes;
    memcpy(out->data + out->len, "\r\n", 2);
    out->len += 2;
    return true;
}

static void meta_get(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                     struct kvs_buf *out) {
    if (!meta_start(p, tokens, ntokens, out, "CLIENT_ERROR options flags are too long"))
        return;
    struct meta_flags of = {0};
    const char *err = BAD_FORMAT;
    if (meta_preparse(p, tokens, 2, &of, &err)) {
        meta_error(p, out, err);
        return;
    }
    struct kvs_store *s = p->ctx->store;
    const char *key = tokens[1].value;
    size_t nkey = tokens[1].length;
    struct kvs_item *it = kvs_store_meta_lock(s, key, nkey);
    bool created = false, ttl_set = false;
    if (!it && of.vivify && kvs_store_meta_create(s, key, nkey, "", 0, &it) == 0)
        created = true; /* an empty item whose creator wins the token (N) */
    struct mline l; /* 1 KiB: no need to zero it */
    l.n = 0;
    if (it) {
        bool ok = mg_hit_line(p, tokens, ntokens, &of, it, created, &l, &ttl_set);
        if (ok && !mg_send_hit(p, it, &l, of.value, out)) {
            kvs_store_meta_unlock(s);
            meta_error(p, out, "SERVER_ERROR integrity check failed");
            return;
        }
        if (ok && !of.no_update)
            kvs_store_meta_bump(s, it); /* after h and l read the state before it */
        kvs_store_meta_unlock(s);
        if (!ok) {
            meta_error(p, out, OPAQUE_LONG);
            return;
        }
        if (ttl_set) {
            kvs_stat_add(&p->stats->touch_cmds, 1);
            kvs_stat_add(&p->stats->touch_hits, 1);
        } else {
            kvs_stat_add(&p->stats->get_cmds, 1);
            kvs_stat_add(&p->stats->get_hits, 1);
        }
        return;
    }
    kvs_store_meta_unlock(s);
    kvs_stat_add(&p->stats->get_cmds, 1);
    kvs_stat_add(&p->stats->get_misses, 1);
    ml_raw(&l, "EN", 2);
    if (!ml_opaque_key(&l, tokens, ntokens, &of)) {
        meta_error(p, out, OPAQUE_LONG);
        return;
    }
    if (!of.no_reply)
        ml_send(p, out, &l);
}

/* --- ms ---------------------------------------------------------------------------------- */

/* Notes the flags ms returns (O k c, request order) in p->mset; false: opaque too long. */
static bool ms_note_returns(struct kvs_proto *p, struct token *tokens, size_t ntokens) {
    size_t n = 0;
    bool ok = true;
    p->mset.nopaque = 0;
    for (size_t i = 2; i < ntokens - 1; i++) {
        char c = tokens[i].value[0];
        if (c == 'O') {
            if (tokens[i].length > META_MAX_OPAQUE) {
                ok = false;
                continue;
            }
            memcpy(p->mset.opaque, tokens[i].value, tokens[i].length);
            p->mset.nopaque = (uint8_t)tokens[i].length;
        }
        if ((c == 'O' || c == 'k' || c == 'c') && n < sizeof p->mset.ret)
            p->mset.ret[n++] = c;
    }
    if (n < sizeof p->mset.ret)
        p->mset.ret[n] = '\0';
    return ok;
}

/* ms mode letter to a store command; false for an unknown one. */
static bool ms_mode(char mode, enum kvs_store_cmd *cmd) {
    switch (mode) {
    case 0:
    case 'S': *cmd = KVS_CMD_SET; return true;
    case 'E': *cmd = KVS_CMD_ADD; return true;
    case 'A': *cmd = KVS_CMD_APPEND; return true;
    case 'P': *cmd = KVS_CMD_PREPEND; return true;
    case 'R': *cmd = KVS_CMD_REPLACE; return true;
    default: return false;
    }
}

/* Allocates the item and moves to KVS_PS_DATA; on failure replies and returns an error. */
static const char *ms_alloc(struct kvs_proto *p, struct token *tokens,
                            const struct meta_flags *of, enum kvs_store_cmd cmd, int32_t vlen) {
    struct kvs_item *it = NULL;
    int r = kvs_store_item_alloc(p->ctx->store, tokens[1].value, tokens[1].length,
                                 of->client_flags, of->exptime, (size_t)vlen, &it);
    if (r) {
        const char *err;
        if (r == -E2BIG) {
            err = "SERVER_ERROR object too large for cache";
            kvs_stat_add(&p->stats->store_too_large, 1);
        } else {
            err = "SERVER_ERROR out of memory storing object";
            kvs_stat_add(&p->stats->store_no_memory, 1);
        }
        /* memcached drops the old value whatever the mode, so no stale value survives. */
        kvs_store_unlink_key(p->ctx->store, tokens[1].value, tokens[1].length);
        return err;
    }
    if (of->key_binary)
        kvs_store_meta_set_key_binary(it);
    p->item = it;
    p->cmd = cmd;
    p->cas = of->req_cas_id;
    p->vlen = (size_t)vlen;
    p->have = 0;
    p->ncrlf = 0;
    p->state = KVS_PS_DATA;
    p->mset.active = true;
    p->mset.quiet = of->no_reply;
    p->mset.stale = of->set_stale && cmd == KVS_CMD_CAS;
    return NULL;
}

static void meta_set(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                     struct kvs_buf *out) {
    if (!meta_start(p, tokens, ntokens, out, NULL))
        return;
    int32_t vlen;
    if (ntokens == 3) {
        meta_error(p, out, BAD_FORMAT);
        return;
    }
    if (ntokens > META_MAX_TOKENS) {
        meta_error(p, out, "CLIENT_ERROR options flags too long");
        return;
    }
    if (!kvs_safe_strtol(tokens[2].value, &vlen) || vlen < 0 || vlen > INT_MAX - 2) {
        meta_error(p, out, BAD_FORMAT);
        return;
    }
    /* From here on the value is known, so an error swallows it (memcached). */
    struct meta_flags of = {0};
    const char *err = BAD_FORMAT;
    enum kvs_store_cmd cmd = KVS_CMD_SET;
    if (meta_preparse(p, tokens, 3, &of, &err) == 0) {
        bool ok = ms_note_returns(p, tokens, ntokens);
        if (!ok)
            err = OPAQUE_LONG;
        if (!ms_mode(of.mode, &cmd))
            err = "CLIENT_ERROR invalid mode for ms M token";
        else if (ok) {
            /* A CAS turns set and replace into cas (replace + cas is cas). */
            if (of.has_cas && (cmd == KVS_CMD_SET || cmd == KVS_CMD_REPLACE))
                cmd = KVS_CMD_CAS;
            err = ms_alloc(p, tokens, &of, cmd, vlen);
            if (!err)
                return;
        }
    }
    meta_error(p, out, err);
    p->state = KVS_PS_SWALLOW;
    p->swallow = (uint64_t)vlen + 2;
}

void kvs_meta_set_complete(struct kvs_proto *p, struct kvs_item *it, bool chunk_ok,
                           struct kvs_buf *out) {
    struct kvs_store *s = p->ctx->store;
    p->mset.active = false;
    if (!chunk_ok) {
        kvs_store_item_free(s, it);
        meta_error(p, out, "CLIENT_ERROR bad data chunk");
        return;
    }
    /* The key as this request stored it: the item may be gone once linked (append). */
    struct kvs_meta_info in;
    kvs_store_meta_info(s, it, &in);
    char key[KVS_KEY_MAX];
    size_t nkey = in.nkey;
    bool binary = in.key_binary;
    memcpy(key, in.key, nkey);
    uint64_t cas = 0;
    enum kvs_store_result r = kvs_store_item_link_meta(s, it, p->cmd, p->cas, p->mset.stale, &cas);
    kvs_count_store(p, r);
    struct mline l; /* 1 KiB: no need to zero it */
    l.n = 0;
    switch (r) {
    case KVS_STORED: ml_raw(&l, "HD", 2); break;
    case KVS_EXISTS: ml_raw(&l, "EX", 2); break;
    case KVS_NOT_FOUND: ml_raw(&l, "NF", 2); break;
    case KVS_NOT_STORED: ml_raw(&l, "NS", 2); break;
    default: meta_error(p, out, "SERVER_ERROR Unhandled storage type."); return;
    }
    for (size_t i = 0; i < sizeof p->mset.ret && p->mset.ret[i]; i++) {
        if (p->mset.ret[i] == 'O') {
            ml_raw(&l, " ", 1);
            ml_raw(&l, p->mset.opaque, p->mset.nopaque);
        } else if (p->mset.ret[i] == 'k') {
            ml_key(&l, key, nkey, binary);
        } else {
            ml_flag_u64(&l, 'c', cas);
        }
    }
    if (r == KVS_STORED && p->mset.quiet)
        return;
    ml_send(p, out, &l);
}

/* --- md ---------------------------------------------------------------------------------- */

static void meta_delete(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                        struct kvs_buf *out) {
    if (!meta_start(p, tokens, ntokens, out, "CLIENT_ERROR options flags too long"))
        return;
    struct meta_flags of = {0};
    const char *err = BAD_FORMAT;
    if (meta_preparse(p, tokens, 2, &of, &err)) {
        meta_error(p, out, "CLIENT_ERROR invalid or duplicate flag");
        return;
    }
    struct mline fl, l;
    fl.n = l.n = 0;
    if (!ml_opaque_key(&fl, tokens, ntokens, &of)) {
        meta_error(p, out, OPAQUE_LONG);
        return;
    }
    struct kvs_store *s = p->ctx->store;
    struct kvs_item *it = kvs_store_meta_lock(s, tokens[1].value, tokens[1].length);
    bool nominal = false;
    if (!it) {
        kvs_stat_add(&p->stats->delete_misses, 1);
        ml_raw(&l, "NF", 2);
    } else {
        struct kvs_meta_info in;
        kvs_store_meta_info(s, it, &in);
        if (of.has_cas && in.cas != of.req_cas_id) {
            kvs_stat_add(&p->stats->delete_misses, 1);
            ml_raw(&l, "EX", 2);
        } else if (of.set_stale) {
            /* I: keep the item, stale, for a client to recache (T may shorten it). */
            if (of.new_ttl)
                kvs_store_meta_set_exptime(it, of.exptime);
            kvs_store_meta_invalidate(s, it);
            nominal = true;
        } else {
            kvs_stat_add(&p->stats->delete_hits, 1);
            kvs_store_meta_unlink(s, it);
            nominal = true;
        }
    }
    kvs_store_meta_unlock(s);
    if (nominal) {
        if (of.no_reply)
            return;
        ml_raw(&l, "HD", 2);
    }
    ml_raw(&l, fl.b, fl.n);
    ml_send(p, out, &l);
}

/* --- ma ---------------------------------------------------------------------------------- */

/* The reply of an ma that has an item (counted, or vivified); false: opaque too long. */
static bool ma_item_line(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                         const struct meta_flags *of, struct kvs_item *it, bool live,
                         bool created, const char *num, struct mline *l) {
    struct kvs_store *s = p->ctx->store;
    struct kvs_meta_info in;
    kvs_store_meta_info(s, it, &in);
    uint32_t now = kvs_store_current_time(s), exptime = in.exptime;
    size_t vlen = strlen(num);
    if (of->value) {
        ml_raw(l, "VA ", 3);
        ml_u64(l, vlen);
    } else {
        ml_raw(l, "HD", 2);
    }
    for (size_t i = 2; i < ntokens - 1; i++) {
        switch (tokens[i].value[0]) {
        case 'c': ml_flag_u64(l, 'c', in.cas); break;
        case 't': ml_ttl(l, exptime, now); break;
        case 'T':
            /* memcached sets the TTL on the item it counted; when the number outgrew the
             * value that item was replaced: a later t reports the new TTL, but the live
             * item keeps its old one (live false). */
            exptime = of->exptime;
            if (live)
                kvs_store_meta_set_exptime(it, exptime);
            break;
        case 'N':
            if (created) {
                exptime = of->autoviv_exptime;
                kvs_store_meta_set_exptime(it, exptime);
            }
            break;
        case 'O':
            if (!ml_opaque(l, &tokens[i]))
                return false;
            break;
        case 'k': ml_key(l, tokens[1].value, tokens[1].length, of->key_binary); break;
        default: break;
        }
    }
    if (of->value) {
        ml_raw(l, "\r\n", 2);
        ml_raw(l, num, vlen);
    }
    return true;
}

/* The counting itself, under the lock; returns an error to send, or NULL with the reply's
 * status set up (*it / *l). */
static const char *ma_apply(struct kvs_proto *p, const struct meta_flags *of, bool incr,
                            struct token *key, struct kvs_item **it, bool *live,
                            bool *created, bool *nominal, char *num, struct mline *l) {
    struct kvs_store *s = p->ctx->store;
    struct kvs_item *cur = kvs_store_meta_lock(s, key->value, key->length);
    if (cur) {
        switch (kvs_store_meta_delta(s, cur, incr, of->delta, of->req_cas_id, num, META_NUM_MAX,
                                     it)) {
        case KVS_STORED:
            kvs_stat_add(incr ? &p->stats->incr_hits : &p->stats->decr_hits, 1);
            *live = *it == cur;
            *nominal = true;
            return NULL;
        case KVS_EXISTS: ml_raw(l, "EX", 2); return NULL;
        case KVS_NON_NUMERIC:
            return "CLIENT_ERROR cannot increment or decrement non-numeric value";
        case KVS_NO_MEMORY: return "SERVER_ERROR out of memory";
        default: return "SERVER_ERROR integrity check failed";
        }
    }
    if (!of->vivify) {
        kvs_stat_add(incr ? &p->stats->incr_misses : &p->stats->decr_misses, 1);
        ml_raw(l, "NF", 2);
        return NULL;
    }
    snprintf(num, META_NUM_MAX, "%llu", (unsigned long long)of->initial);
    if (kvs_store_meta_create(s, key->value, key->length, num, strlen(num), it))
        return "SERVER_ERROR Out of memory allocating new item";
    *live = *created = true;
    return NULL;
}

static void meta_arith(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                       struct kvs_buf *out) {
    if (!meta_start(p, tokens, ntokens, out, "CLIENT_ERROR options flags too long"))
        return;
    struct meta_flags of = {.delta = 1};
    const char *err = BAD_FORMAT;
    if (meta_preparse(p, tokens, 2, &of, &err)) {
        meta_error(p, out, "CLIENT_ERROR invalid or duplicate flag");
        return;
    }
    bool incr = true;
    if (of.mode == 'D' || of.mode == '-') {
        incr = false;
    } else if (of.mode != 0 && of.mode != 'I' && of.mode != '+') {
        meta_error(p, out, "CLIENT_ERROR invalid mode for ma M token");
        return;
    }
    struct kvs_item *it = NULL;
    bool live = false, created = false, nominal = false;
    char num[META_NUM_MAX];
    struct mline l; /* 1 KiB: no need to zero it */
    l.n = 0;
    err = ma_apply(p, &of, incr, &tokens[1], &it, &live, &created, &nominal, num, &l);
    if (!err && it && !ma_item_line(p, tokens, ntokens, &of, it, live, created, num, &l))
        err = OPAQUE_LONG;
    if (!err && !it && !ml_opaque_key(&l, tokens, ntokens, &of))
        err = OPAQUE_LONG;
    kvs_store_meta_unlock(p->ctx->store);
    if (err)
        meta_error(p, out, err);
    else if (!(nominal && of.no_reply))
        ml_send(p, out, &l);
}

/* --- me, mn, dispatch ---------------------------------------------------------------- */

/* me <key> [b]: memcached's debug line. exp is printed as memcached 1.6.18 computes it
 * (now - exptime: negative while the item lives), la is seconds since the last access. */
static void meta_debug(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                       struct kvs_buf *out) {
    if (ntokens < 3 || tokens[1].length > KVS_KEY_MAX) {
        meta_error(p, out, BAD_FORMAT);
        return;
    }
    size_t nkey = tokens[1].length;
    if (ntokens >= 4 && tokens[2].length == 1 && tokens[2].value[0] == 'b') {
        nkey = kvs_base64_decode(tokens[1].value, nkey, tokens[1].value, nkey);
        if (nkey == 0) {
            meta_error(p, out, BAD_FORMAT);
            return;
        }
    }
    struct kvs_store *s = p->ctx->store;
    struct kvs_item *it = kvs_store_meta_lock(s, tokens[1].value, nkey);
    struct mline l; /* 1 KiB: no need to zero it */
    l.n = 0;
    if (it) {
        struct kvs_meta_info in;
        kvs_store_meta_info(s, it, &in);
        uint32_t now = kvs_store_current_time(s);
        char enc[META_LINE_MAX / 2], tail[160];
        ml_raw(&l, "ME ", 3);
        if (in.key_binary)
            ml_raw(&l, enc, kvs_base64_encode(in.key, in.nkey, enc, sizeof enc));
        else
            ml_raw(&l, in.key, in.nkey);
        int n = snprintf(tail, sizeof tail,
                         " exp=%d la=%llu cas=%llu fetch=%s cls=%u size=%zu",
                         in.exptime == 0 ? -1 : (int)(uint32_t)(now - in.exptime),
                         (unsigned long long)(uint32_t)(now - in.atime),
                         (unsigned long long)in.cas, in.fetched ? "yes" : "no", in.clsid,
                         in.total);
        ml_raw(&l, tail, (size_t)n);
    } else {
        ml_raw(&l, "EN", 2);
    }
    kvs_store_meta_unlock(s);
    ml_send(p, out, &l);
    kvs_stat_add(&p->stats->meta_cmds, 1);
}

void kvs_meta_command(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                      struct kvs_buf *out) {
    switch (tokens[0].value[1]) {
    case 'g': meta_get(p, tokens, ntokens, out); break;
    case 's': meta_set(p, tokens, ntokens, out); break;
    case 'd': meta_delete(p, tokens, ntokens, out); break;
    case 'a': meta_arith(p, tokens, ntokens, out); break;
    case 'e': meta_debug(p, tokens, ntokens, out); break;
    /* mn: memcached flushes its pending (quiet) replies; ours leave with every batch. */
    case 'n': kvs_out_string(p, out, "MN"); break;
    default: kvs_out_error(p, out, "ERROR"); break;
    }
}
