/*
 * kvs_meta.h — memcached 1.6.18's meta protocol (mg ms md ma mn me) for kvs_proto.c.
 * Pure code like the rest of the protocol: no system calls, no clock.
 */
#ifndef ELEOS_KVS_META_H
#define ELEOS_KVS_META_H

#include <stdbool.h>
#include <stddef.h>

#include "kvs_proto_internal.h"

/* A tokenized line whose command is two characters starting with 'm' (memcached's dispatch
 * rule): runs it, or answers ERROR for an unknown one. ms leaves p in KVS_PS_DATA (or
 * KVS_PS_SWALLOW after an error) as the text storage commands do. */
void kvs_meta_command(struct kvs_proto *p, struct token *tokens, size_t ntokens,
                      struct kvs_buf *out);

/* The value of an ms has arrived (p->mset.active): stores it (ownership of it passes) and
 * replies under ms's flags. chunk_ok: the two bytes after the value were "\r\n". */
void kvs_meta_set_complete(struct kvs_proto *p, struct kvs_item *it, bool chunk_ok,
                           struct kvs_buf *out);

/* memcached's base64 (base64.c semantics: characters outside the alphabet are skipped,
 * padding ends the data). Return the output length, 0 on failure; decode may work in
 * place. */
size_t kvs_base64_decode(const char *src, size_t len, char *dst, size_t cap);
size_t kvs_base64_encode(const char *src, size_t len, char *dst, size_t cap);

#endif
