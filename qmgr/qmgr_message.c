/*
 * qmgr_message.c - a message in the active queue: load it, resolve each
 * recipient that is not done yet, queue the results to destinations,
 * and decide what qmgr decides itself (bounces from routing, alias
 * expansions into a new message).  An expansion with |command or /file
 * targets becomes a "part group": one pipe-transport entry per target,
 * the recipient decided when the last one ends (qmgr_part_done).
 *
 * Trust: the queue file was validated by qfile_open(); a file that fails
 * goes to corrupt/.  Addresses come from it and from lookup tables and
 * reach log lines only as %s arguments.
 *
 * Durability order for each recipient: a delivery or a forward is made
 * first, the done mark written and synced next (qmgr_mark), the log line
 * last.  A bounce owes a DSN: the DSN is queued durably before the mark.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bounce.h"
#include "deliver_proto.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qmgr.h"

static struct qmgr_message *qmgr_messages;      /* the active list */

/* ---- logging ------------------------------------------------------ */

void qmgr_log_rcpt(const struct qmgr_message *msg, size_t index, const char *addr,
                   const char *relay, const char *dsn, const char *status, const char *text)
{
    const struct qfile_env *env = qfile_env(msg->qf);
    const char *orig = index < env->nrcpt ? env->rcpts[index].addr : addr;
    struct strbuf *line = strbuf_new(256);
    long now = qmgr_now_us();

    strbuf_printf(line, "%s: to=<%s>, ", msg->qid, addr);
    if (strcasecmp(orig, addr) != 0)
        strbuf_appendf(line, "orig_to=<%s>, ", orig);
    strbuf_appendf(line, "relay=%s, ", relay);
    deliver_format_delays(line, msg->arrival_us, msg->active_us, now, now, now);
    strbuf_appendf(line, ", dsn=%s, status=%s (%s)", dsn, status, text);
    log_info("%s", strbuf_str(line));
    strbuf_free(&line);
}

/* ---- marks -------------------------------------------------------- */

int qmgr_mark(struct qmgr_message *msg, const size_t *indexes, size_t n, int status)
{
    struct strbuf *why = strbuf_new(64);
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++)
        rc = qfile_rcpt_set(msg->qf, indexes[i], status, why);
    if (rc == 0 && n > 0)
        rc = qfile_sync(msg->qf, why);
    if (rc < 0)
        log_error("%s: cannot mark recipients done: %s", msg->qid, strbuf_str(why));
    strbuf_free(&why);
    return rc;
}

void qmgr_message_defer(struct qmgr_message *msg, size_t index, const char *addr,
                        const char *dsn, const char *text, const char *relay)
{
    struct qmgr_outcome *o;

    msg->defers = xreallocarray(msg->defers, msg->ndefer + 1, sizeof(*msg->defers));
    o = &msg->defers[msg->ndefer++];
    o->index = index;
    o->addr = xstrdup(addr);
    o->dsn = xstrdup(dsn);
    o->text = xstrdup(text);
    o->relay = xstrdup(relay != NULL ? relay : "none");
}

/* ---- bounces ------------------------------------------------------ */

bool qmgr_message_expired(const struct qmgr_message *msg)
{
    const struct qfile_env *env = qfile_env(msg->qf);
    long life = env->sender[0] == '\0' ? var_bounce_queue_lifetime : var_maximal_queue_lifetime;

    return (qmgr_now_us() - msg->arrival_us) / 1000000L >= life;
}

void qmgr_bounce(struct qmgr_message *msg, const struct qmgr_outcome *b, size_t n, int how)
{
    const struct qfile_env *env = qfile_env(msg->qf);
    struct bounce_rcpt *br = xcalloc(n ? n : 1, sizeof(*br));
    size_t *idx = xcalloc(n ? n : 1, sizeof(*idx));
    struct strbuf *to = strbuf_new(64), *from = strbuf_new(64), *why = strbuf_new(64);
    size_t nb = 0;
    bool owed;
    char qid[QID_BUFSIZE] = "";

    if (n == 0)
        goto out;
    if (var_soft_bounce) {
        for (size_t i = 0; i < n; i++) {
            qmgr_log_rcpt(msg, b[i].index, b[i].addr, b[i].relay, "4.0.0", "deferred",
                          b[i].text);
            qmgr_message_defer(msg, b[i].index, b[i].addr, "4.0.0", b[i].text, b[i].relay);
        }
        goto out;
    }
    /* Recipients whose NOTIFY admits a failure report (none given: yes). */
    for (size_t i = 0; i < n; i++) {
        unsigned notify = env->rcpts[b[i].index].notify;
        idx[i] = b[i].index;
        if (notify != 0 && !(notify & QFILE_NOTIFY_FAILURE))
            continue;
        br[nb].addr = env->rcpts[b[i].index].addr;
        br[nb].orcpt = env->rcpts[b[i].index].orcpt;
        br[nb].status = b[i].dsn;
        br[nb].diag = b[i].text;
        br[nb].remote_mta = b[i].relay;
        nb++;
    }
    owed = nb > 0 && bounce_recipient(env->sender, to, from);
    if (owed) {
        struct bounce_msg m = {
            .kind = BOUNCE_FAILED,
            .qid = msg->qid,
            .orig_sender = env->sender,
            .to = strbuf_str(to),
            .env_sender = strbuf_str(from),
            .envid = env->envid,
            .arrival = env->arrival,
            .ret = env->ret,
            .now = time(NULL),
            .hostname = var_myhostname,
            .size_limit = var_bounce_size_limit,
        };
        if (bounce_queue(".", &m, br, nb, msg->qf, qid, why) < 0) {
            /* No DSN, no bounce: try again later. */
            log_warn("%s: cannot queue a delivery status notification: %s", msg->qid,
                     strbuf_str(why));
            for (size_t i = 0; i < n; i++)
                qmgr_message_defer(msg, b[i].index, b[i].addr, "4.3.0",
                                   "cannot queue the bounce message", b[i].relay);
            goto out;
        }
        qmgr_want_scan();
    } else if (nb > 0) {
        log_info("%s: no notification for a failed double bounce (sender <%s>)", msg->qid,
                 env->sender);
    }
    if (qmgr_mark(msg, idx, n, QFILE_RCPT_BOUNCED) < 0) {
        for (size_t i = 0; i < n; i++)
            qmgr_message_defer(msg, b[i].index, b[i].addr, "4.3.0", "cannot update queue file",
                               b[i].relay);
        goto out;
    }
    for (size_t i = 0; i < n && how != QMGR_BOUNCE_LOGGED; i++)
        qmgr_log_rcpt(msg, b[i].index, b[i].addr, b[i].relay, b[i].dsn,
                      how == QMGR_BOUNCE_EXPIRED ? "expired, returned to sender" : "bounced",
                      b[i].text);
    if (owed)
        log_info("%s: sender non-delivery notification: %s", msg->qid, qid);
out:
    free(br);
    free(idx);
    strbuf_free(&to);
    strbuf_free(&from);
    strbuf_free(&why);
}

/* ---- the active list ---------------------------------------------- */

static void qmgr_message_unlink(struct qmgr_message *msg)
{
    if (msg->prev != NULL)
        msg->prev->next = msg->next;
    else
        qmgr_messages = msg->next;
    if (msg->next != NULL)
        msg->next->prev = msg->prev;
    qmgr_active_count--;
}

void qmgr_message_release(struct qmgr_message *msg)
{
    if (msg->pending > 0)
        msg->pending--;
    if (msg->pending > 0)
        return;
    qmgr_message_unlink(msg);
    qmgr_defer_finish(msg);
}

/* Move a file that fails validation out of the way. */
static void qmgr_corrupt(const char *qid, const char *path, const char *reason)
{
    char dst[QID_BUFSIZE + 16];

    snprintf(dst, sizeof(dst), "corrupt/%s", qid);
    log_warn("%s: corrupt queue file, moved to corrupt/: %s", qid, reason);
    if (rename(path, dst) < 0)
        log_warn("rename %s to %s: %m", path, dst);
}

/* ---- forwarding an expansion into a new message --------------------- */

/*
 * Recipient index expanded to several addresses: queue a new message
 * with them (same sender, content, arrival, DSN options; the original
 * recipient as ORCPT when none was given), marked as already expanded.
 * Returns 0 with the new ID in qid_r, or -1 with why.
 */
static int qmgr_forward(struct qmgr_message *msg, size_t index, const struct resolve_result *res,
                        char qid_r[QID_BUFSIZE], struct strbuf *why)
{
    const struct qfile_env *env = qfile_env(msg->qf);
    const struct qfile_rcpt *rc = &env->rcpts[index];
    struct qfile_writer *w = qfile_create(".", why);
    struct strbuf *orcpt = strbuf_new(64);
    char buf[8192];
    ssize_t got;
    int ret = -1;

    if (w == NULL)
        goto out;
    if (rc->orcpt[0] != '\0')
        strbuf_set(orcpt, rc->orcpt);
    else
        strbuf_printf(orcpt, "rfc822;%s", rc->addr);
    if (strbuf_len(orcpt) > QFILE_ORCPT_MAX)
        strbuf_reset(orcpt);
    qfile_add_time(w, &env->arrival);
    qfile_add_sender(w, env->sender);
    for (size_t i = 0; i < res->n; i++)
        if (res->t[i].kind == RESOLVE_DELIVER)
            qfile_add_rcpt(w, res->t[i].addr, strbuf_str(orcpt), rc->notify);
    if (env->ret)
        qfile_add_ret(w, env->ret);
    if (env->envid != NULL)
        qfile_add_envid(w, env->envid);
    if (env->flags)
        qfile_add_flags(w, env->flags);
    for (size_t i = 0; i < env->nattr; i++)
        if (strcmp(env->attrs[i].name, QFILE_ATTR_ORIGIN) != 0)
            qfile_add_attr(w, env->attrs[i].name, env->attrs[i].value);
    qfile_add_attr(w, QFILE_ATTR_ORIGIN, "expand");
    qfile_content_rewind(msg->qf);
    while ((got = qfile_content_read(msg->qf, buf, sizeof(buf), why)) > 0)
        qfile_add_content(w, buf, (size_t)got);
    if (got < 0)
        goto out;
    snprintf(qid_r, QID_BUFSIZE, "%s", qfile_writer_qid(w));
    ret = qfile_commit(w, why);
out:
    qfile_writer_free(&w);
    strbuf_free(&orcpt);
    return ret;
}

/*
 * The failed parts of an expansion that is otherwise forwarded (an
 * unknown virtual address, a refused |command): a DSN about them, queued
 * before the recipient is marked, then their log lines.  Returns 0, or -1
 * when the DSN could not be queued (the recipient is then retried whole).
 */
static int qmgr_fail_parts(struct qmgr_message *msg, size_t index,
                           const struct resolve_result *res)
{
    const struct qfile_env *env = qfile_env(msg->qf);
    const struct qfile_rcpt *r = &env->rcpts[index];
    struct bounce_rcpt *br = xcalloc(res->n, sizeof(*br));
    struct strbuf *to = strbuf_new(64), *from = strbuf_new(64), *why = strbuf_new(64);
    char qid[QID_BUFSIZE];
    size_t nb = 0;
    int rc = 0;

    for (size_t i = 0; i < res->n; i++) {
        const struct resolve_target *t = &res->t[i];
        if (t->kind == RESOLVE_DELIVER || t->kind == RESOLVE_DISCARD)
            continue;
        br[nb].addr = t->addr;
        br[nb].orcpt = r->orcpt[0] != '\0' ? r->orcpt : NULL;
        br[nb].status = t->dsn;
        br[nb].diag = t->text;
        nb++;
    }
    if (nb > 0 && (r->notify == 0 || (r->notify & QFILE_NOTIFY_FAILURE)) && !var_soft_bounce
        && bounce_recipient(env->sender, to, from)) {
        struct bounce_msg m = {
            .kind = BOUNCE_FAILED,
            .qid = msg->qid,
            .orig_sender = env->sender,
            .to = strbuf_str(to),
            .env_sender = strbuf_str(from),
            .envid = env->envid,
            .arrival = env->arrival,
            .ret = env->ret,
            .now = time(NULL),
            .hostname = var_myhostname,
            .size_limit = var_bounce_size_limit,
        };
        if (bounce_queue(".", &m, br, nb, msg->qf, qid, why) < 0) {
            log_warn("%s: cannot queue a delivery status notification: %s", msg->qid,
                     strbuf_str(why));
            rc = -1;
        } else {
            log_info("%s: sender non-delivery notification: %s", msg->qid, qid);
            qmgr_want_scan();
        }
    }
    for (size_t i = 0; rc == 0 && i < res->n; i++) {
        const struct resolve_target *t = &res->t[i];
        if (t->kind != RESOLVE_DELIVER && t->kind != RESOLVE_DISCARD)
            qmgr_log_rcpt(msg, index, t->addr, "none", t->dsn, "bounced", t->text);
    }
    free(br);
    strbuf_free(&to);
    strbuf_free(&from);
    strbuf_free(&why);
    return rc;
}

/* ---- expansions with |command and /file parts ---------------------- */

struct qmgr_part {
    struct qmgr_message *msg;
    size_t index;
    size_t outstanding;         /* part entries not ended yet */
    struct resolve_result res;  /* the expansion (owned) */
    size_t agent_bounces;       /* parts the agent bounced (and logged) */
    char *defer_dsn, *defer_text, *defer_relay;    /* first deferral */
};

static void qmgr_part_free(struct qmgr_part *p)
{
    resolve_result_clear(&p->res);
    free(p->defer_dsn);
    free(p->defer_text);
    free(p->defer_relay);
    free(p);
}

static void qmgr_part_outcome(struct qmgr_outcome *o, size_t index, const char *addr,
                              const char *dsn, const char *text, const char *relay)
{
    o->index = index;
    o->addr = xstrdup(addr);
    o->dsn = xstrdup(dsn);
    o->text = xstrdup(text);
    o->relay = xstrdup(relay);
}

static void qmgr_part_outcome_free(struct qmgr_outcome *o)
{
    free(o->addr);
    free(o->dsn);
    free(o->text);
    free(o->relay);
}

/* Every part has ended: decide the recipient. */
static void qmgr_part_finish(struct qmgr_part *p)
{
    struct qmgr_message *msg = p->msg;
    const char *addr = qfile_env(msg->qf)->rcpts[p->index].addr;
    size_t ndeliver = 0, nok = 0, nfailed = 0;
    const struct resolve_target *first_failed = NULL;
    struct qmgr_outcome o;
    struct strbuf *why = strbuf_new(64);
    char qid[QID_BUFSIZE];

    if (p->defer_dsn != NULL) {
        qmgr_part_outcome(&o, p->index, addr, p->defer_dsn, p->defer_text, p->defer_relay);
        if (qmgr_message_expired(msg))
            qmgr_bounce(msg, &o, 1, QMGR_BOUNCE_EXPIRED);
        else
            qmgr_message_defer(msg, p->index, addr, o.dsn, o.text, o.relay);
        qmgr_part_outcome_free(&o);
        goto out;
    }
    for (size_t i = 0; i < p->res.n; i++) {
        const struct resolve_target *t = &p->res.t[i];
        if (t->kind == RESOLVE_DELIVER)
            ndeliver++;
        else if (t->kind == RESOLVE_DISCARD)
            nok++;          /* delivered parts are turned into this */
        else if (nfailed++ == 0)
            first_failed = t;
    }
    if (ndeliver == 0 && nok == 0 && first_failed != NULL) {
        /* Nothing reached anyone: the recipient itself bounces. */
        qmgr_part_outcome(&o, p->index, addr, first_failed->dsn, first_failed->text, "none");
        qmgr_bounce(msg, &o, 1, p->agent_bounces == nfailed ? QMGR_BOUNCE_LOGGED
                                                            : QMGR_BOUNCE_LOG);
        qmgr_part_outcome_free(&o);
        goto out;
    }
    if (nfailed > 0 && qmgr_fail_parts(msg, p->index, &p->res) < 0) {
        qmgr_message_defer(msg, p->index, addr, "4.3.0", "cannot queue the bounce message",
                           "none");
        goto out;
    }
    if (ndeliver > 0 && qmgr_forward(msg, p->index, &p->res, qid, why) < 0) {
        log_warn("%s: cannot queue the expansion of <%s>: %s", msg->qid, addr, strbuf_str(why));
        qmgr_message_defer(msg, p->index, addr, "4.3.0", "cannot queue alias expansion", "none");
        goto out;
    }
    if (qmgr_mark(msg, &p->index, 1, QFILE_RCPT_SENT) < 0) {
        qmgr_message_defer(msg, p->index, addr, "4.3.0", "cannot update queue file", "none");
        goto out;
    }
    if (ndeliver > 0) {
        strbuf_printf(why, "forwarded as %s", qid);
        qmgr_log_rcpt(msg, p->index, addr, "none", "2.0.0", "sent", strbuf_str(why));
        msg->forwarded = true;
        qmgr_want_scan();
    }
out:
    strbuf_free(&why);
    qmgr_part_free(p);
}

void qmgr_part_done(struct qmgr_entry *e, int status, const char *dsn, const char *text,
                    const char *relay)
{
    struct qmgr_part *p = e->part;
    struct resolve_target *t;

    if (p == NULL || e->part_target >= p->res.n || p->outstanding == 0)
        log_panic("qmgr_part_done: entry is no part of an expansion");
    e->part = NULL;
    t = &p->res.t[e->part_target];
    if (status == DELIVER_SENT) {
        t->kind = RESOLVE_DISCARD;
    } else if (status == DELIVER_BOUNCE) {
        free(t->dsn);
        free(t->text);
        t->dsn = xstrdup(dsn);
        t->text = xstrdup(text);
        t->allowed = false;
        p->agent_bounces++;
    } else if (p->defer_dsn == NULL) {
        p->defer_dsn = xstrdup(dsn);
        p->defer_text = xstrdup(text);
        p->defer_relay = xstrdup(relay != NULL ? relay : "none");
    }
    if (--p->outstanding == 0)
        qmgr_part_finish(p);
}

/* ---- resolution --------------------------------------------------- */

/* Queued entries of this message, by destination, before scheduling. */
struct qmgr_pending {
    char *transport, *nexthop;
    struct qmgr_entry *e;
};

static char qmgr_pipe_name[] = QMGR_PIPE_SERVICE;

static struct qmgr_entry *qmgr_entry_new(struct qmgr_message *msg, size_t index,
                                         const struct resolve_target *t,
                                         struct qmgr_pending **pend, size_t *npend)
{
    struct qmgr_entry *e = xcalloc(1, sizeof(*e));
    bool special = t->kind == RESOLVE_PIPE || t->kind == RESOLVE_FILE;

    e->msg = msg;
    e->index = index;
    /* A pipe part carries the recipient itself, so logs and DSNs name it. */
    e->addr = xstrdup(special ? qfile_env(msg->qf)->rcpts[index].addr : t->addr);
    *pend = xreallocarray(*pend, *npend + 1, sizeof(**pend));
    (*pend)[*npend].transport = special ? qmgr_pipe_name : t->transport;
    (*pend)[*npend].nexthop = special ? qmgr_pipe_name : t->nexthop;
    (*pend)[*npend].e = e;
    (*npend)++;
    msg->pending++;
    msg->nentries++;
    qmgr_entry_count++;
    return e;
}

/* The expansion in res holds allowed |command or /file targets: one
 * pipe entry each, grouped; res is taken over (left empty). */
static void qmgr_part_start(struct qmgr_message *msg, size_t index, struct resolve_result *res,
                            struct qmgr_pending **pend, size_t *npend)
{
    struct qmgr_part *p = xcalloc(1, sizeof(*p));

    p->msg = msg;
    p->index = index;
    p->res = *res;
    memset(res, 0, sizeof(*res));
    for (size_t i = 0; i < p->res.n; i++) {
        const struct resolve_target *t = &p->res.t[i];
        struct qmgr_entry *e;

        if ((t->kind != RESOLVE_PIPE && t->kind != RESOLVE_FILE) || !t->allowed)
            continue;
        e = qmgr_entry_new(msg, index, t, pend, npend);
        if (t->kind == RESOLVE_PIPE) {
            e->target = xmalloc(strlen(t->addr) + 2);
            e->target[0] = '|';
            strcpy(e->target + 1, t->addr);
        } else {
            e->target = xstrdup(t->addr);
        }
        e->uid = (long)t->owner_uid;
        e->gid = (long)t->owner_gid;
        e->part = p;
        e->part_target = i;
        p->outstanding++;
    }
}

static int qmgr_pending_cmp(const void *a, const void *b)
{
    const struct qmgr_pending *x = a, *y = b;
    int c = strcmp(x->transport, y->transport);

    if (c == 0)
        c = strcmp(x->nexthop, y->nexthop);
    if (c == 0)
        c = x->e->index < y->e->index ? -1 : x->e->index > y->e->index;
    return c;
}

/*
 * Resolve recipient index; entries go to pend (with pointers into res
 * kept valid by the caller), bounces to *bounces, the rest is decided
 * here.
 */
static void qmgr_resolve_rcpt(struct qmgr_message *msg, size_t index, struct resolve_result *res,
                              struct qmgr_pending **pend, size_t *npend,
                              struct qmgr_outcome **bounces, size_t *nbounce)
{
    const struct qfile_env *env = qfile_env(msg->qf);
    const char *addr = env->rcpts[index].addr;
    struct strbuf *why = strbuf_new(64);
    size_t ndeliver = 0, nspecial_ok = 0;
    struct qmgr_outcome *o;

    if (resolve_rcpt(qmgr_resolve, addr, msg->noexpand ? RESOLVE_FL_NOEXPAND : 0, res, why) < 0) {
        qmgr_log_rcpt(msg, index, addr, "none", "4.3.0", "deferred", strbuf_str(why));
        qmgr_message_defer(msg, index, addr, "4.3.0", strbuf_str(why), "none");
        goto out;
    }
    for (size_t i = 0; i < res->n; i++) {
        if (res->t[i].kind == RESOLVE_DELIVER)
            ndeliver++;
        else if ((res->t[i].kind == RESOLVE_PIPE || res->t[i].kind == RESOLVE_FILE)
                 && res->t[i].allowed)
            nspecial_ok++;
    }
    if (nspecial_ok > 0) {
        /* The whole expansion waits for its |command and /file parts. */
        qmgr_part_start(msg, index, res, pend, npend);
        goto out;
    }
    if (res->n == 1 && res->t[0].kind == RESOLVE_DELIVER) {
        qmgr_entry_new(msg, index, &res->t[0], pend, npend);
        goto out;
    }
    /* Bounced parts (routing errors, refused pipes) of this recipient. */
    for (size_t i = 0; i < res->n; i++) {
        const struct resolve_target *t = &res->t[i];
        if (t->kind != RESOLVE_BOUNCE && t->kind != RESOLVE_PIPE && t->kind != RESOLVE_FILE)
            continue;
        if (ndeliver > 0)
            continue;       /* part of a larger expansion: see below */
        *bounces = xreallocarray(*bounces, *nbounce + 1, sizeof(**bounces));
        o = &(*bounces)[(*nbounce)++];
        o->index = index;
        o->addr = xstrdup(addr);
        o->dsn = xstrdup(t->dsn);
        o->text = xstrdup(t->text);
        o->relay = xstrdup("none");
        goto out;
    }
    if (ndeliver == 0) {
        /* Discarded, or an alias that expands to nothing. */
        const char *text = res->n > 0 && res->t[0].kind == RESOLVE_DISCARD ? res->t[0].text
                                                                           : "alias expanded to no address";
        if (qmgr_mark(msg, &index, 1, QFILE_RCPT_SENT) == 0)
            qmgr_log_rcpt(msg, index, addr, "none", "2.0.0", "sent", text);
        else
            qmgr_message_defer(msg, index, addr, "4.3.0", "cannot update queue file", "none");
        goto out;
    }
    {
        char qid[QID_BUFSIZE];
        struct strbuf *text = strbuf_new(64);

        /* The notice about failed parts first: if the forward then fails,
         * a retry repeats a notice, never a forwarded message. */
        if (qmgr_fail_parts(msg, index, res) < 0) {
            qmgr_message_defer(msg, index, addr, "4.3.0", "cannot queue the bounce message",
                               "none");
        } else if (qmgr_forward(msg, index, res, qid, why) < 0) {
            log_warn("%s: cannot queue the expansion of <%s>: %s", msg->qid, addr,
                     strbuf_str(why));
            qmgr_message_defer(msg, index, addr, "4.3.0", "cannot queue alias expansion", "none");
        } else if (qmgr_mark(msg, &index, 1, QFILE_RCPT_SENT) == 0) {
            strbuf_printf(text, "forwarded as %s", qid);
            qmgr_log_rcpt(msg, index, addr, "none", "2.0.0", "sent", strbuf_str(text));
            msg->forwarded = true;
        } else {
            qmgr_message_defer(msg, index, addr, "4.3.0", "cannot update queue file", "none");
        }
        strbuf_free(&text);
    }
out:
    strbuf_free(&why);
}

void qmgr_message_load(const char *qid)
{
    struct strbuf *why = strbuf_new(64), *sender = strbuf_new(64);
    struct qmgr_message *msg;
    const struct qfile_env *env;
    struct resolve_result *res;
    struct qmgr_pending *pend = NULL;
    struct qmgr_outcome *bounces = NULL;
    size_t npend = 0, nbounce = 0, nopen = 0;
    const char *origin;
    bool corrupt = false;
    struct qfile *qf;
    char path[QID_BUFSIZE + 8];

    snprintf(path, sizeof(path), "active/%s", qid);
    if ((qf = qfile_open(path, QFILE_OPEN_RDWR, &corrupt, why)) == NULL) {
        if (corrupt)
            qmgr_corrupt(qid, path, strbuf_str(why));
        else if (errno != ENOENT)
            log_warn("%s: %s", qid, strbuf_str(why));
        goto done;
    }
    env = qfile_env(qf);
    msg = xcalloc(1, sizeof(*msg));
    snprintf(msg->qid, sizeof(msg->qid), "%s", qid);
    snprintf(msg->path, sizeof(msg->path), "%s", path);
    msg->qf = qf;
    msg->arrival_us = (long)env->arrival.tv_sec * 1000000L + env->arrival.tv_usec;
    msg->active_us = qmgr_now_us();
    origin = qfile_attr(qf, QFILE_ATTR_ORIGIN);
    msg->noexpand = origin != NULL && strcmp(origin, "expand") == 0;
    if (resolve_sender(qmgr_resolve, env->sender, sender, why) < 0) {
        log_warn("%s: sender rewriting failed, sender kept: %s", qid, strbuf_str(why));
        strbuf_set(sender, env->sender);
    }
    msg->sender = xstrdup(strbuf_str(sender));
    msg->next = qmgr_messages;
    if (qmgr_messages != NULL)
        qmgr_messages->prev = msg;
    qmgr_messages = msg;
    qmgr_active_count++;
    for (size_t i = 0; i < env->nrcpt; i++)
        nopen += env->rcpts[i].status == QFILE_RCPT_OPEN;
    log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", qid, msg->sender,
             (unsigned long long)env->content_size, env->nrcpt);

    /* One extra hold on the message while its recipients are resolved,
     * so decisions made here cannot finish it under our feet. */
    msg->pending = 1;
    res = xcalloc(nopen ? nopen : 1, sizeof(*res));
    for (size_t i = 0, k = 0; i < env->nrcpt; i++) {
        if (env->rcpts[i].status != QFILE_RCPT_OPEN)
            continue;
        qmgr_resolve_rcpt(msg, i, &res[k++], &pend, &npend, &bounces, &nbounce);
    }
    qmgr_bounce(msg, bounces, nbounce, QMGR_BOUNCE_LOG);
    for (size_t i = 0; i < nbounce; i++) {
        free(bounces[i].addr);
        free(bounces[i].dsn);
        free(bounces[i].text);
        free(bounces[i].relay);
    }
    free(bounces);
    /* Same destination entries next to each other, so one request can
     * carry them all. */
    if (npend > 1)
        qsort(pend, npend, sizeof(*pend), qmgr_pending_cmp);
    for (size_t i = 0; i < npend; i++)
        qmgr_sched_enqueue(pend[i].transport, pend[i].nexthop, pend[i].e);
    free(pend);
    for (size_t i = 0; i < nopen; i++)
        resolve_result_clear(&res[i]);
    free(res);
    if (msg->forwarded)
        qmgr_want_scan();
    qmgr_message_release(msg);
done:
    strbuf_free(&why);
    strbuf_free(&sender);
}
