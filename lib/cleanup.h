/*
 * cleanup.h - message cleanup on the way into the queue (smtpd, pickup).
 *
 * Postfix runs cleanup as a separate daemon; facteur runs it inside the
 * receiving process (DESIGN: fewer hops), so one message is cleaned and
 * written to its queue file (lib/qfile) by the process that receives it.
 *
 * A caller opens a cleanup when the envelope starts (the queue ID exists
 * from then on, for its log lines), gives the envelope, optionally a
 * Received: description, then every message line in order, then finishes:
 *
 *   c = cleanup_open(queue_dir, flags, why);
 *   cleanup_set_sender(c, "a@b"); cleanup_add_rcpt(c, "x@y", NULL, 0); ...
 *   cleanup_add_received(c, &r);
 *   for each line: cleanup_line(c, line, len);   (no CRLF, no dot-stuffing)
 *   switch (cleanup_finish(c, group, &seq, reply)) ...
 *   cleanup_free(&c);
 *
 * What cleanup does to the content, as Postfix's cleanup(8):
 *   - prepends the Received: header built from cleanup_add_received();
 *   - parses the primary header (lib/header: unfolding, bounded by
 *     header_size_limit a header and CLEANUP_HEADERS_MAX headers);
 *   - counts Received:/Delivered-To: headers against hopcount_limit;
 *   - applies header_checks to each header and body_checks to each body
 *     line (first body_checks_size_limit bytes), with Postfix
 *     header_checks(5) actions: REJECT, WARN, HOLD, DISCARD, IGNORE,
 *     PREPEND, REPLACE, DUNNO, OK (a table error: 451 4.3.0);
 *   - with CLEANUP_FL_SUBMISSION or CLEANUP_FL_LOCAL, adds Message-ID:
 *     and Date: when missing (and From: from the sender for local mail);
 *   - adds always_bcc, sender_bcc_maps and recipient_bcc_maps
 *     recipients (bcc maps are looked up once, at the first message line);
 *   - counts bytes against message_size_limit.
 * Addresses are stored as given: recipient_delimiter extensions are kept
 * for delivery (lmtpd and qmgr split them).
 *
 * Content goes to the queue file with LF line ends (qfile.h).  Nothing is
 * queued until cleanup_finish() returns CLEANUP_OK.
 *
 * Parameters (lib/params.def) are read from the var_ globals at
 * cleanup_open time; header_checks/body_checks/bcc maps are opened once
 * per process by cleanup_init().
 *
 * Logging (Postfix cleanup lines): "QID: message-id=<id>" once per message
 * (the one found or the one added); header_checks actions log
 * "QID: reject: header Subject: text from name[addr]; from=<s> to=<r>
 * proto=ESMTP helo=<h>: 5.7.1 text" (warning:/hold:/discard: likewise).
 */
#ifndef FACTEUR_CLEANUP_H
#define FACTEUR_CLEANUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qfile.h"
#include "strbuf.h"

/* cleanup_open flags. */
#define CLEANUP_FL_SUBMISSION 0x01  /* add missing Message-ID:, Date: */
#define CLEANUP_FL_LOCAL      0x02  /* pickup: also From: from the sender */
#define CLEANUP_FL_NOCHECKS   0x04  /* skip header_checks/body_checks */
#define CLEANUP_FL_NOBCC      0x08  /* skip always_bcc and the bcc maps */

/* cleanup_set_attr name for the sender's full name (sendmail -F): used
 * for a From: header added to local mail, not stored in the queue file. */
#define CLEANUP_ATTR_FULL_NAME "full_name"

/* Bounds on a message's primary header. */
#define CLEANUP_HEADERS_MAX   10000 /* headers in the primary header */

/* cleanup_finish results. */
#define CLEANUP_OK          0   /* queued (into hold/ if a HOLD action) */
#define CLEANUP_DISCARDED   1   /* answer 250, but nothing is queued */
#define CLEANUP_REJECT      2   /* 5xx, reply_r says which */
#define CLEANUP_TEMPFAIL    3   /* 4xx, reply_r says which */
#define CLEANUP_TOOBIG      4   /* 552 5.3.4 (message or one header too big) */
#define CLEANUP_HOPS        5   /* 554 5.4.0 too many hops */

/* Received: header description.  Every field may be NULL.  Printed as
 *   Received: from HELO (CLIENT_NAME [CLIENT_ADDR])
 *   \t(using TLS_SUMMARY)                      if tls_summary
 *   \t(Authenticated sender: SASL_USER)        if sasl_user and
 *                                              smtpd_sasl_authenticated_header
 *   \tby MYHOSTNAME (facteur) with PROTOCOL id QID
 *   \tfor <FOR_RCPT>; DATE
 * or, for local submission (client_addr NULL, userid set),
 *   Received: by MYHOSTNAME (facteur, from userid USERID)
 *   \tid QID; DATE
 * Strings are copied. */
struct cleanup_received {
    const char *helo;
    const char *client_name;
    const char *client_addr;
    const char *protocol;       /* "ESMTPSA"; NULL: "SMTP" (or nothing, local) */
    const char *tls_summary;    /* "TLSv1.3 with cipher X (256/256 bits)" */
    const char *sasl_user;
    const char *for_rcpt;       /* the single recipient, or NULL */
    const char *userid;         /* local submission: the uid as text */
};

struct cleanup;

/* Open the process-wide tables (header_checks, body_checks,
 * sender_bcc_maps, recipient_bcc_maps) from the var_ globals.  Call it in
 * pre_jail (tables may be outside a chroot); cleanup_open calls it itself
 * when it has not run.  Returns 0, or -1 with why (a table cannot be
 * opened; cleanup_open then fails too: the caller answers 451). */
int cleanup_init(struct strbuf *why);
/* Close those tables (tests, reload). */
void cleanup_deinit(void);

/* Start a message: creates the queue file under queue_dir/incoming.
 * flags: CLEANUP_FL_*.  NULL with why on failure (the caller answers
 * 451 4.3.0). */
struct cleanup *cleanup_open(const char *queue_dir, unsigned flags, struct strbuf *why);
/* The queue ID (valid until cleanup_free). */
const char *cleanup_qid(const struct cleanup *c);

/*
 * Envelope; all before the first cleanup_line().  Each returns 0 or -1
 * (bad argument, too late, or too many; the reason is kept and
 * cleanup_finish returns CLEANUP_TEMPFAIL or CLEANUP_REJECT with it).
 * addr is the external form ("" for the null sender); orcpt
 * "addr-type;address" or NULL; notify QFILE_NOTIFY_* bits.  A recipient
 * given twice (same address, same ORCPT) is stored once.
 */
int cleanup_set_sender(struct cleanup *c, const char *addr);
int cleanup_add_rcpt(struct cleanup *c, const char *addr, const char *orcpt, unsigned notify);
int cleanup_set_ret(struct cleanup *c, char ret);           /* 'F' or 'H' */
int cleanup_set_envid(struct cleanup *c, const char *envid);
int cleanup_set_flags(struct cleanup *c, unsigned flags);   /* QFILE_FL_* */
/* A queue file attribute (QFILE_ATTR_*); the client attributes also name
 * the client in cleanup's log lines. */
int cleanup_set_attr(struct cleanup *c, const char *name, const char *value);
/* Arrival time (default: the cleanup_open time). */
int cleanup_set_time(struct cleanup *c, const struct timeval *arrival);
/* Describe the Received: header to prepend (at most once).  Also sets the
 * client attributes (name, address, helo, protocol, SASL user, TLS) when
 * the caller has not set them. */
int cleanup_add_received(struct cleanup *c, const struct cleanup_received *r);

/* One message line, without its line terminator, already un-dot-stuffed;
 * headers then body, in order.  Returns 0, or -1 once the message is
 * doomed (rejected, too big, discarded, write error): the caller may stop
 * feeding lines but must still call cleanup_finish for the reply.  A line
 * may hold any byte except that LF inside it is not allowed (-1). */
int cleanup_line(struct cleanup *c, const char *line, size_t len);

/* End the message.  With g == NULL the queue file is committed and
 * incoming/ synced before returning (durable).  With a group the file is
 * prepared into it (qfile_group_prepare) and *seq_r set: the message is
 * durable (250 allowed) only once qfile_group_done(g, *seq_r).  A held
 * message (HOLD action) goes to hold/ and is durable on return even with
 * a group.  reply_r receives the full SMTP reply line without CRLF for
 * every result ("250 2.0.0 Ok: queued as QID" for CLEANUP_OK and
 * CLEANUP_DISCARDED).  Call it once; then only cleanup_free. */
int cleanup_finish(struct cleanup *c, struct qfile_group *g, uint64_t *seq_r,
                   struct strbuf *reply_r);

/* Number of recipients (bcc ones included once the header started) and
 * content bytes written so far. */
size_t cleanup_rcpt_count(const struct cleanup *c);
uint64_t cleanup_size(const struct cleanup *c);

/* Free; a message not successfully finished is removed (nothing queued). */
void cleanup_free(struct cleanup **cp);

/* ------------------------------------------------------------------ */
/* The drop format: local submission's input to cleanup.               */

/*
 * sendmail writes a message to facteur-drop(1) as records framed like
 * queue file records (qfile.h): a type byte, a 4-byte big-endian length,
 * that many data bytes.  Types, in this order:
 *   S  sender (exactly once; "" for <>)        at most QFILE_ADDR_MAX bytes
 *   R  recipient: NOTIFY byte + address        1..QFILE_RCPT_MAX of them
 *   N  RET 'F' or 'H'; I  ENVID (printable);   A  "full_name\0value" only
 *   M  content, LF line ends, after all of the above, up to QFILE_CHUNK_MAX
 *   E  end, empty; nothing may follow
 * Envelope text holds no control character or DEL.  facteur-drop checks
 * every record with cleanup_drop_check before writing it.
 */
#define CLEANUP_DROP_HDR  QFILE_REC_HDR

struct cleanup_drop {
    bool have_sender;
    bool in_content;        /* an M record was seen */
    bool ended;
    size_t nrcpt;
    uint64_t content;       /* content bytes so far */
    uint64_t size_limit;    /* content bound (0: none) */
};

/* Start checking one message; size_limit bounds its content (0: none). */
void cleanup_drop_init(struct cleanup_drop *d, uint64_t size_limit);
/* Decode a record header: type and length, checked against the type's
 * bound.  Returns 0, or -1 with why (unknown type, too long, a record
 * after E). */
int cleanup_drop_header(const struct cleanup_drop *d, const unsigned char hdr[CLEANUP_DROP_HDR],
                        int *type_r, uint32_t *len_r, struct strbuf *why);
/* Check a record's data (len bytes, any content) against the rules and
 * the records before it, and count it.  Returns 0, or -1 with why; after
 * -1 the message must be refused. */
int cleanup_drop_check(struct cleanup_drop *d, int type, const char *data, size_t len,
                       struct strbuf *why);
/* Append one framed record to out (the writer's side, sendmail). */
void cleanup_drop_frame(struct strbuf *out, int type, const void *data, size_t len);

#endif
