/*
 * host_listen.c — eleos-kvs's sockets and process set-up, in memcached 1.6.18's order:
 * core limit (-r), the identity (-u: memcached refuses to run as root without it), daemon
 * (-d), locked memory (-k), then the sockets: the unix socket (-s, which disables TCP and
 * UDP, as in memcached), else one TCP listener per -l entry (every address it resolves to)
 * and the UDP socket (-U). All of it happens before the enclave and the worker threads
 * exist, so fork (-d) never meets a thread. Host side: the enclave receives descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "host_options.h"

static int maxcore_setup(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) == 0) {
        struct rlimit want = {RLIM_INFINITY, RLIM_INFINITY};
        if (setrlimit(RLIMIT_CORE, &want) != 0) {
            want.rlim_cur = want.rlim_max = rl.rlim_max;
            (void)setrlimit(RLIMIT_CORE, &want);
        }
    }
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur == 0) {
        fprintf(stderr, "failed to ensure corefile creation\n");
        return KVS_EX_OSERR;
    }
    return 0;
}

/* memcached's rule: root must name the user to become (-u), and becomes it. */
static int drop_root(const char *user) {
    if (getuid() != 0 && geteuid() != 0)
        return 0;
    if (!user || !*user) {
        fprintf(stderr, "can't run as root without the -u switch\n");
        return KVS_EX_USAGE;
    }
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        fprintf(stderr, "can't find the user %s to switch to\n", user);
        return KVS_EX_NOUSER;
    }
    if (setgroups(0, NULL) < 0) {
        bool fatal = errno != EPERM; /* EPERM: already without privileges to drop */
        fprintf(stderr, "failed to drop supplementary groups: %s\n", strerror(errno));
        if (fatal)
            return KVS_EX_OSERR;
    }
    if (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "failed to assume identity of user %s\n", user);
        return KVS_EX_OSERR;
    }
    return 0;
}

/* fork, setsid, chdir / (unless -r), stdio to /dev/null (unless -v), as memcached does. */
static int daemonize(bool nochdir, bool noclose) {
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() == -1)
        return -1;
    if (!nochdir && chdir("/") != 0) {
        perror("chdir");
        return -1;
    }
    int fd;
    if (!noclose && (fd = open("/dev/null", O_RDWR)) != -1) {
        bool ok = dup2(fd, STDIN_FILENO) >= 0 && dup2(fd, STDOUT_FILENO) >= 0 &&
                  dup2(fd, STDERR_FILENO) >= 0;
        close(fd);
        if (!ok)
            return -1;
    }
    return 0;
}

int kvs_process_setup(const struct options *o) {
    int r;
    if (o->maxcore && (r = maxcore_setup()) != 0)
        return r;
    if ((r = drop_root(o->user)) != 0)
        return r;
    if (o->daemonize) {
        if (signal(SIGHUP, SIG_IGN) == SIG_ERR)
            perror("Failed to ignore SIGHUP");
        if (daemonize(o->maxcore, o->verbose) == -1) {
            fprintf(stderr, "failed to daemon() in order to daemonize\n");
            return 1;
        }
    }
    if (o->lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        fprintf(stderr, "warning: -k invalid, mlockall() failed: %s\n", strerror(errno));
    return 0;
}

static void describe(int fd, char *desc, size_t size) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[64] = "?", serv[16] = "?";
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    bool v6 = ss.ss_family == AF_INET6;
    snprintf(desc, size, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", serv);
}

/* One bound socket of ai. -errno on failure. */
static int bind_one(const struct addrinfo *ai, int type, unsigned backlog) {
    int fd = socket(ai->ai_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, r = 0;
    if (ai->ai_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        /* accepted sockets inherit TCP_NODELAY on Linux: replies leave at once */
        (type == SOCK_STREAM && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one)) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) ||
        (type == SOCK_STREAM && listen(fd, (int)backlog)))
        r = -errno;
    if (r) {
        close(fd);
        return r;
    }
    return fd;
}

/* Every address host resolves to, on port (memcached binds them all). */
static int open_addr(const struct options *o, struct kvs_listen_set *ls, const char *host,
                     unsigned port, uint8_t conf, int type) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = type,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char serv[16];
    snprintf(serv, sizeof serv, "%u", port);
    int r = getaddrinfo(host && *host ? host : NULL, serv, &hints, &res);
    if (r) {
        fprintf(stderr, "getaddrinfo(): %s\n", gai_strerror(r));
        return -EINVAL;
    }
    int opened = 0, err = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (type == SOCK_STREAM && ls->n == KVS_MAX_LISTEN_FDS)
            break;
        if (type == SOCK_DGRAM && ls->udp_fd >= 0)
            break; /* one UDP socket: its thread serves one descriptor */
        int fd = bind_one(ai, type, o->set.backlog);
        if (fd < 0) {
            err = fd;
            continue;
        }
        opened++;
        if (type == SOCK_DGRAM) {
            ls->udp_fd = fd;
            describe(fd, ls->udp_desc, sizeof ls->udp_desc);
            continue;
        }
        ls->fd[ls->n] = fd;
        ls->conf[ls->n] = conf;
        describe(fd, ls->desc[ls->n], sizeof ls->desc[ls->n]);
        ls->n++;
    }
    freeaddrinfo(res);
    return opened ? 0 : err;
}

/* memcached's server_socket_unix: a stale socket file is replaced; the mask is -a. */
static int open_unix(const struct options *o, struct kvs_listen_set *ls) {
    const char *path = o->set.socketpath;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat st;
    if (strlen(path) >= sizeof addr.sun_path)
        return -ENAMETOOLONG;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    mode_t old = umask(~(o->set.access & 0777));
    int r = bind(fd, (struct sockaddr *)&addr, sizeof addr) ? -errno : 0;
    umask(old);
    if (!r && listen(fd, (int)o->set.backlog))
        r = -errno;
    if (r) {
        close(fd);
        return r;
    }
    ls->fd[0] = fd;
    ls->conf[0] = KVS_LISTENER_UNIX;
    snprintf(ls->desc[0], sizeof ls->desc[0], "unix:%.80s", path);
    ls->n = 1;
    return 0;
}

static int open_network(const struct options *o, struct kvs_listen_set *ls) {
    const struct kvs_settings *s = &o->set;
    int r = 0;
    if (s->nlisteners == 0)
        r = open_addr(o, ls, KVS_DEFAULT_ADDR, o->port, KVS_LISTENER_DEFAULT, SOCK_STREAM);
    for (unsigned i = 0; !r && i < s->nlisteners; i++)
        r = open_addr(o, ls, s->listeners[i].addr, s->listeners[i].port, (uint8_t)i,
                      SOCK_STREAM);
    if (r) {
        errno = -r;
        if (s->nlisteners == 0)
            fprintf(stderr, "failed to listen on TCP port %u: %s\n", o->port, strerror(-r));
        else
            fprintf(stderr, "failed to listen on one of interface(s) %s: %s\n", s->inter,
                    strerror(-r));
        return KVS_EX_OSERR;
    }
    if (!o->udp_on)
        return 0;
    const char *host = s->nlisteners ? s->listeners[0].addr : KVS_DEFAULT_ADDR;
    r = open_addr(o, ls, host, s->udpport, 0, SOCK_DGRAM);
    if (r) {
        fprintf(stderr, "failed to listen on UDP port %u: %s\n", s->udpport, strerror(-r));
        return KVS_EX_OSERR;
    }
    return 0;
}

int kvs_listeners_open(const struct options *o, struct kvs_listen_set *ls) {
    memset(ls, 0, sizeof *ls);
    ls->udp_fd = -1;
    if (!o->set.socketpath[0])
        return open_network(o, ls);
    int r = open_unix(o, ls);
    if (r) {
        fprintf(stderr, "failed to listen on UNIX socket: %s: %s\n", o->set.socketpath,
                strerror(-r));
        return KVS_EX_OSERR;
    }
    return 0;
}

void kvs_listeners_close(struct kvs_listen_set *ls) {
    for (unsigned i = 0; i < ls->n; i++)
        close(ls->fd[i]);
    if (ls->udp_fd >= 0)
        close(ls->udp_fd);
    ls->n = 0;
    ls->udp_fd = -1;
}

void kvs_pidfile_save(const char *path) {
    FILE *fp;
    if (access(path, F_OK) == 0 && (fp = fopen(path, "r")) != NULL) {
        char line[64];
        if (fgets(line, sizeof line, fp)) {
            long pid = strtol(line, NULL, 10);
            if (pid > 0 && kill((pid_t)pid, 0) == 0)
                fprintf(stderr, "WARNING: The pid file contained the following (running) "
                                "pid: %ld\n", pid);
        }
        fclose(fp);
    }
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((fp = fopen(tmp, "w")) == NULL) {
        fprintf(stderr, "Could not open the pid file %s for writing: %s\n", tmp,
                strerror(errno));
        return;
    }
    fprintf(fp, "%ld\n", (long)getpid());
    if (fclose(fp) == -1)
        fprintf(stderr, "Could not close the pid file %s: %s\n", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        fprintf(stderr, "Could not rename the pid file from %s to %s: %s\n", tmp, path,
                strerror(errno));
}

void kvs_pidfile_remove(const char *path) {
    if (path && unlink(path) != 0)
        fprintf(stderr, "Could not remove the pid file %s: %s\n", path, strerror(errno));
}
