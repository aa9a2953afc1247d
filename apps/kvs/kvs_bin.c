/*
 * kvs_bin.c — memcached 1.6.18's binary protocol (proto_bin.c), as a pure state machine.
 *
 * Data flow: kvs_bin_feed() waits for a request's 24-byte header, checks what the header
 * alone decides (magic, lengths, SASL, key length), waits for the extras and key, and
 * dispatches on the opcode with memcached's per-opcode length checks. Only a storage
 * command's value is streamed: it goes into the item as it arrives (KVS_BS_VALUE, through
 * the store's backend so SUVM pages it); a value that cannot be stored is discarded
 * (KVS_BS_SWALLOW). Value bytes are never looked at, so a value holding text commands is
 * data.
 *
 * Replies carry the request's opcode and opaque; success replies of quiet ("Q") requests
 * are suppressed, errors never are (GETQ/GETKQ/GATQ/GATKQ also suppress their misses), as
 * memcached's write_bin_response/write_bin_error do.
 *
 * memcached quirks kept on purpose, since clients see them: an unknown opcode's error
 * swallows `bodylen` bytes counted after its extras and key (so it eats the start of the
 * next request when it had any); VERBOSITY is an unknown opcode in 1.6.18; STAT and the
 * touch family do not consume body bytes beyond extras + key (they parse as the next
 * request); swallow lengths are memcached's 32-bit signed ints (a negative one discards
 * nothing). Differences (timing only): a header whose lengths are invalid, or that needs
 * SASL, or whose key is over 250 bytes, is answered as soon as the header is in, where
 * memcached first waits for the extras and key it announces.
 */
#include "kvs_bin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvs_proto.h"
#include "kvs_proto_internal.h"

/* memcached's SASL mechanism list: PLAIN is the one mechanism we implement. */
#define SASL_MECHS "PLAIN"
/* The text command line a STAT request is turned into ("stats " + key + NUL). */
#define STATS_LINE_MAX (6u + KVS_KEY_MAX + 1u)

/* The parsed request header (host byte order). */
struct bin_req {
    uint8_t opcode, extlen;
    uint16_t keylen;
    uint32_t bodylen;
    const unsigned char *ext;
    const char *key;
};

static uint16_t get16(const unsigned char *b) {
    return (uint16_t)((unsigned)b[0] << 8 | b[1]);
}
static uint32_t get32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static uint64_t get64(const unsigned char *b) {
    return (uint64_t)get32(b) << 32 | get32(b + 4);
}
static void put16(unsigned char *b, uint16_t v) {
    b[0] = (unsigned char)(v >> 8);
    b[1] = (unsigned char)v;
}
static void put32(unsigned char *b, uint32_t v) {
    put16(b, (uint16_t)(v >> 16));
    put16(b + 2, (uint16_t)v);
}
static void put64(unsigned char *b, uint64_t v) {
    put32(b, (uint32_t)(v >> 32));
    put32(b + 4, (uint32_t)v);
}

static bool use_cas(const struct kvs_proto *p) {
    return kvs_ctx_settings(p->ctx)->use_cas;
}

/* --- replies -------------------------------------------------------------------------- */

static void header(unsigned char *h, const struct kvs_proto *p, uint8_t opcode, uint16_t status,
                   uint8_t extlen, uint16_t keylen, uint32_t bodylen, uint64_t cas) {
    h[0] = KVS_BIN_RES_MAGIC;
    h[1] = opcode;
    put16(h + 2, keylen);
    h[4] = extlen;
    h[5] = 0; /* datatype: raw bytes */
    put16(h + 6, status);
    put32(h + 8, bodylen);
    memcpy(h + 12, &p->bin.opaque, 4); /* echoed as the client sent it */
    put64(h + 16, cas);
}

/* A reply: header, extras, key, value. */
static void reply(struct kvs_proto *p, struct kvs_buf *out, uint16_t status, const void *ext,
                  uint8_t extlen, const char *key, uint16_t keylen, const void *val,
                  uint32_t vlen, uint64_t cas) {
    unsigned char h[KVS_BIN_HEADER_LEN];
    header(h, p, p->bin.opcode, status, extlen, keylen, (uint32_t)extlen + keylen + vlen, cas);
    kvs_out_raw(p, out, (const char *)h, sizeof h);
    if (extlen)
        kvs_out_raw(p, out, ext, extlen);
    if (keylen)
        kvs_out_raw(p, out, key, keylen);
    if (vlen)
        kvs_out_raw(p, out, val, vlen);
}

/* memcached's write_bin_response: a success, suppressed for quiet requests. */
static void respond(struct kvs_proto *p, struct kvs_buf *out, const void *val, uint32_t vlen,
                    uint64_t cas) {
    if (!p->bin.quiet)
        reply(p, out, KVS_BIN_SUCCESS, NULL, 0, NULL, 0, val, vlen, cas);
}

static const char *status_text(uint16_t status) {
    switch (status) {
    case KVS_BIN_ENOMEM: return "Out of memory";
    case KVS_BIN_UNKNOWN_COMMAND: return "Unknown command";
    case KVS_BIN_KEY_ENOENT: return "Not found";
    case KVS_BIN_EINVAL: return "Invalid arguments";
    case KVS_BIN_KEY_EEXISTS: return "Data exists for key.";
    case KVS_BIN_E2BIG: return "Too large.";
    case KVS_BIN_DELTA_BADVAL: return "Non-numeric server-side value for incr or decr";
    case KVS_BIN_NOT_STORED: return "Not stored.";
    case KVS_BIN_AUTH_ERROR: return "Auth failure.";
    default: return "Internal error";
    }
}

/* memcached's write_bin_error: always sent; then discards `swallow` input bytes (a 32-bit
 * signed count in memcached: negative means none). */
static void error(struct kvs_proto *p, struct kvs_buf *out, uint16_t status, const char *text,
                  int64_t swallow) {
    if (!text)
        text = status_text(status);
    reply(p, out, status, NULL, 0, NULL, 0, text, (uint32_t)strlen(text), 0);
    if (swallow > 0) {
        p->bin.swallow = (uint64_t)swallow;
        p->bin.state = KVS_BS_SWALLOW;
    }
}

/* memcached's handle_binary_protocol_error: EINVAL, then close. */
static void protocol_error(struct kvs_proto *p, struct kvs_buf *out) {
    kvs_stat_add(&p->stats->protocol_errors, 1);
    error(p, out, KVS_BIN_EINVAL, NULL, 0);
    p->close = true;
}

/* --- get, getk, touch, gat, gatk (and their quiet forms) -------------------------------- */

struct get_arg {
    struct kvs_proto *p;
    struct kvs_buf *out;
    const char *key;
    uint16_t nkey;   /* key echoed in the reply (0: none) */
    bool value;      /* the value is part of the reply (not for TOUCH) */
};

/* Writes the reply's header, flags and key, and returns where the value goes: inside the
 * reply, or (TOUCH) in reserved space past its end that is never sent. */
static void *get_sink(void *arg, const struct kvs_get_info *info) {
    struct get_arg *a = arg;
    uint32_t vlen = a->value ? info->nbytes : 0;
    size_t total = KVS_BIN_HEADER_LEN + 4 + a->nkey + (size_t)info->nbytes;
    if (kvs_buf_reserve(a->out, total))
        return NULL;
    unsigned char *h = (unsigned char *)a->out->data + a->out->len;
    uint64_t cas = use_cas(a->p) ? info->cas : 0;
    header(h, a->p, a->p->bin.opcode, KVS_BIN_SUCCESS, 4, a->nkey, 4 + a->nkey + vlen, cas);
    put32(h + KVS_BIN_HEADER_LEN, info->flags);
    memcpy(h + KVS_BIN_HEADER_LEN + 4, a->key, a->nkey);
    a->out->len += KVS_BIN_HEADER_LEN + 4 + a->nkey;
    char *dst = a->out->data + a->out->len;
    a->out->len += vlen;
    return dst;
}

static void process_get(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out) {
    uint8_t op = r->opcode;
    bool touch = op == KVS_BIN_TOUCH || op == KVS_BIN_GAT || op == KVS_BIN_GATQ ||
                 op == KVS_BIN_GATK || op == KVS_BIN_GATKQ;
    bool with_key = op == KVS_BIN_GETK || op == KVS_BIN_GETKQ || op == KVS_BIN_GATK ||
                    op == KVS_BIN_GATKQ;
    uint32_t exptime = 0;
    if (touch)
        exptime = kvs_store_realtime(p->ctx->store, (int64_t)get32(r->ext));
    struct get_arg a = {p, out, r->key, with_key ? r->keylen : 0, op != KVS_BIN_TOUCH};
    size_t before = out->len;
    int hit = kvs_store_get(p->ctx->store, r->key, r->keylen, touch, exptime, get_sink, &a);
    if (hit < 0) {
        out->len = before;
        if (hit == -EIO)
            error(p, out, KVS_BIN_EINTERNAL, "Internal error: integrity check failed", 0);
        else
            error(p, out, KVS_BIN_ENOMEM, "Out of memory writing get response", 0);
        return;
    }
    /* memcached counts a touch/gat as a touch only, a get as a get */
    kvs_stat_add(touch ? &p->stats->touch_cmds : &p->stats->get_cmds, 1);
    if (hit) {
        kvs_stat_add(touch ? &p->stats->touch_hits : &p->stats->get_hits, 1);
        return;
    }
    kvs_stat_add(touch ? &p->stats->touch_misses : &p->stats->get_misses, 1);
    if (p->bin.quiet)
        return;
    if (with_key)
        reply(p, out, KVS_BIN_KEY_ENOENT, NULL, 0, r->key, r->keylen, NULL, 0, 0);
    else
        error(p, out, KVS_BIN_KEY_ENOENT, NULL, 0);
}

/* --- set, add, replace, append, prepend ----------------------------------------------- */

/* Allocates the item for a storage request and starts receiving its value (vlen is
 * memcached's signed 32-bit value length). */
static void start_update(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out,
                         enum kvs_store_cmd cmd, uint32_t flags, uint32_t exptime,
                         int32_t vlen) {
    bool is_set = r->opcode == KVS_BIN_SET || r->opcode == KVS_BIN_SETQ;
    struct kvs_item *it = NULL;
    int rc = -E2BIG; /* memcached: a negative length is "too large" */
    if (vlen >= 0)
        rc = kvs_store_item_alloc(p->ctx->store, r->key, r->keylen, flags,
                                  kvs_store_realtime(p->ctx->store, exptime), (size_t)vlen, &it);
    if (rc) {
        if (rc == -E2BIG)
            error(p, out, KVS_BIN_E2BIG, NULL, vlen);
        else
            error(p, out, KVS_BIN_ENOMEM, "Out of memory allocating item", vlen);
        /* memcached: a failed set (with a CAS or not) must not leave the stale value */
        if (is_set)
            kvs_store_unlink_key(p->ctx->store, r->key, r->keylen);
        return;
    }
    p->item = it;
    p->cmd = cmd;
    p->vlen = (size_t)vlen;
    p->have = 0;
    p->bin.state = KVS_BS_VALUE;
}

static void process_update(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out) {
    uint8_t op = r->opcode;
    enum kvs_store_cmd cmd = KVS_CMD_SET;
    if (op == KVS_BIN_ADD || op == KVS_BIN_ADDQ)
        cmd = KVS_CMD_ADD;
    else if (op == KVS_BIN_REPLACE || op == KVS_BIN_REPLACEQ)
        cmd = KVS_CMD_REPLACE;
    /* A CAS in the request makes any of them a compare-and-swap (none with -C). */
    if (p->bin.req_cas != 0 && use_cas(p))
        cmd = KVS_CMD_CAS;
    int32_t vlen = (int32_t)(r->bodylen - r->keylen - r->extlen);
    start_update(p, r, out, cmd, get32(r->ext), get32(r->ext + 4), vlen);
}

static void process_append(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out) {
    bool app = r->opcode == KVS_BIN_APPEND || r->opcode == KVS_BIN_APPENDQ;
    int32_t vlen = (int32_t)(r->bodylen - r->keylen);
    start_update(p, r, out, app ? KVS_CMD_APPEND : KVS_CMD_PREPEND, 0, 0, vlen);
}

/* The value is in: store it (memcached's complete_update_bin). */
static void complete_update(struct kvs_proto *p, struct kvs_buf *out) {
    struct kvs_item *it = p->item;
    p->item = NULL;
    p->bin.state = KVS_BS_HEADER;
    kvs_stat_add(&p->stats->set_cmds, 1);
    bool cas_on = use_cas(p);
    uint64_t cas = 0;
    enum kvs_store_result r = kvs_store_item_link_cas(p->ctx->store, it, p->cmd,
                                                      cas_on ? p->bin.req_cas : 0, cas_on, &cas);
    kvs_count_store(p, r);
    switch (r) {
    case KVS_STORED: respond(p, out, NULL, 0, cas_on ? cas : 0); break;
    case KVS_EXISTS: error(p, out, KVS_BIN_KEY_EEXISTS, NULL, 0); break;
    case KVS_NOT_FOUND: error(p, out, KVS_BIN_KEY_ENOENT, NULL, 0); break;
    default:
        /* memcached: NOT_STORED reads as "exists" for add and "not found" for replace */
        error(p, out, p->cmd == KVS_CMD_ADD       ? KVS_BIN_KEY_EEXISTS
                      : p->cmd == KVS_CMD_REPLACE ? KVS_BIN_KEY_ENOENT
                                                  : KVS_BIN_NOT_STORED,
              NULL, 0);
        break;
    }
}

/* --- delete, incr/decr, flush ----------------------------------------------------------- */

static void process_delete(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out) {
    switch (kvs_store_delete_cas(p->ctx->store, r->key, r->keylen, p->bin.req_cas, use_cas(p))) {
    case KVS_DELETED:
        kvs_stat_add(&p->stats->delete_hits, 1);
        respond(p, out, NULL, 0, 0);
        break;
    case KVS_EXISTS:
        error(p, out, KVS_BIN_KEY_EEXISTS, NULL, 0);
        break;
    default:
        kvs_stat_add(&p->stats->delete_misses, 1);
        error(p, out, KVS_BIN_KEY_ENOENT, NULL, 0);
        break;
    }
}

/* incr/decr of a missing key with an expiration other than 0xffffffff: store `initial`. */
static void delta_create(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out,
                         uint64_t initial, uint32_t exptime) {
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)initial);
    struct kvs_item *it = NULL;
    int rc = kvs_store_item_alloc(p->ctx->store, r->key, r->keylen, 0,
                                  kvs_store_realtime(p->ctx->store, exptime), (size_t)n, &it);
    if (rc) {
        error(p, out, KVS_BIN_ENOMEM, "Out of memory allocating new item", 0);
        return;
    }
    if (kvs_store_item_write(p->ctx->store, it, 0, num, (size_t)n)) {
        kvs_store_item_free(p->ctx->store, it);
        error(p, out, KVS_BIN_EINTERNAL, "Internal error: integrity check failed", 0);
        return;
    }
    uint64_t cas = 0;
    if (kvs_store_item_link_cas(p->ctx->store, it, KVS_CMD_ADD, 0, true, &cas) != KVS_STORED) {
        error(p, out, KVS_BIN_NOT_STORED, NULL, 0);
        return;
    }
    unsigned char v[8];
    put64(v, initial);
    respond(p, out, v, sizeof v, use_cas(p) ? cas : 0);
}

static void process_delta(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out) {
    bool incr = r->opcode == KVS_BIN_INCREMENT || r->opcode == KVS_BIN_INCREMENTQ;
    uint64_t delta = get64(r->ext), initial = get64(r->ext + 8);
    uint32_t exptime = get32(r->ext + 16);
    char buf[32];
    uint64_t cas = 0;
    bool cas_on = use_cas(p);
    switch (kvs_store_delta_cas(p->ctx->store, r->key, r->keylen, incr, delta, p->bin.req_cas,
                                cas_on, &cas, buf, sizeof buf)) {
    case KVS_STORED: {
        kvs_stat_add(incr ? &p->stats->incr_hits : &p->stats->decr_hits, 1);
        unsigned char v[8];
        put64(v, strtoull(buf, NULL, 10));
        respond(p, out, v, sizeof v, cas_on ? cas : 0);
        break;
    }
    case KVS_NON_NUMERIC: error(p, out, KVS_BIN_DELTA_BADVAL, NULL, 0); break;
    case KVS_NO_MEMORY: error(p, out, KVS_BIN_ENOMEM, "Out of memory incrementing value", 0); break;
    case KVS_EXISTS: error(p, out, KVS_BIN_KEY_EEXISTS, NULL, 0); break;
    case KVS_NOT_FOUND:
        if (exptime != 0xffffffffu) {
            delta_create(p, r, out, initial, exptime);
        } else {
            kvs_stat_add(incr ? &p->stats->incr_misses : &p->stats->decr_misses, 1);
            error(p, out, KVS_BIN_KEY_ENOENT, NULL, 0);
        }
        break;
    default:
        error(p, out, KVS_BIN_EINTERNAL, "Internal error: integrity check failed", 0);
        break;
    }
}

static void process_flush(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out) {
    if (!kvs_ctx_settings(p->ctx)->flush_enabled) {
        error(p, out, KVS_BIN_AUTH_ERROR, NULL, 0); /* memcached's answer to -F */
        return;
    }
    uint32_t exptime = r->extlen == 4 ? get32(r->ext) : 0;
    kvs_store_flush(p->ctx->store, (int64_t)exptime);
    kvs_stat_add(&p->stats->flush_cmds, 1);
    respond(p, out, NULL, 0, 0);
}

/* --- stat --------------------------------------------------------------------------------- */

/* One binary STAT reply per "STAT name value" line of the text output; other lines (END,
 * RESET, OK) carry nothing. */
static void stats_convert(struct kvs_proto *p, const struct kvs_buf *text, struct kvs_buf *out) {
    const char *s = text->data, *end = text->data + text->len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (le > s && le[-1] == '\r')
            le--;
        if (le - s > 5 && memcmp(s, "STAT ", 5) == 0) {
            const char *name = s + 5;
            const char *sp = memchr(name, ' ', (size_t)(le - name));
            const char *nend = sp ? sp : le;
            const char *val = sp ? sp + 1 : le;
            size_t nlen = (size_t)(nend - name);
            if (nlen > UINT16_MAX)
                nlen = UINT16_MAX;
            reply(p, out, KVS_BIN_SUCCESS, NULL, 0, name, (uint16_t)nlen, val,
                  (uint32_t)(le - val), 0);
        }
        s = next;
    }
}

/* Runs the text protocol's `stats <group>` into a scratch buffer. False if it answered
 * with an error (an unknown group). */
static bool stats_text(struct kvs_proto *p, const char *group, struct kvs_buf *text) {
    char line[STATS_LINE_MAX + 8];
    snprintf(line, sizeof line, "stats%s%s", group[0] ? " " : "", group);
    struct token tokens[MAX_TOKENS];
    size_t ntokens = kvs_tokenize(line, tokens, MAX_TOKENS);
    p->noreply = false;
    kvs_process_stats(p, tokens, ntokens, text);
    return !(text->len >= 5 && memcmp(text->data, "ERROR", 5) == 0) &&
           !(text->len >= 12 && memcmp(text->data, "CLIENT_ERROR", 12) == 0) &&
           !(text->len >= 12 && memcmp(text->data, "SERVER_ERROR", 12) == 0);
}

static bool key_is(const struct bin_req *r, const char *s) {
    size_t n = strlen(s);
    return r->keylen == n && memcmp(r->key, s, n) == 0;
}
static bool key_starts(const struct bin_req *r, size_t off, const char *s) {
    size_t n = strlen(s);
    return r->keylen >= off + n && memcmp(r->key + off, s, n) == 0;
}

/* The text group memcached's process_bin_stat answers for this key, or NULL (not found).
 * *dump: the answer is the whole text output as one "detailed" stat. */
static const char *stats_group(const struct bin_req *r, bool *dump) {
    *dump = false;
    if (r->keylen == 0)
        return "";
    if (key_starts(r, 0, "reset"))
        return "reset";
    if (key_starts(r, 0, "settings"))
        return "settings";
    if (key_starts(r, 0, "detail")) {
        if (key_starts(r, 6, " dump")) {
            *dump = true;
            return "detail dump";
        }
        if (key_starts(r, 6, " on"))
            return "detail on";
        if (key_starts(r, 6, " off"))
            return "detail off";
        return NULL;
    }
    static const char *const groups[] = {"items", "slabs", "sizes", "sizes_enable",
                                         "sizes_disable"};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        if (key_is(r, groups[i]))
            return groups[i];
    return NULL;
}

static void process_stat(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out) {
    bool dump;
    const char *group = stats_group(r, &dump);
    if (!group) {
        error(p, out, KVS_BIN_KEY_ENOENT, NULL, 0);
        return;
    }
    struct kvs_buf text;
    kvs_buf_init(&text, p->ctx->alloc);
    bool ok = stats_text(p, group, &text);
    if (!ok) {
        error(p, out, KVS_BIN_KEY_ENOENT, NULL, 0);
    } else if (dump) {
        reply(p, out, KVS_BIN_SUCCESS, NULL, 0, "detailed", 8, text.data, (uint32_t)text.len, 0);
        reply(p, out, KVS_BIN_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0);
    } else {
        stats_convert(p, &text, out);
        reply(p, out, KVS_BIN_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0); /* the terminator */
    }
    kvs_buf_fini(&text);
}

/* --- SASL ------------------------------------------------------------------------------- */

/* PLAIN: "[authzid] NUL authcid NUL password", checked against the -S password table. An
 * authzid other than the user itself is refused (no proxy authorization). */
static bool sasl_plain(const struct kvs_proto *p, const char *d, size_t n) {
    const char *z1 = memchr(d, '\0', n);
    if (!z1)
        return false;
    const char *user = z1 + 1;
    const char *z2 = memchr(user, '\0', n - (size_t)(user - d));
    if (!z2)
        return false;
    size_t zlen = (size_t)(z1 - d), ulen = (size_t)(z2 - user);
    const char *pass = z2 + 1;
    size_t plen = n - (size_t)(pass - d);
    if (memchr(pass, '\0', plen) || ulen == 0)
        return false;
    if (zlen && (zlen != ulen || memcmp(d, user, ulen) != 0))
        return false;
    return p->ctx->auth_sasl && kvs_auth_check(p->ctx->auth_sasl, user, ulen, pass, plen);
}

/* SASL_AUTH / SASL_STEP with their data (memcached's process_bin_complete_sasl_auth). */
static void sasl_complete(struct kvs_proto *p, const struct bin_req *r, const char *data,
                          size_t n, struct kvs_buf *out) {
    p->bin.authenticated = false; /* memcached restarts the SASL conversation */
    bool ok = false;
    if (r->opcode == KVS_BIN_SASL_AUTH) {
        bool plain = r->keylen == 5 && strncasecmp(r->key, "PLAIN", 5) == 0;
        if (plain && n == 0) {
            /* no initial response: the client sends the credentials in a SASL_STEP */
            p->bin.sasl = KVS_SASL_CONTINUE;
            reply(p, out, KVS_BIN_AUTH_CONTINUE, NULL, 0, NULL, 0, NULL, 0, 0);
            return;
        }
        ok = plain && sasl_plain(p, data, n);
    } else if (p->bin.sasl == KVS_SASL_CONTINUE) {
        ok = sasl_plain(p, data, n);
    }
    p->bin.sasl = ok ? KVS_SASL_DONE : KVS_SASL_NONE;
    kvs_stat_add(&p->stats->auth_cmds, 1);
    if (ok) {
        p->bin.authenticated = true;
        respond(p, out, "Authenticated", 13, 0);
    } else {
        kvs_stat_add(&p->stats->auth_errors, 1);
        error(p, out, KVS_BIN_AUTH_ERROR, NULL, 0);
    }
}

/* --- dispatch ----------------------------------------------------------------------------- */

/* The success replies a quiet opcode suppresses (memcached's noreply). */
static bool opcode_quiet(uint8_t op) {
    switch (op) {
    case KVS_BIN_SETQ: case KVS_BIN_ADDQ: case KVS_BIN_REPLACEQ: case KVS_BIN_DELETEQ:
    case KVS_BIN_INCREMENTQ: case KVS_BIN_DECREMENTQ: case KVS_BIN_QUITQ: case KVS_BIN_FLUSHQ:
    case KVS_BIN_APPENDQ: case KVS_BIN_PREPENDQ: case KVS_BIN_GETQ: case KVS_BIN_GETKQ:
    case KVS_BIN_GATQ: case KVS_BIN_GATKQ:
        return true;
    default:
        return false;
    }
}

/* memcached's per-opcode length checks (dispatch_bin_command). */
static bool lengths_ok(const struct bin_req *r) {
    unsigned e = r->extlen, k = r->keylen;
    uint32_t b = r->bodylen;
    switch (r->opcode) {
    case KVS_BIN_VERSION: case KVS_BIN_NOOP: case KVS_BIN_QUIT: case KVS_BIN_QUITQ:
    case KVS_BIN_SASL_LIST_MECHS:
        return e == 0 && k == 0 && b == 0;
    case KVS_BIN_FLUSH: case KVS_BIN_FLUSHQ:
        return k == 0 && b == e && (e == 0 || e == 4);
    case KVS_BIN_SET: case KVS_BIN_ADD: case KVS_BIN_REPLACE:
    case KVS_BIN_SETQ: case KVS_BIN_ADDQ: case KVS_BIN_REPLACEQ:
        return e == 8 && k != 0 && b >= k + 8u;
    case KVS_BIN_GET: case KVS_BIN_GETQ: case KVS_BIN_GETK: case KVS_BIN_GETKQ:
    case KVS_BIN_DELETE: case KVS_BIN_DELETEQ:
        return e == 0 && k > 0 && b == k;
    case KVS_BIN_INCREMENT: case KVS_BIN_DECREMENT:
    case KVS_BIN_INCREMENTQ: case KVS_BIN_DECREMENTQ:
        return k > 0 && e == 20 && b == k + e;
    case KVS_BIN_APPEND: case KVS_BIN_PREPEND: case KVS_BIN_APPENDQ: case KVS_BIN_PREPENDQ:
        return k > 0 && e == 0;
    case KVS_BIN_STAT:
        return e == 0;
    case KVS_BIN_SASL_AUTH: case KVS_BIN_SASL_STEP:
        return e == 0 && k != 0;
    case KVS_BIN_TOUCH: case KVS_BIN_GAT: case KVS_BIN_GATQ: case KVS_BIN_GATK:
    case KVS_BIN_GATKQ:
        return e == 4 && k != 0;
    default:
        return true;
    }
}

static void dispatch(struct kvs_proto *p, const struct bin_req *r, struct kvs_buf *out) {
    if (!lengths_ok(r)) {
        protocol_error(p, out);
        return;
    }
    switch (r->opcode) {
    case KVS_BIN_VERSION: respond(p, out, KVS_MEMCACHED_VERSION, 6, 0); break;
    case KVS_BIN_NOOP:
        respond(p, out, NULL, 0, 0);
        p->bin.flushed = out->len; /* memcached: NOOP forces the pipeline out */
        break;
    case KVS_BIN_QUIT: case KVS_BIN_QUITQ:
        respond(p, out, NULL, 0, 0);
        p->close = true;
        break;
    case KVS_BIN_FLUSH: case KVS_BIN_FLUSHQ: process_flush(p, r, out); break;
    case KVS_BIN_SET: case KVS_BIN_ADD: case KVS_BIN_REPLACE:
    case KVS_BIN_SETQ: case KVS_BIN_ADDQ: case KVS_BIN_REPLACEQ:
        process_update(p, r, out);
        break;
    case KVS_BIN_APPEND: case KVS_BIN_PREPEND: case KVS_BIN_APPENDQ: case KVS_BIN_PREPENDQ:
        process_append(p, r, out);
        break;
    case KVS_BIN_GET: case KVS_BIN_GETQ: case KVS_BIN_GETK: case KVS_BIN_GETKQ:
    case KVS_BIN_TOUCH: case KVS_BIN_GAT: case KVS_BIN_GATQ: case KVS_BIN_GATK:
    case KVS_BIN_GATKQ:
        process_get(p, r, out);
        break;
    case KVS_BIN_DELETE: case KVS_BIN_DELETEQ: process_delete(p, r, out); break;
    case KVS_BIN_INCREMENT: case KVS_BIN_DECREMENT:
    case KVS_BIN_INCREMENTQ: case KVS_BIN_DECREMENTQ:
        process_delta(p, r, out);
        break;
    case KVS_BIN_STAT: process_stat(p, r, out); break;
    case KVS_BIN_SASL_LIST_MECHS:
        if (!kvs_ctx_settings(p->ctx)->sasl) {
            error(p, out, KVS_BIN_UNKNOWN_COMMAND, NULL, 0);
            break;
        }
        p->bin.authenticated = false; /* memcached re-initialises the SASL connection */
        respond(p, out, SASL_MECHS, sizeof SASL_MECHS - 1, 0);
        break;
    default:
        /* memcached swallows bodylen more bytes, counted after the extras and key */
        kvs_stat_add(&p->stats->protocol_errors, 1);
        error(p, out, KVS_BIN_UNKNOWN_COMMAND, NULL, (int32_t)r->bodylen);
        break;
    }
}

/* With -S, what may run before authentication (memcached's authenticated()). */
static bool needs_auth(const struct kvs_proto *p, uint8_t op) {
    if (!kvs_ctx_settings(p->ctx)->sasl || p->bin.authenticated)
        return false;
    return op != KVS_BIN_SASL_LIST_MECHS && op != KVS_BIN_SASL_AUTH &&
           op != KVS_BIN_SASL_STEP && op != KVS_BIN_VERSION;
}

/* SASL_AUTH/STEP: needs its whole body in. Returns the bytes it takes (0: wait). */
static size_t request_sasl(struct kvs_proto *p, const struct bin_req *r, size_t avail,
                           struct kvs_buf *out) {
    size_t head = KVS_BIN_HEADER_LEN + r->keylen;
    int32_t vlen = (int32_t)(r->bodylen - r->keylen);
    if (!kvs_ctx_settings(p->ctx)->sasl) {
        error(p, out, KVS_BIN_UNKNOWN_COMMAND, NULL, vlen);
        return head;
    }
    if (r->keylen > KVS_BIN_SASL_MECH_MAX) {
        error(p, out, KVS_BIN_EINVAL, NULL, vlen);
        return head;
    }
    if (vlen < 0 || (uint32_t)vlen > KVS_BIN_SASL_DATA_MAX ||
        !kvs_store_item_size_ok(p->ctx->store, r->keylen, 0, (size_t)vlen)) {
        error(p, out, KVS_BIN_ENOMEM, NULL, vlen);
        return head;
    }
    if (avail < head + (size_t)vlen)
        return 0;
    sasl_complete(p, r, r->key + r->keylen, (size_t)vlen, out);
    return head + (size_t)vlen;
}

/* One request from its header. Returns the bytes consumed (0: wait for more, or closed). */
static size_t request(struct kvs_proto *p, const char *in, size_t avail, struct kvs_buf *out) {
    if (avail < KVS_BIN_HEADER_LEN)
        return 0;
    const unsigned char *h = (const unsigned char *)in;
    if (h[0] != KVS_BIN_REQ_MAGIC) {
        /* memcached: "Invalid magic", conn_closing: replies it had not sent yet (those
         * since the read began or the last NOOP's flush) are dropped */
        if (out->len > p->bin.flushed)
            out->len = p->bin.flushed;
        p->close = true;
        return 0;
    }
    struct bin_req r = {.opcode = h[1], .keylen = get16(h + 2), .extlen = h[4],
                        .bodylen = get32(h + 8)};
    p->bin.opcode = r.opcode;
    memcpy(&p->bin.opaque, h + 12, 4);
    p->bin.req_cas = get64(h + 16);
    p->bin.quiet = false;
    if ((uint64_t)r.keylen + r.extlen > r.bodylen) {
        kvs_stat_add(&p->stats->protocol_errors, 1);
        error(p, out, KVS_BIN_UNKNOWN_COMMAND, NULL, 0);
        p->close = true;
        return KVS_BIN_HEADER_LEN;
    }
    if (needs_auth(p, r.opcode)) {
        error(p, out, KVS_BIN_AUTH_ERROR, NULL, 0);
        p->close = true;
        return KVS_BIN_HEADER_LEN;
    }
    if (r.keylen > KVS_KEY_MAX) {
        protocol_error(p, out);
        return KVS_BIN_HEADER_LEN;
    }
    size_t need = KVS_BIN_HEADER_LEN + (size_t)r.extlen + r.keylen;
    if (avail < need)
        return 0;
    r.ext = h + KVS_BIN_HEADER_LEN;
    r.key = in + KVS_BIN_HEADER_LEN + r.extlen;
    p->bin.quiet = opcode_quiet(r.opcode);
    if ((r.opcode == KVS_BIN_SASL_AUTH || r.opcode == KVS_BIN_SASL_STEP) && lengths_ok(&r))
        return request_sasl(p, &r, avail, out);
    dispatch(p, &r, out);
    return need;
}

/* Value bytes into the item being stored. Returns the bytes taken. */
static size_t take_value(struct kvs_proto *p, const char *in, size_t avail, struct kvs_buf *out) {
    size_t k = avail < p->vlen - p->have ? avail : p->vlen - p->have;
    if (k && kvs_store_item_write(p->ctx->store, p->item, p->have, in, k)) {
        /* the backend failed (SUVM integrity): drop the value, keep the stream in step */
        kvs_store_item_free(p->ctx->store, p->item);
        p->item = NULL;
        p->bin.swallow = p->vlen - p->have - k;
        p->bin.state = p->bin.swallow ? KVS_BS_SWALLOW : KVS_BS_HEADER;
        error(p, out, KVS_BIN_EINTERNAL, "Internal error: integrity check failed", 0);
        return k;
    }
    p->have += k;
    if (p->have == p->vlen)
        complete_update(p, out);
    return k;
}

enum kvs_wire kvs_bin_negotiate(const struct kvs_ctx *ctx, unsigned char first) {
    const struct kvs_settings *s = kvs_ctx_settings(ctx);
    enum kvs_binding b = s->binding;
    if (s->sasl)
        b = KVS_BIND_BINARY; /* memcached: SASL is binary only */
    else if (s->auth_ascii && b == KVS_BIND_AUTO)
        b = KVS_BIND_ASCII;  /* and ASCII auth text only */
    if (b == KVS_BIND_ASCII)
        return KVS_WIRE_TEXT;
    if (b == KVS_BIND_BINARY)
        return KVS_WIRE_BINARY;
    return first == KVS_BIN_REQ_MAGIC ? KVS_WIRE_BINARY : KVS_WIRE_TEXT;
}

size_t kvs_bin_feed(struct kvs_proto *p, const char *in, size_t len, struct kvs_buf *out) {
    size_t pos = 0;
    p->bin.flushed = out->len;
    while (!p->close) {
        if (p->bin.state == KVS_BS_SWALLOW) {
            size_t k = len - pos < p->bin.swallow ? len - pos : (size_t)p->bin.swallow;
            pos += k;
            p->bin.swallow -= k;
            if (p->bin.swallow == 0)
                p->bin.state = KVS_BS_HEADER;
            if (pos == len)
                break;
            continue;
        }
        if (p->bin.state == KVS_BS_VALUE) {
            /* a zero-length value completes without input */
            pos += take_value(p, in + pos, len - pos, out);
            if (p->bin.state == KVS_BS_VALUE)
                break;
            continue;
        }
        if (pos == len || (p->out_limit && out->len >= p->out_limit))
            break;
        size_t used = request(p, in + pos, len - pos, out);
        if (used == 0)
            break;
        pos += used;
    }
    return pos;
}
