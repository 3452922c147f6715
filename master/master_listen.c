/*
 * master_listen.c - the listening endpoints master hands to its children.
 *
 * inet services get one TCP socket per address (the host in master.cf, or
 * every inet_interfaces address for a bare port), SO_REUSEADDR so a restart
 * does not wait for TIME_WAIT, IPV6_V6ONLY so ::  and 0.0.0.0 can coexist.
 * unix and pass services get a UNIX socket under queue_directory/private
 * (0600) or /public (0666), owned by mail_owner when master is root; fifo
 * services a FIFO there, opened read-write so its readers never see EOF.
 * Only master creates these, so a stale socket file at the path is removed
 * first.  Descriptors are close-on-exec here; master_spawn moves them to
 * MASTER_LISTEN_FD.. in the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "master.h"
#include "mem.h"
#include "params.h"
#include "privs.h"

#define MASTER_BACKLOG 100

static bool family_wanted(int family)
{
    char **protos = conf_list_split(var_inet_protocols);
    bool v4 = false, v6 = false;

    for (char **p = protos; *p; p++) {
        if (strcmp(*p, "all") == 0)
            v4 = v6 = true;
        else if (strcmp(*p, "ipv4") == 0)
            v4 = true;
        else if (strcmp(*p, "ipv6") == 0)
            v6 = true;
    }
    if (protos[0] == NULL)
        v4 = v6 = true;
    conf_list_free(&protos);
    return family == AF_INET ? v4 : family == AF_INET6 ? v6 : false;
}

static int inet_bind_one(struct master_service *svc, const struct addrinfo *ai,
                         struct strbuf *why)
{
    int fd, on = 1;
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        strcpy(host, "?"), strcpy(serv, "?");
    if (svc->nlisten >= MASTER_LISTEN_MAX) {
        strbuf_printf(why, "%s: too many addresses (limit %d)", svc->label, MASTER_LISTEN_MAX);
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        strbuf_printf(why, "%s: socket: %m", svc->label);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, MASTER_BACKLOG) < 0) {
        strbuf_printf(why, "%s: bind %s port %s: %m", svc->label, host, serv);
        close(fd);
        return -1;
    }
    log_debug("%s: listening on %s port %s", svc->label, host, serv);
    svc->listen_fd[svc->nlisten++] = fd;
    return 0;
}

/* Bind every address host (NULL: wildcard) resolves to.  With `optional`
 * an address that cannot be bound (no IPv6 on this host) is skipped. */
static int inet_bind_host(struct master_service *svc, const char *host, bool optional,
                          struct strbuf *why)
{
    struct addrinfo hints = { 0 }, *res, *ai;
    int err, bound = 0;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | (host ? 0 : AI_ADDRCONFIG);
    if ((err = getaddrinfo(host, svc->ent->port, &hints, &res)) != 0) {
        strbuf_printf(why, "%s: %s port %s: %s", svc->label, host ? host : "*",
                      svc->ent->port, gai_strerror(err));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if (!family_wanted(ai->ai_family))
            continue;
        if (inet_bind_one(svc, ai, why) < 0) {
            if (optional && errno == EADDRNOTAVAIL) {
                log_warn("%s", strbuf_str(why));
                continue;
            }
            freeaddrinfo(res);
            return -1;
        }
        bound++;
    }
    freeaddrinfo(res);
    if (bound == 0 && !optional) {
        strbuf_printf(why, "%s: no address of %s matches inet_protocols", svc->label,
                      host ? host : "*");
        return -1;
    }
    return 0;
}

static int inet_open(struct master_service *svc, struct strbuf *why)
{
    char **ifaces;
    int rc = 0;

    if (svc->ent->host != NULL)
        return inet_bind_host(svc, svc->ent->host, false, why);
    ifaces = conf_list_split(var_inet_interfaces);
    for (char **p = ifaces; *p && rc == 0; p++) {
        if (strcmp(*p, "all") == 0)
            rc = inet_bind_host(svc, NULL, false, why);
        else if (strcmp(*p, "loopback-only") == 0) {
            if (family_wanted(AF_INET))
                rc = inet_bind_host(svc, "127.0.0.1", true, why);
            if (rc == 0 && family_wanted(AF_INET6))
                rc = inet_bind_host(svc, "::1", true, why);
        } else {
            /* "[::1]" is accepted as Postfix does. */
            size_t len = strlen(*p);
            if (len > 2 && (*p)[0] == '[' && (*p)[len - 1] == ']') {
                char *bare = xstrndup(*p + 1, len - 2);
                rc = inet_bind_host(svc, bare, false, why);
                free(bare);
            } else {
                rc = inet_bind_host(svc, *p, false, why);
            }
        }
    }
    if (ifaces[0] == NULL)
        rc = inet_bind_host(svc, NULL, false, why);
    conf_list_free(&ifaces);
    if (rc == 0 && svc->nlisten == 0) {
        strbuf_printf(why, "%s: no address to listen on (inet_interfaces = %s)", svc->label,
                      var_inet_interfaces);
        rc = -1;
    }
    return rc;
}

/* Give path to mail_owner when master runs as root (the daemons that
 * connect to private sockets run as mail_owner). */
static void chown_owner(const char *path)
{
    struct strbuf *why;
    uid_t uid;
    gid_t gid;

    if (!master_root)
        return;
    why = strbuf_new(64);
    if (privs_user_lookup(var_mail_owner, &uid, &gid, why) < 0)
        log_fatal("mail_owner: %s", strbuf_str(why));
    if (chown(path, uid, gid) < 0)
        log_fatal("chown %s: %m", path);
    strbuf_free(&why);
}

static int unix_open(struct master_service *svc, struct strbuf *why)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    mode_t mode = svc->ent->is_private ? 0600 : 0666;
    mode_t old;
    int fd;

    if (strlen(svc->sock_path) >= sizeof(sun.sun_path)) {
        strbuf_printf(why, "%s: socket path too long: %s", svc->label, svc->sock_path);
        return -1;
    }
    strcpy(sun.sun_path, svc->sock_path);
    if (unlink(svc->sock_path) < 0 && errno != ENOENT) {
        strbuf_printf(why, "%s: remove %s: %m", svc->label, svc->sock_path);
        return -1;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        strbuf_printf(why, "%s: socket: %m", svc->label);
        return -1;
    }
    /* Bind with a tight umask so the socket never exists with wider
     * permissions, then set the exact mode. */
    old = umask(0177);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        umask(old);
        strbuf_printf(why, "%s: bind %s: %m", svc->label, svc->sock_path);
        close(fd);
        return -1;
    }
    umask(old);
    if (chmod(svc->sock_path, mode) < 0 || listen(fd, MASTER_BACKLOG) < 0) {
        strbuf_printf(why, "%s: %s: %m", svc->label, svc->sock_path);
        close(fd);
        return -1;
    }
    chown_owner(svc->sock_path);
    svc->listen_fd[svc->nlisten++] = fd;
    return 0;
}

static int fifo_open(struct master_service *svc, struct strbuf *why)
{
    mode_t mode = svc->ent->is_private ? 0600 : 0622;
    mode_t old;
    int fd;

    if (unlink(svc->sock_path) < 0 && errno != ENOENT) {
        strbuf_printf(why, "%s: remove %s: %m", svc->label, svc->sock_path);
        return -1;
    }
    old = umask(0177);
    if (mkfifo(svc->sock_path, 0600) < 0) {
        umask(old);
        strbuf_printf(why, "%s: mkfifo %s: %m", svc->label, svc->sock_path);
        return -1;
    }
    umask(old);
    fd = open(svc->sock_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || chmod(svc->sock_path, mode) < 0) {
        strbuf_printf(why, "%s: %s: %m", svc->label, svc->sock_path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    chown_owner(svc->sock_path);
    svc->listen_fd[svc->nlisten++] = fd;
    return 0;
}

int master_listen_open(struct master_service *svc, struct strbuf *why)
{
    int rc;

    svc->nlisten = 0;
    switch (svc->ent->type) {
    case MASTERCF_INET:
        rc = inet_open(svc, why);
        break;
    case MASTERCF_UNIX:
    case MASTERCF_PASS:
        rc = unix_open(svc, why);
        break;
    case MASTERCF_FIFO:
        rc = fifo_open(svc, why);
        break;
    default:
        rc = -1;
    }
    if (rc < 0)
        master_listen_close(svc);
    return rc;
}

void master_listen_close(struct master_service *svc)
{
    for (int i = 0; i < svc->nlisten; i++) {
        event_disable(svc->listen_fd[i]);
        close(svc->listen_fd[i]);
    }
    if (svc->nlisten > 0 && svc->sock_path != NULL)
        unlink(svc->sock_path);
    svc->nlisten = 0;
    svc->watching = MASTER_WATCH_NONE;
}

/* queue_directory/private, /public and the pid directory, when missing. */
void master_listen_dirs(void)
{
    static const struct { const char *name; mode_t mode; } dirs[] = {
        { "private", 0700 }, { "public", 0710 },
    };
    char *path;

    if (mkdir(var_queue_directory, 0755) < 0 && errno != EEXIST)
        log_fatal("mkdir %s: %m", var_queue_directory);
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        path = xasprintf("%s/%s", var_queue_directory, dirs[i].name);
        if (mkdir(path, master_root ? dirs[i].mode : 0755) == 0) {
            if (master_root) {
                struct group *gr = getgrnam(var_setgid_group);
                chown_owner(path);
                if (strcmp(dirs[i].name, "public") == 0 && gr != NULL &&
                    chown(path, (uid_t)-1, gr->gr_gid) < 0)
                    log_warn("chown %s: %m", path);
            }
        } else if (errno != EEXIST) {
            log_fatal("mkdir %s: %m", path);
        }
        free(path);
    }
}
