/*
 * bounce.h - delivery status notifications (RFC 3464) queued as new
 * messages: failures (bounces), delay warnings and success reports.
 *
 * qmgr calls bounce_queue() when recipients fail for good, when a
 * message has waited delay_warning_time, or when a recipient asked for
 * NOTIFY=SUCCESS.  The notification is a multipart/report;
 * report-type=delivery-status message with a human-readable part, a
 * message/delivery-status part (per-message fields, then per recipient
 * Final-Recipient, Original-Recipient from ORCPT, Action, Status,
 * Remote-MTA, Diagnostic-Code, Will-Retry-Until for delays) and the
 * original: message/rfc822 (whole, up to bounce_size_limit bytes) when
 * RET=FULL or no RET was given on a failure, text/rfc822-headers
 * otherwise.
 *
 * It is written as a new queue file through lib/qfile with the envelope
 * sender given (the null sender for ordinary notifications) and the
 * "origin" attribute "bounce", and committed durably before
 * bounce_queue() returns 0: the caller may then mark the original's
 * recipients done.  Who gets it (the original sender, or postmaster for
 * a double bounce) is the caller's decision (bounce_recipient()).
 */
#ifndef FACTEUR_BOUNCE_H
#define FACTEUR_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <time.h>

#include "qfile.h"
#include "qid.h"
#include "strbuf.h"

enum bounce_kind {
    BOUNCE_FAILED,      /* Action: failed */
    BOUNCE_DELAYED,     /* Action: delayed */
    BOUNCE_SUCCESS,     /* Action: delivered */
};

struct bounce_rcpt {
    const char *addr;       /* Final-Recipient */
    const char *orcpt;      /* "type;address" from DSN ORCPT, or "" / NULL */
    const char *status;     /* enhanced status code "5.1.1" */
    const char *diag;       /* reply text for Diagnostic-Code, "" / NULL for none */
    const char *remote_mta; /* "mx.example.org" or NULL */
};

struct bounce_msg {
    enum bounce_kind kind;
    const char *qid;            /* the original's queue ID */
    const char *orig_sender;    /* the original's envelope sender */
    const char *to;             /* recipient of the notification */
    const char *env_sender;     /* envelope sender of the notification ("" usually) */
    const char *envid;          /* Original-Envelope-Id, or NULL */
    struct timeval arrival;     /* the original's arrival */
    char ret;                   /* 'F', 'H' or 0 (unspecified) */
    time_t retry_until;         /* BOUNCE_DELAYED: Will-Retry-Until */
    time_t now;                 /* Date: and the boundary (injected for tests) */
    const char *hostname;       /* Reporting-MTA and From: (myhostname) */
    long size_limit;            /* bytes of the original returned (bounce_size_limit) */
};

/* Where a failure notice about a message from sender goes, and with
 * which envelope sender, following Postfix: the sender itself with the
 * null sender; for the null sender (a bounce that bounced) postmaster
 * (bounce_notice_recipient) with double_bounce_sender as sender; for a
 * double bounce that fails, nobody (returns false: drop it and log).
 * to_r and sender_r receive the addresses (qualified with myorigin). */
bool bounce_recipient(const char *sender, struct strbuf *to_r, struct strbuf *sender_r);

/* Compose the whole notification (headers and body, LF line ends) into
 * out, reading the original's content from orig (rewound first).  qid is
 * the notification's own queue ID (for Message-ID).  Returns 0 or -1
 * with why (reading the original failed). */
int bounce_compose(const struct bounce_msg *m, const struct bounce_rcpt *r, size_t n,
                   struct qfile *orig, const char *qid, struct strbuf *out, struct strbuf *why);

/* Compose and queue the notification in queue_dir/incoming, durably
 * (qfile_commit).  qid_r gets the new queue ID.  Returns 0, or -1 with
 * why (nothing queued). */
int bounce_queue(const char *queue_dir, const struct bounce_msg *m, const struct bounce_rcpt *r,
                 size_t n, struct qfile *orig, char qid_r[QID_BUFSIZE], struct strbuf *why);

#endif
