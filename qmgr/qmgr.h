/*
 * qmgr.h - the queue manager's shared state: messages in the active
 * queue, recipient entries, destinations.
 *
 * qmgr runs as one process (master.cf maxproc 1) in the queue directory
 * (the skeleton's working directory), so every path here is relative to
 * it.  A message lives in active/ from the moment qmgr takes it until
 * every recipient is either done in the queue file (then it is removed)
 * or deferred (then it moves to deferred/ with its retry time as mtime).
 * Recipients are marked done in the queue file before anything else
 * happens to them, so a restart (everything in active/ is loaded again)
 * never delivers a done recipient twice.
 */
#ifndef FACTEUR_QMGR_H
#define FACTEUR_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qfile.h"
#include "qid.h"
#include "resolve.h"
#include "strbuf.h"

struct qmgr_dest;
struct qmgr_part;

/* The master.cf service that delivers |command and /file alias targets. */
#define QMGR_PIPE_SERVICE "pipe"

/* One recipient on its way to one destination. */
struct qmgr_entry {
    struct qmgr_message *msg;
    size_t index;               /* recipient index in the queue file */
    char *addr;                 /* final address (after rewriting) */
    struct qmgr_entry *next;    /* in the destination queue */
    /* A |command or /file part of the recipient's alias expansion (pipe
     * transport): the target, its rights, and the expansion it belongs
     * to; the recipient is decided when all its parts have ended. */
    char *target;               /* "|command" or "/path", or NULL */
    long uid, gid;
    struct qmgr_part *part;
    size_t part_target;         /* index in the part's expansion */
};

/* A failed or deferred recipient waiting for the message's next step. */
struct qmgr_outcome {
    size_t index;
    char *addr;
    char *dsn;
    char *text;
    char *relay;
};

struct qmgr_message {
    char qid[QID_BUFSIZE];
    char path[QID_BUFSIZE + 8];     /* "active/QID" */
    struct qfile *qf;               /* open read-write */
    char *sender;                   /* after sender canonical rewriting */
    long arrival_us, active_us;
    size_t pending;                 /* entries queued or in flight */
    size_t nentries;                /* entries created (counted against the limit) */
    bool noexpand;                  /* a message made of an alias expansion */
    bool forwarded;                 /* made a new message: wake the incoming scan */
    struct qmgr_outcome *defers;
    size_t ndefer;
    struct qmgr_message *prev, *next;
};

/* ---- qmgr.c ------------------------------------------------------ */

extern struct resolve *qmgr_resolve;
extern size_t qmgr_active_count;        /* messages in memory */
extern size_t qmgr_entry_count;         /* recipient entries in memory */
/* Ask for an incoming/ scan from the loop (after a forward or bounce). */
void qmgr_want_scan(void);
/* Microseconds since the epoch. */
long qmgr_now_us(void);

/* ---- qmgr_message.c: load, resolve, finish ------------------------- */

/* Load active/<qid> (already moved there), resolve its recipients and
 * queue them to their destinations.  Corrupt files go to corrupt/. */
void qmgr_message_load(const char *qid);
/* One entry (or a decision of qmgr's own) ended: when nothing is pending
 * any more the message is removed or deferred. */
void qmgr_message_release(struct qmgr_message *msg);
/* Record a deferral for recipient index (logged by the caller). */
void qmgr_message_defer(struct qmgr_message *msg, size_t index, const char *addr,
                        const char *dsn, const char *text, const char *relay);
/* True once the message is older than its queue lifetime
 * (maximal_queue_lifetime; bounce_queue_lifetime for the null sender). */
bool qmgr_message_expired(const struct qmgr_message *msg);
/* Log "QID: to=<addr>, [orig_to=<o>, ]relay=..., delay=..., delays=...,
 * dsn=..., status=STATUS (text)" for an outcome qmgr decided itself. */
void qmgr_log_rcpt(const struct qmgr_message *msg, size_t index, const char *addr,
                   const char *relay, const char *dsn, const char *status, const char *text);
/* Mark recipients done and sync.  Returns 0 or -1 (logged). */
int qmgr_mark(struct qmgr_message *msg, const size_t *indexes, size_t n, int status);
/* Bounce recipients: queue the DSN owed (if any) durably, then mark them
 * bounced and (how) log them.  On failure to queue the DSN they are
 * deferred instead. */
#define QMGR_BOUNCE_LOGGED  0   /* the delivery agent logged them */
#define QMGR_BOUNCE_LOG     1   /* log status=bounced */
#define QMGR_BOUNCE_EXPIRED 2   /* log status=expired, returned to sender */
void qmgr_bounce(struct qmgr_message *msg, const struct qmgr_outcome *b, size_t n, int how);

/* A part entry (e->part set) ended with status DELIVER_SENT, _DEFER or
 * _BOUNCE (logged by whoever decided it).  When the last part of the
 * recipient ends, the recipient is decided: any deferral defers it whole
 * (a retry repeats the parts that succeeded, as Postfix local(8) does);
 * else failed parts get a DSN, addresses of the expansion are forwarded,
 * and the recipient is marked done (or bounced if nothing succeeded).
 * Must be called before the entry's qmgr_message_release. */
void qmgr_part_done(struct qmgr_entry *e, int status, const char *dsn, const char *text,
                    const char *relay);

/* ---- qmgr_sched.c: destinations ----------------------------------- */

/* Queue an entry for transport/nexthop. */
void qmgr_sched_enqueue(const char *transport, const char *nexthop, struct qmgr_entry *e);
/* Start as many deliveries as the limits allow. */
void qmgr_sched_run(void);
/* A delivery to d ended: feedback for slow start and dead marking. */
void qmgr_sched_done(struct qmgr_dest *d, bool throttle, bool success, const char *reason);
/* Forget dead marks ("F" trigger, deferred scans). */
void qmgr_sched_revive(void);
const char *qmgr_dest_transport(const struct qmgr_dest *d);
const char *qmgr_dest_nexthop(const struct qmgr_dest *d);
/* Deliveries in flight (all destinations). */
extern size_t qmgr_inflight;

/* ---- qmgr_deliver.c: one delivery request --------------------------- */

/* Send entries (same message, same destination, n >= 1) to the agent;
 * takes ownership of the entries.  Always ends in qmgr_sched_done and
 * qmgr_message_release for each entry, possibly before it returns. */
void qmgr_deliver_start(struct qmgr_dest *d, struct qmgr_entry **entries, size_t n);
/* Free an entry (not its message). */
void qmgr_entry_free(struct qmgr_entry *e);

/* ---- qmgr_defer.c: deferred/, defer logs, warnings, removal --------- */

/* The message is finished for this round (nothing pending): remove it
 * when every recipient is done, else defer it.  Frees msg. */
void qmgr_defer_finish(struct qmgr_message *msg);

#endif
