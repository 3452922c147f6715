/*
 * qid.h - queue IDs: unique on the host, sorted by arrival time.
 *
 * Format (11 to 21 characters, alphabet "0-9A-Za-z", which is in ASCII
 * order, so strcmp order of the fixed-width part is numeric order):
 *
 *     SSSSSS UUUU I...
 *     |      |    +-- inode number of the queue file, base 62, 1 to 11
 *     |      |        digits, no leading zero ("0" only for inode 0)
 *     |      +------- microseconds of arrival, base 62, exactly 4 digits
 *     +-------------- seconds since the epoch, base 62, exactly 6 digits
 *                     (good until the year 3770)
 *
 * e.g. "1iHmFu0aEx3Rq".  Uniqueness: the queue directory is one file
 * system, and an inode number is unique among its existing files, so two
 * queue files that exist together never share an ID; the microsecond time
 * makes a later file reusing a freed inode differ too (and qfile's rename
 * refuses to replace an existing name).  Sorting: comparing two IDs with
 * strcmp orders them by arrival time to the microsecond; equal times fall
 * back to inode order, which is arbitrary but stable.
 *
 * Paths: queue_directory/<queue>/<hash dirs>/<id>.  With hash depth 0
 * (the default for incoming/ and active/, which stay small) the file sits
 * directly in the queue; with depth 1 or 2, one or two levels of
 * single-hex-digit directories are taken from the FNV-1a hash of the ID
 * (level 1 = low 4 bits, level 2 = next 4 bits), as Postfix's
 * hash_queue_names/hash_queue_depth do for deferred/ and defer/.  The
 * caller decides the depth per queue and creates the directories.
 *
 * A queue ID read from a file name or a command line is untrusted: check
 * it with qid_valid() before building a path from it; qid_valid() admits
 * only the alphabet and the lengths above, so a valid ID has no '/', no
 * '.', and cannot escape the queue directory.
 */
#ifndef FACTEUR_QID_H
#define FACTEUR_QID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "strbuf.h"

#define QID_SEC_DIGITS      6
#define QID_USEC_DIGITS     4
#define QID_LEN_MIN         (QID_SEC_DIGITS + QID_USEC_DIGITS + 1)
#define QID_LEN_MAX         (QID_SEC_DIGITS + QID_USEC_DIGITS + 11)
#define QID_BUFSIZE         (QID_LEN_MAX + 1)
#define QID_HASH_DEPTH_MAX  2

/* Write the ID for arrival time tv and inode ino into buf (NUL-terminated).
 * Returns 0, or -1 if tv is out of range (negative, usec >= 1000000, or
 * seconds past 62^6). */
int qid_make(char buf[QID_BUFSIZE], const struct timeval *tv, uint64_t ino);

/* True if s (NUL-terminated) is a well-formed queue ID. */
bool qid_valid(const char *s);
/* Same for s[0..len) (no NUL needed). */
bool qid_validn(const char *s, size_t len);

/* Decode the arrival time and inode of a valid ID; -1 if invalid.
 * Either output may be NULL. */
int qid_decode(const char *qid, struct timeval *tv_r, uint64_t *ino_r);

/* The hash directory name (one hex digit) of qid at level 1 or 2. */
char qid_hash_char(const char *qid, int level);

/* Replace out with queue_dir/queue/[h1/[h2/]]qid; depth 0..QID_HASH_DEPTH_MAX
 * (clamped).  qid must be valid (a bug otherwise: panics); queue_dir and
 * queue are trusted configuration. */
void qid_path(struct strbuf *out, const char *queue_dir, const char *queue,
              const char *qid, int depth);

/* The queue ID at the end of path (after the last '/'), copied into buf;
 * returns 0, or -1 if that name is not a valid ID (a temporary file, a
 * stray name). */
int qid_from_path(const char *path, char buf[QID_BUFSIZE]);

#endif
