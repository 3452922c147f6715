/*
 * maildir.h - Maildir mailboxes: layout, file names, delivery, listing,
 * flag changes, Maildir++ folders and subscriptions.
 *
 * One library for lmtpd (delivery), imapd and pop3d (access) and the
 * facteur-maildir command.  The on-disk format is the one Dovecot and
 * Courier use, so a Maildir written by one is read by the others:
 *
 *   DIR/tmp, DIR/new, DIR/cur      one mailbox (INBOX is the root)
 *   ROOT/.Name, ROOT/.Name.Sub     Maildir++ folders ('.' separated)
 *   ROOT/.Name/maildirfolder       marks a folder (empty file)
 *   ROOT/subscriptions             subscribed folder names (Dovecot format)
 *   DIR/facteur-keys/BASE.done     delivered with an idempotency key
 *                                  (BASE.pending while under way)
 *   NAME = BASE[:2,FLAGS[,EXTRA]]  BASE may carry ",S=<size>,W=<vsize>"
 *
 * FLAGS are the standard letters D F P R S T (written in ASCII order) and
 * keyword letters a-z (bit i = letter 'a'+i, mapped to names by Dovecot's
 * dovecot-keywords).  The persistent UID list lives in maildir_uidlist.h,
 * the Maildir++ quota in maildir_quota.h.
 *
 * Every function that can fail returns -1 and writes the reason into why
 * (which may be NULL).  Names read from a directory are untrusted: the
 * parser is bounded (MAILDIR_NAME_MAX) and never trusts S=/W= beyond
 * parsing numbers.
 */
#ifndef FACTEUR_MAILDIR_H
#define FACTEUR_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "strbuf.h"

/* Longest file name accepted (NAME_MAX on Linux file systems). */
#define MAILDIR_NAME_MAX 255
/* Longest folder name (IMAP mailbox name as stored on disk, mUTF-7). */
#define MAILDIR_FOLDER_MAX 200
/* Age after which a file left in tmp/ is removed (the Maildir spec). */
#define MAILDIR_TMP_STALE_SECS (36 * 3600)
/* Delivery markers of keyed deliveries (DIR/facteur-keys/BASE.pending,
 * BASE.done), kept longer than any queue retries a message. */
#define MAILDIR_KEYS_DIR "facteur-keys"
#define MAILDIR_KEYS_STALE_SECS (8 * 24 * 3600)

/* Standard flags, as bits; letters in ASCII order D F P R S T. */
enum maildir_flag {
    MAILDIR_FLAG_DRAFT = 1 << 0,    /* D */
    MAILDIR_FLAG_FLAGGED = 1 << 1,  /* F */
    MAILDIR_FLAG_PASSED = 1 << 2,   /* P (forwarded) */
    MAILDIR_FLAG_REPLIED = 1 << 3,  /* R (answered) */
    MAILDIR_FLAG_SEEN = 1 << 4,     /* S */
    MAILDIR_FLAG_TRASHED = 1 << 5,  /* T (deleted) */
};
#define MAILDIR_FLAGS_ALL 0x3fu

/* ------------------------------------------------------------------ */
/* maildir.c: names, info, layout                                       */

/* What a file name says.  Offsets index into the parsed name. */
struct maildir_info {
    size_t base_len;        /* bytes before ':' (or the whole name) */
    bool has_info;          /* the name carries ":2," */
    unsigned flags;         /* MAILDIR_FLAG_* */
    uint32_t keywords;      /* bit i = keyword letter 'a'+i */
    bool has_size;          /* ",S=<size>" in the base */
    uint64_t size;
    bool has_vsize;         /* ",W=<vsize>" in the base */
    uint64_t vsize;
    size_t extra_off;       /* ",<non-standard>" after the flags: kept */
    size_t extra_len;       /* 0 if none */
};

/*
 * Parse a Maildir file name (no directory part) of len bytes.  Returns 0,
 * or -1 if the name is empty, longer than MAILDIR_NAME_MAX, holds '/',
 * NUL or a control character, has an empty base, an info part other than
 * ":2," followed by letters, or a malformed S=/W= number.  Flags may come
 * in any order and repeat when read; they are written in ASCII order.
 */
int maildir_name_parse(const char *name, size_t len, struct maildir_info *info,
                       struct strbuf *why);

/* The length of the base of name (bytes before the first ':'). */
size_t maildir_name_base_len(const char *name);

/* Append the info letters for flags and keywords ("DFPRST" then a-z). */
void maildir_flags_format(struct strbuf *out, unsigned flags, uint32_t keywords);
/*
 * Parse flag letters (as after ":2,") into flags and keywords.  Returns 0,
 * or -1 on a character that is not a letter or past 64 letters.
 */
int maildir_flags_parse(const char *s, size_t len, unsigned *flags_r,
                        uint32_t *keywords_r, struct strbuf *why);

/*
 * Set out to base (base_len bytes) + ":2," + flags + keywords, followed by
 * extra (extra_len bytes starting with ',', may be 0).  Returns -1 if the
 * result would pass MAILDIR_NAME_MAX.
 */
int maildir_name_build(struct strbuf *out, const char *base, size_t base_len,
                       unsigned flags, uint32_t keywords, const char *extra,
                       size_t extra_len, struct strbuf *why);

/*
 * Set out to a new unique base name "SEC.MusecPpidQnRrand.HOST": unique
 * across processes (pid, counter), hosts (host name, with '/', ':' and ','
 * escaped as the spec says) and restarts (time, 64 random bits), so it
 * never collides, on NFS too.
 */
void maildir_name_unique(struct strbuf *out);

/*
 * Set out to the base name derived from an idempotency key (a queue ID and
 * recipient, say): "ARRIVAL.K<128-bit hex hash>" (just "K<hash>" when
 * arrival is 0).  The same key and arrival always give the same base, so
 * a retried delivery finds its earlier file.
 */
void maildir_name_keyed(struct strbuf *out, const char *key, time_t arrival);

/* Set out to dir + "/" + sub (+ "/" + name when name is not NULL). */
void maildir_path(struct strbuf *out, const char *dir, const char *sub,
                  const char *name);

/* Create dir with tmp/, new/ and cur/ (mode 0700, parents as needed).
 * An existing Maildir is fine.  Returns 0 or -1. */
int maildir_create(const char *dir, struct strbuf *why);
/* True if dir has cur/, new/ and tmp/ directories. */
bool maildir_exists(const char *dir);

/* fsync a directory (dir + "/" + sub when sub is not NULL). */
int maildir_fsync_dir(const char *dir, const char *sub, struct strbuf *why);

/*
 * Remove files in dir/tmp older than max_age seconds relative to now (a
 * crash between write and link leaves them; they are never delivered).
 * Each removal is logged.  Also removes delivery markers older than
 * MAILDIR_KEYS_STALE_SECS.  Returns the number of tmp/ files removed, or -1.
 */
int maildir_clean_tmp(const char *dir, time_t now, time_t max_age,
                      struct strbuf *why);

/* Internal to the maildir_*.c files: printf into why when why is not
 * NULL (replacing its content). */
void maildir_why(struct strbuf *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Dovecot-compatible dot lock on path: path + ".lock", created with O_EXCL
 * and holding "pid:host".  A lock whose pid is gone on this host (and at
 * least 2 s old), or that has not changed for stale_secs, is broken, as
 * Dovecot does.  Waits up to timeout_ms (0: try once).  Returns 0 and
 * sets *fd_r to the open lock file (write the replacement content there
 * for maildir_dotlock_replace), or -1 (errno EAGAIN on timeout).
 */
int maildir_dotlock_take(const char *path, int timeout_ms, int stale_secs,
                         int *fd_r, struct strbuf *why);
/* Remove the lock and close fd. */
void maildir_dotlock_release(const char *path, int fd);
/* fsync the lock file, rename it over path (the new content), close fd.
 * Returns 0 or -1 (the lock is then removed). */
int maildir_dotlock_replace(const char *path, int fd, struct strbuf *why);

/* ------------------------------------------------------------------ */
/* maildir_deliver.c: delivery with the durability rule                 */

struct maildir_delivery;

struct maildir_deliver_opts {
    /* Idempotency key (queue ID + recipient + folder) or NULL.  With a key
     * the file name derives from it, and a message already delivered with
     * it (its copy in new/ or cur/ with any flags, or its "done" marker in
     * DIR/facteur-keys/) means "already delivered". */
    const char *key;
    /* Queue arrival time: part of a keyed name, and a bound (a message
     * cannot have been moved to cur/ before it arrived) that lets a check
     * after an interrupted attempt skip scanning cur/ when cur/ has not
     * changed since.  The same key must come with the same arrival. */
    time_t arrival;
    /* Initial flags and keywords: when non-zero, or when to_cur is set,
     * the file goes into cur/ with ":2," info (IMAP APPEND, COPY). */
    unsigned flags;
    uint32_t keywords;
    bool to_cur;
    /* The file's mtime (IMAP INTERNALDATE); 0 keeps the write time. */
    time_t mtime;
};

/*
 * Begin a delivery into the Maildir dir (which must exist).  Returns 1 and
 * sets *dp: write the message with maildir_deliver_write, then finish.
 * Returns 0 when opts->key is set and the message was already delivered
 * (new/ and cur/ are fsynced again before returning, in case the first
 * attempt died before its sync): nothing to write, answer success.  A
 * first attempt costs three stat() calls and one marker (a hard link);
 * only a retry after an attempt that died around its link scans new/ and
 * cur/.  finish() turns the marker into "done" once the link is made.
 * Returns -1 on error.
 */
int maildir_deliver_start(const char *dir, const struct maildir_deliver_opts *opts,
                          struct maildir_delivery **dp, struct strbuf *why);
/* Append n bytes of message data.  Returns 0 or -1 (the delivery must then
 * be aborted). */
int maildir_deliver_write(struct maildir_delivery *d, const void *p, size_t n,
                          struct strbuf *why);
/*
 * Flush and fsync the file, link it into new/ (cur/ with flags) under its
 * final name "BASE,S=size,W=vsize[:2,flags]", unlink tmp/, and free *dp.
 * The directory is NOT fsynced here, so several deliveries can share one
 * sync: the caller must call maildir_deliver_sync(dir, ...) before it
 * reports success.  Returns 0 when delivered, 1 when a keyed delivery
 * found an earlier copy (its own link is removed; still a success), -1 on
 * error (nothing left in new/).  name_r (may be NULL) gets the final name.
 */
int maildir_deliver_finish(struct maildir_delivery **dp, struct strbuf *name_r,
                           struct strbuf *why);
/* Give up: remove the tmp/ file and free *dp (NULL allowed). */
void maildir_deliver_abort(struct maildir_delivery **dp);
/* fsync dir/new (and dir/cur when cur is set): the commit point. */
int maildir_deliver_sync(const char *dir, bool cur, struct strbuf *why);

/*
 * All of it for one message in memory: start, write, finish, sync.
 * Returns 0 delivered, 1 already there (keyed), -1 error.
 */
int maildir_deliver(const char *dir, const struct maildir_deliver_opts *opts,
                    const void *msg, size_t len, struct strbuf *name_r,
                    struct strbuf *why);

/* ------------------------------------------------------------------ */
/* maildir_list.c: listing and changes to existing messages             */

struct maildir_entry {
    char *name;             /* current file name (owned) */
    size_t base_len;        /* bytes of the base in name */
    bool in_new;            /* in new/ (else cur/) */
    unsigned flags;         /* MAILDIR_FLAG_* */
    uint32_t keywords;
    uint64_t size;          /* from S= or stat(); 0 if neither known */
    time_t mtime;           /* 0 unless the scan was asked to stat */
};

struct maildir_list {
    struct maildir_entry *v;    /* sorted by base name */
    size_t n;
    size_t cap;
};

/* Listing options. */
#define MAILDIR_SCAN_STAT 1     /* stat() every file (mtime, size) */

/* Hard bound on the number of messages one scan returns. */
#define MAILDIR_SCAN_MAX 4000000

/*
 * List new/ and cur/ of dir.  Names that fail to parse are still listed
 * (flags 0, base up to ':'), so no message ever disappears from view;
 * dot files are skipped.  Returns 0 and sets *list_r (free with
 * maildir_list_free), or -1.
 */
int maildir_list_scan(const char *dir, int opts, struct maildir_list **list_r,
                      struct strbuf *why);
void maildir_list_free(struct maildir_list **listp);
/* The entry with this base name, or NULL. */
struct maildir_entry *maildir_list_find(struct maildir_list *list, const char *base,
                                        size_t base_len);

/*
 * Set an entry's flags and keywords by renaming it (a file in new/ moves
 * to cur/ with ":2,"; the ",EXTRA" after the flags is kept).  If another
 * process renamed the file meanwhile, the file is found again by its base
 * name and the rename retried (bounded).  Returns 0 (e->name updated),
 * 1 if the message no longer exists (expunged elsewhere), -1 on error.
 */
int maildir_entry_set_flags(const char *dir, struct maildir_entry *e,
                            unsigned flags, uint32_t keywords, struct strbuf *why);
/* Move a message from new/ to cur/ keeping its flags ("seen by a client,
 * not read"); 0, 1 (gone) or -1 as above. */
int maildir_entry_to_cur(const char *dir, struct maildir_entry *e, struct strbuf *why);
/* Remove a message; 0, 1 (already gone) or -1. */
int maildir_entry_expunge(const char *dir, struct maildir_entry *e, struct strbuf *why);
/*
 * Open a message for reading, finding it again if it was renamed.
 * Returns a descriptor, -2 if the message no longer exists, or -1.
 */
int maildir_entry_open(const char *dir, struct maildir_entry *e, struct strbuf *why);
/*
 * Copy a message into the Maildir dst with the given flags: a hard link
 * under a new unique base name in dst/cur (the S=/W= fields are kept), or
 * a byte copy through tmp/ when linking is not possible (another file
 * system).  dst/cur is fsynced.  Returns 0 (name_r, may be NULL, gets the
 * new name), 1 if the source no longer exists, -1 on error.
 */
int maildir_entry_copy(const char *dir, struct maildir_entry *e, const char *dst,
                       unsigned flags, uint32_t keywords, struct strbuf *name_r,
                       struct strbuf *why);
/*
 * IMAP APPEND: store a message in dir/cur with flags, keywords and mtime
 * (0: now), durably (fsync file, link, fsync cur/).  Returns 0 or -1.
 */
int maildir_append(const char *dir, unsigned flags, uint32_t keywords, time_t mtime,
                   const void *msg, size_t len, struct strbuf *name_r,
                   struct strbuf *why);

/* ------------------------------------------------------------------ */
/* maildir_folder.c: Maildir++ folders and subscriptions                */

/*
 * Check a folder name: "INBOX" (any case) or '.'-separated components,
 * none empty, no '/', no control character, at most MAILDIR_FOLDER_MAX
 * bytes.  Returns 0 or -1.
 */
int maildir_folder_check(const char *name, struct strbuf *why);
/* Set out to the directory of folder name under root ("INBOX" is root
 * itself, "Sent" is root/.Sent).  Returns 0, or -1 for a bad name. */
int maildir_folder_path(struct strbuf *out, const char *root, const char *name,
                        struct strbuf *why);
/*
 * Create a folder (its Maildir and the maildirfolder marker).  Returns 0,
 * 1 if it already existed, -1 on error.
 */
int maildir_folder_create(const char *root, const char *name, struct strbuf *why);
/*
 * Delete a folder and its messages.  The folder is first renamed out of
 * sight (so a reader never sees half of it), then removed.  INBOX and a
 * folder with subfolders cannot be deleted.  Returns 0 or -1.
 */
int maildir_folder_delete(const char *root, const char *name, struct strbuf *why);
/*
 * Rename a folder and all its subfolders (".old.x" -> ".new.x").  Fails if
 * the target or one of its would-be subfolders exists, or for INBOX.
 * Returns 0 or -1.
 */
int maildir_folder_rename(const char *root, const char *from, const char *to,
                          struct strbuf *why);
/*
 * List the folders under root (not INBOX), sorted.  Returns 0 and sets
 * *names_r (a NULL-terminated array; free with maildir_names_free) and
 * *n_r, or -1.
 */
int maildir_folder_list(const char *root, char ***names_r, size_t *n_r,
                        struct strbuf *why);
void maildir_names_free(char ***namesp);
/* Create the usual folders (Sent, Drafts, Junk, Trash, Archive) and
 * subscribe them.  Returns 0 or -1. */
int maildir_folder_create_defaults(const char *root, struct strbuf *why);

/*
 * Read root/subscriptions (Dovecot's format: an optional "V\t2\n\n" header,
 * then one name a line, with hierarchy levels separated by TAB in version
 * 2).  A missing file is an empty list.  Lines longer than
 * MAILDIR_FOLDER_MAX or past 100,000 lines make it fail.  Returns 0 and
 * sets *names_r / *n_r (in file order; free with maildir_names_free), or -1.
 */
int maildir_subs_read(const char *root, char ***names_r, size_t *n_r,
                      struct strbuf *why);
/*
 * Subscribe or unsubscribe a name.  The file is rewritten under the
 * "subscriptions.lock" dotlock (created O_EXCL, as Dovecot does), fsynced
 * and renamed into place.  Returns 1 if changed, 0 if already so, -1.
 */
int maildir_subs_set(const char *root, const char *name, bool subscribed,
                     struct strbuf *why);

/* Parse a subscriptions file from memory (the reader behind
 * maildir_subs_read).  Returns 0 or -1. */
int maildir_subs_parse(const char *data, size_t len, char ***names_r, size_t *n_r,
                       struct strbuf *why);

#endif
