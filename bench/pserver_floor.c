/*
 * pserver_floor: the client-bound ceiling of bench_pserver's latency-bound points. A native
 * server that answers INC requests of the pserver protocol (pserver.h) without touching a
 * table, busy-polling its one connection with non-blocking receives, so the server side costs
 * no wake-up and no exit. What eleos-pserver-load reaches against it is the most any server
 * can reach on this machine with this client (one request in flight, a blocking receive per
 * reply): the bound of every eleos/sgx ratio of that point. Measurement only, not a server:
 * one connection at a time, anything else ends the connection.
 *
 *   pserver_floor PORT     (prints "listening" once it accepts; runs until killed)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pserver.h"

/* Receives exactly n bytes, spinning on EAGAIN; -1 when the client left or broke. */
static int recv_spin(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)buf + got, n - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR))
            return -1;
    }
    return 0;
}

static void serve(int fd) {
    static uint64_t keys[PS_MAX_KEYS];
    for (;;) {
        struct ps_header h;
        if (recv_spin(fd, &h, sizeof h) || h.op != PS_OP_INC || h.count == 0 ||
            h.count > PS_MAX_KEYS || recv_spin(fd, keys, (size_t)h.count * 8))
            return;
        uint64_t ack = h.count;
        if (send(fd, &ack, sizeof ack, MSG_NOSIGNAL) != (ssize_t)sizeof ack)
            return;
    }
}

int main(int argc, char **argv) {
    long port = argc == 2 ? strtol(argv[1], NULL, 10) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: pserver_floor PORT\n");
        return 2;
    }
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 16)) {
        perror("pserver_floor: listen");
        return 1;
    }
    printf("pserver_floor: listening on 127.0.0.1:%ld\n", port);
    fflush(stdout);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("pserver_floor: accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(fd);
        close(fd);
    }
}
