/*
 * qmgr_defer.c - the end of a message's round in the active queue.
 *
 * When nothing of a message is pending any more: if every recipient is
 * done in the queue file, the file is removed ("QID: removed") with its
 * defer log; otherwise the message moves to deferred/ with its next
 * retry time as the file's mtime (as Postfix does), the reasons of this
 * round go to defer/QID for mailq (one line per recipient,
 * "recipient=<addr> reason=<text>"), and, once the message is older than
 * delay_warning_time, the sender gets one delay warning (remembered by
 * the empty file defer/QID.warned).
 *
 * Backoff: the wait before the next attempt is the message's age, at
 * least minimal_backoff_time and at most maximal_backoff_time, so the
 * interval roughly doubles with each attempt.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "fileops.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qmgr.h"

static void qmgr_message_free(struct qmgr_message *msg)
{
    for (size_t i = 0; i < msg->ndefer; i++) {
        free(msg->defers[i].addr);
        free(msg->defers[i].dsn);
        free(msg->defers[i].text);
        free(msg->defers[i].relay);
    }
    free(msg->defers);
    free(msg->sender);
    qfile_close(&msg->qf);
    free(msg);
}

static void qmgr_remove(struct qmgr_message *msg)
{
    char path[QID_BUFSIZE + 16];

    if (unlink(msg->path) < 0 && errno != ENOENT) {
        log_warn("%s: remove %s: %m", msg->qid, msg->path);
        return;
    }
    snprintf(path, sizeof(path), "defer/%s", msg->qid);
    (void)unlink(path);
    snprintf(path, sizeof(path), "defer/%s.warned", msg->qid);
    (void)unlink(path);
    log_info("%s: removed", msg->qid);
}

/* One delay warning per message, to the sender, for recipients whose
 * NOTIFY admits it (none given: yes). */
static void qmgr_delay_warning(struct qmgr_message *msg)
{
    const struct qfile_env *env = qfile_env(msg->qf);
    struct strbuf *why = strbuf_new(64);
    struct bounce_rcpt *br;
    char mark[QID_BUFSIZE + 16], qid[QID_BUFSIZE];
    long age = (qmgr_now_us() - msg->arrival_us) / 1000000L;
    size_t nb = 0;
    int fd;

    if (var_delay_warning_time <= 0 || age < var_delay_warning_time || env->sender[0] == '\0'
        || msg->ndefer == 0) {
        strbuf_free(&why);
        return;
    }
    snprintf(mark, sizeof(mark), "defer/%s.warned", msg->qid);
    if (access(mark, F_OK) == 0) {
        strbuf_free(&why);
        return;
    }
    br = xcalloc(msg->ndefer, sizeof(*br));
    for (size_t i = 0; i < msg->ndefer; i++) {
        const struct qfile_rcpt *r = &env->rcpts[msg->defers[i].index];
        if (r->notify != 0 && !(r->notify & QFILE_NOTIFY_DELAY))
            continue;
        br[nb].addr = r->addr;
        br[nb].orcpt = r->orcpt;
        br[nb].status = msg->defers[i].dsn;
        br[nb].diag = msg->defers[i].text;
        br[nb].remote_mta = msg->defers[i].relay;
        nb++;
    }
    if (nb > 0) {
        struct bounce_msg m = {
            .kind = BOUNCE_DELAYED,
            .qid = msg->qid,
            .orig_sender = env->sender,
            .to = env->sender,
            .env_sender = "",
            .envid = env->envid,
            .arrival = env->arrival,
            .ret = 'H',
            .retry_until = env->arrival.tv_sec + var_maximal_queue_lifetime,
            .now = time(NULL),
            .hostname = var_myhostname,
            .size_limit = var_bounce_size_limit,
        };
        if (bounce_queue(".", &m, br, nb, msg->qf, qid, why) < 0) {
            log_warn("%s: cannot queue a delay warning: %s", msg->qid, strbuf_str(why));
        } else {
            log_info("%s: sender delay notification: %s", msg->qid, qid);
            qmgr_want_scan();
            /* Remembered only after the warning is queued: a crash in
             * between sends it twice, never zero times. */
            if ((fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
                close(fd);
            else
                log_warn("%s: create %s: %m", msg->qid, mark);
        }
    }
    free(br);
    strbuf_free(&why);
}

static void qmgr_write_defer_log(struct qmgr_message *msg)
{
    struct strbuf *text = strbuf_new(256), *why = strbuf_new(64);
    char path[QID_BUFSIZE + 16];

    for (size_t i = 0; i < msg->ndefer; i++)
        strbuf_appendf(text, "recipient=%s reason=%s\n", msg->defers[i].addr,
                       msg->defers[i].text);
    snprintf(path, sizeof(path), "defer/%s", msg->qid);
    if (fileops_write_atomic(path, strbuf_str(text), strbuf_len(text), 0600, why) < 0)
        log_warn("%s: %s", msg->qid, strbuf_str(why));
    strbuf_free(&text);
    strbuf_free(&why);
}

static void qmgr_defer(struct qmgr_message *msg)
{
    struct timespec ts[2];
    char dst[QID_BUFSIZE + 16];
    long age = (qmgr_now_us() - msg->arrival_us) / 1000000L;
    long wait = age;

    if (wait < var_minimal_backoff_time)
        wait = var_minimal_backoff_time;
    if (wait > var_maximal_backoff_time)
        wait = var_maximal_backoff_time;
    qmgr_write_defer_log(msg);
    qmgr_delay_warning(msg);
    /* The retry time is the file's mtime, set before the rename so a
     * scan of deferred/ never sees the file without it. */
    ts[0].tv_sec = ts[1].tv_sec = time(NULL) + wait;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    if (utimensat(AT_FDCWD, msg->path, ts, 0) < 0)
        log_warn("%s: set retry time of %s: %m", msg->qid, msg->path);
    snprintf(dst, sizeof(dst), "deferred/%s", msg->qid);
    if (rename(msg->path, dst) < 0)
        log_warn("%s: rename %s to %s: %m", msg->qid, msg->path, dst);
}

/* Past its lifetime, whatever deferred the recipients this round (an
 * agent, a dead destination, a table failure), they are returned. */
static void qmgr_expire(struct qmgr_message *msg)
{
    struct qmgr_outcome *o = msg->defers;
    size_t n = msg->ndefer;

    msg->defers = NULL;
    msg->ndefer = 0;
    qmgr_bounce(msg, o, n, QMGR_BOUNCE_EXPIRED);
    for (size_t i = 0; i < n; i++) {
        free(o[i].addr);
        free(o[i].dsn);
        free(o[i].text);
        free(o[i].relay);
    }
    free(o);
}

void qmgr_defer_finish(struct qmgr_message *msg)
{
    if (!qfile_all_done(msg->qf) && msg->ndefer > 0 && qmgr_message_expired(msg))
        qmgr_expire(msg);
    if (qfile_all_done(msg->qf))
        qmgr_remove(msg);
    else
        qmgr_defer(msg);
    qmgr_message_free(msg);
}
