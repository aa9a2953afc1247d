/*
 * enclave_tls.h — TLS terminated inside the enclave (memcached's -Z), on OpenSSL's libssl.
 *
 * Where TLS ends: the SSL_CTX (certificate, private key, CA list) and every connection's SSL
 * object (session keys, record buffers) live in enclave memory. libssl never sees a socket:
 * each SSL object sits on two memory BIOs. The loops hand it the ciphertext they received
 * (kvs_tls_input: plaintext lands in the connection's rbuf) and take the ciphertext of the
 * replies (kvs_conn_feed: the protocol's replies are encrypted before they reach wbuf), so
 * everything the host sees — bounce buffers, RPC and I/O rings, sockets — is ciphertext.
 *
 * The loops' use: on accept kvs_tls_conn_open, on input kvs_tls_input, kvs_conn_feed in
 * place of kvs_proto_feed, on release kvs_tls_conn_close. A connection without TLS
 * (c->tls == NULL) passes straight through.
 */
#ifndef ELEOS_KVS_ENCLAVE_TLS_H
#define ELEOS_KVS_ENCLAVE_TLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvs_common.h"
#include "kvs_proto.h"
#include "kvs_settings.h"

struct kvs_server;
struct kvs_conn;
struct kvs_tls;

/* Host side, with -Z: loads libssl's tables (no configuration file, no atexit clean-up:
 * memory OpenSSL allocated inside the enclave dies with it). 0 or -1. */
int kvs_tls_lib_init(void);

/* Set-up (enclave): builds the SSL_CTX from the files named in s, read into enclave memory
 * and parsed there. wake: an untrusted wake word for the context's lock (NULL: its own).
 * 0, or -EPROTO after printing memcached's start-up message, or -ENOMEM. */
int kvs_tls_create(const struct kvs_settings *s, const struct kvs_alloc *a,
                   _Atomic uint32_t *wake, struct kvs_tls **out);
void kvs_tls_destroy(struct kvs_tls *t);
/* memcached's refresh_certs: reloads the files. 0, or -1 with memcached's error line
 * (ending in "\r\n") appended to msg. */
int kvs_tls_refresh(struct kvs_tls *t, struct kvs_buf *msg);
/* memcached's ssl_* stats. */
void kvs_tls_info(struct kvs_tls *t, struct kvs_server_info *si);

/* Does a connection accepted on listener (an index into settings.listeners; 0 with one
 * listener) speak TLS? With -Z, every listener but a "notls:" one does. */
bool kvs_listener_tls(const struct kvs_server *srv, unsigned listener);

/* On accept: gives c its SSL object if its listener speaks TLS. false: out of memory. */
bool kvs_tls_conn_open(struct kvs_server *srv, struct kvs_conn *c, unsigned listener);
/* Received ciphertext: decrypted into c->rbuf; handshake records and alerts are appended to
 * out (send them before anything later). On a TLS error or the peer's close_notify the
 * connection is marked to close once out is sent (c->proto.close). false: close now. */
bool kvs_tls_input(struct kvs_conn *c, const char *in, size_t len, struct kvs_buf *out);
/* kvs_proto_feed, with the replies encrypted into out on a TLS connection (after quit, a
 * close_notify follows them). */
size_t kvs_conn_feed(struct kvs_conn *c, char *in, size_t len, struct kvs_buf *out);
/* On release: frees the SSL object (no-op without TLS). */
void kvs_tls_conn_close(struct kvs_conn *c);

#endif
