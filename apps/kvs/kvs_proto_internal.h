/*
 * kvs_proto_internal.h — what the protocol modules share (kvs_proto.c: the text protocol and
 * the dispatch; kvs_stats.c: `stats`): memcached's tokenizer and number parsers, and the
 * reply helpers that honour noreply and count protocol errors. Not for the server loops.
 */
#ifndef ELEOS_KVS_PROTO_INTERNAL_H
#define ELEOS_KVS_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvs_proto.h"

/* memcached's MAX_TOKENS. */
#define MAX_TOKENS 24

struct token {
    char *value;
    size_t length;
};

/* memcached's tokenize_command: command is NUL-terminated and modified in place. */
size_t kvs_tokenize(char *command, struct token *tokens, size_t max_tokens);
void kvs_set_noreply_maybe(struct kvs_proto *p, struct token *tokens, size_t ntokens);

/* memcached's util.c parsers, same acceptance rules. */
bool kvs_safe_strtoull(const char *str, uint64_t *out);
bool kvs_safe_strtoul(const char *str, uint32_t *out);
bool kvs_safe_strtol(const char *str, int32_t *out);
/* memcached's EXPTIME_TO_POSITIVE_TIME + realtime(). */
uint32_t kvs_exptime_rel(struct kvs_proto *p, int32_t exptime);

/* Replies. kvs_out_raw drops the connection when even the reply cannot be buffered. */
void kvs_out_raw(struct kvs_proto *p, struct kvs_buf *out, const char *s, size_t n);
/* A line with "\r\n", suppressed once after noreply. */
void kvs_out_string(struct kvs_proto *p, struct kvs_buf *out, const char *s);
/* kvs_out_string, counted as a protocol error. */
void kvs_out_error(struct kvs_proto *p, struct kvs_buf *out, const char *s);
void kvs_out_printf(struct kvs_proto *p, struct kvs_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* `stats detail`: whether per-prefix counting is on, and a count (op: kvs_prefix_op). */
bool kvs_detail_on(const struct kvs_ctx *c);
void kvs_detail_record(struct kvs_proto *p, const char *key, size_t nkey, int op, bool hit);

/* -Y (kvs_text_auth.c): true if the connection must authenticate first; then feeds input
 * to the ASCII auth exchange and returns the bytes it consumed (0: needs more input). */
bool kvs_auth_required(const struct kvs_proto *p);
size_t kvs_auth_feed(struct kvs_proto *p, char *in, size_t len, struct kvs_buf *out);

/* memcached's cas_hits / cas_badval / cas_misses for the result of linking p->cmd's item
 * (every protocol counts a CAS store the same way). */
void kvs_count_store(struct kvs_proto *p, enum kvs_store_result r);

/* `stats [group]` (kvs_stats.c). */
void kvs_process_stats(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                       struct kvs_buf *out);

#endif
