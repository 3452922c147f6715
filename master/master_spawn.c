/*
 * master_spawn.c - start, track and reap service processes.
 *
 * Processes are started on demand, as Postfix does: while a service has no
 * idle process and is under its process limit, master watches its
 * listening descriptors, and a client (or trigger) arriving there starts
 * one.  Children report busy/idle on the service's status socket; master
 * trusts those records only for pids it started for that service's
 * current generation.  A child that dies abnormally is logged and replaced
 * at once; one that dies before it ever took a client, within its first
 * seconds, marks a bad startup and throttles the service (master_ent.c).
 * Wakeup services get a trigger byte every N seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "events.h"
#include "log.h"
#include "master.h"
#include "mem.h"
#include "params.h"

/* A child that dies this soon without serving anyone failed to start. */
#define MASTER_STARTUP_MS 5000
/* At most this often: "service has reached its process limit". */
#define MASTER_LIMIT_WARN_MS 60000
/* Status records read per wakeup, so one service cannot starve others. */
#define MASTER_STATUS_BATCH 256
/* Child descriptors are parked here while being moved into place. */
#define MASTER_FD_PARK 200

static void status_read(int fd, int events, void *ctx);

static struct master_child *child_find(pid_t pid)
{
    for (struct master_child *c = master_children; c; c = c->next)
        if (c->pid == pid)
            return c;
    return NULL;
}

int master_status_open(struct master_service *svc)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, svc->status_fd) < 0) {
        log_error("%s: status socketpair: %m", svc->label);
        svc->status_fd[0] = svc->status_fd[1] = -1;
        return -1;
    }
    fcntl(svc->status_fd[0], F_SETFL, O_NONBLOCK);
    event_read(svc->status_fd[0], status_read, svc);
    return 0;
}

/* Close the status socket: every child of this generation sees EOF and
 * leaves once idle.  Later children belong to a new generation. */
void master_status_close(struct master_service *svc)
{
    if (svc->status_fd[0] >= 0) {
        event_disable(svc->status_fd[0]);
        close(svc->status_fd[0]);
    }
    if (svc->status_fd[1] >= 0)
        close(svc->status_fd[1]);
    svc->status_fd[0] = svc->status_fd[1] = -1;
    svc->generation++;
    /* Leaving children still count toward maxproc: a reload must not run
     * two queue managers at once. */
    svc->old_total += svc->total;
    svc->total = svc->busy = 0;
}

/* In the child: put the descriptors where master_proto.h says, close the
 * rest, exec the daemon.  Never returns. */
static void child_exec(struct master_service *svc)
{
    const struct mastercf_entry *e = svc->ent;
    char **argv = xcalloc(16 + 2 * e->noverrides + e->nargs, sizeof(char *));
    char count[16];
    int park_status, park[MASTER_LISTEN_MAX];
    size_t n = 0;

    log_set_fatal_hook(NULL);
    event_fork_reset();
    signal(SIGPIPE, SIG_DFL);

    park_status = fcntl(svc->status_fd[1], F_DUPFD, MASTER_FD_PARK);
    for (int i = 0; i < svc->nlisten; i++)
        park[i] = fcntl(svc->listen_fd[i], F_DUPFD, MASTER_FD_PARK);
    if (park_status < 0 || dup2(park_status, MASTER_STATUS_FD) < 0)
        goto fail;
    for (int i = 0; i < svc->nlisten; i++)
        if (park[i] < 0 || dup2(park[i], MASTER_LISTEN_FD + i) < 0)
            goto fail;
    /* Everything else closes at exec (the log file stays usable until
     * then, for the message below). */
    if (close_range(MASTER_LISTEN_FD + svc->nlisten, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = MASTER_LISTEN_FD + svc->nlisten; fd < MASTER_FD_PARK + 2 * MASTER_LISTEN_MAX; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);

    argv[n++] = svc->path;
    argv[n++] = "-c";
    argv[n++] = (char *)master_confdir;
    argv[n++] = "-n";
    argv[n++] = e->name;
    argv[n++] = "-t";
    argv[n++] = (char *)mastercf_type_name(e->type);
    if (svc->nlisten > 1) {
        snprintf(count, sizeof(count), "%d", svc->nlisten);
        argv[n++] = "-s";
        argv[n++] = count;
    }
    if (master_root && e->chroot)
        argv[n++] = "-z";
    if (master_root && e->unpriv)
        argv[n++] = "-u";
    if (master_verbose)
        argv[n++] = "-v";
    for (size_t i = 0; i < e->noverrides; i++) {
        argv[n++] = "-o";
        argv[n++] = e->overrides[i];
    }
    for (size_t i = 0; i < e->nargs; i++)
        argv[n++] = e->args[i];
    argv[n] = NULL;
    execv(svc->path, argv);
fail:
    log_error("%s: exec %s: %m", svc->label, svc->path);
    _exit(1);
}

void master_spawn(struct master_service *svc)
{
    struct master_child *c;
    pid_t pid;

    if (svc->state != MASTER_SVC_ACTIVE || master_stopping || svc->status_fd[1] < 0)
        return;
    if (svc->maxproc > 0 && svc->total + svc->old_total >= svc->maxproc)
        return;
    if ((pid = fork()) < 0) {
        log_warn("%s: fork: %m", svc->label);
        master_ent_event(svc, MASTER_EV_START_FAILED);
        return;
    }
    if (pid == 0)
        child_exec(svc);

    c = xcalloc(1, sizeof(*c));
    c->pid = pid;
    c->svc = svc;
    c->path = xstrdup(svc->path);
    c->generation = svc->generation;
    event_now_update();
    c->started = event_now();
    c->next = master_children;
    master_children = c;
    svc->total++;
    if (svc->replace_pid > 0)
        log_info("service %s: process %s pid %ld started to replace pid %ld", svc->label,
                 svc->path, (long)pid, (long)svc->replace_pid);
    else
        log_debug("service %s: process %s pid %ld started", svc->label, svc->path, (long)pid);
    svc->replace_pid = 0;
    master_avail_update(svc);
}

static void listen_ready(int fd, int events, void *ctx)
{
    master_spawn(ctx);
}

/* A client waits while every process is busy and no more may start.
 * Warn (at most once a minute), then stop watching until a status change
 * re-arms the watch, so a waiting client cannot make master spin. */
static void listen_at_limit(int fd, int events, void *ctx)
{
    struct master_service *svc = ctx;

    event_now_update();
    if (svc->limit_warned == 0 || event_now() - svc->limit_warned >= MASTER_LIMIT_WARN_MS) {
        svc->limit_warned = event_now();
        log_warn("service \"%s\" has reached its process limit \"%d\": "
                 "new clients may experience noticeable delays", svc->label, svc->maxproc);
    }
    for (int i = 0; i < svc->nlisten; i++)
        event_disable(svc->listen_fd[i]);
    svc->watching = MASTER_WATCH_NONE;
}

void master_avail_update(struct master_service *svc)
{
    bool idle = svc->total > svc->busy;
    bool room = svc->maxproc == 0 || svc->total + svc->old_total < svc->maxproc;
    enum master_watch want = MASTER_WATCH_NONE;

    if (svc->state == MASTER_SVC_ACTIVE && !master_stopping && svc->nlisten > 0 && !idle)
        want = room ? MASTER_WATCH_SPAWN : svc->maxproc > 1 ? MASTER_WATCH_LIMIT
                                                            : MASTER_WATCH_NONE;
    if (want == svc->watching)
        return;
    for (int i = 0; i < svc->nlisten; i++) {
        if (want == MASTER_WATCH_NONE)
            event_disable(svc->listen_fd[i]);
        else
            event_read(svc->listen_fd[i], want == MASTER_WATCH_SPAWN ? listen_ready
                                                                     : listen_at_limit, svc);
    }
    svc->watching = want;
}

static void status_read(int fd, int events, void *ctx)
{
    struct master_service *svc = ctx;
    struct master_status st;
    struct master_child *c;
    ssize_t n;

    for (int i = 0; i < MASTER_STATUS_BATCH; i++) {
        n = recv(fd, &st, sizeof(st), MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                log_warn("%s: status socket: %m", svc->label);
            break;
        }
        if (n != (ssize_t)sizeof(st)) {
            log_warn("%s: status record of %zd bytes ignored", svc->label, n);
            if (n == 0)
                break;
            continue;
        }
        c = child_find(st.pid);
        if (c == NULL || c->svc != svc || c->generation != svc->generation) {
            log_warn("%s: status from unknown pid %ld ignored", svc->label, (long)st.pid);
            continue;
        }
        if (st.avail == MASTER_STAT_BUSY && !c->busy) {
            c->busy = c->used = true;
            svc->busy++;
            if (!svc->used) {
                svc->used = true;
                if (svc->ent->wakeup_if_used)
                    master_wakeup_arm(svc);
            }
        } else if (st.avail == MASTER_STAT_IDLE && c->busy) {
            c->busy = false;
            svc->busy--;
        } else if (st.avail != MASTER_STAT_BUSY && st.avail != MASTER_STAT_IDLE) {
            log_warn("%s: pid %ld sent bad status %d", svc->label, (long)st.pid, st.avail);
        }
    }
    master_avail_update(svc);
}

/* Send one trigger byte to the service's own endpoint. */
static void wakeup_send(struct master_service *svc)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    if (svc->ent->type == MASTERCF_FIFO) {
        if ((fd = open(svc->sock_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
            log_warn("%s: wakeup %s: %m", svc->label, svc->sock_path);
            return;
        }
        if (write(fd, "W", 1) < 0 && errno != EAGAIN)
            log_warn("%s: wakeup %s: %m", svc->label, svc->sock_path);
        close(fd);
        return;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        log_warn("%s: wakeup socket: %m", svc->label);
        return;
    }
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", svc->sock_path);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        if (errno != EAGAIN)
            log_warn("%s: wakeup %s: %m", svc->label, svc->sock_path);
    } else if (send(fd, "W", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
        log_warn("%s: wakeup %s: %m", svc->label, svc->sock_path);
    }
    close(fd);
}

static void wakeup_fire(void *ctx)
{
    struct master_service *svc = ctx;

    svc->wakeup_timer = NULL;
    if (svc->state == MASTER_SVC_RETIRED)
        return;
    if (!svc->ent->wakeup_if_used || svc->used)
        wakeup_send(svc);
    svc->wakeup_timer = timer_add(svc->ent->wakeup * 1000L, wakeup_fire, svc);
}

/* Start the wakeup cycle: the first trigger right away (the service gets
 * a process at start), then every `wakeup` seconds. */
void master_wakeup_arm(struct master_service *svc)
{
    timer_cancel(&svc->wakeup_timer);
    if (svc->ent->wakeup <= 0 || svc->ent->type == MASTERCF_INET)
        return;
    if (svc->ent->wakeup_if_used && !svc->used)
        return;
    svc->wakeup_timer = timer_add(0, wakeup_fire, svc);
}

void master_spawn_signal_children(struct master_service *svc, int signo)
{
    for (struct master_child *c = master_children; c; c = c->next)
        if (svc == NULL || c->svc == svc) {
            c->signalled = true;
            if (kill(c->pid, signo) < 0 && errno != ESRCH)
                log_warn("kill pid %ld: %m", (long)c->pid);
        }
}

/* The service is going away: its children stay in the list (so they are
 * reaped and counted at stop) but no longer point at it. */
void master_spawn_orphan_children(struct master_service *svc)
{
    for (struct master_child *c = master_children; c; c = c->next)
        if (c->svc == svc)
            c->svc = NULL;
}

int master_children_count(void)
{
    int n = 0;

    for (struct master_child *c = master_children; c; c = c->next)
        n++;
    return n;
}

static void child_exited(struct master_child *c, int status)
{
    struct master_service *svc = c->svc;
    bool abnormal = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    bool current = svc != NULL && c->generation == svc->generation;

    /* Death by our own SIGTERM (a removed service) is no news. */
    if (c->signalled && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
        abnormal = false;
    if (abnormal && !master_stopping) {
        if (WIFEXITED(status))
            log_warn("process %s pid %ld exit status %d", c->path, (long)c->pid,
                     WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            log_warn("process %s pid %ld killed by signal %d", c->path, (long)c->pid,
                     WTERMSIG(status));
    }
    if (!current) {
        if (svc != NULL && svc->old_total > 0) {
            svc->old_total--;
            master_avail_update(svc);
        }
        return;
    }
    svc->total--;
    if (c->busy)
        svc->busy--;
    if (abnormal && !master_stopping) {
        event_now_update();
        svc->replace_pid = c->pid;
        if (!c->used && event_now() - c->started < MASTER_STARTUP_MS)
            master_ent_event(svc, MASTER_EV_START_FAILED);
    }
    master_avail_update(svc);
    if (svc->replace_pid > 0 && svc->state == MASTER_SVC_ACTIVE)
        master_spawn(svc);
}

void master_reap(void)
{
    struct master_child **cp, *c;
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (cp = &master_children; (c = *cp) != NULL; cp = &c->next)
            if (c->pid == pid)
                break;
        if (c == NULL)
            continue;
        *cp = c->next;
        child_exited(c, status);
        free(c->path);
        free(c);
    }
}
