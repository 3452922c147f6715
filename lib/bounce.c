/*
 * bounce.c - RFC 3464 delivery status notifications, queued as new queue
 * files; contract in bounce.h.
 *
 * Called by qmgr only.  The addresses and texts written come from queue
 * files and delivery agents: they hold no control characters (qfile and
 * deliver_proto check that), so they cannot break the header structure;
 * Diagnostic-Code text is still folded to stay under the line limit.
 * The original is copied from its queue file as stored (LF line ends),
 * cut at a line end once bounce_size_limit bytes are reached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bounce.h"
#include "log.h"
#include "mem.h"
#include "params.h"

#define BOUNCE_READ_CHUNK 8192

bool bounce_recipient(const char *sender, struct strbuf *to_r, struct strbuf *sender_r)
{
    const char *origin = var_myorigin != NULL && var_myorigin[0] ? var_myorigin : var_myhostname;
    const char *dbl = var_double_bounce_sender;
    size_t dlen = strlen(dbl);

    if (sender[0] != '\0') {
        /* A double bounce that failed: its sender is double-bounce@... */
        if (strncasecmp(sender, dbl, dlen) == 0 && (sender[dlen] == '\0' || sender[dlen] == '@'))
            return false;
        strbuf_set(to_r, sender);
        strbuf_set(sender_r, "");
        return true;
    }
    strbuf_set(to_r, var_bounce_notice_recipient);
    if (strchr(strbuf_str(to_r), '@') == NULL)
        strbuf_appendf(to_r, "@%s", origin);
    strbuf_printf(sender_r, "%s@%s", dbl, origin);
    return true;
}

/* RFC 5322 date in the local zone. */
static void bounce_date(struct strbuf *out, time_t t)
{
    char buf[64];
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S %z", &tm);
    strbuf_append(out, buf);
}

/* "Name: value" with the value folded at spaces to keep lines short. */
static void bounce_field(struct strbuf *out, const char *name, const char *value)
{
    size_t col = strlen(name) + 2, len = strlen(value);

    strbuf_appendf(out, "%s: ", name);
    for (size_t i = 0; i < len;) {
        size_t word = strcspn(value + i, " ");
        if (col + word > 76 && col > strlen(name) + 2) {
            strbuf_append(out, "\n    ");
            col = 4;
        }
        strbuf_appendn(out, value + i, word);
        col += word;
        i += word;
        if (i < len) {
            strbuf_appendc(out, ' ');
            col++;
            i++;
        }
    }
    strbuf_appendc(out, '\n');
}

static void bounce_human(struct strbuf *out, const struct bounce_msg *m,
                         const struct bounce_rcpt *r, size_t n)
{
    strbuf_appendf(out, "This is the mail system at host %s.\n\n", m->hostname);
    switch (m->kind) {
    case BOUNCE_FAILED:
        strbuf_append(out,
                      "I'm sorry to have to inform you that your message could not\n"
                      "be delivered to one or more recipients. It's attached below.\n\n"
                      "For further assistance, please send mail to postmaster.\n\n"
                      "If you do so, please include this problem report. You can\n"
                      "delete your own text from the attached returned message.\n\n");
        break;
    case BOUNCE_DELAYED:
        strbuf_append(out,
                      "####################################################################\n"
                      "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                      "####################################################################\n\n"
                      "Your message could not be delivered for some time.\n"
                      "It will be retried until it is ");
        {
            long days = (long)(m->retry_until - m->arrival.tv_sec) / 86400;
            strbuf_appendf(out, "%ld day%s old.\n\n", days, days == 1 ? "" : "s");
        }
        break;
    case BOUNCE_SUCCESS:
        strbuf_append(out,
                      "Your message was successfully delivered to the destination(s)\n"
                      "listed below. If the message was delivered to mailbox you will\n"
                      "receive no further notifications. Otherwise you may still receive\n"
                      "notifications of mail delivery errors from other systems.\n\n");
        break;
    }
    strbuf_appendf(out, "                   The %s program\n\n", var_mail_name);
    for (size_t i = 0; i < n; i++) {
        strbuf_appendf(out, "<%s>: ", r[i].addr);
        strbuf_append(out, r[i].diag != NULL && r[i].diag[0] ? r[i].diag
                      : m->kind == BOUNCE_SUCCESS ? "delivery successful" : r[i].status);
        strbuf_append(out, "\n");
    }
}

static void bounce_status_part(struct strbuf *out, const struct bounce_msg *m,
                               const struct bounce_rcpt *r, size_t n)
{
    static const char *actions[] = { "failed", "delayed", "delivered" };
    struct strbuf *v = strbuf_new(128);

    strbuf_appendf(out, "Reporting-MTA: dns; %s\n", m->hostname);
    strbuf_appendf(out, "X-Facteur-Queue-ID: %s\n", m->qid);
    strbuf_printf(v, "rfc822; %s", m->orig_sender);
    bounce_field(out, "X-Facteur-Sender", strbuf_str(v));
    if (m->envid != NULL && m->envid[0] != '\0')
        strbuf_appendf(out, "Original-Envelope-Id: %s\n", m->envid);
    strbuf_reset(v);
    bounce_date(v, m->arrival.tv_sec);
    strbuf_appendf(out, "Arrival-Date: %s\n", strbuf_str(v));
    for (size_t i = 0; i < n; i++) {
        strbuf_append(out, "\n");
        strbuf_printf(v, "rfc822; %s", r[i].addr);
        bounce_field(out, "Final-Recipient", strbuf_str(v));
        if (r[i].orcpt != NULL && r[i].orcpt[0] != '\0') {
            const char *semi = strchr(r[i].orcpt, ';');
            if (semi != NULL)
                strbuf_printf(v, "%.*s; %s", (int)(semi - r[i].orcpt), r[i].orcpt, semi + 1);
            else
                strbuf_printf(v, "rfc822; %s", r[i].orcpt);
            bounce_field(out, "Original-Recipient", strbuf_str(v));
        }
        strbuf_appendf(out, "Action: %s\n", actions[m->kind]);
        strbuf_appendf(out, "Status: %s\n", r[i].status);
        if (r[i].remote_mta != NULL && r[i].remote_mta[0] != '\0'
            && strcmp(r[i].remote_mta, "none") != 0) {
            strbuf_printf(v, "dns; %s", r[i].remote_mta);
            bounce_field(out, "Remote-MTA", strbuf_str(v));
        }
        if (r[i].diag != NULL && r[i].diag[0] != '\0') {
            strbuf_printf(v, "smtp; %s", r[i].diag);
            bounce_field(out, "Diagnostic-Code", strbuf_str(v));
        }
        if (m->kind == BOUNCE_DELAYED) {
            strbuf_reset(v);
            bounce_date(v, m->retry_until);
            strbuf_appendf(out, "Will-Retry-Until: %s\n", strbuf_str(v));
        }
    }
    strbuf_free(&v);
}

/* Append the original (headers only, or up to limit bytes at a line end). */
static int bounce_original(struct strbuf *out, struct qfile *orig, bool headers_only,
                           long limit, struct strbuf *why)
{
    char buf[BOUNCE_READ_CHUNK];
    size_t copied = 0;
    bool at_bol = true;
    ssize_t got;

    qfile_content_rewind(orig);
    while ((got = qfile_content_read(orig, buf, sizeof(buf), why)) > 0) {
        for (ssize_t i = 0; i < got; i++) {
            char c = buf[i];
            if (headers_only && at_bol && c == '\n')
                return 0;
            if (!headers_only && copied >= (size_t)limit && at_bol)
                return 0;
            strbuf_appendc(out, c);
            copied++;
            at_bol = c == '\n';
        }
    }
    if (got < 0)
        return -1;
    if (!at_bol)
        strbuf_appendc(out, '\n');
    return 0;
}

int bounce_compose(const struct bounce_msg *m, const struct bounce_rcpt *r, size_t n,
                   struct qfile *orig, const char *qid, struct strbuf *out, struct strbuf *why)
{
    static const char *subjects[] = {
        "Undelivered Mail Returned to Sender",
        "Delayed Mail (still being retried)",
        "Successful Mail Delivery Report",
    };
    struct strbuf *boundary = strbuf_new(64);
    bool full = m->kind == BOUNCE_FAILED && m->ret != 'H';
    int rc = 0;

    strbuf_printf(boundary, "%s.%lld/%s", qid, (long long)m->now, m->hostname);
    strbuf_reset(out);
    strbuf_append(out, "Date: ");
    bounce_date(out, m->now);
    strbuf_appendf(out, "\nFrom: MAILER-DAEMON@%s (Mail Delivery System)\n", m->hostname);
    bounce_field(out, "To", m->to);
    strbuf_appendf(out, "Subject: %s\n", subjects[m->kind]);
    strbuf_appendf(out, "Message-Id: <%s@%s>\n", qid, m->hostname);
    strbuf_append(out, "Auto-Submitted: auto-replied\n");
    strbuf_append(out, "MIME-Version: 1.0\n");
    strbuf_appendf(out, "Content-Type: multipart/report; report-type=delivery-status;\n"
                        "\tboundary=\"%s\"\n", strbuf_str(boundary));
    strbuf_append(out, "Content-Transfer-Encoding: 8bit\n\n");
    strbuf_append(out, "This is a MIME-encapsulated message.\n\n");

    strbuf_appendf(out, "--%s\n", strbuf_str(boundary));
    strbuf_append(out, "Content-Description: Notification\n"
                       "Content-Type: text/plain; charset=utf-8\n\n");
    bounce_human(out, m, r, n);
    strbuf_append(out, "\n");

    strbuf_appendf(out, "--%s\n", strbuf_str(boundary));
    strbuf_append(out, "Content-Description: Delivery report\n"
                       "Content-Type: message/delivery-status\n\n");
    bounce_status_part(out, m, r, n);
    strbuf_append(out, "\n");

    strbuf_appendf(out, "--%s\n", strbuf_str(boundary));
    if (full)
        strbuf_append(out, "Content-Description: Undelivered Message\n"
                           "Content-Type: message/rfc822\n"
                           "Content-Transfer-Encoding: 8bit\n\n");
    else
        strbuf_appendf(out, "Content-Description: %s\n"
                            "Content-Type: text/rfc822-headers\n\n",
                       m->kind == BOUNCE_FAILED ? "Undelivered Message Headers"
                       : "Message Headers");
    if (bounce_original(out, orig, !full, m->size_limit, why) < 0)
        rc = -1;
    strbuf_appendf(out, "\n--%s--\n", strbuf_str(boundary));
    strbuf_free(&boundary);
    return rc;
}

int bounce_queue(const char *queue_dir, const struct bounce_msg *m, const struct bounce_rcpt *r,
                 size_t n, struct qfile *orig, char qid_r[QID_BUFSIZE], struct strbuf *why)
{
    struct qfile_writer *w;
    struct strbuf *text = strbuf_new(4096);
    int rc = -1;

    if ((w = qfile_create(queue_dir, why)) == NULL)
        goto out;
    snprintf(qid_r, QID_BUFSIZE, "%s", qfile_writer_qid(w));
    if (bounce_compose(m, r, n, orig, qid_r, text, why) < 0)
        goto out;
    qfile_add_sender(w, m->env_sender);
    qfile_add_rcpt(w, m->to, NULL, QFILE_NOTIFY_NEVER);
    qfile_add_attr(w, QFILE_ATTR_ORIGIN, "bounce");
    qfile_add_content(w, strbuf_str(text), strbuf_len(text));
    rc = qfile_commit(w, why);
out:
    qfile_writer_free(&w);
    strbuf_free(&text);
    return rc;
}
