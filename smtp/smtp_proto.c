/*
 * smtp_proto.c - one SMTP or LMTP client session.
 *
 * Greeting, EHLO/LHLO (HELO when EHLO is refused, SMTP only), STARTTLS
 * (smtp_tls.c), AUTH (smtp_sasl.c), then transactions: MAIL FROM with
 * SIZE/BODY/SMTPUTF8/RET/ENVID (and XQID=<queue id> when an LMTP server
 * advertises XQID, for lmtpd's exactly-once delivery), RCPT TO with
 * NOTIFY/ORCPT, DATA; pipelined in groups when PIPELINING is offered.
 * A 452 "too many recipients" leaves the rest for another transaction on
 * the same connection.  The message is copied from the queue file with
 * LF -> CRLF, dot-stuffing and long-line folding: no bare CR or LF ever
 * reaches the wire.  Every reply is read with a deadline and parsed by
 * lib/smtp_syntax (bounded lines, line count and size): the peer is
 * untrusted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "params.h"
#include "qfile.h"
#include "smtp.h"
#include "tls.h"

#define REPLY_LINE_MAX   4096   /* one reply line, more than RFC 5321's 512 */
#define PIPELINE_GROUP   100    /* commands sent before their replies are read */
#define TXN_MAX          1000   /* transactions per session (452 rounds) */

static int t_helo(const struct smtp_session *ss)
{
    return (int)(ss->dest->lmtp ? var_lmtp_lhlo_timeout : var_smtp_helo_timeout);
}

static int t_data_done(const struct smtp_session *ss)
{
    return (int)(ss->dest->lmtp ? var_lmtp_data_done_timeout : var_smtp_data_done_timeout);
}

static void session_lost(struct smtp_session *ss, const char *stage)
{
    enum stream_err e = stream_error(ss->s);

    ss->lost = true;
    if (e == STREAM_ERR_TIMEOUT)
        strbuf_printf(ss->why, "conversation with %s timed out while %s", ss->peer, stage);
    else if (e == STREAM_ERR_TOOLONG)
        strbuf_printf(ss->why, "reply line from %s too long while %s", ss->peer, stage);
    else
        strbuf_printf(ss->why, "lost connection with %s while %s", ss->peer, stage);
}

int smtp_read_reply(struct smtp_session *ss, int timeout_s, const char *stage)
{
    struct strbuf *why = strbuf_new(64);

    if (ss->lost)
        return -1;
    stream_set_timeout(ss->s, timeout_s * 1000);
    smtp_reply_reset(&ss->reply);
    for (;;) {
        int r = stream_read_line(ss->s, ss->line, REPLY_LINE_MAX);
        if (r != 1) {
            session_lost(ss, stage);
            strbuf_free(&why);
            return -1;
        }
        enum smtp_reply_status st = smtp_reply_feed(&ss->reply, strbuf_str(ss->line),
                                                     strbuf_len(ss->line), why);
        if (st == SMTP_REPLY_DONE)
            break;
        if (st == SMTP_REPLY_ERROR) {
            ss->lost = true;
            strbuf_printf(ss->why, "malformed reply from %s while %s: %s", ss->peer, stage,
                          strbuf_str(why));
            strbuf_free(&why);
            return -1;
        }
    }
    strbuf_free(&why);
    return 0;
}

static int send_line(struct smtp_session *ss, const char *cmd, const char *stage)
{
    if (ss->lost)
        return -1;
    stream_puts(ss->s, cmd);
    stream_puts(ss->s, "\r\n");
    if (stream_error(ss->s)) {
        session_lost(ss, stage);
        return -1;
    }
    return 0;
}

static int flush_out(struct smtp_session *ss, int timeout_s, const char *stage)
{
    if (ss->lost)
        return -1;
    stream_set_timeout(ss->s, timeout_s * 1000);
    if (stream_flush(ss->s) < 0) {
        session_lost(ss, stage);
        return -1;
    }
    return 0;
}

int smtp_chat(struct smtp_session *ss, const char *cmd, int timeout_s, const char *stage)
{
    if (send_line(ss, cmd, stage) < 0 || flush_out(ss, timeout_s, stage) < 0)
        return -1;
    return smtp_read_reply(ss, timeout_s, stage);
}

const char *smtp_reply_dsn(const struct smtp_session *ss)
{
    int cls = ss->reply.code / 100;

    if (ss->reply.esc[0] && ss->reply.esc[0] - '0' == cls)
        return ss->reply.esc;
    return cls == 2 ? "2.0.0" : cls == 5 ? "5.0.0" : "4.0.0";
}

void smtp_reply_oneline(const struct smtp_session *ss, struct strbuf *out)
{
    const char *t = strbuf_str(ss->reply.text);

    strbuf_appendf(out, "%d", ss->reply.code);
    if (ss->reply.esc[0])
        strbuf_appendf(out, " %s", ss->reply.esc);
    if (*t)
        strbuf_appendc(out, ' ');
    for (; *t; t++)
        strbuf_appendc(out, *t == '\n' ? ' ' : (unsigned char)*t < 0x20 ? '?' : *t);
}

void smtp_reply_describe(const struct smtp_session *ss, const char *stage, struct strbuf *out)
{
    strbuf_printf(out, "host %s said: ", ss->peer);
    smtp_reply_oneline(ss, out);
    strbuf_appendf(out, " (in reply to %s)", stage);
}

/* Give every open recipient of the current transaction (or every open
 * recipient when all is set) the current reply as its outcome. */
static void reply_to_open(struct smtp_session *ss, const char *stage, bool all)
{
    struct smtp_delivery *d = ss->d;
    struct strbuf *t = strbuf_new(256);
    int cls = ss->reply.code / 100;

    smtp_reply_describe(ss, stage, t);
    for (size_t i = 0; i < d->req.nrcpt; i++) {
        if (d->rs[i].final || (!all && !d->rs[i].in_txn))
            continue;
        smtp_rcpt_set(d, i, cls != 4, cls == 5 ? DELIVER_BOUNCE : DELIVER_DEFER,
                      smtp_reply_dsn(ss), strbuf_str(t));
    }
    strbuf_free(&t);
}

/* ---- EHLO ------------------------------------------------------------ */

static void parse_ehlo(struct smtp_session *ss)
{
    const char *p = strbuf_str(ss->reply.text);
    const char *nl = strchr(p, '\n');

    ss->feat = SMTP_FEAT_ESMTP;
    ss->size_max = 0;
    strbuf_reset(ss->auth_mechs);
    /* The first line is the server's name: keywords start on line 2. */
    for (p = nl ? nl + 1 : ""; *p; p = nl ? nl + 1 : p + strlen(p)) {
        char kw[32];
        size_t n = 0;
        nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        while (n < len && n < sizeof(kw) - 1 && p[n] != ' ' && p[n] != '=') {
            kw[n] = p[n];
            n++;
        }
        kw[n] = 0;
        const char *arg = p + n;
        size_t alen = len - n;
        if (alen && (*arg == ' ' || *arg == '=')) {
            arg++;
            alen--;
        }
        if (strcasecmp(kw, "PIPELINING") == 0)
            ss->feat |= SMTP_FEAT_PIPELINING;
        else if (strcasecmp(kw, "SIZE") == 0) {
            ss->feat |= SMTP_FEAT_SIZE;
            uint64_t v = 0;
            for (size_t k = 0; k < alen && arg[k] >= '0' && arg[k] <= '9' && k < 19; k++)
                v = v * 10 + (uint64_t)(arg[k] - '0');
            ss->size_max = v;
        } else if (strcasecmp(kw, "8BITMIME") == 0)
            ss->feat |= SMTP_FEAT_8BITMIME;
        else if (strcasecmp(kw, "SMTPUTF8") == 0)
            ss->feat |= SMTP_FEAT_SMTPUTF8;
        else if (strcasecmp(kw, "DSN") == 0)
            ss->feat |= SMTP_FEAT_DSN;
        else if (strcasecmp(kw, "STARTTLS") == 0)
            ss->feat |= SMTP_FEAT_STARTTLS;
        else if (strcasecmp(kw, "XQID") == 0)
            ss->feat |= SMTP_FEAT_XQID;
        else if (strcasecmp(kw, "AUTH") == 0 && alen > 0 && alen < 1024) {
            ss->feat |= SMTP_FEAT_AUTH;
            if (strbuf_len(ss->auth_mechs))
                strbuf_appendc(ss->auth_mechs, ' ');
            strbuf_appendn(ss->auth_mechs, arg, alen);
        }
    }
}

/* EHLO or LHLO, with the HELO fallback for SMTP.  0 ok, -1 stop. */
static int say_hello(struct smtp_session *ss, enum smtp_sess_result *res)
{
    const char *verb = ss->dest->lmtp ? "LHLO" : "EHLO";
    const char *name = ss->dest->lmtp ? var_lmtp_lhlo_name : var_smtp_helo_name;

    strbuf_printf(ss->cmd, "%s %s", verb, name && *name ? name : "localhost");
    if (smtp_chat(ss, strbuf_str(ss->cmd), t_helo(ss), "sending EHLO") < 0)
        goto lost;
    if (ss->reply.code / 100 == 2) {
        parse_ehlo(ss);
        return 0;
    }
    if (!ss->dest->lmtp && ss->reply.code / 100 == 5) {
        strbuf_printf(ss->cmd, "HELO %s", name && *name ? name : "localhost");
        if (smtp_chat(ss, strbuf_str(ss->cmd), t_helo(ss), "sending HELO") < 0)
            goto lost;
        if (ss->reply.code / 100 == 2) {
            ss->feat = 0;
            return 0;
        }
    }
    /* Refused to talk: a problem of this host, try the next one. */
    strbuf_reset(ss->why);
    smtp_reply_describe(ss, ss->dest->lmtp ? "LHLO command" : "EHLO/HELO command", ss->why);
    smtp_rcpt_set_open(ss->d, false, DELIVER_DEFER, smtp_reply_dsn(ss), strbuf_str(ss->why));
    ss->d->throttle = true;
    *res = SMTP_SESS_NEXT;
    return -1;
lost:
    smtp_rcpt_set_open(ss->d, false, DELIVER_DEFER, "4.4.2", strbuf_str(ss->why));
    ss->d->throttle = true;
    *res = SMTP_SESS_NEXT;
    return -1;
}

/* ---- content --------------------------------------------------------- */

/* Scan the content once for 8-bit bytes (only needed when the peer lacks
 * 8BITMIME).  -1 with why on a queue file read error. */
static int scan_8bit(struct smtp_delivery *d, struct strbuf *why)
{
    char buf[65536];
    ssize_t n;

    if (d->content_scanned)
        return 0;
    qfile_content_rewind(d->qf);
    while ((n = qfile_content_read(d->qf, buf, sizeof(buf), why)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)buf[i] & 0x80) {
                d->content_8bit = true;
                break;
            }
        if (d->content_8bit)
            break;
    }
    if (n < 0)
        return -1;
    d->content_scanned = true;
    return 0;
}

static bool has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s & 0x80)
            return true;
    return false;
}

/*
 * Copy the content with CRLF line ends, dot-stuffing and folding of
 * lines longer than smtp_line_length_limit ("\r\n " inserted, as
 * Postfix).  A CR alone and an LF alone both end a line.  Returns 0, or
 * -1 on a queue file error (why, not a peer problem) or a lost session.
 */
static int send_content(struct smtp_session *ss, struct strbuf *qwhy)
{
    struct smtp_delivery *d = ss->d;
    char buf[65536];
    ssize_t n;
    bool bol = true, cr = false;
    size_t col = 0;
    size_t limit = var_smtp_line_length_limit > 0 ? (size_t)var_smtp_line_length_limit : 0;

    stream_set_timeout(ss->s, (int)var_smtp_data_xfer_timeout * 1000);
    qfile_content_rewind(d->qf);
    while ((n = qfile_content_read(d->qf, buf, sizeof(buf), qwhy)) > 0) {
        size_t i = 0, len = (size_t)n;
        while (i < len) {
            char c = buf[i];
            if (cr) {
                cr = false;
                stream_write(ss->s, "\r\n", 2);
                bol = true;
                col = 0;
                if (c == '\n') {
                    i++;
                    continue;
                }
            }
            if (c == '\r') {
                cr = true;
                i++;
                continue;
            }
            if (c == '\n') {
                stream_write(ss->s, "\r\n", 2);
                bol = true;
                col = 0;
                i++;
                continue;
            }
            if (bol && c == '.')
                stream_write(ss->s, ".", 1);
            bol = false;
            /* A run of ordinary bytes up to the next line end or fold. */
            size_t j = i;
            while (j < len && buf[j] != '\r' && buf[j] != '\n' && (limit == 0 || col < limit)) {
                j++;
                col++;
            }
            stream_write(ss->s, buf + i, j - i);
            i = j;
            if (limit && col >= limit && i < len && buf[i] != '\r' && buf[i] != '\n') {
                stream_write(ss->s, "\r\n ", 3);
                col = 1;
            }
        }
        if (stream_error(ss->s)) {
            session_lost(ss, "sending message body");
            return -1;
        }
    }
    if (n < 0)
        return -1;
    if (cr || !bol)
        stream_write(ss->s, "\r\n", 2);
    stream_write(ss->s, ".\r\n", 3);
    if (stream_flush(ss->s) < 0) {
        session_lost(ss, "sending end of data -- message may be sent more than once");
        return -1;
    }
    return 0;
}

/* ---- one transaction --------------------------------------------------- */

static void fmt_mail(struct smtp_session *ss, uint64_t size)
{
    struct smtp_delivery *d = ss->d;
    unsigned fl = d->env->flags;

    strbuf_printf(ss->cmd, "MAIL FROM:<%s>", d->req.sender);
    if (ss->feat & SMTP_FEAT_SIZE)
        strbuf_appendf(ss->cmd, " SIZE=%llu", (unsigned long long)size);
    if (ss->feat & SMTP_FEAT_8BITMIME) {
        if (fl & (QFILE_FL_8BITMIME | QFILE_FL_BINARYMIME))
            strbuf_append(ss->cmd, " BODY=8BITMIME");
        else if (fl & QFILE_FL_7BIT)
            strbuf_append(ss->cmd, " BODY=7BIT");
    }
    if ((fl & QFILE_FL_SMTPUTF8) && (ss->feat & SMTP_FEAT_SMTPUTF8))
        strbuf_append(ss->cmd, " SMTPUTF8");
    if (ss->feat & SMTP_FEAT_DSN) {
        if (d->env->ret)
            strbuf_append(ss->cmd, d->env->ret == 'H' ? " RET=HDRS" : " RET=FULL");
        if (d->env->envid && *d->env->envid) {
            strbuf_append(ss->cmd, " ENVID=");
            smtp_xtext_encode(d->env->envid, strlen(d->env->envid), ss->cmd);
        }
    }
    if (ss->dest->lmtp && (ss->feat & SMTP_FEAT_XQID))
        strbuf_appendf(ss->cmd, " XQID=%s", d->req.qid);
}

static void fmt_rcpt(struct smtp_session *ss, size_t i)
{
    const struct deliver_rcpt *r = &ss->d->req.rcpts[i];

    strbuf_printf(ss->cmd, "RCPT TO:<%s>", r->addr);
    if (ss->feat & SMTP_FEAT_DSN) {
        unsigned nt = r->notify & QFILE_NOTIFY_MASK;
        if (nt) {
            strbuf_append(ss->cmd, " NOTIFY=");
            if (nt & QFILE_NOTIFY_NEVER)
                strbuf_append(ss->cmd, "NEVER");
            else {
                const char *sep = "";
                if (nt & QFILE_NOTIFY_SUCCESS) {
                    strbuf_append(ss->cmd, "SUCCESS");
                    sep = ",";
                }
                if (nt & QFILE_NOTIFY_FAILURE) {
                    strbuf_appendf(ss->cmd, "%sFAILURE", sep);
                    sep = ",";
                }
                if (nt & QFILE_NOTIFY_DELAY)
                    strbuf_appendf(ss->cmd, "%sDELAY", sep);
            }
        }
        const char *semi = r->orcpt ? strchr(r->orcpt, ';') : NULL;
        if (semi && semi != r->orcpt && semi[1]) {
            strbuf_append(ss->cmd, " ORCPT=");
            strbuf_appendn(ss->cmd, r->orcpt, (size_t)(semi - r->orcpt + 1));
            smtp_xtext_encode(semi + 1, strlen(semi + 1), ss->cmd);
        }
    }
}

/* Pre-checks that need the peer's features: a permanent failure for the
 * whole message.  Returns 0 to go on, -1 when the recipients bounced. */
static int txn_precheck(struct smtp_session *ss, uint64_t size, struct strbuf *qwhy)
{
    struct smtp_delivery *d = ss->d;
    struct strbuf *t = strbuf_new(128);
    unsigned fl = d->env->flags;
    const char *dsn = NULL;

    if ((ss->feat & SMTP_FEAT_SIZE) && ss->size_max > 0 && size > ss->size_max) {
        strbuf_printf(t, "message size %llu exceeds size limit %llu of server %s",
                      (unsigned long long)size, (unsigned long long)ss->size_max, ss->peer);
        dsn = "5.3.4";
    } else if ((fl & QFILE_FL_SMTPUTF8) && !(ss->feat & SMTP_FEAT_SMTPUTF8)) {
        bool need = has_8bit(d->req.sender);
        for (size_t i = 0; i < d->req.nrcpt && !need; i++)
            need = d->rs[i].in_txn && has_8bit(d->req.rcpts[i].addr);
        if (need) {
            strbuf_printf(t, "SMTPUTF8 is required, but was not offered by host %s", ss->peer);
            dsn = "5.6.7";
        }
    }
    if (dsn == NULL && (fl & (QFILE_FL_8BITMIME | QFILE_FL_BINARYMIME))
        && !(ss->feat & SMTP_FEAT_8BITMIME)) {
        if (scan_8bit(d, qwhy) < 0) {
            strbuf_free(&t);
            return -2;
        }
        if (d->content_8bit) {
            strbuf_printf(t, "host %s does not support 8BITMIME and the message has 8-bit "
                          "content that facteur does not convert", ss->peer);
            dsn = "5.6.3";
        }
    }
    if (dsn) {
        for (size_t i = 0; i < d->req.nrcpt; i++)
            if (d->rs[i].in_txn && !d->rs[i].final)
                smtp_rcpt_set(d, i, true, DELIVER_BOUNCE, dsn, strbuf_str(t));
        strbuf_free(&t);
        return -1;
    }
    strbuf_free(&t);
    return 0;
}

static bool too_many_rcpts(const struct smtp_session *ss)
{
    return ss->reply.code == 452 && (strcmp(ss->reply.esc, "4.5.3") == 0
                                     || strcasestr(strbuf_str(ss->reply.text), "too many"));
}

/* RCPT reply for recipient i. */
static void rcpt_reply(struct smtp_session *ss, size_t i, bool *saw_too_many)
{
    struct smtp_rcpt_state *r = &ss->d->rs[i];

    if (ss->reply.code / 100 == 2) {
        r->accepted = true;
        return;
    }
    if (too_many_rcpts(ss) || *saw_too_many) {
        /* Server's per-transaction limit: this and later recipients go
         * into the next transaction on this connection. */
        *saw_too_many = true;
        r->again = true;
        r->in_txn = false;
        return;
    }
    struct strbuf *t = strbuf_new(256);
    smtp_reply_describe(ss, "RCPT TO command", t);
    int cls = ss->reply.code / 100;
    smtp_rcpt_set(ss->d, i, cls != 4, cls == 5 ? DELIVER_BOUNCE : DELIVER_DEFER,
                  smtp_reply_dsn(ss), strbuf_str(t));
    strbuf_free(&t);
}

static void lost_in_txn(struct smtp_session *ss)
{
    struct smtp_delivery *d = ss->d;

    for (size_t i = 0; i < d->req.nrcpt; i++)
        if (d->rs[i].in_txn && !d->rs[i].final)
            smtp_rcpt_set(d, i, false, DELIVER_DEFER, "4.4.2", strbuf_str(ss->why));
}

/*
 * One mail transaction for the recipients marked in_txn.  Returns 0 when
 * the session may go on (next transaction or QUIT), -1 when it is over
 * (connection lost, or a 4xx MAIL that sends us to the next host).
 */
static int transaction(struct smtp_session *ss)
{
    struct smtp_delivery *d = ss->d;
    uint64_t size = d->env->content_size;
    bool pipe = (ss->feat & SMTP_FEAT_PIPELINING) != 0;
    bool saw_too_many = false;
    struct strbuf *qwhy = strbuf_new(64);
    size_t idx[PIPELINE_GROUP];
    int rc = 0;

    switch (txn_precheck(ss, size, qwhy)) {
    case -1:
        strbuf_free(&qwhy);
        return 0;
    case -2:
        goto queue_error;
    }

    /* MAIL FROM (alone, or first in the first pipelined group). */
    fmt_mail(ss, size);
    if (send_line(ss, strbuf_str(ss->cmd), "sending MAIL FROM") < 0)
        goto lost;
    size_t next = 0;
    bool mail_pending = true, mail_ok = false, data_sent = false;
    size_t accepted = 0;
    while (mail_pending || next < d->req.nrcpt) {
        size_t n = 0;
        if (pipe || !mail_pending) {
            while (next < d->req.nrcpt && n < PIPELINE_GROUP - 2) {
                if (d->rs[next].in_txn) {
                    fmt_rcpt(ss, next);
                    if (send_line(ss, strbuf_str(ss->cmd), "sending RCPT TO") < 0)
                        goto lost;
                    idx[n++] = next;
                    if (!pipe) {
                        next++;
                        break;
                    }
                }
                next++;
            }
        }
        bool last_group = next >= d->req.nrcpt;
        if (pipe && last_group) {
            if (send_line(ss, "DATA", "sending DATA") < 0)
                goto lost;
            data_sent = true;
        }
        if (flush_out(ss, (int)var_smtp_rcpt_timeout, "sending RCPT TO") < 0)
            goto lost;
        if (mail_pending) {
            mail_pending = false;
            if (smtp_read_reply(ss, (int)var_smtp_mail_timeout, "receiving the MAIL FROM reply") < 0)
                goto lost;
            mail_ok = ss->reply.code / 100 == 2;
            if (!mail_ok) {
                reply_to_open(ss, "MAIL FROM command", false);
                if (ss->reply.code / 100 == 4)
                    rc = -1;    /* the next host may take it */
                if (!pipe || n == 0) {
                    strbuf_free(&qwhy);
                    if (rc < 0)
                        return -1;
                    return smtp_chat(ss, "RSET", (int)var_smtp_helo_timeout,
                                     "sending RSET") < 0 ? -1 : 0;
                }
            }
        }
        for (size_t k = 0; k < n; k++) {
            if (smtp_read_reply(ss, (int)var_smtp_rcpt_timeout, "receiving the RCPT TO reply") < 0)
                goto lost;
            if (mail_ok) {
                rcpt_reply(ss, idx[k], &saw_too_many);
                if (d->rs[idx[k]].accepted)
                    accepted++;
            }
        }
        if (!mail_ok && !data_sent) {
            /* Pipelined after a failed MAIL: drain and stop here. */
            continue;
        }
    }
    if (!mail_ok) {
        if (data_sent) {
            if (smtp_read_reply(ss, (int)var_smtp_data_init_timeout, "receiving the DATA reply") < 0)
                goto lost;
            if (ss->reply.code == 354)
                goto empty_data;
        }
        strbuf_free(&qwhy);
        return rc;
    }
    if (accepted == 0) {
        if (data_sent) {
            if (smtp_read_reply(ss, (int)var_smtp_data_init_timeout, "receiving the DATA reply") < 0)
                goto lost;
            if (ss->reply.code == 354)
                goto empty_data;
        }
        goto rset;
    }
    if (!data_sent && smtp_chat(ss, "DATA", (int)var_smtp_data_init_timeout, "sending DATA") < 0)
        goto lost;
    if (data_sent && smtp_read_reply(ss, (int)var_smtp_data_init_timeout,
                                     "receiving the DATA reply") < 0)
        goto lost;
    if (ss->reply.code != 354) {
        for (size_t i = 0; i < d->req.nrcpt; i++)
            d->rs[i].in_txn = d->rs[i].in_txn && d->rs[i].accepted;
        reply_to_open(ss, "DATA command", false);
        goto rset;
    }
    for (size_t i = 0; i < d->req.nrcpt; i++)
        d->rs[i].in_txn = d->rs[i].in_txn && d->rs[i].accepted;
    if (send_content(ss, qwhy) < 0) {
        if (!ss->lost)
            goto queue_error;
        goto lost;
    }
    if (!ss->dest->lmtp) {
        if (smtp_read_reply(ss, t_data_done(ss), "receiving the end of data reply "
                            "-- message may be sent more than once") < 0)
            goto lost;
        if (ss->reply.code / 100 == 2) {
            struct strbuf *t = strbuf_new(128);
            smtp_reply_oneline(ss, t);
            for (size_t i = 0; i < d->req.nrcpt; i++)
                if (d->rs[i].in_txn && !d->rs[i].final)
                    smtp_rcpt_set(d, i, true, DELIVER_SENT, smtp_reply_dsn(ss), strbuf_str(t));
            strbuf_free(&t);
        } else {
            reply_to_open(ss, "end of DATA command", false);
        }
    } else {
        /* LMTP: one reply per accepted recipient, in RCPT order. */
        for (size_t i = 0; i < d->req.nrcpt; i++) {
            if (!d->rs[i].in_txn || d->rs[i].final)
                continue;
            if (smtp_read_reply(ss, t_data_done(ss), "receiving the end of data reply") < 0)
                goto lost;
            struct strbuf *t = strbuf_new(128);
            int cls = ss->reply.code / 100;
            if (cls == 2)
                smtp_reply_oneline(ss, t);
            else
                smtp_reply_describe(ss, "end of DATA command", t);
            smtp_rcpt_set(d, i, cls != 4, cls == 2 ? DELIVER_SENT
                          : cls == 5 ? DELIVER_BOUNCE : DELIVER_DEFER,
                          smtp_reply_dsn(ss), strbuf_str(t));
            d->rs[i].in_txn = false;
            strbuf_free(&t);
        }
    }
    strbuf_free(&qwhy);
    return 0;

empty_data:
    /* The server said 354 with no valid recipient: send an empty message
     * body end and ignore its reply (RFC 2920 3.1 allows this order). */
    if (send_line(ss, ".", "sending end of data") < 0
        || flush_out(ss, (int)var_smtp_data_xfer_timeout, "sending end of data") < 0
        || smtp_read_reply(ss, t_data_done(ss), "receiving the end of data reply") < 0)
        goto lost;
    strbuf_free(&qwhy);
    return rc;
rset:
    strbuf_free(&qwhy);
    if (smtp_chat(ss, "RSET", (int)var_smtp_helo_timeout, "sending RSET") < 0) {
        return -1;
    }
    return 0;
queue_error:
    /* Our own queue file failed: nothing the peer did; defer everything. */
    log_warn("%s: cannot read queue file: %s", d->req.qid, strbuf_str(qwhy));
    for (size_t i = 0; i < d->req.nrcpt; i++)
        if (!d->rs[i].final)
            smtp_rcpt_set(d, i, true, DELIVER_DEFER, "4.3.0", "queue file read error");
    strbuf_free(&qwhy);
    ss->lost = true;
    return -1;
lost:
    lost_in_txn(ss);
    strbuf_free(&qwhy);
    return -1;
}

/* ---- the session ------------------------------------------------------ */

enum smtp_sess_result smtp_session_run(struct smtp_session *ss, int fd)
{
    struct smtp_delivery *d = ss->d;
    enum smtp_sess_result res = SMTP_SESS_DONE;

    ss->s = stream_fdopen(fd);
    ss->line = strbuf_new(512);
    ss->cmd = strbuf_new(512);
    ss->why = strbuf_new(256);
    ss->auth_mechs = strbuf_new(64);
    smtp_reply_init(&ss->reply, REPLY_LINE_MAX);

    /* Greeting. */
    if (smtp_read_reply(ss, t_helo(ss), "receiving the initial server greeting") < 0) {
        smtp_rcpt_set_open(d, false, DELIVER_DEFER, "4.4.2", strbuf_str(ss->why));
        d->throttle = true;
        return SMTP_SESS_NEXT;
    }
    if (ss->reply.code / 100 != 2) {
        strbuf_printf(ss->why, "host %s refused to talk to me: ", ss->peer);
        smtp_reply_oneline(ss, ss->why);
        bool perm = ss->reply.code / 100 == 5 && !var_smtp_skip_5xx_greeting;
        smtp_rcpt_set_open(d, perm, perm ? DELIVER_BOUNCE : DELIVER_DEFER,
                           perm ? smtp_reply_dsn(ss) : "4.4.2",
                           strbuf_str(ss->why));
        d->throttle = true;
        send_line(ss, "QUIT", "sending QUIT");
        flush_out(ss, 5, "sending QUIT");
        return perm ? SMTP_SESS_DONE : SMTP_SESS_NEXT;
    }
    if (say_hello(ss, &res) < 0)
        return res;
    if (smtp_tls_negotiate(ss, &res) != 0)
        return res;
    if (ss->tls && say_hello(ss, &res) < 0)
        return res;
    if (smtp_sasl_authenticate(ss) < 0)
        return SMTP_SESS_NEXT;

    /* Transactions until every recipient has an answer; recipients a
     * 452 "too many recipients" put off go into the next one, on this
     * same connection, as long as each round makes progress. */
    size_t prev = (size_t)-1;
    for (int round = 0; round < TXN_MAX; round++) {
        size_t n = 0;
        for (size_t i = 0; i < d->req.nrcpt; i++)
            n += !d->rs[i].final && (round == 0 || d->rs[i].again);
        if (n == 0)
            break;
        if (n >= prev) {
            for (size_t i = 0; i < d->req.nrcpt; i++)
                if (d->rs[i].again && !d->rs[i].final)
                    smtp_rcpt_set(d, i, false, DELIVER_DEFER, "4.5.3",
                                  "too many recipients for one transaction, will retry");
            break;
        }
        prev = n;
        for (size_t i = 0; i < d->req.nrcpt; i++) {
            struct smtp_rcpt_state *r = &d->rs[i];
            r->in_txn = !r->final && (round == 0 || r->again);
            r->accepted = false;
            r->again = false;
        }
        if (transaction(ss) < 0) {
            res = SMTP_SESS_NEXT;
            break;
        }
    }
    if (!ss->lost) {
        if (send_line(ss, "QUIT", "sending QUIT") == 0
            && flush_out(ss, (int)var_smtp_quit_timeout, "sending QUIT") == 0)
            smtp_read_reply(ss, (int)var_smtp_quit_timeout, "receiving the QUIT reply");
    }
    return res;
}

void smtp_session_free(struct smtp_session *ss)
{
    tls_conn_free(&ss->tls);
    if (ss->s)
        stream_close(&ss->s);
    strbuf_free(&ss->line);
    strbuf_free(&ss->cmd);
    strbuf_free(&ss->why);
    strbuf_free(&ss->auth_mechs);
    smtp_reply_free(&ss->reply);
    free(ss->peer);
    free(ss->relay);
    ss->peer = ss->relay = NULL;
}
