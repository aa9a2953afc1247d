/*
 * echo_server: a TCP echo server whose socket calls never leave the enclave.
 *
 * The host starts a pool of RPC workers with the system-call executor registered
 * (eleos_sys_host_register); inside the enclave, eleos_sys_* post each call to a worker
 * through shared memory instead of exiting, and check every result before using it (Iago
 * checks). The program runs its own client on a host thread: it connects, sends a few
 * messages and checks each echo. Exits 0 if every echo came back and the serving ECALL made
 * its socket calls without exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <eleos/enclave.h>
#include <eleos/rpc.h>
#include <eleos/sys.h>

/* Enclave globals are enclave memory: the host never sees these. */
static struct eleos_rpc_client *client;
static int listen_fd = -1;

struct setup_args {
    void *area; /* the pool's shared area (untrusted), checked by eleos_rpc_client_create */
    size_t size;
};

/* ECALL: attach to the RPC pool and listen on a loopback port; returns the port. */
static long enclave_setup(void *host_args) {
    struct setup_args a;
    if (eleos_copy_in(&a, host_args, sizeof a) != 0)
        return -EFAULT;
    int rc = eleos_rpc_client_create(eleos_enclave_current(), a.area, a.size, &client);
    if (rc)
        return rc;
    eleos_sys_init(client);
    listen_fd = eleos_sys_socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0)
        return listen_fd;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if ((rc = eleos_sys_bind(listen_fd, (struct sockaddr *)&sa, sizeof sa)) != 0 ||
        (rc = eleos_sys_listen(listen_fd, 8)) != 0 ||
        (rc = eleos_sys_getsockname(listen_fd, (struct sockaddr *)&sa, &len)) != 0)
        return rc;
    return ntohs(sa.sin_port);
}

/* ECALL: serve one connection until the peer closes; returns the bytes echoed. */
static long enclave_serve(void *unused) {
    (void)unused;
    int fd = eleos_sys_accept4(listen_fd, NULL, NULL, 0);
    if (fd < 0)
        return fd;
    char buf[512];
    long total = 0;
    for (;;) {
        ssize_t n = eleos_sys_recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            total = n < 0 ? n : total;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = eleos_sys_send(fd, buf + off, (size_t)(n - off), 0);
            if (w < 0) {
                eleos_sys_close(fd);
                return w;
            }
            off += w;
        }
        total += n;
    }
    eleos_sys_close(fd);
    return total;
}

/* ECALL: detach from the pool before the host destroys it. */
static long enclave_teardown(void *unused) {
    (void)unused;
    eleos_sys_close(listen_fd);
    eleos_sys_init(NULL);
    eleos_rpc_client_destroy(client);
    return 0;
}

/* The built-in client: plain host sockets. */
static const char *const messages[] = {"hello", "exitless", "echo from the enclave"};
struct client_run {
    int port;
    int ok;
    long sent;
};

static void *client_main(void *arg) {
    struct client_run *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    c->ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    for (size_t i = 0; c->ok && i < sizeof messages / sizeof messages[0]; i++) {
        size_t len = strlen(messages[i]), got = 0;
        char echo[64];
        c->ok = send(fd, messages[i], len, 0) == (ssize_t)len;
        while (c->ok && got < len) {
            ssize_t n = recv(fd, echo + got, len - got, 0);
            c->ok = n > 0;
            got += n > 0 ? (size_t)n : 0;
        }
        c->ok = c->ok && memcmp(echo, messages[i], len) == 0;
        c->sent += (long)len;
        printf("client: sent \"%s\", echo %s\n", messages[i], c->ok ? "matches" : "WRONG");
    }
    if (fd >= 0)
        close(fd); /* ends the server's loop */
    return NULL;
}

int main(void) {
    struct eleos_enclave *enc;
    struct eleos_rpc_pool *pool;
    int rc = eleos_enclave_create(NULL, &enc);
    if (rc != 0) {
        fprintf(stderr, "echo_server: eleos_enclave_create: %s\n", strerror(-rc));
        return 1;
    }
    struct eleos_rpc_pool_config pc;
    eleos_rpc_pool_config_default(&pc); /* one worker, 64 channels */
    if (eleos_rpc_pool_create(enc, &pc, &pool) != 0 || eleos_sys_host_register(pool) != 0 ||
        eleos_rpc_pool_start(pool) != 0) {
        fprintf(stderr, "echo_server: cannot start the RPC pool\n");
        return 1;
    }
    struct setup_args sa;
    sa.area = eleos_rpc_pool_shared(pool, &sa.size);
    long port = -1, echoed = -1, unused;
    if (eleos_enclave_ecall(enc, enclave_setup, &sa, &port) != 0 || port <= 0) {
        fprintf(stderr, "echo_server: setup failed: %s\n", strerror((int)-port));
        return 1;
    }
    printf("echo_server: listening on 127.0.0.1:%ld inside the enclave\n", port);
    struct client_run c = {.port = (int)port};
    pthread_t th;
    pthread_create(&th, NULL, client_main, &c);
    eleos_enclave_stats_reset(enc);
    rc = eleos_enclave_ecall(enc, enclave_serve, NULL, &echoed);
    struct eleos_enclave_stats st;
    eleos_enclave_stats(enc, &st);
    pthread_join(th, NULL);
    if (eleos_enclave_ecall(enc, enclave_teardown, NULL, &unused) != 0)
        rc = -1;
    eleos_rpc_pool_destroy(pool);
    eleos_enclave_destroy(enc);
    bool ok = rc == 0 && c.ok && echoed == c.sent && st.syscall_exits == 0;
    printf("echo_server: %ld bytes echoed, %llu syscall exits while serving: %s\n", echoed,
           (unsigned long long)st.syscall_exits, ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
