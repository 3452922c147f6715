/*
 * lmtpd.h - the local delivery agent: what the LMTP session (lmtpd_session.c)
 * and the Maildir delivery (lmtpd_deliver.c) say to each other.
 *
 * The session speaks RFC 2033 and collects one transaction: the sender, the
 * recipients (each resolved at RCPT time through authd's userdb) and the
 * message (LF line ends, in memory, bounded by message_size_limit).  The
 * delivery side writes that message into every recipient's Maildir and
 * answers per recipient, reporting success only after the file and its
 * new/ directory are fsynced (DESIGN.md, durability rule).
 */
#ifndef FACTEUR_LMTPD_H
#define FACTEUR_LMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

#include "strbuf.h"
#include "stream.h"

/* Longest command line, CRLF included (ESMTP parameters make MAIL long). */
#define LMTPD_LINE_MAX 4096
/* Protocol errors before the session is ended with 421. */
#define LMTPD_ERROR_LIMIT 20
/* Message bound when message_size_limit is 0 ("no limit"): memory holds it. */
#define LMTPD_MSG_HARD_MAX ((uint64_t)1 << 30)
/* Slowest data rate (bytes/s) that extends the DATA/BDAT deadline. */
#define LMTPD_MIN_DATA_RATE 500
/* Longest message line kept in one piece by the data decoder. */
#define LMTPD_DATA_LINE_MAX 65536

/* One accepted recipient of the current transaction. */
struct lmtpd_rcpt {
    char *addr;             /* address as given in RCPT (external form) */
    char *user;             /* the userdb name that matched */
    char *detail;           /* extension after recipient_delimiter, "" if none */
    char *root;             /* Maildir root (INBOX) */
    char *folder;           /* detail folder to try first, "" for INBOX */
    char *quota_def;        /* maildirsize definition, "" for no quota */
    uid_t uid;              /* owner: files are written as uid:gid */
    gid_t gid;
    /* Outcome, filled by lmtpd_deliver(). */
    int status;             /* 0 delivered, 4 deferred, 5 bounced */
    struct strbuf *reply;   /* the LMTP reply line, without CRLF */
    struct strbuf *dir;     /* the Maildir written into (for the sync) */
    struct strbuf *name;    /* the file's final name, for the log */
    bool linked;            /* a file was linked: needs the new/ sync */
};

/* One transaction ready for delivery. */
struct lmtpd_msg {
    const char *log_id;     /* queue ID (XQID) or session ID, for logs */
    const char *qid;        /* XQID from the client, or NULL */
    const char *sender;     /* envelope sender, "" for <> */
    const char *data;       /* the message, LF line ends */
    size_t len;
    struct timeval start;   /* MAIL FROM time (delay= when no XQID) */
};

/* ---- lmtpd_deliver.c ---------------------------------------------- */

/* Once, after the jail: remember the groups to restore after each
 * per-recipient switch, and open mydestination's tables. */
void lmtpd_deliver_init(void);

/*
 * Resolve a recipient: strip the recipient_delimiter extension, ask authd
 * for "user@domain", then for "user" alone when domain is in mydestination
 * (or empty, <Postmaster>), and work out the Maildir from the userdb's
 * mail= (or mail_location) and home.  addr is the address to show.
 * Returns 0 and fills *r (free with lmtpd_rcpt_free), 1 for a permanent
 * refusal, -1 for a temporary one; then reply_r holds the reply line
 * ("550 5.1.1 ...", "451 4.3.0 ...") without CRLF.
 */
int lmtpd_rcpt_resolve(const char *addr, const char *local, const char *domain,
                       struct lmtpd_rcpt **r, struct strbuf *reply_r);

/*
 * With lmtp_rcpt_check_quota: would a message of size bytes pass r's
 * quota?  Returns 0 yes, 1 no (reply_r 552 5.2.2 or 452 4.2.2), -1 the
 * quota could not be read (reply_r 451).
 */
int lmtpd_rcpt_quota(struct lmtpd_rcpt *r, uint64_t size, struct strbuf *reply_r);

/*
 * Deliver m to each of the n recipients and set their status and reply.
 * Files are written as each recipient's owner; the new/ directories are
 * fsynced once each after all files are linked (group commit), and only
 * then is a recipient marked delivered.  Logs one line per recipient.
 */
void lmtpd_deliver(const struct lmtpd_msg *m, struct lmtpd_rcpt **rcpts, size_t n);

void lmtpd_rcpt_free(struct lmtpd_rcpt **rp);

/* ---- lmtpd_session.c ---------------------------------------------- */

/* Serve one LMTP client on s until QUIT, EOF, a timeout or too many
 * errors (the server skeleton's service function). */
void lmtpd_session(struct stream *s);

/*
 * Take "XQID=<queue id>" out of MAIL arguments: rest_r gets the arguments
 * without it (for smtp_parse_mail), qid_r the queue ID ("" if absent).
 * The path is skipped with its quoting, so a quoted local part holding
 * " XQID=" is not mistaken for the parameter.  Returns 0, or -1 for a
 * malformed, duplicated or invalid XQID (why says which).
 */
int lmtpd_mail_xqid(const char *args, size_t len, struct strbuf *rest_r,
                    struct strbuf *qid_r, struct strbuf *why);

#endif
