/*
 * kvs_auth.h — eleos-kvs's credentials: memcached's -Y auth file ("user:pass" per line, the
 * ASCII protocol's authentication) and the SASL password database (the same format, named
 * by MEMCACHED_SASL_PWDB as memcached's pwdb build reads it; SASL PLAIN over the binary
 * protocol). The enclave reads the files itself and keeps the parsed table in enclave
 * memory; the host never sees a password after start-up. Pure code: no system calls.
 */
#ifndef ELEOS_KVS_AUTH_H
#define ELEOS_KVS_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "eleos/attrs.h"
#include "kvs_common.h"

/* Files larger than this are refused (memcached's auth file is read whole too). */
#define KVS_AUTH_FILE_MAX (1u << 20)

struct kvs_auth;

/* Parses the file's bytes into a table on heap a. Every non-empty line is "user:pass"
 * ("\r\n" or "\n" ended; the user non-empty). 0, -EINVAL (*bad_line = 1-based line
 * number of the first bad line) or -ENOMEM. */
ELEOS_MUST_CHECK int kvs_auth_parse(const struct kvs_alloc *a, const char *text, size_t len,
                                    struct kvs_auth **out, unsigned *bad_line);
/* True if user/pass match an entry. Compares in time independent of where the password
 * differs, so a client cannot find a password byte by byte. */
bool kvs_auth_check(const struct kvs_auth *t, const char *user, size_t ulen, const char *pass,
                    size_t plen);
unsigned kvs_auth_count(const struct kvs_auth *t);
void kvs_auth_free(struct kvs_auth *t);

#endif
