/*
 * qfile.h - queue files: format, durable writer, validating reader.
 *
 * FORMAT.  A queue file is a sequence of records:
 *
 *     type    1 byte, an ASCII letter (QFILE_REC_*)
 *     length  4 bytes, unsigned big-endian: the number of data bytes
 *     data    length bytes
 *
 * in this order:
 *
 *     V              version, data exactly QFILE_VERSION; always first
 *     envelope       any order, each at most once unless said otherwise:
 *       T            arrival time: 8 bytes signed seconds + 4 bytes
 *                    microseconds (< 1000000), big-endian; exactly once
 *       S            sender address (external form, "" for <>); exactly once
 *       R            recipient, once per recipient (1..QFILE_RCPT_MAX):
 *                      status  1 byte  QFILE_RCPT_* (updated in place)
 *                      notify  1 byte  QFILE_NOTIFY_* bits (DSN NOTIFY)
 *                      alen    2 bytes big-endian, 1..QFILE_ADDR_MAX
 *                      addr    alen bytes (external form)
 *                      orcpt   the rest, 0..QFILE_ORCPT_MAX bytes: DSN
 *                              ORCPT as "addr-type;address" (decoded)
 *                    the status byte is at (record offset + 5)
 *       N            DSN RET: 1 byte, 'F' (FULL) or 'H' (HDRS)
 *       I            DSN ENVID, 1..QFILE_ENVID_MAX printable ASCII bytes
 *       F            message flags: 4 bytes big-endian, QFILE_FL_* bits
 *       A            attribute, "name\0value": name 1..QFILE_ATTR_NAME_MAX
 *                    of [a-z0-9_], value 0..QFILE_ATTR_VALUE_MAX bytes;
 *                    up to QFILE_ATTRS_MAX, each name once.  Client
 *                    information for logs (QFILE_ATTR_* names)
 *     M              message content, 1..QFILE_CHUNK_MAX bytes a record,
 *                    zero or more records; no envelope record after the
 *                    first M.  The content is the RFC 5322 message as the
 *                    writer received it, without SMTP dot-stuffing; by
 *                    convention smtpd and pickup store lines ending in LF
 *                    (readers add CR for SMTP/LMTP).
 *     E              end: 8 bytes content length (sum of M lengths) + 4
 *                    bytes recipient count, big-endian; the last record:
 *                    the file ends right after it.
 *
 * Addresses, the sender, ORCPT and attribute values hold no byte below
 * 0x20 and no DEL (they reach log lines); UTF-8 is allowed.
 *
 * DURABILITY.  A writer creates "incoming/.tmp.<pid>.<n>.<usec>" (O_EXCL,
 * mode 0600); its queue ID (qid.h) comes from the creation time and the
 * file's inode, so it is known (and may be logged) from the start.
 * qfile_commit_prepare() appends E, flushes, fdatasyncs the file, and
 * renames it to incoming/<qid> without replacing anything; only then can a
 * scanner see it, and only whole.  The rename itself survives a power loss
 * only after a sync of incoming/: qfile_sync_dir().  qfile_commit() is the
 * two in a row.  A file without E (a crash while writing) keeps its temp
 * name, which qid_valid() rejects, so it is never delivered;
 * qfile_purge_tmp() removes old ones.
 *
 * GROUP COMMIT.  An fsync of a directory makes durable every rename into
 * it that completed before the fsync started, whichever process did it.
 * So several messages may share one qfile_sync_dir(): call
 * qfile_commit_prepare() for each, then one qfile_sync_dir() started after
 * the last of those prepare calls returned, and send each 250 only after
 * that sync returned 0.  A sync that started before a prepare returned does
 * not cover it.  struct qfile_group keeps that bookkeeping for a process
 * that batches its own messages (an event loop flushing in its
 * before-sleep hook); processes that each commit one message get the
 * sharing from the kernel, which merges concurrent directory syncs into one
 * journal commit.
 *
 * READER.  qfile_open() trusts nothing: it checks every record header
 * (type, length within the bounds below, within the file), the order, the
 * once-only and required records, the E totals and that E ends the file,
 * reading the envelope into memory and skipping over content records
 * without reading their data.  A file that fails is reported with why; the
 * caller moves it to corrupt/.  Content is read afterwards, sequentially,
 * with qfile_content_read().
 *
 * DONE FLAGS.  qfile_rcpt_mark() writes one recipient's status byte with
 * pwrite and fdatasyncs it, so qmgr never delivers a recipient twice;
 * qfile_rcpt_set() + one qfile_sync() does the same for a batch.
 */
#ifndef FACTEUR_QFILE_H
#define FACTEUR_QFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

#include "qid.h"
#include "strbuf.h"

#define QFILE_VERSION       "facteur-queue 1"

#define QFILE_REC_VERSION   'V'
#define QFILE_REC_TIME      'T'
#define QFILE_REC_SENDER    'S'
#define QFILE_REC_RCPT      'R'
#define QFILE_REC_RET       'N'
#define QFILE_REC_ENVID     'I'
#define QFILE_REC_FLAGS     'F'
#define QFILE_REC_ATTR      'A'
#define QFILE_REC_CONTENT   'M'
#define QFILE_REC_END       'E'

#define QFILE_REC_HDR       5           /* type + length */
#define QFILE_ADDR_MAX      2048
#define QFILE_ORCPT_MAX     1024
#define QFILE_ENVID_MAX     100
#define QFILE_ATTR_NAME_MAX 32
#define QFILE_ATTR_VALUE_MAX 1024
#define QFILE_ATTRS_MAX     64
#define QFILE_RCPT_MAX      100000
#define QFILE_CHUNK_MAX     65536

/* Recipient status byte. */
#define QFILE_RCPT_OPEN     'T'     /* not yet delivered */
#define QFILE_RCPT_SENT     'S'     /* delivered */
#define QFILE_RCPT_BOUNCED  'B'     /* failed for good; any DSN owed is queued */
#define QFILE_RCPT_DROPPED  'X'     /* removed (admin, milter): no delivery */

/* DSN NOTIFY bits (same values as smtp_syntax.h SMTP_NOTIFY_*). */
#define QFILE_NOTIFY_NEVER   0x01
#define QFILE_NOTIFY_SUCCESS 0x02
#define QFILE_NOTIFY_FAILURE 0x04
#define QFILE_NOTIFY_DELAY   0x08
#define QFILE_NOTIFY_MASK    0x0f

/* Message flags (F record). */
#define QFILE_FL_SMTPUTF8   0x01    /* MAIL ... SMTPUTF8 */
#define QFILE_FL_8BITMIME   0x02    /* BODY=8BITMIME */
#define QFILE_FL_BINARYMIME 0x04    /* BODY=BINARYMIME */
#define QFILE_FL_7BIT       0x08    /* BODY=7BIT given explicitly */
#define QFILE_FL_MASK       0x0f

/* Attribute names used by smtpd and pickup (for logging, Received:). */
#define QFILE_ATTR_CLIENT_NAME    "client_name"
#define QFILE_ATTR_CLIENT_ADDR    "client_address"
#define QFILE_ATTR_CLIENT_PORT    "client_port"
#define QFILE_ATTR_HELO           "helo_name"
#define QFILE_ATTR_PROTOCOL       "protocol"        /* SMTP, ESMTPSA, LMTP... */
#define QFILE_ATTR_SASL_USER      "sasl_username"
#define QFILE_ATTR_SASL_METHOD    "sasl_method"
#define QFILE_ATTR_TLS            "tls_info"        /* "TLSv1.3 with cipher ..." */
#define QFILE_ATTR_ORIGIN         "origin"          /* "smtpd", "pickup", "bounce" */

/* ------------------------------------------------------------------ */
/* Writer.                                                             */

struct qfile_writer;

/* Create a new queue file under queue_dir/incoming (must exist).  The
 * arrival time defaults to now.  Returns NULL with why on failure. */
struct qfile_writer *qfile_create(const char *queue_dir, struct strbuf *why);
/* Same in queue_dir/<queue> (e.g. "maildrop" for facteur-drop, whose files
 * pickup validates with qfile_open() before queueing them); commit renames
 * within that directory and qfile_commit() syncs it. */
struct qfile_writer *qfile_create_in(const char *queue_dir, const char *queue,
                                     struct strbuf *why);
/* The queue ID (valid for the writer's life). */
const char *qfile_writer_qid(const struct qfile_writer *w);
/* The file's path: the temp name before commit, incoming/<qid> after. */
const char *qfile_writer_path(const struct qfile_writer *w);

/*
 * Envelope records, before any content.  Each returns 0, or -1 when the
 * writer has failed (sticky: a bad argument, an order or bound violation,
 * or an I/O error; the first reason is kept and qfile_commit_prepare()
 * returns it).  Callers may skip checking and check the commit only.
 */
int qfile_add_time(struct qfile_writer *w, const struct timeval *arrival);
int qfile_add_sender(struct qfile_writer *w, const char *addr);
/* orcpt: "addr-type;address" or NULL/"" for none; notify: QFILE_NOTIFY_*. */
int qfile_add_rcpt(struct qfile_writer *w, const char *addr, const char *orcpt,
                   unsigned notify);
int qfile_add_ret(struct qfile_writer *w, char ret);   /* 'F' or 'H' */
int qfile_add_envid(struct qfile_writer *w, const char *envid);
int qfile_add_flags(struct qfile_writer *w, unsigned flags);
int qfile_add_attr(struct qfile_writer *w, const char *name, const char *value);
/* Message content, any amount a call; records are cut at QFILE_CHUNK_MAX. */
int qfile_add_content(struct qfile_writer *w, const void *buf, size_t len);
/* Number of recipients and content bytes added so far. */
size_t qfile_writer_rcpt_count(const struct qfile_writer *w);
uint64_t qfile_writer_content_size(const struct qfile_writer *w);

/* Commit into another queue of queue_dir instead (e.g. "hold"): the
 * rename goes from the temp name straight there, so no scanner of the
 * writer's own queue ever sees the file, and qfile_commit() syncs that
 * queue.  Call before qfile_commit_prepare().  queue must be a plain
 * lower-case name; -1 with why otherwise or after the commit. */
int qfile_writer_set_queue(struct qfile_writer *w, const char *queue, struct strbuf *why);
/* Finish the file: requires a sender and at least one recipient; writes
 * E, flushes, fdatasyncs, renames to incoming/<qid>.  Returns 0, or -1
 * with why (the temp file is then removed).  Not yet durable against power
 * loss: see qfile_sync_dir() and GROUP COMMIT above. */
int qfile_commit_prepare(struct qfile_writer *w, struct strbuf *why);
/* fsync queue_dir/incoming.  Returns 0 or -1 with why. */
int qfile_sync_dir(const char *queue_dir, struct strbuf *why);
/* fsync queue_dir/<queue>.  Returns 0 or -1 with why. */
int qfile_sync_queue(const char *queue_dir, const char *queue, struct strbuf *why);
/* qfile_commit_prepare() then qfile_sync_dir(): 0 means the message is
 * safely queued and 250 may be sent. */
int qfile_commit(struct qfile_writer *w, struct strbuf *why);
/* Free the writer; a file not yet prepared is removed (abort). */
void qfile_writer_free(struct qfile_writer **wp);

/* True if name (a directory entry) is a writer's temp file. */
bool qfile_is_tmp_name(const char *name);
/* Remove temp files in queue_dir/incoming older than min_age seconds
 * whose writer (the pid in the name) no longer runs: left by crashed
 * writers.  Returns the number removed, or -1 with why. */
int qfile_purge_tmp(const char *queue_dir, time_t min_age, struct strbuf *why);
/* Same in queue_dir/<queue>. */
int qfile_purge_tmp_in(const char *queue_dir, const char *queue, time_t min_age,
                       struct strbuf *why);

/* Group commit bookkeeping for one process (see GROUP COMMIT). */
struct qfile_group {
    char *queue_dir;
    uint64_t prepared;      /* sequence number of the last prepared file */
    uint64_t synced;        /* every sequence number <= this is durable */
};
void qfile_group_init(struct qfile_group *g, const char *queue_dir);
void qfile_group_free(struct qfile_group *g);
/* qfile_commit_prepare(w) and, on success, a new sequence number in
 * *seq_r.  Returns 0 or -1 with why. */
int qfile_group_prepare(struct qfile_group *g, struct qfile_writer *w, uint64_t *seq_r,
                        struct strbuf *why);
/* Sync incoming/ once for every file prepared so far (nothing to do if
 * none is pending).  Returns 0 or -1 with why; on -1 nothing new counts
 * as durable (the caller answers 4xx or retries the sync). */
int qfile_group_sync(struct qfile_group *g, struct strbuf *why);
/* True once the file with sequence number seq is durable (250 allowed). */
bool qfile_group_done(const struct qfile_group *g, uint64_t seq);

/* ------------------------------------------------------------------ */
/* Reader.                                                             */

struct qfile_rcpt {
    const char *addr;       /* NUL-terminated, owned by the qfile */
    const char *orcpt;      /* "" if none */
    unsigned notify;        /* QFILE_NOTIFY_* */
    int status;             /* QFILE_RCPT_* as on disk (or as last set) */
    off_t status_off;       /* file offset of the status byte */
};

struct qfile_attr {
    const char *name;
    const char *value;
};

/* The envelope, as read and validated.  Strings are owned by the qfile
 * and live until qfile_close(). */
struct qfile_env {
    struct timeval arrival;
    const char *sender;     /* "" for the null sender */
    struct qfile_rcpt *rcpts;
    size_t nrcpt;
    char ret;               /* 0, 'F' or 'H' */
    const char *envid;      /* NULL if none */
    unsigned flags;         /* QFILE_FL_* */
    struct qfile_attr *attrs;
    size_t nattr;
    uint64_t content_size;
    off_t content_off;      /* offset of the first M record (or of E) */
};

struct qfile;

#define QFILE_OPEN_RDWR 0x01    /* open for qfile_rcpt_mark/_set */

/* Open and validate a queue file.  The queue ID is taken from the file
 * name when it is a valid one ("" otherwise).  Returns NULL with why for a
 * system error or a corrupt file; *corrupt_r (may be NULL) tells which, so
 * the caller knows whether to move the file to corrupt/. */
struct qfile *qfile_open(const char *path, int flags, bool *corrupt_r, struct strbuf *why);
/* Same over an open descriptor (taken over: qfile_close closes it);
 * flags as above, the descriptor must have been opened to match. */
struct qfile *qfile_open_fd(int fd, int flags, bool *corrupt_r, struct strbuf *why);
void qfile_close(struct qfile **qfp);

const struct qfile_env *qfile_env(const struct qfile *qf);
const char *qfile_qid(const struct qfile *qf);
/* Value of the first attribute called name, or NULL. */
const char *qfile_attr(const struct qfile *qf, const char *name);
/* True if every recipient's status is not QFILE_RCPT_OPEN. */
bool qfile_all_done(const struct qfile *qf);

/* Read up to len content bytes: returns the count, 0 at the end, -1 with
 * why (I/O error, or a file changed under us). */
ssize_t qfile_content_read(struct qfile *qf, void *buf, size_t len, struct strbuf *why);
/* Start reading content from the beginning again. */
void qfile_content_rewind(struct qfile *qf);

/* Set recipient i's status byte (pwrite, no sync).  status is one of
 * QFILE_RCPT_*.  Returns 0 or -1 with why (not opened RDWR, bad index). */
int qfile_rcpt_set(struct qfile *qf, size_t i, int status, struct strbuf *why);
/* fdatasync the file: every qfile_rcpt_set before it is durable. */
int qfile_sync(struct qfile *qf, struct strbuf *why);
/* qfile_rcpt_set + qfile_sync. */
int qfile_rcpt_mark(struct qfile *qf, size_t i, int status, struct strbuf *why);

/* ------------------------------------------------------------------ */
/* Raw records (facteur-cat, repair tools).                            */

/* Called for each record: type, file offset of its header, its data
 * (len bytes; NULL when len > QFILE_CHUNK_MAX).  Return 0 to go on,
 * anything else to stop the walk with that value. */
typedef int qfile_record_fn(int type, off_t off, const unsigned char *data, uint32_t len,
                            void *ctx);
/* Walk the records of an open queue file from its start, checking only
 * the framing (so a damaged file can still be shown up to the damage).
 * Returns 0 at a clean end of file, fn's non-zero value if it stopped
 * the walk, or -1 with why (I/O error, or a record cut short by the end of
 * the file). */
int qfile_walk(int fd, qfile_record_fn *fn, void *ctx, struct strbuf *why);

#endif
