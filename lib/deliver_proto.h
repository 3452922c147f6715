/*
 * deliver_proto.h - delivery requests from qmgr to a delivery agent
 * (smtp, lmtp) and the agent's per-recipient reply.
 *
 * One request per connection, over the agent's UNIX socket
 * queue_dir/private/<transport>, as two lib/attr messages:
 *
 *   qmgr -> agent   request:
 *     S path          "active/<qid>", relative to queue_directory; the
 *                     agent opens the queue file itself (qfile_open,
 *                     read-only; read-write with mark_sent) for the content, RET,
 *                     ENVID and flags
 *     S qid           the queue ID (qid_valid; path ends in it)
 *     S nexthop       "[host]:port", "[host]", "host", "host:port",
 *                     "unix:/path" or "unix:private/lmtp" (a relative
 *                     unix: path is relative to queue_directory)
 *     S transport     master.cf service name ("smtp", "relay", "lmtp")
 *     S sender        envelope sender, "" for <>
 *     L arrival_us    arrival time, microseconds since the epoch
 *     L active_us     when qmgr took the message into active/ (same unit):
 *                     delays=a/b/c/d are a = active - arrival, b = request
 *                     received - active, c = connection setup, d = send
 *     L nrcpt         number of recipients, 1..DELIVER_RCPT_MAX
 *     per recipient i in 0..nrcpt-1:
 *     S rcpt_<i>          address (external form)
 *     L rcpt_<i>_index    its index in the queue file's recipient list
 *     S rcpt_<i>_orcpt    DSN ORCPT "type;address", "" for none
 *     L rcpt_<i>_notify   QFILE_NOTIFY_* bits
 *     optional, all three or none (the pipe transport: an alias entry
 *     |command or /file that rcpt_<i> expanded to):
 *     S rcpt_<i>_target   "|command" or "/absolute/path", 1..DELIVER_TARGET_MAX
 *     L rcpt_<i>_uid      the rights to deliver with: 1..DELIVER_ID_MAX,
 *     L rcpt_<i>_gid      never 0 for the uid (0..DELIVER_ID_MAX for the gid)
 *     optional:
 *     L mark_sent     1: the agent writes the done mark (QFILE_RCPT_SENT) of
 *                     each recipient it delivers into the queue file itself,
 *                     right after the reply that delivered it (pwrite, no
 *                     sync: qmgr's mark and sync follow), so that a kill of
 *                     the agent or of qmgr after that reply never delivers
 *                     the recipient again.  qmgr sends it only when every
 *                     rcpt_<i>_index of the request is the whole of that
 *                     queue file recipient (not one part of an expansion)
 *                     and no other request holds it.  Absent means 0.
 *
 *   agent -> qmgr   reply:
 *     S relay         "mx.example.org[192.0.2.1]:25", "none" when no
 *                     connection was made
 *     L throttle      1 when the failure concerns the destination itself
 *                     (no host reachable, greeting refused, session lost
 *                     before any recipient answer): qmgr slows down or
 *                     marks the destination dead; 0 otherwise
 *     L nrcpt         must equal the request's nrcpt
 *     per recipient i (same order as the request):
 *     L status_<i>    DELIVER_SENT (0), DELIVER_DEFER (4), DELIVER_BOUNCE (5)
 *     S dsn_<i>       enhanced status "X.Y.Z" (class matching status)
 *     S reply_<i>     text for the log and the DSN Diagnostic-Code, e.g.
 *                     "host mx[192.0.2.1] said: 550 5.1.1 unknown user
 *                     (in reply to RCPT TO command)" or "250 2.0.0 Ok"
 *
 * The agent logs the per-recipient "QID: to=<...>, relay=..., delay=...,
 * delays=a/b/c/d, dsn=..., status=sent|deferred|bounced (reply)" lines;
 * qmgr marks recipients done in the queue file from the reply and handles
 * deferral and bounces.  If the connection breaks before a whole reply is
 * read, qmgr treats every recipient of the request as deferred (the agent
 * may have delivered some: lmtpd's keyed delivery makes the retry
 * harmless on facteur's own LMTP path).
 *
 * Lock: while it works on a request the agent holds a shared flock(2) on
 * the queue file (deliver_lock_queue_file).  qmgr, before it loads a file
 * into the active queue, checks that no agent holds one
 * (deliver_queue_file_busy): an agent of a qmgr that was killed, or one
 * qmgr stopped waiting for, may still be delivering it, and loading the
 * file then would deliver those recipients a second time.
 *
 * Trust: both sides check the other strictly (deliver_request_parse,
 * deliver_reply_parse): missing, extra or mistyped attributes, a count out
 * of range, an address with a control character, a path that is not
 * "active/<valid qid>" are errors, never crashes.
 */
#ifndef FACTEUR_DELIVER_PROTO_H
#define FACTEUR_DELIVER_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"
#include "strbuf.h"

#define DELIVER_RCPT_MAX    1000    /* recipients per request */
#define DELIVER_TEXT_MAX    4096    /* bytes of a reply text, relay, nexthop */
#define DELIVER_TARGET_MAX  2048    /* bytes of a |command or /file target */
#define DELIVER_ID_MAX      0x7ffffffeL /* largest uid or gid in a request */

/* Per-recipient outcome (the first digit of a reply class). */
#define DELIVER_SENT    0
#define DELIVER_DEFER   4
#define DELIVER_BOUNCE  5

/* Limits for attr_read/attr_parse of requests and replies: enough
 * attributes for DELIVER_RCPT_MAX recipients. */
extern const struct attr_limits deliver_limits;

struct deliver_rcpt {
    char *addr;
    long index;             /* index in the queue file */
    char *orcpt;            /* "" if none */
    unsigned notify;        /* QFILE_NOTIFY_* */
    char *target;           /* "|command" or "/file", or NULL */
    long uid, gid;          /* with a target: rights of the delivery */
};

struct deliver_request {
    char *path;             /* "active/<qid>" */
    char *qid;
    char *nexthop;
    char *transport;
    char *sender;           /* "" for <> */
    long arrival_us;
    long active_us;
    struct deliver_rcpt *rcpts;
    size_t nrcpt;
    bool mark_sent;         /* the agent marks delivered recipients done */
};

struct deliver_status {
    int status;             /* DELIVER_SENT/DEFER/BOUNCE */
    char *dsn;              /* "2.0.0" */
    char *reply;            /* text */
};

struct deliver_reply {
    char *relay;            /* "none" if not connected */
    bool throttle;
    struct deliver_status *st;
    size_t nrcpt;
};

/* ---- request ---------------------------------------------------- */

/* Initialise an empty request (all strings NULL, no recipients). */
void deliver_request_init(struct deliver_request *req);
/* Free every member and re-initialise; the struct itself is the caller's. */
void deliver_request_clear(struct deliver_request *req);
/* Append a recipient (strings copied; orcpt NULL means ""). */
void deliver_request_add_rcpt(struct deliver_request *req, const char *addr, long index,
                              const char *orcpt, unsigned notify);
/* Give recipient i (< nrcpt) a pipe target ("|command" or "/path",
 * copied) delivered with uid and gid.  A bad value is a bug (log_panic):
 * an empty or over-long target, another first byte, a control character,
 * uid 0 or an id out of range. */
void deliver_request_set_target(struct deliver_request *req, size_t i, const char *target,
                                long uid, long gid);
/* Build the request message into out (reset first).  The request must be
 * complete and valid (nrcpt 1..DELIVER_RCPT_MAX): a bug otherwise
 * (log_panic). */
void deliver_request_format(const struct deliver_request *req, struct attr_list *out);
/* Check a received message strictly and fill req (cleared first; the
 * strings are copies owned by req).  Returns 0, or -1 with why. */
int deliver_request_parse(const struct attr_list *l, struct deliver_request *req,
                          struct strbuf *why);

/* ---- reply ------------------------------------------------------ */

/* Initialise a reply for nrcpt recipients (0..DELIVER_RCPT_MAX), each
 * DELIVER_DEFER with dsn "4.3.0" and reply "delivery status unknown",
 * relay "none", throttle false: an agent that fails midway reports a
 * deferral for everything it did not set. */
void deliver_reply_init(struct deliver_reply *rep, size_t nrcpt);
void deliver_reply_clear(struct deliver_reply *rep);
/* Set recipient i's outcome (strings copied).  status must be one of the
 * DELIVER_* values and i < nrcpt: a bug otherwise (log_panic). */
void deliver_reply_set(struct deliver_reply *rep, size_t i, int status, const char *dsn,
                       const char *reply);
void deliver_reply_set_relay(struct deliver_reply *rep, const char *relay);
/* Build the reply message into out (reset first). */
void deliver_reply_format(const struct deliver_reply *rep, struct attr_list *out);
/* Check a received reply strictly against the expected recipient count
 * and fill rep (cleared first).  A dsn must be "D.D{1,3}.D{1,3}" with its
 * class matching the status (2 for SENT, 4, 5).  Returns 0 or -1 with why. */
int deliver_reply_parse(const struct attr_list *l, size_t expect_nrcpt,
                        struct deliver_reply *rep, struct strbuf *why);

/* ---- helpers for agents and qmgr -------------------------------- */

/* True if s is "D.D{1,3}.D{1,3}" with D in 2, 4, 5 for the class. */
bool deliver_dsn_valid(const char *s);
/* The status word for a log line: "sent", "deferred", "bounced". */
const char *deliver_status_name(int status);
/* Append Postfix's "delay=T, delays=a/b/c/d" to out, from the arrival and
 * active times of the request, the time the agent got the request
 * (start_us), the time the connection was ready (conn_us, or start_us
 * when none was made) and now_us; all microseconds since the epoch.  Each
 * value is printed with Postfix's precision (two significant digits under
 * ten seconds, whole seconds above, "0" for less than 0.01). */
void deliver_format_delays(struct strbuf *out, long arrival_us, long active_us, long start_us,
                           long conn_us, long now_us);

/* ---- the queue file lock ---------------------------------------- */

/* Agent side: open path (relative to the queue directory) read-only and
 * take a shared flock on it, trying a few times for about a second while
 * qmgr's check holds it exclusively.  Returns the descriptor (closing it
 * releases the lock), or -1 with why. */
int deliver_lock_queue_file(const char *path, struct strbuf *why);
/* qmgr side: 1 if a delivery agent holds its lock on path, 0 if not, -1
 * with why (and errno, ENOENT for a file gone) when it cannot be opened. */
int deliver_queue_file_busy(const char *path, struct strbuf *why);

#endif
