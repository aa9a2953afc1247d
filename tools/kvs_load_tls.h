/*
 * eleos-kvs-load's TLS client (tools/kvs_load_tls.c, OpenSSL's libssl): a context per run,
 * a session per connection over the tool's non-blocking socket. The handshake runs at
 * connect time (poll-driven, bounded); afterwards reads and writes never block and say
 * which direction OpenSSL waits for (WANT_READ / WANT_WRITE), so the epoll loop can wait on
 * the socket for that.
 */
#ifndef ELEOS_KVS_LOAD_TLS_H
#define ELEOS_KVS_LOAD_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct kl_tls_ctx;
struct kl_tls;

enum kl_io { KL_IO_OK, KL_IO_WANT_READ, KL_IO_WANT_WRITE, KL_IO_CLOSED, KL_IO_ERROR };

/* ca_file: the CA bundle that must have signed the server's certificate (NULL: the system's
 * default paths); insecure: no certificate check at all. NULL + err on failure. */
struct kl_tls_ctx *kl_tls_ctx_new(const char *ca_file, bool insecure, char *err, size_t cap);
void kl_tls_ctx_free(struct kl_tls_ctx *ctx);

/* Handshakes over the connected non-blocking socket fd; the certificate must name host (a
 * DNS name or an IP address) unless the context is insecure. NULL + err on failure. */
struct kl_tls *kl_tls_connect(struct kl_tls_ctx *ctx, int fd, const char *host, int timeout_ms,
                              char *err, size_t cap);
void kl_tls_free(struct kl_tls *s);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384": for the tool's diagnostics. */
const char *kl_tls_describe(struct kl_tls *s, char *buf, size_t cap);

/* Non-blocking SSL_read / SSL_write: KL_IO_OK with *done > 0 bytes moved, else why not. A
 * write that returned WANT_* must be retried with the same bytes (they may move: the
 * session accepts a moved buffer) and possibly more after them. */
enum kl_io kl_tls_read(struct kl_tls *s, void *buf, size_t n, size_t *done, char *err, size_t cap);
enum kl_io kl_tls_write(struct kl_tls *s, const void *buf, size_t n, size_t *done, char *err,
                        size_t cap);

#endif
