/*
 * pipe.c - the pipe delivery agent: delivers the |command and /file
 * targets of local aliases (alias_maps, :include: files) for qmgr, over
 * contract 5 (lib/deliver_proto.h) on private/pipe, one request per
 * connection, SERVER_SINGLE.
 *
 * It runs as root (master.cf "pipe unix - n n - - pipe") only so that it
 * can become the target's owner: each delivery forks a child that drops
 * to the uid/gid qmgr resolved (the alias table's or :include: file's
 * owner, default_privs for root-owned sources; lib/resolve) and never
 * runs anything as root: uid 0 is refused by the request parser and
 * again by privs_switch_user, gid 0 here.
 *
 * SECURITY.  qmgr runs as mail_owner; this agent does not take its word
 * for what to run or as whom: each target must appear, permitted, in the
 * agent's own resolution of the recipient (lib/resolve, the same tables,
 * read as root), and the uid/gid used are the ones that resolution
 * gives.  So a subverted qmgr can only trigger what the aliases already
 * say.  The command text comes from the administrator's alias
 * files, never from the message or the envelope: envelope data reaches
 * the command only as environment variables (SENDER, RECIPIENT, LOCAL,
 * ...) in an otherwise clean environment.  A command without shell
 * metacharacters runs from an argv array; one with them runs through
 * /bin/sh -c with the administrator's text alone, as Postfix local(8)
 * does.  The command's output is untrusted: bounded and sanitised
 * (pipe_output_text) before it reaches a log line or a DSN.  /file
 * targets are opened by the owner's child with O_NOFOLLOW, must be
 * regular files with one link, and are appended to under an fcntl lock,
 * fsynced before success is reported; a failed append is truncated away.
 *
 * Time: each command gets command_time_limit, and the whole request
 * stays within qmgr_daemon_timeout; a command past its limit has its
 * process group killed and is deferred.
 *
 * Like the other agents it holds a shared lock on the queue file while
 * it works (deliver_lock_queue_file), so a restarted qmgr waits for it,
 * and drops a request whose qmgr died before the lock was taken.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "conf.h"
#include "deliver_proto.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "pipe_util.h"
#include "privs.h"
#include "qfile.h"
#include "resolve.h"
#include "server.h"
#include "strbuf.h"

#define PIPE_CAPTURE_MAX    4096    /* command output kept for the reply */
#define PIPE_ENV_MAX        64      /* environment entries of a command */
#define PIPE_LOCK_TRIES     50      /* fcntl lock attempts, 100 ms apart */
#define PIPE_BUDGET_SLACK   5       /* seconds left to qmgr after the last command */

static struct resolve *pipe_resolve;   /* our own view of the aliases */

/* One delivery: what the child needs and what the parent learns. */
struct pipe_job {
    const struct deliver_request *req;
    const struct deliver_rcpt *rcpt;
    struct qfile *qf;
    bool is_file;
    const char *target;         /* the command (without '|') or the path */
    uid_t uid;
    gid_t gid;
    char *home, *login;
    long deadline_ms;           /* monotonic */
    struct strbuf *output;
};

static long pipe_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static long pipe_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long)tv.tv_sec * 1000000L + tv.tv_usec;
}

/* ---- the child ------------------------------------------------------ */

static void pipe_env_add(char **env, size_t *n, const char *name, const char *value)
{
    struct strbuf *sb;

    if (*n >= PIPE_ENV_MAX)
        return;
    sb = strbuf_new(strlen(name) + strlen(value) + 2);
    strbuf_printf(sb, "%s=%s", name, value);
    env[(*n)++] = strbuf_steal(&sb);
}

/* The command's environment: export_environment from ours, then the
 * envelope, as Postfix local(8) names it. */
static char **pipe_env_build(const struct pipe_job *j)
{
    char **env = xcalloc(PIPE_ENV_MAX + 1, sizeof(char *));
    char **keep = conf_list_split(var_export_environment);
    struct strbuf *local = strbuf_new(64), *domain = strbuf_new(64), *user = strbuf_new(64),
                  *ext = strbuf_new(64);
    const char *orcpt = j->rcpt->orcpt;
    size_t n = 0;

    for (size_t i = 0; keep[i] != NULL; i++) {
        const char *eq = strchr(keep[i], '=');
        const char *v;

        if (eq != NULL) {
            if (n < PIPE_ENV_MAX)
                env[n++] = xstrdup(keep[i]);
        } else if ((v = getenv(keep[i])) != NULL) {
            pipe_env_add(env, &n, keep[i], v);
        }
    }
    conf_list_free(&keep);
    pipe_addr_split(j->rcpt->addr, var_recipient_delimiter, local, domain, user, ext);
    pipe_env_add(env, &n, "PATH", "/usr/bin:/bin");
    pipe_env_add(env, &n, "SHELL", "/bin/sh");
    pipe_env_add(env, &n, "HOME", j->home);
    pipe_env_add(env, &n, "LOGNAME", j->login);
    pipe_env_add(env, &n, "USER", strbuf_str(user));
    pipe_env_add(env, &n, "SENDER", j->req->sender);
    pipe_env_add(env, &n, "RECIPIENT", j->rcpt->addr);
    pipe_env_add(env, &n, "LOCAL", strbuf_str(local));
    pipe_env_add(env, &n, "DOMAIN", strbuf_str(domain));
    pipe_env_add(env, &n, "EXTENSION", strbuf_str(ext));
    if (strncasecmp(orcpt, "rfc822;", 7) == 0)
        orcpt += 7;
    pipe_env_add(env, &n, "ORIGINAL_RECIPIENT", orcpt[0] != '\0' ? orcpt : j->rcpt->addr);
    pipe_env_add(env, &n, "QUEUE_ID", j->req->qid);
    strbuf_free(&local);
    strbuf_free(&domain);
    strbuf_free(&user);
    strbuf_free(&ext);
    return env;
}

/* Child, as the owner: append stdin to the mbox file at path.  Exits
 * with a sysexits code; stdout gets the reason on failure. */
static void pipe_file_child(const char *path, const char *sender)
{
    struct strbuf *out = strbuf_new(65536);
    struct pipe_mbox_state st;
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    struct stat sb;
    char buf[65536];
    off_t orig;
    ssize_t got;
    int fd, tries;

    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC
                        | O_NONBLOCK, 0600);
    if (fd < 0) {
        dprintf(1, "cannot open %s: %s\n", path,
               errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        _exit(errno == ENOSPC || errno == EDQUOT || errno == EINTR ? EX_TEMPFAIL : EX_CANTCREAT);
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
        dprintf(1, "%s is not a regular file with one link\n", path);
        _exit(EX_CANTCREAT);
    }
    for (tries = 0; fcntl(fd, F_SETLK, &fl) < 0; tries++) {
        if ((errno != EAGAIN && errno != EACCES) || tries >= PIPE_LOCK_TRIES) {
            dprintf(1, "cannot lock %s: %s\n", path, strerror(errno));
            _exit(EX_TEMPFAIL);
        }
        usleep(100000);
    }
    if ((orig = lseek(fd, 0, SEEK_END)) < 0 || fstat(fd, &sb) < 0) {
        dprintf(1, "cannot seek %s: %s\n", path, strerror(errno));
        _exit(EX_TEMPFAIL);
    }
    pipe_mbox_from_line(out, sender, time(NULL));
    pipe_mbox_init(&st);
    for (;;) {
        got = read(0, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        pipe_mbox_quote(out, buf, (size_t)got, &st);
        if (strbuf_len(out) >= 65536) {
            if (write(fd, strbuf_str(out), strbuf_len(out)) != (ssize_t)strbuf_len(out))
                goto fail;
            strbuf_reset(out);
        }
    }
    if (got < 0)
        goto fail;
    pipe_mbox_end(out, &st);
    if (write(fd, strbuf_str(out), strbuf_len(out)) != (ssize_t)strbuf_len(out))
        goto fail;
    if (fsync(fd) < 0)
        goto fail;
    _exit(0);
fail:
    dprintf(1, "cannot append to %s: %s\n", path, strerror(errno ? errno : EIO));
    /* Leave the mailbox as it was: no half message for the next reader. */
    if (ftruncate(fd, orig) < 0 || fsync(fd) < 0)
        dprintf(1, "cannot truncate %s back: %s\n", path, strerror(errno));
    _exit(EX_TEMPFAIL);
}

/* In the child: become the owner, go home, run the target.  Never returns. */
static void pipe_child(const struct pipe_job *j, int in_fd, int out_fd)
{
    struct strbuf *why = strbuf_new(64);
    char **env, **argv;

    setsid();       /* its own process group: a timeout kills all of it */
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        _exit(EX_OSERR);
    closefrom(3);
    /* A command starts with default signal handling: nothing the agent
     * blocked (lib/events takes signals through signalfd) or ignored. */
    {
        static const int sigs[] = { SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD,
                                    SIGUSR1, SIGUSR2, SIGALRM };
        sigset_t none;

        for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
            signal(sigs[k], SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    if (privs_switch_user(j->uid, j->gid, why) < 0) {
        dprintf(1, "%s\n", strbuf_str(why));
        _exit(EX_TEMPFAIL);
    }
    if (chdir(j->home) < 0 && chdir("/") < 0)
        _exit(EX_OSERR);
    umask(077);
    if (j->is_file)
        pipe_file_child(j->target, j->req->sender);
    env = pipe_env_build(j);
    if ((argv = pipe_split_argv(j->target)) != NULL) {
        execvpe(argv[0], argv, env);
        dprintf(1, "cannot execute %s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT || errno == EACCES ? 127 : EX_OSERR);
    }
    execle("/bin/sh", "sh", "-c", j->target, (char *)NULL, env);
    dprintf(1, "cannot execute /bin/sh: %s\n", strerror(errno));
    _exit(EX_OSERR);
}

/* ---- the parent ----------------------------------------------------- */

/* True when qmgr has closed its end: it died after sending the request. */
static bool pipe_qmgr_gone(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

    if (poll(&p, 1, 0) <= 0)
        return false;
    return (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

/* Feed the message, collect output, wait, within the deadline.  Returns
 * the wait status, or -1 when the deadline passed (the process group is
 * killed and reaped). */
static int pipe_run(struct pipe_job *j, struct strbuf *why)
{
    int in[2], out[2], wstatus = 0;
    struct strbuf *feed = strbuf_new(8192);
    size_t off = 0;
    bool in_open = true, out_open = true, eof = false;
    pid_t pid;
    char buf[8192];

    if (pipe2(in, O_CLOEXEC) < 0)
        goto sysfail;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        goto sysfail;
    }
    if ((pid = fork()) < 0) {
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        goto sysfail;
    }
    if (pid == 0)
        pipe_child(j, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);

    /* What a mailbox expects first (Postfix local: Return-Path,
     * Delivered-To), then the content as queued (LF line ends). */
    strbuf_printf(feed, "Return-Path: <%s>\nDelivered-To: %s\n", j->req->sender, j->rcpt->addr);
    qfile_content_rewind(j->qf);
    while (in_open || out_open) {
        struct pollfd pf[2];
        int npf = 0, in_i = -1, out_i = -1;
        long left = j->deadline_ms - pipe_now_ms();

        if (left <= 0)
            goto timeout;
        if (in_open && off == strbuf_len(feed) && !eof) {
            ssize_t got = qfile_content_read(j->qf, buf, sizeof(buf), why);
            if (got < 0) {
                log_warn("%s: queue file read error: %s", j->req->qid, strbuf_str(why));
                goto killed;
            }
            strbuf_setn(feed, buf, (size_t)got);
            off = 0;
            eof = got == 0;
        }
        if (in_open && eof && off == strbuf_len(feed)) {
            close(in[1]);
            in_open = false;
            continue;
        }
        if (in_open) {
            pf[npf] = (struct pollfd){ .fd = in[1], .events = POLLOUT };
            in_i = npf++;
        }
        if (out_open) {
            pf[npf] = (struct pollfd){ .fd = out[0], .events = POLLIN };
            out_i = npf++;
        }
        if (poll(pf, (nfds_t)npf, (int)(left > 1000 ? 1000 : left)) < 0) {
            if (errno == EINTR)
                continue;
            goto killed;
        }
        if (in_i >= 0 && pf[in_i].revents != 0) {
            ssize_t put = write(in[1], strbuf_str(feed) + off, strbuf_len(feed) - off);
            if (put > 0) {
                off += (size_t)put;
            } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
                /* The command stopped reading (EPIPE): its exit status decides. */
                close(in[1]);
                in_open = false;
            }
        }
        if (out_i >= 0 && pf[out_i].revents != 0) {
            ssize_t got = read(out[0], buf, sizeof(buf));
            if (got > 0) {
                size_t room = PIPE_CAPTURE_MAX - strbuf_len(j->output);
                strbuf_appendn(j->output, buf, (size_t)got < room ? (size_t)got : room);
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(out[0]);
                out_open = false;
            }
        }
    }
    /* Both pipes closed; the process may still be finishing. */
    for (;;) {
        pid_t w = waitpid(pid, &wstatus, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            goto killed;
        if (pipe_now_ms() >= j->deadline_ms)
            goto timeout;
        usleep(10000);
    }
    strbuf_free(&feed);
    return wstatus;

timeout:
    strbuf_set(why, "Command time limit exceeded");
    wstatus = -1;
    goto reap;
killed:
    if (strbuf_len(why) == 0)
        strbuf_printf(why, "delivery interrupted: %m");
    wstatus = -2;
reap:
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (in_open)
        close(in[1]);
    if (out_open)
        close(out[0]);
    strbuf_free(&feed);
    return wstatus;
sysfail:
    strbuf_printf(why, "cannot start the delivery: %m");
    strbuf_free(&feed);
    return -2;
}

/*
 * Check recipient r's target against our own resolution of the address
 * and the queue file: 1 with the uid/gid to use, 0 with why when the
 * target is not (or no longer) a permitted part of the expansion, -1
 * with why for a temporary failure.
 */
static int pipe_verify(const struct deliver_rcpt *r, struct qfile *qf, uid_t *uid_r,
                       gid_t *gid_r, struct strbuf *why)
{
    const struct qfile_env *env = qfile_env(qf);
    struct resolve_result res = { 0 };
    enum resolve_kind kind = r->target[0] == '|' ? RESOLVE_PIPE : RESOLVE_FILE;
    const char *want = kind == RESOLVE_PIPE ? r->target + 1 : r->target;
    int rc = 0;

    if ((size_t)r->index >= env->nrcpt || strcmp(env->rcpts[r->index].addr, r->addr) != 0) {
        strbuf_printf(why, "recipient <%s> is not recipient %ld of the queue file", r->addr,
                      r->index);
        return 0;
    }
    if (resolve_rcpt(pipe_resolve, r->addr, 0, &res, why) < 0)
        return -1;
    for (size_t i = 0; i < res.n && rc == 0; i++) {
        const struct resolve_target *t = &res.t[i];
        if (t->kind == kind && t->allowed && strcmp(t->addr, want) == 0 && t->owner_uid != 0
            && t->owner_gid != 0) {
            *uid_r = t->owner_uid;
            *gid_r = t->owner_gid;
            rc = 1;
        }
    }
    if (rc == 0)
        strbuf_printf(why, "\"%s\" is not a permitted target of <%s>", r->target, r->addr);
    resolve_result_clear(&res);
    return rc;
}

/* Deliver recipient i; sets its outcome. */
static void pipe_deliver_one(const struct deliver_request *req, size_t i, struct qfile *qf,
                             long budget_end_ms, struct deliver_reply *rep)
{
    const struct deliver_rcpt *r = &req->rcpts[i];
    struct strbuf *why = strbuf_new(64), *text = strbuf_new(128);
    struct pipe_job j = { .req = req, .rcpt = r, .qf = qf };
    struct passwd *pw;
    char dsn[8];
    int wstatus, st;
    long limit_ms;

    if (r->target == NULL) {
        deliver_reply_set(rep, i, DELIVER_DEFER, "4.3.5",
                          "pipe transport: the request names no command or file");
        goto out;
    }
    if (r->uid <= 0 || r->gid <= 0) {
        deliver_reply_set(rep, i, DELIVER_DEFER, "4.3.5",
                          "pipe transport: refusing to deliver with root privileges");
        goto out;
    }
    j.is_file = r->target[0] == '/';
    j.target = j.is_file ? r->target : r->target + 1;
    switch (pipe_verify(r, qf, &j.uid, &j.gid, why)) {
    case 1:
        break;
    case 0:
        /* The aliases changed since qmgr resolved them (it tries again),
         * or qmgr is not what it should be. */
        log_warn("%s: refused: %s", req->qid, strbuf_str(why));
        deliver_reply_set(rep, i, DELIVER_DEFER, "4.3.0", "alias target not confirmed");
        goto out;
    default:
        deliver_reply_set(rep, i, DELIVER_DEFER, "4.3.0", strbuf_str(why));
        goto out;
    }
    if ((long)j.uid != r->uid || (long)j.gid != r->gid)
        log_info("%s: <%s> \"%s\": delivered as uid %ld gid %ld, not %ld/%ld as qmgr said "
                 "(the alias source changed owner)", req->qid, r->addr, r->target,
                 (long)j.uid, (long)j.gid, r->uid, r->gid);
    strbuf_reset(why);
    if ((pw = getpwuid(j.uid)) != NULL) {
        j.home = xstrdup(pw->pw_dir != NULL && pw->pw_dir[0] == '/' ? pw->pw_dir : "/");
        j.login = xstrdup(pw->pw_name);
    } else {
        j.home = xstrdup("/");
        strbuf_printf(text, "#%ld", r->uid);
        j.login = xstrdup(strbuf_str(text));
        strbuf_reset(text);
    }
    limit_ms = var_command_time_limit * 1000L;
    if (budget_end_ms - pipe_now_ms() < limit_ms)
        limit_ms = budget_end_ms - pipe_now_ms();
    if (limit_ms <= 0) {
        deliver_reply_set(rep, i, DELIVER_DEFER, "4.3.0",
                          "time for this delivery request used up by earlier commands");
        goto out;
    }
    j.deadline_ms = pipe_now_ms() + limit_ms;
    j.output = strbuf_new(256);
    wstatus = pipe_run(&j, why);
    if (wstatus < 0) {
        st = DELIVER_DEFER;
        memcpy(dsn, "4.3.0", 6);
        strbuf_set(text, strbuf_str(why));
        if (wstatus == -1)
            log_warn("%s: %s for <%s>: \"%s\" killed after %lds", req->qid, strbuf_str(why),
                     r->addr, r->target, (long)((limit_ms + 999) / 1000));
    } else {
        st = pipe_exit_status(wstatus, dsn, text);
        if (st == PIPE_SENT)
            strbuf_printf(text, "delivered to %s: %s", j.is_file ? "file" : "command", j.target);
        else if (j.is_file)
            strbuf_printf(text, "cannot deliver to file %s", j.target);
        if (st != PIPE_SENT)
            pipe_output_text(text, strbuf_str(j.output), strbuf_len(j.output));
    }
    deliver_reply_set(rep, i, st == PIPE_SENT ? DELIVER_SENT : st == PIPE_DEFER ? DELIVER_DEFER
                                                                                : DELIVER_BOUNCE,
                      dsn, strbuf_str(text));
    strbuf_free(&j.output);
out:
    free(j.home);
    free(j.login);
    strbuf_free(&why);
    strbuf_free(&text);
}

static void pipe_service(struct stream *client)
{
    struct attr_list *l = attr_new();
    struct strbuf *why = strbuf_new(128), *line = strbuf_new(256);
    struct deliver_request req;
    struct deliver_reply rep = { 0 };
    struct qfile *qf = NULL;
    bool corrupt = false;
    long start_us, budget_end_ms;
    int r, lock_fd = -1;

    deliver_request_init(&req);
    stream_set_timeout(client, (int)var_qmgr_ipc_timeout * 1000);
    r = attr_read(client, l, NULL, &deliver_limits, why);
    if (r <= 0) {
        if (r < 0)
            log_warn("malformed delivery request from qmgr: %s", strbuf_str(why));
        goto out;
    }
    if (deliver_request_parse(l, &req, why) < 0) {
        log_warn("malformed delivery request from qmgr: %s", strbuf_str(why));
        goto out;
    }
    start_us = pipe_now_us();
    budget_end_ms = pipe_now_ms() + (var_qmgr_daemon_timeout - PIPE_BUDGET_SLACK) * 1000L;
    deliver_reply_init(&rep, req.nrcpt);
    deliver_reply_set_relay(&rep, req.transport);
    if ((lock_fd = deliver_lock_queue_file(req.path, why)) < 0) {
        log_warn("%s: %s", req.qid, strbuf_str(why));
        for (size_t i = 0; i < req.nrcpt; i++)
            deliver_reply_set(&rep, i, DELIVER_DEFER, "4.3.0", "queue file read error");
    } else if (pipe_qmgr_gone(stream_fd(client))) {
        /* A later qmgr that checked before our lock owns the message now. */
        log_info("%s: qmgr went away before the delivery started: request dropped", req.qid);
        goto out;
    } else if ((qf = qfile_open(req.path, 0, &corrupt, why)) == NULL) {
        log_warn("%s: cannot open queue file %s: %s", req.qid, req.path, strbuf_str(why));
        for (size_t i = 0; i < req.nrcpt; i++)
            deliver_reply_set(&rep, i, DELIVER_DEFER, "4.3.0", "queue file read error");
    } else if (strcmp(qfile_qid(qf), req.qid) != 0) {
        log_warn("%s: queue file %s has queue ID \"%s\": request refused", req.qid, req.path,
                 qfile_qid(qf));
        for (size_t i = 0; i < req.nrcpt; i++)
            deliver_reply_set(&rep, i, DELIVER_DEFER, "4.3.0", "queue file mismatch");
    } else {
        for (size_t i = 0; i < req.nrcpt; i++)
            pipe_deliver_one(&req, i, qf, budget_end_ms, &rep);
    }
    for (size_t i = 0; i < req.nrcpt; i++) {
        long now = pipe_now_us();
        strbuf_printf(line, "%s: to=<%s>, relay=%s, ", req.qid, req.rcpts[i].addr, rep.relay);
        deliver_format_delays(line, req.arrival_us, req.active_us, start_us, start_us, now);
        strbuf_appendf(line, ", dsn=%s, status=%s (%s)", rep.st[i].dsn,
                       deliver_status_name(rep.st[i].status), rep.st[i].reply);
        log_info("%s", strbuf_str(line));
    }
    deliver_reply_format(&rep, l);
    if (attr_write(client, l) < 0)
        log_warn("%s: cannot send the delivery reply to qmgr: %s", req.qid,
                 stream_strerror(client));
out:
    qfile_close(&qf);
    /* Released only now: qmgr has the reply. */
    if (lock_fd >= 0)
        close(lock_fd);
    deliver_reply_clear(&rep);
    deliver_request_clear(&req);
    attr_free(&l);
    strbuf_free(&why);
    strbuf_free(&line);
}

static void pipe_pre_jail(void)
{
    struct strbuf *why = strbuf_new(64);

    if ((pipe_resolve = resolve_new(why)) == NULL)
        log_fatal("cannot open lookup tables: %s", strbuf_str(why));
    strbuf_free(&why);
    /* A command that stops reading gives EPIPE, not a dead agent. */
    signal(SIGPIPE, SIG_IGN);
    if (!privs_is_root())
        log_info("not running as root: commands and files are delivered as uid %ld only",
                 (long)getuid());
}

static const struct server_desc pipe_desc = {
    .name = "pipe",
    .kind = SERVER_SINGLE,
    .pre_jail = pipe_pre_jail,
    .service = pipe_service,
};

int main(int argc, char **argv)
{
    return server_main(argc, argv, &pipe_desc);
}
