/*
 * server.c - the server skeletons (single, multi, trigger) of server.h.
 *
 * Owns everything a daemon's main must not do by hand: master's command
 * line (master_proto.h), main.cf with -o overrides, logging, the jail
 * (pre_jail, lib/privs, post_jail), the accept loop on lib/events, busy and
 * idle reports on MASTER_STATUS_FD, the max_use / max_idle / master-gone
 * exits, and the -S stand-alone mode for tests.
 *
 * Several processes of one service share the listening descriptors, so
 * they are non-blocking and a lost accept race (EAGAIN) is normal.  The
 * status socket is only written; it becomes readable only when master
 * closes it, and then the process exits.  Trigger clients are local but
 * not trusted: a message is at most SERVER_TRIGGER_MAX bytes, a client
 * gets SERVER_TRIGGER_TIMEOUT to send it, and at most
 * SERVER_TRIGGER_PENDING clients wait at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "master_proto.h"
#include "mem.h"
#include "params.h"
#include "privs.h"
#include "server.h"
#include "strbuf.h"

#define SERVER_TRIGGER_MAX 1024
#define SERVER_TRIGGER_TIMEOUT_MS 10000
#define SERVER_TRIGGER_PENDING 64
#define SERVER_OVERRIDES_MAX 256

static const struct server_desc *srv_desc;
static const char *srv_service;
static const char *srv_type = "unix";
static int srv_nlisten = 1;
static bool srv_standalone;
static bool srv_accepting;
static long srv_use_count;
static long srv_clients;            /* SERVER_MULTI: open clients */
static int srv_trigger_pending;
static struct timer *srv_idle_timer;

struct trigger_client {
    int fd;
    struct timer *timer;
};

const char *server_service_name(void)
{
    return srv_service;
}

static void server_report(int avail)
{
    struct master_status st = { .pid = getpid(), .avail = avail };

    if (srv_standalone)
        return;
    if (send(MASTER_STATUS_FD, &st, sizeof(st), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
            log_debug("master is gone: exiting");
            exit(0);
        }
        log_warn("status report to master: %m");
    }
}

static void server_master_gone(int fd, int events, void *ctx)
{
    char c;

    /* Master never writes here: readable means EOF or an error. */
    if (recv(fd, &c, 1, MSG_DONTWAIT) > 0)
        log_warn("unexpected data from master on the status socket");
    log_debug("master is gone: exiting");
    exit(0);
}

static void server_idle_exit(void *ctx)
{
    srv_idle_timer = NULL;
    log_debug("idle timeout: exiting");
    exit(0);
}

/* Re-arm the max_idle timer (nothing to do under keep_running). */
static void server_idle_arm(void)
{
    timer_cancel(&srv_idle_timer);
    if (!srv_desc->keep_running && !srv_standalone && var_max_idle > 0)
        srv_idle_timer = timer_add(var_max_idle * 1000L, server_idle_exit, NULL);
}

static void server_stop_accepting(void)
{
    for (int i = 0; i < srv_nlisten; i++)
        event_disable(MASTER_LISTEN_FD + i);
    srv_accepting = false;
}

/* One more client served; true when max_use says this process is done. */
static bool server_used_up(void)
{
    srv_use_count++;
    return !srv_desc->keep_running && !srv_standalone && srv_use_count >= var_max_use;
}

/* Receive the descriptor a "pass" client hands over, or -1. */
static int server_recv_fd(int conn)
{
    char byte;
    struct iovec iov = { &byte, 1 };
    union {
        struct cmsghdr hdr;
        char buf[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct msghdr msg = { 0 };
    struct cmsghdr *cm;
    int fd = -1;

    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof(cbuf.buf);
    if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) <= 0)
        return -1;
    for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int))) {
            memcpy(&fd, CMSG_DATA(cm), sizeof(int));
            break;
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Accept one connection on a shared, non-blocking listener: -1 when
 * another process won the race or the client went away already. */
static int server_accept(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED && errno != EPROTO)
            log_warn("accept: %m");
        return -1;
    }
    if (strcmp(srv_type, "pass") == 0) {
        int passed = server_recv_fd(fd);
        close(fd);
        if (passed < 0)
            log_warn("pass service: no descriptor received");
        return passed;
    }
    return fd;
}

static void server_single_accept(int lfd, int events, void *ctx)
{
    struct stream *client;
    int fd;

    if ((fd = server_accept(lfd)) < 0)
        return;
    timer_cancel(&srv_idle_timer);
    server_report(MASTER_STAT_BUSY);
    client = stream_fdopen(fd);
    /* The watchdog: a session stuck far past every protocol deadline is
     * a bug; SIGALRM ends the process and master logs it. */
    alarm((unsigned)var_daemon_timeout);
    srv_desc->service(client);
    alarm(0);
    stream_close(&client);
    if (server_used_up()) {
        log_debug("max_use %ld reached: exiting", var_max_use);
        exit(0);
    }
    server_report(MASTER_STAT_IDLE);
    server_idle_arm();
}

static void server_multi_accept(int lfd, int events, void *ctx)
{
    int fd;

    if ((fd = server_accept(lfd)) < 0)
        return;
    timer_cancel(&srv_idle_timer);
    server_report(MASTER_STAT_BUSY);
    srv_clients++;
    srv_desc->accept_fn(fd);
    server_report(MASTER_STAT_IDLE);
}

void server_disconnect(void)
{
    if (srv_clients > 0)
        srv_clients--;
    if (server_used_up() && srv_accepting) {
        log_debug("max_use %ld reached: no more clients", var_max_use);
        server_stop_accepting();
    }
    if (srv_clients == 0) {
        if (!srv_accepting && !srv_standalone)
            exit(0);
        server_idle_arm();
    }
}

static void server_wake(const char *buf, size_t len)
{
    timer_cancel(&srv_idle_timer);
    server_report(MASTER_STAT_BUSY);
    srv_desc->wake_fn(buf, len);
    if (server_used_up()) {
        log_debug("max_use %ld reached: exiting", var_max_use);
        exit(0);
    }
    server_report(MASTER_STAT_IDLE);
    server_idle_arm();
}

static void trigger_client_done(struct trigger_client *tc)
{
    event_disable(tc->fd);
    close(tc->fd);
    timer_cancel(&tc->timer);
    free(tc);
    srv_trigger_pending--;
}

static void trigger_client_timeout(void *ctx)
{
    struct trigger_client *tc = ctx;

    tc->timer = NULL;
    log_warn("trigger client sent nothing in %d ms: dropped", SERVER_TRIGGER_TIMEOUT_MS);
    trigger_client_done(tc);
}

static void trigger_client_read(int fd, int events, void *ctx)
{
    struct trigger_client *tc = ctx;
    char buf[SERVER_TRIGGER_MAX];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    trigger_client_done(tc);
    if (n < 0) {
        log_warn("trigger read: %m");
        return;
    }
    server_wake(buf, (size_t)n);
}

static void server_trigger_accept(int lfd, int events, void *ctx)
{
    struct trigger_client *tc;
    int fd;

    if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED)
            log_warn("accept: %m");
        return;
    }
    if (srv_trigger_pending >= SERVER_TRIGGER_PENDING) {
        log_warn("too many pending trigger clients: dropped one");
        close(fd);
        return;
    }
    tc = xcalloc(1, sizeof(*tc));
    tc->fd = fd;
    tc->timer = timer_add(SERVER_TRIGGER_TIMEOUT_MS, trigger_client_timeout, tc);
    srv_trigger_pending++;
    event_read(fd, trigger_client_read, tc);
}

static void server_trigger_fifo(int lfd, int events, void *ctx)
{
    char buf[SERVER_TRIGGER_MAX];
    ssize_t n = read(lfd, buf, sizeof(buf));

    /* master opens the FIFO read-write, so EOF never happens. */
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            log_fatal("read trigger fifo: %m");
        return;
    }
    if (n > 0)
        server_wake(buf, (size_t)n);
}

/* -S: I/O on fd 0 and fd 1, for a stream that may not be one socket. */
static ssize_t server_stdin_read(void *ctx, void *buf, size_t len)
{
    return read(0, buf, len);
}

static ssize_t server_stdout_write(void *ctx, const void *buf, size_t len)
{
    return write(1, buf, len);
}

static bool server_same_file(int a, int b)
{
    struct stat sa, sb;

    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int server_standalone_run(void)
{
    const struct server_desc *d = srv_desc;
    struct stream *s;
    int fd;

    switch (d->kind) {
    case SERVER_SINGLE:
        if (server_same_file(0, 1)) {
            if ((fd = dup(0)) < 0)
                log_fatal("dup: %m");
            s = stream_fdopen(fd);
        } else {
            if ((fd = dup(0)) < 0)
                log_fatal("dup: %m");
            s = stream_fdopen(fd);
            stream_set_io(s, server_stdin_read, server_stdout_write, NULL);
        }
        d->service(s);
        stream_close(&s);
        return 0;
    case SERVER_MULTI:
        if ((fd = dup(0)) < 0)
            log_fatal("dup: %m");
        srv_clients = 1;
        d->accept_fn(fd);
        while (srv_clients > 0)
            event_loop(-1);
        return 0;
    case SERVER_TRIGGER: {
        struct strbuf *msg = strbuf_new(SERVER_TRIGGER_MAX);
        char buf[SERVER_TRIGGER_MAX];
        ssize_t n;

        while (strbuf_len(msg) < SERVER_TRIGGER_MAX &&
               (n = read(0, buf, SERVER_TRIGGER_MAX - strbuf_len(msg))) > 0)
            strbuf_appendn(msg, buf, (size_t)n);
        d->wake_fn(strbuf_str(msg), strbuf_len(msg));
        strbuf_free(&msg);
        return 0;
    }
    }
    return 1;
}

static void server_usage(const char *name)
{
    log_fatal("usage: %s [-c confdir] [-n service] [-t type] [-s count] [-o name=value]... "
              "[-z] [-u] [-v] [-S]", name);
}

/* Logging before and after main.cf: syslog, or maillog_file when set. */
static void server_log_setup(const char *name)
{
    char *ident;

    if (var_syslog_name && *var_syslog_name && strcmp(var_syslog_name, "facteur") != 0)
        ident = xasprintf("%s/%s", var_syslog_name, name);
    else
        ident = xstrdup(name);
    /* Run by hand from a terminal: also show the lines there. */
    int tty = isatty(2) ? LOG_DEST_STDERR : 0;

    log_init(ident, srv_standalone ? LOG_DEST_STDERR : LOG_DEST_SYSLOG | tty);
    free(ident);
    if (var_maillog_file && *var_maillog_file) {
        if (log_set_file(var_maillog_file) < 0)
            log_fatal("open maillog_file %s: %m", var_maillog_file);
        if (!srv_standalone)
            log_set_dest(LOG_DEST_FILE | tty);
    }
}

static void server_listen_setup(void)
{
    event_fn *fn = NULL;
    struct stat st;

    if (fstat(MASTER_STATUS_FD, &st) < 0)
        log_fatal("descriptor %d is not open: run by master, or use -S", MASTER_STATUS_FD);
    for (int i = 0; i < srv_nlisten; i++) {
        int lfd = MASTER_LISTEN_FD + i;
        int fl = fcntl(lfd, F_GETFL);

        if (fl < 0)
            log_fatal("listening descriptor %d is not open", lfd);
        if (fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(lfd, F_SETFD, FD_CLOEXEC) < 0)
            log_fatal("fcntl listening descriptor %d: %m", lfd);
    }
    if (fcntl(MASTER_STATUS_FD, F_SETFD, FD_CLOEXEC) < 0)
        log_fatal("fcntl status descriptor: %m");
    switch (srv_desc->kind) {
    case SERVER_SINGLE:
        fn = server_single_accept;
        break;
    case SERVER_MULTI:
        fn = server_multi_accept;
        break;
    case SERVER_TRIGGER:
        fn = strcmp(srv_type, "fifo") == 0 ? server_trigger_fifo : server_trigger_accept;
        break;
    }
    if (strcmp(srv_type, "fifo") == 0 && srv_desc->kind != SERVER_TRIGGER)
        log_fatal("service %s: a fifo service must be a trigger server", srv_service);
    for (int i = 0; i < srv_nlisten; i++)
        event_read(MASTER_LISTEN_FD + i, fn, NULL);
    srv_accepting = true;
    event_read(MASTER_STATUS_FD, server_master_gone, NULL);
}

int server_main(int argc, char **argv, const struct server_desc *desc)
{
    const char *confdir = NULL;
    bool chroot_flag = false, unpriv_flag = false;
    struct strbuf *why = strbuf_new(128);
    int c;

    srv_desc = desc;
    srv_service = desc->name;
    log_init(desc->name, LOG_DEST_STDERR);
    if ((desc->kind == SERVER_SINGLE && desc->service == NULL) ||
        (desc->kind == SERVER_MULTI && desc->accept_fn == NULL) ||
        (desc->kind == SERVER_TRIGGER && desc->wake_fn == NULL))
        log_panic("server_main: %s has no handler for its kind", desc->name);

    opterr = 0;
    while ((c = getopt(argc, argv, "+c:n:t:s:o:zuvS")) != -1) {
        switch (c) {
        case 'c':
            confdir = optarg;
            break;
        case 'n':
            srv_service = optarg;
            break;
        case 't':
            if (strcmp(optarg, "inet") != 0 && strcmp(optarg, "unix") != 0 &&
                strcmp(optarg, "pass") != 0 && strcmp(optarg, "fifo") != 0)
                log_fatal("bad service type: %s", optarg);
            srv_type = optarg;
            break;
        case 's': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > MASTER_LISTEN_MAX)
                log_fatal("bad listening socket count: %s", optarg);
            srv_nlisten = (int)n;
            break;
        }
        case 'o':
            if (conf_override(optarg, why) < 0)
                log_fatal("-o %s: %s", optarg, strbuf_str(why));
            break;
        case 'z':
            chroot_flag = true;
            break;
        case 'u':
            unpriv_flag = true;
            break;
        case 'v':
            log_set_verbose(true);
            break;
        case 'S':
            srv_standalone = true;
            break;
        default:
            server_usage(argv[0]);
        }
    }
    if (conf_load(confdir, why) < 0)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
    server_log_setup(desc->name);
    signal(SIGPIPE, SIG_IGN);

    if (!srv_standalone && chdir(var_queue_directory) < 0)
        log_fatal("chdir %s: %m", var_queue_directory);
    if (desc->pre_jail)
        desc->pre_jail();
    if (privs_is_root() && (unpriv_flag || chroot_flag))
        privs_drop(unpriv_flag ? var_mail_owner : NULL,
                   chroot_flag ? var_queue_directory : NULL);
    if (desc->post_jail)
        desc->post_jail();

    if (srv_standalone)
        return server_standalone_run();

    server_listen_setup();
    server_idle_arm();
    log_debug("%s service %s ready", srv_type, srv_service);
    for (;;)
        event_loop(-1);
}
