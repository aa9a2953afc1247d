/*
 * enclave_udp.c — memcached's UDP protocol (-U), on a thread of its own.
 *
 * Every datagram starts with memcached's 8-byte frame header: request id, sequence number,
 * datagram count, reserved (big-endian 16-bit fields). A request must fit one datagram
 * (count 1, else it is dropped, as memcached drops it); its commands run through the same
 * kvs_proto_feed as TCP, with a fresh protocol state per datagram (memcached resets its UDP
 * connection after each request: a command left incomplete is dropped). Replies are framed
 * as memcached frames them: one reply per command — a multi-key get gives one per key hit,
 * END riding with the last key's — each split into datagrams of at most 1400 bytes with the
 * request id, its sequence number and its datagram count.
 *
 * System calls: poll, recvfrom and sendto are plain libc calls, so in sgx/eleos modes each
 * is a trapped exit: UDP is not on the exitless path (the RPC and the I/O queue carry TCP
 * only). The thread stops when the stop pipe becomes readable. Its counters are added to
 * worker 0's (atomic adds), so `stats` includes UDP traffic.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kvs_server.h"

#define UDP_HEADER 8u
#define UDP_MAX_PAYLOAD 1400u
#define UDP_DATA (UDP_MAX_PAYLOAD - UDP_HEADER)
#define UDP_READ_MAX 65536u

struct udp {
    struct kvs_server *srv;
    struct kvs_thread_stats *stats;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    unsigned req_id;
    char *dgram;              /* UDP_MAX_PAYLOAD bytes: one datagram being sent       */
};

/* Sends one reply as memcached's datagram series. */
static void udp_send_reply(struct udp *u, const char *data, size_t len) {
    size_t total = (len + UDP_DATA - 1) / UDP_DATA;
    if (total == 0)
        return;
    if (total > 0xffff)
        total = 0xffff; /* as memcached: the count saturates */
    for (size_t seq = 0, off = 0; off < len && seq < 0xffff; seq++) {
        size_t n = len - off < UDP_DATA ? len - off : UDP_DATA;
        unsigned char *h = (unsigned char *)u->dgram;
        h[0] = (unsigned char)(u->req_id >> 8);
        h[1] = (unsigned char)u->req_id;
        h[2] = (unsigned char)(seq >> 8);
        h[3] = (unsigned char)seq;
        h[4] = (unsigned char)(total >> 8);
        h[5] = (unsigned char)total;
        h[6] = h[7] = 0;
        memcpy(u->dgram + UDP_HEADER, data + off, n);
        ssize_t r = sendto(u->srv->udp_fd, u->dgram, UDP_HEADER + n, 0,
                           (struct sockaddr *)&u->peer, u->peer_len);
        if (r > 0)
            kvs_stat_add(&u->stats->bytes_written, (uint64_t)r);
        off += n;
    }
}

/* Is line (NUL-free, without its end) a get-family command? Then its reply is split per
 * key, as memcached makes one reply per key hit. Returns the last key (or NULL). */
static const char *get_last_key(const char *line, size_t len, size_t *klen) {
    static const char *const cmds[] = {"get ", "gets ", "gat ", "gats "};
    bool get = false;
    for (size_t i = 0; i < 4 && !get; i++)
        get = len >= strlen(cmds[i]) && memcmp(line, cmds[i], strlen(cmds[i])) == 0;
    if (!get)
        return NULL;
    size_t end = len;
    while (end > 0 && line[end - 1] == ' ')
        end--;
    size_t start = end;
    while (start > 0 && line[start - 1] != ' ')
        start--;
    *klen = end - start;
    return line + start;
}

/* A get's output: "VALUE key ...\r\n<data>\r\n" blocks then "END\r\n". One reply per block;
 * END goes with the last block if the last key was a hit, else alone. */
static void udp_send_get(struct udp *u, const char *out, size_t len, const char *lk,
                         size_t lklen) {
    size_t pos = 0;
    while (pos < len && len - pos > 5 && memcmp(out + pos, "VALUE ", 6) == 0) {
        const char *nl = memchr(out + pos, '\n', len - pos);
        const char *key = out + pos + 6;
        const char *sp = nl ? memchr(key, ' ', (size_t)(nl - key)) : NULL;
        unsigned long vlen = 0;
        const char *lsp = nl ? out + pos : NULL; /* the value length: the 4th field */
        for (int f = 0; lsp && f < 3; f++)
            lsp = memchr(lsp + 1, ' ', (size_t)(nl - lsp - 1));
        if (!nl || !sp || !lsp)
            break;
        vlen = strtoul(lsp + 1, NULL, 10);
        size_t blk = (size_t)(nl - (out + pos)) + 1 + vlen + 2;
        if (blk > len - pos)
            break;
        bool last = pos + blk + 5 == len && (size_t)(sp - key) == lklen &&
                    memcmp(key, lk, lklen) == 0;
        udp_send_reply(u, out + pos, last ? blk + 5 : blk);
        pos += last ? blk + 5 : blk;
    }
    if (pos < len)
        udp_send_reply(u, out + pos, len - pos);
}

/* One datagram's commands, one at a time (reqs_per_event 1 makes each feed one command). */
static void udp_request(struct udp *u, char *in, size_t len, struct kvs_buf *out) {
    struct kvs_proto p;
    kvs_proto_init(&p, &u->srv->ctx, u->stats);
    p.reqs_per_event = 1;
    size_t pos = 0;
    while (pos < len && !p.close) {
        out->len = 0;
        const char *nl = memchr(in + pos, '\n', len - pos);
        size_t lklen = 0;
        const char *lk = NULL;
        size_t line_len = nl ? (size_t)(nl - (in + pos)) : 0;
        if (line_len && in[pos + line_len - 1] == '\r')
            line_len--;
        char first[KVS_LINE_SOFT_MAX];
        if (nl && line_len < sizeof first) { /* the feed tokenizes in place: keep a copy */
            memcpy(first, in + pos, line_len);
            lk = get_last_key(first, line_len, &lklen);
        }
        size_t used = kvs_proto_feed(&p, in + pos, len - pos, out);
        kvs_shutdown_check(&p);
        if (p.yielded) /* one command per feed is how replies are cut here, not a yield */
            atomic_fetch_sub_explicit(&u->stats->conn_yields, 1, memory_order_relaxed);
        if (lk && out->len)
            udp_send_get(u, out->data, out->len, lk, lklen);
        else if (out->len)
            udp_send_reply(u, out->data, out->len);
        if (used == 0)
            break;
        pos += used;
    }
    kvs_proto_fini(&p);
}

static int udp_receive(struct udp *u, char *buf, struct kvs_buf *out) {
    u->peer_len = sizeof u->peer;
    ssize_t n = recvfrom(u->srv->udp_fd, buf, UDP_READ_MAX, MSG_DONTWAIT,
                         (struct sockaddr *)&u->peer, &u->peer_len);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
    if ((size_t)n <= UDP_HEADER || u->peer_len > sizeof u->peer)
        return 0;
    kvs_stat_add(&u->stats->bytes_read, (uint64_t)n);
    const unsigned char *h = (const unsigned char *)buf;
    if (h[4] != 0 || h[5] != 1)
        return 0; /* a multi-datagram request: memcached drops it */
    u->req_id = (unsigned)h[0] << 8 | h[1];
    kvs_store_clock_set(u->srv->store, kvs_now_unix());
    udp_request(u, buf + UDP_HEADER, (size_t)n - UDP_HEADER, out);
    return 0;
}

int kvs_udp_loop(struct kvs_server *srv) {
    struct udp u = {.srv = srv, .stats = &srv->workers[0].stats};
    char *buf = kvs_malloc(srv->alloc, UDP_READ_MAX);
    u.dgram = kvs_malloc(srv->alloc, UDP_MAX_PAYLOAD);
    struct kvs_buf out;
    kvs_buf_init(&out, srv->alloc);
    int r = buf && u.dgram ? 0 : -ENOMEM;
    while (!r) {
        struct pollfd fds[2] = {{srv->udp_fd, POLLIN, 0}, {srv->stop_fd, POLLIN, 0}};
        int n = poll(fds, 2, -1);
        if (n < 0 && errno != EINTR) {
            r = -errno;
            break;
        }
        if (n <= 0)
            continue;
        if (fds[1].revents)
            break;
        if (fds[0].revents & (POLLERR | POLLNVAL)) {
            r = -EIO;
            break;
        }
        if (fds[0].revents & POLLIN)
            r = udp_receive(&u, buf, &out);
    }
    kvs_buf_fini(&out);
    kvs_free(srv->alloc, buf);
    kvs_free(srv->alloc, u.dgram);
    return r;
}
