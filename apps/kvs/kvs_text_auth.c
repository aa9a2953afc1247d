/*
 * kvs_text_auth.c — memcached 1.6.18's ASCII authentication (-Y), as a part of the pure
 * protocol state machine.
 *
 * With -Y a connection starts unauthenticated. Its first line must be a storage line of at
 * least five tokens, "set <key> <flags> <exptime> <bytes>", whose value is
 * "<user> <password>"; key, flags and exptime are ignored, as memcached ignores them. Any
 * other line is consumed and answered "CLIENT_ERROR unauthenticated" (the connection stays
 * open). The value answers:
 *   STORED                                         the credential is in the -Y table
 *   CLIENT_ERROR authentication failure            it is not (auth_errors counts it)
 *   CLIENT_ERROR bad authentication token format   fewer than two tokens
 *   CLIENT_ERROR bad command line termination      the value does not end in "\r\n"
 * and every attempt counts in auth_cmds. After STORED the connection speaks the full text
 * protocol.
 *
 * memcached's quirk, reproduced: its unauthenticated replies reuse one response object, so
 * of several of them produced from one read only the last reaches the client (each
 * overwrites the one before). We do the same within one kvs_proto_feed call.
 *
 * Where memcached is silent: a value longer than its read buffer (AUTH_PAYLOAD_MAX) closes
 * the connection, as does a line of more than 2048 bytes without '\n' (memcached's rule).
 */
#include <stdint.h>
#include <string.h>

#include "kvs_proto.h"
#include "kvs_proto_internal.h"

/* memcached's read buffer (READ_BUFFER_SIZE): an auth value must fit in it. */
#define AUTH_PAYLOAD_MAX 16384u
/* memcached closes an unauthenticated connection after this many bytes without '\n'. */
#define AUTH_LINE_MAX 2048u

bool kvs_auth_required(const struct kvs_proto *p) {
    return !p->authenticated && kvs_ctx_settings(p->ctx)->auth_ascii;
}

/* A reply of the unauthenticated phase: replaces the previous one of this feed. */
static void auth_reply(struct kvs_proto *p, struct kvs_buf *out, const char *s, bool error) {
    if (p->auth_reply_at != SIZE_MAX && p->auth_reply_at <= out->len)
        out->len = p->auth_reply_at;
    p->auth_reply_at = out->len;
    p->noreply = false;
    if (error)
        kvs_out_error(p, out, s);
    else
        kvs_out_string(p, out, s);
}

/* The "set ..." line. Returns the bytes consumed, or 0 (wait for more). */
static size_t auth_line(struct kvs_proto *p, char *in, size_t len, struct kvs_buf *out) {
    if (len < 2)
        return 0;
    char *nl = memchr(in, '\n', len);
    if (!nl) {
        if (len > AUTH_LINE_MAX)
            p->close = p->abort = true;
        return 0;
    }
    *nl = '\0'; /* a '\r' stays: the size parser stops at it, as memcached's does */
    size_t consumed = (size_t)(nl - in) + 1;
    struct token tokens[MAX_TOKENS];
    size_t ntokens = kvs_tokenize(in, tokens, MAX_TOKENS);
    uint32_t size = 0;
    if (ntokens < 6 || strcmp(tokens[0].value, "set") != 0 ||
        !kvs_safe_strtoul(tokens[4].value, &size)) {
        auth_reply(p, out, "CLIENT_ERROR unauthenticated", true);
        return consumed;
    }
    if ((size_t)size + 2 > AUTH_PAYLOAD_MAX) {
        p->close = p->abort = true;
        return consumed;
    }
    p->auth_len = (size_t)size + 2;
    p->state = KVS_PS_AUTH;
    return consumed;
}

/* The "<user> <password>\r\n" value: checks it against the -Y table. */
static void auth_check(struct kvs_proto *p, char *cont, size_t n, struct kvs_buf *out) {
    if (cont[n - 2] != '\r' || cont[n - 1] != '\n') {
        auth_reply(p, out, "CLIENT_ERROR bad command line termination", true);
        return;
    }
    cont[n - 2] = '\0';
    struct token tokens[MAX_TOKENS];
    if (kvs_tokenize(cont, tokens, MAX_TOKENS) < 3) {
        auth_reply(p, out, "CLIENT_ERROR bad authentication token format", true);
        return;
    }
    const struct kvs_auth *t = p->ctx->auth_ascii;
    kvs_stat_add(&p->stats->auth_cmds, 1);
    if (t && kvs_auth_check(t, tokens[0].value, tokens[0].length, tokens[1].value,
                            tokens[1].length)) {
        p->authenticated = true;
        auth_reply(p, out, "STORED", false);
    } else {
        kvs_stat_add(&p->stats->auth_errors, 1);
        auth_reply(p, out, "CLIENT_ERROR authentication failure", true);
    }
    memset(cont, 0, n); /* the password: no copy left in the input buffer */
}

size_t kvs_auth_feed(struct kvs_proto *p, char *in, size_t len, struct kvs_buf *out) {
    if (p->state != KVS_PS_AUTH)
        return auth_line(p, in, len, out);
    if (len < p->auth_len)
        return 0;
    size_t n = p->auth_len;
    p->state = KVS_PS_CMD;
    auth_check(p, in, n, out);
    return n;
}
