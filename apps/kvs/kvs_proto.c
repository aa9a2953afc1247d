/*
 * kvs_proto.c — memcached 1.6.18's text protocol (proto_text.c), as a pure state machine.
 *
 * Data flow: kvs_proto_feed() takes the bytes the connection has read. In KVS_PS_CMD it
 * splits off one '\n'-terminated line (a preceding '\r' is dropped), tokenizes it in place
 * exactly as memcached's tokenize_command (spaces only, at most 24 tokens, the last one
 * holding the rest of the line), and dispatches on the first token in memcached's order, so
 * that every malformed line gets the same reply memcached gives (ERROR, CLIENT_ERROR ...).
 * A storage command allocates its item at once and moves to KVS_PS_DATA, where value bytes
 * go straight into the item (through the store's backend, so SUVM pages them) and the two
 * bytes after the value must be "\r\n". An item that cannot be stored (too large, out of
 * memory) moves to KVS_PS_SWALLOW, which discards the value.
 *
 * Replies go through kvs_out_string(), which honours "noreply" as memcached does: the next
 * reply of that command is suppressed, errors included.
 *
 * Differences from memcached, all invisible in the bytes exchanged: a SERVER_ERROR for a
 * value that will be swallowed is emitted at once rather than after the swallow; a single
 * get's response is bounded (KVS_GET_RESPONSE_MAX); a multiget whose replies reach out_limit
 * is suspended between keys (KVS_PS_MGET) and resumed by a later feed, where memcached would
 * hold references to the items instead; a get line longer than KVS_LINE_SOFT_MAX without
 * its '\n' yet is served key by key as it arrives (KVS_PS_GETSTREAM), where memcached
 * would buffer it whole (an error mid-line cannot take back replies already sent).
 * -Y's authentication exchange is in kvs_text_auth.c, `stats` in kvs_stats.c.
 *
 * Nothing here makes a system call, reads a clock or trusts anything but the input bytes.
 */
#include "kvs_proto.h"
#include "kvs_proto_internal.h"
#include "kvs_meta.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* memcached's MAX_VERBOSITY_LEVEL. */
#define MAX_VERBOSITY_LEVEL 2
/* memcached: leading blanks allowed before a long multiget's "get". */
#define LONG_LINE_LEADING_BLANKS 100


void kvs_thread_stats_sum(const struct kvs_thread_stats *t, struct kvs_thread_totals *sum) {
#define KVS_X(f) sum->f += atomic_load_explicit(&t->f, memory_order_relaxed);
    KVS_THREAD_STATS(KVS_X)
#undef KVS_X
}

void kvs_thread_stats_reset(struct kvs_thread_stats *t) {
#define KVS_X(f) atomic_store_explicit(&t->f, 0, memory_order_relaxed);
    KVS_THREAD_STATS(KVS_X)
#undef KVS_X
}

const struct kvs_settings *kvs_ctx_settings(const struct kvs_ctx *ctx) {
    static struct kvs_settings defaults;
    static _Atomic int once;
    if (ctx->settings)
        return ctx->settings;
    int expected = 0;
    if (atomic_compare_exchange_strong(&once, &expected, 1)) {
        kvs_settings_default(&defaults);
        atomic_store(&once, 2);
    }
    while (atomic_load(&once) != 2)
        ;
    return &defaults;
}

void kvs_proto_init(struct kvs_proto *p, struct kvs_ctx *ctx, struct kvs_thread_stats *st) {
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    p->stats = st;
    p->state = KVS_PS_CMD;
    p->cfd = -1;
    p->watch_slot = -1;
}

void kvs_proto_fini(struct kvs_proto *p) {
    if (p->watch_slot >= 0)
        kvs_watch_remove(p->ctx->watch, p->watch_slot);
    p->watch_slot = -1;
    if (p->item) {
        kvs_store_item_free(p->ctx->store, p->item);
        p->item = NULL;
    }
    p->state = KVS_PS_CMD;
}

/* --- output ------------------------------------------------------------------------------- */

void kvs_out_raw(struct kvs_proto *p, struct kvs_buf *out, const char *s, size_t n) {
    if (kvs_buf_append(out, s, n))
        p->close = p->abort = true; /* cannot even reply: drop the connection, keep the server */
}

void kvs_out_string(struct kvs_proto *p, struct kvs_buf *out, const char *s) {
    if (p->noreply) {
        p->noreply = false;
        return;
    }
    kvs_out_raw(p, out, s, strlen(s));
    kvs_out_raw(p, out, "\r\n", 2);
}

void kvs_out_error(struct kvs_proto *p, struct kvs_buf *out, const char *s) {
    kvs_stat_add(&p->stats->protocol_errors, 1);
    kvs_out_string(p, out, s);
}

void kvs_count_store(struct kvs_proto *p, enum kvs_store_result r) {
    if (p->cmd != KVS_CMD_CAS)
        return;
    if (r == KVS_STORED)
        kvs_stat_add(&p->stats->cas_hits, 1);
    else if (r == KVS_EXISTS)
        kvs_stat_add(&p->stats->cas_badval, 1);
    else if (r == KVS_NOT_FOUND)
        kvs_stat_add(&p->stats->cas_misses, 1);
}

void kvs_out_printf(struct kvs_proto *p, struct kvs_buf *out, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    kvs_out_raw(p, out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* --- memcached's number parsers (util.c), same acceptance rules ------------------------ */

static bool is_space(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

bool kvs_safe_strtoull(const char *str, uint64_t *out) {
    errno = 0;
    *out = 0;
    char *end;
    unsigned long long v = strtoull(str, &end, 10);
    if (errno == ERANGE || end == str)
        return false;
    if (is_space(*end) || *end == '\0') {
        if ((long long)v < 0 && memchr(str, '-', (size_t)(end - str)))
            return false;
        *out = v;
        return true;
    }
    return false;
}

/* 32-bit unsigned: like memcached, values up to 2^64-1 are accepted and truncated. */
bool kvs_safe_strtoul(const char *str, uint32_t *out) {
    errno = 0;
    *out = 0;
    char *end;
    unsigned long v = strtoul(str, &end, 10);
    if (errno == ERANGE || end == str)
        return false;
    if (is_space(*end) || *end == '\0') {
        if ((long)v < 0 && memchr(str, '-', (size_t)(end - str)))
            return false;
        *out = (uint32_t)v;
        return true;
    }
    return false;
}

/* 32-bit signed: memcached 1.6.18 stores strtol's long into an int32_t unchecked, so
 * 4294967296 parses as 0; we reproduce that. */
bool kvs_safe_strtol(const char *str, int32_t *out) {
    errno = 0;
    *out = 0;
    char *end;
    long v = strtol(str, &end, 10);
    if (errno == ERANGE || end == str)
        return false;
    if (is_space(*end) || *end == '\0') {
        *out = (int32_t)(uint32_t)(unsigned long)v;
        return true;
    }
    return false;
}

/* memcached's EXPTIME_TO_POSITIVE_TIME + realtime(). */
uint32_t kvs_exptime_rel(struct kvs_proto *p, int32_t exptime) {
    int64_t e = exptime < 0 ? (int64_t)KVS_REALTIME_MAXDELTA + 1 : exptime;
    return kvs_store_realtime(p->ctx->store, e);
}

/* --- tokenizer ---------------------------------------------------------------------------- */

/* memcached's tokenize_command: command is NUL-terminated and modified in place. */
size_t kvs_tokenize(char *command, struct token *tokens, size_t max_tokens) {
    size_t ntokens = 0;
    size_t len = strlen(command);
    char *s = command, *e = command;
    for (size_t i = 0; i < len; i++) {
        if (*e == ' ') {
            if (s != e) {
                tokens[ntokens].value = s;
                tokens[ntokens].length = (size_t)(e - s);
                ntokens++;
                *e = '\0';
                if (ntokens == max_tokens - 1) {
                    e++;
                    s = e;
                    break;
                }
            }
            s = e + 1;
        }
        e++;
    }
    if (s != e) {
        tokens[ntokens].value = s;
        tokens[ntokens].length = (size_t)(e - s);
        ntokens++;
    }
    /* The terminal token: NULL if the whole string was scanned, else the unprocessed rest. */
    tokens[ntokens].value = *e == '\0' ? NULL : e;
    tokens[ntokens].length = 0;
    ntokens++;
    return ntokens;
}

void kvs_set_noreply_maybe(struct kvs_proto *p, struct token *tokens, size_t ntokens) {
    size_t i = ntokens - 2;
    if (tokens[i].value && strcmp(tokens[i].value, "noreply") == 0)
        p->noreply = true;
}

/* --- get/gets/gat/gats --------------------------------------------------------------------- */

struct get_sink_arg {
    struct kvs_buf *out;
    size_t start;
    const char *key;
    size_t nkey;
    bool return_cas;
    unsigned clsid;           /* the hit's, for watch */
    size_t nbytes;
};

/* Appends " <v>" in decimal at p; returns the end. The hot path of every hit: snprintf
 * costs more than the rest of building the reply. */
static char *put_space_u64(char *p, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    *p++ = ' ';
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void *get_sink(void *arg, const struct kvs_get_info *info) {
    struct get_sink_arg *a = arg;
    a->clsid = info->clsid;
    a->nbytes = info->nbytes;
    char hdr[64]; /* " flags bytes [cas]\r\n": at most 1 + 10 + 1 + 10 + 1 + 20 + 2 */
    char *e = put_space_u64(hdr, info->flags);
    e = put_space_u64(e, info->nbytes);
    if (a->return_cas)
        e = put_space_u64(e, info->cas);
    *e++ = '\r';
    *e++ = '\n';
    int n = (int)(e - hdr);
    size_t need = 6 + a->nkey + (size_t)n + info->nbytes + 2;
    if (a->out->len - a->start + need > KVS_GET_RESPONSE_MAX)
        return NULL;
    if (kvs_buf_reserve(a->out, need))
        return NULL;
    struct kvs_buf *o = a->out;
    memcpy(o->data + o->len, "VALUE ", 6);
    memcpy(o->data + o->len + 6, a->key, a->nkey);
    memcpy(o->data + o->len + 6 + a->nkey, hdr, (size_t)n);
    o->len += 6 + a->nkey + (size_t)n;
    char *dst = o->data + o->len;
    o->len += info->nbytes;
    memcpy(o->data + o->len, "\r\n", 2);
    o->len += 2;
    return dst;
}

/* Suspends a multiget before key_token: the line stays unconsumed (kvs_proto_feed keeps it)
 * and its separators, which kvs_tokenize() turned into NULs, become spaces again so that the
 * rest of the line tokenizes afresh when the output has drained. */
static void mget_suspend(struct kvs_proto *p, char *line, const struct token *key_token) {
    size_t next = (size_t)(key_token->value - line);
    for (size_t i = next; i < p->mget_end; i++)
        if (line[i] == '\0')
            line[i] = ' ';
    p->mget_next = next;
    p->state = KVS_PS_MGET;
}

/* Serves one key of a get: its VALUE (if any) appended to out. NULL, or the error that ends
 * the command (memcached's). start: where this command's replies began. */
static const char *serve_key(struct kvs_proto *p, const char *key, size_t nkey,
                             struct kvs_buf *out, size_t start) {
    struct get_sink_arg a = {out, start, key, nkey, p->mget_cas, 0, 0};
    size_t before = out->len;
    int r = kvs_store_get(p->ctx->store, key, nkey, p->mget_touch, p->mget_exptime, get_sink,
                          &a);
    if (r < 0) {
        out->len = before;
        /* An SUVM integrity failure is reported, never served as data. */
        return r == -EIO ? "SERVER_ERROR integrity check failed"
                         : "SERVER_ERROR out of memory writing get response";
    }
    if (p->mget_touch) {
        kvs_stat_add(&p->stats->touch_cmds, 1);
        kvs_stat_add(r ? &p->stats->touch_hits : &p->stats->touch_misses, 1);
    }
    kvs_stat_add(&p->stats->get_cmds, 1);
    kvs_stat_add(r ? &p->stats->get_hits : &p->stats->get_misses, 1);
    kvs_detail_record(p, key, nkey, KVS_PREFIX_GET, r > 0);
    if (kvs_watch_on(p->ctx->watch, KVS_LOG_FETCHERS))
        kvs_watch_item_get(p->ctx->watch, key, nkey, r == 1, a.clsid, p->cfd, a.nbytes);
    return NULL;
}

/* Serves the keys from key_token on. A multiget whose replies reach the connection's output
 * limit is suspended between two keys (at least one key is served per call), so one short
 * line cannot make the server copy an unbounded amount of values into memory. */
static void get_keys(struct kvs_proto *p, char *line, struct token *key_token,
                     struct kvs_buf *out) {
    struct token tokens[MAX_TOKENS];
    size_t start = out->len;
    const char *fail = NULL;
    bool served = false;
    do {
        while (key_token->length != 0) {
            if (key_token->length > KVS_KEY_MAX) {
                fail = "CLIENT_ERROR bad command line format";
                goto stop;
            }
            if (served && p->out_limit && out->len >= p->out_limit) {
                mget_suspend(p, line, key_token);
                return;
            }
            fail = serve_key(p, key_token->value, key_token->length, out, start);
            if (fail)
                goto stop;
            served = true;
            key_token++;
        }
        /* More keys than one tokenization holds: kvs_tokenize the rest of the line. */
        if (key_token->value != NULL) {
            kvs_tokenize(key_token->value, tokens, MAX_TOKENS);
            key_token = tokens;
        }
    } while (key_token->value != NULL);
stop:
    p->state = KVS_PS_CMD;
    if (fail) {
        /* memcached culls every response not yet sent (conn_release_items), not only this
         * command's: replies generated from the same read batch vanish with it. */
        out->len = p->batch_start < start ? p->batch_start : start;
        kvs_out_error(p, out, fail);
        return;
    }
    kvs_out_raw(p, out, "END\r\n", 5);
}

static void process_get(struct kvs_proto *p, char *line, struct token *tokens,
                        struct kvs_buf *out, bool return_cas, bool touch) {
    struct token *key_token = &tokens[1];
    p->mget_exptime = 0;
    if (touch) {
        int32_t e;
        if (!kvs_safe_strtol(tokens[1].value, &e)) {
            kvs_out_error(p, out, "CLIENT_ERROR invalid exptime argument");
            return;
        }
        key_token++;
        p->mget_exptime = kvs_exptime_rel(p, e);
    }
    p->mget_cas = return_cas;
    p->mget_touch = touch;
    get_keys(p, line, key_token, out);
}

/* Continues a suspended multiget; line is where the feed left it. */
static void resume_get(struct kvs_proto *p, char *line, struct kvs_buf *out) {
    struct token tokens[MAX_TOKENS];
    kvs_tokenize(line + p->mget_next, tokens, MAX_TOKENS);
    get_keys(p, line, tokens, out);
}

/* --- a long get line, served as it arrives ---------------------------------------------- */

/* The line has no '\n' yet and is longer than a command may be (memcached's rule,
 * KVS_LINE_SOFT_MAX): a get/gets after at most 100 blanks may go on, anything else is
 * dropped. Starts serving it key by key (KVS_PS_GETSTREAM); returns the bytes taken (the
 * blanks and the command word), or 0 to close the connection. */
static size_t stream_begin(struct kvs_proto *p, const char *in, size_t len, struct kvs_buf *out) {
    size_t i = 0;
    while (i < len && in[i] == ' ')
        i++;
    if (i > LONG_LINE_LEADING_BLANKS)
        return 0;
    bool gets = len - i >= 5 && memcmp(in + i, "gets ", 5) == 0;
    if (!gets && !(len - i >= 4 && memcmp(in + i, "get ", 4) == 0))
        return 0;
    p->state = KVS_PS_GETSTREAM;
    p->mget_cas = gets;
    p->mget_touch = false;
    p->mget_exptime = 0;
    p->stream_start = out->len;
    p->stream_failed = p->stream_any = false;
    return i + (gets ? 4 : 3);
}

/* Ends a streamed get at its '\n': END, or memcached's ERROR for a get without keys. */
static void stream_end(struct kvs_proto *p, struct kvs_buf *out) {
    p->state = KVS_PS_CMD;
    if (p->stream_failed)
        return;
    if (!p->stream_any)
        kvs_out_error(p, out, "ERROR");
    else
        kvs_out_raw(p, out, "END\r\n", 5);
}

/* A bad key or a failed get mid-line: memcached culls the replies not yet sent and answers
 * the error once; the rest of the line is read and dropped. Replies of this line that an
 * earlier feed produced may have been sent already: those cannot be taken back. */
static void stream_fail(struct kvs_proto *p, struct kvs_buf *out, const char *err) {
    out->len = p->batch_start;
    p->stream_failed = true;
    kvs_out_error(p, out, err);
}

/* Serves the complete keys in in[0..len) and returns the bytes consumed; an unfinished key
 * at the end stays unconsumed (feed it again with more bytes). Stops between keys once out
 * reaches out_limit. */
static size_t stream_keys(struct kvs_proto *p, const char *in, size_t len, struct kvs_buf *out) {
    size_t i = 0;
    bool served = false;
    for (;;) {
        while (i < len && in[i] == ' ')
            i++;
        size_t j = i;
        while (j < len && in[j] != ' ' && in[j] != '\n')
            j++;
        if (j == len) {
            /* an unfinished key: keep it, unless it is already too long to be one */
            if (j - i > KVS_KEY_MAX + 1 && !p->stream_failed)
                stream_fail(p, out, "CLIENT_ERROR bad command line format");
            return p->stream_failed ? len : i;
        }
        bool eol = in[j] == '\n';
        size_t nkey = j - i;
        if (eol && nkey && in[j - 1] == '\r')
            nkey--; /* the line's "\r\n" */
        if (nkey && !p->stream_failed) {
            if (nkey > KVS_KEY_MAX) {
                stream_fail(p, out, "CLIENT_ERROR bad command line format");
            } else {
                if (served && p->out_limit && out->len >= p->out_limit)
                    return i;
                size_t start = p->stream_start == SIZE_MAX ? p->batch_start : p->stream_start;
                const char *err = serve_key(p, in + i, nkey, out, start);
                if (err)
                    stream_fail(p, out, err);
                served = p->stream_any = true;
            }
        }
        i = j + 1;
        if (eol) {
            stream_end(p, out);
            return i;
        }
    }
}

/* --- storage commands ----------------------------------------------------------------- */

static void process_update(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                           struct kvs_buf *out, enum kvs_store_cmd cmd, bool handle_cas) {
    kvs_set_noreply_maybe(p, tokens, ntokens);
    if (tokens[1].length > KVS_KEY_MAX) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    uint32_t flags;
    int32_t exptime, vlen;
    if (!(kvs_safe_strtoul(tokens[2].value, &flags) && kvs_safe_strtol(tokens[3].value, &exptime) &&
          kvs_safe_strtol(tokens[4].value, &vlen))) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    uint32_t rel = kvs_exptime_rel(p, exptime);
    uint64_t cas = 0;
    if (handle_cas && !kvs_safe_strtoull(tokens[5].value, &cas)) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    if (vlen < 0 || vlen > INT_MAX - 2) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    kvs_detail_record(p, tokens[1].value, tokens[1].length, KVS_PREFIX_SET, false);
    struct kvs_item *it = NULL;
    int r = kvs_store_item_alloc(p->ctx->store, tokens[1].value, tokens[1].length, flags, rel,
                                 (size_t)vlen, &it);
    if (r) {
        if (r == -E2BIG) {
            kvs_out_error(p, out, "SERVER_ERROR object too large for cache");
            kvs_stat_add(&p->stats->store_too_large, 1);
        } else {
            kvs_out_error(p, out, "SERVER_ERROR out of memory storing object");
            kvs_stat_add(&p->stats->store_no_memory, 1);
        }
        p->state = KVS_PS_SWALLOW;
        p->swallow = (uint64_t)vlen + 2;
        /* memcached: a failed set must not leave the stale value readable. */
        if (cmd == KVS_CMD_SET)
            kvs_store_unlink_key(p->ctx->store, tokens[1].value, tokens[1].length);
        return;
    }
    p->item = it;
    p->cmd = cmd;
    p->cas = cas;
    p->vlen = (size_t)vlen;
    p->have = 0;
    p->ncrlf = 0;
    p->state = KVS_PS_DATA;
}

/* memcached's item_store log line: what the item was, then how the store went. */
struct watch_store {
    char key[KVS_KEY_MAX];
    struct kvs_item_view v;
};

static void watch_store_begin(struct kvs_proto *p, struct kvs_item *it, struct watch_store *ws) {
    (void)p;
    kvs_store_item_view(it, &ws->v);
    ws->v.nkey = ws->v.nkey < sizeof ws->key ? ws->v.nkey : sizeof ws->key;
    memcpy(ws->key, ws->v.key, ws->v.nkey);
}

static void watch_store_end(struct kvs_proto *p, struct watch_store *ws,
                            enum kvs_store_result r) {
    static const char *const cmds[] = {"set", "add", "replace", "append", "prepend", "cas"};
    const char *status = r == KVS_STORED ? "stored" : r == KVS_EXISTS ? "exists"
                       : r == KVS_NOT_FOUND ? "not_found" : r == KVS_NO_MEMORY ? "no_memory"
                       : "not_stored";
    uint32_t now = kvs_store_current_time(p->ctx->store);
    uint32_t ttl = ws->v.exptime ? ws->v.exptime - now : 0;
    kvs_watch_item_store(p->ctx->watch, ws->key, ws->v.nkey, status,
                         p->cmd <= KVS_CMD_CAS ? cmds[p->cmd] : "na", ttl, ws->v.clsid, p->cfd,
                         ws->v.nbytes);
}

static void complete_nread(struct kvs_proto *p, struct kvs_buf *out) {
    struct kvs_item *it = p->item;
    p->item = NULL;
    p->state = KVS_PS_CMD;
    kvs_stat_add(&p->stats->set_cmds, 1);
    if (p->mset.active) {
        kvs_meta_set_complete(p, it, p->crlf[0] == '\r' && p->crlf[1] == '\n', out);
        return;
    }
    if (p->crlf[0] != '\r' || p->crlf[1] != '\n') {
        kvs_store_item_free(p->ctx->store, it);
        kvs_out_error(p, out, "CLIENT_ERROR bad data chunk");
        return;
    }
    struct watch_store ws;
    bool watch = kvs_watch_on(p->ctx->watch, KVS_LOG_MUTATIONS);
    if (watch)
        watch_store_begin(p, it, &ws); /* before the link, which may free it */
    enum kvs_store_result r = kvs_store_item_link(p->ctx->store, it, p->cmd, p->cas);
    if (watch)
        watch_store_end(p, &ws, r);
    kvs_count_store(p, r);
    switch (r) {
    case KVS_STORED: kvs_out_string(p, out, "STORED"); break;
    case KVS_EXISTS: kvs_out_string(p, out, "EXISTS"); break;
    case KVS_NOT_FOUND: kvs_out_string(p, out, "NOT_FOUND"); break;
    case KVS_NOT_STORED: kvs_out_string(p, out, "NOT_STORED"); break;
    default: kvs_out_string(p, out, "SERVER_ERROR Unhandled storage type."); break;
    }
}

/* --- other commands ------------------------------------------------------------------- */

static void process_arithmetic(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                               struct kvs_buf *out, bool incr) {
    kvs_set_noreply_maybe(p, tokens, ntokens);
    if (tokens[1].length > KVS_KEY_MAX) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    uint64_t delta;
    if (!kvs_safe_strtoull(tokens[2].value, &delta)) {
        kvs_out_error(p, out, "CLIENT_ERROR invalid numeric delta argument");
        return;
    }
    char buf[32];
    switch (kvs_store_delta(p->ctx->store, tokens[1].value, tokens[1].length, incr, delta, buf,
                            sizeof buf)) {
    case KVS_STORED:
        kvs_stat_add(incr ? &p->stats->incr_hits : &p->stats->decr_hits, 1);
        kvs_out_string(p, out, buf);
        break;
    case KVS_NON_NUMERIC:
        kvs_out_error(p, out, "CLIENT_ERROR cannot increment or decrement non-numeric value");
        break;
    case KVS_NOT_FOUND:
        kvs_stat_add(incr ? &p->stats->incr_misses : &p->stats->decr_misses, 1);
        kvs_out_string(p, out, "NOT_FOUND");
        break;
    case KVS_NO_MEMORY:
        kvs_out_error(p, out, "SERVER_ERROR out of memory");
        break;
    default:
        kvs_out_error(p, out, "SERVER_ERROR integrity check failed");
        break;
    }
}

static void process_delete(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                           struct kvs_buf *out) {
    if (ntokens > 3) {
        bool hold_is_zero = strcmp(tokens[2].value, "0") == 0;
        kvs_set_noreply_maybe(p, tokens, ntokens);
        bool valid = (ntokens == 4 && (hold_is_zero || p->noreply)) ||
                     (ntokens == 5 && hold_is_zero && p->noreply);
        if (!valid) {
            kvs_out_error(p, out, "CLIENT_ERROR bad command line format.  "
                              "Usage: delete <key> [noreply]");
            return;
        }
    }
    if (tokens[1].length > KVS_KEY_MAX) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    kvs_detail_record(p, tokens[1].value, tokens[1].length, KVS_PREFIX_DELETE, false);
    if (kvs_store_delete(p->ctx->store, tokens[1].value, tokens[1].length) == KVS_DELETED) {
        kvs_stat_add(&p->stats->delete_hits, 1);
        kvs_out_string(p, out, "DELETED");
    } else {
        kvs_stat_add(&p->stats->delete_misses, 1);
        kvs_out_string(p, out, "NOT_FOUND");
    }
}

static void process_touch(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                          struct kvs_buf *out) {
    kvs_set_noreply_maybe(p, tokens, ntokens);
    if (tokens[1].length > KVS_KEY_MAX) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    int32_t e;
    if (!kvs_safe_strtol(tokens[2].value, &e)) {
        kvs_out_error(p, out, "CLIENT_ERROR invalid exptime argument");
        return;
    }
    kvs_stat_add(&p->stats->touch_cmds, 1);
    if (kvs_store_touch(p->ctx->store, tokens[1].value, tokens[1].length, kvs_exptime_rel(p, e)) ==
        KVS_TOUCHED) {
        kvs_stat_add(&p->stats->touch_hits, 1);
        kvs_out_string(p, out, "TOUCHED");
    } else {
        kvs_stat_add(&p->stats->touch_misses, 1);
        kvs_out_string(p, out, "NOT_FOUND");
    }
}

static void process_flush_all(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                              struct kvs_buf *out) {
    kvs_set_noreply_maybe(p, tokens, ntokens);
    kvs_stat_add(&p->stats->flush_cmds, 1);
    if (!kvs_ctx_settings(p->ctx)->flush_enabled) {
        /* -F: refused, but counted (memcached) */
        kvs_out_error(p, out, "CLIENT_ERROR flush_all not allowed");
        return;
    }
    int32_t e = 0;
    if (ntokens != (p->noreply ? 3u : 2u) && !kvs_safe_strtol(tokens[1].value, &e)) {
        kvs_out_error(p, out, "CLIENT_ERROR invalid exptime argument");
        return;
    }
    kvs_store_flush(p->ctx->store, e);
    kvs_out_string(p, out, "OK");
}

static void process_verbosity(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                              struct kvs_buf *out) {
    kvs_set_noreply_maybe(p, tokens, ntokens);
    uint32_t level;
    if (!kvs_safe_strtoul(tokens[1].value, &level)) {
        kvs_out_error(p, out, "CLIENT_ERROR bad command line format");
        return;
    }
    atomic_store_explicit(&p->ctx->verbosity,
                          level > MAX_VERBOSITY_LEVEL ? MAX_VERBOSITY_LEVEL : level,
                          memory_order_relaxed);
    kvs_out_string(p, out, "OK");
}

/* memcached 1.6.18: without -A an error; with it the connection closes without a reply and
 * the server stops (the loop raises the signal: this file makes no system calls). */
static void process_shutdown(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                             struct kvs_buf *out) {
    if (!kvs_ctx_settings(p->ctx)->shutdown_command) {
        kvs_out_error(p, out, "ERROR: shutdown not enabled");
        return;
    }
    if (ntokens == 2)
        p->shutdown = KVS_SHUTDOWN_NOW;
    else if (ntokens == 3 && strcmp(tokens[1].value, "graceful") == 0)
        p->shutdown = KVS_SHUTDOWN_GRACEFUL;
    else {
        kvs_out_string(p, out, "CLIENT_ERROR invalid shutdown mode");
        return;
    }
    p->close = p->abort = true;
}

/* memcached 1.6.18's watch: OK, then the connection only receives log lines (the loop
 * moves them from the watcher's buffer); what it sends afterwards is ignored. */
static void process_watch(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                          struct kvs_buf *out) {
    static const char *const names[] = {"fetchers", "mutations", "evictions", "connevents",
                                        "rawcmds", "sysevents", "proxyreqs", "proxyevents",
                                        "proxyuser"};
    static const uint8_t bits[] = {KVS_LOG_FETCHERS, KVS_LOG_MUTATIONS, KVS_LOG_EVICTIONS,
                                   KVS_LOG_CONNEVENTS, KVS_LOG_OTHER, KVS_LOG_OTHER,
                                   KVS_LOG_OTHER, KVS_LOG_OTHER, KVS_LOG_OTHER};
    kvs_set_noreply_maybe(p, tokens, ntokens);
    if (!kvs_ctx_settings(p->ctx)->watch_enabled) {
        kvs_out_string(p, out, "CLIENT_ERROR watch commands not allowed");
        return;
    }
    if (out->len > p->batch_start) {
        kvs_out_string(p, out, "ERROR cannot pipeline other commands before watch");
        return;
    }
    uint8_t f = ntokens > 2 ? 0 : KVS_LOG_FETCHERS;
    for (size_t x = 1; x + 1 < ntokens; x++) {
        size_t i = 0;
        while (i < sizeof bits && strcmp(tokens[x].value, names[i]) != 0)
            i++;
        if (i == sizeof bits) {
            kvs_out_error(p, out, "ERROR");
            return;
        }
        f |= bits[i];
    }
    int slot = p->ctx->watch ? kvs_watch_add(p->ctx->watch, f) : -1;
    if (slot < 0) {
        kvs_out_string(p, out, p->ctx->watch ? "WATCHER_TOO_MANY log watcher limit reached"
                                             : "WATCHER_FAILED failed to add log watcher");
        return;
    }
    p->watch_slot = slot;
    p->watch_flags = f;
    p->watching = true;
    kvs_out_raw(p, out, "OK\r\n", 4);
}

/* --- dispatch ------------------------------------------------------------------------------ */

#define WANT_TOKENS(n, lo, hi)                                                              \
    do {                                                                                    \
        if ((n) < (lo) || (n) > (hi)) {                                                     \
            kvs_out_error(p, out, "ERROR");                                                     \
            return;                                                                         \
        }                                                                                   \
    } while (0)
#define WANT_TOKENS_OR(n, a, b)                                                             \
    do {                                                                                    \
        if ((n) != (a) && (n) != (b)) {                                                     \
            kvs_out_error(p, out, "ERROR");                                                     \
            return;                                                                         \
        }                                                                                   \
    } while (0)

/* memcached's refresh_certs: reloads the TLS files; "OK" (noreply applies) or the loader's
 * error line (sent even with noreply, as memcached does). */
static void process_refresh_certs(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                                  struct kvs_buf *out) {
    kvs_set_noreply_maybe(p, tokens, ntokens);
    struct kvs_ctx *ctx = p->ctx;
    if (!ctx->refresh_certs) {
        kvs_out_raw(p, out, "Error TLS not enabled\r\n", 23);
        return;
    }
    if (ctx->refresh_certs(ctx->hook_arg, out) == 0)
        kvs_out_string(p, out, "OK");
    else
        p->noreply = false;
}

/* The commands that do not start with one of process_command's letters. */
static void process_rare(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                         struct kvs_buf *out) {
    const char *cmd = tokens[0].value;
    if (tokens[ntokens - 2].value && strncmp(tokens[ntokens - 2].value, "HTTP/", 5) == 0) {
        p->close = p->abort = true; /* memcached hangs up on HTTP requests */
    } else if (strcmp(cmd, "replace") == 0) {
        WANT_TOKENS_OR(ntokens, 6, 7);
        process_update(p, tokens, ntokens, out, KVS_CMD_REPLACE, false);
    } else if (strcmp(cmd, "prepend") == 0) {
        WANT_TOKENS_OR(ntokens, 6, 7);
        process_update(p, tokens, ntokens, out, KVS_CMD_PREPEND, false);
    } else if (strcmp(cmd, "flush_all") == 0) {
        WANT_TOKENS(ntokens, 2, 4);
        process_flush_all(p, tokens, ntokens, out);
    } else if (strcmp(cmd, "version") == 0) {
        kvs_out_string(p, out, "VERSION " KVS_MEMCACHED_VERSION);
    } else if (strcmp(cmd, "quit") == 0) {
        p->close = true;
    } else if (strcmp(cmd, "watch") == 0) {
        process_watch(p, tokens, ntokens, out);
    } else if (strcmp(cmd, "verbosity") == 0) {
        WANT_TOKENS_OR(ntokens, 3, 4);
        process_verbosity(p, tokens, ntokens, out);
    } else if (strcmp(cmd, "refresh_certs") == 0) {
        process_refresh_certs(p, tokens, ntokens, out);
    } else {
        kvs_out_error(p, out, "ERROR");
    }
}

/* memcached 1.6.18 process_command_ascii, restricted to the commands we implement; every
 * other command gets ERROR, as memcached answers unknown commands. */
static void process_command(struct kvs_proto *p, char *command, struct kvs_buf *out) {
    struct token tokens[MAX_TOKENS];
    p->noreply = false;
    p->mset.active = false; /* an ms whose value was dropped (backend failure) is over */
    size_t ntokens = kvs_tokenize(command, tokens, MAX_TOKENS);
    if (ntokens < 2 || tokens[0].length < 2) {
        kvs_out_error(p, out, "ERROR");
        return;
    }
    const char *cmd = tokens[0].value;
    char first = cmd[0];
    if (first == 'm' && tokens[0].length == 2) {
        kvs_meta_command(p, tokens, ntokens, out); /* the meta protocol: kvs_meta.c */
    } else if (first == 'g') {
        WANT_TOKENS(ntokens, 3, MAX_TOKENS);
        if (strcmp(cmd, "get") == 0)
            process_get(p, command, tokens, out, false, false);
        else if (strcmp(cmd, "gets") == 0)
            process_get(p, command, tokens, out, true, false);
        else if (strcmp(cmd, "gat") == 0)
            process_get(p, command, tokens, out, false, true);
        else if (strcmp(cmd, "gats") == 0)
            process_get(p, command, tokens, out, true, true);
        else
            kvs_out_error(p, out, "ERROR");
    } else if (first == 's') {
        if (strcmp(cmd, "set") == 0) {
            WANT_TOKENS_OR(ntokens, 6, 7);
            process_update(p, tokens, ntokens, out, KVS_CMD_SET, false);
        } else if (strcmp(cmd, "stats") == 0) {
            kvs_process_stats(p, tokens, ntokens, out);
        } else if (strcmp(cmd, "shutdown") == 0) {
            process_shutdown(p, tokens, ntokens, out);
        } else {
            kvs_out_error(p, out, "ERROR");
        }
    } else if (first == 'a') {
        if (strcmp(cmd, "add") == 0) {
            WANT_TOKENS_OR(ntokens, 6, 7);
            process_update(p, tokens, ntokens, out, KVS_CMD_ADD, false);
        } else if (strcmp(cmd, "append") == 0) {
            WANT_TOKENS_OR(ntokens, 6, 7);
            process_update(p, tokens, ntokens, out, KVS_CMD_APPEND, false);
        } else {
            kvs_out_error(p, out, "ERROR");
        }
    } else if (first == 'c') {
        if (strcmp(cmd, "cas") == 0) {
            WANT_TOKENS_OR(ntokens, 7, 8);
            process_update(p, tokens, ntokens, out, KVS_CMD_CAS, true);
        } else {
            kvs_out_error(p, out, "ERROR");
        }
    } else if (first == 'i') {
        if (strcmp(cmd, "incr") == 0) {
            WANT_TOKENS_OR(ntokens, 4, 5);
            process_arithmetic(p, tokens, ntokens, out, true);
        } else {
            kvs_out_error(p, out, "ERROR");
        }
    } else if (first == 'd') {
        if (strcmp(cmd, "delete") == 0) {
            WANT_TOKENS(ntokens, 3, 5);
            process_delete(p, tokens, ntokens, out);
        } else if (strcmp(cmd, "decr") == 0) {
            WANT_TOKENS_OR(ntokens, 4, 5);
            process_arithmetic(p, tokens, ntokens, out, false);
        } else {
            kvs_out_error(p, out, "ERROR");
        }
    } else if (first == 't') {
        if (strcmp(cmd, "touch") == 0) {
            WANT_TOKENS_OR(ntokens, 4, 5);
            process_touch(p, tokens, ntokens, out);
        } else {
            kvs_out_error(p, out, "ERROR");
        }
    } else {
        process_rare(p, tokens, ntokens, out);
    }
}

/* What `stats conns` shows of this connection (the server's table; none in tests). */
static void publish_state(struct kvs_proto *p) {
    static const uint32_t cs[] = {
        [KVS_PS_CMD] = KVS_CS_READ,      [KVS_PS_DATA] = KVS_CS_NREAD,
        [KVS_PS_SWALLOW] = KVS_CS_SWALLOW, [KVS_PS_MGET] = KVS_CS_MWRITE,
        [KVS_PS_GETSTREAM] = KVS_CS_MWRITE, [KVS_PS_AUTH] = KVS_CS_NREAD};
    if (p->info)
        atomic_store_explicit(&p->info->state, p->close ? KVS_CS_CLOSING : cs[p->state],
                              memory_order_relaxed);
}

/* KVS_PS_DATA: value bytes into the item, then its "\r\n". Returns the bytes taken. */
static size_t feed_value(struct kvs_proto *p, const char *in, size_t len, struct kvs_buf *out) {
    if (p->have < p->vlen) {
        size_t k = len < p->vlen - p->have ? len : p->vlen - p->have;
        if (kvs_store_item_write(p->ctx->store, p->item, p->have, in, k)) {
            /* The backend failed (SUVM integrity): drop the value, keep the line. */
            kvs_store_item_free(p->ctx->store, p->item);
            p->item = NULL;
            p->state = KVS_PS_SWALLOW;
            p->swallow = p->vlen - p->have - k + 2;
            kvs_out_error(p, out, "SERVER_ERROR out of memory storing object");
            return k;
        }
        p->have += k;
        return k;
    }
    size_t pos = 0;
    while (p->ncrlf < 2 && pos < len)
        p->crlf[p->ncrlf++] = in[pos++];
    if (p->ncrlf == 2)
        complete_nread(p, out);
    return pos;
}

/* The command loop of one feed (see kvs_proto_feed). */
static size_t feed_commands(struct kvs_proto *p, char *in, size_t len, struct kvs_buf *out) {
    size_t pos = 0;
    unsigned ncmds = 0;
    p->yielded = false;
    if (p->watching)
        return len; /* a watcher's input is not read, as memcached stops reading it */
    while (pos < len && !p->close) {
        if (p->watching)
            return len;
        if (p->state == KVS_PS_SWALLOW) {
            size_t k = len - pos < p->swallow ? len - pos : (size_t)p->swallow;
            pos += k;
            p->swallow -= k;
            if (p->swallow == 0)
                p->state = KVS_PS_CMD;
            continue;
        }
        if (p->state == KVS_PS_DATA) {
            pos += feed_value(p, in + pos, len - pos, out);
            continue;
        }
        if (p->out_limit && out->len >= p->out_limit)
            break;
        if ((p->state == KVS_PS_CMD || p->state == KVS_PS_AUTH) && kvs_auth_required(p)) {
            size_t k = kvs_auth_feed(p, in + pos, len - pos, out);
            if (k == 0)
                break;
            pos += k;
            continue;
        }
        if (p->state == KVS_PS_GETSTREAM) {
            size_t k = stream_keys(p, in + pos, len - pos, out);
            pos += k;
            if (p->state == KVS_PS_GETSTREAM)
                break; /* an unfinished key, or the output is full */
            continue;
        }
        if (p->state == KVS_PS_MGET) {
            resume_get(p, in + pos, out);
            if (p->state == KVS_PS_MGET)
                break;
            pos += p->mget_len;
            continue;
        }
        if (p->reqs_per_event && ncmds == p->reqs_per_event) {
            /* memcached's -R: give the other connections a turn (it counts a yield) */
            p->yielded = true;
            kvs_stat_add(&p->stats->conn_yields, 1);
            break;
        }
        char *line = in + pos;
        char *nl = memchr(line, '\n', len - pos);
        if (!nl) {
            if (len - pos <= KVS_LINE_SOFT_MAX)
                break;
            size_t k = stream_begin(p, line, len - pos, out);
            if (k == 0) {
                p->close = p->abort = true; /* too long to be a command */
                break;
            }
            pos += k;
            continue;
        }
        size_t consumed = (size_t)(nl - line) + 1;
        char *el = nl;
        if (el - line > 1 && el[-1] == '\r')
            el--;
        *el = '\0';
        p->mget_end = (size_t)(el - line);
        p->mget_len = consumed;
        if (p->info)
            atomic_store_explicit(&p->info->last_cmd, kvs_store_current_time(p->ctx->store),
                                  memory_order_relaxed);
        ncmds++;
        process_command(p, line, out);
        if (p->state == KVS_PS_MGET)
            break; /* the line stays in the input until the multiget is done */
        pos += consumed;
    }
    return pos;
}

size_t kvs_proto_feed(struct kvs_proto *p, char *in, size_t len, struct kvs_buf *out) {
    if (p->wire == KVS_WIRE_NEGOTIATE && len > 0)
        p->wire = kvs_bin_negotiate(p->ctx, (unsigned char)in[0]);
    if (p->wire == KVS_WIRE_BINARY)
        return kvs_bin_feed(p, in, len, out);
    p->batch_start = out->len;
    p->stream_start = SIZE_MAX; /* a streamed get of an earlier feed: its replies are gone */
    p->auth_reply_at = SIZE_MAX;
    size_t pos = feed_commands(p, in, len, out);
    publish_state(p);
    return pos;
}
