/*
 * eleos-kvs-load's TLS client (see kvs_load_tls.h). One SSL_CTX for the run (threads only
 * share it read-only after set-up); one SSL per connection, used by one thread only.
 */
#include "kvs_load_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kl_tls_ctx {
    SSL_CTX *ctx;
    bool insecure;
};

struct kl_tls {
    SSL *ssl;
};

/* OpenSSL's error queue (or errno for a syscall error) as text; clears the queue. */
static void ssl_error(char *err, size_t cap, const char *what, int ret_code) {
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    else if (ret_code == SSL_ERROR_SYSCALL)
        snprintf(buf, sizeof buf, "%s", errno ? strerror(errno) : "unexpected EOF");
    else
        snprintf(buf, sizeof buf, "SSL error %d", ret_code);
    ERR_clear_error();
    snprintf(err, cap, "%s: %s", what, buf);
}

struct kl_tls_ctx *kl_tls_ctx_new(const char *ca_file, bool insecure, char *err, size_t cap) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_error(err, cap, "SSL_CTX_new", 0);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* partial writes + a moving buffer: the tool's write buffer grows (realloc) while a
     * write waits for the socket */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!insecure) {
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            ssl_error(err, cap, ca_file ? ca_file : "the system's CA paths", 0);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    struct kl_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        SSL_CTX_free(ctx);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    c->ctx = ctx;
    c->insecure = insecure;
    return c;
}

void kl_tls_ctx_free(struct kl_tls_ctx *ctx) {
    if (ctx) {
        SSL_CTX_free(ctx->ctx);
        free(ctx);
    }
}

/* The name the certificate must carry: an IP address (subjectAltName IP) or a DNS name. */
static bool expect_peer(SSL *ssl, const char *host) {
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    return SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
}

static long ms_since(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* SSL_connect until done, polling the socket for the direction it waits for. */
static bool handshake(SSL *ssl, int fd, int timeout_ms, char *err, size_t cap) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int r = SSL_connect(ssl);
        if (r == 1)
            return true;
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            long v = SSL_get_verify_result(ssl);
            if (v != X509_V_OK) {
                snprintf(err, cap, "TLS handshake: server certificate not accepted: %s",
                         X509_verify_cert_error_string(v));
                ERR_clear_error();
            } else {
                ssl_error(err, cap, "TLS handshake", e);
                size_t n = strlen(err);
                snprintf(err + n, cap - n, " (does the server speak TLS on this port?)");
            }
            return false;
        }
        long left = timeout_ms - ms_since(&t0);
        struct pollfd p = {.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
        if (left <= 0 || poll(&p, 1, (int)left) == 0) {
            snprintf(err, cap, "TLS handshake: no answer within %d ms (does the server speak TLS?)",
                     timeout_ms);
            return false;
        }
    }
}

struct kl_tls *kl_tls_connect(struct kl_tls_ctx *ctx, int fd, const char *host, int timeout_ms,
                              char *err, size_t cap) {
    SSL *ssl = SSL_new(ctx->ctx);
    if (!ssl) {
        ssl_error(err, cap, "SSL_new", 0);
        return NULL;
    }
    if (SSL_set_fd(ssl, fd) != 1 || (!ctx->insecure && !expect_peer(ssl, host))) {
        ssl_error(err, cap, "TLS set-up", 0);
        SSL_free(ssl);
        return NULL;
    }
    struct kl_tls *s = calloc(1, sizeof *s);
    if (!s || !handshake(ssl, fd, timeout_ms, err, cap)) {
        if (!s)
            snprintf(err, cap, "out of memory");
        SSL_free(ssl);
        free(s);
        return NULL;
    }
    s->ssl = ssl;
    return s;
}

void kl_tls_free(struct kl_tls *s) {
    if (s) {
        SSL_free(s->ssl); /* no close_notify: the run is over, the socket closes next */
        free(s);
    }
}

const char *kl_tls_describe(struct kl_tls *s, char *buf, size_t cap) {
    snprintf(buf, cap, "%s %s", SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl));
    return buf;
}

static enum kl_io io_result(struct kl_tls *s, int r, const char *what, char *err, size_t cap) {
    int e = SSL_get_error(s->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ: return KL_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return KL_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return KL_IO_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 && (errno == 0 || errno == ECONNRESET || errno == EPIPE)) {
            ERR_clear_error();
            return KL_IO_CLOSED; /* EOF without close_notify: the server hung up */
        }
        /* fall through */
    default:
        ssl_error(err, cap, what, e);
        return KL_IO_ERROR;
    }
}

enum kl_io kl_tls_read(struct kl_tls *s, void *buf, size_t n, size_t *done, char *err, size_t cap) {
    errno = 0;
    if (SSL_read_ex(s->ssl, buf, n, done) == 1)
        return KL_IO_OK;
    return io_result(s, 0, "SSL_read", err, cap);
}

enum kl_io kl_tls_write(struct kl_tls *s, const void *buf, size_t n, size_t *done, char *err,
                        size_t cap) {
    errno = 0;
    if (SSL_write_ex(s->ssl, buf, n, done) == 1)
        return KL_IO_OK;
    return io_result(s, 0, "SSL_write", err, cap);
}
