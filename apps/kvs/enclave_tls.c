/*
 * enclave_tls.c — TLS inside the enclave (see enclave_tls.h for the interface).
 *
 * memcached 1.6.18 (tls.c) hands libssl the socket; here libssl never touches a descriptor.
 * Every SSL object reads from and writes to memory BIOs, so the only bytes that leave the
 * enclave are TLS records, and the loops keep their I/O paths (exits, RPC, completion rings)
 * unchanged. The certificate, key and CA files are read by the enclave (open/read are
 * trapped exits at set-up and on refresh_certs) into enclave memory and parsed there from
 * memory BIOs; the buffer holding the key file is wiped once parsed.
 *
 * Memory: app_ossl_mem_install (apps/common/app_ossl.h, called first thing by main) routes
 * OpenSSL's allocator. An allocation made while the thread executes in an enclave comes from
 * that enclave's heap (the SSL_CTX, SSL objects, their record buffers and key schedules, the
 * BIOs); host-mode allocations (the library's tables, loaded by kvs_tls_lib_init before the
 * enclave is entered) come from libc.
 *
 * Randomness: OpenSSL's DRBG seeds from getrandom(2), a trapped exit here, so the host
 * could feed it chosen bytes; on real SGX the seed would come from RDRAND inside the
 * enclave (docs/kvs.md, "TLS").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "eleos/enclave.h"
#include "enclave_tls.h"
#include "kvs_server.h"

/* Largest certificate, key or CA file read into the enclave. */
#define TLS_FILE_MAX (1u << 20)
/* Room made in rbuf for one SSL_read: a whole record's plaintext. */
#define TLS_READ_ROOM (16u << 10)
/* SSL_write's chunk when -o ssl_wbuf_size is tiny: it must make progress. */
#define TLS_WBUF_MIN 512u
#define TLS_ERR_MAX 256u

struct kvs_tls {
    SSL_CTX *ctx;
    const struct kvs_alloc *alloc;
    const struct kvs_settings *set;
    struct kvs_lock lock;             /* SSL_new against refresh_certs (memcached's SSL_LOCK) */
    size_t wbuf_size;                 /* plaintext per SSL_write (-o ssl_wbuf_size)        */
    _Atomic uint64_t handshake_errors, new_sessions;
    _Atomic int64_t refreshed;        /* Unix time the files were last loaded              */
};

struct kvs_tls_conn {
    SSL *ssl;                         /* owns rbio and wbio                                 */
    BIO *rbio, *wbio;                 /* ciphertext in / ciphertext out                     */
    struct kvs_tls *t;
    struct kvs_buf plain;             /* replies before encryption (empty between feeds)   */
    bool dead;                        /* a fatal TLS error or close_notify: input ignored  */
    bool shut;                        /* our close_notify is written                        */
};

int kvs_tls_lib_init(void) {
    uint64_t opts = OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT |
                    OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS;
    if (OPENSSL_init_ssl(opts, NULL) != 1)
        return -1;
    /* A context made and dropped here, in host mode, makes OpenSSL fetch and register the
     * algorithms TLS needs now: the library's shared tables then live on libc's heap, not
     * partly in the enclave where a host-mode fetch could no longer reach them. */
    SSL_CTX *warm = SSL_CTX_new(TLS_server_method());
    if (!warm)
        return -1;
    SSL_CTX_free(warm);
    return 0;
}

/* --- files, read into the enclave ---------------------------------------------------------- */

/* Reads path into enclave memory: *buf (len bytes, NUL-terminated). On failure an
 * ERR_LIB_SYS error is queued, as OpenSSL's own file BIO does, and 0 returned. */
static int file_read(struct kvs_tls *t, const char *path, char **buf, size_t *len) {
    *buf = NULL;
    if (!path[0]) { /* memcached passes NULL on: "(null)", "Bad address" */
        ERR_raise(ERR_LIB_SYS, EFAULT);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ERR_raise(ERR_LIB_SYS, errno);
        return 0;
    }
    char *b = kvs_malloc(t->alloc, TLS_FILE_MAX + 1);
    size_t n = 0;
    ssize_t r = 1;
    while (b && n <= TLS_FILE_MAX && r > 0) {
        r = read(fd, b + n, TLS_FILE_MAX + 1 - n);
        if (r > 0)
            n += (size_t)r;
    }
    int err = !b ? ENOMEM : r < 0 ? errno : n > TLS_FILE_MAX ? EFBIG : 0;
    close(fd);
    if (err) {
        kvs_free(t->alloc, b);
        ERR_raise(ERR_LIB_SYS, err);
        return 0;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 1;
}

static void file_drop(struct kvs_tls *t, char *buf, size_t len) {
    if (buf)
        OPENSSL_cleanse(buf, len); /* key material: no stale copy on the heap */
    kvs_free(t->alloc, buf);
}

static int no_passphrase(char *buf, int size, int rw, void *u) {
    (void)buf, (void)size, (void)rw, (void)u;
    return 0; /* memcached has no passphrase option: an encrypted key does not load */
}

/* The end of a PEM list reads as "no start line": not an error after at least one. */
static int pem_end_ok(void) {
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return 1;
    }
    return e == 0;
}

/* The leaf certificate, then the rest of the chain (SSL_CTX_use_certificate_chain_file). */
static int load_chain(struct kvs_tls *t, const char *path) {
    char *buf;
    size_t len;
    if (!file_read(t, path, &buf, &len))
        return 0;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    X509 *leaf = bio ? PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL) : NULL;
    int ok = leaf && SSL_CTX_use_certificate(t->ctx, leaf) && SSL_CTX_clear_chain_certs(t->ctx);
    X509_free(leaf);
    X509 *ca;
    while (ok && (ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        ok = (int)SSL_CTX_add0_chain_cert(t->ctx, ca);
        if (!ok)
            X509_free(ca);
    }
    ok = ok && pem_end_ok();
    BIO_free(bio);
    file_drop(t, buf, len);
    return ok;
}

static int load_key(struct kvs_tls *t, const char *path, int format) {
    char *buf;
    size_t len;
    if (!file_read(t, path, &buf, &len))
        return 0;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    EVP_PKEY *key = NULL;
    if (bio && format == SSL_FILETYPE_PEM)
        key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    else if (bio && format == SSL_FILETYPE_ASN1)
        key = d2i_PrivateKey_bio(bio, NULL);
    else if (bio)
        ERR_raise(ERR_LIB_SSL, SSL_R_BAD_SSL_FILETYPE);
    int ok = key && SSL_CTX_use_PrivateKey(t->ctx, key);
    EVP_PKEY_free(key);
    BIO_free(bio);
    file_drop(t, buf, len);
    return ok;
}

/* The CA file: trusted for client certificates, and named in the CertificateRequest. */
static int load_ca(struct kvs_tls *t, const char *path) {
    char *buf;
    size_t len;
    if (!file_read(t, path, &buf, &len))
        return 0;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    X509_STORE *store = SSL_CTX_get_cert_store(t->ctx);
    int ok = bio && names, count = 0;
    X509 *x;
    while (ok && (x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(x));
        ok = X509_STORE_add_cert(store, x) && name && sk_X509_NAME_push(names, name) > 0;
        if (!ok)
            X509_NAME_free(name);
        X509_free(x);
        count++;
    }
    if (ok && !count) { /* what X509_load_cert_crl_file says of a file without any */
        ERR_clear_error();
        ERR_raise(ERR_LIB_X509, X509_R_NO_CERTIFICATE_OR_CRL_FOUND);
        ok = 0;
    }
    ok = ok && pem_end_ok();
    if (ok)
        SSL_CTX_set_client_CA_list(t->ctx, names); /* takes names */
    else
        sk_X509_NAME_pop_free(names, X509_NAME_free);
    BIO_free(bio);
    file_drop(t, buf, len);
    return ok;
}

static const char *shown(const char *path) {
    return path[0] ? path : "(null)";
}

/* memcached's load_server_certificates: the same steps, checks and messages. 0, or -1
 * with the message (ending "\r\n") in msg. Caller holds t->lock. */
static int load_certs(struct kvs_tls *t, struct kvs_buf *msg) {
    const struct kvs_settings *s = t->set;
    char err[TLS_ERR_MAX] = "";
    int r = 0;
    ERR_clear_error();
    if (!load_chain(t, s->ssl_chain_cert)) {
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        r = kvs_buf_printf(msg, "Error loading the certificate chain: %s : %s\r\n",
                           shown(s->ssl_chain_cert), err);
    } else if (!load_key(t, s->ssl_key, s->ssl_keyformat)) {
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        r = kvs_buf_printf(msg, "Error loading the key: %s : %s\r\n", shown(s->ssl_key), err);
    } else if (!SSL_CTX_check_private_key(t->ctx)) {
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        r = kvs_buf_printf(msg, "Error validating the certificate: %s\r\n", err);
    } else if (s->ssl_ca_cert[0] && !load_ca(t, s->ssl_ca_cert)) {
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        r = kvs_buf_printf(msg, "Error loading the CA certificate: %s : %s\r\n",
                           s->ssl_ca_cert, err);
    } else {
        atomic_store_explicit(&t->refreshed, kvs_now_unix(), memory_order_relaxed);
        return 0;
    }
    ERR_clear_error();
    (void)r; /* out of memory for the message: the caller still sees the failure */
    return -1;
}

/* --- the context ---------------------------------------------------------------------------- */

static int new_session(SSL *ssl, SSL_SESSION *sess) {
    (void)sess;
    struct kvs_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    atomic_fetch_add_explicit(&t->new_sessions, 1, memory_order_relaxed);
    return 0; /* the session stays OpenSSL's */
}

static int min_version(const char *name) {
    static const struct { const char *name; int v; } tab[] = {
        {"tlsv1.0", TLS1_VERSION}, {"tlsv1.1", TLS1_1_VERSION},
        {"tlsv1.2", TLS1_2_VERSION}, {"tlsv1.3", TLS1_3_VERSION}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(name, tab[i].name) == 0)
            return tab[i].v;
    return TLS1_2_VERSION;
}

static int verify_flags(int mode) {
    switch (mode) {
    case 1: return SSL_VERIFY_PEER;
    case 2: return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    case 3: return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE;
    default: return SSL_VERIFY_NONE;
    }
}

/* memcached's ssl_init after the certificates: verification, ciphers, session cache, no
 * renegotiation, buffers released while idle. 0 or -1 (message printed). */
static int ctx_options(struct kvs_tls *t) {
    const struct kvs_settings *s = t->set;
    SSL_CTX *ctx = t->ctx;
    SSL_CTX_set_verify(ctx, verify_flags(s->ssl_verify_mode), NULL);
    if (s->ssl_ciphers[0] && !SSL_CTX_set_cipher_list(ctx, s->ssl_ciphers)) {
        fprintf(stderr, "Error setting the provided cipher(s): %s\n", s->ssl_ciphers);
        return -1;
    }
    if (s->ssl_session_cache) {
        static const unsigned char sid_ctx[] = "eleos-kvs";
        SSL_CTX_sess_set_new_cb(ctx, new_session);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (s->ssl_kernel_tls) {
        /* kTLS would hand the session keys to the host kernel: the one thing TLS in the
         * enclave exists to avoid. */
        fprintf(stderr, "Kernel TLS offload is not available\n");
        return -1;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

int kvs_tls_create(const struct kvs_settings *s, const struct kvs_alloc *a,
                   _Atomic uint32_t *wake, struct kvs_tls **out) {
    *out = NULL;
    struct kvs_tls *t = kvs_malloc(a, sizeof *t);
    if (!t)
        return -ENOMEM;
    memset(t, 0, sizeof *t);
    t->alloc = a;
    t->set = s;
    kvs_lock_init(&t->lock, wake);
    t->wbuf_size = s->ssl_wbuf_size > TLS_WBUF_MIN ? s->ssl_wbuf_size : TLS_WBUF_MIN;
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (!t->ctx) {
        kvs_free(a, t);
        return -ENOMEM;
    }
    SSL_CTX_set_app_data(t->ctx, t);
    SSL_CTX_set_min_proto_version(t->ctx, min_version(s->ssl_min_version));
    struct kvs_buf msg;
    kvs_buf_init(&msg, a);
    int r = load_certs(t, &msg);
    if (r && msg.len)
        fprintf(stderr, "%.*s", (int)msg.len - 2, msg.data); /* without "\r\n" */
    if (r)
        fprintf(stderr, "\n");
    kvs_buf_fini(&msg);
    if (!r)
        r = ctx_options(t);
    if (r) {
        kvs_tls_destroy(t);
        return -EPROTO;
    }
    *out = t;
    return 0;
}

void kvs_tls_destroy(struct kvs_tls *t) {
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    ERR_clear_error();
    kvs_free(t->alloc, t);
}

int kvs_tls_refresh(struct kvs_tls *t, struct kvs_buf *msg) {
    kvs_lock_acquire(&t->lock);
    int r = load_certs(t, msg);
    kvs_lock_release(&t->lock);
    return r;
}

void kvs_tls_info(struct kvs_tls *t, struct kvs_server_info *si) {
    si->ssl_handshake_errors = atomic_load_explicit(&t->handshake_errors, memory_order_relaxed);
    si->ssl_new_sessions = atomic_load_explicit(&t->new_sessions, memory_order_relaxed);
    si->ssl_cert_refreshed = atomic_load_explicit(&t->refreshed, memory_order_relaxed);
}

/* --- connections ------------------------------------------------------------------------------- */

bool kvs_listener_tls(const struct kvs_server *srv, unsigned listener) {
    const struct kvs_settings *s = kvs_ctx_settings(&srv->ctx);
    if (!s->ssl_enabled || !srv->tls)
        return false;
    return !(listener < s->nlisteners && s->listeners[listener].notls);
}

bool kvs_tls_conn_open(struct kvs_server *srv, struct kvs_conn *c, unsigned listener) {
    c->tls = NULL;
    if (!kvs_listener_tls(srv, listener))
        return true;
    struct kvs_tls *t = srv->tls;
    struct kvs_tls_conn *tc = kvs_malloc(srv->alloc, sizeof *tc);
    if (!tc)
        return false;
    memset(tc, 0, sizeof *tc);
    tc->t = t;
    kvs_buf_init(&tc->plain, srv->alloc);
    kvs_lock_acquire(&t->lock);
    tc->ssl = SSL_new(t->ctx);
    /* The SSL copies the certificate and key; the CA names it would read from the context
     * during its handshake, which refresh_certs may replace meanwhile: it gets its own. */
    STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(t->ctx);
    if (tc->ssl && names && sk_X509_NAME_num(names) > 0) {
        STACK_OF(X509_NAME) *copy = SSL_dup_CA_list(names);
        if (copy) {
            SSL_set_client_CA_list(tc->ssl, copy);
        } else {
            SSL_free(tc->ssl);
            tc->ssl = NULL;
        }
    }
    kvs_lock_release(&t->lock);
    tc->rbio = BIO_new(BIO_s_mem());
    tc->wbio = BIO_new(BIO_s_mem());
    if (!tc->ssl || !tc->rbio || !tc->wbio) {
        BIO_free(tc->rbio);
        BIO_free(tc->wbio);
        SSL_free(tc->ssl);
        kvs_free(srv->alloc, tc);
        ERR_clear_error();
        return false;
    }
    BIO_set_mem_eof_return(tc->rbio, -1); /* no input yet is "retry", not EOF */
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
    SSL_set_accept_state(tc->ssl);
    c->tls = tc;
    return true;
}

void kvs_tls_conn_close(struct kvs_conn *c) {
    struct kvs_tls_conn *tc = c->tls;
    if (!tc)
        return;
    const struct kvs_alloc *a = tc->plain.alloc;
    SSL_free(tc->ssl); /* and its BIOs */
    kvs_buf_fini(&tc->plain);
    kvs_free(a, tc);
    c->tls = NULL;
    ERR_clear_error();
}

/* Moves the records libssl wrote into out. 0 or -1 (out of memory). */
static int drain(struct kvs_tls_conn *tc, struct kvs_buf *out) {
    size_t n;
    while ((n = BIO_ctrl_pending(tc->wbio)) > 0) {
        if (n > INT32_MAX || kvs_buf_reserve(out, n))
            return -1;
        int r = BIO_read(tc->wbio, out->data + out->len, (int)n);
        if (r <= 0)
            return -1;
        out->len += (size_t)r;
    }
    return 0;
}

/* Our close_notify, once. */
static void tls_shutdown(struct kvs_tls_conn *tc) {
    if (!tc->shut && SSL_is_init_finished(tc->ssl))
        (void)SSL_shutdown(tc->ssl);
    tc->shut = true;
}

/* A fatal TLS error: memcached closes the connection (counting a failed handshake). The
 * alert libssl wrote still goes out, then the connection closes. */
static void tls_failed(struct kvs_conn *c, int err) {
    struct kvs_tls_conn *tc = c->tls;
    if (!SSL_is_init_finished(tc->ssl))
        atomic_fetch_add_explicit(&tc->t->handshake_errors, 1, memory_order_relaxed);
    if (atomic_load_explicit(&c->proto.ctx->verbosity, memory_order_relaxed) > 0) {
        char msg[TLS_ERR_MAX] = "";
        ERR_error_string_n(ERR_peek_error(), msg, sizeof msg);
        fprintf(stderr, "SSL connection failed with error code : %d : %s\n", err, msg);
    }
    tc->dead = true;
    c->proto.close = true;
}

bool kvs_tls_input(struct kvs_conn *c, const char *in, size_t len, struct kvs_buf *out) {
    struct kvs_tls_conn *tc = c->tls;
    if (tc->dead)
        return true; /* closing: what else comes is not read */
    if (len > INT32_MAX || BIO_write(tc->rbio, in, (int)len) != (int)len)
        return false;
    for (;;) {
        if (kvs_buf_reserve(&c->rbuf, TLS_READ_ROOM))
            return false;
        int n = SSL_read(tc->ssl, c->rbuf.data + c->rbuf.len, TLS_READ_ROOM);
        if (n > 0) {
            c->rbuf.len += (size_t)n;
            continue;
        }
        int err = SSL_get_error(tc->ssl, n);
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err == SSL_ERROR_ZERO_RETURN) { /* the client's close_notify: answer, close */
            tls_shutdown(tc);
            tc->dead = true;
            c->proto.close = true;
        } else {
            tls_failed(c, err);
        }
        break;
    }
    ERR_clear_error();
    kvs_buf_shrink(&c->rbuf, 0); /* only a handshake came: keep no buffer */
    return drain(tc, out) == 0;
}

/* Encrypts the connection's plaintext replies into out, in -o ssl_wbuf_size pieces. */
static int encrypt(struct kvs_conn *c, struct kvs_buf *out) {
    struct kvs_tls_conn *tc = c->tls;
    struct kvs_buf *p = &tc->plain;
    size_t pos = 0;
    while (pos < p->len) {
        size_t n = p->len - pos < tc->t->wbuf_size ? p->len - pos : tc->t->wbuf_size;
        int w = SSL_write(tc->ssl, p->data + pos, (int)n);
        if (w <= 0 || drain(tc, out))
            return -1;
        pos += (size_t)w;
    }
    if (c->proto.close)
        tls_shutdown(tc);
    return drain(tc, out);
}

size_t kvs_conn_feed(struct kvs_conn *c, char *in, size_t len, struct kvs_buf *out) {
    struct kvs_tls_conn *tc = c->tls;
    if (!tc)
        return kvs_proto_feed(&c->proto, in, len, out);
    /* The limit is on what waits to be sent: ciphertext already in out counts. */
    size_t limit = c->proto.out_limit;
    if (limit)
        c->proto.out_limit = limit > out->len ? limit - out->len : 1;
    size_t used = kvs_proto_feed(&c->proto, in, len, &tc->plain);
    c->proto.out_limit = limit;
    if (!c->proto.abort && !tc->dead && encrypt(c, out))
        c->proto.close = c->proto.abort = true;
    tc->plain.len = 0;
    kvs_buf_shrink(&tc->plain, 0);
    ERR_clear_error();
    return used;
}
