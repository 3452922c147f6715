/*
 * maildir_quota.h - Maildir++ quotas: the "maildirsize" file.
 *
 * ROOT/maildirsize (the Maildir root, covering INBOX and every folder)
 * holds the quota definition on its first line, "<bytes>S,<count>C"
 * (either part may be missing), then lines "<bytes> <count>" whose sums
 * are the current use; deliveries and expunges append a line each (one
 * write with O_APPEND, so concurrent writers never interleave).  The file
 * is recalculated from the messages when it is missing, reaches 5120
 * bytes, carries another definition than the configured one, cannot be
 * parsed, or says "over quota" and is older than 15 minutes, as the
 * Maildir++ specification and Dovecot do.  Courier, maildrop, Exim and
 * Dovecot's maildir quota backend read and write the same file.
 */
#ifndef FACTEUR_MAILDIR_QUOTA_H
#define FACTEUR_MAILDIR_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define MAILDIR_QUOTA_FILE "maildirsize"
/* Recalculate once the file is this large (the spec's 5120 bytes). */
#define MAILDIR_QUOTA_RECALC_BYTES 5120
/* An "over quota" file older than this is recalculated first. */
#define MAILDIR_QUOTA_STALE_SECS (15 * 60)

struct maildir_quota {
    uint64_t limit_bytes;   /* 0: no byte limit */
    uint64_t limit_count;   /* 0: no message limit */
    int64_t bytes;          /* in use */
    int64_t count;
};

/*
 * Parse a definition ("10000000S,1000C", "5000S", "" for none) of len
 * bytes.  Returns 0, or -1 on anything else (why says what).
 */
int maildir_quota_parse_def(const char *s, size_t len, uint64_t *bytes_r,
                            uint64_t *count_r, struct strbuf *why);
/* Format a definition as the file's first line (without newline). */
void maildir_quota_format_def(struct strbuf *out, uint64_t bytes, uint64_t count);

/*
 * Parse a maildirsize file from memory into q.  Returns 0, or -1 if it is
 * malformed (bad definition, bad or truncated line, overflow, more than
 * 10,000 lines): the caller then recalculates.
 */
int maildir_quota_parse(const char *data, size_t len, struct maildir_quota *q,
                        struct strbuf *why);

/*
 * Recount every message of root (INBOX and all folders, sizes from S= or
 * stat) and write a fresh maildirsize with definition def (NULL keeps
 * the file's, or none) through tmp/ and rename().  A directory that
 * changes during the count makes it count again (at most 3 times).
 * Returns 0 and fills q, or -1.
 */
int maildir_quota_recalc(const char *root, const char *def, struct maildir_quota *q,
                         struct strbuf *why);

/*
 * The current quota of root.  def is the configured definition, or NULL
 * to take the file's (no file and no def: no quota, q all zero).
 * Recalculates when the rules above say so.  Returns 0 or -1.
 */
int maildir_quota_get(const char *root, const char *def, struct maildir_quota *q,
                      struct strbuf *why);

/* Would adding bytes and count messages pass a limit? */
bool maildir_quota_exceeded(const struct maildir_quota *q, uint64_t bytes,
                            uint64_t count);

/*
 * Record a change (a delivery: +size, +1; an expunge: -size, -1) by
 * appending one line.  Nothing happens when there is no maildirsize.
 * Returns 0 or -1.
 */
int maildir_quota_update(const char *root, int64_t bytes, int64_t count,
                         struct strbuf *why);

#endif
