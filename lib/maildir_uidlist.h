/*
 * maildir_uidlist.h - persistent IMAP UIDs for a Maildir, in Dovecot's
 * "dovecot-uidlist" file (version 3), so facteur and Dovecot agree on
 * every message's UID and on the folder's UIDVALIDITY.
 *
 *   3 V<uidvalidity> N<nextuid> G<128-bit guid hex> [other fields]
 *   <uid> [<EXT><value> ...] :<base file name>
 *
 * Version 1 files ("1 <uidvalidity> <nextuid>", "<uid> <name>") are read
 * and rewritten as version 3.  Readers need no lock; writers hold
 * "dovecot-uidlist.lock" (created O_EXCL with "pid:host", as Dovecot's
 * dotlock), write "dovecot-uidlist.tmp", fsync it and rename it over the
 * list, so a crash leaves the old or the new list, never a broken one.
 * A broken list (bad header, bad line, truncated last line, UIDs out of
 * order) is rebuilt with a new, larger UIDVALIDITY, as Dovecot does.
 *
 * This module knows UIDs only; listing is maildir_list_* (maildir.h), and
 * imapd's own per-mailbox index sits beside both.
 */
#ifndef FACTEUR_MAILDIR_UIDLIST_H
#define FACTEUR_MAILDIR_UIDLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maildir.h"
#include "strbuf.h"

#define MAILDIR_UIDLIST_NAME "dovecot-uidlist"
/* Bounds on what a list may hold. */
#define MAILDIR_UIDLIST_MAX_LINE 4096
#define MAILDIR_UIDLIST_MAX_RECORDS 4000000
#define MAILDIR_UIDLIST_MAX_BYTES (512u * 1024 * 1024)
/* Dovecot's MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT. */
#define MAILDIR_UIDLIST_LOCK_STALE_SECS 120

struct maildir_uidlist;

struct maildir_uidlist_rec {
    uint32_t uid;
    char *name;     /* base file name (no ":2," info) */
    char *ext;      /* extension fields as in the file ("W2481"), or NULL */
};

/* A list for the Maildir dir (nothing is read yet). */
struct maildir_uidlist *maildir_uidlist_new(const char *dir);
/* Free (releasing the lock if held); *ulp becomes NULL. */
void maildir_uidlist_free(struct maildir_uidlist **ulp);

/*
 * Parse a list from memory, replacing the content of ul.  Returns 0, or
 * -1 if it is broken (why says where); ul is then empty but remembers a
 * UIDVALIDITY it could read, so a rebuild picks a larger one.
 */
int maildir_uidlist_parse(struct maildir_uidlist *ul, const char *data, size_t len,
                          struct strbuf *why);

/*
 * Read dir/dovecot-uidlist if it changed since the last read.  A missing
 * file gives an empty list (maildir_uidlist_exists false).  Returns 0
 * (check maildir_uidlist_broken), or -1 on an I/O error.
 */
int maildir_uidlist_refresh(struct maildir_uidlist *ul, struct strbuf *why);

/*
 * Take dovecot-uidlist.lock, waiting up to timeout_ms.  Returns 0, or -1
 * (timeout or error).  Not recursive.
 */
int maildir_uidlist_lock(struct maildir_uidlist *ul, int timeout_ms, struct strbuf *why);
void maildir_uidlist_unlock(struct maildir_uidlist *ul);
bool maildir_uidlist_locked(const struct maildir_uidlist *ul);

/*
 * Bring the list in line with the Maildir; the caller holds the lock.
 * Re-reads the list; rebuilds it (new UIDVALIDITY) when missing or broken;
 * drops records whose file is gone from new/ and cur/ (in two scans, so a
 * file renamed mid-scan keeps its UID); gives UIDs to new files in order
 * of arrival (the time at the start of their names, then name); writes
 * the list if anything changed.  list may be a scan made under the lock,
 * or NULL to scan here.  Returns the number of UIDs assigned, or -1.
 */
int maildir_uidlist_sync(struct maildir_uidlist *ul, struct maildir_list *list,
                         struct strbuf *why);

/* Write the list now (lock held): tmp file, fsync, rename, fsync dir. */
int maildir_uidlist_write(struct maildir_uidlist *ul, struct strbuf *why);

bool maildir_uidlist_exists(const struct maildir_uidlist *ul);
bool maildir_uidlist_broken(const struct maildir_uidlist *ul);
uint32_t maildir_uidlist_uidvalidity(const struct maildir_uidlist *ul);
uint32_t maildir_uidlist_next_uid(const struct maildir_uidlist *ul);
/* The mailbox GUID as 32 hex digits ("" if none yet). */
const char *maildir_uidlist_guid(const struct maildir_uidlist *ul);
size_t maildir_uidlist_count(const struct maildir_uidlist *ul);
/* Records in UID order, i < count; valid until the list next changes. */
const struct maildir_uidlist_rec *maildir_uidlist_rec(const struct maildir_uidlist *ul,
                                                      size_t i);
const struct maildir_uidlist_rec *maildir_uidlist_lookup_uid(const struct maildir_uidlist *ul,
                                                             uint32_t uid);
/* By base name (base_len bytes; a ":2,..." suffix is not part of it). */
const struct maildir_uidlist_rec *maildir_uidlist_lookup_name(const struct maildir_uidlist *ul,
                                                              const char *base,
                                                              size_t base_len);

#endif
