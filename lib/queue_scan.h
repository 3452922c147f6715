/*
 * queue_scan.h - what the queue commands (facteur-queue, facteur-super,
 * facteur-cat, facteur flush) share: walking the queues, summarising a
 * message for mailq, the defer logs, moving files between queues, and the
 * mailq / JSON output formats.
 *
 * QUEUES.  queue_directory holds maildrop, incoming, active, deferred,
 * hold and corrupt (queue_scan_queues[]), flat (hash depth 0): a message
 * is queue_dir/<queue>/<qid>.  A name that is not a valid queue ID (qid.h)
 * is never a message: writers' temp files and strays are skipped by every
 * listing.  Nothing found in the spool is trusted: files are opened with
 * qfile_open(), which validates every record, and a file that fails is
 * reported, never listed as a message.
 *
 * DEFER LOGS.  qmgr writes queue_dir/defer/<qid> when a message moves to
 * deferred/: one line per deferred recipient,
 *
 *     recipient=<address> reason=<text>\n
 *
 * where address is the recipient as in the queue file (external form, no
 * angle brackets) and text the delay reason (the remote reply or the local
 * error), on one line.  A later line for the same address wins.  The
 * reader (queue_defer_parse) bounds the file (QUEUE_DEFER_FILE_MAX), each
 * line (QUEUE_DEFER_LINE_MAX) and the count of entries
 * (QUEUE_DEFER_ENTRIES_MAX); lines it cannot parse are skipped.
 * defer/<qid>.warned (empty) marks a message whose sender already got a
 * delay warning.
 *
 * MOVES.  Every move between queues is a rename() within the queue
 * directory followed by an fsync of the target and source directories, so
 * it is atomic for a concurrent qmgr (which tolerates a file vanishing
 * from under it) and durable once the call returns.  The commands work
 * while the system runs, as Postfix's do.
 */
#ifndef FACTEUR_QUEUE_SCAN_H
#define FACTEUR_QUEUE_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "qid.h"
#include "strbuf.h"

#define QUEUE_DEFER_FILE_MAX    (1024 * 1024)   /* bytes of one defer log */
#define QUEUE_DEFER_LINE_MAX    8192            /* bytes of one line */
#define QUEUE_DEFER_ENTRIES_MAX 100000          /* entries kept (QFILE_RCPT_MAX) */
#define QUEUE_SCAN_MAX          1000000         /* files listed in one queue */

/* The message queues, in listing order, NULL-terminated. */
extern const char *const queue_scan_queues[];

/* True if name is one of queue_scan_queues[]. */
bool queue_scan_is_queue(const char *name);

/* ---- listing --------------------------------------------------------- */

/* One directory entry that is a message: a valid queue ID. */
struct queue_entry {
    char qid[QID_BUFSIZE];
    const char *queue;          /* static: an element of queue_scan_queues[] */
};

/*
 * The messages in queue_dir/<queue> (a name from queue_scan_queues), sorted
 * by queue ID (arrival order), at most QUEUE_SCAN_MAX.  Appends to
 * *list_r / *n_r (grown with xreallocarray; start with NULL / 0, free with
 * free()).  A missing queue directory is an empty queue.  Returns 0, or -1
 * with why when the directory cannot be read (errno kept: EACCES tells the
 * caller to explain privileges).
 */
int queue_scan_list(const char *queue_dir, const char *queue, struct queue_entry **list_r,
                    size_t *n_r, struct strbuf *why);

/* Find message qid (must be valid) in the queues: returns the queue name
 * (static) or NULL when it is in none. */
const char *queue_scan_find(const char *queue_dir, const char *qid);

/* queue_dir/<queue>/<qid> into out. */
void queue_scan_path(struct strbuf *out, const char *queue_dir, const char *queue,
                     const char *qid);

/* ---- one message, as mailq shows it ---------------------------------- */

struct queue_msg_rcpt {
    char *addr;                 /* owned */
    char *reason;               /* owned; "" when no defer log names it */
};

struct queue_msg {
    char qid[QID_BUFSIZE];
    const char *queue;          /* static */
    time_t arrival;             /* T record, seconds */
    uint64_t size;              /* content bytes (E record) */
    char *sender;               /* owned; "" for <> */
    struct queue_msg_rcpt *rcpts;   /* recipients not yet done, in file order */
    size_t nrcpt;
};

/*
 * Read message qid from queue: its envelope through qfile_open() and the
 * delay reasons from defer/<qid>.  Recipients already delivered, bounced
 * or dropped are left out (as mailq does).  Returns 0, or -1 with why (a
 * file gone since the listing: errno ENOENT; a corrupt file: *corrupt_r
 * true, which may be NULL).
 */
int queue_msg_load(const char *queue_dir, const char *queue, const char *qid,
                   struct queue_msg *m, bool *corrupt_r, struct strbuf *why);
void queue_msg_free(struct queue_msg *m);

/* True if one of m's pending recipients has its domain equal to site
 * (case-insensitive; a leading '.' in site also admits subdomains, as in
 * Postfix's parent-domain matching). */
bool queue_msg_matches_site(const struct queue_msg *m, const char *site);

/* ---- defer logs -------------------------------------------------------- */

/* Called for each parsed line: address and reason, both NUL-terminated
 * and valid only during the call. */
typedef void queue_defer_fn(const char *addr, const char *reason, void *ctx);

/* Parse len bytes of a defer log (DEFER LOGS above).  Returns the number
 * of entries passed to fn, or -1 when the text is longer than
 * QUEUE_DEFER_FILE_MAX (nothing passed).  Over-long and malformed lines
 * are skipped; at most QUEUE_DEFER_ENTRIES_MAX entries are passed. */
int queue_defer_parse(const char *text, size_t len, queue_defer_fn *fn, void *ctx);

/* Remove defer/<qid> (and defer/<qid>.warned too when all is true); a
 * missing file is fine.  Returns 0 or -1 with why. */
int queue_defer_remove(const char *queue_dir, const char *qid, bool all, struct strbuf *why);

/* ---- output formats ---------------------------------------------------- */

/* The mailq heading line (Postfix's short-ID format). */
void queue_format_heading(struct strbuf *out);
/* Append one message in mailq format: the ID with '*' (active) or '!'
 * (hold), size, arrival time (local time, asctime form), sender, then each
 * recipient, preceded by "(reason)" right-aligned when its reason differs
 * from the previous recipient's.  No blank line before or after. */
void queue_format_mailq(struct strbuf *out, const struct queue_msg *m);
/* The closing line: "\n-- N Kbytes in N Request(s).\n", or
 * "Mail queue is empty\n" when count is 0. */
void queue_format_summary(struct strbuf *out, uint64_t total_size, size_t count);
/* Append one message as one JSON object and a newline, with postqueue -j's
 * fields: queue_name, queue_id, arrival_time, message_size, forced_expire,
 * sender, recipients [{address, delay_reason (only when known)}]. */
void queue_format_json(struct strbuf *out, const struct queue_msg *m);
/* Append s as the inside of a JSON string: '"' and '\\' escaped, control
 * characters as \b \f \n \r \t or \u00XX, bytes that are not valid UTF-8
 * as '?'. */
void queue_json_quote(struct strbuf *out, const char *s);

/* ---- changes ------------------------------------------------------------ */

/*
 * Move queue_dir/<from>/<qid> to queue_dir/<to>/<qid> (rename, never
 * replacing an existing file), optionally setting its mtime to now (the
 * deferred queue reads the mtime as the retry time), then fsync both
 * directories.  Returns 0, or -1 with why (errno ENOENT: not there any
 * more; EEXIST: the target name is taken).
 */
int queue_move(const char *queue_dir, const char *from, const char *to, const char *qid,
               bool touch, struct strbuf *why);

/* Remove queue_dir/<queue>/<qid> and its defer logs, then fsync the
 * queue directory.  Returns 0, or -1 with why (errno ENOENT: gone). */
int queue_delete(const char *queue_dir, const char *queue, const char *qid,
                 struct strbuf *why);

/* Set the mtime of queue_dir/<queue>/<qid> to now.  Returns 0 or -1. */
int queue_touch(const char *queue_dir, const char *queue, const char *qid, struct strbuf *why);

/*
 * Flush: make every deferred message due now (mtime = now) and ask qmgr
 * to retry everything ("FAI": forget dead destinations, scan all queues,
 * scan incoming) through public/qmgr.  What `facteur flush` and
 * `facteur-queue -f` do.  Returns the number of deferred messages made
 * due, or -1 with why when the deferred queue cannot be read or qmgr
 * could not be reached (the files are still due: qmgr takes them at its
 * next deferred-queue run).
 */
int queue_flush_all(const char *queue_dir, struct strbuf *why);

/*
 * Deliver one deferred message now: move deferred/<qid> to incoming/ with
 * mtime now (Postfix's flush daemon does the same), without the trigger.
 * A message already in incoming/ or active/ is left as is.  Returns 1 when
 * moved, 0 when nothing was to be done (in incoming/ or active/), -1 with
 * why (not queued, held: errno ENOENT / EPERM).
 */
int queue_kick(const char *queue_dir, const char *qid, struct strbuf *why);

/* Wake qmgr for newly movable mail: "FI" to public/qmgr.  Returns 0, or
 * -1 with why when qmgr cannot be reached. */
int queue_wake_qmgr(const char *queue_dir, struct strbuf *why);

#endif
