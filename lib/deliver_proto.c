/*
 * deliver_proto.c - build and check qmgr <-> delivery agent messages
 * (contract in deliver_proto.h).
 *
 * Used by qmgr (format requests, parse replies) and by the delivery
 * agents smtp and lmtp (parse requests, format replies).  Both directions
 * come from another facteur process that may be buggy or compromised, so
 * every parse is strict: the exact set of attribute names for the count
 * given, types, ranges, and no control character in anything that reaches
 * a log line.  Building a message from our own data panics on a bad value
 * (a bug in the caller).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "deliver_proto.h"
#include "log.h"
#include "mem.h"
#include "qfile.h"
#include "qid.h"

const struct attr_limits deliver_limits = {
    .max_attrs = 16 + 7 * DELIVER_RCPT_MAX,
    .max_name = 64,
    .max_value = QFILE_ADDR_MAX + QFILE_ORCPT_MAX + DELIVER_TEXT_MAX + DELIVER_TARGET_MAX,
    .max_message = 16 * 1024 * 1024,
};

/* ------------------------------------------------------------------ */

static bool deliver_text_ok(const char *s, size_t max)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c == 0x7f || n >= max)
            return false;
    }
    return true;
}

/* Skip 1 to 3 digits at s[*i]; false if there are none or more. */
static bool deliver_digits(const char *s, size_t *i)
{
    size_t start = *i;

    while (s[*i] >= '0' && s[*i] <= '9') {
        if (*i - start == 3)
            return false;
        (*i)++;
    }
    return *i > start;
}

bool deliver_dsn_valid(const char *s)
{
    size_t i = 2;

    if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    if (!deliver_digits(s, &i) || s[i] != '.')
        return false;
    i++;
    return deliver_digits(s, &i) && s[i] == '\0';
}

const char *deliver_status_name(int status)
{
    switch (status) {
    case DELIVER_SENT:
        return "sent";
    case DELIVER_DEFER:
        return "deferred";
    case DELIVER_BOUNCE:
        return "bounced";
    default:
        return "unknown";
    }
}

/* Postfix's delay precision: two significant digits below ten seconds
 * (trailing zeros dropped), whole seconds from there, "0" under a
 * hundredth. */
static void deliver_fmt_secs(struct strbuf *out, long us)
{
    long hund = us / 10000;     /* hundredths */

    if (us < 10000) {
        strbuf_append(out, "0");
    } else if (us < 100000) {
        strbuf_appendf(out, "0.0%ld", hund);
    } else if (us < 1000000) {
        if (hund % 10 == 0)
            strbuf_appendf(out, "0.%ld", hund / 10);
        else
            strbuf_appendf(out, "0.%02ld", hund);
    } else if (us < 10000000) {
        long tenths = us / 100000;
        if (tenths % 10 == 0)
            strbuf_appendf(out, "%ld", tenths / 10);
        else
            strbuf_appendf(out, "%ld.%ld", tenths / 10, tenths % 10);
    } else {
        strbuf_appendf(out, "%ld", us / 1000000);
    }
}

void deliver_format_delays(struct strbuf *out, long arrival_us, long active_us, long start_us,
                           long conn_us, long now_us)
{
    strbuf_append(out, "delay=");
    deliver_fmt_secs(out, now_us - arrival_us);
    strbuf_append(out, ", delays=");
    deliver_fmt_secs(out, active_us - arrival_us);
    strbuf_append(out, "/");
    deliver_fmt_secs(out, start_us - active_us);
    strbuf_append(out, "/");
    deliver_fmt_secs(out, conn_us - start_us);
    strbuf_append(out, "/");
    deliver_fmt_secs(out, now_us - conn_us);
}

/* ---- request ---------------------------------------------------- */

void deliver_request_init(struct deliver_request *req)
{
    memset(req, 0, sizeof(*req));
}

void deliver_request_clear(struct deliver_request *req)
{
    free(req->path);
    free(req->qid);
    free(req->nexthop);
    free(req->transport);
    free(req->sender);
    for (size_t i = 0; i < req->nrcpt; i++) {
        free(req->rcpts[i].addr);
        free(req->rcpts[i].orcpt);
        free(req->rcpts[i].target);
    }
    free(req->rcpts);
    deliver_request_init(req);
}

void deliver_request_add_rcpt(struct deliver_request *req, const char *addr, long index,
                              const char *orcpt, unsigned notify)
{
    struct deliver_rcpt *r;

    req->rcpts = xreallocarray(req->rcpts, req->nrcpt + 1, sizeof(*req->rcpts));
    r = &req->rcpts[req->nrcpt++];
    r->addr = xstrdup(addr);
    r->index = index;
    r->orcpt = xstrdup(orcpt != NULL ? orcpt : "");
    r->notify = notify;
    r->target = NULL;
    r->uid = r->gid = -1;
}

static bool deliver_target_ok(const char *t)
{
    return (t[0] == '|' || t[0] == '/') && t[1] != '\0'
           && deliver_text_ok(t, DELIVER_TARGET_MAX);
}

void deliver_request_set_target(struct deliver_request *req, size_t i, const char *target,
                                long uid, long gid)
{
    if (i >= req->nrcpt || !deliver_target_ok(target) || uid < 1 || uid > DELIVER_ID_MAX
        || gid < 0 || gid > DELIVER_ID_MAX)
        log_panic("deliver_request_set_target: bad target for recipient %zu", i);
    free(req->rcpts[i].target);
    req->rcpts[i].target = xstrdup(target);
    req->rcpts[i].uid = uid;
    req->rcpts[i].gid = gid;
}

void deliver_request_format(const struct deliver_request *req, struct attr_list *out)
{
    char name[48];

    if (req->nrcpt == 0 || req->nrcpt > DELIVER_RCPT_MAX || req->path == NULL
        || req->qid == NULL || req->nexthop == NULL || req->transport == NULL
        || req->sender == NULL)
        log_panic("deliver_request_format: incomplete request");
    attr_reset(out);
    attr_add_str(out, "path", req->path);
    attr_add_str(out, "qid", req->qid);
    attr_add_str(out, "nexthop", req->nexthop);
    attr_add_str(out, "transport", req->transport);
    attr_add_str(out, "sender", req->sender);
    attr_add_long(out, "arrival_us", req->arrival_us);
    attr_add_long(out, "active_us", req->active_us);
    attr_add_long(out, "nrcpt", (long)req->nrcpt);
    if (req->mark_sent)
        attr_add_long(out, "mark_sent", 1);
    for (size_t i = 0; i < req->nrcpt; i++) {
        snprintf(name, sizeof(name), "rcpt_%zu", i);
        attr_add_str(out, name, req->rcpts[i].addr);
        snprintf(name, sizeof(name), "rcpt_%zu_index", i);
        attr_add_long(out, name, req->rcpts[i].index);
        snprintf(name, sizeof(name), "rcpt_%zu_orcpt", i);
        attr_add_str(out, name, req->rcpts[i].orcpt);
        snprintf(name, sizeof(name), "rcpt_%zu_notify", i);
        attr_add_long(out, name, (long)req->rcpts[i].notify);
        if (req->rcpts[i].target != NULL) {
            snprintf(name, sizeof(name), "rcpt_%zu_target", i);
            attr_add_str(out, name, req->rcpts[i].target);
            snprintf(name, sizeof(name), "rcpt_%zu_uid", i);
            attr_add_long(out, name, req->rcpts[i].uid);
            snprintf(name, sizeof(name), "rcpt_%zu_gid", i);
            attr_add_long(out, name, req->rcpts[i].gid);
        }
    }
}

/* A required string attribute, checked for length and control bytes. */
static const char *deliver_get_str(const struct attr_list *l, const char *name, size_t max,
                                   bool may_be_empty, struct strbuf *why)
{
    const char *v = attr_get_str(l, name);

    if (v == NULL) {
        strbuf_printf(why, "missing or non-string attribute \"%s\"", name);
        return NULL;
    }
    if (!may_be_empty && v[0] == '\0') {
        strbuf_printf(why, "empty attribute \"%s\"", name);
        return NULL;
    }
    if (!deliver_text_ok(v, max)) {
        strbuf_printf(why, "attribute \"%s\" too long or with a control character", name);
        return NULL;
    }
    return v;
}

static int deliver_get_long(const struct attr_list *l, const char *name, long min, long max,
                            long *v_r, struct strbuf *why)
{
    if (attr_get_long(l, name, v_r) < 0) {
        strbuf_printf(why, "missing or non-numeric attribute \"%s\"", name);
        return -1;
    }
    if (*v_r < min || *v_r > max) {
        strbuf_printf(why, "attribute \"%s\" out of range: %ld", name, *v_r);
        return -1;
    }
    return 0;
}

int deliver_request_parse(const struct attr_list *l, struct deliver_request *req,
                          struct strbuf *why)
{
    const char *path, *qid, *nexthop, *transport, *sender;
    long arrival, active, nrcpt, mark_sent = 0;
    size_t ntarget = 0;
    char name[48];

    deliver_request_clear(req);
    if ((path = deliver_get_str(l, "path", 64, false, why)) == NULL
        || (qid = deliver_get_str(l, "qid", QID_LEN_MAX, false, why)) == NULL
        || (nexthop = deliver_get_str(l, "nexthop", DELIVER_TEXT_MAX, false, why)) == NULL
        || (transport = deliver_get_str(l, "transport", 64, false, why)) == NULL
        || (sender = deliver_get_str(l, "sender", QFILE_ADDR_MAX, true, why)) == NULL)
        return -1;
    if (!qid_valid(qid)) {
        strbuf_printf(why, "invalid queue ID \"%s\"", qid);
        return -1;
    }
    if (strncmp(path, "active/", 7) != 0 || strcmp(path + 7, qid) != 0) {
        strbuf_printf(why, "path \"%s\" is not active/%s", path, qid);
        return -1;
    }
    if (strchr(transport, '/') != NULL || transport[0] == '.') {
        strbuf_printf(why, "invalid transport name \"%s\"", transport);
        return -1;
    }
    if (deliver_get_long(l, "arrival_us", 0, LONG_MAX, &arrival, why) < 0
        || deliver_get_long(l, "active_us", 0, LONG_MAX, &active, why) < 0
        || deliver_get_long(l, "nrcpt", 1, DELIVER_RCPT_MAX, &nrcpt, why) < 0)
        return -1;
    if (attr_has(l, "mark_sent") && deliver_get_long(l, "mark_sent", 0, 1, &mark_sent, why) < 0)
        return -1;
    req->path = xstrdup(path);
    req->qid = xstrdup(qid);
    req->nexthop = xstrdup(nexthop);
    req->transport = xstrdup(transport);
    req->sender = xstrdup(sender);
    req->arrival_us = arrival;
    req->active_us = active;
    req->mark_sent = mark_sent != 0;
    for (long i = 0; i < nrcpt; i++) {
        const char *addr, *orcpt;
        long index, notify;

        snprintf(name, sizeof(name), "rcpt_%ld", i);
        if ((addr = deliver_get_str(l, name, QFILE_ADDR_MAX, false, why)) == NULL)
            goto fail;
        snprintf(name, sizeof(name), "rcpt_%ld_index", i);
        if (deliver_get_long(l, name, 0, QFILE_RCPT_MAX - 1, &index, why) < 0)
            goto fail;
        snprintf(name, sizeof(name), "rcpt_%ld_orcpt", i);
        if ((orcpt = deliver_get_str(l, name, QFILE_ORCPT_MAX, true, why)) == NULL)
            goto fail;
        snprintf(name, sizeof(name), "rcpt_%ld_notify", i);
        if (deliver_get_long(l, name, 0, QFILE_NOTIFY_MASK, &notify, why) < 0)
            goto fail;
        deliver_request_add_rcpt(req, addr, index, orcpt, (unsigned)notify);
        snprintf(name, sizeof(name), "rcpt_%ld_target", i);
        if (attr_get_str(l, name) != NULL) {
            const char *target = deliver_get_str(l, name, DELIVER_TARGET_MAX, false, why);
            long uid, gid;

            if (target == NULL)
                goto fail;
            if (!deliver_target_ok(target)) {
                strbuf_printf(why, "attribute \"%s\" is neither |command nor /file", name);
                goto fail;
            }
            snprintf(name, sizeof(name), "rcpt_%ld_uid", i);
            if (deliver_get_long(l, name, 1, DELIVER_ID_MAX, &uid, why) < 0)
                goto fail;
            snprintf(name, sizeof(name), "rcpt_%ld_gid", i);
            if (deliver_get_long(l, name, 0, DELIVER_ID_MAX, &gid, why) < 0)
                goto fail;
            deliver_request_set_target(req, (size_t)i, target, uid, gid);
            ntarget++;
        }
    }
    /* Every expected name was found; the count rules out any other (a
     * stray rcpt_<i>_uid without its target included). */
    if (attr_count(l) != 8 + 4 * (size_t)nrcpt + 3 * ntarget + attr_has(l, "mark_sent")) {
        strbuf_printf(why, "%zu attributes for %ld recipients", attr_count(l), nrcpt);
        goto fail;
    }
    return 0;

fail:
    deliver_request_clear(req);
    return -1;
}

/* ---- reply ------------------------------------------------------ */

void deliver_reply_init(struct deliver_reply *rep, size_t nrcpt)
{
    if (nrcpt > DELIVER_RCPT_MAX)
        log_panic("deliver_reply_init: %zu recipients", nrcpt);
    rep->relay = xstrdup("none");
    rep->throttle = false;
    rep->nrcpt = nrcpt;
    rep->st = xcalloc(nrcpt ? nrcpt : 1, sizeof(*rep->st));
    for (size_t i = 0; i < nrcpt; i++) {
        rep->st[i].status = DELIVER_DEFER;
        rep->st[i].dsn = xstrdup("4.3.0");
        rep->st[i].reply = xstrdup("delivery status unknown");
    }
}

void deliver_reply_clear(struct deliver_reply *rep)
{
    if (rep->st != NULL)
        for (size_t i = 0; i < rep->nrcpt; i++) {
            free(rep->st[i].dsn);
            free(rep->st[i].reply);
        }
    free(rep->st);
    free(rep->relay);
    memset(rep, 0, sizeof(*rep));
}

void deliver_reply_set(struct deliver_reply *rep, size_t i, int status, const char *dsn,
                       const char *reply)
{
    if (i >= rep->nrcpt)
        log_panic("deliver_reply_set: index %zu of %zu", i, rep->nrcpt);
    if (status != DELIVER_SENT && status != DELIVER_DEFER && status != DELIVER_BOUNCE)
        log_panic("deliver_reply_set: bad status %d", status);
    free(rep->st[i].dsn);
    free(rep->st[i].reply);
    rep->st[i].status = status;
    rep->st[i].dsn = xstrdup(dsn);
    rep->st[i].reply = xstrdup(reply);
}

void deliver_reply_set_relay(struct deliver_reply *rep, const char *relay)
{
    free(rep->relay);
    rep->relay = xstrdup(relay);
}

void deliver_reply_format(const struct deliver_reply *rep, struct attr_list *out)
{
    char name[48];

    attr_reset(out);
    attr_add_str(out, "relay", rep->relay);
    attr_add_long(out, "throttle", rep->throttle ? 1 : 0);
    attr_add_long(out, "nrcpt", (long)rep->nrcpt);
    for (size_t i = 0; i < rep->nrcpt; i++) {
        snprintf(name, sizeof(name), "status_%zu", i);
        attr_add_long(out, name, rep->st[i].status);
        snprintf(name, sizeof(name), "dsn_%zu", i);
        attr_add_str(out, name, rep->st[i].dsn);
        snprintf(name, sizeof(name), "reply_%zu", i);
        attr_add_str(out, name, rep->st[i].reply);
    }
}

int deliver_reply_parse(const struct attr_list *l, size_t expect_nrcpt,
                        struct deliver_reply *rep, struct strbuf *why)
{
    const char *relay;
    long throttle, nrcpt;
    char name[48];

    deliver_reply_clear(rep);
    if ((relay = deliver_get_str(l, "relay", DELIVER_TEXT_MAX, false, why)) == NULL
        || deliver_get_long(l, "throttle", 0, 1, &throttle, why) < 0
        || deliver_get_long(l, "nrcpt", 0, DELIVER_RCPT_MAX, &nrcpt, why) < 0)
        return -1;
    if ((size_t)nrcpt != expect_nrcpt) {
        strbuf_printf(why, "reply for %ld recipients, %zu expected", nrcpt, expect_nrcpt);
        return -1;
    }
    if (attr_count(l) != 3 + 3 * (size_t)nrcpt) {
        strbuf_printf(why, "%zu attributes for %ld recipients", attr_count(l), nrcpt);
        return -1;
    }
    deliver_reply_init(rep, (size_t)nrcpt);
    deliver_reply_set_relay(rep, relay);
    rep->throttle = throttle != 0;
    for (long i = 0; i < nrcpt; i++) {
        const char *dsn, *text;
        long status;

        snprintf(name, sizeof(name), "status_%ld", i);
        if (deliver_get_long(l, name, 0, 5, &status, why) < 0)
            goto fail;
        if (status != DELIVER_SENT && status != DELIVER_DEFER && status != DELIVER_BOUNCE) {
            strbuf_printf(why, "attribute \"%s\": bad status %ld", name, status);
            goto fail;
        }
        snprintf(name, sizeof(name), "dsn_%ld", i);
        if ((dsn = deliver_get_str(l, name, 16, false, why)) == NULL)
            goto fail;
        if (!deliver_dsn_valid(dsn)
            || dsn[0] != (status == DELIVER_SENT ? '2' : status == DELIVER_DEFER ? '4' : '5')) {
            strbuf_printf(why, "attribute \"%s\": bad status code \"%s\" for status %ld", name,
                          dsn, status);
            goto fail;
        }
        snprintf(name, sizeof(name), "reply_%ld", i);
        if ((text = deliver_get_str(l, name, DELIVER_TEXT_MAX, true, why)) == NULL)
            goto fail;
        deliver_reply_set(rep, (size_t)i, (int)status, dsn, text);
    }
    return 0;

fail:
    deliver_reply_clear(rep);
    return -1;
}

/* ---- the queue file lock ---------------------------------------- */

#define DELIVER_LOCK_TRIES  100
#define DELIVER_LOCK_WAIT_NS 10000000L  /* 10 ms between tries */

int deliver_lock_queue_file(const char *path, struct strbuf *why)
{
    struct timespec pause = { 0, DELIVER_LOCK_WAIT_NS };
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0) {
        strbuf_printf(why, "open %s: %m", path);
        return -1;
    }
    /* qmgr holds its exclusive lock only for the instant of its check. */
    for (int i = 0; i < DELIVER_LOCK_TRIES; i++) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0)
            return fd;
        if (errno != EWOULDBLOCK && errno != EINTR)
            break;
        nanosleep(&pause, NULL);
    }
    strbuf_printf(why, "lock %s: %m", path);
    close(fd);
    return -1;
}

int deliver_queue_file_busy(const char *path, struct strbuf *why)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int busy;

    if (fd < 0) {
        int err = errno;
        strbuf_printf(why, "open %s: %m", path);
        errno = err;
        return -1;
    }
    busy = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);      /* releases the lock if we got it */
    return busy;
}
