/*
 * qmgr_deliver.c - one delivery request to a delivery agent, driven by
 * the event loop (lib/deliver_proto.h, contract 5).
 *
 * Connects to private/<transport> without blocking, writes the request,
 * reads the reply with a deadline (qmgr_daemon_timeout), then applies it
 * in the durable order: recipients the agent delivered are marked done
 * in the queue file and synced first of all; then DSNs owed (success
 * reports, bounces: each queued durably before its recipients are
 * marked); then deferrals (or, past the queue lifetime, expiry bounces).
 * An agent that cannot be reached, breaks the protocol or times out
 * leaves every recipient of the request deferred (lmtpd's keyed delivery
 * makes a repeat after a lost reply harmless on facteur's own path).
 *
 * Trust: the reply comes from another facteur process; deliver_reply_
 * parse checks it strictly and attr_parse bounds what is buffered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "bounce.h"
#include "deliver_proto.h"
#include "events.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qmgr.h"

#define QMGR_CONNECT_RETRY_MS 100

struct qmgr_delivery {
    struct qmgr_dest *d;
    struct qmgr_entry **e;
    size_t n;
    struct qmgr_message *msg;
    int fd;
    char sock[128];
    struct strbuf *out;
    size_t out_off;
    struct strbuf *in;
    struct timer *timer;        /* deadline */
    struct timer *retry;        /* connect retry while the agent's backlog is full */
    long start_us;
};

void qmgr_entry_free(struct qmgr_entry *e)
{
    /* A part that ends without an outcome (none of the paths below
     * should let one) leaves its recipient deferred, never decided. */
    if (e->part != NULL)
        qmgr_part_done(e, DELIVER_DEFER, "4.3.0", "delivery status unknown", "none");
    free(e->target);
    free(e->addr);
    free(e);
    qmgr_entry_count--;
}

static void qmgr_delivery_free(struct qmgr_delivery *dl)
{
    if (dl->fd >= 0) {
        event_disable(dl->fd);
        close(dl->fd);
    }
    timer_cancel(&dl->timer);
    timer_cancel(&dl->retry);
    for (size_t i = 0; i < dl->n; i++)
        qmgr_entry_free(dl->e[i]);
    free(dl->e);
    strbuf_free(&dl->out);
    strbuf_free(&dl->in);
    free(dl);
}

/* The end of a delivery: feedback, entries released, message maybe done. */
static void qmgr_delivery_end(struct qmgr_delivery *dl, bool throttle, bool success,
                              const char *reason)
{
    struct qmgr_message *msg = dl->msg;
    size_t n = dl->n;

    qmgr_sched_done(dl->d, throttle, success, reason);
    qmgr_delivery_free(dl);
    for (size_t i = 0; i < n; i++)
        qmgr_message_release(msg);
}

/* Deferrals (or expiry bounces) for a list of outcomes. */
static void qmgr_apply_defers(struct qmgr_message *msg, struct qmgr_outcome *o, size_t n)
{
    if (n == 0)
        return;
    if (qmgr_message_expired(msg)) {
        qmgr_bounce(msg, o, n, QMGR_BOUNCE_EXPIRED);
        return;
    }
    for (size_t i = 0; i < n; i++)
        qmgr_message_defer(msg, o[i].index, o[i].addr, o[i].dsn, o[i].text, o[i].relay);
}

static void qmgr_outcomes_free(struct qmgr_outcome *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(o[i].addr);
        free(o[i].dsn);
        free(o[i].text);
        free(o[i].relay);
    }
    free(o);
}

/* Every recipient of the request deferred for one reason (qmgr logs). */
static void qmgr_delivery_fail(struct qmgr_delivery *dl, const char *dsn, const char *reason)
{
    struct qmgr_outcome *o = xcalloc(dl->n, sizeof(*o));
    size_t no = 0;

    for (size_t i = 0; i < dl->n; i++) {
        qmgr_log_rcpt(dl->msg, dl->e[i]->index, dl->e[i]->addr, "none", dsn, "deferred", reason);
        if (dl->e[i]->part != NULL) {
            qmgr_part_done(dl->e[i], DELIVER_DEFER, dsn, reason, "none");
            continue;
        }
        o[no].index = dl->e[i]->index;
        o[no].addr = xstrdup(dl->e[i]->addr);
        o[no].dsn = xstrdup(dsn);
        o[no].text = xstrdup(reason);
        o[no].relay = xstrdup("none");
        no++;
    }
    qmgr_apply_defers(dl->msg, o, no);
    qmgr_outcomes_free(o, no);
    qmgr_delivery_end(dl, false, false, reason);
}

/* Success reports for delivered recipients that asked for one. */
static void qmgr_success_dsn(struct qmgr_message *msg, const struct deliver_reply *rep,
                             struct qmgr_entry **e)
{
    const struct qfile_env *env = qfile_env(msg->qf);
    struct bounce_rcpt *br = xcalloc(rep->nrcpt, sizeof(*br));
    struct strbuf *why = strbuf_new(64);
    size_t nb = 0;
    char qid[QID_BUFSIZE];

    for (size_t i = 0; i < rep->nrcpt; i++) {
        const struct qfile_rcpt *r = &env->rcpts[e[i]->index];
        if (rep->st[i].status != DELIVER_SENT || !(r->notify & QFILE_NOTIFY_SUCCESS)
            || e[i]->target != NULL)
            continue;
        br[nb].addr = r->addr;
        br[nb].orcpt = r->orcpt;
        br[nb].status = rep->st[i].dsn;
        br[nb].diag = rep->st[i].reply;
        br[nb].remote_mta = rep->relay;
        nb++;
    }
    if (nb > 0 && env->sender[0] != '\0') {
        struct bounce_msg m = {
            .kind = BOUNCE_SUCCESS,
            .qid = msg->qid,
            .orig_sender = env->sender,
            .to = env->sender,
            .env_sender = "",
            .envid = env->envid,
            .arrival = env->arrival,
            .ret = 'H',
            .now = time(NULL),
            .hostname = var_myhostname,
            .size_limit = var_bounce_size_limit,
        };
        if (bounce_queue(".", &m, br, nb, msg->qf, qid, why) < 0) {
            log_warn("%s: cannot queue a success notification: %s", msg->qid, strbuf_str(why));
        } else {
            log_info("%s: sender delivery status notification: %s", msg->qid, qid);
            qmgr_want_scan();
        }
    }
    free(br);
    strbuf_free(&why);
}

static void qmgr_delivery_reply(struct qmgr_delivery *dl, const struct attr_list *l)
{
    struct strbuf *why = strbuf_new(64);
    struct deliver_reply rep = { 0 };
    struct qmgr_outcome *bounces, *defers;
    size_t *sent, nsent = 0, nbounce = 0, ndefer = 0;
    const char *reason = NULL;
    bool throttle;

    if (deliver_reply_parse(l, dl->n, &rep, why) < 0) {
        log_warn("%s: malformed reply from delivery agent %s: %s", dl->msg->qid, dl->sock,
                 strbuf_str(why));
        strbuf_free(&why);
        qmgr_delivery_fail(dl, "4.3.0", "delivery agent protocol error");
        return;
    }
    sent = xcalloc(dl->n, sizeof(*sent));
    bounces = xcalloc(dl->n, sizeof(*bounces));
    defers = xcalloc(dl->n, sizeof(*defers));
    for (size_t i = 0; i < dl->n; i++) {
        struct qmgr_outcome *o;

        if (dl->e[i]->part != NULL) {
            /* One part of an expansion: decided with the others. */
            qmgr_part_done(dl->e[i], rep.st[i].status, rep.st[i].dsn, rep.st[i].reply,
                           rep.relay);
            if (reason == NULL && rep.st[i].status == DELIVER_DEFER)
                reason = "delivery to command or file deferred";
            continue;
        }
        if (rep.st[i].status == DELIVER_SENT) {
            sent[nsent++] = dl->e[i]->index;
            continue;
        }
        o = rep.st[i].status == DELIVER_BOUNCE ? &bounces[nbounce++] : &defers[ndefer++];
        o->index = dl->e[i]->index;
        o->addr = xstrdup(dl->e[i]->addr);
        o->dsn = xstrdup(rep.st[i].dsn);
        o->text = xstrdup(rep.st[i].reply);
        o->relay = xstrdup(rep.relay);
        if (reason == NULL && rep.st[i].status == DELIVER_DEFER)
            reason = defers[ndefer - 1].text;
    }
    /* Delivered recipients are marked before anything else. */
    if (nsent > 0 && qmgr_mark(dl->msg, sent, nsent, QFILE_RCPT_SENT) < 0)
        log_error("%s: %zu delivered recipient%s not marked done: they may be delivered again",
                  dl->msg->qid, nsent, nsent == 1 ? "" : "s");
    else if (nsent > 0)
        qmgr_success_dsn(dl->msg, &rep, dl->e);
    qmgr_bounce(dl->msg, bounces, nbounce, QMGR_BOUNCE_LOGGED);
    qmgr_apply_defers(dl->msg, defers, ndefer);
    throttle = rep.throttle;
    {
        char *r = xstrdup(reason != NULL ? reason : "delivery failed");
        qmgr_outcomes_free(bounces, nbounce);
        qmgr_outcomes_free(defers, ndefer);
        free(sent);
        deliver_reply_clear(&rep);
        strbuf_free(&why);
        qmgr_delivery_end(dl, throttle, !throttle, r);
        free(r);
    }
}

static void qmgr_delivery_timeout(void *ctx)
{
    struct qmgr_delivery *dl = ctx;

    dl->timer = NULL;
    log_warn("%s: delivery agent %s: no reply in %lds", dl->msg->qid, dl->sock,
             var_qmgr_daemon_timeout);
    qmgr_delivery_fail(dl, "4.4.2", "delivery agent timed out");
}

static void qmgr_delivery_read(int fd, int events, void *ctx)
{
    struct qmgr_delivery *dl = ctx;
    struct attr_list *l;
    struct strbuf *why;
    char buf[8192];
    ssize_t got;
    size_t used;
    int rc;

    (void)events;
    got = read(fd, buf, sizeof(buf));
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (got <= 0) {
        log_warn("%s: delivery agent %s closed the connection without a reply%s%s",
                 dl->msg->qid, dl->sock, got < 0 ? ": " : "", got < 0 ? strerror(errno) : "");
        qmgr_delivery_fail(dl, "4.3.0", "delivery agent ended without a reply");
        return;
    }
    if (strbuf_len(dl->in) + (size_t)got > deliver_limits.max_message) {
        log_warn("%s: delivery agent %s: reply too long", dl->msg->qid, dl->sock);
        qmgr_delivery_fail(dl, "4.3.0", "delivery agent protocol error");
        return;
    }
    strbuf_appendn(dl->in, buf, (size_t)got);
    l = attr_new();
    why = strbuf_new(64);
    rc = attr_parse(strbuf_str(dl->in), strbuf_len(dl->in), l, NULL, &deliver_limits, &used, why);
    if (rc < 0) {
        log_warn("%s: delivery agent %s: %s", dl->msg->qid, dl->sock, strbuf_str(why));
        qmgr_delivery_fail(dl, "4.3.0", "delivery agent protocol error");
    } else if (rc == 1) {
        event_disable(dl->fd);
        qmgr_delivery_reply(dl, l);
    }
    attr_free(&l);
    strbuf_free(&why);
}

static void qmgr_delivery_write(int fd, int events, void *ctx)
{
    struct qmgr_delivery *dl = ctx;
    ssize_t put;

    (void)events;
    put = send(fd, strbuf_str(dl->out) + dl->out_off, strbuf_len(dl->out) - dl->out_off,
               MSG_NOSIGNAL);
    if (put < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (put < 0) {
        log_warn("%s: delivery agent %s: write: %m", dl->msg->qid, dl->sock);
        qmgr_delivery_fail(dl, "4.3.0", "delivery agent unavailable");
        return;
    }
    dl->out_off += (size_t)put;
    if (dl->out_off == strbuf_len(dl->out)) {
        event_disable_write(fd);
        event_read(fd, qmgr_delivery_read, dl);
    }
}

static void qmgr_delivery_connect(void *ctx)
{
    struct qmgr_delivery *dl = ctx;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };

    dl->retry = NULL;
    if ((dl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        log_warn("socket: %m");
        qmgr_delivery_fail(dl, "4.3.0", "mail transport unavailable");
        return;
    }
    if (strlen(dl->sock) >= sizeof(sun.sun_path)) {
        log_warn("%s: socket path too long: %s", dl->msg->qid, dl->sock);
        close(dl->fd);
        dl->fd = -1;
        qmgr_delivery_fail(dl, "4.3.5", "mail transport unavailable");
        return;
    }
    memcpy(sun.sun_path, dl->sock, strlen(dl->sock) + 1);
    if (connect(dl->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int err = errno;
        close(dl->fd);
        dl->fd = -1;
        if (err == EAGAIN) {
            /* The agents are all busy and the backlog is full: wait. */
            dl->retry = timer_add(QMGR_CONNECT_RETRY_MS, qmgr_delivery_connect, dl);
            return;
        }
        log_warn("%s: connect to delivery agent %s: %s", dl->msg->qid, dl->sock, strerror(err));
        qmgr_delivery_fail(dl, "4.3.0", "mail transport unavailable");
        return;
    }
    event_write(dl->fd, qmgr_delivery_write, dl);
}

void qmgr_deliver_start(struct qmgr_dest *d, struct qmgr_entry **entries, size_t n)
{
    struct qmgr_delivery *dl = xcalloc(1, sizeof(*dl));
    struct deliver_request req;
    struct attr_list *l = attr_new();
    const struct qfile_env *env;

    dl->d = d;
    dl->n = n;
    dl->e = xcalloc(n, sizeof(*dl->e));
    memcpy(dl->e, entries, n * sizeof(*dl->e));
    dl->msg = entries[0]->msg;
    dl->fd = -1;
    dl->in = strbuf_new(256);
    dl->out = strbuf_new(512);
    dl->start_us = qmgr_now_us();
    snprintf(dl->sock, sizeof(dl->sock), "private/%s", qmgr_dest_transport(d));
    env = qfile_env(dl->msg->qf);

    deliver_request_init(&req);
    req.path = xstrdup(dl->msg->path);
    req.qid = xstrdup(dl->msg->qid);
    req.nexthop = xstrdup(qmgr_dest_nexthop(d));
    req.transport = xstrdup(qmgr_dest_transport(d));
    req.sender = xstrdup(dl->msg->sender);
    req.arrival_us = dl->msg->arrival_us;
    req.active_us = dl->msg->active_us;
    /* The agent writes each done mark the moment the recipient is
     * delivered (our mark and sync follow from the reply): a kill of the
     * agent or of qmgr between the remote 250 and our mark must not send
     * it again.  Only sound when each entry is the whole of its queue
     * file recipient: the |command and /file parts of an expansion share
     * one, decided when all of them have ended. */
    req.mark_sent = true;
    for (size_t i = 0; i < n; i++) {
        const struct qfile_rcpt *r = &env->rcpts[entries[i]->index];
        if (entries[i]->part != NULL)
            req.mark_sent = false;
        deliver_request_add_rcpt(&req, entries[i]->addr, (long)entries[i]->index, r->orcpt,
                                 r->notify);
        if (entries[i]->target != NULL)
            deliver_request_set_target(&req, i, entries[i]->target, entries[i]->uid,
                                       entries[i]->gid);
    }
    deliver_request_format(&req, l);
    attr_format(l, dl->out);
    attr_free(&l);
    deliver_request_clear(&req);
    dl->timer = timer_add(var_qmgr_daemon_timeout * 1000L, qmgr_delivery_timeout, dl);
    if (strchr(qmgr_dest_transport(d), '/') != NULL || qmgr_dest_transport(d)[0] == '.'
        || qmgr_dest_transport(d)[0] == '\0') {
        log_warn("%s: invalid transport name \"%s\"", dl->msg->qid, qmgr_dest_transport(d));
        qmgr_delivery_fail(dl, "4.3.5", "invalid transport name in the configuration");
        return;
    }
    qmgr_delivery_connect(dl);
}
